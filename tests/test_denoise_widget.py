"""The NRRN denoising dock, loaded through the manifest, against the engine called directly.

Tiny models (depth 1-2, width 4) on a 5 x 64 x 64 crop of the real gala FIB-SEM stack; every job runs in the
widget's thread worker and the test waits on the worker's ``finished`` signal.
"""

from __future__ import annotations

import errno
import sys
import threading

import dask.array as da
import numpy as np
import pytest
import tifffile
import torch
from napari.utils.notifications import NotificationSeverity, notification_manager

from napari_nrrn.engine.inference import denoise_slice, denoise_stack
from napari_nrrn.engine.train import SUPERVISIONS, TrainConfig
from napari_nrrn.measures.profiles import mean_line_iqr
from napari_nrrn.model.checkpoint import load_model, save_model
from napari_nrrn.model.nrrn import NRRN
from napari_nrrn.plugin._denoise_jobs import plain_message
from napari_nrrn.plugin.denoise_widget import NOISE_JOB, PREVIEW_JOB, STACK_JOB, TRAIN, DenoiseWidget

GALA = "fibsem_flyem_gala_train_50x100x200.tif"
SCALE = (10.0, 4.0, 4.0)
TRANSLATE = (30.0, 8.0, -12.0)
WAIT_MS = 60_000

pytestmark = pytest.mark.usefixtures("isolated_qsettings")


@pytest.fixture(scope="module")
def crop(shared_data) -> np.ndarray:
    return tifffile.imread(shared_data / GALA)[:5, :64, :64]


@pytest.fixture
def model_path(tmp_path):
    torch.manual_seed(0)
    return save_model(NRRN(depth=2, width=4), tmp_path / "tiny.pt")


