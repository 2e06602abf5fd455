"""PSNR and SSIM of an image against a reference, for in-memory 2-D slices (numpy or a computed slice)."""

from __future__ import annotations

import numpy as np


def default_data_range(ref) -> float:
    """The range metrics normalise by: the dtype's full range for integers, the reference's own for floats.

    Integers follow scikit-image (uint8 -> 255, int16 -> 65535); a float reference has no nominal range, so
    its max - min is used, and a constant float reference is an error (pass ``data_range``).
    """
    ref = np.asarray(ref)
    if ref.dtype == bool:
        return 1.0
    if np.issubdtype(ref.dtype, np.integer):
        info = np.iinfo(ref.dtype)
        return float(info.max) - float(info.min)
    value_range = float(np.max(ref)) - float(np.min(ref))
    if value_range <= 0:
        raise ValueError("the float reference is constant, so it has no range: pass data_range= explicitly")
    return value_range


def _pair(x, ref, data_range):
    x = np.asarray(x)
    ref = np.asarray(ref)
    if x.shape != ref.shape:
        raise ValueError(
            f"image shape {x.shape} differs from the reference's {ref.shape}: compare the same region"
        )
    if data_range is None:
        data_range = default_data_range(ref)
    if data_range <= 0:
        raise ValueError(f"data_range = {data_range} must be positive")
    return x.astype(np.float64), ref.astype(np.float64), float(data_range)


def psnr(x, ref, data_range=None) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / MSE)``; ``inf`` for identical images."""
    x, ref, data_range = _pair(x, ref, data_range)
    mse = float(np.mean((x - ref) ** 2))
    if mse == 0:
        return float("inf")
    return float(10 * np.log10(data_range**2 / mse))


def ssim(x, ref, data_range=None) -> float:
    """Structural similarity (scikit-image, 7x7 uniform window) with the data range passed explicitly."""
    from skimage.metrics import structural_similarity

    x, ref, data_range = _pair(x, ref, data_range)
    return float(structural_similarity(x, ref, data_range=data_range))
