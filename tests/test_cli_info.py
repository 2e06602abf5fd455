"""``napari-nrrn info``: what a stack is, from its metadata only."""

import numpy as np
import pytest
import tifffile

from napari_nrrn.cli import main
from napari_nrrn.io.formats import base, dat, tiff

GALA = "fibsem_flyem_gala_train_50x100x200.tif"
DAT = "Gemini500-7029_24-12-16_151317_0-0-0.dat"


@pytest.fixture
def no_pixel_reads(monkeypatch):
    """Any pixel read (TIFF raw or decoded plane, .dat channel) fails the test."""

    def refuse(self):
        raise AssertionError("info read pixels")

    for plane in (base.RawPlane, tiff.TiffPagePlane, dat._DatPlane):
        monkeypatch.setattr(plane, "read", refuse)


def test_info_on_a_tiff_stack(shared_data, capsys, no_pixel_reads):
    assert main(["info", str(shared_data / GALA)]) == 0
    out = capsys.readouterr().out
    assert "format          ImageJ TIFF" in out
    assert "shape           50 x 100 x 200 (Z, Y, X)" in out
    assert "dtype           uint8" in out
    assert "chunks          (1, 100, 200) per chunk, 50 chunks (one per slice)" in out
    assert "voxel size      10 x 10 x 10 nm (z, y, x)" in out
    assert "size on disk    984.9 KiB" in out  # 1 008 502 bytes


def test_info_on_a_dat_channel(shared_data, capsys, no_pixel_reads):
    assert main(["info", str(shared_data / DAT), "--channel", "1"]) == 0
    out = capsys.readouterr().out
    assert "FIB-SEM .dat v9, ESB @ 400 V" in out
    assert "shape           1 x 1000 x 1000 (Z, Y, X)" in out
    assert "dtype           int16" in out
    assert "voxel size      1.99996 x 1.99996 x 1.99996 nm (z, y, x)" in out
    assert "z step          not recorded: taken equal to the pixel size" in out


def test_info_on_an_uncalibrated_image(shared_data, capsys):
    assert main(["info", str(shared_data / "sem_n2v_demo_600x600_float32.tif")]) == 0
    assert "voxel size      unknown (not in the file's metadata)" in capsys.readouterr().out


def test_info_bad_input(shared_data, tmp_path, capsys):
    assert main(["info", str(tmp_path / "nothing.tif")]) == 2
    assert (
        "napari-nrrn info: error: " in (err := capsys.readouterr().err)
        and "nothing.tif does not exist" in err
    )
    assert main(["info", str(shared_data / DAT), "--channel", "5"]) == 2
    assert "channel 5 does not exist" in capsys.readouterr().err


def test_info_noise_warns_on_the_gala_crop(shared_data, capsys):
    from napari_nrrn.io.samples import SAMPLE_GALA_PATH, SAMPLE_STACK_PATH

    assert main(["info", str(SAMPLE_GALA_PATH), "--noise"]) == 0
    out = capsys.readouterr().out
    assert "shape           32 x 100 x 200 (Z, Y, X)" in out
    assert "noise: " in out and "z correlation of the noise: 0." in out
    assert "warning: adjacent slices share noise (correlation 0." in out

    assert main(["info", str(SAMPLE_STACK_PATH), "--noise"]) == 0
    out = capsys.readouterr().out
    assert "z correlation of the noise: " in out and "share noise" not in out
    # Its only warning: the medulla's apparent step between slices (docs/noise.md, drift).
    assert [line for line in out.splitlines() if line.startswith("warning:")] == [
        line for line in out.splitlines() if line.startswith("warning: the slices drift by")
    ]


def test_info_noise_on_a_2d_image_and_a_blank_stack(shared_data, tmp_path, capsys):
    assert main(["info", str(shared_data / "sem_n2v_demo_600x600_float32.tif"), "--noise"]) == 0
    out = capsys.readouterr().out
    assert "z correlation of the noise: not measured" in out and "a single slice has no z correlation" in out
    blank = tmp_path / "blank.tif"
    tifffile.imwrite(blank, np.zeros((6, 32, 32), np.uint8), photometric="minisblack")
    assert main(["info", str(blank), "--noise"]) == 2
    assert "blank or constant: there is no noise to measure" in capsys.readouterr().err