def open_dock(viewer, qtbot, crop, model_path):
    """(widget, input layer): the dock on ``viewer`` with the tiny model loaded, the crop selected and its
    noise measured (that job ends first, so a test waits only on its own)."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "NRRN denoising")
    layer = viewer.add_image(crop, name="gala", scale=SCALE, translate=TRANSLATE)
    widget.data_section.layer_combo.setCurrentText("gala")
    assert widget.model_section.load_checkpoint(model_path) is not None
    widget.model_section.device_combo.setCurrentText("cpu")
    qtbot.waitUntil(lambda: NOISE_JOB not in widget.jobs, timeout=WAIT_MS)
    return widget, layer


@pytest.fixture
def dock(make_napari_viewer, qtbot, crop, model_path):
    """(viewer, widget, input layer), as ``open_dock`` leaves them."""
    viewer = make_napari_viewer()
    return (viewer, *open_dock(viewer, qtbot, crop, model_path))


def run(qtbot, widget, start, *args):
    """Start a job with ``start(*args)`` and wait until the widget has handled its end."""
    worker = start(*args)
    assert worker is not None, "the widget refused to start the job (see the notification)"
    qtbot.waitUntil(lambda: worker not in widget.jobs.values(), timeout=WAIT_MS)
    return worker


def start_and_wait_for_progress(qtbot, widget, start, *args):
    with qtbot.waitSignal(widget.job_progress, timeout=WAIT_MS):
        worker = start(*args)
        assert worker is not None, "the widget refused to start the job (see the notification)"
    return worker


def show_slice(viewer, layer, z):
    viewer.dims.set_point(0, layer.translate[0] + z * layer.scale[0])


def errors_since(count):
    return [n for n in notification_manager.records[count:] if n.severity == NotificationSeverity.ERROR]


def test_menu_entry_under_layers_filter_opens_the_widget(make_napari_viewer):
    from napari._app_model import get_app_model
    from npe2 import PluginManager

    viewer = make_napari_viewer()  # discovers the installed plugins
    manifest = PluginManager.instance().get_manifest("napari-nrrn")
    commands = [item.command for item in manifest.contributions.menus["napari/layers/filter"]]
    assert commands == ["napari-nrrn.denoise_widget"]

    app = get_app_model()
    menu = app.menus.get_menu("napari/layers/filter")
    menu_ids = [item.command.id for item in menu if hasattr(item, "command")]
    assert "napari-nrrn.denoise_widget" in menu_ids
    app.commands.execute_command("napari-nrrn.denoise_widget").result()
    assert any(isinstance(widget, DenoiseWidget) for widget in viewer.window.dock_widgets.values())


def test_data_section_opens_a_stack_lazily_and_warns_about_short_stacks(make_napari_viewer, shared_data):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "NRRN denoising")
    layer = widget.data_section.open_stack_path(shared_data / GALA)
    assert isinstance(layer.data, da.Array)
    assert widget.data_section.layer_combo.currentText() == layer.name
    assert "shape (50, 100, 200), uint8" in widget.data_section.data_info.text()
    assert f"{GALA}: 0.96 MiB on disk" in widget.data_section.data_info.text().replace("\u200b", "")
    assert widget.data_section.data_warning.text() == ""

    viewer.add_image(np.zeros((2, 8, 8), np.uint8), name="pair")
    widget.data_section.layer_combo.setCurrentText("pair")
    assert widget.data_section.data_warning.text().startswith("Only 2 slice(s): training needs at least 3")

    count = len(notification_manager.records)
    assert widget.data_section.open_stack_path(shared_data / "README.md") is None
    assert "README.md" in errors_since(count)[0].message


def test_data_section_warns_about_shared_noise_on_gala_only(make_napari_viewer, qtbot):
    from napari_nrrn.io.samples import SAMPLE_GALA_PATH, SAMPLE_STACK_PATH
    from napari_nrrn.io.stack import open_stack
    from napari_nrrn.measures.noise import estimate_noise

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "NRRN denoising")
    data = widget.data_section
    shown = {}
    for path in (SAMPLE_GALA_PATH, SAMPLE_STACK_PATH):
        data.open_stack_path(path)
        qtbot.waitUntil(lambda: NOISE_JOB not in widget.jobs, timeout=WAIT_MS)
        report = estimate_noise(open_stack(path))
        assert data.noise_info.text().lower() == "\n".join(report.describe()).lower()
        shown[path] = data.noise_warning.text()
    assert "Adjacent slices share noise (correlation 0.4" in shown[SAMPLE_GALA_PATH]
    assert "napari-nrrn will train on slices 3 apart" in shown[SAMPLE_GALA_PATH]
    assert shown[SAMPLE_STACK_PATH] == ""

    data.layer_combo.setCurrentIndex(0)  # back to gala: the kept report, no new measurement
    assert NOISE_JOB not in widget.jobs
    assert shown[SAMPLE_GALA_PATH] == data.noise_warning.text()


def test_layer_and_line_choices_follow_added_renamed_and_removed_layers(dock):
    viewer, widget, layer = dock
    images, lines = widget.data_section.layer_combo, widget.depth_section.lines_combo

    def items(combo):
        return [combo.itemText(i) for i in range(combo.count())]

    other = viewer.add_image(np.zeros((5, 8, 8), np.uint8), name="other")
    shapes = viewer.add_shapes(name="membranes", shape_type="line")
    assert items(images) == ["gala", "other"] and "membranes" in items(lines)
    other.name, shapes.name = "renamed", "resin 2"
    assert items(images) == ["gala", "renamed"] and "resin 2" in items(lines)
    assert "membranes" not in items(lines)
    viewer.layers.remove(other)
    viewer.layers.remove(shapes)
    assert items(images) == ["gala"] and "resin 2" not in items(lines)
    assert images.currentText() == "gala"


def test_an_open_section_makes_room_for_text_that_arrives_later(make_napari_viewer, qtbot):
    """superqt's QCollapsible caps the open height at the content's size hint, without the extra lines of
    word-wrapped labels: a noise report that arrived later was cut off."""
    viewer = make_napari_viewer(show=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "NRRN denoising")
    data = widget.data_section
    content = data.content()
    qtbot.waitUntil(lambda: content.width() > 100, timeout=5000)
    data.noise_info.setText(" ".join(["a sentence long enough to wrap over many lines in the dock"] * 12))

    def room_for_all_lines():
        return content.maximumHeight() >= content.layout().heightForWidth(content.width())

    qtbot.waitUntil(room_for_all_lines, timeout=5000)
    data.collapse()
    assert content.maximumHeight() == 0
    data.expand()
    assert room_for_all_lines()


def test_bad_checkpoint_gives_a_notification_and_keeps_the_model(dock, tmp_path):
    _, widget, _ = dock
    model = widget.model
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a model")
    count = len(notification_manager.records)
    assert widget.model_section.load_checkpoint(bad) is None
    [error] = errors_since(count)
    assert error.message.startswith("Could not load the model:") and "bad.pt" in error.message
    assert widget.model is model


def test_preview_equals_denoise_slice_and_sits_on_the_slice(dock, qtbot, crop, model_path):
    viewer, widget, layer = dock
    model = load_model(model_path)
    for z, (prev, next_) in {2: (1, 3), 0: (1, 1)}.items():
        show_slice(viewer, layer, z)
        run(qtbot, widget, widget.preview_section.preview)
        preview = viewer.layers["gala NRRN preview"]
        expected = denoise_slice(model, crop[prev], crop[z], crop[next_])
        np.testing.assert_array_equal(preview.data, expected[None])
        np.testing.assert_allclose(preview.scale, SCALE)
        np.testing.assert_allclose(preview.translate, (TRANSLATE[0] + z * SCALE[0], *TRANSLATE[1:]))
        assert widget.preview_section.preview_status.text().startswith(f"Slice {z} (64×64 px) denoised in ")


def preview_region(preview) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the input's slice that a preview layer covers, from its placement."""
    y0, x0 = np.rint((np.asarray(preview.translate[1:]) - TRANSLATE[1:]) / SCALE[1:]).astype(int)
    height, width = preview.data.shape[1:]
    return y0, y0 + height, x0, x0 + width


