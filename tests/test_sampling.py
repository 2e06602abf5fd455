"""Triplet patch sampling from a lazy stack: per-slice z-scoring, one transform per triplet, bounded reads,
held-out validation slices, determinism, repeated-scan layouts and bad input."""

import dask.array as da
import numpy as np
import pytest
import tifffile
import torch

from napari_nrrn.engine.sampling import SliceCache, TripletSampler, split_centres
from napari_nrrn.engine.train import TrainConfig, branch_inputs, sample_offsets


class CountingStack:
    """A (Z, ...) array that records every slice read from it, like a lazy stack on disk."""

    def __init__(self, array):
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.reads = []

    def __getitem__(self, z):
        self.reads.append(int(z))
        return self.array[z]


def scaled_copies(base: np.ndarray, depth: int) -> np.ndarray:
    """Slices a*base + b with a different a, b per slice: identical once each is z-scored on its own."""
    return np.stack([(z + 1) * base + 7 * z for z in range(depth)]).astype(np.float32)


@pytest.fixture(scope="module")
def flyem(shared_data):
    return tifffile.imread(shared_data / "fibsem_flyem_gala_train_50x100x200.tif")[:12]


def test_each_slice_is_zscored_on_its_own_and_the_triplet_shares_one_transform():
    base = np.random.default_rng(0).normal(size=(20, 24)).astype(np.float32)
    sampler = TripletSampler(scaled_copies(base, 6), patch=8, validation_fraction=0, seed=3)
    samples = sampler.batch(64)
    assert samples.shape == (64, 3, 8, 8) and samples.dtype == np.float32
    # prev, centre and next are the same image after per-slice z-scoring, so equal patches mean one
    # shared position, flip and rotation.
    np.testing.assert_allclose(samples[:, 0], samples[:, 1], atol=1e-5)
    np.testing.assert_allclose(samples[:, 2], samples[:, 1], atol=1e-5)
    normalised = (base - base.mean()) / base.std()
    windows = np.lib.stride_tricks.sliding_window_view(normalised, (8, 8)).reshape(-1, 8, 8)
    seen = set()
    for patch in samples[:, 1]:
        for k in range(8):
            undone = np.rot90(patch[:, ::-1] if k >= 4 else patch, -(k % 4))
            if np.abs(windows - undone).max(axis=(1, 2)).min() < 1e-5:
                seen.add(k)
                break
        else:
            pytest.fail("a patch is not a flipped/rotated window of the z-scored slice")
    assert len(seen) >= 6  # all 8 dihedral transforms are drawn; 64 samples show most of them


def test_reads_only_the_slices_it_needs_through_a_bounded_cache():
    rng = np.random.default_rng(1)
    stack = CountingStack(rng.integers(0, 255, size=(40, 32, 32), dtype=np.uint8))
    slice_bytes = 32 * 32
    sampler = TripletSampler(stack, patch=16, validation_fraction=0, seed=0, cache_bytes=9 * slice_bytes)
    assert sampler.cache.capacity == 9 and sampler.resident_count == 2
    sampler.batch(8)
    assert len(stack.reads) <= 6  # the first batch reads the 2 resident triplets
    for _ in range(50):
        before = len(stack.reads)
        sampler.batch(8)
        # One resident triplet is replaced per batch: at most 3 new slices read.
        assert len(stack.reads) - before <= 3
        assert len(sampler.cache) <= 9
    assert sampler.cache.reads == len(stack.reads)
    assert len(set(stack.reads)) > 20  # the resident set moves through the whole stack


def test_a_stack_that_fits_the_cache_is_read_once_lazily():
    rng = np.random.default_rng(2)
    array = rng.integers(0, 255, size=(10, 32, 32), dtype=np.uint8)
    reads = []

    def read(block, block_info=None):
        reads.append(block_info[None]["chunk-location"][0])
        return block

    lazy = da.from_array(array, chunks=(1, 32, 32)).map_blocks(read, dtype=np.uint8)
    sampler = TripletSampler(lazy, patch=16, validation_fraction=0, seed=0)
    for _ in range(30):
        sampler.batch(4)
    assert sorted(reads) == sorted(set(reads))
    assert set(reads) == set(range(10))


