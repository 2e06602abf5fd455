"""Janelia FIB-SEM ``.dat`` frames, header versions 1 to 9: one frame, or a folder of frames as a stack.

The layout (Janelia/Shtengel readers: Fiji ``FIBSEM_Reader``, ``fibsem-fiji``): a 1024-byte big-endian
header with the magic number 0xD3EDF5F2 at byte 0 and the version (u2) at 4; ``ChanNum`` (u1) at 32 and
``EightBit`` (u1) at 33; ``XResolution``/``YResolution`` (u4) at 100/104; detector names at 380 and 390;
the pixel size in nm, f8 at 416 in versions 1-2 and f4 at 464 from version 3. Then the detector channels
interleaved pixel by pixel from byte 1024: ``>u1`` when ``EightBit`` is set, else ``>i2``. The data size
comes from the header, never from the file length (nor from the header's unreliable ``FileLength``).

Rules: a frame shorter than its header announces is an error naming it when the stack is opened (never
zeros: a silent black slice would be denoised and written as if real). The z step is recorded nowhere:
it is taken equal to the pixel size and flagged as assumed (``StackInfo.z_step_assumed``) unless the
caller gives it. A folder's frames are sorted by the acquisition time in their names
(``Machine_YY-MM-DD_HHMMSS_tile.dat``), and must share one version, size and channel count.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_nrrn.io.formats.base import (
    StackInfo,
    calibration,
    check_channel,
    file_or_slice_folder,
    first_file,
    lazy,
    natural_sort_key,
    nm,
    slice_files,
)
from napari_nrrn.words import plural

NAME = "FIB-SEM .dat"
SUFFIXES = (".dat",)
MAGIC_NUMBER = 3555587570  # 0xD3EDF5F2 at offset 0
HEADER_BYTES = 1024
SUPPORTED_VERSIONS = tuple(range(1, 10))
# Acquisition date and time in a Janelia frame name: Merlin-6257_21-05-20_125416_0-0-0.dat
_ACQUIRED = re.compile(r"_(\d\d)-(\d\d)-(\d\d)_(\d{6})_")


@dataclass(frozen=True)
class DatHeader:
    """The header fields a stack reader needs (sizes in pixels, pixel size in nm)."""

    version: int
    channels: int
    eight_bit: bool
    width: int
    height: int
    pixel_size_nm: float
    detectors: tuple[str, ...]
    sample_id: str
    machine_id: str

    @property
    def dtype(self) -> np.dtype:
        """On-disk pixel type (big-endian)."""
        return np.dtype("u1") if self.eight_bit else np.dtype(">i2")

    @property
    def data_bytes(self) -> int:
        return self.width * self.height * self.channels * self.dtype.itemsize


def recognises(path: Path) -> bool:
    """A ``.dat`` file, or a folder of them (by their names)."""
    return file_or_slice_folder(path, SUFFIXES)


def content_ok(path: Path) -> bool:
    """The (first) frame starts with the magic number."""
    return is_dat(first_file(path, SUFFIXES))


def folder_calibration(folder: Path):
    """The calibration of a folder of frames from its first frame's header."""
    return header_calibration(read_header(frame_files(folder)[0]))


def inspect(path: Path, channel: int | None) -> StackInfo:
    files = frame_files(path) if path.is_dir() else [path]
    first = read_header(files[0])
    channel = check_channel(files[0], first.channels, channel)
    planes = [_DatPlane(str(files[0]), first, channel)]
    for file in files[1:]:
        header = read_header(file)
        layout = (header.version, header.width, header.height, header.channels, header.eight_bit)
        if layout != (first.version, first.width, first.height, first.channels, first.eight_bit):
            raise ValueError(
                f"{file} is {_describe(header)} but {files[0].name} is {_describe(first)}: every frame of a "
                f"folder must have one version, size and type; move {file.name} out"
            )
        planes.append(_DatPlane(str(file), header, channel))
    dtype = first.dtype.newbyteorder("=")
    array = lazy(planes, (first.height, first.width), dtype, [f.stat().st_mtime_ns for f in files])
    detector = first.detectors[channel] if channel < len(first.detectors) else f"channel {channel}"
    kind = f"FIB-SEM .dat v{first.version}, {detector}"
    if path.is_dir():
        kind = f"folder of {plural(len(files), kind + ' frame')}"
    return StackInfo(path, kind, array, *header_calibration(first), files=tuple(files))


