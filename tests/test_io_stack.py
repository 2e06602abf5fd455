"""Lazy stack opening on the real EM data: values, voxel sizes, laziness, folders, Zarr, and bad input."""

import os
import pickle
from pathlib import Path

import dask
import numpy as np
import pytest
import tifffile
import zarr

from napari_nrrn.io.formats import base
from napari_nrrn.io.stack import inspect_stack, looks_like_stack, natural_sort_key, open_stack, voxel_size

GALA = "fibsem_flyem_gala_train_50x100x200.tif"
SEM = "sem_n2v_demo_600x600_float32.tif"
GEMINI_TIF = "fibsem_raw_dat_gemini500_SnC_InLens_ESB_2x1000x1000_int16.tif"
MEDULLA = "fibsem_flyem_medulla_A_250cube.tif"


@pytest.fixture(scope="module")
def gala(shared_data):
    return tifffile.imread(shared_data / GALA)


def test_imagej_stack_is_lazy_per_slice_and_exact(shared_data, gala):
    stack = open_stack(shared_data / GALA)
    assert stack.shape == (50, 100, 200) and stack.dtype == np.uint8
    assert stack.chunks == ((1,) * 50, (100,), (200,))
    np.testing.assert_array_equal(stack.compute(), gala)
    np.testing.assert_array_equal(stack[7, 10:20, 33].compute(), gala[7, 10:20, 33])
    assert voxel_size(shared_data / GALA) == (10.0, 10.0, 10.0)


def test_2d_tiff_opens_as_one_slice(shared_data):
    stack = open_stack(shared_data / SEM)
    assert stack.shape == (1, 600, 600) and stack.dtype == np.float32
    np.testing.assert_array_equal(stack[0].compute(), tifffile.imread(shared_data / SEM))
    assert voxel_size(shared_data / SEM) is None  # the SEM demo records no pixel size


def test_hyperstack_channels(shared_data):
    reference = tifffile.imread(shared_data / GEMINI_TIF)
    for channel in (0, 1):
        stack = open_stack(shared_data / GEMINI_TIF, channel=channel)
        assert stack.shape == (1, 1000, 1000) and stack.dtype == np.int16
        np.testing.assert_array_equal(stack[0].compute(), reference[channel])
    np.testing.assert_array_equal(open_stack(shared_data / GEMINI_TIF).compute()[0], reference[0])
    with pytest.raises(ValueError, match=r"channel 2 does not exist .*2 channel\(s\), choose channel 0 to 1"):
        open_stack(shared_data / GEMINI_TIF, channel=2)
    with pytest.raises(ValueError, match="channel 1 does not exist"):
        open_stack(shared_data / GALA, channel=1)


@pytest.mark.parametrize(
    "options",
    [
        {"compression": "zlib"},
        {"tile": (64, 64)},
        {"bigtiff": True},
        {"byteorder": ">"},
        {"rowsperstrip": 7},  # many strips per page: still one contiguous block
    ],
    ids=["zlib", "tiled", "bigtiff", "big-endian", "strips"],
)
def test_tiff_layouts_read_exactly(tmp_path, gala, options):
    data = gala[:6].astype(np.uint16) * 200  # values above 255 so byte order matters
    path = tmp_path / "layout.tif"
    tifffile.imwrite(path, data, photometric="minisblack", **options)
    stack = open_stack(path)
    assert stack.shape == data.shape and stack.dtype == np.uint16
    assert stack.chunks[0] == (1,) * 6
    np.testing.assert_array_equal(stack.compute(), data)
    np.testing.assert_array_equal(stack[4].compute(), data[4])


def test_ome_tiff_physical_sizes_in_any_unit(tmp_path, gala):
    path = tmp_path / "calibrated.ome.tif"
    metadata = {
        "axes": "ZYX",
        "PhysicalSizeX": 0.004,  # OME's default unit: micrometre
        "PhysicalSizeY": 40.0,
        "PhysicalSizeYUnit": "Å",
        "PhysicalSizeZ": 8.0,
        "PhysicalSizeZUnit": "nm",
    }
    tifffile.imwrite(path, gala[:5], ome=True, metadata=metadata)
    found = inspect_stack(path)
    assert found.format == "OME-TIFF"
    assert found.voxel_size == (8.0, 4.0, 4.0)
    np.testing.assert_array_equal(found.array.compute(), gala[:5])


def test_imagej_micron_unit_and_missing_spacing(tmp_path, gala):
    path = tmp_path / "microns.tif"
    tifffile.imwrite(
        path, gala[0], imagej=True, resolution=(1 / 0.005, 1 / 0.005), metadata={"unit": "micron"}
    )
    # A 2-D image records no z step: z is taken equal to x.
    assert voxel_size(path) == (5.0, 5.0, 5.0)


