"""Janelia FIB-SEM .dat frames: the real Gemini 500 frame equals its reference TIFF exactly."""

import struct

import numpy as np
import pytest
import tifffile

from napari_nrrn.io.formats import dat
from napari_nrrn.io.stack import inspect_stack, looks_like_stack, open_stack, voxel_size

DAT = "Gemini500-7029_24-12-16_151317_0-0-0.dat"
REFERENCE = "fibsem_raw_dat_gemini500_SnC_InLens_ESB_2x1000x1000_int16.tif"


@pytest.fixture(scope="module")
def frame_bytes(shared_data) -> bytes:
    return (shared_data / DAT).read_bytes()


def test_header_of_the_gemini_frame(shared_data):
    header = dat.read_header(shared_data / DAT)
    assert (header.version, header.channels, header.eight_bit) == (9, 2, False)
    assert (header.width, header.height) == (1000, 1000)
    assert header.pixel_size_nm == pytest.approx(2.0, abs=1e-3)
    assert header.detectors == ("InLens", "ESB @ 400 V")
    assert header.sample_id == "Sn-on-C"
    assert header.machine_id == "Jeiss1/Gemini500-7029"


def test_dat_channels_equal_the_reference_tiff_exactly(shared_data):
    reference = tifffile.imread(shared_data / REFERENCE)  # (2, 1000, 1000) int16: InLens, ESB
    for channel in (0, 1):
        stack = open_stack(shared_data / DAT, channel=channel)
        assert stack.shape == (1, 1000, 1000) and stack.dtype == np.int16
        assert stack.chunks == ((1,), (1000,), (1000,))
        np.testing.assert_array_equal(stack.compute()[0], reference[channel])
    np.testing.assert_array_equal(open_stack(shared_data / DAT).compute()[0], reference[0])  # default InLens
    assert voxel_size(shared_data / DAT) == pytest.approx((2.0, 2.0, 2.0), abs=1e-3)
    assert inspect_stack(shared_data / DAT, channel=1).format == "FIB-SEM .dat v9, ESB @ 400 V"
    assert looks_like_stack(shared_data / DAT)


def test_bad_channel(shared_data):
    with pytest.raises(ValueError, match=r"channel 2 does not exist in .*\.dat: it has 2 channel\(s\)"):
        open_stack(shared_data / DAT, channel=2)


def _patched(frame: bytes, offset: int, fmt: str, *values) -> bytearray:
    data = bytearray(frame)
    struct.pack_into(fmt, data, offset, *values)
    return data


def test_unknown_header_version_is_refused(tmp_path, frame_bytes):
    path = tmp_path / "old.dat"
    path.write_bytes(_patched(frame_bytes, 4, ">H", 10))
    with pytest.raises(
        ValueError, match=r"old\.dat has \.dat header version 10; napari-nrrn decodes versions 1 to 9"
    ):
        open_stack(path)


def test_not_a_dat_and_truncated_dat(tmp_path, frame_bytes):
    fake = tmp_path / "fake.dat"
    fake.write_bytes(b"\x00" * 2048)
    with pytest.raises(ValueError, match=r"fake\.dat is not a Janelia FIB-SEM \.dat frame"):
        open_stack(fake)
    assert not looks_like_stack(fake)
    cut = tmp_path / "cut.dat"
    cut.write_bytes(frame_bytes[:3_000_000])
    with pytest.raises(
        ValueError, match=r"cut\.dat is truncated: .*4001024 bytes\) but the file has 3000000"
    ):
        open_stack(cut)


def test_eight_bit_frame(tmp_path, frame_bytes, shared_data):
    """The 8-bit flag: one byte per pixel and channel, interleaved. Pixels: a real FIB-SEM slice."""
    gala = tifffile.imread(shared_data / "fibsem_flyem_gala_train_50x100x200.tif")
    header = _patched(frame_bytes[: dat.HEADER_BYTES], 33, ">B", 1)
    struct.pack_into(">II", header, 100, 200, 100)  # width 200, height 100
    pixels = np.stack([gala[0], gala[1]], axis=-1)  # (100, 200, 2) interleaved channels
    path = tmp_path / "eight.dat"
    path.write_bytes(bytes(header) + pixels.tobytes())
    for channel in (0, 1):
        stack = open_stack(path, channel=channel)
        assert stack.dtype == np.uint8 and stack.shape == (1, 100, 200)
        np.testing.assert_array_equal(stack.compute()[0], gala[channel])


def test_folder_of_dat_frames(tmp_path, frame_bytes):
    """Three frames (the real frame with its rows rolled by 0, 1, 2), named so that only a natural sort
    orders them; the stack's slices follow the numbers."""
    header, pixels = frame_bytes[: dat.HEADER_BYTES], np.frombuffer(frame_bytes[dat.HEADER_BYTES :], ">i2")
    pixels = pixels.reshape(1000, 1000, 2)
    folder = tmp_path / "run"
    folder.mkdir()
    for shift, name in [(2, "frame_10.dat"), (0, "frame_1.dat"), (1, "frame_2.dat")]:
        (folder / name).write_bytes(header + np.roll(pixels, shift, axis=0).tobytes())
    found = inspect_stack(folder, channel=1)
    assert found.format == "folder of 3 FIB-SEM .dat v9, ESB @ 400 V frames"
    assert found.array.shape == (3, 1000, 1000) and found.array.chunks[0] == (1, 1, 1)
    for z in range(3):
        np.testing.assert_array_equal(found.array[z].compute(), np.roll(pixels[..., 1], z, axis=0))
    assert voxel_size(folder) == pytest.approx((2.0, 2.0, 2.0), abs=1e-3)

    small = _patched(header, 100, ">II", 500, 500)
    (folder / "frame_3.dat").write_bytes(bytes(small) + pixels[:500, :500].tobytes())
    with pytest.raises(
        ValueError,
        match=r"frame_3\.dat is version 9, 500x500 with 2 channel\(s\) of 16-bit but frame_1\.dat is "
        r"version 9, 1000x1000",
    ):
        open_stack(folder)
