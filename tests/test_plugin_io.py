"""Reader, writer and sample data through a real napari viewer."""

import dask.array as da
import numpy as np
import pytest
import tifffile

from napari_nrrn.io.samples import (
    SAMPLE_GALA_PATH,
    SAMPLE_SEM_PATH,
    SAMPLE_STACK_PATH,
    SAMPLE_STACK_VOXEL_NM,
)
from napari_nrrn.io.stack import open_stack, voxel_size
from napari_nrrn.plugin.reader import get_reader
from napari_nrrn.plugin.writer import write_ome_zarr, write_tiff

GALA = "fibsem_flyem_gala_train_50x100x200.tif"
DAT = "Gemini500-7029_24-12-16_151317_0-0-0.dat"


def test_get_reader_claims_only_what_it_reads(tmp_path, shared_data):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "fake.tif").write_text("not a TIFF either")
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    empty = tmp_path / "empty"
    empty.mkdir()
    for path in [tmp_path / "notes.txt", tmp_path / "fake.tif", rgb, empty, tmp_path / "missing.tif"]:
        assert get_reader(str(path)) is None, path
    assert get_reader([str(shared_data / GALA), str(shared_data / DAT)]) is None
    for name in (GALA, DAT):
        assert callable(get_reader(str(shared_data / name)))
    assert callable(get_reader([str(shared_data / GALA)]))


def test_reader_layer_data(shared_data):
    [(data, meta, kind)] = get_reader(str(shared_data / GALA))(str(shared_data / GALA))
    assert kind == "image" and isinstance(data, da.Array) and data.shape == (50, 100, 200)
    assert meta["scale"] == (10.0, 10.0, 10.0) and meta["name"] == "fibsem_flyem_gala_train_50x100x200"
    assert meta["metadata"]["voxel_size_nm"] == (10.0, 10.0, 10.0)
    assert meta["metadata"]["path"] == str(shared_data / GALA)

    [(frame, meta, _)] = get_reader(str(shared_data / DAT))(str(shared_data / DAT))
    assert frame.shape == (1000, 1000)  # one slice: a 2-D layer
    assert meta["scale"] == pytest.approx((2.0, 2.0), abs=1e-3)


def test_open_in_napari_with_voxel_scale(make_napari_viewer, shared_data):
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(shared_data / GALA), plugin="napari-nrrn")
    assert isinstance(layer.data, da.Array)  # lazy in the viewer too
    assert tuple(layer.scale) == voxel_size(shared_data / GALA) == (10.0, 10.0, 10.0)
    np.testing.assert_array_equal(np.asarray(layer.data[12]), tifffile.imread(shared_data / GALA)[12])

    [sem] = viewer.open(str(shared_data / "sem_n2v_demo_600x600_float32.tif"), plugin="napari-nrrn")
    assert sem.ndim == 2 and tuple(sem.scale) == (1.0, 1.0)


def test_sample_data_in_napari(make_napari_viewer):
    viewer = make_napari_viewer()
    [stack] = viewer.open_sample("napari-nrrn", "fibsem")
    assert stack.data.shape == (32, 160, 160) and stack.data.dtype == np.uint8
    assert stack.name == "FIB-SEM sample (FlyEM medulla + synthetic noise)"
    assert tuple(stack.scale) == SAMPLE_STACK_VOXEL_NM == voxel_size(SAMPLE_STACK_PATH)
    np.testing.assert_array_equal(np.asarray(stack.data), tifffile.imread(SAMPLE_STACK_PATH))
    [gala] = viewer.open_sample("napari-nrrn", "fibsem_gala")
    assert gala.name == "FIB-SEM sample (FlyEM gala, correlated noise)"
    assert tuple(gala.scale) == voxel_size(SAMPLE_GALA_PATH) == (10.0, 10.0, 10.0)
    np.testing.assert_array_equal(np.asarray(gala.data), tifffile.imread(SAMPLE_GALA_PATH))
    [sem] = viewer.open_sample("napari-nrrn", "sem_resin")
    assert sem.data.shape == (600, 600) and sem.data.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(sem.data), tifffile.imread(SAMPLE_SEM_PATH))


