"""The denoise dock as a new user meets it (issue 23): a real window at napari's default size, the dock added
as the manifest adds it, the samples opened with their own layer names; the sections built around one
shared state; statuses that tell the truth after an error; the depth explorer's controls; progress in the
dock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel

from napari_nrrn.model.checkpoint import save_model
from napari_nrrn.model.nrrn import NRRN
from napari_nrrn.plugin._training_section import remaining_seconds
from napari_nrrn.plugin._viewer_helpers import RESIN_LINES_NAME
from napari_nrrn.plugin.denoise_widget import NOISE_JOB, STACK_JOB, TRAIN, DenoiseWidget
from napari_nrrn.progress import Progress

WAIT_MS = 60_000

pytestmark = pytest.mark.usefixtures("isolated_qsettings")
SAMPLES = {  # sample key -> the layer name it opens with
    "fibsem": "FIB-SEM sample (FlyEM medulla + synthetic noise)",
    "fibsem_gala": "FIB-SEM sample (FlyEM gala, correlated noise)",
    "sem_resin": "SEM sample (resin)",
}


@pytest.fixture
def tiny_model(tmp_path):
    torch.manual_seed(0)
    return save_model(NRRN(depth=2, width=4), tmp_path / "tiny.pt")


def add_dock(viewer) -> DenoiseWidget:
    """The dock as napari adds a manifest widget: into the window, at its default size."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "NRRN denoising")
    return widget


def open_sample(viewer, widget, qtbot, key: str):
    viewer.open_sample("napari-nrrn", key)
    layer = viewer.layers[SAMPLES[key]]
    widget.data_section.layer_combo.setCurrentText(layer.name)
    assert widget.state.input_layer.unique_id == layer.unique_id  # the dock sees napari's proxy of it
    qtbot.waitUntil(lambda: NOISE_JOB not in widget.jobs, timeout=WAIT_MS)
    return layer


def folded(widget) -> bool:
    """Inside a folded section (QCollapsible folds to height 0, its content still "visible")."""
    from superqt import QCollapsible

    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QCollapsible) and not parent.isExpanded():
            return True
        parent = parent.parentWidget()
    return False


def clipped_labels(widget) -> list[str]:
    """The dock's visible labels whose text needs more height than they have, or that reach past the dock's
    right edge (the scroll area cuts there: it has no horizontal scroll bar)."""
    viewport = widget.scroll.viewport()
    cut = []
    for label in widget.scroll.widget().findChildren(QLabel):
        if not (label.isVisible() and label.text()) or folded(label):
            continue
        right = label.mapTo(viewport, label.rect().topRight()).x()
        if label.heightForWidth(label.width()) > label.height() or right > viewport.width():
            cut.append(label.text())
    return cut


