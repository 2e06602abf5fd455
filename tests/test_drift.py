"""Drift measurement between slices: known shifts of real FIB-SEM slices (FlyEM medulla) with noise added."""

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from napari_nrrn.measures.drift import DriftReport, PairShift, estimate_drift, measure_shift

NOISE = 20.0  # grey levels, about what bench_depth_noise adds to the medulla


@pytest.fixture(scope="module")
def medulla(shared_data):
    stack = tifffile.memmap(shared_data / "fibsem_flyem_medulla_A_250cube.tif")
    return np.asarray(stack[100:110]).astype(np.float64)


def shifted(image, shift):
    """``image`` moved by ``shift`` (dy, dx): the result read at (y + dy, x + dx) is ``image`` at (y, x)."""
    return ndimage.shift(image, shift, order=3, mode="nearest")


def noisy(image, rng):
    return image + rng.normal(0, NOISE, image.shape)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (3.0, -2.0), (0.4, -0.7), (-1.35, 2.6), (7.25, 0.5)])
def test_known_shift_of_a_noisy_slice_is_recovered_within_a_tenth_of_a_pixel(medulla, shift):
    rng = np.random.default_rng(7)
    reference = noisy(medulla[0], rng)[20:-20, 20:-20]
    found = measure_shift(reference, noisy(shifted(medulla[0], shift), rng)[20:-20, 20:-20])
    assert np.abs(np.subtract(found, shift)).max() <= 0.1


def drifting(stack, steps):
    """Slice z moved by the sum of the first z steps."""
    position = np.concatenate([[(0.0, 0.0)], np.cumsum(steps, axis=0)])
    return np.stack([shifted(plane, offset) for plane, offset in zip(stack, position, strict=True)])


def test_report_gives_median_largest_and_total_drift_of_every_pair(medulla):
    rng = np.random.default_rng(3)
    steps = np.array([(1.0, 0.0)] * 4 + [(0.0, 2.0)] * 5)
    clean = estimate_drift(medulla[:, 20:-20, 20:-20], pairs=9)  # the slices' own apparent steps
    report = estimate_drift(noisy(drifting(medulla, steps), rng)[:, 20:-20, 20:-20], pairs=9)
    assert [p.z for p in report.shifts] == list(range(9))
    own = np.array([(p.dy, p.dx) for p in clean.shifts])
    found = np.array([(p.dy, p.dx) for p in report.shifts]) - own
    assert np.abs(found - steps).max() <= 0.25
    assert report.largest_step == pytest.approx(max(p.step for p in report.shifts))
    assert report.median_step == pytest.approx(np.median([p.step for p in report.shifts]))
    total = np.add(report.total_drift, -own.sum(0))
    assert np.abs(total - steps.sum(0)).max() <= 1.0
    assert report.calls_for_registration()
    text = "\n".join(report.describe() + report.warnings())
    assert "median step" in text and "9 of 9 pairs" in text and "(cubic interpolation)" in text
    assert DriftReport.from_dict(report.to_dict()) == report


def test_a_few_pairs_are_read_lazily_from_a_long_stack(medulla):
    reads = []

    class Counting:
        shape, ndim, dtype = (200, *medulla.shape[1:]), 3, medulla.dtype

        def __getitem__(self, key):
            reads.append(key[0])
            return medulla[key[0] % 10][key[1:]]

    report = estimate_drift(Counting(), pairs=4)
    assert len(set(reads)) == 8 and len(reads) == 8
    assert "about" in report.describe()[0] and "4 of 199 pairs" in report.describe()[1]


def test_aligned_slices_call_for_no_registration(medulla):
    same = np.stack([noisy(medulla[0], np.random.default_rng(z)) for z in range(4)])
    report = estimate_drift(same)
    assert report.median_step < 0.1 and not report.calls_for_registration() and report.warnings() == []


def test_registered_medulla_with_noise_measures_an_apparent_step_above_the_threshold(medulla):
    """Structures cut at a slant move between slices of a registered stack: registration goes on by default
    (cubic interpolation costs nothing there, docs/training.md), and the warning says so."""
    report = estimate_drift(noisy(medulla, np.random.default_rng(0)))
    assert report.median_step > 0.3 and report.calls_for_registration()
    assert "shifts each neighbour onto its centre slice" in report.warnings()[0]
    assert "registration is turned off" in report.warnings(register=False)[0]


