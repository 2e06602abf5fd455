"""Registered neighbours: training samples and inference read each neighbour shifted onto its centre by its
measured shift (cubic convolution), as shifting by hand would; windows equal the whole shifted slice, so
training equals inference and tiles and regions stay exact."""

import math

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from napari_nrrn.engine.events import run_to_end
from napari_nrrn.engine.inference import (
    denoise_slice,
    denoise_stack,
    iter_denoise_slices,
    slice_triplet,
    triplet_stats,
)
from napari_nrrn.engine.normalise import slice_stats
from napari_nrrn.engine.registration import (
    model_registers,
    neighbour_shift,
    noise_variance_factor,
    read_shifted,
    register_triplet,
    shift_onto,
)
from napari_nrrn.engine.sampling import TripletSampler
from napari_nrrn.engine.train import RANDOM, TrainConfig, train
from napari_nrrn.model.nrrn import NRRN

SIDE = 96
# Whole-pixel position of each slice's window in the source slice: a drift of a few pixels per slice.
POSITIONS = [(0, 0), (2, -1), (3, 1), (1, 4), (-2, 5), (-3, 3)]


@pytest.fixture(scope="module")
def drifting(shared_data):
    """One medulla slice seen through a window that moves by POSITIONS, independent noise per slice: the
    true shift of slice b onto slice a is POSITIONS[a] - POSITIONS[b]."""
    source = np.asarray(tifffile.memmap(shared_data / "fibsem_flyem_medulla_A_250cube.tif")[120], np.float64)
    rng = np.random.default_rng(11)
    slices = []
    for dy, dx in POSITIONS:
        window = source[60 + dy : 60 + dy + SIDE, 60 + dx : 60 + dx + SIDE]
        slices.append(np.clip(np.rint(window + rng.normal(0, 10, window.shape)), 0, 255))
    return np.stack(slices).astype(np.uint8)


def truth(a: int, b: int) -> tuple[int, int]:
    return POSITIONS[a][0] - POSITIONS[b][0], POSITIONS[a][1] - POSITIONS[b][1]


def keys(distance):
    """Keys' cubic convolution kernel, a = -0.5."""
    x = abs(distance)
    if x <= 1:
        return 1.5 * x**3 - 2.5 * x**2 + 1
    return -0.5 * (x**3 - 5 * x**2 + 8 * x - 4) if x < 2 else 0.0


def by_hand(image, shift):
    """``image`` read at (y + dy, x + dx): the 4 x 4 pixels around each place weighted by Keys' kernel,
    indices clipped to the slice (its edge repeated beyond it); float64."""
    height, width = image.shape
    out = np.zeros((height, width))
    ys, xs = np.arange(height) + shift[0], np.arange(width) + shift[1]
    for i in range(-1, 3):
        rows = np.floor(ys).astype(int) + i
        row_weights = np.array([keys(y - r) for y, r in zip(ys, rows, strict=True)])
        for j in range(-1, 3):
            columns = np.floor(xs).astype(int) + j
            column_weights = np.array([keys(x - c) for x, c in zip(xs, columns, strict=True)])
            picked = image[np.clip(rows, 0, height - 1)[:, None], np.clip(columns, 0, width - 1)[None, :]]
            out += row_weights[:, None] * column_weights[None, :] * picked
    return out


def test_measured_shifts_are_the_true_ones_within_a_tenth_of_a_pixel(drifting):
    for a in range(len(POSITIONS)):
        for b in (a - 2, a - 1, a + 1, a + 2):
            if 0 <= b < len(POSITIONS):
                assert (
                    np.abs(np.subtract(neighbour_shift(drifting[a], drifting[b]), truth(a, b))).max() <= 0.1
                )


def test_whole_pixel_shifts_move_pixels_untouched_and_repeat_the_edge(drifting):
    padded = np.pad(drifting[0], 8, mode="edge")
    for dy, dx in ((0, 0), (3, -2), (-5, 7)):
        expected = padded[8 + dy : 8 + dy + SIDE, 8 + dx : 8 + dx + SIDE]
        np.testing.assert_array_equal(shift_onto(drifting[0], (float(dy), float(dx))), expected)


@pytest.mark.parametrize("shift", [(0.5, 0.5), (0.3, -1.6), (-2.25, 4.9), (-40.5, 120.2)])
def test_shift_onto_reads_between_pixels_by_cubic_convolution(drifting, shift):
    np.testing.assert_allclose(shift_onto(drifting[0], shift), by_hand(drifting[0], shift), atol=1e-3)


