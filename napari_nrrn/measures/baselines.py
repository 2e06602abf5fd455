"""Classic denoisers for side-by-side comparison with NRRN: Gaussian, median, non-local means, BM3D.

Each takes one 2-D slice and keyword parameters and returns an image of the same shape and dtype: the work is
done in float64, then integers are rounded and clipped to their dtype's range (floats are cast back).
Where a method needs the noise level, it is estimated from the slice (:func:`estimate_noise_sigma`).
BM3D uses the optional ``bm3d`` package (``pip install bm3d``).
"""

from __future__ import annotations

import importlib.util

import numpy as np
from scipy import ndimage as ndi

BM3D_MISSING = "BM3D needs the optional package bm3d: pip install bm3d"


def estimate_noise_sigma(image) -> float:
    """Standard deviation of white Gaussian noise, from the median absolute finest diagonal Haar detail.

    Donoho's wavelet estimator (the one scikit-image's ``estimate_sigma`` uses, with Haar in place of db2
    so it needs no PyWavelets): ``median(|HH|) / 0.6745``, where ``HH = (a - b - c + d) / 2`` over 2x2
    blocks has the noise's standard deviation and almost no signal away from edges.
    """
    x = _float_slice(image)
    height, width = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    if height == 0 or width == 0:
        raise ValueError(
            f"image of shape {x.shape} is too small to estimate noise: it needs at least 2x2 pixels"
        )
    x = x[:height, :width]
    diagonal = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2
    return float(np.median(np.abs(diagonal)) / 0.6745)


def gaussian(image, sigma: float = 1.0):
    """Gaussian filter with standard deviation ``sigma`` pixels."""
    return _cast_like(ndi.gaussian_filter(_float_slice(image), sigma=sigma), image)


def median(image, size: int = 3):
    """Median filter over a ``size`` x ``size`` square."""
    return _cast_like(ndi.median_filter(_float_slice(image), size=int(size)), image)


def nl_means(image, h: float | None = None, patch_size: int = 5, patch_distance: int = 6):
    """Non-local means (scikit-image, fast mode); ``h`` defaults to 0.8 x the estimated noise sigma."""
    from skimage.restoration import denoise_nl_means

    x = _float_slice(image)
    sigma = estimate_noise_sigma(x)
    h = 0.8 * sigma if h is None else h
    denoised = denoise_nl_means(
        x, h=h, sigma=sigma, patch_size=patch_size, patch_distance=patch_distance, fast_mode=True
    )
    return _cast_like(denoised, image)


def bm3d_available() -> bool:
    return importlib.util.find_spec("bm3d") is not None


def bm3d(image, sigma: float | None = None):
    """BM3D (the ``bm3d`` package); ``sigma`` (grey levels) defaults to the estimated noise sigma."""
    try:
        import bm3d as bm3d_package
    except ImportError as error:
        raise ImportError(BM3D_MISSING) from error
    x = _float_slice(image)
    sigma = estimate_noise_sigma(x) if sigma is None else sigma
    # BM3D's internal thresholds assume images of order 1: work in [0, 1] and scale back.
    low, high = float(x.min()), float(x.max())
    span = high - low if high > low else 1.0
    denoised = bm3d_package.bm3d((x - low) / span, sigma_psd=sigma / span)
    return _cast_like(np.asarray(denoised) * span + low, image)


BASELINES = {"gaussian": gaussian, "median": median, "nl_means": nl_means, "bm3d": bm3d}


def _float_slice(image) -> np.ndarray:
    x = np.asarray(image)  # one slice: a lazy stack is indexed before it gets here
    if x.ndim != 2:
        raise ValueError(f"baseline denoisers work on one 2-D slice, got shape {x.shape}: pick a slice first")
    return x.astype(np.float64)


def _cast_like(result, image):
    dtype = np.dtype(image.dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(result), info.min, info.max).astype(dtype)
    return result.astype(dtype)
