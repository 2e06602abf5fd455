"""Noise diagnostics against synthetic noise of known correlation on real signal (FlyEM medulla)."""

import json

import numpy as np
import pytest
import tifffile

from napari_nrrn.io.samples import SAMPLE_GALA_PATH, SAMPLE_STACK_PATH
from napari_nrrn.io.stack import open_stack
from napari_nrrn.measures.noise import INDEPENDENT_BELOW, NoiseReport, estimate_noise

# Stated in docs/noise.md: correlations within 0.05 of the truth, sigma within 8 %.
CORRELATION_TOLERANCE = 0.05
SIGMA_TOLERANCE = 0.08
MEDULLA_OWN_SIGMA = 3.6  # the medulla's own noise, part of the noise the estimator sees


@pytest.fixture(scope="module")
def clean(shared_data):
    medulla = tifffile.memmap(shared_data / "fibsem_flyem_medulla_A_250cube.tif")
    return np.asarray(medulla[20:32, 40:168, 40:168]).astype(np.float64)


def spread(correlation: float) -> float:
    """c for which n = w_0 + c (w_-1 + w_+1), white w, has neighbour correlation 2c / (1 + 2c^2)."""
    return 0.0 if correlation == 0 else (1 - np.sqrt(1 - 2 * correlation**2)) / (2 * correlation)


