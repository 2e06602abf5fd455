"""MRC output through ``mrcfile.new_mmap``: the file is created at its full size, then filled one slice at a
time, so memory holds one slice whatever the depth. Each written slice's pages are unmapped from the process
(``MADV_DONTNEED``; the kernel still writes them back from its page cache): otherwise every page written
stays in the process's resident memory, 1.2 GB more for a 1.1 GB stack. The file's blocks are allocated
up front: ``new_mmap`` makes a sparse file, and writing into a sparse mapping on a full disk kills the
process with SIGBUS instead of raising a clear ``OSError`` (no space left).

Voxel size in Angstrom (10 per nm) in the header's cell. Header statistics (min, max, mean, rms) are
accumulated slice by slice, never by reading the whole map back. Types: the MRC modes int8 (0), int16 (1),
float32 (2), uint16 (6) and float16 (12), and uint8 as mode 0 bytes marked unsigned the way IMOD does
(``imodStamp`` at byte 152, ``imodFlags`` bit 0 clear): IMOD and readers that honour the stamp read 0..255,
readers that ignore it (``mrcfile`` itself) see the same bytes as int8.
"""

from __future__ import annotations

import errno
import mmap
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

MRC_DTYPES = tuple(np.dtype(t) for t in ("uint8", "int8", "int16", "uint16", "float16", "float32"))
IMOD_STAMP = 1146047817  # "IMOD" read as an int32
IMOD_STAMP_OFFSET = 40  # in the header's extra2 field (byte 112): imodStamp at 152, imodFlags at 156


def mrc_writer(shape: tuple[int, int, int], dtype: np.dtype, voxel):
    """A context-manager factory for ``writers._write_slices``: ``open_writer(path)`` creates the MRC file
    and yields ``write_plane(z, plane)``."""
    import mrcfile
    from mrcfile.utils import mode_from_dtype

    stored = np.dtype(np.int8) if dtype == np.uint8 else dtype

    @contextmanager
    def open_writer(temporary: Path):
        stats = {"min": np.inf, "max": -np.inf, "sum": 0.0, "squares": 0.0}
        with mrcfile.new_mmap(temporary, shape, mrc_mode=mode_from_dtype(stored), overwrite=True) as mrc:
            _allocate(temporary)
            if voxel:
                mrc.voxel_size = tuple(10 * size for size in reversed(voxel))  # (x, y, z) in Angstrom
            if dtype == np.uint8:
                _mark_bytes_unsigned(mrc.header)

            def write_plane(z: int, plane: np.ndarray) -> None:
                plane = plane.astype(dtype, copy=False)
                mrc.data[z] = plane.view(stored)
                _unmap_slice(mrc.data, z)
                values = plane.astype(np.float64)
                stats["min"] = min(stats["min"], values.min())
                stats["max"] = max(stats["max"], values.max())
                stats["sum"] += values.sum()
                stats["squares"] += np.square(values).sum()

            yield write_plane
            count = float(np.prod(shape))
            mean = stats["sum"] / count
            mrc.header.dmin, mrc.header.dmax, mrc.header.dmean = stats["min"], stats["max"], mean
            mrc.header.rms = np.sqrt(max(stats["squares"] / count - mean**2, 0.0))

    return open_writer


def _allocate(path: Path) -> None:
    with open(path, "r+b") as file:
        try:
            os.posix_fallocate(file.fileno(), 0, os.fstat(file.fileno()).st_size)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise  # no space, a quota: now, before any slice is computed
            # a file system that cannot allocate ahead: the file stays sparse


def _unmap_slice(data: np.memmap, z: int) -> None:
    """Drop slice ``z``'s pages from the mapping. A shared mapping keeps written data in the page cache, so
    nothing is lost; only the process stops holding it."""
    mapped = getattr(data, "_mmap", None)  # numpy's memmap keeps its mmap.mmap here
    if mapped is None or not hasattr(mmap, "MADV_DONTNEED"):
        return
    size = data[0].nbytes
    start = (data.offset + z * size) // mmap.PAGESIZE * mmap.PAGESIZE
    mapped.madvise(mmap.MADV_DONTNEED, start, data.offset + (z + 1) * size - start)


def _mark_bytes_unsigned(header) -> None:
    extra = bytearray(bytes(header.extra2))
    stamp = np.array([IMOD_STAMP, 0], dtype=header.nx.dtype)  # the header's own byte order
    extra[IMOD_STAMP_OFFSET : IMOD_STAMP_OFFSET + 8] = stamp.tobytes()
    header.extra2 = bytes(extra)
