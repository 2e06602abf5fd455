"""Layer 5: napari contributions (reader, writer, sample data, widgets) named in napari.yaml."""