def noisy_stack(clean, z=0.0, rows=0.0, columns=0.0, seed=0):
    """FIB-SEM-like noise (shot gain 2, read sigma 10) with the given neighbour correlations along z, y, x."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(tuple(n + 2 for n in clean.shape))
    unit = white
    for axis, correlation in enumerate((z, rows, columns)):
        c = spread(correlation)
        centre = [slice(1, -1) if a == axis else slice(None) for a in range(3)]
        before = [slice(None, -2) if a == axis else slice(None) for a in range(3)]
        after = [slice(2, None) if a == axis else slice(None) for a in range(3)]
        unit = unit[tuple(centre)] + c * (unit[tuple(before)] + unit[tuple(after)])
    noise = unit / unit.std() * np.sqrt(10.0**2 + 2.0 * clean)
    return np.clip(np.round(clean + noise), 0, 255).astype(np.uint8), noise


def correlation(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def true_z_correlation(noise, distances=(1, 2, 3)):
    return [np.mean([correlation(noise[i], noise[i + d]) for i in range(len(noise) - d)]) for d in distances]


def expected_sigma(noisy, clean):
    return np.sqrt((noisy - clean).var() + MEDULLA_OWN_SIGMA**2)


@pytest.mark.parametrize("z", [0.0, 0.2, 0.4, 0.6])
def test_z_correlation_within_tolerance(clean, z):
    noisy, noise = noisy_stack(clean, z=z, seed=1)
    report = estimate_noise(noisy)
    for measured, truth in zip(report.z_correlation, true_z_correlation(noise), strict=True):
        assert measured == pytest.approx(truth, abs=CORRELATION_TOLERANCE)
    assert abs(report.row_correlation) < CORRELATION_TOLERANCE
    assert abs(report.column_correlation) < CORRELATION_TOLERANCE
    assert report.sigma == pytest.approx(expected_sigma(noisy, clean), rel=SIGMA_TOLERANCE)
    assert report.slices == tuple(range(12))


@pytest.mark.parametrize("rows", [0.0, 0.2, 0.4, 0.6])
def test_row_and_column_correlation_within_tolerance(clean, rows):
    # Rows correlated as given, columns at half of it, and z at 0.2: each measured apart from the others.
    noisy, noise = noisy_stack(clean, z=0.2, rows=rows, columns=rows / 2, seed=2)
    report = estimate_noise(noisy)
    assert report.row_correlation == pytest.approx(
        correlation(noise[:, :-1], noise[:, 1:]), abs=CORRELATION_TOLERANCE
    )
    assert report.column_correlation == pytest.approx(
        correlation(noise[:, :, :-1], noise[:, :, 1:]), abs=CORRELATION_TOLERANCE
    )
    assert report.z_correlation[0] == pytest.approx(true_z_correlation(noise)[0], abs=CORRELATION_TOLERANCE)
    assert report.sigma == pytest.approx(expected_sigma(noisy, clean), rel=SIGMA_TOLERANCE)


def test_column_correlation_alone(clean):
    noisy, noise = noisy_stack(clean, columns=0.6, seed=3)
    report = estimate_noise(noisy)
    assert report.column_correlation == pytest.approx(
        correlation(noise[:, :, :-1], noise[:, :, 1:]), abs=CORRELATION_TOLERANCE
    )
    assert abs(report.row_correlation) < CORRELATION_TOLERANCE
    assert report.warnings() == [
        f"neighbouring columns share noise (correlation {report.column_correlation:.2f}): streak or "
        "scan-line noise; training is unaffected (its targets are other slices)"
    ]


def test_shot_noise_slope(clean):
    noisy, _ = noisy_stack(clean, seed=4)
    report = estimate_noise(noisy)
    assert report.variance_slope == pytest.approx(2.0, abs=0.3)  # variance = 100 + 2 * signal
    assert report.describe()[0].startswith(
        f"noise: {report.sigma:.1f} grey levels (shot noise: variance grows"
    )

    rng = np.random.default_rng(5)
    constant = np.clip(np.round(clean + rng.normal(0, 15, clean.shape)), 0, 255).astype(np.uint8)
    flat_report = estimate_noise(constant)
    assert abs(flat_report.variance_slope) < 0.3
    assert "about the same at every grey level" in flat_report.describe()[0]


def test_correlated_stack_chooses_a_larger_distance(clean):
    noisy, _ = noisy_stack(clean, z=0.4, seed=6)
    report = estimate_noise(noisy)
    assert report.safe_z_distance() == 2
    assert report.warnings() == [
        f"adjacent slices share noise (correlation {report.z_correlation[0]:.2f}): training on neighbours "
        "would learn it; napari-nrrn will train on slices 2 apart"
    ]
    independent = estimate_noise(noisy_stack(clean, seed=7)[0])
    assert independent.safe_z_distance() == 1 and independent.warnings() == []


def test_reads_only_the_slices_it_measures_one_at_a_time(clean):
    noisy = np.concatenate([noisy_stack(clean, seed=8)[0]] * 5)  # 60 slices

    class Recording:
        ndim, shape = noisy.ndim, noisy.shape
        read = []

        def __getitem__(self, key):
            assert isinstance(key[0], int), "reads one slice at a time"
            self.read.append(key[0])
            return noisy[key]

    report = estimate_noise(Recording())
    assert len(Recording.read) == len(set(Recording.read)) == len(report.slices) == 20
    assert sorted(Recording.read) == list(report.slices)
    assert report.slices[0] == 0 and report.slices[-1] == 59
    assert estimate_noise(noisy, slices=[3]).slices == (3, 4, 5, 6)


def test_a_2d_image_has_no_z_correlation(clean):
    report = estimate_noise(noisy_stack(clean, seed=9)[0][0])
    assert report.z_correlation == (None, None, None)
    assert "a 2-D image has no z correlation" in report.notes
    assert report.safe_z_distance() == 1 and report.warnings() == []
    assert "z correlation of the noise: not measured" in report.describe()
    assert report.sigma == pytest.approx(20, rel=0.15)


def test_a_3_slice_stack_has_no_distance_3(clean):
    noisy, noise = noisy_stack(clean[:3], z=0.4, seed=10)
    report = estimate_noise(noisy)
    assert report.z_correlation[2] is None
    assert report.z_correlation[0] == pytest.approx(true_z_correlation(noise, (1,))[0], abs=0.1)
    assert "no two usable slices 3 apart: no z correlation at distance 3" in report.notes
    assert "(1 slice apart)" in report.describe()[1] and "not measured (3)" in report.describe()[1]


def test_blank_slices_are_skipped(clean):
    noisy, noise = noisy_stack(clean, z=0.4, seed=11)
    noisy[[2, 5]] = 0
    noisy[7] = 200
    report = estimate_noise(noisy)
    assert report.slices == (0, 1, 3, 4, 6, 8, 9, 10, 11)
    assert "blank or constant slices skipped: z = 2, 5, 7" in report.notes
    assert report.z_correlation[0] == pytest.approx(true_z_correlation(noise)[0], abs=CORRELATION_TOLERANCE)

    with pytest.raises(ValueError, match="blank or constant: there is no noise to measure"):
        estimate_noise(np.zeros((6, 64, 64), np.uint8))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2-D image or a .Z, Y, X. stack"):
        estimate_noise(np.zeros((2, 3, 64, 64)))
    with pytest.raises(ValueError, match="too small to measure noise"):
        estimate_noise(np.zeros((4, 8, 64)))
    with pytest.raises(ValueError, match="slices must be z indices in 0..3"):
        estimate_noise(np.zeros((4, 64, 64)), slices=[4])


def test_report_round_trips_through_json():
    report = NoiseReport(
        sigma=10.3,
        variance_intercept=20.0,
        variance_slope=1.9,
        z_correlation=(0.41, 0.04, None),
        row_correlation=0.3,
        column_correlation=0.02,
        slices=(0, 1, 2),
        notes=("no two usable slices 3 apart: no z correlation at distance 3",),
    )
    assert NoiseReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


def test_words_and_distances():
    report = NoiseReport(10.3, 20.0, 1.9, (0.41, 0.04, 0.01), 0.3, 0.02, (0, 1, 2, 3))
    assert report.describe() == [
        "noise: 10.3 grey levels (shot noise: variance grows 1.9 per grey level)",
        "z correlation of the noise: 0.41 (1 slice apart), 0.04 (2), 0.01 (3)",
        "noise correlation within a slice: 0.30 between neighbouring rows, 0.02 between neighbouring columns",
        "measured on 4 slices: z = 0-3",
    ]
    assert report.safe_z_distance() == 2
    assert report.warnings() == [
        "adjacent slices share noise (correlation 0.41): training on neighbours would learn it; napari-nrrn "
        "will train on slices 2 apart",
        "neighbouring rows share noise (correlation 0.30): streak or scan-line noise; training is unaffected "
        "(its targets are other slices)",
    ]
    everywhere = NoiseReport(10.0, 100.0, 0.0, (0.6, 0.3, -0.2), 0.0, 0.0, (0, 1, 2, 3))
    assert everywhere.safe_z_distance() == 3
    assert everywhere.warnings() == [
        "slices share noise at every distance measured (correlation 0.60, 0.30, -0.20): training would learn "
        "part of it; napari-nrrn will train on slices 3 apart, the least correlated"
    ]
    assert NoiseReport(10.0, 100.0, 0.0, (None, None, None), 0.0, 0.0, (0,)).safe_z_distance() == 1
    just_below = NoiseReport(10.0, 100.0, 0.0, (INDEPENDENT_BELOW - 0.01, 0.5, 0.5), 0.0, 0.0, (0,))
    assert just_below.safe_z_distance() == 1


def test_the_samples_are_told_apart():
    gala = estimate_noise(open_stack(SAMPLE_GALA_PATH))
    assert gala.safe_z_distance() > 1 and "adjacent slices share noise" in gala.warnings()[0]
    medulla = estimate_noise(open_stack(SAMPLE_STACK_PATH))
    assert medulla.safe_z_distance() == 1 and medulla.warnings() == []
