"""HDF5 via h5py: ``file.h5`` with an inner dataset path, ``file.h5/volumes/raw`` or ``file.h5:/volumes/raw``.
A file holding one 2-D or 3-D dataset opens without a path; several are listed in the error.

Voxel size from the dataset's (or else the file's) attributes: ``resolution`` (CREMI: nm, z y x),
``element_size_um`` (ImageJ, ilastik: micrometre, z y x) or ``PixelSize`` (nm: one number for x and y, or
z y x). Each dask chunk is one slice. The file stays open in the process with a chunk cache that holds one
z-layer of stored chunks, so that reading slice z + 1 does not decode again what slice z decoded.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from napari_nrrn.io.formats.base import StackInfo, calibration, check_channel, check_grey, lazy_array, nm

NAME = "HDF5"
SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
# Largest chunk cache given to one dataset: a z-layer of chunks above it is decoded again for each slice.
CACHE_CAP_BYTES = 1 << 30
_INNER = re.compile(r"^(.*?\.(?:h5|hdf5|hdf|he5)):(.*)$", re.IGNORECASE)


def split(path: Path) -> tuple[Path, str] | None:
    """(file, inner dataset path) for ``file.h5``, ``file.h5:/inner`` or ``file.h5/inner``; None when no
    existing HDF5 file is named."""
    match = _INNER.match(str(path))
    if match:
        return Path(match.group(1)), match.group(2).strip("/")
    for parent in (path, *path.parents):
        if parent.suffix.lower() in SUFFIXES and parent.is_file():
            return parent, path.relative_to(parent).as_posix().strip(".").strip("/")
    return None


def recognises(path: Path) -> bool:
    found = split(path)
    return found is not None and found[0].is_file()


def stack_datasets(file: Path) -> list[str]:
    """The 2-D and 3-D grey-level datasets of an HDF5 file, by path."""
    import h5py

    names = []

    def visit(name, node):
        if isinstance(node, h5py.Dataset) and node.ndim in (2, 3) and node.dtype.kind in "biuf":
            names.append(name)

    with _open(file) as handle:
        handle.visititems(visit)
    return names


def inspect(path: Path, channel: int | None) -> StackInfo:
    import h5py

    file, inner = split(path)
    check_channel(file, 1, channel)
    with _open(file) as handle:
        if not inner:
            names = stack_datasets(file)
            if len(names) != 1:
                listed = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
                raise ValueError(
                    f"{file} holds no 2-D or 3-D image dataset: choose another file"
                    if not names
                    else f"{file} holds {len(names)} image datasets ({listed}): name one, "
                    f"e.g. {file}/{names[0]}"
                )
            inner = names[0]
        node = handle.get(inner)
        if not isinstance(node, h5py.Dataset):
            names = stack_datasets(file)
            raise ValueError(
                f"{file} has no dataset {inner!r}; its image datasets are: {', '.join(names) or 'none'}"
            )
        if node.ndim not in (2, 3):
            raise ValueError(f"{file}/{inner} is {node.ndim}-D {node.shape}: save a (z, y, x) stack")
        dtype = check_grey(Path(f"{file}/{inner}"), node.dtype)
        if node.compression is None and node.chunks is None and node.id.get_offset() is not None:
            end = node.id.get_offset() + node.id.get_storage_size()
            if end > file.stat().st_size:
                raise ValueError(f"{file} is truncated ({inner} ends past its end): copy the file again")
        known = _calibration(node) or _calibration(handle) or (None, False)
        shape = node.shape if node.ndim == 3 else (1, *node.shape)
        chunks = node.chunks
    source = _Dataset(str(file), inner, shape, dtype.str, node_chunks(chunks), file.stat().st_mtime_ns)
    array = lazy_array(source, f"{file}:{inner}:{source.stamp}")
    layout = f"chunks {chunks}" if chunks else "contiguous"
    return StackInfo(path, f"HDF5 {inner} ({layout})", array, *known, files=(file,))


def node_chunks(chunks) -> tuple[int, int, int] | None:
    if chunks is None:
        return None
    return tuple(chunks) if len(chunks) == 3 else (1, *chunks)


def _open(file: Path):
    import h5py

    try:
        return h5py.File(file, "r")
    except OSError as error:
        raise ValueError(
            f"{file} is not a readable HDF5 file ({error}): check that it was copied completely"
        ) from None


def _calibration(node):
    attributes = node.attrs
    if "resolution" in attributes:
        z, y, x = _three(attributes["resolution"])
        return calibration(nm(z, "nm"), nm(y, "nm"), nm(x, "nm"))
    if "element_size_um" in attributes:
        z, y, x = _three(attributes["element_size_um"])
        return calibration(nm(z, "um"), nm(y, "um"), nm(x, "um"))
    if "PixelSize" in attributes:
        values = np.atleast_1d(np.asarray(attributes["PixelSize"], dtype=float))
        z, y, x = _three(values) if values.size == 3 else (None, values[0], values[0])
        return calibration(nm(z, "nm") if z is not None else None, nm(y, "nm"), nm(x, "nm"))
    return None


def _three(values) -> tuple[float, float, float]:
    values = [float(v) for v in np.atleast_1d(np.asarray(values, dtype=float))]
    return tuple(values[-3:]) if len(values) >= 3 else (None, values[-2], values[-1])


class _Dataset:
    """Picklable (Z, Y, X) view of an HDF5 dataset: opened in each process at its first read."""

    ndim = 3

    def __init__(self, file: str, inner: str, shape, dtype: str, chunks, stamp: int):
        self.file, self.inner, self.shape, self.dtype = file, inner, tuple(shape), np.dtype(dtype)
        self.chunks, self.stamp = chunks, stamp  # stored chunks (z, y, x); modification time

    def __getitem__(self, key):
        dataset = open_dataset(self.file, self.inner, self.chunks, self.shape, self.dtype.str, self.stamp)
        if dataset.ndim == 2:
            key = key if isinstance(key, tuple) else (key,)
            return dataset[key[1:]][None] if isinstance(key[0], slice) else dataset[key[1:]]
        return dataset[key]


@functools.lru_cache(maxsize=8)
def open_dataset(file: str, inner: str, chunks, shape, dtype: str, stamp: int):
    """The dataset, open for reading with a chunk cache of one z-layer of stored chunks (capped); ``stamp``
    (the file's modification time) reopens a file that changed."""
    import h5py

    handle = h5py.File(file, "r")
    if chunks is None:
        return handle[inner]
    count = -(-shape[1] // chunks[1]) * -(-shape[2] // chunks[2])
    layer = count * int(np.prod(chunks)) * np.dtype(dtype).itemsize
    # Set on the dataset, not the file: HDF5 shares one open file between opens, keeping the first's cache.
    access = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    access.set_chunk_cache(max(521, 10 * count + 1), max(1 << 20, min(layer, CACHE_CAP_BYTES)), 0.75)
    return h5py.Dataset(h5py.h5d.open(handle.id, inner.encode(), dapl=access))
