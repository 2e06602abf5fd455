"""Streaming writers: exact round trips, one slice computed at a time, temp-and-rename, refusals."""

import os
from collections import Counter
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr
from napari.settings import get_settings
from qtpy.QtWidgets import QApplication

from napari_nrrn.engine.events import Progress
from napari_nrrn.io import ome_zarr_writer, writers
from napari_nrrn.io.stack import inspect_stack, open_stack, voxel_size
from napari_nrrn.io.writers import iter_write_stack, write_stack

GALA = "fibsem_flyem_gala_train_50x100x200.tif"
DAT = "Gemini500-7029_24-12-16_151317_0-0-0.dat"


@pytest.fixture(scope="module")
def gala_stack(shared_data):
    return open_stack(shared_data / GALA)  # lazy (50, 100, 200) uint8, 10 nm


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name)


@pytest.mark.parametrize("name", ["out.tif", "out.ome.zarr", "out.mrc"])
def test_exact_round_trip_with_voxel_size(tmp_path, gala_stack, name):
    path = write_stack(gala_stack, tmp_path / name, voxel_size=(10.0, 10.0, 10.0))
    assert path == tmp_path / name
    back = open_stack(path)
    assert back.dtype == np.uint8 and back.shape == (50, 100, 200)
    np.testing.assert_array_equal(back.compute(), gala_stack.compute())
    assert voxel_size(path) == (10.0, 10.0, 10.0)
    assert _leftovers(tmp_path) == []


def test_tiff_is_an_imagej_hyperstack(tmp_path, gala_stack):
    """Fiji reads the calibration: ImageJ description with spacing and unit, pixels per nm in XResolution."""
    path = write_stack(gala_stack[:5], tmp_path / "ij.tif", voxel_size=(8.0, 4.0, 5.0))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and not tif.is_bigtiff
        assert tif.imagej_metadata["slices"] == 5
        assert tif.imagej_metadata["spacing"] == 8.0 and tif.imagej_metadata["unit"] == "nm"
        assert tif.pages[0].tags["XResolution"].value == (1, 5)
        assert tif.pages[0].tags["YResolution"].value == (1, 4)
        assert tif.series[0].dataoffset is not None  # contiguous: memory-mappable
    assert voxel_size(path) == (8.0, 4.0, 5.0)


def test_int16_dat_frame_round_trips_through_ome_tiff_and_zarr(tmp_path, shared_data):
    """ImageJ has no int16: the raw detector frame goes to OME-TIFF with its 2 nm pixels."""
    frame = open_stack(shared_data / DAT, channel=1)
    frame_voxel = voxel_size(shared_data / DAT)
    for name in ("esb.tif", "esb.ome.zarr"):
        path = write_stack(frame, tmp_path / name, voxel_size=frame_voxel)
        found = inspect_stack(path)
        assert found.array.dtype == np.int16
        np.testing.assert_array_equal(found.array.compute(), frame.compute())
        assert found.voxel_size == frame_voxel
    assert inspect_stack(tmp_path / "esb.tif").format == "OME-TIFF"


def test_float_stack_without_voxel_size(tmp_path, shared_data):
    sem = open_stack(shared_data / "sem_n2v_demo_600x600_float32.tif")
    for name in ("sem.tif", "sem.zarr"):
        path = write_stack(sem, tmp_path / name)
        np.testing.assert_array_equal(open_stack(path).compute(), sem.compute())
        assert voxel_size(path) is None