def header_calibration(header: DatHeader):
    pixel = nm(header.pixel_size_nm, "nm")
    return calibration(None, pixel, pixel)


def frame_files(folder: Path) -> list[Path]:
    """The ``.dat`` frames of a folder in acquisition order: by the date and time in their names when every
    name holds one, else in natural order."""
    files = slice_files(folder, SUFFIXES)
    stamps = [_ACQUIRED.search(f.name) for f in files]
    if all(stamps):
        order = sorted(range(len(files)), key=lambda i: (stamps[i].groups(), natural_sort_key(files[i].name)))
        files = [files[i] for i in order]
    return files


def _describe(header: DatHeader) -> str:
    return (
        f"version {header.version}, {header.width}x{header.height} with {header.channels} channel(s) of "
        f"{'8' if header.eight_bit else '16'}-bit"
    )


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("latin-1").strip()


def is_dat(path: str | os.PathLike) -> bool:
    """True when the file starts with the FIB-SEM magic number (reads 4 bytes)."""
    try:
        with open(path, "rb") as file:
            return len(magic := file.read(4)) == 4 and struct.unpack(">I", magic)[0] == MAGIC_NUMBER
    except OSError:
        return False


def read_header(path: str | os.PathLike) -> DatHeader:
    """Decode the header of one ``.dat`` frame and check that its pixel data are all in the file."""
    path = Path(path)
    with open(path, "rb") as file:
        raw = file.read(HEADER_BYTES)
    if len(raw) < HEADER_BYTES or struct.unpack_from(">I", raw, 0)[0] != MAGIC_NUMBER:
        raise ValueError(
            f"{path} is not a Janelia FIB-SEM .dat frame (no 1024-byte header with magic number "
            f"{MAGIC_NUMBER}); check that the file was copied completely from the microscope"
        )
    version = struct.unpack_from(">H", raw, 4)[0]
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(
            f"{path} has .dat header version {version}; napari-nrrn decodes versions 1 to 9: convert the "
            "frame to TIFF (e.g. with Fiji's FIB-SEM reader) and open the TIFF"
        )
    channels, eight_bit = raw[32], raw[33]
    width, height = struct.unpack_from(">II", raw, 100)
    # f8 up to version 2, then f4; keep the digits the field holds (1.99996, not 1.9999641...)
    pixel = struct.unpack_from(">d", raw, 416)[0] if version <= 2 else struct.unpack_from(">f", raw, 464)[0]
    header = DatHeader(
        version=version,
        channels=channels,
        eight_bit=bool(eight_bit),
        width=width,
        height=height,
        pixel_size_nm=float(f"{pixel:.6g}"),
        detectors=(_text(raw[380:390]), _text(raw[390:408]))[:channels],
        sample_id=_text(raw[155:180]) if version >= 9 else "",
        machine_id=_text(raw[800:830]),
    )
    if channels < 1 or width < 1 or height < 1:
        raise ValueError(
            f"{path}: corrupt .dat header ({channels} channels, {width}x{height} pixels): copy the file again"
        )
    size = path.stat().st_size
    if size < HEADER_BYTES + header.data_bytes:
        raise ValueError(
            f"{path} is truncated: its header announces {width}x{height} pixels x {channels} channels "
            f"({HEADER_BYTES + header.data_bytes} bytes) but the file has {size} bytes; copy it again, "
            "or move it out of the folder if the acquisition stopped during this frame"
        )
    return header


def read_channel(path: str | os.PathLike, header: DatHeader, channel: int) -> np.ndarray:
    """One detector channel of a frame as a native-endian (height, width) array, from a memory map."""
    shape = (header.height, header.width, header.channels)
    try:
        interleaved = np.memmap(path, dtype=header.dtype, mode="r", offset=HEADER_BYTES, shape=shape)
    except ValueError:  # the file is now shorter than its header announces
        raise ValueError(f"{path} is shorter than when it was opened: copy it again and reopen it") from None
    return np.array(interleaved[:, :, channel], dtype=header.dtype.newbyteorder("="))


@dataclass(frozen=True)
class _DatPlane:
    """One detector channel of one ``.dat`` frame."""

    path: str
    header: DatHeader
    channel: int

    def read(self) -> np.ndarray:
        return read_channel(self.path, self.header, self.channel)
