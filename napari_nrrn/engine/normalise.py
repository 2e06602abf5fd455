"""Per-slice z-scoring: every slice, and every tile of it, uses the whole slice's mean and std.

Non-finite pixels (NaN, +-inf in floating-point slices) are left out of the statistics and z-score to 0,
the slice mean, so that one bad pixel changes only the output near it.
"""

from __future__ import annotations

import numpy as np

# A flat slice (std 0) would divide by zero; below this it is treated as unit-variance.
MIN_STD = 1e-6


def slice_stats(image: np.ndarray, name: str = "the slice") -> tuple[float, float]:
    """Mean and standard deviation of the finite pixels of a whole 2-D slice, accumulated in float64.

    ValueError, naming the slice by ``name``, when it has no finite pixel."""
    image = np.asarray(image)
    values = image.astype(np.float64)
    if np.issubdtype(image.dtype, np.floating):
        finite = np.isfinite(values)
        if not finite.all():
            values = values[finite]
    if values.size == 0:
        raise ValueError(
            f"{name} has no finite pixel (all NaN or infinite): there is nothing to denoise; "
            "remove it from the stack or fill it"
        )
    std = float(values.std())
    return float(values.mean()), (std if std > MIN_STD else 1.0)


def zscore(image: np.ndarray, stats: tuple[float, float]) -> np.ndarray:
    """``(image - mean) / std`` as float32, non-finite pixels 0."""
    mean, std = stats
    image = np.asarray(image)
    scored = ((image.astype(np.float64) - mean) / std).astype(np.float32)
    if np.issubdtype(image.dtype, np.floating):
        scored[~np.isfinite(image)] = 0.0
    return scored


def unzscore(image: np.ndarray, stats: tuple[float, float]) -> np.ndarray:
    mean, std = stats
    return image.astype(np.float64) * std + mean