def test_ome_zarr_layout_and_reference_reader(tmp_path, gala_stack):
    """One chunk per slice, OME-Zarr 0.5 metadata that the ome-zarr package reads back with the scale."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    path = write_stack(gala_stack[:6], tmp_path / "layout.ome.zarr", voxel_size=(12.0, 10.0, 10.0))
    array = zarr.open_array(path / "0", mode="r")
    assert array.chunks == (1, 100, 200)
    chunk_files = [p for p in (path / "0").rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert len(chunk_files) == 6  # reading one slice back reads one chunk file
    node = next(iter(Reader(parse_url(str(path)))()))
    assert node.metadata["coordinateTransformations"] == [[{"type": "scale", "scale": [12.0, 10.0, 10.0]}]]
    assert [axis["unit"] for axis in node.metadata["axes"]] == ["nanometer"] * 3
    np.testing.assert_array_equal(np.asarray(node.data[0]), gala_stack[:6].compute())


def test_huge_slices_are_tiled_in_zarr(tmp_path, gala_stack, monkeypatch):
    monkeypatch.setattr(ome_zarr_writer, "MAX_CHUNK_BYTES", 10_000)
    monkeypatch.setattr(ome_zarr_writer, "ZARR_TILE", 64)
    path = write_stack(gala_stack[:3], tmp_path / "tiled.zarr")
    assert zarr.open_array(path / "0", mode="r").chunks == (1, 64, 64)
    np.testing.assert_array_equal(open_stack(path).compute(), gala_stack[:3].compute())


def test_bigtiff_above_the_threshold(tmp_path, gala_stack, monkeypatch):
    """Above ~4 GB (threshold lowered here) the TIFF is an OME-BigTIFF and still keeps the voxel size."""
    monkeypatch.setattr(writers, "BIGTIFF_THRESHOLD_BYTES", 100_000)
    path = write_stack(gala_stack[:8], tmp_path / "big.tif", voxel_size=(10.0, 10.0, 10.0))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff and tif.is_ome
    assert inspect_stack(path).format == "OME-TIFF (BigTIFF)"
    np.testing.assert_array_equal(open_stack(path).compute(), gala_stack[:8].compute())
    assert voxel_size(path) == (10.0, 10.0, 10.0)


def test_progress_events_and_one_slice_computed_at_a_time(tmp_path, gala_stack):
    computed = []

    def slice_of(block, block_info=None):
        computed.append(block_info[None]["chunk-location"][0])
        return block

    stack = gala_stack[:5].map_blocks(slice_of, dtype=np.uint8)
    path = tmp_path / "streamed.tif"
    events = []
    for event in iter_write_stack(stack, path, voxel_size=(10, 10, 10)):
        assert isinstance(event, Progress) and event.stage == "write"
        # Slices are computed as the writer goes, one per event, never the stack in advance.
        assert computed == list(range(event.done))
        events.append(event)
        if event.done < event.total:
            assert not path.exists()
    assert [(e.done, e.total) for e in events] == [(z, 5) for z in range(1, 6)]
    assert path.exists() and events[-1].message == f"saved {path}"
    np.testing.assert_array_equal(open_stack(path).compute(), gala_stack[:5].compute())


@pytest.mark.parametrize("name", ["early.tif", "early.ome.zarr", "early.mrc"])
def test_closing_early_removes_the_partial_output(tmp_path, gala_stack, name):
    events = iter_write_stack(gala_stack, tmp_path / name)
    next(events)
    next(events)
    assert len(_leftovers(tmp_path)) == 1  # the temporary output exists while writing
    events.close()
    assert _leftovers(tmp_path) == [] and not (tmp_path / name).exists()


@pytest.mark.parametrize("name", ["broken.tif", "broken.zarr", "broken.mrc"])
def test_failure_mid_stack_removes_the_partial_output(tmp_path, gala_stack, name):
    def fail_on_slice_3(block, block_info=None):
        if block_info[None]["chunk-location"][0] == 3:
            raise OSError("No space left on device")
        return block

    stack = gala_stack[:6].map_blocks(fail_on_slice_3, dtype=np.uint8)
    with pytest.raises(OSError, match="No space left"):
        write_stack(stack, tmp_path / name)
    assert _leftovers(tmp_path) == [] and not (tmp_path / name).exists()


@pytest.mark.parametrize("name", ["exists.tif", "exists.ome.zarr"])
def test_existing_output_needs_overwrite_and_survives_a_failed_overwrite(tmp_path, gala_stack, name):
    path = write_stack(gala_stack[:2], tmp_path / name)
    with pytest.raises(FileExistsError, match=rf"{name} already exists: .*pass overwrite=True"):
        iter_write_stack(gala_stack[2:4], path)  # refused before any event is asked for

    def fail(block, block_info=None):
        if block_info[None]["chunk-location"][0] == 1:
            raise RuntimeError("denoising crashed")
        return block

    with pytest.raises(RuntimeError, match="crashed"):
        write_stack(gala_stack[2:4].map_blocks(fail, dtype=np.uint8), path, overwrite=True)
    np.testing.assert_array_equal(open_stack(path).compute(), gala_stack[:2].compute())  # old output intact

    write_stack(gala_stack[2:5], path, overwrite=True)
    np.testing.assert_array_equal(open_stack(path).compute(), gala_stack[2:5].compute())
    assert _leftovers(tmp_path) == []


def _unwritable_folder(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    # Root ignores permission bits; sysfs refuses new files even to root.
    try:
        with open("/sys/napari-nrrn-probe.tif", "wb"):
            pass
    except OSError:
        return Path("/sys")
    os.unlink("/sys/napari-nrrn-probe.tif")
    pytest.skip("no folder here refuses writes to this user")


def test_unwritable_and_missing_folders(tmp_path, gala_stack):
    folder = _unwritable_folder(tmp_path)
    with pytest.raises(
        PermissionError, match=rf"cannot write in folder {folder} .*choose a folder you can write"
    ):
        iter_write_stack(gala_stack, folder / "out.tif")
    with pytest.raises(FileNotFoundError, match=r"folder .*missing does not exist: create it first"):
        iter_write_stack(gala_stack, tmp_path / "missing" / "out.tif")


def test_bad_arguments(tmp_path, gala_stack):
    with pytest.raises(
        ValueError, match=r"cannot write .*out\.png: choose a \.tif/\.tiff \(TIFF\), \.zarr/\.ome\.zarr"
    ):
        iter_write_stack(gala_stack, tmp_path / "out.png")
    with pytest.raises(ValueError, match=r"need a \(Z, Y, X\) stack .*got shape \(100, 200\)"):
        iter_write_stack(gala_stack[0], tmp_path / "out.tif")
    with pytest.raises(ValueError, match="complex64 is not a grey-level type"):
        iter_write_stack(gala_stack.astype(np.complex64), tmp_path / "out.tif")
    with pytest.raises(
        ValueError, match="cannot write int64 to TIFF .*convert the stack to float32 or write .ome.zarr"
    ):
        iter_write_stack(gala_stack.astype(np.int64), tmp_path / "out.tif")
    with pytest.raises(ValueError, match=r"voxel_size must be three positive numbers"):
        iter_write_stack(gala_stack, tmp_path / "out.tif", voxel_size=(10, 0, 10))
    with pytest.raises(ValueError, match="need an array"):
        iter_write_stack([[[1]]], tmp_path / "out.tif")
    assert list(tmp_path.iterdir()) == []


def test_numpy_input(tmp_path, gala_stack):
    data = gala_stack[:3].compute()
    path = write_stack(data, tmp_path / "numpy.tif")
    np.testing.assert_array_equal(open_stack(path).compute(), data)
    assert isinstance(open_stack(path), da.Array)


# Multiscale OME-Zarr: levels, exact 2x2 means, NGFF metadata for 0.5 and 0.4.


def _mean_2x2(level: np.ndarray) -> np.ndarray:
    """The documented 2x2 mean, computed another way: Python integers (no overflow), halves rounded up."""
    z, height, width = level.shape
    blocks = level[:, : height // 2 * 2, : width // 2 * 2].reshape(z, height // 2, 2, width // 2, 2)
    if level.dtype.kind == "f":
        return blocks.astype(np.float64).sum(axis=(2, 4)).__truediv__(4).astype(level.dtype)
    total = blocks.astype(object).sum(axis=(2, 4))
    return ((total + 2) // 4).astype(level.dtype)


def _levels(path: Path) -> list[np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return [group[key][:] for key in sorted(group.array_keys(), key=int)]


def test_levels_rule():
    assert ome_zarr_writer.pyramid_levels(4096, 6144) == 4  # 6144, 3072, 1536, 768 px on the longer side
    assert ome_zarr_writer.level_shapes((5, 4096, 6144))[-1] == (5, 512, 768)
    assert ome_zarr_writer.pyramid_levels(1023, 1023) == 1
    assert ome_zarr_writer.pyramid_levels(1024, 3) == 2
    assert ome_zarr_writer.pyramid_levels(1, 100_000) == 1  # nothing to halve in y


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint32, np.int64, np.uint64])
def test_integer_mean_neither_overflows_nor_loses_the_rounding(dtype):
    low, high = int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)
    plane = np.array([[high, high, low, low + 1, low, high], [high, high - 1, low, low, low, high]], dtype)
    means = ome_zarr_writer.downsample(plane)
    assert means.dtype == dtype
    assert means.tolist() == _mean_2x2(plane[None])[0].tolist()
    assert means[0, :2].tolist() == [high, low]  # 4 high - 1 and 4 low + 1: the halves round up, no wrap


@pytest.mark.parametrize(
    ("source", "channel"),
    [(GALA, None), (DAT, 1), ("sem_n2v_demo_600x600_float32.tif", None)],  # uint8, int16 < 0, float32
)
def test_every_level_is_the_2x2_mean_of_the_level_above(tmp_path, shared_data, monkeypatch, source, channel):
    monkeypatch.setattr(ome_zarr_writer, "MIN_LEVEL_SIDE", 16)
    stack = open_stack(shared_data / source, channel=channel)[:3, :203, :157]  # odd sizes at every level
    path = write_stack(stack, tmp_path / "pyramid.ome.zarr")
    levels = _levels(path)
    assert len(levels) == ome_zarr_writer.pyramid_levels(*stack.shape[1:]) >= 3
    np.testing.assert_array_equal(levels[0], stack.compute())
    for finer, coarser in zip(levels, levels[1:], strict=False):
        assert coarser.dtype == stack.dtype
        np.testing.assert_array_equal(coarser, _mean_2x2(finer))
    assert min(levels[-1].shape[1:]) > 0 and max(levels[-1].shape[1:]) >= 16 > max(levels[-1].shape[1:]) // 2


@pytest.mark.parametrize("ngff", ["0.5", "0.4"])
def test_ngff_metadata_and_reference_reader(tmp_path, gala_stack, monkeypatch, ngff):
    import json

    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    monkeypatch.setattr(ome_zarr_writer, "MIN_LEVEL_SIDE", 32)  # 100x200: levels 0, 1 (50x100), 2 (25x50)
    path = write_stack(gala_stack[:4], tmp_path / "meta.ome.zarr", voxel_size=(12.0, 10.0, 8.0), ngff=ngff)
    if ngff == "0.5":
        attributes = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]
        assert attributes["version"] == "0.5"
        multiscales = attributes["multiscales"][0]
        level_meta = json.loads((path / "1" / "zarr.json").read_text())
        assert level_meta["zarr_format"] == 3 and level_meta["dimension_names"] == ["z", "y", "x"]
        chunks = level_meta["chunk_grid"]["configuration"]["chunk_shape"]
        chunk = path / "1" / "c" / "0" / "0" / "0"
    else:
        multiscales = json.loads((path / ".zattrs").read_text())["multiscales"][0]
        assert multiscales["version"] == "0.4"
        level_meta = json.loads((path / "1" / ".zarray").read_text())
        assert level_meta["zarr_format"] == 2 and level_meta["dimension_separator"] == "/"
        assert level_meta["compressor"]["id"] == "blosc"
        chunks = level_meta["chunks"]
        chunk = path / "1" / "0" / "0" / "0"
    assert chunks == [1, 50, 100] and chunk.is_file()  # one chunk per slice at every level
    assert multiscales["axes"] == [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    # A level-k pixel averages 2**k level-0 pixels: its centre is (2**k - 1) / 2 of them past the first's.
    assert [d["coordinateTransformations"] for d in multiscales["datasets"]] == [
        [{"type": "scale", "scale": [12.0, 10.0, 8.0]}],
        [{"type": "scale", "scale": [12, 20, 16]}, {"type": "translation", "translation": [0, 5, 4]}],
        [{"type": "scale", "scale": [12, 40, 32]}, {"type": "translation", "translation": [0, 15, 12]}],
    ]
    node = next(iter(Reader(parse_url(str(path)))()))
    assert [level.shape for level in node.data] == [(4, 100, 200), (4, 50, 100), (4, 25, 50)]
    np.testing.assert_array_equal(np.asarray(node.data[2]), _mean_2x2(_mean_2x2(gala_stack[:4].compute())))
    assert voxel_size(path) == (12.0, 10.0, 8.0)
    np.testing.assert_array_equal(open_stack(path).compute(), gala_stack[:4].compute())


def test_ngff_version_only_for_ome_zarr(tmp_path, gala_stack):
    with pytest.raises(ValueError, match=r"out\.tif as NGFF 0\.4: .*name the output \.zarr or \.ome\.zarr"):
        iter_write_stack(gala_stack, tmp_path / "out.tif", ngff="0.4")
    with pytest.raises(ValueError, match=r"as NGFF 0\.3: choose NGFF 0\.5 or 0\.4"):
        iter_write_stack(gala_stack, tmp_path / "out.zarr", ngff="0.3")
    assert list(tmp_path.iterdir()) == []


# MRC


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_mrc_written_slice_by_slice_and_read_back_with_voxel_size(tmp_path, gala_stack, dtype):
    import mrcfile

    data = gala_stack[:5].astype(dtype)
    if dtype == np.int16:
        data = data - 100
    expected = data.compute()
    path = write_stack(data, tmp_path / "out.mrc", voxel_size=(8.0, 4.0, 5.0))
    with mrcfile.open(path, permissive=False) as mrc:
        stored = mrc.data.view(np.uint8) if dtype == np.uint8 else mrc.data
        np.testing.assert_array_equal(stored, expected)
        assert mrc.voxel_size.tolist() == (50.0, 40.0, 80.0)  # x, y, z in Angstrom
        header = mrc.header
        assert (header.dmin, header.dmax) == (expected.min(), expected.max())
        assert header.dmean == pytest.approx(expected.mean(), rel=1e-6)
        assert header.rms == pytest.approx(expected.astype(np.float64).std(), rel=1e-5)
        imod_stamp, imod_flags = np.frombuffer(bytes(header.extra2)[40:48], dtype=header.nx.dtype)
        # uint8 goes to mode 0 with IMOD's stamp and the "signed bytes" flag clear: 0..255 to IMOD.
        assert (int(header.mode), imod_stamp == 1146047817) == ({np.uint8: 0, np.int16: 1}.get(dtype, 2),
                                                                dtype == np.uint8)
        assert imod_flags == 0
    back = open_stack(path)  # our reader follows the stamp: the values and type come back as written
    assert back.dtype == dtype
    np.testing.assert_array_equal(back.compute(), expected)
    assert _leftovers(tmp_path) == []


def test_mrc_refuses_types_it_cannot_hold(tmp_path, gala_stack):
    with pytest.raises(ValueError, match=r"cannot write int32 to MRC .*out\.mrc: MRC holds .*convert"):
        iter_write_stack(gala_stack.astype(np.int32), tmp_path / "out.mrc")
    assert list(tmp_path.iterdir()) == []


def test_napari_browses_the_pyramid_reading_the_low_levels_zoomed_out(
    make_napari_viewer, tmp_path, monkeypatch
):
    """The reader gives napari a multiscale layer. A 2048 px slice in a small canvas: browsing z zoomed out
    reads one chunk of a small level per slice and none of level 0; zoomed in, napari reads level 0."""
    reads = Counter()
    get = zarr.storage.LocalStore.get

    async def counted_get(store, key, *args, **kwargs):
        if "/c/" in key:  # a chunk, not metadata
            reads[int(key.split("/")[0])] += 1
        return await get(store, key, *args, **kwargs)

    planes = np.random.default_rng(0).integers(0, 255, (3, 2048, 2048), dtype=np.uint8)
    path = write_stack(planes, tmp_path / "big.ome.zarr", voxel_size=(8.0, 4.0, 4.0))
    monkeypatch.setattr(zarr.storage.LocalStore, "get", counted_get)
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(700, 600)
    # napari's contrast limits read all of so small a stack's smallest level; without its dask cache, each
    # slice shown is read again, and counted.
    monkeypatch.setattr(get_settings().application.dask, "enabled", False)
    [layer] = viewer.open(str(path), plugin="napari-nrrn")
    assert layer.multiscale
    assert [level.shape for level in layer.data] == [(3, 2048, 2048), (3, 1024, 1024), (3, 512, 512)]
    assert tuple(layer.scale) == (8.0, 4.0, 4.0)
    viewer.reset_view()
    QApplication.processEvents()
    level = layer.data_level
    assert level > 0
    for z in (0, 2):  # napari shows the middle slice first
        reads.clear()
        viewer.dims.set_current_step(0, z)
        QApplication.processEvents()
        # The slice shown and the thumbnail (of the smallest level): no level-0 read. (napari's first paint,
        # before the view fits the canvas, reads level 0 once: that is opening, not browsing.)
        assert set(reads) == {level} and reads[level] <= 2
        np.testing.assert_array_equal(np.asarray(layer.data[level][z]), _mean_2x2(_mean_2x2(planes))[z])
    reads.clear()
    viewer.camera.zoom *= 8
    QApplication.processEvents()
    assert layer.data_level == 0 and reads[0] >= 1


@pytest.mark.parametrize("name", ["full.mrc", "full.ome.zarr"])
def test_full_disk_names_the_output_and_leaves_nothing(tmp_path, gala_stack, monkeypatch, name):
    """MRC blocks are allocated before the first slice (a full sparse mapping would be a SIGBUS); a pyramid
    level failing to write is reported about the output, not its temporary chunk."""
    import errno

    path = tmp_path / name
    partial = tmp_path / f"{name}.partial-{os.getpid()}"
    if name.endswith(".mrc"):

        def no_space(fd, offset, length):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "posix_fallocate", no_space)
    else:
        monkeypatch.setattr(ome_zarr_writer, "MIN_LEVEL_SIDE", 32)
        set_item = zarr.Array.__setitem__

        def level_2_fails(array, key, value):
            if array.path == "2":
                raise OSError(errno.ENOSPC, "No space left on device", str(partial / "2" / "c" / "0"))
            return set_item(array, key, value)

        monkeypatch.setattr(zarr.Array, "__setitem__", level_2_fails)
    with pytest.raises(OSError) as raised:
        write_stack(gala_stack[:3], path)
    assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, str(path))
    assert writers.os_error_message(raised.value) == (
        f"no space left on device writing {path}: free space or write to another disk"
    )
    assert list(tmp_path.iterdir()) == []


def test_cli_denoise_to_mrc_and_to_ome_zarr_04_equals_tiff(tmp_path, stack_file, model_file):
    import mrcfile

    from napari_nrrn.cli import main as cli_main

    outputs = {name: tmp_path / name for name in ("out.tif", "out.mrc", "out.ome.zarr")}
    for name, output in outputs.items():
        ngff = ["--ngff", "0.4"] if name.endswith(".zarr") else []
        arguments = ["denoise", str(stack_file), str(output), "--model", str(model_file), *ngff]
        assert cli_main(arguments) == 0
    tiff = open_stack(outputs["out.tif"]).compute()
    with mrcfile.open(outputs["out.mrc"]) as mrc:
        np.testing.assert_array_equal(mrc.data.view(np.uint8), tiff)
    assert (outputs["out.ome.zarr"] / ".zgroup").is_file()
    np.testing.assert_array_equal(open_stack(outputs["out.ome.zarr"]).compute(), tiff)
