"""The stack is never materialised: denoising reads each input slice a bounded number of times, one at a time.

Peak memory against stack depth is measured by benchmarks/bench_memory.py; here the behaviour behind it is
checked by counting reads per input slice through a stack whose slices are loaded by counted loaders.
"""

from __future__ import annotations

import threading
from collections import Counter

import dask
import dask.array as da
import numpy as np
import pytest
import tifffile
import torch

from napari_nrrn.cli import main as cli_main
from napari_nrrn.engine.distributed import denoise_chunk
from napari_nrrn.engine.inference import denoise_stack
from napari_nrrn.io.formats import base as stack_io
from napari_nrrn.io.writers import iter_write_stack, write_stack
from napari_nrrn.model.checkpoint import save_model
from napari_nrrn.model.nrrn import NRRN

DEPTH = 10


class CountedSlices:
    """A (Z, Y, X) dask stack whose per-slice loaders count how often each slice is read."""

    def __init__(self, planes: np.ndarray):
        self.planes = planes
        self.reads = Counter()
        self._lock = threading.Lock()
        loads = [
            da.from_delayed(dask.delayed(self._load)(z), planes.shape[1:], planes.dtype)[None]
            for z in range(len(planes))
        ]
        self.array = da.concatenate(loads)

    def _load(self, z: int) -> np.ndarray:
        with self._lock:
            self.reads[z] += 1
        return self.planes[z].copy()


@pytest.fixture(scope="module")
def planes(shared_data):
    return tifffile.imread(shared_data / "fibsem_flyem_gala_train_50x100x200.tif")[:DEPTH, :32, :48]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return NRRN(depth=1, width=4).eval()


def test_denoise_and_write_reads_each_slice_at_most_three_times(planes, model, tmp_path):
    counted = CountedSlices(planes)
    for event in iter_write_stack(denoise_stack(model, counted.array), tmp_path / "out.ome.zarr"):
        # Written slice by slice: no slice beyond the one being written (and its two neighbours) was read.
        assert max(counted.reads, default=-1) <= min(event.done, DEPTH - 1)
    assert set(counted.reads) == set(range(DEPTH))
    assert max(counted.reads.values()) <= 3


def test_distributed_chunk_reads_its_slices_and_one_halo_slice_each_side(planes, model):
    counted = CountedSlices(planes)
    output = denoise_chunk(model, counted.array, 3, 7)
    assert counted.reads == Counter({z: 1 for z in range(2, 8)})  # n + 2 slices, once each
    np.testing.assert_array_equal(output, np.asarray(denoise_stack(model, da.from_array(planes))[3:7]))


def test_cli_denoise_reads_each_tiff_slice_a_bounded_number_of_times(planes, model, tmp_path, monkeypatch):
    source = write_stack(planes, tmp_path / "in.tif")
    model_path = save_model(model, tmp_path / "tiny.pt")
    reads = Counter()
    raw_read = stack_io.RawPlane.read

    def counted_read(plane):
        reads[plane.offset] += 1
        return raw_read(plane)

    monkeypatch.setattr(stack_io.RawPlane, "read", counted_read)
    assert cli_main(["denoise", str(source), str(tmp_path / "out.ome.zarr"), "--model", str(model_path)]) == 0
    assert len(reads) == DEPTH
    # Up to 3 reads a slice (as centre and as each neighbour); the stated estimate reads the middle
    # slice's triplet once more before the run.
    by_slice = [reads[offset] for offset in sorted(reads)]
    middle = DEPTH // 2
    assert all(n <= 3 + (abs(z - middle) <= 1) for z, n in enumerate(by_slice)), by_slice


def test_pyramid_writer_reads_each_slice_once_and_never_reads_its_output(planes, tmp_path, monkeypatch):
    """Every level of a slice is made from that slice in memory: no level is read back from disk, so
    writing the pyramid holds one slice and its levels whatever the depth."""
    import zarr

    from napari_nrrn.io import ome_zarr_writer

    monkeypatch.setattr(ome_zarr_writer, "MIN_LEVEL_SIDE", 8)  # 32x48 slices: levels 0, 1 (16x24), 2 (8x12)
    store_calls = Counter()
    get, set_ = zarr.storage.LocalStore.get, zarr.storage.LocalStore.set

    async def counted_get(store, key, *args, **kwargs):
        store_calls["get", key.split("/")[0]] += "/c/" in key
        return await get(store, key, *args, **kwargs)

    async def counted_set(store, key, value):
        store_calls["set", key.split("/")[0]] += "/c/" in key
        return await set_(store, key, value)

    monkeypatch.setattr(zarr.storage.LocalStore, "get", counted_get)
    monkeypatch.setattr(zarr.storage.LocalStore, "set", counted_set)
    counted = CountedSlices(planes)
    for event in iter_write_stack(counted.array, tmp_path / "pyramid.ome.zarr"):
        assert set(counted.reads) == set(range(event.done))  # slice by slice, never ahead
    assert counted.reads == Counter({z: 1 for z in range(DEPTH)})
    # No chunk read, one chunk written per slice and level.
    assert +store_calls == Counter({("set", level): DEPTH for level in "012"})