def centre_pixel(viewer, layer) -> tuple[int, int]:
    return tuple(int(v) for v in np.floor(layer.world_to_data(viewer.scene.camera.center)[1:]))


@pytest.mark.parametrize("tile", [0, 24])
def test_viewport_preview_is_that_crop_of_the_full_slice_and_follows_a_pan(
    make_napari_viewer, qtbot, crop, model_path, tile
):
    viewer = make_napari_viewer(show=True)  # a canvas with a size, so napari knows what is visible
    widget, layer = open_dock(viewer, qtbot, crop, model_path)
    widget.preview_section.tile_spin.setValue(tile)
    show_slice(viewer, layer, 2)
    full = denoise_slice(load_model(model_path), crop[1], crop[2], crop[3])
    viewer.scene.camera.zoom *= 4  # about a quarter of the slice on screen
    preview_section = widget.preview_section
    preview_section.auto_preview.setChecked(True)
    name = "gala NRRN preview"

    seen = []
    for centre in ((16.0, 16.0), (44.0, 40.0)):  # a pan to the other corner
        viewer.scene.camera.center = (
            viewer.scene.camera.center[0],
            *(np.asarray(centre) * SCALE[1:] + TRANSLATE[1:]),
        )

        def previewed_here() -> None:
            assert name in viewer.layers and PREVIEW_JOB not in widget.jobs
            y0, y1, x0, x1 = preview_region(viewer.layers[name])
            y, x = centre_pixel(viewer, layer)
            assert y0 <= y < y1 and x0 <= x < x1

        qtbot.waitUntil(previewed_here, timeout=WAIT_MS)
        preview = viewer.layers[name]
        y0, y1, x0, x1 = region = preview_region(preview)
        assert (y1 - y0) * (x1 - x0) < 64 * 64 / 2, "only what is on screen is denoised"
        np.testing.assert_array_equal(preview.data[0], full[y0:y1, x0:x1])
        np.testing.assert_allclose(preview.scale, SCALE)
        np.testing.assert_allclose(preview.translate[0], TRANSLATE[0] + 2 * SCALE[0])
        assert preview_section.preview_status.text().startswith(
            f"Slice 2, y {y0}:{y1}, x {x0}:{x1} ({y1 - y0}×{x1 - x0} px) denoised in "
        )
        seen.append(region)
    assert seen[0] != seen[1]

    preview_section.whole_slice.setChecked(True)
    run(qtbot, widget, preview_section.preview)
    np.testing.assert_array_equal(viewer.layers[name].data[0], full)
    np.testing.assert_allclose(viewer.layers[name].translate, (TRANSLATE[0] + 2 * SCALE[0], *TRANSLATE[1:]))


