"""Reader contribution: open TIFF stacks, folders of slices, Zarr/OME-Zarr and FIB-SEM .dat lazily."""

from __future__ import annotations

from pathlib import Path

from napari_nrrn.io.stack import inspect_stack, looks_like_stack

_NAME_SUFFIXES = (".ome.zarr", ".zarr", ".ome.tiff", ".ome.tif", ".tiff", ".tif", ".dat")


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
    stack becomes a 2-D layer."""
    path = Path(path[0] if isinstance(path, (list, tuple)) else path)
    found = inspect_stack(path)
    data = found.array
    scale = found.voxel_size or (1.0, 1.0, 1.0)
    if data.shape[0] == 1:
        data, scale = data[0], scale[1:]
    name = path.name
    for suffix in _NAME_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    meta = {
        "name": name,
        "scale": tuple(scale),
        "metadata": {"path": str(path), "voxel_size_nm": found.voxel_size, "format": found.format},
    }
    return [(data, meta, "image")]