def test_validation_slices_are_never_read_for_training(shared_data):
    gala = tifffile.imread(shared_data / "fibsem_flyem_gala_train_50x100x200.tif")[:20]
    stack = CountingStack(gala)
    sampler = TripletSampler(stack, patch=32, validation_fraction=0.2, seed=5)
    assert list(sampler.split.validation) == [8, 9, 10, 11]
    assert set(sampler.split.train) == {1, 2, 3, 4, 5, 14, 15, 16, 17, 18}
    for _ in range(40):
        sampler.batch(4)
    # The validation triplets span slices 7..12; a training triplet may not touch them.
    assert not set(stack.reads) & set(range(7, 13))
    stack.reads.clear()
    validation = sampler.validation_batch(6)
    assert set(stack.reads) <= set(range(7, 13)) and validation.shape == (6, 3, 32, 32)
    np.testing.assert_array_equal(
        validation, TripletSampler(gala, 32, validation_fraction=0.2, seed=5).validation_batch(6)
    )


def test_split_centres_keeps_a_margin_in_adjacent_mode_only():
    adjacent = split_centres(22, "adjacent", 0.1)
    assert list(adjacent.validation) == [10, 11]
    assert (
        8 not in adjacent.train and 13 not in adjacent.train and 7 in adjacent.train and 14 in adjacent.train
    )
    repeated = split_centres(10, "repeated-3", 0.2)
    assert list(repeated.validation) == [4, 5] and list(repeated.train) == [0, 1, 2, 3, 6, 7, 8, 9]
    assert len(split_centres(3, "adjacent", 0.1).validation) == 0
    # Block and margin would take more than half of a short stack: all centres train, none validate.
    too_short = split_centres(14, "adjacent", 0.1, reach=2)
    assert list(too_short.train) == list(range(2, 12)) and len(too_short.validation) == 0
    assert len(split_centres(24, "adjacent", 0.1, reach=2).validation) == 2
    with pytest.raises(ValueError, match="must be in"):
        split_centres(20, "adjacent", 1.0)


def test_deterministic_for_a_seed_and_restorable(flyem):
    first, second = (TripletSampler(flyem, 32, seed=11) for _ in range(2))
    np.testing.assert_array_equal(first.batch(4), second.batch(4))
    state = first.state()
    expected = first.batch(4)
    third = TripletSampler(flyem, 32, seed=11)
    third.restore(state)
    np.testing.assert_array_equal(third.batch(4), expected)
    assert not np.array_equal(
        TripletSampler(flyem, 32, seed=12).batch(4), TripletSampler(flyem, 32, seed=11).batch(4)
    )


def test_repeated_scan_layouts():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(16, 16)).astype(np.float32)
    scans = np.stack([base * (s + 1) + s for s in range(3)])[None]  # one slice, 3 scans
    samples = TripletSampler(scans, 8, mode="repeated-3", validation_fraction=0).batch(5)
    assert samples.shape == (5, 3, 8, 8)
    np.testing.assert_allclose(samples[:, 0], samples[:, 2], atol=1e-5)
    pairs = TripletSampler(np.stack([scans[0, :2]] * 4), 8, mode="repeated-2", validation_fraction=0.25)
    assert pairs.batch(5).shape == (5, 2, 8, 8)
    assert list(pairs.split.validation) == [1] and list(pairs.split.train) == [0, 2, 3]


def test_five_slice_windows_for_the_neighbour_mean_target(flyem):
    sampler = TripletSampler(flyem, 16, validation_fraction=0, offsets=(-2, -1, 0, 1, 2))
    assert sampler.batch(3).shape == (3, 5, 16, 16)
    assert set(sampler.split.train) == set(range(2, 10))
    with pytest.raises(ValueError, match=r"slice offsets \(-1, 1\) must be increasing and include 0"):
        TripletSampler(flyem, 16, offsets=(-1, 1))


