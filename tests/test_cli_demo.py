"""`napari-nrrn demo` end to end: the denoised TIFF equals the API's result, the figure is written."""

import numpy as np
import tifffile
import torch
from matplotlib.image import imread

from napari_nrrn.cli import main
from napari_nrrn.engine.inference import denoise_stack
from napari_nrrn.io.samples import SAMPLE_GALA_PATH
from napari_nrrn.io.stack import open_stack, voxel_size
from napari_nrrn.model.checkpoint import default_model_path, load_model, save_model
from napari_nrrn.model.nrrn import NRRN


def _run_demo(tmp_path, capsys, *extra):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *extra]) == 0
    printed = capsys.readouterr().out
    denoised = out / "fibsem_sample_denoised.tif"
    figure = out / "fibsem_sample_raw_vs_denoised.png"
    assert str(denoised) in printed and str(figure) in printed
    return denoised, figure, printed


def test_demo_with_a_given_model_equals_denoise_stack(tmp_path, capsys):
    torch.manual_seed(0)
    model_path = save_model(NRRN(depth=1, width=4), tmp_path / "tiny.pt")
    denoised, figure, printed = _run_demo(tmp_path, capsys, "--model", str(model_path))

    expected = denoise_stack(load_model(model_path), open_stack(SAMPLE_GALA_PATH)).compute()
    written = tifffile.imread(denoised)
    assert written.dtype == np.uint8
    np.testing.assert_array_equal(written, expected)
    assert voxel_size(denoised) == voxel_size(SAMPLE_GALA_PATH)
    assert imread(figure).shape[:2] == (650, 1200)  # figsize (12, 6.5) at 100 dpi
    assert "IQR along the line" in printed


def test_demo_with_the_shipped_model_flattens_the_line(tmp_path, capsys):
    assert default_model_path().is_file(), "the shipped model is missing from napari_nrrn/data"
    _, _, printed = _run_demo(tmp_path, capsys)
    line = next(text for text in printed.splitlines() if "IQR along the line" in text)
    raw_iqr = float(line.split("raw ")[1].split(",")[0])
    denoised_iqr = float(line.split("denoised ")[1].split(" ")[0])
    assert denoised_iqr < raw_iqr


def test_demo_refuses_a_missing_model(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--model", str(tmp_path / "absent.pt")]) == 2
    assert "absent.pt" in capsys.readouterr().err
