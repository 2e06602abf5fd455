"""``napari-nrrn denoise``: the file it writes equals the API's result; bad input leaves files alone."""

import re

import numpy as np
import pytest
import tifffile

from napari_nrrn.cli import main
from napari_nrrn.engine.inference import denoise_stack
from napari_nrrn.io.stack import open_stack
from napari_nrrn.model.checkpoint import load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", ["denoised.tif", "denoised.ome.zarr"])
def test_written_stack_equals_denoise_stack(tmp_path, stack_file, model_file, name, capsys):
    out = tmp_path / name
    options = ["--model", str(model_file), "--tile", "48", "--precision", "float32"]
    assert main(["denoise", str(stack_file), str(out), *options]) == 0
    # the cost is stated before the first slice runs
    err = capsys.readouterr().err
    assert re.search(r"6 slices of 0\.02 MP: about \d+ s at depth 2, \d+ s at depth 1 on this CPU", err)
    assert err.index("slices of") < err.index("denoise")
    expected = denoise_stack(
        load_model(model_file), tifffile.imread(stack_file), tile=48, precision="float32"
    )
    written = open_stack(out).compute()
    assert written.dtype == np.uint8 and written.shape == (6, 100, 200)
    np.testing.assert_array_equal(written, expected.compute())
    assert np.abs(written.astype(int) - tifffile.imread(stack_file)).mean() > 1  # it did denoise


def test_depth_uses_the_cut_model(tmp_path, stack_file, model_file):
    out = tmp_path / "depth1.tif"
    args = ["denoise", str(stack_file), str(out), "--model", str(model_file), "--depth", "1"]
    assert main([*args, "--precision", "float32"]) == 0
    expected = denoise_stack(load_model(model_file).cut(1), tifffile.imread(stack_file), precision="float32")
    np.testing.assert_array_equal(tifffile.imread(out), expected.compute())


def test_default_precision_within_one_grey_level(tmp_path, stack_file, model_file):
    out = tmp_path / "auto.tif"
    assert main(["denoise", str(stack_file), str(out), "--model", str(model_file)]) == 0
    exact = denoise_stack(load_model(model_file), tifffile.imread(stack_file), precision="float32").compute()
    assert np.abs(tifffile.imread(out).astype(int) - exact).max() <= 1


def test_bad_requests_fail_clearly_and_touch_nothing(tmp_path, stack_file, model_file, capsys):
    existing = tmp_path / "existing.tif"
    existing.write_bytes(b"keep me")
    base = ["--model", str(model_file)]
    assert main(["denoise", str(stack_file), str(existing), *base]) == 2
    # The command line's wording, not the Python API's.
    assert capsys.readouterr().err == (
        f"napari-nrrn denoise: error: {existing} already exists: choose another name, or add --overwrite to "
        "replace it\n"
    )
    assert existing.read_bytes() == b"keep me"

    assert main(["denoise", str(stack_file), str(stack_file), *base, "--overwrite"]) == 2
    assert "is the input stack itself" in capsys.readouterr().err
    np.testing.assert_array_equal(tifffile.imread(stack_file).shape, (6, 100, 200))

    out = tmp_path / "never.tif"
    assert main(["denoise", str(stack_file), str(out), *base, "--tile", "3"]) == 2
    assert "smaller than the model's halo of 5 pixels" in capsys.readouterr().err
    assert main(["denoise", str(stack_file), str(out), *base, "--depth", "3"]) == 2
    assert "choose 1..2" in capsys.readouterr().err
    single = tmp_path / "single.tif"
    tifffile.imwrite(single, tifffile.imread(stack_file)[0])
    assert main(["denoise", str(single), str(out), *base]) == 2
    assert "a stack of at least 2 slices is needed" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "existing.tif",
        "noisy.tif",
        "single.tif",
        "tiny.pt",
    ]