def test_shipped_gala_crop_is_the_real_data(shared_data):
    np.testing.assert_array_equal(
        open_stack(SAMPLE_GALA_PATH).compute(), tifffile.imread(shared_data / GALA)[9:41]
    )
    attribution = (SAMPLE_GALA_PATH.parent / "ATTRIBUTION.md").read_text()
    for needed in ("gala_LICENSE_HHMI-BSD.txt", "10.1371/journal.pone.0071715", "BSD-3-Clause", "Buchholz"):
        assert needed in attribution
    for licence in ("gala_LICENSE_HHMI-BSD.txt", "gala_CITATION.bib", "n2v-sem-demo_README.md"):
        assert (SAMPLE_GALA_PATH.parent / licence).is_file()


def test_shipped_medulla_sample_is_remade_by_its_script(shared_data, tmp_path):
    """The sample is the medulla crop plus independent noise, reproducibly, and says where it came from."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "make_samples.py"
    spec = importlib.util.spec_from_file_location("make_samples", script)
    make_samples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_samples)
    remade = make_samples.make_medulla_sample(tmp_path / "remade.tif")
    np.testing.assert_array_equal(tifffile.imread(remade), tifffile.imread(SAMPLE_STACK_PATH))
    clean = tifffile.imread(shared_data / "fibsem_flyem_medulla_A_250cube.tif")[40:72, 45:205, 45:205]
    noise = tifffile.imread(SAMPLE_STACK_PATH).astype(float) - clean
    assert 17 < noise.std() < 22  # shot gain 2 and read sigma 10: about 19 grey levels
    attribution = (SAMPLE_STACK_PATH.parent / "ATTRIBUTION.md").read_text()
    for needed in (SAMPLE_STACK_PATH.name, "CC BY 3.0", "10.1371/journal.pone.0125825", "synthetic"):
        assert needed in attribution
    assert (SAMPLE_STACK_PATH.parent / "neuroproof_examples_LICENSE_CC-BY-3.0.txt").is_file()


@pytest.mark.parametrize("name", ["saved.tif", "saved.ome.zarr"])
def test_save_layer_through_the_plugin_writer(make_napari_viewer, shared_data, tmp_path, name):
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(shared_data / GALA), plugin="napari-nrrn")
    layer.scale = (12.0, 10.0, 10.0)
    saved = viewer.layers.save(str(tmp_path / name), selected=False, plugin="napari-nrrn")
    assert saved == [str(tmp_path / name)]
    np.testing.assert_array_equal(open_stack(tmp_path / name).compute(), tifffile.imread(shared_data / GALA))
    assert voxel_size(tmp_path / name) == (12.0, 10.0, 10.0)
    [back] = viewer.open(str(tmp_path / name), plugin="napari-nrrn")
    assert tuple(back.scale) == (12.0, 10.0, 10.0)


def test_writer_functions_on_2d_and_uncalibrated_layers(tmp_path, shared_data):
    sem = tifffile.imread(shared_data / "sem_n2v_demo_600x600_float32.tif")
    assert write_tiff(str(tmp_path / "sem.tif"), sem, {"scale": (1.0, 1.0)}) == [str(tmp_path / "sem.tif")]
    np.testing.assert_array_equal(open_stack(tmp_path / "sem.tif").compute()[0], sem)
    assert voxel_size(tmp_path / "sem.tif") is None  # napari's default scale is not a 1 nm calibration

    write_ome_zarr(str(tmp_path / "sem.ome.zarr"), sem, {"scale": (5.0, 5.0)})
    assert voxel_size(tmp_path / "sem.ome.zarr") == (5.0, 5.0, 5.0)
    with pytest.raises(ValueError, match=r"cannot save a 4-D layer .*slice the layer"):
        write_tiff(str(tmp_path / "movie.tif"), np.zeros((2, 2, 8, 8), np.uint8), {"scale": (1, 1, 1, 1)})
