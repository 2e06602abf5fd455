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
    stack becomes a 2-D layer; a (z, y, x) OME-Zarr pyramid a multiscale layer."""
    path = Path(path[0] if isinstance(path, (list, tuple)) else path)
    found = inspect_stack(path)
    levels = _pyramid(path, found.array) if found.format.startswith("OME-Zarr") else [found.array]
    scale = found.voxel_size or (1.0, 1.0, 1.0)
    if found.array.shape[0] == 1:
        levels, scale = [level[0] for level in levels], scale[1:]
    name = path.name
    for suffix in _NAME_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    meta = {
        "name": name,
        "multiscale": len(levels) > 1,
        "scale": tuple(scale),
        "metadata": {"path": str(path), "voxel_size_nm": found.voxel_size, "format": found.format},
    }
    return [(levels if len(levels) > 1 else levels[0], meta, "image")]


def _pyramid(path: Path, level0) -> list:
    """``level0`` and the lower levels of an OME-Zarr pyramid of (z, y, x) arrays, one dask chunk per slice
    as stored, so that napari reads the low levels when zoomed out; ``[level0]`` for any other layout."""
    import dask.array as da
    import zarr

    group = zarr.open_group(str(path), mode="r")
    attributes = group.attrs.asdict()
    image = attributes.get("ome", attributes)["multiscales"][0]
    if [axis["name"] if isinstance(axis, dict) else axis for axis in image.get("axes", [])] != list("zyx"):
        return [level0]
    levels = [level0]
    for dataset in image["datasets"][1:]:
        array = group[dataset["path"]]
        levels.append(da.from_zarr(array, chunks=(1, *array.shape[1:])))
    return levels
