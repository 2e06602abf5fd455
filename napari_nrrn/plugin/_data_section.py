"""Section 1 of the denoise dock: which image layer to denoise, what it is, and its noise.

The noise report (``measures.noise.estimate_noise``, a few slices read) and the drift between slices
(``measures.drift.estimate_drift``) are measured in a worker whenever another layer is chosen, kept per
layer, and shown in plain words, with warnings when an assumption of the training fails (slices that share
noise, streaks, neighbours that do not show the same place).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from dask.utils import format_bytes
from napari.layers import Image
from napari.utils.notifications import show_error
from qtpy.QtWidgets import QDoubleSpinBox, QFileDialog, QPushButton

from napari_nrrn.plugin._denoise_layers import BLOCKS, PREVIEW, source_path, stack_data, voxel_size
from napari_nrrn.plugin._dock_layout import (
    WARNING_STYLE,
    DockSection,
    WrappedLabel,
    breakable,
    follow_layer_list,
    labelled,
    layer_name_combo,
    row_widget,
    set_choices,
)
from napari_nrrn.plugin._dock_state import NOISE_JOB, DockJobs, DockState

STACK_FILTER = "Stacks (*.tif *.tiff *.dat *.mrc *.rec *.st *.map *.h5 *.hdf5 *.hdf *.he5);;All files (*)"


def noise_events(stack):
    """A job without progress events: (the noise report, None), or (None, why it cannot be measured); then
    the drift between slices in plain words (``drift_text``)."""
    from napari_nrrn.measures.noise import estimate_noise

    try:
        return estimate_noise(stack), None, drift_text(stack)
    except ValueError as error:  # too small, blank: said in the section, not as an error
        return None, str(error), drift_text(stack)
    yield  # start_job drives generators


def drift_text(stack) -> tuple[str, str]:
    """(what the drift between adjacent slices is, its warnings) in plain words, for the section."""
    from napari_nrrn.measures.drift import estimate_drift

    try:
        drift = estimate_drift(stack)
    except ValueError as error:
        return f"Drift between slices not measured: {error}", ""
    shown = drift.describe()[:1] + drift.describe()[2:]  # the per-pair shifts are for the command line
    warnings = "\n".join(f"⚠ {_sentence(warning)}." for warning in drift.warnings())
    return "\n".join(_sentence(line) for line in shown), warnings


def _sentence(line: str) -> str:
    return line[0].upper() + line[1:]


class DataSection(DockSection):
    """The input layer (kept in sync with the viewer's image layers, the dock's results left out), its
    shape, size on disk and voxel size, and a warning when NRRN cannot train on it. The layer chosen here is
    ``state.input_layer``."""

    def __init__(self, state: DockState, jobs: DockJobs, viewer):
        super().__init__("1. Data")
        self.state, self.jobs, self.viewer = state, jobs, viewer
        self.layer_combo = layer_name_combo()
        self.layer_combo.setToolTip("The image layer to denoise: a (Z, Y, X) stack")
        self.layer_combo.currentTextChanged.connect(self._on_layer_choice)
        open_file = QPushButton("Open stack file…")
        open_file.setToolTip("TIFF/BigTIFF, FIB-SEM .dat; opened lazily (nothing is read until shown)")
        open_file.clicked.connect(self._ask_stack_file)
        open_folder = QPushButton("Open folder…")
        open_folder.setToolTip("A folder of per-slice TIFF/.dat files, or a Zarr/OME-Zarr store")
        open_folder.clicked.connect(self._ask_stack_folder)
        self.data_info = WrappedLabel()
        # Shown for stacks whose file records no z step (.dat frames): the user's value replaces the guess.
        self.z_step_spin = QDoubleSpinBox()
        self.z_step_spin.setRange(0.01, 100_000.0)
        self.z_step_spin.setDecimals(2)
        self.z_step_spin.setSuffix(" nm")
        self.z_step_spin.setToolTip(
            "The distance between slices, which the file does not record (the milling step of the run)"
        )
        self.z_step_spin.editingFinished.connect(lambda: self.set_z_step(self.z_step_spin.value()))
        self.z_step_row = labelled("z step", self.z_step_spin)
        self.data_warning = WrappedLabel(style=WARNING_STYLE)
        self.noise_info = WrappedLabel()
        self.noise_warning = WrappedLabel(style=WARNING_STYLE)
        self.addWidget(labelled("Image layer", self.layer_combo))
        self.addWidget(row_widget(open_file, open_folder))
        self.addWidget(self.data_info)
        self.addWidget(self.z_step_row)
        self.addWidget(self.data_warning)
        self.drift_info = WrappedLabel()
        self.drift_warning = WrappedLabel(style=WARNING_STYLE)
        self.addWidget(self.noise_info)
        self.addWidget(self.noise_warning)
        self.addWidget(self.drift_info)
        self.addWidget(self.drift_warning)
        self.expand(animate=False)
        # layer id -> (report or None, why not); a layer's entry goes when its data is replaced
        self.noise_reports: dict = {}
        self._noise_watched: set = set()

        follow_layer_list(viewer.layers, self._refresh_choices)
        jobs.finished.connect(self._on_job_finished)
        self._refresh_choices()

    @property
    def input_layer(self) -> Image | None:
        return self.state.input_layer

    def open_stack_path(self, path: str | Path) -> Image | None:
        """Open a stack file or folder lazily (as napari's reader does) and select it; an HDF5 file with
        several image datasets adds one layer each, the first selected, the others a choice away."""
        from napari_nrrn.plugin.reader import read_stack

        try:
            found = read_stack(path)
        except (ValueError, OSError) as error:
            show_error(f"Could not open {path}: {error}")
            return None
        layers = [self.viewer.add_image(data, **kwargs) for data, kwargs, _ in found]
        self.layer_combo.setCurrentText(layers[0].name)
        return layers[0]

    def set_z_step(self, nm: float) -> None:
        """Give the chosen layer's z step in nm where its file records none: its scale and recorded voxel
        size follow, so the preview, the export and the profiles use it."""
        layer = self.input_layer
        if layer is None or not layer.metadata.get("z_step_assumed") or layer.ndim != 3:
            return
        voxel = voxel_size(layer) or tuple(float(s) for s in layer.scale)
        layer.metadata["voxel_size_nm"] = (float(nm), *voxel[1:])
        layer.metadata["z_step_given"] = True
        layer.scale = (float(nm), *layer.scale[1:])
        self._show_data_info()

    def _ask_stack_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a FIB-SEM stack", "", STACK_FILTER)
        if path:
            self.open_stack_path(path)

    def _ask_stack_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a folder of slices or a Zarr store")
        if path:
            self.open_stack_path(path)

    def _refresh_choices(self, event=None) -> None:
        images = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        images = [name for name in images if not name.endswith((f" NRRN {PREVIEW}", f" NRRN {BLOCKS}"))]
        set_choices(self.layer_combo, images, self.layer_combo.currentText())
        self._on_layer_choice()

    def _on_layer_choice(self, *_) -> None:
        name, layers = self.layer_combo.currentText(), self.viewer.layers
        self.state.input_layer = layers[name] if name in layers else None
        self._show_data_info()
        self.show_noise()

    def show_noise(self):
        """Show the chosen layer's noise report, measuring it in a worker first if needed; returns that
        worker (None when the report is known, or a measurement is running: it re-checks when it ends)."""
        layer = self.input_layer
        if layer is None or layer.rgb or stack_data(layer).ndim != 3:
            self._show_report(None, "", ("", ""))
            return None
        if layer.unique_id in self.noise_reports:
            self._show_report(*self.noise_reports[layer.unique_id])
            return None
        if self.state.is_running(NOISE_JOB):
            return None
        self.noise_info.setText("Measuring the noise…")
        self.noise_warning.setText("")
        self.drift_info.setText("")
        self.drift_warning.setText("")
        self._watch_noise(layer)

        def done(result, _) -> None:
            self.noise_reports[layer.unique_id] = result

        return self.jobs.run(
            NOISE_JOB,
            lambda _: noise_events(stack_data(layer)),
            doing=f"measuring the noise of {layer.name}",
            total=0,
            describe=lambda _: f"measuring the noise of {layer.name}",
            on_done=done,
        )

    def _watch_noise(self, layer) -> None:
        if layer.unique_id not in self._noise_watched:
            self._noise_watched.add(layer.unique_id)
            layer.events.data.connect(lambda _: self.noise_reports.pop(layer.unique_id, None))

    def _on_job_finished(self, kind: str) -> None:
        if kind == NOISE_JOB:
            self.show_noise()  # the report just measured, or the layer chosen meanwhile

    def _show_report(self, report, why_not: str, drift: tuple[str, str]) -> None:
        self.drift_info.setText(drift[0])
        self.drift_warning.setText(drift[1])
        if report is None:
            self.noise_info.setText(f"Noise not measured: {why_not}" if why_not else "")
            self.noise_warning.setText("")
            return
        self.noise_info.setText("\n".join(line[0].upper() + line[1:] for line in report.describe()))
        self.noise_warning.setText("\n".join(f"⚠ {line[0].upper()}{line[1:]}." for line in report.warnings()))

    def _show_data_info(self) -> None:
        layer = self.input_layer
        if layer is None:
            self.data_info.setText("No image layer: open a stack or load one in napari.")
            self.data_warning.setText("")
            self.z_step_row.setVisible(False)
            return
        data = layer.data[0] if layer.multiscale else layer.data
        dtype = np.dtype(data.dtype)
        lines = [
            f"shape {tuple(data.shape)}, {dtype}, {format_bytes(int(np.prod(data.shape)) * dtype.itemsize)}"
            " uncompressed"
        ]
        path = source_path(layer)
        if path is not None:
            size = _disk_bytes(path)
            on_disk = f": {format_bytes(size)} on disk" if size is not None else ""
            lines.append(breakable(Path(path).name) + on_disk)
        voxel = voxel_size(layer)
        if data.ndim >= 3 and voxel is not None:
            unit = " nm" if layer.metadata.get("voxel_size_nm") else ""
            lines.append("voxel (z, y, x): " + " × ".join(f"{s:g}" for s in voxel) + unit)
            if layer.metadata.get("z_step_given"):
                lines.append("z step not recorded in the file: set by you below")
            elif layer.metadata.get("z_step_assumed"):
                lines.append("z step not recorded in the file: assumed equal to the pixel size; set it below")
        asks_z_step = bool(layer.metadata.get("z_step_assumed")) and data.ndim == 3 and voxel is not None
        self.z_step_row.setVisible(asks_z_step)
        if asks_z_step:
            self.z_step_spin.setValue(voxel[0])
        self.data_info.setText("\n".join(lines))
        self.data_warning.setText(_stack_warning(layer, data))


@lru_cache(maxsize=64)  # the data panel refreshes on every layer change; a folder may hold many files
def _disk_bytes(path: str) -> int | None:
    from napari_nrrn.io.stack import inspect_stack

    try:
        return inspect_stack(path).disk_bytes
    except (ValueError, OSError):
        return None


def _stack_warning(layer, data) -> str:
    if layer.rgb or data.ndim > 3:
        return f"NRRN needs a single-channel (Z, Y, X) stack; this layer is {data.ndim}-D."
    if data.ndim == 2:
        return (
            "2-D image: NRRN trains on neighbouring slices, so it cannot train here; a model trained "
            "elsewhere can still denoise it (the image stands in for both neighbours)."
        )
    if data.shape[0] < 3:
        return f"Only {data.shape[0]} slice(s): training needs at least 3 (previous, centre, next triplets)."
    return ""
