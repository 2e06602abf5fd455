"""Janelia FIB-SEM ``.dat`` frames: a 1024-byte big-endian header, then the detector channels interleaved
pixel by pixel (big-endian int16, or uint8 when the header's 8-bit flag is set).

Only header version 9 is decoded: it is the version of the frames we can check against a reference
(Zeiss Gemini 500 InLens + ESB, ``/work/shared/data``). Field offsets follow the Janelia/Shtengel readers
(Fiji ``FIBSEM_Reader``, ``fibsem-fiji``) for that version.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC_NUMBER = 3555587570  # 0xD3EDF5F2 at offset 0
HEADER_BYTES = 1024
SUPPORTED_VERSIONS = (9,)


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
            f"{path} has .dat header version {version}; napari-nrrn decodes version "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))} only: convert the frame to TIFF "
            "(e.g. with Fiji's FIB-SEM reader) and open the TIFF"
        )
    channels, eight_bit = raw[32], raw[33]
    width, height = struct.unpack_from(">II", raw, 100)
    header = DatHeader(
        version=version,
        channels=channels,
        eight_bit=bool(eight_bit),
        width=width,
        height=height,
        # float32 in the file: keep the digits it holds, not the binary tail (1.99996, not 1.9999641...)
        pixel_size_nm=float(f"{struct.unpack_from('>f', raw, 464)[0]:.6g}"),
        detectors=(_text(raw[380:390]), _text(raw[390:408]))[:channels],
        sample_id=_text(raw[155:180]),
        machine_id=_text(raw[800:830]),
    )
    if channels < 1 or width < 1 or height < 1:
        raise ValueError(f"{path}: corrupt .dat header ({channels} channels, {width}x{height} pixels)")
    size = path.stat().st_size
    if size < HEADER_BYTES + header.data_bytes:
        raise ValueError(
            f"{path} is truncated: its header announces {width}x{height} pixels x {channels} channels "
            f"({HEADER_BYTES + header.data_bytes} bytes) but the file has {size} bytes; copy it again"
        )
    return header


def read_channel(path: str | os.PathLike, header: DatHeader, channel: int) -> np.ndarray:
    """One detector channel of a frame as a native-endian (height, width) array."""
    interleaved = np.fromfile(
        path, dtype=header.dtype, count=header.width * header.height * header.channels, offset=HEADER_BYTES
    )
    plane = interleaved.reshape(header.height, header.width, header.channels)[:, :, channel]
    return plane.astype(header.dtype.newbyteorder("="))