def test_pickled_stack_reads_the_same(shared_data, gala):
    """The distributed engine ships the lazy stack to workers: it must pickle small and read the same."""
    stack = open_stack(shared_data / GALA)
    payload = pickle.dumps(stack)
    assert len(payload) < 100_000
    np.testing.assert_array_equal(pickle.loads(payload)[3].compute(), gala[3])


# --- laziness: count the bytes this process reads (Linux /proc/self/io, "rchar": all read() calls) --------


def _bytes_read() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.fixture(scope="module")
def big_stack_file(tmp_path_factory, shared_data):
    """200 slices of 500 x 500 real FIB-SEM (each medulla slice tiled 2 x 2): a 50 MB multi-page TIFF."""
    if not Path("/proc/self/io").exists():
        pytest.skip("counting read bytes needs Linux /proc/self/io")
    medulla = open_stack(shared_data / MEDULLA)
    path = tmp_path_factory.mktemp("big") / "big.tif"
    with tifffile.TiffWriter(path) as tif:
        for z in range(200):
            tif.write(np.tile(medulla[z].compute(), (2, 2)), contiguous=True, photometric="minisblack")
    return path


@pytest.mark.parametrize("compressed", [False, True], ids=["contiguous", "zlib"])
def test_open_reads_no_pixels_and_one_slice_reads_one_slice(tmp_path, big_stack_file, compressed):
    path = big_stack_file
    if compressed:
        path = tmp_path / "big_zlib.tif"
        with tifffile.TiffFile(big_stack_file) as source, tifffile.TiffWriter(path) as tif:
            for page in source.pages:
                tif.write(page.asarray(), compression="zlib", photometric="minisblack")
    slice_bytes = 500 * 500
    with tifffile.TiffFile(path) as tif:
        page_bytes = [sum(page.databytecounts) for page in tif.pages]
    with dask.config.set(scheduler="synchronous"):
        open_stack(path)[0].compute()  # warm up imports and caches outside the measurement

        before = _bytes_read()
        stack = open_stack(path)
        opened = _bytes_read() - before
        assert stack.shape == (200, 500, 500)
        if compressed:
            # tifffile walks the 200 IFDs: at most one 8 KiB read buffer each, a small part of the data.
            assert opened < 200 * 8192 + 65536 and opened < sum(page_bytes) / 10, f"opening read {opened} B"
        else:
            # One contiguous series: only the first IFD is read.
            assert opened < min(page_bytes) / 2, f"opening read {opened} bytes"

        before = _bytes_read()
        slice_150 = stack[150].compute()
        one_slice = _bytes_read() - before
    assert page_bytes[150] <= one_slice < page_bytes[150] + slice_bytes / 4, f"slice read {one_slice} bytes"
    with tifffile.TiffFile(path) as tif:
        np.testing.assert_array_equal(slice_150, tif.pages[150].asarray())


# --- folders of slices ------------------------------------------------------------------------------------


def test_natural_sort_key():
    names = ["s10.tif", "s2.tif", "S1.tif", "s2b.tif", "s02x.tif"]
    assert sorted(names, key=natural_sort_key) == ["S1.tif", "s2.tif", "s2b.tif", "s02x.tif", "s10.tif"]


def test_folder_of_slices_in_natural_order(tmp_path, gala):
    folder = tmp_path / "slices"
    folder.mkdir()
    order = [
        3,
        11,
        0,
        7,
        1,
        10,
        2,
        9,
        4,
        8,
        5,
        6,
    ]  # created out of order: the listing order is not the stack's
    for i in order:
        tifffile.imwrite(
            folder / f"s{i}.tif", gala[i], imagej=True, resolution=(1 / 4.0, 1 / 4.0), metadata={"unit": "nm"}
        )
    (folder / "notes.txt").write_text("acquisition notes")
    (folder / ".s99.tif").write_bytes(b"macOS resource fork")
    found = inspect_stack(folder)
    assert found.format == "folder of 12 TIFF slices"
    assert found.array.shape == (12, 100, 200) and found.array.chunks[0] == (1,) * 12
    np.testing.assert_array_equal(found.array.compute(), gala[:12])
    assert found.voxel_size == (4.0, 4.0, 4.0) == voxel_size(folder)
    assert found.disk_bytes == sum((folder / f"s{i}.tif").stat().st_size for i in range(12))