def test_a_sub_pixel_shift_moves_a_smooth_slice_the_right_way(shared_data):
    smooth = ndimage.gaussian_filter(
        tifffile.memmap(shared_data / "fibsem_flyem_medulla_A_250cube.tif")[120].astype(np.float64), 2
    )
    shifted = shift_onto(smooth, (0.4, -0.7))
    expected = ndimage.shift(smooth, (-0.4, 0.7), order=3, mode="nearest")  # read at y + 0.4, x - 0.7
    assert np.abs(shifted - expected)[4:-4, 4:-4].max() < 0.5  # grey levels, of 0..255
    assert np.abs(smooth - expected)[4:-4, 4:-4].mean() > 5 * np.abs(shifted - expected)[4:-4, 4:-4].mean()


@pytest.mark.parametrize("shift", [(0.5, 0.5), (0.3, -1.6), (7.0, -3.0), (-90.5, 100.25)])
def test_windows_of_a_shifted_slice_equal_the_whole_shifted_slice(drifting, shift):
    whole = shift_onto(drifting[0], shift)
    for rows, columns in (
        (slice(0, 40), slice(0, 40)),
        (slice(30, 70), slice(50, 96)),
        (slice(95, 96), slice(0, 96)),
    ):
        np.testing.assert_array_equal(read_shifted(drifting[0], shift, rows, columns), whole[rows, columns])


def test_interpolation_shrinks_independent_noise_by_the_stated_factor():
    assert noise_variance_factor((2.0, -3.0)) == 1.0
    assert noise_variance_factor((0.5, 0.0)) == pytest.approx(0.640625)  # 2 x (0.5625^2 + 0.0625^2)
    noise = np.random.default_rng(0).normal(0, 1, (400, 400))
    for shift in ((0.5, 0.5), (0.25, -0.6)):
        variance = shift_onto(noise, shift)[4:-4, 4:-4].var()
        assert variance == pytest.approx(noise_variance_factor(shift), rel=0.03)