def test_blank_slices_are_skipped_and_said(medulla):
    stack = medulla[:5].copy()
    stack[2] = 7
    report = estimate_drift(stack)
    assert [p.z for p in report.shifts] == [0, 3] and report.skipped == (2,)
    assert "skipped in the drift measurement: z = 2" in report.describe()[-1]


def test_two_slice_stack_has_one_pair(medulla):
    report = estimate_drift(np.stack([medulla[0], shifted(medulla[0], (2.0, 1.0))]))
    assert len(report.shifts) == 1 and report.total_drift == pytest.approx((2.0, 1.0), abs=0.1)
    assert "1 of 1 pairs" in report.describe()[1]


def test_one_slice_or_an_image_is_refused_clearly(medulla):
    for bad in (medulla[:1], medulla[0]):
        with pytest.raises(ValueError, match="at least 2 slices"):
            estimate_drift(bad)


def test_slices_that_do_not_correlate_are_not_a_z_stack(medulla, shared_data):
    unrelated = tifffile.imread(shared_data / "sem_n2v_demo_600x600_float32.tif")[:250, :250]
    report = estimate_drift(np.stack([medulla[0], unrelated.astype(np.float64), medulla[0].T]))
    assert report.shifts == () and report.uncorrelated == (0, 1) and report.median_step is None
    assert not report.calls_for_registration()
    assert "does not look like a z-stack" in report.warnings()[0]
    assert "not measured" in report.describe()[0]


def test_shift_larger_than_a_quarter_of_the_slice_is_refused_not_reported(medulla):
    big = np.asarray(medulla[0])
    pair = np.stack([big[:120, :120], big[40:160, :120]])  # moved by 40 px on a 120 px slice
    report = estimate_drift(pair)
    assert report.shifts == () and report.too_large == (PairShift(0, -40, 0),)
    assert "too far to pair them; register the stack first" in report.warnings()[0]


@pytest.fixture(scope="module")
def large_slice(shared_data):
    """A medulla slice enlarged 5x to 1250 x 1250 px: large enough to be measured near its corners."""
    source = tifffile.memmap(shared_data / "fibsem_flyem_medulla_A_250cube.tif")[120].astype(np.float64)
    return ndimage.zoom(source, 5, order=3)


def rotated(image, degrees):
    """``image`` turned by ``degrees`` about its centre: read at p it shows ``image`` at M p + offset."""
    angle = np.deg2rad(degrees)
    matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = (np.array(image.shape) - 1) / 2
    return ndimage.affine_transform(image, matrix, offset=centre - matrix @ centre, order=3, mode="nearest")


def test_one_shift_holds_across_a_translated_slice(large_slice):
    rng = np.random.default_rng(5)
    pair = np.stack([noisy(large_slice, rng), noisy(shifted(large_slice, (2.3, -1.4)), rng)])
    report = estimate_drift(pair)
    (across,) = report.across
    assert all(corner is not None for corner in across.corners)
    assert report.largest_spread <= 0.25  # each shift within about 0.1 px of the truth
    assert "varies by up to" in report.describe()[-1]
    assert not any("rotation" in warning for warning in report.warnings())
    assert DriftReport.from_dict(report.to_dict()) == report


def test_a_rotation_between_slices_shows_as_corners_moving_against_the_centre(large_slice):
    rng = np.random.default_rng(6)
    degrees = 0.3
    pair = np.stack([noisy(large_slice, rng), noisy(rotated(large_slice, degrees), rng)])
    report = estimate_drift(pair)
    # Corner crops are centred 1250 // 16 + 256 px from two edges: 291 px from the centre on each axis.
    expected = 2 * np.sin(np.deg2rad(degrees) / 2) * np.hypot(291, 291)
    assert report.largest_spread == pytest.approx(expected, abs=0.25)
    assert any("rotation or scan distortion" in warning for warning in report.warnings())
    assert DriftReport.from_dict(report.to_dict()) == report


def test_small_slices_are_measured_at_the_centre_only(medulla):
    assert estimate_drift(medulla[:3]).across == ()