def test_a_pan_reuses_the_slice_statistics(dock, qtbot, monkeypatch):
    import napari_nrrn.engine.inference as inference

    viewer, widget, layer = dock
    computed = []
    real = inference.triplet_stats
    monkeypatch.setattr(inference, "triplet_stats", lambda *args: computed.append(args[1]) or real(*args))
    show_slice(viewer, layer, 2)
    for _ in range(2):
        run(qtbot, widget, widget.preview_section.preview)
    show_slice(viewer, layer, 3)
    run(qtbot, widget, widget.preview_section.preview)
    assert computed == [2, 3]


def table_column(widget, column: int) -> list[str]:
    table = widget.depth_section.blocks_table
    return [table.item(row, column).text() for row in range(table.rowCount())]


def test_depth_explorer_shows_every_depth_with_resin_iqr_and_cost(dock, qtbot, crop, model_path):
    viewer, widget, layer = dock
    line = np.array([[2.0, 5.0, 5.0], [2.0, 40.0, 50.0]])  # (z, y, x) data coordinates of the input
    viewer.add_shapes([line * SCALE + TRANSLATE], shape_type="line", name="resin lines")
    depth = widget.depth_section
    assert depth.lines_combo.currentText() == "resin lines"
    show_slice(viewer, layer, 2)
    run(qtbot, widget, depth.explore_depth)

    output, depths = denoise_slice(load_model(model_path), crop[1], crop[2], crop[3], blocks=True)
    shown = viewer.layers["gala NRRN blocks"]
    assert depth.shown_depth.value() == 2 and depth.shown_depth.minimum() == 1
    for k, image in reversed(list(enumerate(depths, start=1))):
        depth.shown_depth.setValue(k)
        assert shown.data.shape == (1, 64, 64)
        np.testing.assert_array_equal(shown.data[0], image)
    np.testing.assert_allclose(shown.translate, (TRANSLATE[0] + 2 * SCALE[0], *TRANSLATE[1:]))
    assert viewer.dims.ndim == 3, "the blocks add no slider to the viewer"
    np.testing.assert_array_equal(viewer.layers["gala NRRN preview"].data[0], output)

    assert table_column(widget, 0) == ["input", "depth 1", "depth 2 (full)"]
    expected = [mean_line_iqr(image, [line[:, 1:]]) for image in (crop[2], *depths)]
    assert table_column(widget, 1) == [f"{score:.2f}" for score in expected]
    assert table_column(widget, 2) == ["", "–", "–"]  # a model file without a per-depth record
    costs = table_column(widget, 3)[1:]
    assert all(float(cost) > 0 for cost in costs)
    assert f"({costs[-1]} ms per megapixel measured here)" in depth.depth_cost.text()


def test_depth_explorer_shows_recorded_losses_and_recommends_a_depth(make_napari_viewer, qtbot, tmp_path):
    from napari_nrrn.engine.depth import recommend_depth

    torch.manual_seed(0)
    losses = [0.31, 0.2030, 0.2010, 0.2000]  # depth 2 is within 2% of the best, depth 4
    training = {"step": 10, "val_loss_by_depth": losses}
    path = save_model(NRRN(depth=4, width=4, every_depth=True), tmp_path / "every.pt", {"training": training})
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "NRRN denoising")
    widget.model_section.load_checkpoint(path)
    depth = widget.depth_section

    assert table_column(widget, 2) == ["", "0.31", "0.203", "0.201", "0.2"]
    k, reason = recommend_depth(losses)
    assert k == 2
    assert depth.recommendation.text() == f"Recommended: depth 2: {reason}"
    depth.use_recommended.click()
    assert depth.depth_spin.value() == 2
    assert widget.model_for_run().depth == 2
    assert "A cut of this model" not in depth.depth_cost.text()


def test_depth_explorer_says_what_a_cut_of_an_old_style_model_gives(dock, qtbot, crop, model_path):
    viewer, widget, layer = dock  # the tiny model: final output only, no per-depth record
    depth = widget.depth_section
    assert depth.recommendation.text().startswith("This model was trained on its final output only")
    assert depth.use_recommended.isHidden()
    depth.depth_spin.setValue(1)
    assert "A cut of this model returns block 1's estimate without the tail: a poor denoiser" in (
        depth.depth_cost.text()
    )
    run(qtbot, widget, depth.explore_depth)  # nothing to recommend, nothing crashes
    assert table_column(widget, 2) == ["", "–", "–"]
    assert table_column(widget, 1) == ["draw resin lines"] * 3


