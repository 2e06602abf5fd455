"""What every format module shares: ``StackInfo``, units, channel checks and lazy per-slice arrays.

A format module offers the same three names:

- ``NAME``: a short name for messages and docs;
- ``recognises(path) -> bool``: a cheap check from the name, a folder listing or a few header bytes;
  it never reads pixels (it may raise ``OSError``; the dispatcher treats that as "no");
- ``inspect(path, channel) -> StackInfo``: the lazy (Z, Y, X) dask array and its voxel size, from metadata
  only, or a ``ValueError`` naming the file and the fix.

Folder formats (``tiff``, ``dat``) add ``content_ok(path)`` (the first file's content, for napari's reader
check) and ``folder_calibration(folder)`` (the voxel size from the first file alone).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as da
import numpy as np
from dask.base import tokenize

VoxelSize = tuple[float, float, float]
# Largest z-layer of decoded chunks kept for the slices after the first (``LayeredStack``; the last two layers
# read are kept): a deeper layer is decoded again for each slice, which bounds memory at the cost of speed.
LAYER_CAP_BYTES = 1 << 29

# Length units of ImageJ, OME-XML, OME-Zarr (UDUNITS-2 names) and N5 metadata, in nanometres.
_NM_PER_UNIT = {
    "pm": 1e-3,
    "picometer": 1e-3,
    "å": 0.1,
    "angstrom": 0.1,
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "um": 1e3,
    "µm": 1e3,  # micro sign
    "μm": 1e3,  # Greek mu
    "\\u00b5m": 1e3,  # ImageJ escapes the micro sign in its description
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "millimetre": 1e6,
    "cm": 1e7,
    "centimeter": 1e7,
    "m": 1e9,
    "meter": 1e9,
    "metre": 1e9,
}


@dataclass(frozen=True)
class StackInfo:
    """What ``inspect_stack`` found: the lazy array, its voxel size and where its bytes live.

    ``z_step_assumed``: the file records the pixel size but not the z step, which is then taken equal to
    the x pixel size (or to the caller's ``z_step_nm``). ``levels``: a stored resolution pyramid, full
    resolution first (``array`` is ``levels[0]``); empty for a single-scale stack.
    """

    path: Path
    format: str
    array: da.Array
    voxel_size: VoxelSize | None
    z_step_assumed: bool
    files: tuple[Path, ...]
    levels: tuple[da.Array, ...] = field(default=())

    @property
    def disk_bytes(self) -> int:
        """Bytes the stack occupies on disk (every slice file; for Zarr, N5 and HDF5 the whole store)."""
        total = 0
        for file in self.files:
            if file.is_dir():
                total += sum(f.stat().st_size for f in file.rglob("*") if f.is_file())
            else:
                total += file.stat().st_size
        return total


def natural_sort_key(name: str) -> list:
    """Sort key that orders embedded numbers by value: ``s2`` before ``s10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def slice_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files of ``folder`` with one of ``suffixes``, natural order, hidden ones (``._x.tif``) skipped."""
    files = (f for f in folder.iterdir() if f.suffix.lower() in suffixes and not f.name.startswith("."))
    return sorted((f for f in files if f.is_file()), key=lambda f: natural_sort_key(f.name))


def file_or_slice_folder(path: Path, suffixes: tuple[str, ...]) -> bool:
    """Whether ``path`` is a file with one of ``suffixes``, or a folder holding such files (by name)."""
    if path.is_dir():
        return bool(slice_files(path, suffixes))
    return path.suffix.lower() in suffixes and path.is_file()


def first_file(path: Path, suffixes: tuple[str, ...]) -> Path:
    """``path`` itself, or the first of its slice files when it is a folder."""
    return slice_files(path, suffixes)[0] if path.is_dir() else path


def nm(value: float, unit: str | None) -> float | None:
    """``value`` in ``unit`` as nm, rounded to 6 significant digits (metadata holds no more than that);
    None for a missing or unknown unit, or a value that is not a positive number."""
    factor = _NM_PER_UNIT.get(str(unit).strip().lower()) if unit else None
    if factor is None or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        return None
    return float(f"{value * factor:.6g}")


def calibration(z: float | None, y: float | None, x: float | None) -> tuple[VoxelSize | None, bool]:
    """((z, y, x), z assumed) when y and x are known: a missing z step is taken equal to x (near-isotropic
    FIB-SEM) and flagged as assumed; (None, False) when the pixel size is unknown."""
    if y is None or x is None:
        return None, False
    return (z if z is not None else x, y, x), z is None


def check_channel(path: Path, channels: int, channel: int | None) -> int:
    channel = 0 if channel is None else int(channel)
    if not 0 <= channel < channels:
        raise ValueError(
            f"channel {channel} does not exist in {path}: it has {channels} channel(s), "
            f"choose channel 0{f' to {channels - 1}' if channels > 1 else ''}"
        )
    return channel


def corrupt(path: Path, detail: str) -> ValueError:
    return ValueError(f"{path} is truncated or corrupt ({detail}): copy the file again or re-export it")


def check_grey(path: Path, dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise ValueError(
            f"{path} holds complex numbers ({dtype}); napari-nrrn denoises real grey levels: save the "
            "magnitude (or the real part) as a grey-level image"
        )
    if dtype.kind not in "biuf":
        raise ValueError(f"{path} holds {dtype} values; napari-nrrn needs real grey levels")
    return dtype


# ---------------------------------------------------------------------------------------------------------
# Lazy planes: a small picklable array-like that dask reads one chunk (one slice) at a time.


@dataclass(frozen=True)
class RawPlane:
    """An uncompressed plane stored contiguously in a file: one positioned read of its bytes."""

    path: str
    offset: int
    dtype: str  # in the file's byte order
    shape: tuple[int, int]

    def read(self) -> np.ndarray:
        count = self.shape[0] * self.shape[1]
        values = np.fromfile(self.path, dtype=self.dtype, count=count, offset=self.offset)
        if values.size != count:
            raise ValueError(f"{self.path} is shorter than when it was opened: copy it again and reopen it")
        return values.reshape(self.shape).astype(np.dtype(self.dtype).newbyteorder("="), copy=False)


class PlaneStack:
    """(Z, Y, X) array-like over per-slice planes on disk. ``da.from_array`` calls ``__getitem__`` with the
    slices of one chunk; only the planes that key selects are read."""

    ndim = 3

    def __init__(self, planes: Sequence, plane_shape: tuple[int, int], dtype: np.dtype):
        self.planes = tuple(planes)
        self.shape = (len(self.planes), *plane_shape)
        self.dtype = np.dtype(dtype)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        z = np.arange(self.shape[0])[key[0]]
        in_plane = key[1:]
        if z.ndim == 0:
            return self._read(int(z))[in_plane]
        out = np.empty((len(z), *self.shape[1:]), self.dtype)
        for i, index in enumerate(z):
            out[i] = self._read(int(index))
        return out[(slice(None), *in_plane)]

    def _read(self, z: int) -> np.ndarray:
        plane = self.planes[z].read()
        if plane.shape != self.shape[1:] or plane.dtype != self.dtype:
            raise ValueError(
                f"slice {z} ({self.planes[z].path}) is now {plane.shape} {plane.dtype}, not "
                f"{self.shape[1:]} {self.dtype} as when the stack was opened: the file changed; reopen it"
            )
        return plane


def lazy(planes: Sequence, plane_shape: tuple[int, int], dtype: np.dtype, *identity) -> da.Array:
    """A dask array with one chunk per plane; ``identity`` (e.g. modification times) names the graph."""
    return lazy_array(PlaneStack(planes, plane_shape, dtype), tokenize(tuple(planes), *identity))


def lazy_array(source, identity: str) -> da.Array:
    """A dask array over a (Z, Y, X) array-like, one chunk per slice, named by ``identity``."""
    return da.from_array(
        source,
        chunks=(1, *source.shape[1:]),
        name=f"open_stack-{tokenize(identity, source.shape, np.dtype(source.dtype).str)}",
        meta=np.empty((0, 0, 0), source.dtype),
        asarray=False,
    )


class LayeredStack:
    """(Z, Y, X) array-like over stored chunks ``layer_depth`` slices deep whose library decodes whole chunks
    (N5, Zarr): reading a slice decodes its z-layer of chunks once and keeps it, so that the other slices of
    that layer are cut from it rather than decoded again. A layer above ``LAYER_CAP_BYTES`` is not kept: each
    slice then decodes every chunk it crosses.

    Subclasses are frozen dataclasses (hashable and picklable: the layer cache is keyed on them) with
    ``shape``, ``dtype`` and ``layer_depth``, and define ``decode_layer(index)`` -> (layer depth, Y, X) and
    ``decode_plane(z)`` -> (Y, X).
    """

    ndim = 3

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        zs = np.arange(self.shape[0])[key[0]]
        planes = [self._plane(int(z)) for z in np.atleast_1d(zs)]
        # np.stack copies: a caller that writes into a slice never writes into the cached layer.
        out = np.stack(planes)
        return out[(slice(None), *key[1:])] if zs.ndim else out[(0, *key[1:])]

    def _plane(self, z: int) -> np.ndarray:
        depth = self.layer_depth
        layer_bytes = depth * self.shape[1] * self.shape[2] * np.dtype(self.dtype).itemsize
        if depth == 1 or layer_bytes > LAYER_CAP_BYTES:
            return self.decode_plane(z)
        return _cached_layer(self, z // depth)[z % depth]


@functools.lru_cache(maxsize=2)
def _cached_layer(source: LayeredStack, index: int) -> np.ndarray:
    return source.decode_layer(index)
