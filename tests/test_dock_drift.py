"""The dock and drift: the Data section says how the slices drift, and a model trained on registered
neighbours previews exactly what ``denoise_stack`` (and so the command line) gives."""

import numpy as np
import pytest
import tifffile
import torch

from napari_nrrn.engine.inference import denoise_stack
from napari_nrrn.model.checkpoint import load_model, save_model
from napari_nrrn.model.nrrn import NRRN
from napari_nrrn.plugin.denoise_widget import NOISE_JOB

WAIT_MS = 60_000


@pytest.fixture(scope="module")
def drifting(shared_data):
    """A medulla slice seen through a window moving 3 px down per slice, independent noise: 5 x 64 x 64."""
    source = np.asarray(tifffile.memmap(shared_data / "fibsem_flyem_medulla_A_250cube.tif")[80], np.float64)
    rng = np.random.default_rng(4)
    slices = [source[40 + 3 * z : 104 + 3 * z, 50:114] + rng.normal(0, 10, (64, 64)) for z in range(5)]
    return np.clip(np.rint(slices), 0, 255).astype(np.uint8)


def test_data_section_reports_drift_and_preview_registers_as_the_model_was_trained(
    make_napari_viewer, qtbot, drifting, tmp_path
):
    torch.manual_seed(0)
    path = save_model(NRRN(depth=2, width=4), tmp_path / "registered.pt", {"training": {"register": True}})
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "NRRN denoising")
    viewer.add_image(drifting, name="drifting")
    widget.data_section.layer_combo.setCurrentText("drifting")
    assert widget.model_section.load_checkpoint(path) is not None
    widget.model_section.device_combo.setCurrentText("cpu")
    qtbot.waitUntil(lambda: NOISE_JOB not in widget.jobs, timeout=WAIT_MS)
    data = widget.data_section
    assert data.drift_info.text().startswith("Drift between adjacent slices: median step 3.00 px")
    assert "shifts each neighbour onto its centre slice (cubic interpolation)" in data.drift_warning.text()

    viewer.dims.set_point(0, 2)
    worker = widget.preview_section.preview()
    qtbot.waitUntil(lambda: worker not in widget.jobs.values(), timeout=WAIT_MS)
    expected = denoise_stack(load_model(path), drifting, tile=widget.preview_section.tile())[2].compute()
    np.testing.assert_array_equal(viewer.layers["drifting NRRN preview"].data[0], expected)
    unregistered = denoise_stack(load_model(path), drifting, register=False)[2].compute()
    assert not np.array_equal(expected, unregistered)
    form = widget.training_section.train_form
    switch = form.inputs["register"]
    assert [switch.itemText(i) for i in range(switch.count())] == ["auto", "on", "off"]
    assert switch.currentText() == "auto" and form.config(device="cpu").register is None
    for value in (True, False, None):
        form.set_value("register", value)
        assert form.config(device="cpu").register is value
