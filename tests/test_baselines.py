"""Classic baseline denoisers on real EM data: same dtype back, resin flattened, clear errors."""

import sys

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from napari_nrrn.measures import baselines
from napari_nrrn.measures.baselines import BASELINES, estimate_noise_sigma
from napari_nrrn.measures.profiles import iqr, line_profile

RESIN_LINE = ((20, 40), (20, 280))  # the bright flat embedding resin at the top of the SEM image


@pytest.fixture(scope="module")
def sem(shared_data):
    return tifffile.imread(shared_data / "sem_n2v_demo_600x600_float32.tif")


@pytest.fixture(scope="module")
def gala_slice(shared_data):
    return tifffile.imread(shared_data / "fibsem_flyem_gala_test_50x100x200.tif")[25]


def test_gaussian_flattens_the_resin_line_of_the_real_sem_image(sem):
    raw_iqr = iqr(line_profile(sem, *RESIN_LINE))
    smoothed = BASELINES["gaussian"](sem, sigma=2.0)
    assert smoothed.dtype == sem.dtype and smoothed.shape == sem.shape
    np.testing.assert_allclose(smoothed, ndi.gaussian_filter(sem.astype(np.float64), 2.0).astype(np.float32))
    assert iqr(line_profile(smoothed, *RESIN_LINE)) < 0.5 * raw_iqr


@pytest.mark.parametrize("name", ["median", "nl_means"])
def test_median_and_nl_means_flatten_resin_on_a_crop(sem, name):
    crop = sem[:64, 20:300]
    line = ((20, 20), (20, 260))
    denoised = BASELINES[name](crop)
    assert denoised.dtype == crop.dtype and denoised.shape == crop.shape
    assert iqr(line_profile(denoised, *line)) < 0.7 * iqr(line_profile(crop, *line))


def test_integer_slices_come_back_rounded_and_clipped_in_their_dtype(gala_slice):
    assert gala_slice.dtype == np.uint8
    smoothed = BASELINES["gaussian"](gala_slice, sigma=1.5)
    assert smoothed.dtype == np.uint8
    expected = np.clip(np.rint(ndi.gaussian_filter(gala_slice.astype(float), 1.5)), 0, 255)
    np.testing.assert_array_equal(smoothed, expected)
    np.testing.assert_array_equal(BASELINES["median"](gala_slice), ndi.median_filter(gala_slice, size=3))
    assert BASELINES["nl_means"](gala_slice).dtype == np.uint8


def test_noise_sigma_estimate_on_known_noise():
    rng = np.random.default_rng(3)
    flat = 120.0 + 7.0 * rng.standard_normal((256, 256))
    assert estimate_noise_sigma(flat) == pytest.approx(7.0, rel=0.05)
    ramp_plus_noise = flat + np.add.outer(np.arange(256.0), np.arange(256.0))  # a ramp has no diagonal detail
    assert estimate_noise_sigma(ramp_plus_noise) == pytest.approx(estimate_noise_sigma(flat))


def test_baselines_need_one_2d_slice():
    with pytest.raises(ValueError, match="one 2-D slice"):
        BASELINES["gaussian"](np.zeros((2, 8, 8)))


def test_bm3d_missing_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # what an absent package looks like to `import`
    with pytest.raises(ImportError, match="BM3D needs the optional package bm3d: pip install bm3d"):
        baselines.bm3d(np.zeros((16, 16), np.uint8))


def test_bm3d_flattens_resin_when_installed(sem):
    pytest.importorskip("bm3d")
    crop = sem[:48, 40:112]
    line = ((20, 4), (20, 68))
    denoised = BASELINES["bm3d"](crop)
    assert denoised.dtype == crop.dtype and denoised.shape == crop.shape
    assert iqr(line_profile(denoised, *line)) < 0.5 * iqr(line_profile(crop, *line))
