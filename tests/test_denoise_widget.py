"""The NRRN denoising dock, loaded through the manifest, against the engine called directly.

Tiny models (depth 1-2, width 4) on a 5 x 64 x 64 crop of the real gala FIB-SEM stack; every job runs in the
widget's thread worker and the test waits on the worker's ``finished`` signal.
"""

from __future__ import annotations

import errno
import threading

import dask.array as da
import numpy as np
import pytest
import tifffile
import torch
from napari.utils.notifications import NotificationSeverity, notification_manager

from napari_nrrn.engine.inference import denoise_slice, denoise_stack
from napari_nrrn.engine.train import TrainConfig
from napari_nrrn.measures.profiles import mean_line_iqr
from napari_nrrn.model.checkpoint import load_model, save_model
from napari_nrrn.model.nrrn import NRRN
from napari_nrrn.plugin._denoise_jobs import plain_message
from napari_nrrn.plugin.denoise_widget import STACK_JOB, TRAIN, DenoiseWidget

GALA = "fibsem_flyem_gala_train_50x100x200.tif"
SCALE = (10.0, 4.0, 4.0)
TRANSLATE = (30.0, 8.0, -12.0)
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def crop(shared_data) -> np.ndarray:
    return tifffile.imread(shared_data / GALA)[:5, :64, :64]


@pytest.fixture
def model_path(tmp_path):
    torch.manual_seed(0)
    return save_model(NRRN(depth=2, width=4), tmp_path / "tiny.pt")