def test_folder_with_odd_slice_names_it(tmp_path, gala):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(4):
        tifffile.imwrite(folder / f"slice_{i}.tif", gala[i])
    tifffile.imwrite(folder / "slice_2.tif", gala[2, :50])  # one slice of another shape
    with pytest.raises(
        ValueError, match=r"slice_2\.tif is \(50, 200\) uint8 but slice_0\.tif is \(100, 200\)"
    ):
        open_stack(folder)
    tifffile.imwrite(folder / "slice_2.tif", gala[2].astype(np.uint16))
    with pytest.raises(ValueError, match=r"slice_2\.tif is \(100, 200\) uint16 but slice_0\.tif"):
        open_stack(folder)
    tifffile.imwrite(folder / "slice_2.tif", gala[2:4])
    with pytest.raises(ValueError, match=r"slice_2\.tif holds 2 slices; a folder stack needs one 2-D image"):
        open_stack(folder)


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"holds no TIFF \(\.tif/\.tiff\) or FIB-SEM \.dat slices"):
        open_stack(tmp_path)
    assert not looks_like_stack(tmp_path)


# --- Zarr and OME-Zarr -----------------------------------------------------------------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_plain_zarr_arrays(tmp_path, gala, zarr_format):
    array = zarr.create_array(
        tmp_path / "plain.zarr",
        shape=(8, 100, 200),
        chunks=(4, 50, 50),
        dtype=np.uint8,
        zarr_format=zarr_format,
    )
    array[:] = gala[:8]
    stack = open_stack(tmp_path / "plain.zarr")
    assert stack.chunks == ((1,) * 8, (100,), (200,))
    np.testing.assert_array_equal(stack.compute(), gala[:8])
    assert voxel_size(tmp_path / "plain.zarr") is None

    flat = zarr.create_array(tmp_path / "image2d", shape=(100, 200), dtype=np.uint8, zarr_format=zarr_format)
    flat[:] = gala[0]
    assert looks_like_stack(tmp_path / "image2d")
    np.testing.assert_array_equal(open_stack(tmp_path / "image2d").compute(), gala[:1])


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_written_by_ome_zarr(tmp_path, gala, version):
    """Files from the reference writer: full-resolution level, micrometre scale converted to nm; the
    pyramid's levels kept for napari, each as written."""
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_image

    fmt = FormatV04() if version == "0.4" else FormatV05()
    path = tmp_path / "ref.ome.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=fmt.zarr_format)
    write_image(
        gala[:8],
        group,
        axes="zyx",
        axes_units={axis: "micrometer" for axis in "zyx"},
        scale={"z": 0.012, "y": 0.01, "x": 0.01},
        scale_factors=[2],
        fmt=fmt,
    )
    found = inspect_stack(path)
    full_resolution = zarr.open_group(path, mode="r").attrs.asdict()
    full_resolution = full_resolution.get("ome", full_resolution)["multiscales"][0]["datasets"][0]["path"]
    assert found.format == f"OME-Zarr (level {full_resolution} of 2)"
    assert found.voxel_size == (12.0, 10.0, 10.0)
    np.testing.assert_array_equal(found.array.compute(), gala[:8])
    assert len(found.levels) == 2 and found.levels[0] is found.array
    assert found.levels[1].shape == (8, 50, 100) and found.levels[1].chunks[0] == (1,) * 8


def test_ome_zarr_channel_axis(tmp_path, gala):
    from ome_zarr.writer import write_image

    data = np.stack([gala[:4], 255 - gala[:4]], axis=0)  # (c, z, y, x): two detectors
    group = zarr.open_group(tmp_path / "two.ome.zarr", mode="w")
    write_image(data, group, axes="czyx", scale_factors=[])
    np.testing.assert_array_equal(open_stack(tmp_path / "two.ome.zarr", channel=1).compute(), 255 - gala[:4])
    np.testing.assert_array_equal(open_stack(tmp_path / "two.ome.zarr").compute(), gala[:4])
    with pytest.raises(ValueError, match="channel 5 does not exist"):
        open_stack(tmp_path / "two.ome.zarr", channel=5)


# --- bad input ----------------------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.tif does not exist: check the path"):
        open_stack(tmp_path / "nowhere.tif")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        voxel_size(tmp_path / "nowhere.tif")


def test_non_image_files(tmp_path):
    fake = tmp_path / "notes.tif"
    fake.write_text("this is not an image\n" * 20)
    with pytest.raises(ValueError, match=r"notes\.tif is not a readable TIFF"):
        open_stack(fake)
    other = tmp_path / "table.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"cannot open .*table\.csv: napari-nrrn reads TIFF"):
        open_stack(other)
    assert not looks_like_stack(fake) and not looks_like_stack(other)


def test_rgb_and_complex_are_refused(tmp_path, gala):
    rgb = tmp_path / "colour.tif"
    tifffile.imwrite(rgb, np.stack([gala[0]] * 3, axis=-1), photometric="rgb")
    with pytest.raises(ValueError, match=r"colour\.tif is an RGB/colour image .*convert it to grey values"):
        open_stack(rgb)
    assert not looks_like_stack(rgb)
    complex_file = tmp_path / "fft.tif"
    tifffile.imwrite(complex_file, gala[:2].astype(np.complex64))
    with pytest.raises(ValueError, match=r"fft\.tif holds complex numbers"):
        open_stack(complex_file)


