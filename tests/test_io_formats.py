"""Every input format: small files built here from each format's published layout (and the real Gemini 500
.dat frame), opened without reading pixels, one slice read per slice asked for, the right voxel size, the
same denoised pixels as from TIFF, and one clear line for bad input."""

import gzip
import json
import struct
import warnings
from collections import Counter
from pathlib import Path

import h5py
import mrcfile
import numpy as np
import pytest
import tifffile
import torch

from napari_nrrn.cli import main
from napari_nrrn.engine.inference import denoise_stack
from napari_nrrn.io.formats import base, dat, hdf5, n5
from napari_nrrn.io.stack import inspect_stack, looks_like_stack, open_stack, voxel_size
from napari_nrrn.model.checkpoint import load_model, save_model
from napari_nrrn.model.nrrn import NRRN

GEMINI = "Gemini500-7029_24-12-16_151317_0-0-0.dat"


@pytest.fixture
def gala(gala_slices) -> np.ndarray:
    return np.asarray(gala_slices)[:6]  # (6, 100, 200) uint8, real FIB-SEM


# ---------------------------------------------------------------------------------------------------------
# Writers of the published layouts


def dat_frame(version: int, channels: np.ndarray, pixel_nm: float, eight_bit: bool = False) -> bytes:
    """A .dat frame: 1024-byte big-endian header, then (H, W, C) channels interleaved."""
    height, width, count = channels.shape
    header = bytearray(dat.HEADER_BYTES)
    struct.pack_into(">IH", header, 0, dat.MAGIC_NUMBER, version)
    struct.pack_into(">BB", header, 32, count, int(eight_bit))
    struct.pack_into(">II", header, 100, width, height)
    header[380:386] = b"InLens"
    header[390:393] = b"ESB"
    if version <= 2:
        struct.pack_into(">d", header, 416, pixel_nm)
    else:
        struct.pack_into(">f", header, 464, pixel_nm)
    return bytes(header) + channels.astype(">u1" if eight_bit else ">i2").tobytes()