def test_use_depth_cuts_the_model_for_the_preview(dock, qtbot, crop, model_path):
    viewer, widget, layer = dock
    widget.depth_section.depth_spin.setValue(1)
    assert "1/2 of the block work" in widget.depth_section.depth_cost.text()
    show_slice(viewer, layer, 2)
    run(qtbot, widget, widget.preview_section.preview)
    expected = denoise_slice(load_model(model_path).cut(1), crop[1], crop[2], crop[3])
    np.testing.assert_array_equal(viewer.layers["gala NRRN preview"].data[0], expected)


def test_full_stack_run_writes_what_denoise_stack_computes(dock, qtbot, crop, model_path, tmp_path):
    viewer, widget, _ = dock
    out = tmp_path / "denoised.tif"
    run(qtbot, widget, widget.stack_section.denoise_to_file, out)
    expected = denoise_stack(load_model(model_path), crop).compute()
    np.testing.assert_array_equal(tifffile.imread(out), expected)
    result = viewer.layers["gala NRRN denoised"]
    assert isinstance(result.data, da.Array)
    np.testing.assert_array_equal(np.asarray(result.data), expected)
    np.testing.assert_allclose(result.scale, SCALE)
    np.testing.assert_allclose(result.translate, TRANSLATE)
    assert widget.stack_section.stack_status.text().startswith(f"Saved {out}")


def test_cancelled_full_stack_run_leaves_no_file(dock, qtbot, crop, tmp_path):
    """Slices from 4 on wait for a gate, so the cancel surely lands while the output is half written (the
    cost estimate before the run reads the middle slices, 1 to 3)."""
    viewer, widget, layer = dock
    armed, gate = threading.Event(), threading.Event()

    def read(block, block_info=None):
        if armed.is_set() and block_info[None]["chunk-location"][0] >= 4:
            assert gate.wait(30), "the test never opened the gate"
        return block

    gated = da.from_array(crop, chunks=(1, 64, 64)).map_blocks(read, dtype=crop.dtype)
    show_slice(viewer, layer, 0)  # the viewer itself reads only ungated slices
    viewer.add_image(gated, name="gated", contrast_limits=(0, 255), scale=SCALE, translate=TRANSLATE)
    widget.data_section.layer_combo.setCurrentText("gated")
    # As in open_dock, the new layer's noise measurement ends first, read ungated: through the gate it would
    # hold dask's threads there, and its end could pass for the stack job's.
    qtbot.waitUntil(lambda: NOISE_JOB not in widget.jobs, timeout=WAIT_MS)
    armed.set()
    out = tmp_path / "cancelled.tif"
    start_and_wait_for_progress(qtbot, widget, widget.stack_section.denoise_to_file, out)
    assert STACK_JOB in widget.jobs and not widget.stack_section.stack_button.isEnabled()
    # the writer has a partial file open (after the estimate, the first event)
    qtbot.waitUntil(lambda: any(tmp_path.glob("cancelled.tif.partial*")), timeout=WAIT_MS)
    with qtbot.waitSignal(widget.job_finished, timeout=WAIT_MS):
        widget.jobs[STACK_JOB].pbar.cancel()  # what the Cancel button of napari's activity dock calls
        gate.set()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt"]
    assert widget.stack_section.stack_status.text() == "Cancelled: cancelled.tif was not written."
    assert "gated NRRN denoised" not in viewer.layers
    assert widget.stack_section.stack_button.isEnabled()


