"""Sample data contributions: real noisy EM data shipped in ``napari_nrrn/data`` (see its ATTRIBUTION.md)."""

from __future__ import annotations

from napari_nrrn.io.samples import SAMPLE_SEM_PATH, SAMPLE_SEM_RESIN_LINE, SAMPLE_STACK_PATH
from napari_nrrn.io.stack import inspect_stack


def fibsem_stack() -> list[tuple]:
    """The 32-slice FlyEM FIB-SEM crop (noise sigma ~10), scaled by its 10 nm voxel size."""
    found = inspect_stack(SAMPLE_STACK_PATH)
    meta = {
        "name": "FIB-SEM sample (FlyEM)",
        "scale": found.voxel_size,
        "metadata": {"path": str(SAMPLE_STACK_PATH), "voxel_size_nm": found.voxel_size},
    }
    # 640 kB: small enough to hand napari a numpy array, which makes its contrast limits instant.
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
