"""The dock's choice between the shipped models, and "fastest within 0.3 dB" among their depths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_nrrn.engine.depth import Option, fastest_within, flop_per_pixel
from napari_nrrn.model.checkpoint import SHIPPED_PSNR_DB, load_model, shipped_model_paths
from napari_nrrn.plugin._depth_section import BENCHMARK_NOTE, shipped_options
from napari_nrrn.plugin._dock_state import BLOCKS_JOB
from napari_nrrn.plugin._model_section import shipped_origin

pytestmark = pytest.mark.usefixtures("isolated_qsettings")
WAIT_MS = 60_000


def add_dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "NRRN denoising")
    return widget


def assert_weights_of(model, name: str) -> None:
    expected = load_model(shipped_model_paths()[name]).state_dict()
    for key, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor.cpu(), expected[key], rtol=0, atol=0)


def test_every_shipped_model_has_a_benchmark_psnr_per_depth():
    for name, path in shipped_model_paths().items():
        assert len(SHIPPED_PSNR_DB[name]) == load_model(path).depth


def test_the_dock_offers_both_shipped_models_and_says_which_is_in_use(make_napari_viewer):
    widget = add_dock(make_napari_viewer())  # opens with the default shipped model
    section = widget.model_section
    combo = section.shipped_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["default (C=32)", "fast (width 16)"]
    assert widget.state.model.width == 32
    assert "Model: shipped model, default (C=32)" in section.model_info.text()

    combo.setCurrentText("fast (width 16)")
    section.shipped_button.click()
    assert widget.state.model_origin.startswith(shipped_origin("width 16"))
    assert "Model: shipped model, fast (width 16)" in section.model_info.text()
    assert "depth 4, width 16" in section.model_info.text()
    assert_weights_of(widget.state.model, "width 16")

    section.use_shipped_model("default")
    assert widget.state.model.width == 32 and combo.currentText() == "default (C=32)"


def test_shipped_options_compare_measured_costs_only_when_every_shipped_model_was_timed():
    timed = {"default": [4.0, 5.0, 6.0, 7.0], "width 16": [1.0, 2.0, 3.0, 4.0]}
    options, models, unit = shipped_options(timed)
    assert unit == "ms / MP measured here"
    assert Option("width 16", 3, 3.0, 31.16) in options and Option("default", 1, 4.0, 31.21) in options
    assert models["width 16"].width == 16

    options, _, unit = shipped_options({"default": timed["default"]})  # the width-16 model never timed
    assert unit == "FLOP per pixel"
    assert Option("default", 2, flop_per_pixel(2, 32), 31.32) in options
    assert len(options) == 8


def test_fastest_within_picks_the_width_16_model_at_depth_3_and_says_where_the_numbers_come_from(
    make_napari_viewer,
):
    widget = add_dock(make_napari_viewer())
    depth = widget.depth_section
    assert BENCHMARK_NOTE in depth.fastest_info.text()
    assert "not measured on your data" in BENCHMARK_NOTE

    chosen = depth.use_fastest_shipped()  # by FLOP: nothing timed yet
    assert (
        chosen
        == fastest_within(shipped_options({})[0])
        == Option("width 16", 3, flop_per_pixel(3, 16), 31.16)
    )
    assert widget.state.model.width == 16 and widget.state.depth == 3
    assert depth.depth_spin.value() == 3 and widget.model_for_run().depth == 3
    assert widget.model_section.shipped_combo.currentText() == "fast (width 16)"
    assert widget.state.model_origin.startswith(shipped_origin("width 16"))
    assert_weights_of(widget.state.model, "width 16")
    text = depth.fastest_info.text()
    assert "fast (width 16) model at depth 3, 31.16 dB against the best 31.42 dB" in text
    assert "FLOP per pixel" in text and BENCHMARK_NOTE in text

    model = widget.state.model
    depth.fastest_button.click()  # the same pick again keeps the model and the depth
    assert widget.state.model is model and widget.state.depth == 3


def test_fastest_within_uses_the_costs_the_depth_explorer_measured_for_each_shipped_model(
    make_napari_viewer, qtbot, monkeypatch
):
    import napari_nrrn.engine.depth as engine_depth

    # Made-up costs making the default model's depth 1 the cheapest within 0.3 dB (by FLOP: width 16).
    costs = {32: [1.0, 2.0, 3.0, 4.0], 16: [5.0, 6.0, 7.0, 8.0]}
    monkeypatch.setattr(engine_depth, "measure_depth_costs", lambda model, device=None: costs[model.width])
    viewer = make_napari_viewer()
    widget = add_dock(viewer)
    viewer.add_image(np.random.default_rng(0).integers(0, 255, (3, 32, 32), dtype=np.uint8), name="noise")
    widget.data_section.layer_combo.setCurrentText("noise")
    depth = widget.depth_section
    for name in ("default", "width 16"):
        widget.model_section.use_shipped_model(name)
        assert depth.explore_depth() is not None
        qtbot.waitUntil(lambda: not widget.state.is_running(BLOCKS_JOB), timeout=WAIT_MS)
    assert set(depth._shipped_costs[None]) == {"default", "width 16"}
    assert depth.use_fastest_shipped() == Option("default", 1, 1.0, 31.21)
    assert widget.state.model.width == 32 and widget.state.depth == 1
    assert "costs compared in ms / MP measured here" in depth.fastest_info.text()
