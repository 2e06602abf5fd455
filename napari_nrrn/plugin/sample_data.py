"""Sample data contributions: EM data shipped in ``napari_nrrn/data`` (see its ATTRIBUTION.md)."""

from __future__ import annotations

from pathlib import Path

from napari_nrrn.io.samples import SAMPLE_GALA_PATH, SAMPLE_SEM_PATH, SAMPLE_SEM_RESIN_LINE, SAMPLE_STACK_PATH
from napari_nrrn.io.stack import inspect_stack


def fibsem_stack() -> list[tuple]:
    """The FlyEM medulla crop with independent synthetic noise (sigma ~20): a stack the dock can train on."""
    return _stack(SAMPLE_STACK_PATH, "FIB-SEM sample (FlyEM medulla + synthetic noise)")


def fibsem_gala() -> list[tuple]:
    """The real noisy FlyEM gala crop, whose noise is shared by adjacent slices."""
    return _stack(SAMPLE_GALA_PATH, "FIB-SEM sample (FlyEM gala, correlated noise)")


def _stack(path: Path, name: str) -> list[tuple]:
    found = inspect_stack(path)
    meta = {
        "name": name,
        "scale": found.voxel_size,
        "metadata": {"path": str(path), "voxel_size_nm": found.voxel_size},
    }
    # Under 1 MB: small enough to hand napari a numpy array, which makes its contrast limits instant.
    return [(found.array.compute(), meta, "image")]


def sem_resin() -> list[tuple]:
    """The noisy SEM image with its bright band of embedding resin along the top edge."""
    found = inspect_stack(SAMPLE_SEM_PATH)
    meta = {
        "name": "SEM sample (resin)",
        "metadata": {
            "path": str(SAMPLE_SEM_PATH),
            "voxel_size_nm": None,
            "resin_line": SAMPLE_SEM_RESIN_LINE,
        },
    }
    return [(found.array[0].compute(), meta, "image")]
