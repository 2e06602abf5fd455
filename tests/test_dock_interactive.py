"""The dock at real size, on a small crop: the preview paints tile by tile, centre first, says how many tiles
are left and serves returns from the tile cache; the slices above and below are prefetched when the view
rests, and any interaction cancels that; a stack run states its cost before it starts."""

from __future__ import annotations

import re
import threading

import dask.array as da
import numpy as np
import pytest
import tifffile
import torch

from napari_nrrn.engine.inference import denoise_slice
from napari_nrrn.model.checkpoint import load_model, save_model
from napari_nrrn.model.nrrn import NRRN
from napari_nrrn.plugin._preview_section import PREFETCH_JOB
from napari_nrrn.plugin.denoise_widget import NOISE_JOB, PREVIEW_JOB, STACK_JOB

WAIT_MS = 60_000


@pytest.fixture(scope="module")
def crop(shared_data) -> np.ndarray:
    return tifffile.imread(shared_data / "fibsem_flyem_gala_train_50x100x200.tif")[:5, :64, :64]


@pytest.fixture
def model_path(tmp_path):
    torch.manual_seed(0)
    return save_model(NRRN(depth=2, width=4), tmp_path / "tiny.pt")


def open_dock(viewer, qtbot, data, model_path):
    """The dock with the tiny model, ``data`` as the selected layer, its noise measured (that job first)."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "NRRN denoising")
    layer = viewer.add_image(data, name="gala", contrast_limits=(0, 255))
    widget.data_section.layer_combo.setCurrentText("gala")
    assert widget.model_section.load_checkpoint(model_path) is not None
    widget.model_section.device_combo.setCurrentText("cpu")
    qtbot.waitUntil(lambda: NOISE_JOB not in widget.jobs, timeout=WAIT_MS)
    return widget, layer


def events_of(widget, kind: str) -> list:
    seen = []
    widget.job_progress.connect(lambda job, event: seen.append(event) if job == kind else None)
    return seen


def run(qtbot, widget, start, *args):
    worker = start(*args)
    assert worker is not None, "the widget refused to start the job (see the notification)"
    qtbot.waitUntil(lambda: worker not in widget.jobs.values(), timeout=WAIT_MS)
    return worker


def test_the_preview_paints_tiles_centre_first_and_says_how_many_are_left(
    make_napari_viewer, qtbot, crop, model_path
):
    viewer = make_napari_viewer()
    widget, layer = open_dock(viewer, qtbot, crop, model_path)
    section = widget.preview_section
    section.tile_spin.setValue(16)  # 16 tiles of 16 x 16
    section.whole_slice.setChecked(True)
    viewer.dims.set_point(0, 2)
    events, statuses, first_layer = events_of(widget, PREVIEW_JOB), [], []

    def look(job, event) -> None:
        if job == PREVIEW_JOB:
            statuses.append(section.preview_status.text())
            if not first_layer:
                first_layer.append(np.array(viewer.layers["gala NRRN preview"].data[0]))

    widget.job_progress.connect(look)
    run(qtbot, widget, section.preview)
    expected = denoise_slice(load_model(model_path), crop[1], crop[2], crop[3])
    assert len(events) == 16
    y0, y1, x0, x1 = events[0].bounds
    assert y0 <= 32 <= y1 and x0 <= 32 <= x1  # the middle of the view first
    assert statuses[0] == "Denoising slice 2: 15 tiles left…"
    assert statuses[-1] == "Denoising slice 2: 0 tiles left…"
    # after one tile the layer shows that tile denoised and the raw slice around it
    painted = crop[2].copy()
    painted[y0:y1, x0:x1] = expected[y0:y1, x0:x1]
    np.testing.assert_array_equal(first_layer[0], painted)
    np.testing.assert_array_equal(viewer.layers["gala NRRN preview"].data[0], expected)
    assert section.preview_status.text().startswith("Slice 2 (64×64 px) denoised in ")

    # a second preview of the same slice comes from the tile cache, every tile of it
    events.clear()
    run(qtbot, widget, section.preview)
    assert len(events) == 16 and all(event.cached for event in events)
    np.testing.assert_array_equal(viewer.layers["gala NRRN preview"].data[0], expected)
    # new layer data is another key: nothing is served from the old
    layer.data = crop[:, ::-1].copy()
    events.clear()
    run(qtbot, widget, section.preview)
    assert not any(event.cached for event in events)
    flipped = crop[:, ::-1]
    np.testing.assert_array_equal(
        viewer.layers["gala NRRN preview"].data[0],
        denoise_slice(load_model(model_path), flipped[1], flipped[2], flipped[3]),
    )


def test_a_cache_of_zero_keeps_nothing_and_previews_the_same(make_napari_viewer, qtbot, crop, model_path):
    viewer = make_napari_viewer()
    widget, _ = open_dock(viewer, qtbot, crop, model_path)
    section = widget.preview_section
    section.cache_spin.setValue(0)
    section.whole_slice.setChecked(True)
    viewer.dims.set_point(0, 0)
    events = events_of(widget, PREVIEW_JOB)
    for _ in range(2):
        run(qtbot, widget, section.preview)
    assert events and not any(event.cached for event in events)
    expected = denoise_slice(load_model(model_path), crop[1], crop[0], crop[1])
    np.testing.assert_array_equal(viewer.layers["gala NRRN preview"].data[0], expected)


def test_the_slices_around_are_prefetched_and_any_interaction_cancels_that(
    make_napari_viewer, qtbot, crop, model_path
):
    viewer = make_napari_viewer()
    armed, gate = threading.Event(), threading.Event()

    def read(block, block_info=None):
        if armed.is_set() and block_info[None]["chunk-location"][0] == 3:
            assert gate.wait(30), "the test never opened the gate"
        return block

    gated = da.from_array(crop, chunks=(1, 64, 64)).map_blocks(read, dtype=crop.dtype)
    widget, _ = open_dock(viewer, qtbot, gated, model_path)
    section = widget.preview_section
    section.whole_slice.setChecked(True)
    section.auto_preview.setChecked(True)
    armed.set()  # the prefetch of slice 2 reads slice 3 and waits there
    prefetched = events_of(widget, PREFETCH_JOB)
    preview_ended = {"check_params_cb": lambda kind: kind == PREVIEW_JOB, "timeout": WAIT_MS}
    with qtbot.waitSignal(widget.job_finished, **preview_ended):
        viewer.dims.set_point(0, 1)  # the viewer opened on slice 2
    qtbot.waitUntil(lambda: PREFETCH_JOB in widget.jobs, timeout=WAIT_MS)
    prefetch = widget.jobs[PREFETCH_JOB]
    viewer.camera.zoom *= 1.5  # any interaction
    assert prefetch.cancelled
    gate.set()
    qtbot.waitUntil(lambda: PREFETCH_JOB not in widget.jobs, timeout=WAIT_MS)
    assert len(prefetched) <= 1  # the tile in flight when it was cancelled, no more

    # unhindered, the prefetch fills the cache: the next slice is then served from it, every tile
    armed.clear()
    qtbot.waitUntil(lambda: PREVIEW_JOB not in widget.jobs, timeout=WAIT_MS)
    prefetch_ended = {"check_params_cb": lambda kind: kind == PREFETCH_JOB, "timeout": WAIT_MS}
    with qtbot.waitSignal(widget.job_finished, **prefetch_ended):  # it starts as the preview ends
        run(qtbot, widget, section.preview)
    assert not widget.jobs
    section.auto_preview.setChecked(False)
    events = events_of(widget, PREVIEW_JOB)
    viewer.dims.set_point(0, 2)
    run(qtbot, widget, section.preview)
    assert events and all(event.cached for event in events)
    expected = denoise_slice(load_model(model_path), crop[1], crop[2], crop[3])
    np.testing.assert_array_equal(viewer.layers["gala NRRN preview"].data[0], expected)


def test_a_view_showing_none_of_the_image_starts_nothing(make_napari_viewer, qtbot, crop, model_path):
    """In world coordinates: the layer is scaled and moved, its pixels 64 x 4 nm from (8, -12) nm."""
    from napari_nrrn.plugin._preview_section import view_outside

    viewer = make_napari_viewer()
    widget, layer = open_dock(viewer, qtbot, crop, model_path)
    layer.scale, layer.translate = (10.0, 4.0, 4.0), (30.0, 8.0, -12.0)
    viewer.camera.zoom = 10.0  # 1 nm of the world is 10 screen pixels: a few dozen nm on screen
    viewer.camera.center = (0, 8 + 32 * 4, -12 + 32 * 4)  # the middle of the slice
    assert not view_outside(viewer, layer)
    viewer.camera.center = (0, 8 + 32 * 4, -12 - 100)  # left of it, by more than half the view
    assert view_outside(viewer, layer)
    viewer.camera.center = (0, 8 + 64 * 4 + 100, -12 + 32 * 4)  # below it
    assert view_outside(viewer, layer)
    viewer.camera.center = (0, 10_000, 10_000)
    assert widget.preview_section.preview() is None
    assert PREVIEW_JOB not in widget.jobs
    assert widget.preview_section.preview_status.text() == (
        "No part of gala is on screen: pan or zoom to it to preview it."
    )


def test_the_stack_section_states_the_cost_before_the_run(
    make_napari_viewer, qtbot, crop, model_path, tmp_path
):
    viewer = make_napari_viewer()
    widget, _ = open_dock(viewer, qtbot, crop, model_path)
    shown = []
    widget.job_progress.connect(
        lambda job, event: shown.append((event.stage, widget.stack_section.stack_status.text()))
        if job == STACK_JOB
        else None
    )
    run(qtbot, widget, widget.stack_section.denoise_to_file, tmp_path / "out.tif")
    stage, status = shown[0]
    assert stage == "estimate"
    estimate = r"5 slices of 0\.0041 MP: about \d+ s at depth 2, \d+ s at depth 1 on this CPU"
    assert re.fullmatch(estimate + r"\. Denoising gala to .*out\.tif…", status)
    assert [stage for stage, _ in shown[1:]] == ["write"] * 5
    assert widget.stack_section.stack_status.text().startswith(f"Saved {tmp_path / 'out.tif'}")


def test_a_pan_during_a_preview_drops_the_tiles_that_left_the_view(
    make_napari_viewer, qtbot, crop, model_path, monkeypatch
):
    """Every tile after the first waits for a gate; the view moves to the other corner meanwhile: the same
    job then runs only tiles of the new view (the one in flight aside) and the layer shows that view."""
    from napari_nrrn.engine import session as session_module

    viewer = make_napari_viewer(show=True)  # a canvas with a size, so napari knows what is visible
    widget, layer = open_dock(viewer, qtbot, crop, model_path)
    section = widget.preview_section
    section.tile_spin.setValue(8)
    gate, runs = threading.Event(), []
    run_batch = session_module.InferenceSession._run

    def gated(self, *args):
        if runs:
            assert gate.wait(30), "the test never opened the gate"
        runs.append(None)
        return run_batch(self, *args)

    monkeypatch.setattr(session_module.InferenceSession, "_run", gated)
    viewer.camera.zoom *= 8  # a small part of the slice on screen
    qtbot.waitUntil(lambda: section.region(layer) is not None, timeout=WAIT_MS)

    def look_at(y: float, x: float) -> tuple[int, int, int, int]:
        before = section.region(layer)
        viewer.camera.center = (viewer.camera.center[0], y, x)

        def drawn() -> bool:  # napari updates the visible corners when it draws
            region = section.region(layer)
            inside = region is not None and region[0] <= y < region[1] and region[2] <= x < region[3]
            return inside and region != before

        qtbot.waitUntil(drawn, timeout=WAIT_MS)
        return section.region(layer)

    first_view = look_at(14.0, 14.0)
    events = events_of(widget, PREVIEW_JOB)
    with qtbot.waitSignal(widget.job_progress, timeout=WAIT_MS):
        worker = section.preview()
    second_view = look_at(50.0, 50.0)
    assert first_view[1] < second_view[0] or first_view[3] < second_view[2], (first_view, second_view)
    assert section.preview() is worker  # the running job follows the view
    gate.set()
    qtbot.waitUntil(lambda: worker not in widget.jobs.values(), timeout=WAIT_MS)

    def meets(bounds, region):
        (y0, y1, x0, x1), (ry0, ry1, rx0, rx1) = bounds, region
        return y0 < ry1 and ry0 < y1 and x0 < rx1 and rx0 < x1

    later = events[2:]  # the first tile and the one in flight at the pan belong to the first view
    assert later and all(meets(event.bounds, second_view) for event in later)
    assert not any(meets(event.bounds, first_view) for event in later)
    y0, y1, x0, x1 = second_view
    preview = viewer.layers["gala NRRN preview"]
    full = denoise_slice(load_model(model_path), crop[1], crop[2], crop[3])
    np.testing.assert_array_equal(preview.data[0], full[y0:y1, x0:x1])