def write_n5(folder: Path, stack: np.ndarray, blocks, compression: str, attributes=None) -> Path:
    """An N5 dataset: attributes.json (x first) and one block file per block at x/y/z."""
    folder.mkdir(parents=True)
    meta = {
        "dimensions": list(stack.shape[::-1]),
        "blockSize": list(blocks[::-1]),
        "dataType": stack.dtype.name,
        "compression": {"type": compression},
        **(attributes or {}),
    }
    (folder / "attributes.json").write_text(json.dumps(meta))
    bz, by, bx = blocks
    for iz in range(-(-stack.shape[0] // bz)):
        for iy in range(-(-stack.shape[1] // by)):
            for ix in range(-(-stack.shape[2] // bx)):
                block = stack[iz * bz : (iz + 1) * bz, iy * by : (iy + 1) * by, ix * bx : (ix + 1) * bx]
                head = struct.pack(">HH", 0, 3) + struct.pack(">3I", *block.shape[::-1])
                data = block.astype(stack.dtype.newbyteorder(">")).tobytes()
                path = folder / str(ix) / str(iy) / str(iz)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(head + (gzip.compress(data) if compression == "gzip" else data))
    return folder


def write_mrc(path: Path, stack: np.ndarray, voxel_angstrom=(40.0, 40.0, 80.0)) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(stack)
        mrc.voxel_size = voxel_angstrom  # x, y, z
    return path


# ---------------------------------------------------------------------------------------------------------
# .dat versions 1-9


@pytest.mark.parametrize("version", [1, 2, 3, 6, 7, 8, 9])
@pytest.mark.parametrize("eight_bit", [False, True])
def test_dat_versions(tmp_path, gala, version, eight_bit):
    channels = np.stack([gala[0], 255 - gala[0]], axis=-1).astype(np.int16) * (1 if eight_bit else 100)
    path = tmp_path / f"v{version}.dat"
    path.write_bytes(dat_frame(version, channels, 3.5, eight_bit))
    found = inspect_stack(path, channel=1)
    assert found.format == f"FIB-SEM .dat v{version}, ESB"
    assert found.array.dtype == (np.uint8 if eight_bit else np.int16)
    np.testing.assert_array_equal(found.array.compute()[0], channels[..., 1])
    assert found.voxel_size == (3.5, 3.5, 3.5) and found.z_step_assumed
    assert inspect_stack(path, z_step_nm=8.0).voxel_size == (8.0, 3.5, 3.5)
    assert not inspect_stack(path, z_step_nm=8.0).z_step_assumed


def test_real_gemini_frame_z_step_is_assumed(shared_data):
    found = inspect_stack(shared_data / GEMINI)
    assert found.z_step_assumed and found.voxel_size == (1.99996, 1.99996, 1.99996)
    assert voxel_size(shared_data / GEMINI, z_step_nm=6) == (6.0, 1.99996, 1.99996)


def test_dat_folder_in_acquisition_order(tmp_path, gala):
    """Frames are ordered by the date and time in their names, whatever comes before them."""
    folder = tmp_path / "run"
    folder.mkdir()
    names = ["B-7029_24-12-16_151317_0-0-0.dat", "A-7029_24-12-16_151320_0-0-0.dat"]
    names.append("C_24-12-17_000001_0-0-0.dat")
    for z, name in enumerate(names):
        (folder / name).write_bytes(dat_frame(9, gala[z][..., None].astype(np.int16), 4.0))
    found = inspect_stack(folder, z_step_nm=10)
    assert found.format == "folder of 3 FIB-SEM .dat v9, InLens frames"
    assert found.files == tuple(folder / name for name in names)
    np.testing.assert_array_equal(found.array.compute(), gala[:3])
    assert found.voxel_size == (10.0, 4.0, 4.0) and voxel_size(folder) == (4.0, 4.0, 4.0)


def test_dat_folder_with_mixed_versions_names_the_odd_frame(tmp_path, gala):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "f1.dat").write_bytes(dat_frame(9, gala[0][..., None].astype(np.int16), 4.0))
    (folder / "f2.dat").write_bytes(dat_frame(8, gala[1][..., None].astype(np.int16), 4.0))
    with pytest.raises(ValueError, match=r"f2\.dat is version 8, .* but f1\.dat is version 9, .*move f2"):
        open_stack(folder)


# ---------------------------------------------------------------------------------------------------------
# MRC


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.float32, np.uint16])
def test_mrc_modes(tmp_path, gala, dtype):
    stack = (gala.astype(np.int16) - 128).astype(dtype) if dtype == np.int8 else gala.astype(dtype)
    found = inspect_stack(write_mrc(tmp_path / "s.mrc", stack))
    assert found.array.dtype == dtype and found.array.chunks[0] == (1,) * 6
    np.testing.assert_array_equal(found.array.compute(), stack)
    assert found.voxel_size == (8.0, 4.0, 4.0) and not found.z_step_assumed


def _mode0(path: Path, stack: np.ndarray, dmin: float, dmax: float, imod_flags: int | None = None) -> Path:
    write_mrc(path, stack.view(np.int8))
    with mrcfile.open(path, "r+") as mrc:
        mrc.header.dmin, mrc.header.dmax = dmin, dmax
    if imod_flags is not None:
        raw = bytearray(path.read_bytes())
        struct.pack_into("<ii", raw, 152, 1146047817, imod_flags)
        path.write_bytes(raw)
    return path


def test_mrc_mode0_signedness_follows_the_file(tmp_path, gala):
    """DMIN/DMAX decide when consistent; else IMOD's flag; else signed (MRC2014)."""
    unsigned = gala  # real bytes 0..255 stored in mode 0
    assert open_stack(_mode0(tmp_path / "a.mrc", unsigned, 0, 255)).dtype == np.uint8
    np.testing.assert_array_equal(open_stack(tmp_path / "a.mrc").compute(), unsigned)
    assert open_stack(_mode0(tmp_path / "b.mrc", unsigned, -128, 100)).dtype == np.int8
    assert open_stack(_mode0(tmp_path / "c.mrc", unsigned, 1, 0, imod_flags=0)).dtype == np.uint8
    assert open_stack(_mode0(tmp_path / "d.mrc", unsigned, 1, 0, imod_flags=1)).dtype == np.int8
    assert open_stack(_mode0(tmp_path / "e.mrc", unsigned, 1, 0)).dtype == np.int8
    np.testing.assert_array_equal(open_stack(tmp_path / "e.mrc").compute(), unsigned.view(np.int8))


def test_mrc_unknown_machine_stamp_opens_with_a_warning(tmp_path, gala):
    path = write_mrc(tmp_path / "imod.rec", gala.astype(np.int16))
    raw = bytearray(path.read_bytes())
    raw[212:216] = b"\x00\x00\x00\x00"
    path.write_bytes(raw)
    with pytest.warns(UserWarning, match=r"imod\.rec: Unrecognised machine stamp.*little-endian"):
        stack = open_stack(path)
    np.testing.assert_array_equal(stack.compute(), gala)


# ---------------------------------------------------------------------------------------------------------
# HDF5


@pytest.mark.parametrize("layout", [{}, {"chunks": (2, 32, 64), "compression": "gzip"}])
def test_hdf5_chunked_and_contiguous(tmp_path, gala, layout):
    path = tmp_path / "cremi.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("volumes/raw", data=gala, **layout).attrs["resolution"] = (40.0, 4.0, 4.0)
        file.create_dataset("volumes/labels", data=np.zeros(5))  # 1-D: not an image
    for name in (f"{path}/volumes/raw", f"{path}:/volumes/raw", str(path)):
        found = inspect_stack(name)
        assert found.voxel_size == (40.0, 4.0, 4.0) and found.array.chunks[0] == (1,) * 6
        np.testing.assert_array_equal(found.array.compute(), gala)
    assert looks_like_stack(f"{path}/volumes/raw") and looks_like_stack(path)


def test_hdf5_voxel_size_attributes(tmp_path, gala):
    path = tmp_path / "ilastik.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("imagej", data=gala).attrs["element_size_um"] = (0.03, 0.005, 0.005)
        file.create_dataset("pixel", data=gala).attrs["PixelSize"] = 6.0
        file.create_dataset("plain", data=gala)
    assert voxel_size(f"{path}/imagej") == (30.0, 5.0, 5.0)
    assert voxel_size(f"{path}/pixel") == (6.0, 6.0, 6.0) and inspect_stack(f"{path}/pixel").z_step_assumed
    assert voxel_size(f"{path}/plain") is None


def test_hdf5_chunk_cache_holds_a_z_layer_of_chunks(tmp_path, gala):
    """Slice z + 1 finds in the cache what slice z decoded: the cache holds every chunk of a z-layer."""
    path = tmp_path / "chunked.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("raw", data=gala, chunks=(3, 20, 20), compression="gzip")
    big = tmp_path / "big.h5"
    with h5py.File(big, "w") as file:
        file.create_dataset("raw", shape=(8, 4000, 4000), dtype=np.uint16, chunks=(4, 100, 100))
        file.create_dataset("first", data=gala)  # opened first: the file's cache settings are its
    open_stack(f"{big}/first")[0].compute()
    small_layer = 1 << 20  # 5 x 10 chunks of 1200 bytes: HDF5's default cache (1 MiB) holds them
    big_layer = 40 * 40 * (4 * 100 * 100 * 2)  # 1600 chunks of 80 000 bytes: 128 MB
    cases = [
        (path, (3, 20, 20), gala.shape, 50, small_layer),
        (big, (4, 100, 100), (8, 4000, 4000), 1600, big_layer),
    ]
    for file, chunks, shape, count, layer in cases:
        found = inspect_stack(f"{file}/raw")
        found.array[0].compute()
        stamp = file.stat().st_mtime_ns
        dataset = hdf5.open_dataset(str(file), "raw", chunks, shape, found.array.dtype.str, stamp)
        nslots, nbytes, _ = dataset.id.get_access_plist().get_chunk_cache()
        assert nbytes == layer and nslots > count


def test_hdf5_bad_paths_list_the_datasets(tmp_path, gala):
    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("a/raw", data=gala)
        file.create_dataset("b", data=gala[0])
        file.create_dataset("table", data=np.arange(4))
    with pytest.raises(ValueError, match=r"two\.h5 holds 2 image datasets \(a/raw, b\): name one, e\.g\."):
        open_stack(path)
    with pytest.raises(ValueError, match=r"two\.h5 has no dataset 'a/ra'; its image datasets are: a/raw, b"):
        open_stack(f"{path}/a/ra")
    assert open_stack(f"{path}/b").shape == (1, 100, 200)
    empty = tmp_path / "table.h5"
    with h5py.File(empty, "w") as file:
        file.create_dataset("table", data=np.arange(4))
    with pytest.raises(ValueError, match=r"table\.h5 holds no 2-D or 3-D image dataset"):
        open_stack(empty)


# ---------------------------------------------------------------------------------------------------------
# N5


@pytest.mark.parametrize("compression", ["gzip", "raw"])
def test_n5_dataset(tmp_path, gala, compression):
    root = tmp_path / "cosem.n5"
    attributes = {"pixelResolution": {"dimensions": [4.0, 4.0, 8.0], "unit": "nm"}}
    write_n5(root / "em" / "raw", gala, (4, 64, 64), compression, attributes)
    (root / "attributes.json").write_text(json.dumps({"n5": "2.0.0"}))
    for name in (root / "em" / "raw", f"{root}:em/raw", f"{root}:/em/raw"):
        found = inspect_stack(name)
        assert found.voxel_size == (8.0, 4.0, 4.0) and found.array.chunks[0] == (1,) * 6
        np.testing.assert_array_equal(found.array.compute(), gala)
    with pytest.raises(ValueError, match=r"n5/em is not an N5 dataset; the datasets of .* are: em/raw$"):
        open_stack(root / "em")
    alone = (root / "em" / "raw").rename(tmp_path / "raw")  # a dataset copied out of its container
    np.testing.assert_array_equal(open_stack(alone).compute(), gala)


def test_n5_multiscale_group_opens_at_s0(tmp_path, gala):
    root = tmp_path / "pyramid.n5"
    write_n5(root / "raw" / "s0", gala, (2, 50, 50), "gzip", {"resolution": [5.0, 5.0, 10.0]})
    write_n5(root / "raw" / "s1", gala[:, ::2, ::2].copy(), (2, 50, 50), "gzip")
    (root / "raw" / "attributes.json").write_text(json.dumps({"multiScale": True}))
    found = inspect_stack(root / "raw")
    assert found.voxel_size == (10.0, 5.0, 5.0)
    np.testing.assert_array_equal(found.array.compute(), gala)


def test_n5_reads_each_block_once(tmp_path, gala, monkeypatch):
    """Slice z decodes the blocks of its z-layer; slice z + 1 of the same layer decodes none."""
    folder = write_n5(tmp_path / "s.n5", gala, (3, 64, 64), "gzip")
    decoded = Counter()
    block = n5._Dataset._block

    def counted(self, ix, iy, iz):
        decoded[ix, iy, iz] += 1
        return block(self, ix, iy, iz)

    monkeypatch.setattr(n5._Dataset, "_block", counted)
    stack = open_stack(folder)
    assert not decoded  # opening reads no block
    np.testing.assert_array_equal(stack[1].compute(), gala[1])
    assert decoded == Counter({(x, y, 0): 1 for x in range(4) for y in range(2)})
    np.testing.assert_array_equal(stack[2].compute(), gala[2])
    np.testing.assert_array_equal(stack[3].compute(), gala[3])
    assert sum(decoded.values()) == 16 and max(decoded.values()) == 1


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_decodes_each_deep_chunk_once(tmp_path, zarr_format, monkeypatch):
    """Chunks 8 slices deep, read slice by slice: each stored chunk is read and decoded once, not 8 times;
    above the layer cap each slice decodes every chunk it crosses again, with the same values."""
    import zarr

    values = np.random.default_rng(0).integers(0, 256, (20, 40, 70), dtype=np.uint8)
    zarr.create_array(tmp_path / "deep.zarr", data=values, chunks=(8, 32, 32), zarr_format=zarr_format)
    reads = Counter()
    get = zarr.storage.LocalStore.get

    async def counted_get(store, key, *args, **kwargs):
        if not key.rsplit("/", 1)[-1].startswith((".z", "zarr.json")):  # chunks, not metadata
            reads[key] += 1
        return await get(store, key, *args, **kwargs)

    monkeypatch.setattr(zarr.storage.LocalStore, "get", counted_get)
    stack = open_stack(tmp_path / "deep.zarr")
    assert not reads  # opening reads no pixel data
    assert stack.chunks == ((1,) * 20, (40,), (70,))
    for z in range(20):
        np.testing.assert_array_equal(stack[z].compute(), values[z])
    assert len(reads) == 3 * 2 * 3 and set(reads.values()) == {1}  # every stored chunk, each once

    reads.clear()
    monkeypatch.setattr(base, "LAYER_CAP_BYTES", 8 * 40 * 70 - 1)
    fresh = open_stack(tmp_path / "deep.zarr")
    np.testing.assert_array_equal(fresh[:10].compute(), values[:10])
    z_chunk = {key: int(key.replace("/", ".").split(".")[-3]) for key in reads}  # v2 0.1.2, v3 c/0/1/2
    assert len(reads) == 2 * 2 * 3 and all(reads[key] == (8, 2)[z_chunk[key]] for key in reads)


# ---------------------------------------------------------------------------------------------------------
# Every format: no pixel read on opening, one read per slice, the same denoised pixels as from TIFF


def _files(tmp_path: Path, gala: np.ndarray) -> dict[str, str]:
    frames = tmp_path / "frames"
    frames.mkdir()
    for z, image in enumerate(gala):
        (frames / f"M_24-12-16_1513{z:02d}_0-0-0.dat").write_bytes(dat_frame(9, image[..., None], 4.0, True))
    with h5py.File(tmp_path / "s.h5", "w") as file:
        file.create_dataset("raw", data=gala, chunks=(2, 50, 100), compression="gzip")
    return {
        "dat": str(frames),
        "mrc": str(write_mrc(tmp_path / "s.mrc", gala.view(np.int8))),
        "hdf5": f"{tmp_path / 's.h5'}/raw",
        "n5": str(write_n5(tmp_path / "s.n5", gala, (2, 64, 64), "gzip")),
    }


@pytest.fixture
def no_pixel_reads(monkeypatch):
    def refuse(*_):
        raise AssertionError("pixels read")

    monkeypatch.setattr(base.RawPlane, "read", refuse)
    monkeypatch.setattr(dat._DatPlane, "read", refuse)
    monkeypatch.setattr(hdf5._Dataset, "__getitem__", refuse)
    monkeypatch.setattr(n5._Dataset, "_block", refuse)


def test_opening_reads_no_pixels(tmp_path, gala, no_pixel_reads):
    for name, path in _files(tmp_path, gala).items():
        found = inspect_stack(path)
        assert found.array.shape == (6, 100, 200), name
        assert found.array.chunks == ((1,) * 6, (100,), (200,)), name
        assert looks_like_stack(path), name


def test_one_slice_reads_one_plane(tmp_path, gala, monkeypatch):
    reads = Counter()
    for cls, method in [(base.RawPlane, "read"), (dat._DatPlane, "read"), (hdf5._Dataset, "__getitem__")]:
        original = getattr(cls, method)

        def counted(self, *args, _original=original, _cls=cls):
            reads[_cls.__name__] += 1
            return _original(self, *args)

        monkeypatch.setattr(cls, method, counted)
    files = _files(tmp_path, gala)
    for name, kind in [("dat", "_DatPlane"), ("mrc", "RawPlane"), ("hdf5", "_Dataset")]:
        reads.clear()
        stack = open_stack(files[name])
        np.testing.assert_array_equal(stack[4].compute(), gala[4].view(stack.dtype))
        assert reads == Counter({kind: 1}), name


@pytest.mark.usefixtures("one_torch_thread")
def test_cli_denoise_of_every_format_equals_tiff(tmp_path, gala, model_file):
    tiff = tmp_path / "s.tif"
    tifffile.imwrite(tiff, gala)
    options = ["--model", str(model_file), "--precision", "float32"]
    assert main(["denoise", str(tiff), str(tmp_path / "from_tiff.tif"), *options]) == 0
    expected = tifffile.imread(tmp_path / "from_tiff.tif")
    for name, path in _files(tmp_path, gala).items():
        if name == "mrc":
            continue  # bytes stored as signed mode 0 (MRC2014) are other grey levels; checked below
        out = tmp_path / f"from_{name}.tif"
        assert main(["denoise", path, str(out), *options, "--z-step", "12"]) == 0, name
        np.testing.assert_array_equal(tifffile.imread(out), expected, err_msg=name)
    assert voxel_size(tmp_path / "from_dat.tif") == (12.0, 4.0, 4.0)  # the frames record 4 nm pixels only
    mrc = write_mrc(tmp_path / "u.mrc", gala.astype(np.uint16))
    tifffile.imwrite(tmp_path / "u.tif", gala.astype(np.uint16))
    assert main(["denoise", str(mrc), str(tmp_path / "from_mrc.tif"), *options]) == 0
    assert main(["denoise", str(tmp_path / "u.tif"), str(tmp_path / "from_u.tif"), *options]) == 0
    from_mrc, from_tiff = tifffile.imread(tmp_path / "from_mrc.tif"), tifffile.imread(tmp_path / "from_u.tif")
    np.testing.assert_array_equal(from_mrc, from_tiff)


# ---------------------------------------------------------------------------------------------------------
# Bad input: one line naming the file and the fix, nothing written


def _bad_inputs(tmp_path: Path, gala: np.ndarray) -> list[tuple[str, str]]:
    """(path, what the error must say) for each bad input."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.dat").write_bytes(b"")
    (bad / "magic.dat").write_bytes(b"\x00" * 2048)
    (bad / "cut.dat").write_bytes(dat_frame(9, gala[0][..., None].astype(np.int16), 4.0)[:5000])
    (bad / "empty.mrc").write_bytes(b"")
    (bad / "notes.mrc").write_bytes(b"not an image " * 100)
    mrc = write_mrc(bad / "cut.mrc", gala.astype(np.int16))
    mrc.write_bytes(mrc.read_bytes()[:-100])
    with mrcfile.new(bad / "complex.mrc") as complex_mrc:
        complex_mrc.set_data(np.zeros((2, 4, 4), np.complex64))
    (bad / "empty.h5").write_bytes(b"")
    with h5py.File(bad / "cut.h5", "w") as file:
        file.create_dataset("raw", data=gala)
    (bad / "cut.h5").write_bytes((bad / "cut.h5").read_bytes()[:50000])
    with h5py.File(bad / "table.h5", "w") as file:
        file.create_dataset("table", data=np.arange(4))
    n5_folder = write_n5(bad / "zero.n5", gala, (6, 100, 200), "gzip")
    (n5_folder / "attributes.json").write_bytes(b"")
    mixed = bad / "mixed"
    mixed.mkdir()
    (mixed / "a.dat").write_bytes(dat_frame(9, gala[0][..., None].astype(np.int16), 4.0))
    (mixed / "b.dat").write_bytes(dat_frame(9, gala[0, :50][..., None].astype(np.int16), 4.0))
    return [
        (bad / "empty.dat", r"empty\.dat is not a Janelia FIB-SEM \.dat frame"),
        (bad / "magic.dat", r"magic\.dat is not a Janelia FIB-SEM \.dat frame"),
        (bad / "cut.dat", r"cut\.dat is truncated: .*copy it again"),
        (bad / "empty.mrc", r"empty\.mrc is truncated or corrupt .*copy the file again"),
        (bad / "notes.mrc", r"notes\.mrc is not an MRC image \(no 'MAP ' identifier.*copied completely"),
        (bad / "cut.mrc", r"cut\.mrc is truncated or corrupt .*copy the file again"),
        (bad / "complex.mrc", r"complex\.mrc holds complex float32 values \(MRC mode 4\).*amplitude"),
        (bad / "empty.h5", r"empty\.h5 is not a readable HDF5 file .*copied completely"),
        (bad / "cut.h5", r"cut\.h5 is not a readable HDF5 file .*copied completely"),
        (bad / "table.h5", r"table\.h5 holds no 2-D or 3-D image dataset"),
        (n5_folder, r"zero\.n5/attributes\.json is truncated or corrupt"),
        (mixed, r"b\.dat is version 9, 200x50 .* but a\.dat is version 9, 200x100 .*move b\.dat out"),
    ]


def test_bad_input_one_line_nothing_written(tmp_path, gala, model_file, capsys):
    for path, message in _bad_inputs(tmp_path, gala):
        with pytest.raises(ValueError, match=message):
            open_stack(path)
        out = tmp_path / "never.tif"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert main(["denoise", str(path), str(out), "--model", str(model_file)]) == 2, path
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and str(path) in err, err
        assert not out.exists() and not list(tmp_path.glob("never*"))


# ---------------------------------------------------------------------------------------------------------
# napari: a pyramid opens multiscale, an HDF5 file with several datasets offers each


def test_napari_opens_an_ome_zarr_pyramid_multiscale(make_napari_viewer, tmp_path, gala):
    import zarr
    from ome_zarr.writer import write_image

    path = tmp_path / "pyramid.ome.zarr"
    write_image(gala, zarr.open_group(path, mode="w"), axes="zyx", scale_factors=[2, 4])
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="napari-nrrn")
    assert layer.multiscale
    assert [level.shape for level in layer.data] == [(6, 100, 200), (6, 50, 100), (6, 25, 50)]
    np.testing.assert_array_equal(np.asarray(layer.data[0][3]), gala[3])
    assert open_stack(path).shape == (6, 100, 200)  # processing reads level 0

    n5_dataset = write_n5(tmp_path / "c.n5" / "em" / "raw", gala, (2, 64, 64), "gzip")
    [layer] = viewer.open(str(n5_dataset), plugin="napari-nrrn")
    assert layer.name == "raw" and not layer.multiscale
    np.testing.assert_array_equal(np.asarray(layer.data[5]), gala[5])


def test_napari_offers_each_hdf5_dataset(make_napari_viewer, tmp_path, gala):
    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("raw", data=gala).attrs["resolution"] = (8.0, 4.0, 4.0)
        file.create_dataset("aligned/raw", data=gala[::-1])
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-nrrn")
    assert [layer.name for layer in layers] == ["two aligned/raw", "two raw"]
    np.testing.assert_array_equal(np.asarray(layers[0].data), gala[::-1])
    assert tuple(layers[1].scale) == (8.0, 4.0, 4.0) and layers[1].metadata["path"] == f"{path}/raw"
    with pytest.raises(ValueError, match=r"two\.h5 holds 2 image datasets \(aligned/raw, raw\): name one"):
        open_stack(path)  # the CLI and the API name them instead


def test_dock_opens_each_hdf5_dataset_and_denoises_as_from_tiff(make_napari_viewer, qtbot, tmp_path, gala):
    """The dock's Open adds one layer per dataset, the first chosen; its full-stack run from an HDF5 layer
    writes what the engine computes from the same array; a .dat folder says its z step is assumed."""
    from napari_nrrn.plugin._denoise_layers import voxel_size as voxel_size_of_layer
    from napari_nrrn.plugin.denoise_widget import NOISE_JOB

    crop = gala[:4, :48, :64]
    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("a", data=crop, chunks=(2, 24, 32)).attrs["resolution"] = (8.0, 4.0, 4.0)
        file.create_dataset("b", data=crop[::-1])
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "NRRN denoising")
    layer = widget.data_section.open_stack_path(path)
    assert [lay.name for lay in viewer.layers] == ["two a", "two b"] and layer.name == "two a"
    assert widget.data_section.layer_combo.currentText() == "two a"
    assert "z step" not in widget.data_section.data_info.text()
    torch.manual_seed(0)
    model = save_model(NRRN(depth=1, width=4), tmp_path / "tiny.pt")
    assert widget.model_section.load_checkpoint(model) is not None
    widget.model_section.device_combo.setCurrentText("cpu")
    qtbot.waitUntil(lambda: NOISE_JOB not in widget.jobs, timeout=60_000)
    out = tmp_path / "denoised.tif"
    worker = widget.stack_section.denoise_to_file(out)
    assert worker is not None
    qtbot.waitUntil(lambda: worker not in widget.jobs.values(), timeout=60_000)
    np.testing.assert_array_equal(tifffile.imread(out), denoise_stack(load_model(model), crop).compute())

    (tmp_path / "dat").mkdir()
    widget.data_section.open_stack_path(_files(tmp_path / "dat", gala)["dat"])
    info = widget.data_section.data_info.text()
    assert "z step not recorded in the file: assumed equal to the pixel size" in info
    # The user gives the milling step: the layer's scale, its voxel size and the text follow.
    section = widget.data_section
    dat_layer = section.input_layer
    assert section.z_step_row.isVisibleTo(section) and section.z_step_spin.value() == 4.0
    section.z_step_spin.setValue(7.5)
    section.z_step_spin.editingFinished.emit()
    assert tuple(dat_layer.scale) == (7.5, 4.0, 4.0)
    assert voxel_size_of_layer(dat_layer) == (7.5, 4.0, 4.0)
    assert "z step not recorded in the file: set by you below" in section.data_info.text()
    section.layer_combo.setCurrentText("two a")  # a file that records its z step asks nothing
    assert not section.z_step_row.isVisibleTo(section)


def test_truncated_n5_block_fails_the_run_naming_it(tmp_path, gala, model_file, capsys):
    """N5 blocks are read when their slices are: a cut block stops the run with its name, nothing written."""
    folder = write_n5(tmp_path / "cut.n5", gala, (3, 100, 200), "gzip")
    block = folder / "0" / "0" / "1"
    block.write_bytes(block.read_bytes()[:40])
    out = tmp_path / "never.tif"
    assert main(["denoise", str(folder), str(out), "--model", str(model_file)]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert line.startswith(f"napari-nrrn denoise: error: {block} is truncated or corrupt (N5 block"), line
    assert not list(tmp_path.glob("never*"))


def test_dock_denoises_every_format_as_from_tiff(make_napari_viewer, qtbot, tmp_path, gala):
    """Each format opened in the dock gives the TIFF's pixels, and its full-stack run writes the same file
    as the run from the TIFF (MRC's signed bytes are other grey levels: its pixels are checked only)."""
    from napari_nrrn.plugin.denoise_widget import NOISE_JOB

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "NRRN denoising")
    torch.manual_seed(0)
    model = save_model(NRRN(depth=1, width=4), tmp_path / "tiny.pt")
    assert widget.model_section.load_checkpoint(model) is not None
    widget.model_section.device_combo.setCurrentText("cpu")
    tiff = tmp_path / "s.tif"
    tifffile.imwrite(tiff, gala)
    paths = {"tiff": str(tiff), **_files(tmp_path, gala)}
    paths["hdf5"] = paths["hdf5"].removesuffix("/raw")  # napari's Open takes the file itself
    written = {}
    for name, path in paths.items():
        layer = widget.data_section.open_stack_path(path)
        assert widget.data_section.layer_combo.currentText() == layer.name, name
        expected = gala.view(np.int8) if name == "mrc" else gala
        np.testing.assert_array_equal(np.asarray(layer.data), expected, err_msg=name)
        if name == "mrc":
            continue
        qtbot.waitUntil(lambda: NOISE_JOB not in widget.jobs, timeout=60_000)
        worker = widget.stack_section.denoise_to_file(tmp_path / f"from_{name}.tif")
        assert worker is not None, name
        qtbot.waitUntil(lambda worker=worker: worker not in widget.jobs.values(), timeout=60_000)
        written[name] = tifffile.imread(tmp_path / f"from_{name}.tif")
    assert sorted(written) == ["dat", "hdf5", "n5", "tiff"]
    for name, image in written.items():
        np.testing.assert_array_equal(image, written["tiff"], err_msg=name)
