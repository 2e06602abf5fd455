"""MRC / IMOD (``.mrc``, ``.rec``, ``.st``, ``.map``) via mrcfile: the header is read, then each slice is one
positioned read of its bytes (uncompressed, contiguous after the header and extended header).

Mode 0 (8-bit) is signed in MRC2014 but many writers store unsigned bytes. The rule, from the file's own
evidence: the header's DMIN/DMAX when they are consistent (DMAX > 127: unsigned; DMIN < 0: signed); else
IMOD's stamp (``imodStamp`` 1146047817) with its flag bit 0 (set: signed, clear: unsigned); else signed, as
the standard says. An unrecognised machine stamp (some IMOD exports) is read as little-endian with a warning.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np

from napari_nrrn.io.formats.base import RawPlane, StackInfo, calibration, corrupt, lazy, nm

NAME = "MRC"
SUFFIXES = (".mrc", ".rec", ".st", ".map")
HEADER_BYTES = 1024
IMOD_STAMP = 1146047817
_MODES = {0: "i1", 1: "i2", 2: "f4", 6: "u2", 12: "f2"}
_COMPLEX = {3: "complex int16", 4: "complex float32"}


def recognises(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES and path.is_file()


def inspect(path: Path, channel: int | None) -> StackInfo:
    import mrcfile

    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise corrupt(path, f"{size} bytes, less than the 1024-byte MRC header")
    with warnings.catch_warnings(record=True) as found:
        warnings.simplefilter("always")
        try:
            with mrcfile.open(path, header_only=True, permissive=True) as mrc:
                header = mrc.header.copy()
                extended = int(header.nsymbt)
                voxel = mrc.voxel_size.copy()
                order = mrc.header.mode.dtype.byteorder
        except (ValueError, OSError) as error:
            raise ValueError(
                f"{path} is not a readable MRC file ({error}): check that it is an MRC image"
            ) from None
    mode = int(header.mode)
    nx, ny, nz = (int(header.nx), int(header.ny), int(header.nz))
    if min(nx, ny, nz) < 1 or header.map != b"MAP " and not _plausible(header):
        raise ValueError(
            f"{path} is not an MRC image (no 'MAP ' identifier, {nx}x{ny}x{nz} voxels, mode {mode}): check "
            "that the file is an MRC/IMOD image, copied completely"
        )
    if mode in _COMPLEX:
        raise ValueError(
            f"{path} holds {_COMPLEX[mode]} values (MRC mode {mode}); napari-nrrn denoises real grey levels: "
            "save the amplitude as a real image (e.g. IMOD: clip amplitude) and open that"
        )
    if mode not in _MODES:
        raise ValueError(
            f"{path} has MRC mode {mode}, which napari-nrrn does not read (modes 0, 1, 2, 6, 12): convert it "
            "(e.g. IMOD: newstack -mode 1) and open the result"
        )
    for warning in found:
        if "machine stamp" in str(warning.message):
            message = f"{path}: {warning.message}; reading it as little-endian"
            warnings.warn(message, UserWarning, stacklevel=3)
    order = order if order in "<>" else "<" if np.little_endian else ">"
    dtype = np.dtype(_mode0_dtype(header, order) if mode == 0 else _MODES[mode])
    file_dtype = dtype.newbyteorder(order).str
    offset = HEADER_BYTES + extended
    end = offset + nx * ny * nz * dtype.itemsize
    if end > size:
        raise corrupt(path, f"{nx}x{ny}x{nz} voxels of mode {mode} end at byte {end}, the file has {size}")
    plane_bytes = nx * ny * dtype.itemsize
    planes = [RawPlane(str(path), offset + z * plane_bytes, file_dtype, (ny, nx)) for z in range(nz)]
    array = lazy(planes, (ny, nx), dtype.newbyteorder("="), path.stat().st_mtime_ns)
    # Angstrom to nm; a cell of 0 (unset) gives 0, "unknown"
    size_nm = [nm(float(voxel[axis]), "angstrom") for axis in ("z", "y", "x")]
    known = calibration(size_nm[0], size_nm[1], size_nm[2])
    return StackInfo(path, f"MRC mode {mode} ({dtype})", array, *known, files=(path,))


def _plausible(header) -> bool:
    """An old-style file (before MRC2014's 'MAP ' identifier) still names its axes 1, 2, 3 in some order."""
    return sorted((int(header.mapc), int(header.mapr), int(header.maps))) == [1, 2, 3]


def _mode0_dtype(header, order: str) -> str:
    low, high = float(header.dmin), float(header.dmax)
    if low <= high:
        if high > 127:
            return "u1"
        if low < 0:
            return "i1"
    # IMOD's stamp and flags: header words 39 and 40 (bytes 152 and 156), inside mrcfile's "extra2"
    stamp, flags = struct.unpack_from(order + "ii", header.tobytes(), 152)
    if stamp == IMOD_STAMP:
        return "i1" if flags & 1 else "u1"
    return "i1"
