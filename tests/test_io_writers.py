"""Streaming writers: exact round trips, one slice computed at a time, temp-and-rename, refusals."""

import os
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from napari_nrrn.engine.events import Progress
from napari_nrrn.io import writers
from napari_nrrn.io.stack import inspect_stack, open_stack, voxel_size
from napari_nrrn.io.writers import iter_write_stack, write_stack

GALA = "fibsem_flyem_gala_train_50x100x200.tif"
DAT = "Gemini500-7029_24-12-16_151317_0-0-0.dat"


@pytest.fixture(scope="module")
def gala_stack(shared_data):
    return open_stack(shared_data / GALA)  # lazy (50, 100, 200) uint8, 10 nm


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name)


@pytest.mark.parametrize("name", ["out.tif", "out.ome.zarr"])
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
    monkeypatch.setattr(writers, "MAX_CHUNK_BYTES", 10_000)
    monkeypatch.setattr(writers, "ZARR_TILE", 64)
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


@pytest.mark.parametrize("name", ["early.tif", "early.ome.zarr"])
def test_closing_early_removes_the_partial_output(tmp_path, gala_stack, name):
    events = iter_write_stack(gala_stack, tmp_path / name)
    next(events)
    next(events)
    assert len(_leftovers(tmp_path)) == 1  # the temporary output exists while writing
    events.close()
    assert _leftovers(tmp_path) == [] and not (tmp_path / name).exists()


@pytest.mark.parametrize("name", ["broken.tif", "broken.zarr"])
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
        ValueError, match=r"cannot write .*out\.png: choose a \.tif/\.tiff \(TIFF\) or \.zarr"
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
