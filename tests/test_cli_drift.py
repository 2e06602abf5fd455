"""The command line and drift: ``info --noise`` reports it, ``train`` records whether it registered, and
``denoise`` registers as the model was trained unless told otherwise, equal to the API."""

import numpy as np
import pytest
import tifffile

from napari_nrrn.cli import main
from napari_nrrn.engine.inference import denoise_stack
from napari_nrrn.model.checkpoint import load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = ["--depth", "1", "--width", "4", "--patch", "16", "--batch", "2", "--steps", "2"]
FAST += ["--start-from", "random"]


@pytest.fixture(scope="module")
def drifting_file(shared_data, tmp_path_factory):
    """A medulla slice seen through a window moving 3 px per slice, independent noise: 6 x 80 x 80."""
    source = np.asarray(tifffile.memmap(shared_data / "fibsem_flyem_medulla_A_250cube.tif")[80], np.float64)
    rng = np.random.default_rng(2)
    slices = [source[40 + 3 * z : 120 + 3 * z, 50:130] + rng.normal(0, 10, (80, 80)) for z in range(6)]
    path = tmp_path_factory.mktemp("drift") / "drifting.tif"
    tifffile.imwrite(path, np.clip(np.rint(slices), 0, 255).astype(np.uint8))
    return path


def test_info_noise_reports_the_drift_and_what_napari_nrrn_does(drifting_file, capsys):
    assert main(["info", str(drifting_file), "--noise"]) == 0
    out = capsys.readouterr().out
    # The window moves down 3 px per slice, so the content moves up: -3 px in y.
    assert "drift between adjacent slices: median step 3.00 px, largest 3.00 px; 14.9 px over" in out
    assert "shifts (y, x) px measured on 5 of 5 pairs: 0-1: (-3.00, +0.00)" in out
    assert "warning: the slices drift by 3.00 px per slice" in out and "(cubic interpolation)" in out


def test_info_noise_says_when_slices_do_not_correlate(shared_data, tmp_path, capsys):
    demo = tifffile.imread(shared_data / "sem_n2v_demo_600x600_float32.tif")
    path = tmp_path / "tiles.tif"
    tiles = [demo[:200, :200], demo[400:, 400:], demo[:200, 400:], demo[400:, :200]]
    tifffile.imwrite(path, np.stack(tiles), photometric="minisblack")
    assert main(["info", str(path), "--noise"]) == 0
    out = capsys.readouterr().out
    assert "drift between adjacent slices: not measured" in out
    assert "warning: slices 0-1, 1-2, 2-3 do not correlate" in out and "does not look like a z-stack" in out


def test_train_records_registration_and_denoise_follows_it(drifting_file, tmp_path, capsys):
    automatic, off = tmp_path / "automatic.pt", tmp_path / "off.pt"
    assert main(["train", str(drifting_file), "-o", str(automatic), *FAST]) == 0
    assert "neighbours registered" in capsys.readouterr().out
    assert main(["train", str(drifting_file), "-o", str(off), *FAST, "--no-register"]) == 0
    model = load_model(automatic)
    assert model.metadata["training"]["register"] is True
    assert load_model(off).metadata["training"]["register"] is False
    assert load_model(off).metadata["command"].endswith("--no-register")

    stack = tifffile.imread(drifting_file)
    registered = denoise_stack(model, stack, precision="float32", register=True).compute()
    plain = denoise_stack(model, stack, precision="float32", register=False).compute()
    assert not np.array_equal(registered, plain)
    for model_path, extra, expected in (
        (automatic, [], registered),
        (automatic, ["--no-register"], plain),
        (off, ["--register"], denoise_stack(load_model(off), stack, precision="float32", register=True)),
    ):
        out = tmp_path / f"out-{model_path.stem}{len(extra)}.tif"
        args = ["denoise", str(drifting_file), str(out), "--model", str(model_path), "--precision", "float32"]
        assert main([*args, *extra]) == 0
        np.testing.assert_array_equal(tifffile.imread(out), np.asarray(expected))
    assert "neighbours registered onto each slice" in capsys.readouterr().err