def test_training_samples_equal_windows_of_the_shifted_slices(drifting):
    offsets = (-2, -1, 0, 1, 2)
    sampler = TripletSampler(drifting, patch=40, validation_fraction=0, offsets=offsets, register=True)
    plain = TripletSampler(drifting, patch=40, validation_fraction=0, offsets=offsets)
    for centre in (2, 3):
        shifts = sampler.shifts_of(centre)
        assert shifts == tuple(neighbour_shift(drifting[centre], drifting[centre + o]) for o in offsets)
        y0, y1, x0, x1 = sampler._corner_range(centre)
        assert (y0, x0) == (math.ceil(max(-dy for dy, _ in shifts)), math.ceil(max(-dx for _, dx in shifts)))
        for y, x in ((y0, x0), (y1, x1), ((y0 + y1) // 2, x0)):
            expected = []
            for o, shift in zip(offsets, shifts, strict=True):
                image = drifting[centre + o]
                window = shift_onto(image, shift)[y : y + 40, x : x + 40]
                mean, std = slice_stats(image)
                expected.append((window.astype(np.float32) - np.float32(mean)) / np.float32(std))
            np.testing.assert_array_equal(sampler._sample(centre, y, x), np.stack(expected))
        assert plain.shifts_of(centre) == ((0, 0),) * 5
    batch = sampler.batch(8)  # every drawn window fits inside its slice
    assert batch.shape == (8, 5, 40, 40) and np.isfinite(batch).all()


def test_a_shift_that_leaves_no_room_for_a_patch_is_refused_with_the_fix(drifting):
    sampler = TripletSampler(drifting, patch=SIDE - 2, validation_fraction=0, register=True)
    with pytest.raises(ValueError, match="smaller patch, or without registration"):
        sampler.batch(2)


@pytest.fixture(scope="module")
def model():
    import torch

    torch.manual_seed(0)
    return NRRN(depth=2, width=4).eval()


def test_inference_with_registration_equals_shifting_by_hand_then_denoising(drifting, model):
    stacked = denoise_stack(model, drifting, tile=32, precision="float32", register=True).compute()
    for z in range(len(POSITIONS)):
        before, after = (1 if z == 0 else z - 1), (z + 1 if z < len(POSITIONS) - 1 else z - 1)
        prev, centre, next_ = slice_triplet(drifting, z, register=True)
        for image, neighbour in ((prev, before), (next_, after)):
            shift = neighbour_shift(drifting[z], drifting[neighbour])
            np.testing.assert_allclose(image, by_hand(drifting[neighbour], shift), atol=1e-3)
        # Normalised with the statistics of the slices as read, as training z-scores shifted windows.
        stats = triplet_stats((drifting[before], drifting[z], drifting[after]), z, len(POSITIONS))
        expected = denoise_slice(model, prev, centre, next_, tile=32, precision="float32", stats=stats)
        np.testing.assert_array_equal(stacked[z], expected)
    unregistered = denoise_stack(model, drifting, tile=32, precision="float32", register=False).compute()
    assert not np.array_equal(unregistered, stacked)
    slices = dict(iter_denoise_slices(model, drifting, zs=[2], tile=32, precision="float32", register=True))
    np.testing.assert_array_equal(slices[2], stacked[2])


def test_tiles_and_regions_stay_exact_with_registered_neighbours(drifting, model):
    triplet = register_triplet(*drifting[1:4])
    whole = denoise_slice(model, *triplet, tile=SIDE, precision="float32")
    tiled = denoise_slice(model, *triplet, tile=20, precision="float32")
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1
    region = (5, 61, 30, 90)
    part = denoise_slice(model, *triplet, tile=20, precision="float32", region=region)
    np.testing.assert_array_equal(part, tiled[5:61, 30:90])


def run(stack, **overrides):
    config = TrainConfig(depth=1, width=4, patch=24, batch=2, steps=2, start_from=RANDOM, **overrides)
    return run_to_end(train(stack, config))


def test_training_registers_when_the_drift_calls_for_it_and_records_it(drifting, model):
    trained = run(drifting)
    record = trained.metadata["training"]
    assert record["register"] is True and record["register_automatic"] is True
    assert record["config"]["register"] is True and trained.metadata["drift"]["shifts"]
    assert any("(cubic interpolation)" in warning for warning in record["warnings"])
    assert model_registers(trained) and not model_registers(model)
    # Inference follows the model's record unless told otherwise.
    default = denoise_stack(trained, drifting, precision="float32").compute()
    forced = denoise_stack(trained, drifting, precision="float32", register=True).compute()
    np.testing.assert_array_equal(default, forced)


def test_registration_can_be_forced_off_or_on(drifting):
    off = run(drifting, register=False).metadata["training"]
    assert off["register"] is False and off["register_automatic"] is False
    assert any("registration is turned off" in warning for warning in off["warnings"])
    aligned = np.stack([drifting[0]] * 5)
    assert run(aligned).metadata["training"]["register"] is False
    assert run(aligned, register=True).metadata["training"]["register"] is True


def test_registration_is_refused_for_repeated_scans(drifting):
    with pytest.raises(ValueError, match="adjacent mode only"):
        run(np.stack([drifting[:3], drifting[:3]], axis=1), mode="repeated-2", register=True)


def test_a_lazily_shifted_neighbour_gives_the_same_tiles_and_view(drifting, model):
    import torch

    from napari_nrrn.engine.registration import ShiftedSlice
    from napari_nrrn.engine.session import InferenceSession

    whole = register_triplet(*drifting[1:4])
    lazy = register_triplet(*drifting[1:4], lazy=True)
    assert isinstance(lazy[0], ShiftedSlice) and isinstance(lazy[2], ShiftedSlice)
    np.testing.assert_array_equal(np.asarray(lazy[0]), whole[0])
    np.testing.assert_array_equal(lazy[2][10:50, :30], whole[2][10:50, :30])
    stats = triplet_stats(drifting[1:4], 2, len(POSITIONS))
    session = InferenceSession(model, "cpu", torch.float32, 32)
    view = (10, 70, 20, 90)
    done = list(session.iter_view(lazy, stats, lambda: view))
    expected = denoise_slice(model, *whole, tile=32, precision="float32", stats=stats, region=view)
    painted = np.zeros_like(expected)
    for event in done:
        y0, y1, x0, x1 = event.bounds
        painted[y0 - view[0] : y1 - view[0], x0 - view[2] : x1 - view[2]] = event.pixels
    np.testing.assert_array_equal(painted, expected)


def test_a_pair_seen_again_is_not_measured_again(drifting, monkeypatch):
    import napari_nrrn.engine.registration as registration

    calls = []
    measure = registration.measure_shift
    monkeypatch.setattr(registration, "measure_shift", lambda *images: calls.append(1) or measure(*images))
    centre = drifting[0] ^ np.uint8(1)  # content no other test measured
    first = neighbour_shift(centre, drifting[1])
    assert neighbour_shift(centre.copy(), drifting[1].copy()) == first and len(calls) == 1
    changed = drifting[1].copy()
    changed[40, 40] ^= 1
    neighbour_shift(centre, changed)
    assert len(calls) == 2
