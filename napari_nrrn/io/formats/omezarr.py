"""Zarr arrays (v2 or v3) and OME-Zarr images (0.4 and 0.5): the full-resolution level is the stack that is
processed; every level of the pyramid is kept in ``StackInfo.levels`` so that napari shows it multiscale.

Each dask chunk is one slice. Stored chunks deeper than one slice (COSEM's 64^3) are decoded once for all
their slices (``base.LayeredStack``): slice z reads its z-layer of chunks, and slices z + 1 .. of that layer
are cut from it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np

from napari_nrrn.io.formats.base import (
    LayeredStack,
    StackInfo,
    VoxelSize,
    calibration,
    check_channel,
    check_grey,
    lazy_array,
    nm,
)

NAME = "Zarr"
SUFFIXES = (".zarr",)
MARKERS = ("zarr.json", ".zgroup", ".zarray")


def recognises(path: Path) -> bool:
    return path.is_dir() and (
        path.suffix.lower() in SUFFIXES or any((path / marker).is_file() for marker in MARKERS)
    )


def inspect(path: Path, channel: int | None) -> StackInfo:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as error:  # zarr raises several types for a folder that is not a store
        raise ValueError(
            f"{path} is not a readable Zarr store ({error}): choose the .zarr folder itself"
        ) from None
    axes: list[str] | None = None
    voxel = (None, False)
    kind = "Zarr"
    arrays = []
    if isinstance(node, zarr.Group):
        attributes = node.attrs.asdict()
        multiscales = attributes.get("ome", attributes).get("multiscales")
        if multiscales:
            image = multiscales[0]
            dataset = image["datasets"][0]  # the full-resolution level
            arrays = [node[level["path"]] for level in image["datasets"]]
            axes_meta = image.get("axes")
            if axes_meta:
                axes = [a["name"] if isinstance(a, dict) else a for a in axes_meta]
                voxel = _ome_zarr_calibration(image, dataset, axes_meta)
            kind = f"OME-Zarr (level {dataset['path']}"
            kind += f" of {len(arrays)})" if len(arrays) > 1 else ")"
        else:
            names = list(node.array_keys())
            if len(names) != 1:
                raise ValueError(
                    f"{path} is a Zarr group with {len(names)} arrays ({', '.join(names[:5])}) and no OME "
                    "multiscales metadata: open the array's own folder, e.g. "
                    f"{path / (names[0] if names else 'ARRAY')}"
                )
            arrays = [node[names[0]]]
    else:
        arrays = [node]
    array = arrays[0]
    if axes is None:
        axes = {2: ["y", "x"], 3: ["z", "y", "x"]}.get(array.ndim)
        if axes is None:
            raise ValueError(
                f"{path} holds a {array.ndim}-D array {array.shape} without axis names: save it as (z, y, x) "
                "or as OME-Zarr with axes"
            )
    levels = tuple(_zarr_stack(path, level, axes, channel) for level in arrays)
    return StackInfo(path, kind, levels[0], *voxel, files=(path,), levels=levels if len(levels) > 1 else ())


def _zarr_stack(path: Path, array, axes: list[str], channel: int | None) -> da.Array:
    check_grey(path, array.dtype)
    if axes[-2:] != ["y", "x"]:
        raise ValueError(f"{path} has axes {axes}; napari-nrrn needs the last two axes to be y and x")
    selection: list[int | None] = []  # an index per axis before y and x; None for z
    depth, layer_depth = 1, 1
    for name, size, chunk in zip(axes[:-2], array.shape[:-2], array.chunks[:-2], strict=True):
        if name == "c":
            selection.append(check_channel(path, size, channel))
        elif name == "z":
            selection.append(None)
            depth, layer_depth = size, chunk
        elif size == 1:
            selection.append(0)
        else:
            raise ValueError(
                f"{path} has a {name!r} axis of length {size}: save a single z-stack (e.g. one time point)"
            )
    if "c" not in axes:
        check_channel(path, 1, channel)
    folder = path / array.path
    metadata = [folder / name for name in (".zarray", "zarr.json") if (folder / name).is_file()]
    stamp = max((file.stat().st_mtime_ns for file in metadata), default=0)
    shape = (depth, *array.shape[-2:])
    source = _ZarrStack(str(path), array.path, tuple(selection), shape, array.dtype.str, layer_depth, stamp)
    return lazy_array(source, f"{path}:{array.path}:{source.selection}:{stamp}")


@dataclass(frozen=True)
class _ZarrStack(LayeredStack):
    """Picklable (Z, Y, X) view of a Zarr array, opened in each process at its first read."""

    store: str
    inner: str  # the array's path in the store
    selection: tuple[int | None, ...]  # an index per axis before y and x; None for z
    shape: tuple[int, int, int]
    dtype_str: str
    layer_depth: int  # the stored chunks' depth in z
    stamp: int  # the array metadata's modification time: a rewritten array is not read from the cache

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.dtype_str)

    def decode_layer(self, index: int) -> np.ndarray:
        start = index * self.layer_depth
        return self._read(slice(start, min(start + self.layer_depth, self.shape[0])))

    def decode_plane(self, z: int) -> np.ndarray:
        return self._read(slice(z, z + 1))[0]

    def _read(self, zs: slice) -> np.ndarray:
        """Slices ``zs``, (n, Y, X): a stack without a z axis is its one slice."""
        array = _open_array(self.store, self.inner, self.stamp)
        values = array[tuple(zs if index is None else index for index in self.selection)]
        return values if None in self.selection else values[None]


@functools.lru_cache(maxsize=8)
def _open_array(store: str, inner: str, stamp: int):
    import zarr

    return zarr.open_array(store, path=inner, mode="r")


def _ome_zarr_calibration(image: dict, dataset: dict, axes_meta: list) -> tuple[VoxelSize | None, bool]:
    scale = np.ones(len(axes_meta))
    for transforms in (
        dataset.get("coordinateTransformations", []),
        image.get("coordinateTransformations", []),
    ):
        for transform in transforms:
            if transform.get("type") == "scale":
                scale = scale * np.asarray(transform["scale"], dtype=float)
    sizes = {}
    for axis, value in zip(axes_meta, scale, strict=True):
        if isinstance(axis, dict):
            sizes[axis["name"]] = nm(float(value), axis.get("unit"))
    return calibration(sizes.get("z"), sizes.get("y"), sizes.get("x"))