@pytest.fixture
def dock(make_napari_viewer, crop, model_path):
    """(viewer, widget, input layer) with the tiny model loaded and the crop selected."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "NRRN denoising")
    layer = viewer.add_image(crop, name="gala", scale=SCALE, translate=TRANSLATE)
    widget.layer_combo.setCurrentText("gala")
    assert widget.load_checkpoint(model_path) is not None
    widget.device_combo.setCurrentText("cpu")
    return viewer, widget, layer


def run(qtbot, widget, start, *args):
    """Start a job with ``start(*args)`` and wait until the widget has handled its end."""
    with qtbot.waitSignal(widget.job_finished, timeout=WAIT_MS):
        worker = start(*args)
        assert worker is not None, "the widget refused to start the job (see the notification)"
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
    layer = widget.open_stack_path(shared_data / GALA)
    assert isinstance(layer.data, da.Array)
    assert widget.layer_combo.currentText() == layer.name
    assert "shape (50, 100, 200), uint8" in widget.data_info.text()
    assert f"{GALA}: 0.96 MiB on disk" in widget.data_info.text()
    assert widget.data_warning.text() == ""

    viewer.add_image(np.zeros((2, 8, 8), np.uint8), name="pair")
    widget.layer_combo.setCurrentText("pair")
    assert widget.data_warning.text().startswith("Only 2 slice(s): training needs at least 3")

    count = len(notification_manager.records)
    assert widget.open_stack_path(shared_data / "README.md") is None
    assert "README.md" in errors_since(count)[0].message


def test_bad_checkpoint_gives_a_notification_and_keeps_the_model(dock, tmp_path):
    _, widget, _ = dock
    model = widget.model
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a model")
    count = len(notification_manager.records)
    assert widget.load_checkpoint(bad) is None
    [error] = errors_since(count)
    assert error.message.startswith("Could not load the model:") and "bad.pt" in error.message
    assert widget.model is model


def test_preview_equals_denoise_slice_and_sits_on_the_slice(dock, qtbot, crop, model_path):
    viewer, widget, layer = dock
    model = load_model(model_path)
    for z, (prev, next_) in {2: (1, 3), 0: (1, 1)}.items():
        show_slice(viewer, layer, z)
        run(qtbot, widget, widget.preview)
        preview = viewer.layers["gala NRRN preview"]
        expected = denoise_slice(model, crop[prev], crop[z], crop[next_])
        np.testing.assert_array_equal(preview.data, expected[None])
        np.testing.assert_allclose(preview.scale, SCALE)
        np.testing.assert_allclose(preview.translate, (TRANSLATE[0] + z * SCALE[0], *TRANSLATE[1:]))
        assert widget.preview_status.text().startswith(f"Slice {z} denoised in ")


def test_depth_explorer_shows_every_block_and_resin_iqr(dock, qtbot, crop, model_path):
    viewer, widget, layer = dock
    line = np.array([[2.0, 5.0, 5.0], [2.0, 40.0, 50.0]])  # (z, y, x) data coordinates of the input
    viewer.add_shapes([line * SCALE + TRANSLATE], shape_type="line", name="resin lines")
    assert widget.lines_combo.currentText() == "resin lines"
    show_slice(viewer, layer, 2)
    run(qtbot, widget, widget.explore_depth)

    output, blocks = denoise_slice(load_model(model_path), crop[1], crop[2], crop[3], blocks=True)
    shown = viewer.layers["gala NRRN blocks"]
    assert shown.data.shape == (2, 1, 64, 64)
    np.testing.assert_array_equal(shown.data[-1, 0], blocks[-1])
    np.testing.assert_allclose(shown.translate, (0, TRANSLATE[0] + 2 * SCALE[0], *TRANSLATE[1:]))
    np.testing.assert_array_equal(viewer.layers["gala NRRN preview"].data[0], output)

    expected = [mean_line_iqr(image, [line[:, 1:]]) for image in (crop[2], *blocks, output)]
    table = [widget.blocks_table.item(row, 1).text() for row in range(widget.blocks_table.rowCount())]
    assert table == [f"{score:.2f}" for score in expected]


def test_use_depth_cuts_the_model_for_the_preview(dock, qtbot, crop, model_path):
    viewer, widget, layer = dock
    widget.depth_spin.setValue(1)
    assert "1/2 of the block work" in widget.depth_cost.text()
    show_slice(viewer, layer, 2)
    run(qtbot, widget, widget.preview)
    expected = denoise_slice(load_model(model_path).cut(1), crop[1], crop[2], crop[3])
    np.testing.assert_array_equal(viewer.layers["gala NRRN preview"].data[0], expected)


def test_full_stack_run_writes_what_denoise_stack_computes(dock, qtbot, crop, model_path, tmp_path):
    viewer, widget, _ = dock
    out = tmp_path / "denoised.tif"
    run(qtbot, widget, widget.denoise_to_file, out)
    expected = denoise_stack(load_model(model_path), crop).compute()
    np.testing.assert_array_equal(tifffile.imread(out), expected)
    result = viewer.layers["gala NRRN denoised"]
    assert isinstance(result.data, da.Array)
    np.testing.assert_array_equal(np.asarray(result.data), expected)
    np.testing.assert_allclose(result.scale, SCALE)
    np.testing.assert_allclose(result.translate, TRANSLATE)
    assert widget.stack_status.text().startswith(f"Saved {out}")


def test_cancelled_full_stack_run_leaves_no_file(dock, qtbot, crop, tmp_path):
    """Slices from 3 on wait for a gate, so the cancel surely lands while the output is half written."""
    viewer, widget, layer = dock
    gate = threading.Event()

    def read(block, block_info=None):
        if block_info[None]["chunk-location"][0] >= 3:
            assert gate.wait(30), "the test never opened the gate"
        return block

    gated = da.from_array(crop, chunks=(1, 64, 64)).map_blocks(read, dtype=crop.dtype)
    show_slice(viewer, layer, 0)  # the viewer itself reads only ungated slices
    viewer.add_image(gated, name="gated", contrast_limits=(0, 255), scale=SCALE, translate=TRANSLATE)
    widget.layer_combo.setCurrentText("gated")
    out = tmp_path / "cancelled.tif"
    start_and_wait_for_progress(qtbot, widget, widget.denoise_to_file, out)
    assert STACK_JOB in widget.jobs and not widget.stack_button.isEnabled()
    assert [p.name for p in tmp_path.glob("cancelled.tif.partial*")], "the writer has a partial file open"
    with qtbot.waitSignal(widget.job_finished, timeout=WAIT_MS):
        widget.jobs[STACK_JOB].pbar.cancel()  # what the Cancel button of napari's activity dock calls
        gate.set()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt"]
    assert widget.stack_status.text() == "Cancelled: cancelled.tif was not written."
    assert "gated NRRN denoised" not in viewer.layers
    assert widget.stack_button.isEnabled()


def set_up_training(widget, tmp_path, steps):
    form = dict(depth=1, width=4, patch=32, batch=2, steps=steps, validation_every=2, validation_patches=2)
    for name, value in form.items():
        widget.train_form.set_value(name, value)
    widget.checkpoint_edit.setText(str(tmp_path / "trained.pt"))


def test_training_from_the_widget_gives_a_model_that_loads(dock, qtbot, tmp_path):
    _, widget, _ = dock
    set_up_training(widget, tmp_path, steps=4)
    with qtbot.waitSignal(widget.job_finished, timeout=WAIT_MS):
        assert widget.start_training() is not None
        assert not widget.train_button.isEnabled() and not widget.preview_button.isEnabled()
    saved = load_model(tmp_path / "trained.pt")
    assert (saved.depth, saved.width) == (widget.model.depth, widget.model.width) == (1, 4)
    for name, tensor in saved.state_dict().items():
        torch.testing.assert_close(tensor, widget.model.state_dict()[name].cpu(), rtol=0, atol=0)
    assert widget.loss_plot.steps == [1, 2, 3, 4]
    assert widget.save_model(tmp_path / "kept.pt") == tmp_path / "kept.pt"
    kept = load_model(tmp_path / "kept.pt")
    for name, tensor in kept.state_dict().items():
        torch.testing.assert_close(tensor, saved.state_dict()[name], rtol=0, atol=0)
    assert kept.metadata["training"]["step"] == 4
    assert widget.train_status.text().startswith("Finished at step 4")
    assert widget.train_button.isEnabled() and widget.preview_button.isEnabled()


def test_cancelled_training_keeps_a_usable_checkpoint(dock, qtbot, tmp_path):
    _, widget, _ = dock
    set_up_training(widget, tmp_path, steps=1_000_000)
    start_and_wait_for_progress(qtbot, widget, widget.start_training)
    with qtbot.waitSignal(widget.job_finished, timeout=WAIT_MS):
        widget.cancel_train_button.click()
    saved = load_model(tmp_path / "trained.pt")
    step = saved.metadata["training"]["step"]
    assert 1 <= step < 1_000_000
    assert widget.train_status.text().startswith(f"Cancelled at step {step}")
    for name, tensor in saved.state_dict().items():
        torch.testing.assert_close(tensor, widget.model.state_dict()[name].cpu(), rtol=0, atol=0)


def test_train_form_defaults_come_from_train_config(dock):
    _, widget, _ = dock
    config = widget.train_form.config(device="cpu")
    assert config == TrainConfig(device="cpu")


def test_auto_preview_follows_the_slice(dock, qtbot, crop, model_path):
    viewer, widget, layer = dock
    widget.auto_preview.setChecked(True)
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
    start_and_wait_for_progress(qtbot, widget, widget.start_training)
    worker = widget.jobs[TRAIN]
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        viewer.close()
    assert load_model(tmp_path / "trained.pt").metadata["training"]["step"] < 1_000_000
