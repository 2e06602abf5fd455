"""N5 (read-only): a small reader of the N5 specification, since zarr 3 dropped its N5 store and no
maintained package reads N5 with zarr >= 3 without heavy dependencies (tensorstore is 100+ MB).

A dataset is a folder with ``attributes.json`` (``dimensions`` and ``blockSize`` x first, ``dataType``,
``compression``) and one file per block at ``<x>/<y>/<z>``: a big-endian header (mode u2, number of
dimensions u2, the block's size u4 each, x first; mode 1 adds an element count u4), then the block's
elements, x fastest, raw or compressed (gzip, zlib, bzip2, xz). A missing block is zeros. The path may
name the dataset folder, or the N5 root with the dataset path after it (``root.n5/raw`` or
``root.n5:raw``); a multiscale group opens at ``s0``. Voxel size from ``pixelResolution``
(``dimensions`` x first, ``unit``), ``resolution`` (nm, x first) or a COSEM ``transform``.

Each dask chunk is one slice; the blocks of one z-layer are decoded once for all its slices
(``base.LayeredStack``).
"""

from __future__ import annotations

import bz2
import json
import lzma
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_nrrn.io.formats.base import (
    LayeredStack,
    StackInfo,
    calibration,
    check_channel,
    check_grey,
    corrupt,
    lazy_array,
    nm,
)

NAME = "N5"
SUFFIXES = (".n5",)
_INNER = re.compile(r"^(.*?\.n5):(.*)$", re.IGNORECASE)
_DECOMPRESS = {
    "raw": lambda data: data,
    "gzip": lambda data: zlib.decompress(data, wbits=47),  # gzip or zlib header, detected
    "bzip2": bz2.decompress,
    "xz": lzma.decompress,
}


def split(path: Path) -> tuple[Path, str] | None:
    """(root, dataset path) for an N5 root, ``root.n5:inner``, or a folder inside an N5 root."""
    match = _INNER.match(str(path))
    if match:
        return Path(match.group(1)), match.group(2).strip("/")
    for parent in (path, *path.parents):
        if parent.is_dir() and _is_root(parent):
            return parent, path.relative_to(parent).as_posix().strip(".").strip("/")
    return None


def recognises(path: Path) -> bool:
    return split(path) is not None


def inspect(path: Path, channel: int | None) -> StackInfo:
    root, inner = split(path)
    check_channel(root, 1, channel)
    folder = root / inner
    attributes = _attributes(folder)
    if "dimensions" not in attributes and (folder / "s0" / "attributes.json").is_file():
        folder, group = folder / "s0", attributes  # a multiscale group: its full-resolution level
        attributes = _attributes(folder)
    else:
        group = {}
    if "dimensions" not in attributes:
        found = (p.parent for p in root.rglob("attributes.json") if _is_dataset(p))
        names = sorted(f.relative_to(root).as_posix() for f in found)
        raise ValueError(
            f"{folder} is not an N5 dataset; the datasets of {root} are: {', '.join(names) or 'none'}"
        )
    dimensions = [int(n) for n in attributes["dimensions"]][::-1]  # (z, y, x)
    blocks = [int(n) for n in attributes["blockSize"]][::-1]
    if len(dimensions) not in (2, 3):
        raise ValueError(f"{folder} is {len(dimensions)}-D {tuple(dimensions)}: save a (z, y, x) stack")
    dtype = check_grey(folder, np.dtype(attributes["dataType"]))
    compression = attributes.get("compression", {"type": attributes.get("compressionType", "raw")})
    kind = compression.get("type", "raw")
    if kind not in _DECOMPRESS:
        raise ValueError(
            f"{folder} uses {kind} compression, which napari-nrrn does not read (raw, gzip, bzip2, xz): "
            "re-save it with gzip (e.g. in Fiji, N5 export) or as OME-Zarr"
        )
    if len(dimensions) == 2:
        dimensions, blocks = [1, *dimensions], [1, *blocks]
    known = _calibration(attributes) or _calibration(group) or (None, False)
    stamp = (folder / "attributes.json").stat().st_mtime_ns
    file_dtype = dtype.newbyteorder(">").str
    source = _Dataset(str(folder), tuple(dimensions), tuple(blocks), file_dtype, kind, stamp)
    array = lazy_array(source, f"{folder}:{stamp}")
    name = folder.relative_to(root).as_posix() if folder != root else root.name
    return StackInfo(path, f"N5 {name} ({kind}, blocks {tuple(blocks)})", array, *known, files=(folder,))


