"""Open FIB-SEM stacks lazily: a dask array (Z, Y, X) with one chunk per slice, plus the voxel size in nm.

Opening reads metadata only (TIFF tags and IFDs, Zarr and N5 JSON, HDF5 and MRC headers, ``.dat``
headers); pixels are read when a slice is computed, and computing one slice reads that slice only. Each
format lives in its own module under ``napari_nrrn.io.formats``; this module picks one:

- multi-page TIFF / BigTIFF, ImageJ hyperstacks and OME-TIFF (a 2-D TIFF opens as Z=1);
- a folder of per-slice TIFFs (natural sort: ``s2`` before ``s10``);
- Zarr arrays and OME-Zarr images (full-resolution level; the pyramid in ``StackInfo.levels``);
- Janelia FIB-SEM ``.dat`` frames, versions 1-9, one file or a folder of them (one frame per slice);
- MRC (``.mrc``, ``.rec``, ``.st``, ``.map``), HDF5 datasets (``file.h5/inner/path``), N5 datasets.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import dask.array as da
import numpy as np

from napari_nrrn.io.formats import FORMATS, dat, hdf5, tiff
from napari_nrrn.io.formats.base import StackInfo, VoxelSize, natural_sort_key, slice_files

__all__ = [
    "StackInfo",
    "TIFF_SUFFIXES",
    "VoxelSize",
    "inspect_stack",
    "looks_like_stack",
    "natural_sort_key",
    "open_stack",
    "stack_choices",
    "voxel_size",
]

TIFF_SUFFIXES = tiff.SUFFIXES


def open_stack(path: str | os.PathLike, channel: int | None = None) -> da.Array:
    """Open a stack lazily as a (Z, Y, X) dask array with one chunk per slice; no pixels are read.

    ``channel`` picks the detector of a multi-channel image (a ``.dat`` frame, an ImageJ/OME hyperstack
    with channels, an OME-Zarr ``c`` axis); default 0.
    """
    return inspect_stack(path, channel).array


def voxel_size(path: str | os.PathLike, z_step_nm: float | None = None) -> VoxelSize | None:
    """Voxel size (z, y, x) in nm from the file's metadata, or None when the file does not record it.

    When only the pixel size is recorded (a 2-D image, a ``.dat`` frame, a folder of 2-D slices), the z
    step is ``z_step_nm`` when given, else taken equal to the x pixel size (FIB-SEM is usually acquired with
    near-isotropic voxels); ``inspect_stack(path).z_step_assumed`` then says so.
    """
    path = Path(path).expanduser()
    module = _format(path)
    if path.is_dir() and module in (tiff, dat):
        # The first slice carries the calibration: no need to read every header of a long folder.
        found = module.folder_calibration(path)
        return _with_z_step(found, z_step_nm)[0]
    return inspect_stack(path, z_step_nm=z_step_nm).voxel_size


def inspect_stack(
    path: str | os.PathLike, channel: int | None = None, z_step_nm: float | None = None
) -> StackInfo:
    """Open ``path`` lazily and report its format, voxel size and files (see ``open_stack``).

    ``z_step_nm``: the z step when the file does not record it (a ``.dat`` folder, a folder of 2-D slices);
    a recorded z step is kept.
    """
    path = Path(path).expanduser()
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, (int, np.integer))):
        raise ValueError(f"channel must be a whole number (0, 1, ...), got {channel!r}")
    found = _format(path).inspect(path, channel)
    voxel, assumed = _with_z_step((found.voxel_size, found.z_step_assumed), z_step_nm)
    return dataclasses.replace(found, voxel_size=voxel, z_step_assumed=assumed)


def looks_like_stack(path: str | os.PathLike) -> bool:
    """Cheap check that ``open_stack`` should read ``path`` (names, folder listing, the first TIFF page,
    the .dat magic number, an HDF5 or N5 container). Never raises, reads no pixels."""
    try:
        path = Path(path)
        module = _format(path)
        return getattr(module, "content_ok", lambda _: True)(path)
    except (OSError, ValueError):
        return False


def _with_z_step(found: tuple[VoxelSize | None, bool], z_step_nm: float | None):
    """(voxel size, z assumed) with the caller's z step in place of an assumed one."""
    voxel, assumed = found
    if z_step_nm is None or voxel is None or not assumed:
        return voxel, assumed
    if not (isinstance(z_step_nm, (int, float)) and z_step_nm > 0):
        raise ValueError(f"z step must be a positive number of nm, got {z_step_nm!r}")
    return (float(z_step_nm), *voxel[1:]), False


def _format(path: Path):
    """The format module that reads ``path``, or a ``ValueError``/``FileNotFoundError`` saying why none."""
    if path.is_dir():
        tiffs = slice_files(path, tiff.SUFFIXES)
        dats = slice_files(path, dat.SUFFIXES)
        if tiffs and dats:
            raise ValueError(
                f"folder {path} mixes TIFF and .dat files ({tiffs[0].name}, {dats[0].name}): "
                "put each stack in its own folder"
            )
    for module in FORMATS:
        try:
            if module.recognises(path):
                return module
        except OSError:
            continue
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: check the path (and that its drive is mounted)")
    if path.is_dir():
        raise ValueError(
            f"folder {path} holds no TIFF (.tif/.tiff) or FIB-SEM .dat slices and is not a Zarr or N5 store: "
            "choose the folder that contains the slices"
        )
    raise ValueError(
        f"cannot open {path}: napari-nrrn reads TIFF (.tif/.tiff), MRC (.mrc/.rec/.st/.map), HDF5 "
        "(.h5/.hdf5), FIB-SEM .dat frames, Zarr/OME-Zarr and N5 stores, or a folder of TIFF or .dat slices; "
        "convert the image to one of these"
    )


def stack_choices(path: str | os.PathLike, name: str) -> list[tuple[Path | str, str]]:
    """(path, name) of each stack ``path`` holds: itself, or each image dataset of an HDF5 file that holds
    several (``file.h5/inner``), for a viewer to offer them all."""
    path = Path(path).expanduser()
    if _format(path) is hdf5:
        file, inner = hdf5.split(path)
        names = [] if inner else hdf5.stack_datasets(file)
        if len(names) > 1:
            return [(f"{file}/{dataset}", f"{name} {dataset}") for dataset in names]
    return [(path, name)]