def test_every_data_label_shows_whole_with_each_sample(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    widget = add_dock(viewer)
    data = widget.data_section
    for key in SAMPLES:
        open_sample(viewer, widget, qtbot, key)
        assert data.data_info.isVisible() and data.noise_info.text()
        qtbot.waitUntil(lambda: clipped_labels(widget) == [], timeout=5000)
    data.layer_combo.setCurrentText(SAMPLES["fibsem_gala"])
    assert "Measured on" in data.noise_info.text() and data.noise_info.isVisible()
    assert data.noise_warning.text().count("⚠") >= 2 and data.noise_warning.isVisible()
    qtbot.waitUntil(lambda: clipped_labels(widget) == [], timeout=5000)
    for size in ((1600, 1000), (1920, 1080)):  # the window sizes of the tryout
        viewer.window._qt_window.resize(*size)
        qtbot.waitUntil(lambda: clipped_labels(widget) == [], timeout=5000)


def test_sections_follow_one_shared_state(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    widget = add_dock(viewer)
    state = widget.state
    assert len({id(section) for section in widget.sections}) == 6
    for section in widget.sections:
        assert not hasattr(section, "dock"), f"{type(section).__name__} reaches the dock"
        assert section.state is state

    layer = viewer.add_image(np.zeros((5, 32, 32), np.uint8), name="zeros")
    assert state.input_layer.unique_id == layer.unique_id
    torch.manual_seed(0)
    path = save_model(NRRN(depth=3, width=4), tmp_path / "deep.pt")
    seen = []
    state.events.model.connect(seen.append)
    model = widget.model_section.load_checkpoint(path)
    assert seen == [model] and state.model is model and widget.model is model
    assert widget.depth_section.depth_spin.maximum() == 3
    assert widget.model_section.model_info.text().startswith("Model: deep.pt")
    widget.depth_section.depth_spin.setValue(2)
    assert state.depth == 2 and state.model_for_run().depth == 2
    widget.preview_section.tile_spin.setValue(256)
    widget.model_section.device_combo.setCurrentText("cpu")
    assert (state.tile, state.device) == (256, "cpu")
    state.running = (TRAIN,)  # what the runner sets while training: every section's buttons follow
    assert not widget.preview_section.preview_button.isEnabled()
    assert not widget.depth_section.blocks_button.isEnabled()
    assert not widget.stack_section.stack_button.isEnabled()
    assert widget.training_section.cancel_train_button.isEnabled()
    state.running = ()
    assert widget.preview_section.preview_button.isEnabled()


def test_a_refused_output_says_so_in_the_status(make_napari_viewer, qtbot, tiny_model, tmp_path):
    viewer = make_napari_viewer(show=True)
    widget = add_dock(viewer)
    open_sample(viewer, widget, qtbot, "fibsem")
    widget.model_section.load_checkpoint(tiny_model)
    assert widget.stack_section.denoise_to_file(tmp_path / "bad.png") is None
    status = widget.stack_section.stack_status.text()
    assert status.startswith("Not started: ") and "bad.png" in status and "choose a .tif" in status
    assert "Denoising" not in status
    assert widget.stack_section.stack_button.isEnabled() and STACK_JOB not in widget.jobs


def test_train_is_disabled_on_a_2d_image_with_the_reason(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    widget = add_dock(viewer)
    training = widget.training_section
    open_sample(viewer, widget, qtbot, "sem_resin")
    assert not training.train_button.isEnabled()
    assert training.train_reason.isVisible()
    assert training.train_reason.text().startswith(
        "Train needs a (Z, Y, X) stack; SEM sample (resin) is a 2-D image."
    )
    assert training.start_training() is None
    assert training.train_status.text().startswith("Not started: Train needs a (Z, Y, X) stack")
    open_sample(viewer, widget, qtbot, "fibsem")
    assert training.train_button.isEnabled() and not training.train_reason.isVisible()


def test_a_training_error_replaces_the_training_status(make_napari_viewer, qtbot, monkeypatch):
    import napari_nrrn.engine.train as engine_train

    def failing_train(stack, config, **_):
        raise ValueError("patch 512 is larger than the slices (160 x 160)")
        yield

    monkeypatch.setattr(engine_train, "train", failing_train)
    viewer = make_napari_viewer(show=True)
    widget = add_dock(viewer)
    open_sample(viewer, widget, qtbot, "fibsem")
    with qtbot.waitSignal(widget.job_finished, timeout=WAIT_MS):
        assert widget.training_section.start_training() is not None
    status = widget.training_section.train_status.text()
    assert status == (
        "Failed: Error while training on FIB-SEM sample (FlyEM medulla + synthetic noise): "
        "patch 512 is larger than the slices (160 x 160)"
    )
    assert widget.training_section.train_button.isEnabled()


def test_training_status_shows_the_time_left(make_napari_viewer, qtbot, tmp_path, one_torch_thread):
    viewer = make_napari_viewer(show=True)
    widget = add_dock(viewer)
    open_sample(viewer, widget, qtbot, "fibsem")
    form = widget.training_section.train_form
    settings = dict(depth=1, width=4, patch=32, batch=2, steps=1_000_000, start_from="random")
    for name, value in settings.items():
        form.set_value(name, value)
    widget.training_section.checkpoint_edit.setText(str(tmp_path / "t.pt"))
    with qtbot.waitSignal(widget.job_progress, timeout=WAIT_MS):
        assert widget.training_section.start_training() is not None
    status = widget.training_section.train_status.text()
    assert "\nStep " in status and " of 1000000, about " in status and status.endswith(" left.")
    progress = widget.progress
    assert progress.isVisible() and progress.kind == TRAIN and progress.bar.maximum() == 1_000_000
    with qtbot.waitSignal(widget.job_finished, timeout=WAIT_MS):
        progress.cancel_button.click()
    assert widget.training_section.train_status.text().startswith("Cancelled at step ")
    assert not progress.isVisible()


def test_the_time_left_comes_from_the_engine_estimate_when_it_gives_one():
    class Estimated(Progress):  # an event with the engine's own estimate, measured from the first steps
        remaining_s = 12.0

    plain = Progress(stage="train", done=2, total=10, elapsed_s=4.0)
    assert remaining_seconds(plain) == plain.eta_s == 16.0
    assert remaining_seconds(Estimated(stage="train", done=2, total=10, elapsed_s=4.0)) == 12.0
    assert remaining_seconds(Progress(stage="train", done=0, total=10, elapsed_s=0.0)) is None


def test_depth_section_adds_a_resin_lines_layer(make_napari_viewer, qtbot):
    from napari.layers import Shapes

    viewer = make_napari_viewer(show=True)
    widget = add_dock(viewer)
    layer = open_sample(viewer, widget, qtbot, "fibsem")
    widget.depth_section.add_lines_button.click()
    lines = viewer.layers[RESIN_LINES_NAME]
    assert isinstance(lines, Shapes) and lines.mode == "add_line"
    np.testing.assert_allclose(lines.scale, layer.scale[-2:])
    assert widget.depth_section.lines_combo.currentText() == RESIN_LINES_NAME


def test_results_keep_the_viewer_z_range_the_stacks(make_napari_viewer, qtbot, tiny_model):
    viewer = make_napari_viewer(show=True)
    widget = add_dock(viewer)
    layer = open_sample(viewer, widget, qtbot, "fibsem")
    widget.model_section.load_checkpoint(tiny_model)
    widget.model_section.device_combo.setCurrentText("cpu")
    z_range, axis_labels = viewer.dims.range[0], viewer.dims.axis_labels
    slider = viewer.window._qt_viewer.dims.slider_widgets[0].slider
    for z in (0, 31):
        viewer.dims.set_point(0, layer.translate[0] + z * layer.scale[0])
        for start in (widget.preview_section.preview, widget.depth_section.explore_depth):
            worker = start()
            qtbot.waitUntil(lambda w=worker: w not in widget.jobs.values(), timeout=WAIT_MS)
        assert viewer.dims.ndim == 3
        # a 4-D layer, even gone, renumbered the axes from the end: the z slider read "-3"
        assert viewer.dims.axis_labels == axis_labels
        assert viewer.dims.range[0] == z_range
        assert (slider.minimum(), slider.maximum()) == (0, 31)
        assert viewer.dims.current_step[0] == z


def test_export_asks_for_the_author_and_remembers_it(make_napari_viewer, qtbot, tiny_model, tmp_path):
    import zipfile

    from napari.utils.notifications import NotificationSeverity, notification_manager

    viewer = make_napari_viewer()
    widget = add_dock(viewer)
    widget.model_section.load_checkpoint(tiny_model)
    out = tmp_path / "tiny.zip"
    count = len(notification_manager.records)
    assert widget.model_section.export_for_bioimageio(out) is None
    [error] = [n for n in notification_manager.records[count:] if n.severity == NotificationSeverity.ERROR]
    assert "names who trained its weights" in error.message and "'Author' field" in error.message
    assert not out.exists()

    widget.model_section.author_edit.setText("Ada Microscopist")
    worker = widget.model_section.export_for_bioimageio(out)
    qtbot.waitUntil(lambda: worker not in widget.jobs.values(), timeout=WAIT_MS)
    with zipfile.ZipFile(out) as package:
        [rdf] = [name for name in package.namelist() if name.endswith(("rdf.yaml", "bioimageio.yaml"))]
        text = package.read(rdf).decode()
    assert "Ada Microscopist" in text and "napari-nrrn user" not in text
    other = add_dock(make_napari_viewer())  # a new session remembers the name
    assert other.model_section.author_edit.text() == "Ada Microscopist"


def test_compare_toggle_shows_raw_in_place_and_back(make_napari_viewer, qtbot, tiny_model):
    viewer = make_napari_viewer(show=True)
    widget = add_dock(viewer)
    layer = open_sample(viewer, widget, qtbot, "fibsem")
    widget.model_section.load_checkpoint(tiny_model)
    widget.model_section.device_combo.setCurrentText("cpu")
    assert not widget.compare.isEnabled()  # nothing to compare with yet
    worker = widget.preview_section.preview()
    qtbot.waitUntil(lambda: worker not in widget.jobs.values(), timeout=WAIT_MS)
    preview = viewer.layers[f"{layer.name} NRRN preview"]
    camera = (viewer.camera.center, viewer.camera.zoom)
    assert widget.compare.isEnabled() and preview.visible
    widget.compare.click()
    assert not preview.visible and layer.visible
    widget.compare.click()
    assert preview.visible and (viewer.camera.center, viewer.camera.zoom) == camera
    widget.compare.click()
    viewer.layers.remove(preview)  # the result gone: the comparison ends
    assert not widget.compare.isChecked() and not widget.compare.isEnabled()


def test_a_failed_preview_says_so_in_its_status(make_napari_viewer, qtbot, tiny_model):
    viewer = make_napari_viewer(show=True)
    widget = add_dock(viewer)
    open_sample(viewer, widget, qtbot, "fibsem")
    widget.model_section.load_checkpoint(tiny_model)
    widget.model_section.device_combo.setCurrentText("cpu")
    widget.preview_section.tile_spin.setValue(4)  # smaller than the model's halo
    widget.preview_section.whole_slice.setChecked(True)
    # The job fails at once: its error must reach the status even if it comes before start_job returns.
    with qtbot.waitSignal(widget.job_finished, timeout=WAIT_MS):
        assert widget.preview_section.preview() is not None
    status = widget.preview_section.preview_status.text()
    assert status.startswith("Preview failed: Error while computing the preview of slice ")
    assert "smaller than the model's halo" in status
    assert widget.preview_section.preview_button.isEnabled()


def test_checkpoints_default_to_the_user_data_folder_and_the_field_shows_it(make_napari_viewer, qtbot):
    from platformdirs import user_data_dir

    viewer = make_napari_viewer()
    widget = add_dock(viewer)
    open_sample(viewer, widget, qtbot, "fibsem")
    training = widget.training_section
    expected = Path(user_data_dir("napari-nrrn", appauthor=False)) / "checkpoints"
    assert training.checkpoint_path().parent == expected
    assert training.checkpoint_path().name == "FIB-SEM_sample__FlyEM_medulla___synthetic_noise_-nrrn.pt"
    assert training.checkpoint_edit.placeholderText() == str(training.checkpoint_path())
    training.checkpoint_edit.setText("~/mine.pt")
    assert training.checkpoint_path() == Path("~/mine.pt").expanduser()


def test_denoising_buttons_are_disabled_on_a_layer_nrrn_cannot_denoise(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = add_dock(viewer)  # the shipped model
    buttons = (
        widget.preview_section.preview_button,
        widget.depth_section.blocks_button,
        widget.stack_section.stack_button,
    )
    viewer.add_image(np.zeros((2, 3, 16, 16), np.uint8), name="4-D")
    assert widget.data_section.data_warning.text().startswith("NRRN needs a single-channel (Z, Y, X) stack")
    assert not any(button.isEnabled() for button in buttons)
    assert not widget.training_section.train_button.isEnabled()
    viewer.add_image(np.zeros((3, 16, 16), np.uint8), name="stack")
    widget.data_section.layer_combo.setCurrentText("stack")
    assert all(button.isEnabled() for button in buttons)


def test_depth_table_fits_the_default_dock_width_without_sideways_scrolling(
    make_napari_viewer, qtbot, tiny_model
):
    viewer = make_napari_viewer(show=True)
    widget = add_dock(viewer)
    open_sample(viewer, widget, qtbot, "fibsem")
    widget.model_section.load_checkpoint(tiny_model)
    widget.model_section.device_combo.setCurrentText("cpu")
    worker = widget.depth_section.explore_depth()
    qtbot.waitUntil(lambda: worker not in widget.jobs.values(), timeout=WAIT_MS)
    table = widget.depth_section.blocks_table
    widget.depth_section.expand(animate=False)
    qtbot.waitUntil(table.isVisible, timeout=5000)
    # every column inside the visible width, every row inside the table's height, nothing behind a bar
    assert not table.horizontalScrollBar().isVisible()
    columns = sum(table.columnWidth(column) for column in range(table.columnCount()))
    assert columns <= table.viewport().width()
    rows = sum(table.rowHeight(row) for row in range(table.rowCount()))
    assert table.rowCount() >= 2 and rows <= table.viewport().height()
    # a cell's text wraps within its column instead of widening it
    for row in range(table.rowCount()):
        for column in range(table.columnCount()):
            item = table.item(row, column)
            needed = table.fontMetrics().boundingRect(
                0, 0, table.columnWidth(column), 10_000, int(Qt.TextWordWrap), item.text()
            )
            assert needed.height() <= table.rowHeight(row), (row, column, item.text())
