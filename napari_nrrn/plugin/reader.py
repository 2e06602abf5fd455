"""Reader contribution: every format ``open_stack`` reads (TIFF, folders of slices, Zarr/OME-Zarr, N5, MRC,
HDF5, FIB-SEM .dat), lazily."""

from __future__ import annotations

from pathlib import Path

from napari_nrrn.io.stack import StackInfo, inspect_stack, looks_like_stack, stack_choices

_NAME_SUFFIXES = (".ome.zarr", ".zarr", ".n5", ".ome.tiff", ".ome.tif", ".tiff", ".tif", ".dat")
_NAME_SUFFIXES += (".mrc", ".rec", ".st", ".map", ".hdf5", ".h5", ".hdf", ".he5")


def get_reader(path):
    """A reader for ``path`` when napari-nrrn can open it, else None (napari then tries other plugins).

    The check is cheap (name, folder listing, first TIFF page, .dat magic number) and never raises; an
    error found later while opening (a truncated file, mixed slice shapes) is raised by the reader with a
    message naming the file, and napari shows it.
    """
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, (str, Path)) or not looks_like_stack(path):
        return None
    return read_stack


def read_stack(path) -> list[tuple]:
    """[(lazy data, layer kwargs, "image")]: scale is the voxel size in nm (1 when unknown); a one-slice
    stack becomes a 2-D layer; a stored pyramid (OME-Zarr) a multiscale layer. An HDF5 file holding
    several image datasets gives one layer each, to choose from."""
    path = Path(path[0] if isinstance(path, (list, tuple)) else path)
    return [_layer(inspect_stack(choice), name) for choice, name in stack_choices(path, _name(path))]


def _layer(found: StackInfo, name: str) -> tuple:
    levels = list(found.levels or [found.array])
    scale = found.voxel_size or (1.0, 1.0, 1.0)
    if found.array.shape[0] == 1:
        levels, scale = [level[0] for level in levels], scale[1:]
    meta = {
        "name": name,
        "multiscale": len(levels) > 1,
        "scale": tuple(scale),
        "metadata": {
            "path": str(found.path),
            "voxel_size_nm": found.voxel_size,
            "z_step_assumed": found.z_step_assumed,
            "format": found.format,
        },
    }
    return (levels if len(levels) > 1 else levels[0], meta, "image")


def _name(path: Path) -> str:
    name = path.name
    for suffix in _NAME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name