def _is_root(folder: Path) -> bool:
    """An ``.n5`` folder, a folder whose attributes name the N5 version, or a dataset on its own."""
    if folder.suffix.lower() in SUFFIXES:
        return True
    if not (folder / "attributes.json").is_file():
        return False
    attributes = _attributes(folder)
    return "n5" in attributes or {"dimensions", "blockSize", "dataType"} <= attributes.keys()


def _is_dataset(attributes: Path) -> bool:
    return "dimensions" in _attributes(attributes.parent)


def _attributes(folder: Path) -> dict:
    file = folder / "attributes.json"
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise corrupt(file, f"not JSON: {error}") from None


def _calibration(attributes: dict):
    if "pixelResolution" in attributes:
        resolution = attributes["pixelResolution"]
        if isinstance(resolution, dict):
            sizes, unit = resolution.get("dimensions", []), resolution.get("unit", "nm")
        else:
            sizes, unit = resolution, "nm"
        return _xyz(sizes, unit)
    if "resolution" in attributes:
        return _xyz(attributes["resolution"], (attributes.get("units") or ["nm"])[0])
    transform = attributes.get("transform")
    if isinstance(transform, dict) and "axes" in transform and "scale" in transform:
        units = transform.get("units", ["nm"] * len(transform["axes"]))
        axes = zip(transform["axes"], transform["scale"], units, strict=False)
        sizes = {axis: nm(float(size), unit) for axis, size, unit in axes}
        return calibration(sizes.get("z"), sizes.get("y"), sizes.get("x"))
    return None


def _xyz(sizes, unit: str):
    sizes = [nm(float(s), unit) for s in sizes]
    if len(sizes) < 2:
        return None
    return calibration(sizes[2] if len(sizes) > 2 else None, sizes[1], sizes[0])


@dataclass(frozen=True)
class _Dataset(LayeredStack):
    """Picklable (Z, Y, X) view of an N5 dataset, read one z-layer of blocks at a time."""

    folder: str
    shape: tuple[int, int, int]
    blocks: tuple[int, int, int]  # (z, y, x)
    file_dtype: str  # big-endian
    compression: str
    stamp: int  # attributes.json's modification time: a rewritten dataset is not read from the cache

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.file_dtype).newbyteorder("=")

    @property
    def layer_depth(self) -> int:
        return self.blocks[0]

    def decode_layer(self, index: int) -> np.ndarray:
        """Every block of z-layer ``index`` decoded: (layer depth, Y, X)."""
        return self._decode_layer(index, None)

    def decode_plane(self, z: int) -> np.ndarray:
        return self._decode_layer(z // self.blocks[0], z % self.blocks[0])

    def _decode_layer(self, index: int, keep: int | None) -> np.ndarray:
        bz, by, bx = self.blocks
        depth = min(bz, self.shape[0] - index * bz)
        out = np.zeros((depth if keep is None else 1, *self.shape[1:]), self.dtype)
        for iy in range(-(-self.shape[1] // by)):
            for ix in range(-(-self.shape[2] // bx)):
                block = self._block(ix, iy, index)
                if block is None:
                    continue
                block = block if keep is None else block[keep : keep + 1]
                out[:, iy * by : iy * by + block.shape[1], ix * bx : ix * bx + block.shape[2]] = block
        return out if keep is None else out[0]

    def _block(self, ix: int, iy: int, iz: int) -> np.ndarray | None:
        path = Path(self.folder, str(ix), str(iy), str(iz))
        if not path.is_file():
            return None  # N5: a block never written is empty
        raw = path.read_bytes()
        try:
            mode, ndim = np.frombuffer(raw, ">u2", 2)
            size = np.frombuffer(raw, ">u4", ndim, 4)[::-1]  # (z, y, x)
            start = 4 + 4 * ndim + (4 if mode == 1 else 0)
            data = _DECOMPRESS[self.compression](raw[start:])
            count = int(np.prod(size))
            values = np.frombuffer(data, self.file_dtype, count)
        except (ValueError, OSError, EOFError, zlib.error, lzma.LZMAError) as error:
            raise corrupt(path, f"N5 block: {error}") from None
        if ndim == 2:
            size = np.array([1, *size])
        return values.reshape(size).astype(self.dtype, copy=False)
