"""Writer contributions: save an image layer as (Big)TIFF or OME-Zarr, streaming one slice at a time."""

from __future__ import annotations

from pathlib import Path

from napari_nrrn.io.writers import write_stack


def write_tiff(path: str, data, meta: dict) -> list[str]:
    """Save one image layer to ``path`` (.tif/.tiff) with its scale as voxel size (nm)."""
    return [str(_write(path, data, meta))]


def write_ome_zarr(path: str, data, meta: dict) -> list[str]:
    """Save one image layer to ``path`` (.zarr/.ome.zarr) with its scale as voxel size (nm)."""
    return [str(_write(path, data, meta))]


def _write(path: str, data, meta: dict) -> Path:
    if isinstance(data, list):  # a multiscale layer: save the full-resolution level
        data = data[0]
    scale = tuple(float(s) for s in meta.get("scale") or (1.0,) * data.ndim)
    if data.ndim == 2:
        # A 2-D layer is a one-slice stack; its z step is taken equal to x, as the reader assumes.
        data, scale = data[None], (scale[-1], *scale)
    if data.ndim != 3:
        raise ValueError(
            f"cannot save a {data.ndim}-D layer of shape {data.shape} to {path}: napari-nrrn writes 2-D "
            "images and (Z, Y, X) stacks; slice the layer (e.g. one time point) first"
        )
    # A layer scale of all ones is napari's "no calibration", not a 1 nm voxel.
    voxel = None if all(s == 1.0 for s in scale) else scale
    # napari's save dialog has already asked the user before replacing an existing file.
    return write_stack(data, path, voxel_size=voxel, overwrite=True)