def test_cancel_stops_a_full_stack_run_within_one_tile(dock, qtbot, tmp_path, monkeypatch):
    """The stop is asked for in the middle of slice 0 (16 tiles of 16 px): no tile is started after it."""
    import napari_nrrn.engine.inference as inference

    _, widget, _ = dock
    widget.preview_section.tile_spin.setValue(16)
    answers = []
    denoise_stack_of_engine = inference.denoise_stack

    def denoise_stack_watching_the_stop(*args, should_stop, **kwargs):
        def asked() -> bool:
            if len(answers) == 2:
                widget.jobs[STACK_JOB].quit()  # the dock's Cancel, from the worker thread: between tiles
            answers.append(should_stop())
            return answers[-1]

        return denoise_stack_of_engine(*args, should_stop=asked, **kwargs)

    monkeypatch.setattr(inference, "denoise_stack", denoise_stack_watching_the_stop)
    run(qtbot, widget, widget.stack_section.denoise_to_file, tmp_path / "cancelled.tif")
    assert answers == [False, False, True]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt"]
    assert widget.stack_section.stack_status.text() == "Cancelled: cancelled.tif was not written."
    assert "Stop the run: it stops within one tile" in widget.stack_section.cancel_stack_button.toolTip()


def test_a_full_disk_gives_a_plain_notification_and_leaves_no_file(dock, qtbot, tmp_path, monkeypatch):
    written = []

    def write_until_the_disk_is_full(self, plane, **options):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(plane)

    monkeypatch.setattr(tifffile.TiffWriter, "write", write_until_the_disk_is_full)
    _, widget, _ = dock
    out = tmp_path / "full.tif"
    count = len(notification_manager.records)
    run(qtbot, widget, widget.stack_section.denoise_to_file, out)
    [error] = errors_since(count)
    assert error.message == (
        f"The disk is full ({out}) while denoising gala to {out}: free some space or write to another folder."
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt"]
    assert widget.stack_section.stack_status.text() == (
        f"Stopped by an error: full.tif was not written.\n{error.message}"
    )
    assert "gala NRRN denoised" not in widget.viewer.layers


def test_export_for_bioimageio_writes_the_chosen_depth(dock, qtbot, model_path, tmp_path):
    _, widget, _ = dock
    widget.depth_section.depth_spin.setValue(1)
    widget.model_section.author_edit.setText("A. Tester")
    out = tmp_path / "tiny.zip"
    count = len(notification_manager.records)
    run(qtbot, widget, widget.model_section.export_for_bioimageio, out)
    assert errors_since(count) == []
    exported = load_model(out)
    expected = load_model(model_path).cut(1)
    assert exported.depth == 1
    for name, tensor in expected.state_dict().items():
        torch.testing.assert_close(exported.state_dict()[name], tensor, rtol=0, atol=0)


def test_export_without_the_bioimageio_extra_says_what_to_install(dock, qtbot, tmp_path, monkeypatch):
    _, widget, _ = dock
    widget.model_section.author_edit.setText("A. Tester")
    for module in ("bioimageio.spec", "bioimageio.spec.model"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    count = len(notification_manager.records)
    run(qtbot, widget, widget.model_section.export_for_bioimageio, tmp_path / "tiny.zip")
    [error] = errors_since(count)
    assert 'pip install "napari-nrrn[bioimageio]"' in error.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt"]


def set_up_training(widget, tmp_path, steps):
    # z-distance 1: the 5-slice crop is too short for the distance its correlated noise asks for
    form = dict(
        depth=1,
        width=4,
        patch=32,
        batch=2,
        steps=steps,
        validation_every=2,
        validation_patches=2,
        z_distance=1,
    )
    for name, value in form.items():
        widget.training_section.train_form.set_value(name, value)
    widget.training_section.checkpoint_edit.setText(str(tmp_path / "trained.pt"))


def test_training_from_the_widget_gives_a_model_that_loads(dock, qtbot, tmp_path):
    _, widget, _ = dock
    set_up_training(widget, tmp_path, steps=4)
    with qtbot.waitSignal(widget.job_finished, timeout=WAIT_MS):
        assert widget.training_section.start_training() is not None
        assert (
            not widget.training_section.train_button.isEnabled()
            and not widget.preview_section.preview_button.isEnabled()
        )
    saved = load_model(tmp_path / "trained.pt")
    assert (saved.depth, saved.width) == (widget.model.depth, widget.model.width) == (1, 4)
    for name, tensor in saved.state_dict().items():
        torch.testing.assert_close(tensor, widget.model.state_dict()[name].cpu(), rtol=0, atol=0)
    assert widget.training_section.loss_plot.steps == [1, 2, 3, 4]
    assert widget.model_section.save_model(tmp_path / "kept.pt") == tmp_path / "kept.pt"
    kept = load_model(tmp_path / "kept.pt")
    for name, tensor in kept.state_dict().items():
        torch.testing.assert_close(tensor, saved.state_dict()[name], rtol=0, atol=0)
    assert kept.metadata["training"]["step"] == 4
    assert widget.training_section.train_status.text().startswith(
        "Finished at step 4, started from random weights (the shipped models, depth 4, width 32 and depth 4, "
        "width 16, do not fit)"
    )
    assert (
        widget.training_section.train_button.isEnabled() and widget.preview_section.preview_button.isEnabled()
    )


def test_cancelled_training_keeps_a_usable_checkpoint(dock, qtbot, tmp_path):
    _, widget, _ = dock
    set_up_training(widget, tmp_path, steps=1_000_000)
    start_and_wait_for_progress(qtbot, widget, widget.training_section.start_training)
    with qtbot.waitSignal(widget.job_finished, timeout=WAIT_MS):
        widget.training_section.cancel_train_button.click()
    saved = load_model(tmp_path / "trained.pt")
    step = saved.metadata["training"]["step"]
    assert 1 <= step < 1_000_000
    assert widget.training_section.train_status.text().startswith(f"Cancelled at step {step}")
    for name, tensor in saved.state_dict().items():
        torch.testing.assert_close(tensor, widget.model.state_dict()[name].cpu(), rtol=0, atol=0)


def test_train_form_defaults_come_from_train_config(dock):
    _, widget, _ = dock
    form = widget.training_section.train_form
    assert form.config(device="cpu") == TrainConfig(device="cpu")
    z_distance, supervision = form.inputs["z_distance"], form.inputs["supervision"]
    assert [z_distance.itemText(i) for i in range(z_distance.count())] == ["auto", "1", "2", "3"]
    assert z_distance.currentText() == "auto"
    assert [supervision.itemText(i) for i in range(supervision.count())] == list(SUPERVISIONS)
    form.set_value("z_distance", 2)
    form.set_value("supervision", "final")
    assert form.config(device="cpu") == TrainConfig(device="cpu", z_distance=2, supervision="final")
    form.set_value("z_distance", None)
    assert form.config(device="cpu").z_distance is None
    assert form.inputs["start_from"].text() == "shipped"
    form.set_value("start_from", "random")
    assert form.config(device="cpu").start_from == "random"
    form.set_value("start_from", "no such model.pt")
    with pytest.raises(ValueError, match="no such model file"):
        form.config(device="cpu")


def test_auto_preview_follows_the_slice(dock, qtbot, crop, model_path):
    viewer, widget, layer = dock
    widget.preview_section.auto_preview.setChecked(True)
    with qtbot.waitSignal(widget.job_finished, timeout=WAIT_MS):
        show_slice(viewer, layer, 3)
    preview = viewer.layers["gala NRRN preview"]
    np.testing.assert_allclose(preview.translate[0], TRANSLATE[0] + 3 * SCALE[0])
    expected = denoise_slice(load_model(model_path), crop[2], crop[3], crop[4])
    np.testing.assert_array_equal(preview.data[0], expected)


def test_errors_read_as_plain_messages():
    full = OSError(errno.ENOSPC, "No space left on device", "/data/out.tif")
    assert plain_message(full, "denoising gala") == (
        "The disk is full (/data/out.tif) while denoising gala: free some space or write to another folder."
    )
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert plain_message(oom, "training on gala").startswith(
        "The GPU ran out of memory while training on gala."
    )
    assert plain_message(ValueError("tile 8 is smaller than the halo"), "previewing") == (
        "Error while previewing: tile 8 is smaller than the halo"
    )


def test_closing_the_viewer_stops_training_with_a_checkpoint(dock, qtbot, tmp_path):
    viewer, widget, _ = dock
    set_up_training(widget, tmp_path, steps=1_000_000)
    start_and_wait_for_progress(qtbot, widget, widget.training_section.start_training)
    worker = widget.jobs[TRAIN]
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        viewer.close()
    assert load_model(tmp_path / "trained.pt").metadata["training"]["step"] < 1_000_000