@pytest.mark.parametrize(
    "options", [{"imagej": True}, {"photometric": "minisblack"}], ids=["imagej", "multipage"]
)
def test_truncated_tiff_fails_at_open(tmp_path, gala, options):
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, gala, **options)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cut\.tif is truncated or corrupt .*copy the file again"):
        open_stack(cut)


def test_truncated_page_data_fails_at_open(tmp_path, gala):
    """IFDs intact, the last page's compressed data cut: caught by checking offsets against the file size."""
    whole = tmp_path / "whole.tif"
    with tifffile.TiffWriter(whole) as tif:
        for plane in gala[:5]:
            tif.write(plane, compression="zlib", photometric="minisblack")
    with tifffile.TiffFile(whole) as tif:
        last = tif.pages[4]
        end = last.dataoffsets[-1] + last.databytecounts[-1] // 2
        assert all(page.offset < end for page in tif.pages)  # every IFD survives the cut
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[:end])
    with pytest.raises(ValueError, match=r"cut\.tif is truncated or corrupt \(page 4 ends at byte"):
        open_stack(cut)


def test_file_changed_after_opening(tmp_path, gala):
    path = tmp_path / "changing.tif"
    tifffile.imwrite(path, gala[:4], photometric="minisblack")
    stack = open_stack(path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"changing\.tif is shorter than when it was opened"):
        stack[3].compute()


def test_bad_channel_argument(shared_data):
    with pytest.raises(ValueError, match="channel must be a whole number"):
        open_stack(shared_data / GALA, channel="InLens")


def test_reader_helpers_read_no_pixels(shared_data, monkeypatch):
    """inspect_stack and voxel_size work from metadata: reading a plane here would fail the test."""

    def no_pixels(self):
        raise AssertionError("pixels read")

    monkeypatch.setattr(base.RawPlane, "read", no_pixels)
    assert inspect_stack(shared_data / MEDULLA).array.shape == (250, 250, 250)
    assert voxel_size(shared_data / MEDULLA) == (10.0, 10.0, 10.0)
    assert looks_like_stack(shared_data / MEDULLA)
    assert os.path.getsize(shared_data / MEDULLA) == inspect_stack(shared_data / MEDULLA).disk_bytes


def test_io_layer_imports_no_torch_napari_or_qt(shared_data, tmp_path):
    """Layer 1 stands alone: reading and writing a stack pulls in neither torch nor napari nor Qt."""
    import subprocess
    import sys

    source, target = str(shared_data / GALA), str(tmp_path / "x.ome.zarr")
    script = (
        "import sys\n"
        "from napari_nrrn import open_stack, voxel_size, write_stack\n"
        f"write_stack(open_stack({source!r})[:2], {target!r}, voxel_size=voxel_size({source!r}))\n"
        "print(sorted(m for m in ('torch', 'napari', 'qtpy', 'PyQt5', 'vispy') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def _imported_modules(path: Path, package: str) -> set[str]:
    """Every module a source file imports, anywhere (inside functions too), relative imports resolved."""
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (
                ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]) if node.level else ""
            )
            module = ".".join(part for part in (base, node.module) if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _layer_violations(folders: list[str], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    root = Path(__file__).resolve().parents[1]
    found = {}
    for folder in folders:
        for path in sorted((root / folder).glob("**/*.py") if (root / folder).is_dir() else [root / folder]):
            package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
            bad = sorted(
                name
                for name in _imported_modules(path, package)
                if any(name == top or name.startswith(f"{top}.") for top in forbidden)
            )
            if bad:
                found[str(path.relative_to(root))] = bad
    return found


def test_no_import_points_up_the_layers():
    """Static, over every source file: I/O, measures and the progress events import nothing of the engine,
    the model or the front ends, nor torch or Qt; engine and model nothing of the front ends."""
    front_ends = ("napari_nrrn.plugin", "napari_nrrn.cli", "napari", "qtpy")
    bottom = ["napari_nrrn/io", "napari_nrrn/measures", "napari_nrrn/progress.py"]
    assert _layer_violations(bottom, ("napari_nrrn.engine", "napari_nrrn.model", "torch", *front_ends)) == {}
    assert _layer_violations(["napari_nrrn/engine", "napari_nrrn/model"], front_ends) == {}
    # The check sees what it must: the engine does import the model, and torch.
    assert "napari_nrrn.model.nrrn" in _imported_modules(
        Path(__file__).resolve().parents[1] / "napari_nrrn/engine/inference.py", "napari_nrrn.engine"
    )
