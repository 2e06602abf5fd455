"""The tile cache: a hit returns identical pixels; another model, depth or layer data never meets old tiles;
the bound is in bytes, least recently used out; a limit of 0 keeps nothing and stays correct."""

import numpy as np
import pytest
import tifffile
import torch

from napari_nrrn.engine.inference import denoise_slice, iter_denoise_slice
from napari_nrrn.engine.session import InferenceSession
from napari_nrrn.engine.tile_cache import TileCache, model_fingerprint
from napari_nrrn.model.nrrn import NRRN

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REGION = (10, 90, 20, 180)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return NRRN(depth=2, width=8)


@pytest.fixture(scope="module")
def triplet(shared_data):
    return tuple(tifffile.imread(shared_data / "fibsem_flyem_gala_test_50x100x200.tif")[10:13])


def _run(model, session, triplet, data_key):
    events = iter_denoise_slice(model, *triplet, region=REGION, session=session, data_key=data_key)
    seen = []
    while True:
        try:
            seen.append(next(events))
        except StopIteration as finished:
            return finished.value, seen


def _session(model, cache):
    return InferenceSession(model, "cpu", torch.float32, tile=40, cache=cache)


def test_a_hit_returns_identical_pixels_without_running_the_network(model, triplet):
    cache = TileCache()
    first, events = _run(model, _session(model, cache), triplet, ("layer", 11))
    assert not any(event.cached for event in events) and len(cache) == len(events)
    again = _session(model, cache)
    again.fused = None  # a hit must not need the network
    second, events = _run(model, again, triplet, ("layer", 11))
    assert all(event.cached for event in events)
    np.testing.assert_array_equal(second, first)
    expected = denoise_slice(model, *triplet, tile=40, precision="float32", region=REGION)
    np.testing.assert_array_equal(first, expected)


def test_new_weights_depth_or_layer_data_miss(model, triplet):
    cache = TileCache()
    _run(model, _session(model, cache), triplet, ("layer", 11))
    retrained = NRRN(depth=2, width=8)
    retrained.load_state_dict(model.state_dict())
    assert model_fingerprint(retrained) == model_fingerprint(model)  # the same weights are the same model
    with torch.no_grad():
        retrained.stem.bias.add_(0.1)
    others = ((retrained, ("layer", 11)), (model.cut(1), ("layer", 11)), (model, ("other data", 11)))
    for other, key in others:
        result, events = _run(other, _session(other, cache), triplet, key)
        assert not any(event.cached for event in events)
        np.testing.assert_array_equal(
            result, denoise_slice(other, *triplet, tile=40, precision="float32", region=REGION)
        )


def test_the_bound_is_bytes_least_recently_used_out():
    cache = TileCache(max_bytes=300)
    tiles = {name: np.full((10, 10), i, np.uint8) for i, name in enumerate("abcd")}
    for name in "abc":
        cache.put(name, tiles[name])
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("d", tiles["d"])
    assert cache.get("b") is None and cache.nbytes == 300
    assert [cache.get(name) is not None for name in "acd"] == [True, True, True]
    cache.put("big", np.zeros(301, np.uint8))
    assert cache.get("big") is None


def test_a_limit_of_zero_keeps_nothing_and_stays_correct(model, triplet):
    cache = TileCache(max_bytes=0)
    result, events = _run(model, _session(model, cache), triplet, ("layer", 11))
    again, events = _run(model, _session(model, cache), triplet, ("layer", 11))
    assert len(cache) == 0 and not any(event.cached for event in events)
    np.testing.assert_array_equal(again, result)
    with pytest.raises(ValueError, match="0 \\(no cache\\) or more bytes"):
        TileCache(max_bytes=-1)