@pytest.mark.parametrize(
    ("target", "offsets"), [("neighbour-mean", (-4, -2, 0, 2, 4)), ("neighbours", (-2, 0, 2))]
)
def test_pairing_at_z_distance_two_reads_the_right_slices(target, offsets):
    # Slice z has z + 1 bright pixels of 64: z-scored, they read sqrt((64 - k) / k), which names the slice
    # whatever the flip or rotation of the whole-slice patch.
    stack = np.zeros((13, 8, 8), np.float32)
    for z in range(13):
        stack[z].flat[: z + 1] = 1
    config = TrainConfig(target=target, z_distance=2)
    assert sample_offsets(config) == offsets
    counting = CountingStack(stack)
    samples = TripletSampler(counting, 8, validation_fraction=0, offsets=offsets).batch(20)
    names = np.rint(64 / (1 + samples.max(axis=(2, 3)) ** 2) - 1).astype(int)
    centres = names[:, len(offsets) // 2]
    np.testing.assert_array_equal(names, centres[:, None] + np.array(offsets))
    assert set(centres) <= set(range(4, 9) if target == "neighbour-mean" else range(2, 11))
    assert set(counting.reads) == {int(z) for c in set(centres) for z in c + np.array(offsets)}
    # The branches: f(z-2s, z) and f(z+2s, z) toward (z-s + z+s) / 2; or f(z-s, z) -> z+s, f(z+s, z) -> z-s.
    x1, x2, prev, next_ = branch_inputs(torch.from_numpy(samples), "adjacent", target)
    sample = samples[0]
    if target == "neighbour-mean":
        np.testing.assert_array_equal(x1[0].numpy(), sample[[0, 2]])
        np.testing.assert_array_equal(x2[0].numpy(), sample[[4, 2]])
        np.testing.assert_array_equal(prev[0, 0].numpy(), (sample[1] + sample[3]) / 2)
    else:
        np.testing.assert_array_equal(x1[0].numpy(), sample[[0, 1]])
        np.testing.assert_array_equal(next_[0, 0].numpy(), sample[2])


@pytest.mark.parametrize("reach", [1, 2, 4, 6])
def test_training_and_validation_samples_never_share_a_slice_for_any_reach(reach):
    split = split_centres(80, "adjacent", 0.1, reach)
    assert len(split.validation) > 0
    validation_slices = {z for v in split.validation for z in range(v - reach, v + reach + 1)}
    training_slices = {z for c in split.train for z in range(c - reach, c + reach + 1)}
    assert not validation_slices & training_slices
    assert min(split.train) == reach and max(split.train) == 79 - reach


@pytest.mark.parametrize(
    ("shape", "mode", "patch", "message"),
    [
        ((100, 200), "adjacent", 32, "a 2-D image has no neighbour slices"),
        ((1, 100, 200), "adjacent", 32, "needs at least 3 slices, the stack has 1"),
        ((2, 100, 200), "adjacent", 32, "needs at least 3 slices, the stack has 2"),
        ((5, 100, 200), "adjacent", 128, "patch size 128 does not fit slices of 100x200 pixels"),
        ((5, 100, 200), "repeated-2", 32, r"needs a \(Z, 2, Y, X\) array"),
        ((5, 3, 100, 200), "repeated-2", 32, r"needs a \(Z, 2, Y, X\) array"),
        ((5, 100, 200), "sideways", 32, "training mode 'sideways' is unknown"),
    ],
)
def test_bad_input_is_refused_with_the_fix(shape, mode, patch, message):
    with pytest.raises(ValueError, match=message):
        TripletSampler(np.zeros(shape, np.uint8), patch, mode=mode)


def test_cache_evicts_the_least_recently_used_slice():
    stack = CountingStack(np.arange(5 * 4, dtype=np.float32).reshape(5, 2, 2))
    cache = SliceCache(stack, capacity=2)
    cache.get(0), cache.get(1), cache.get(0), cache.get(2)  # 1 is the least recently used
    cache.get(0)
    cache.get(1)
    assert stack.reads == [0, 1, 2, 1]
    scans, stats = cache.get(1)
    assert scans.shape == (1, 2, 2) and stats[0] == pytest.approx((5.5, np.std([4, 5, 6, 7])))
