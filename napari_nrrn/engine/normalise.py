"""Per-slice z-scoring: every slice, and every tile of it, uses the whole slice's mean and std."""

from __future__ import annotations

import numpy as np

# A flat slice (std 0) would divide by zero; below this it is treated as unit-variance.
MIN_STD = 1e-6


def slice_stats(image: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of a whole 2-D slice, accumulated in float64."""
    values = np.asarray(image, dtype=np.float64)
    std = float(values.std())
    return float(values.mean()), (std if std > MIN_STD else 1.0)


def zscore(image: np.ndarray, stats: tuple[float, float]) -> np.ndarray:
    mean, std = stats
    return ((np.asarray(image, dtype=np.float64) - mean) / std).astype(np.float32)


def unzscore(image: np.ndarray, stats: tuple[float, float]) -> np.ndarray:
    mean, std = stats
    return image.astype(np.float64) * std + mean
