"""Line profiles, IQR, PSNR and SSIM: exact values on images whose answer is known."""

import math

import dask
import dask.array as da
import numpy as np
import pytest
import tifffile

import napari_nrrn
from napari_nrrn.measures.metrics import default_data_range, psnr, ssim
from napari_nrrn.measures.profiles import (
    data_to_world,
    iqr,
    line_profile,
    mean_line_iqr,
    path_distances,
    path_profile,
    world_to_data,
)

A, B, C = 3.0, -2.0, 7.0  # ramp value = A*row + B*col + C: bilinear interpolation reproduces it exactly


def ramp(shape=(40, 50)):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return A * rows + B * cols + C


def ramp_at(points):
    points = np.asarray(points, dtype=float)
    return A * points[..., 0] + B * points[..., 1] + C


@pytest.mark.parametrize(
    "start, end",
    [
        ((5, 5), (5, 30)),  # horizontal
        ((2, 40), (35, 40)),  # vertical
        ((1.5, 2.25), (30.7, 41.1)),  # diagonal, sub-pixel ends
        ((38, 3), (4.2, 47)),  # anti-diagonal, backwards
    ],
)
def test_profile_on_a_ramp_is_exact_linear_and_one_sample_per_pixel(start, end):
    profile = line_profile(ramp(), start, end)
    length = math.dist(start, end)
    n = math.ceil(length) + 1
    assert profile.shape == (n,)
    expected = ramp_at(np.linspace(start, end, n))
    np.testing.assert_allclose(profile, expected, rtol=0, atol=1e-9)
    assert profile[0] == pytest.approx(ramp_at(start), abs=1e-9)
    assert profile[-1] == pytest.approx(ramp_at(end), abs=1e-9)


def test_integer_length_gets_exactly_length_plus_one_samples():
    assert line_profile(ramp(), (0, 0), (0, 10)).shape == (11,)
    assert line_profile(ramp(), (0, 0), (6, 8)).shape == (11,)  # 3-4-5 triangle: length 10


def test_width_averages_across_the_line():
    image = ramp()
    start, end = np.array([10.0, 10.0]), np.array([25.0, 30.0])
    # On a ramp the mean across a symmetric band equals the centre value ...
    np.testing.assert_allclose(
        line_profile(image, start, end, width=5), line_profile(image, start, end), atol=1e-9
    )
    # ... and on a non-linear image it equals the mean of the parallel 1-px profiles.
    curved = image**2
    normal = np.array([-(end - start)[1], (end - start)[0]]) / np.linalg.norm(end - start)
    parallel = [line_profile(curved, start + k * normal, end + k * normal) for k in (-1, 0, 1)]
    np.testing.assert_allclose(
        line_profile(curved, start, end, width=3), np.mean(parallel, axis=0), rtol=1e-12
    )


def test_path_joins_segments_sampling_each_joint_once():
    image = ramp()
    vertices = np.array([[2.0, 2.0], [2.0, 12.0], [20.0, 12.0]])
    profile = path_profile(image, vertices)
    first = line_profile(image, vertices[0], vertices[1])
    second = line_profile(image, vertices[1], vertices[2])
    np.testing.assert_array_equal(profile, np.concatenate([first, second[1:]]))
    np.testing.assert_allclose(path_distances(vertices), np.arange(29.0))
    np.testing.assert_allclose(path_distances(vertices, scale=(2.0, 0.5))[[0, 10, 28]], [0.0, 5.0, 41.0])


def test_three_coordinate_points_or_z_read_one_slice_of_a_lazy_stack():
    reads = []

    def load(z):
        reads.append(z)
        return ramp() + 100 * z

    stack = da.stack([da.from_delayed(dask.delayed(load)(z), shape=(40, 50), dtype=float) for z in range(6)])
    expected = line_profile(ramp(), (3, 4), (20, 33)) + 400
    np.testing.assert_allclose(line_profile(stack, (4, 3, 4), (4, 20, 33)), expected)
    assert reads == [4]
    np.testing.assert_allclose(line_profile(stack, (3, 4), (20, 33), z=4), expected)
    assert reads == [4, 4]


class RecordingImage:
    """A 2-D array-like that records which regions are read (like a huge slice on disk)."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.requests = data, data.shape, data.dtype, []

    def __getitem__(self, key):
        self.requests.append(key)
        return self.data[key]


def test_only_the_bounding_box_of_a_line_is_read():
    image = RecordingImage(ramp((400, 500)))
    profile = line_profile(image, (10.5, 10), (20, 60))
    np.testing.assert_allclose(profile, ramp_at(np.linspace((10.5, 10), (20, 60), 52)), atol=1e-9)
    assert image.requests == [(slice(10, 22), slice(10, 62))]


def test_world_coordinates_line_up_layers_of_different_scale():
    fine = ramp((80, 100))  # scale 1
    coarse = fine[::2, ::2]  # the same field at 2 world units per pixel
    translate_fine, translate_coarse = np.array([5.0, -3.0]), np.array([5.0, -3.0])
    world_line = np.array([[12.0, 4.0], [60.0, 70.0]])
    fine_line = world_to_data(world_line, (1.0, 1.0), translate_fine)
    coarse_line = world_to_data(world_line, (2.0, 2.0), translate_coarse)
    np.testing.assert_allclose(data_to_world(coarse_line, (2.0, 2.0), translate_coarse), world_line)
    fine_profile = line_profile(fine, *fine_line)
    coarse_profile = line_profile(coarse, *coarse_line)
    fine_x = path_distances(fine_line, scale=(1.0, 1.0))
    coarse_x = path_distances(coarse_line, scale=(2.0, 2.0))
    assert fine_x[-1] == pytest.approx(coarse_x[-1]) == pytest.approx(math.dist(*world_line))
    # Same world positions give the same values, whichever layer they are read from.
    np.testing.assert_allclose(np.interp(coarse_x, fine_x, fine_profile), coarse_profile, atol=1e-9)


def test_world_to_data_needs_one_scale_per_coordinate():
    with pytest.raises(ValueError, match="one scale and one translate entry per coordinate"):
        world_to_data([[1.0, 2.0, 3.0]], (1.0, 1.0), (0.0, 0.0))


def test_bad_lines_say_what_is_wrong():
    image = ramp()
    with pytest.raises(ValueError, match="zero-length line"):
        line_profile(image, (5, 5), (5, 5))
    with pytest.raises(ValueError, match=r"outside the image of shape \(40, 50\)"):
        line_profile(image, (5, 5), (5, 60))
    with pytest.raises(ValueError, match="outside the image"):
        line_profile(image, (-3, 5), (-3, 20))
    with pytest.raises(ValueError, match="width 9"):
        line_profile(image, (2, 5), (2, 20), width=9)  # the band reaches row -2
    # A line may reach the outer edge of the border pixels (napari draws pixels +-0.5 around centres).
    assert line_profile(image, (-0.5, 0), (39.5, 0))[0] == pytest.approx(image[0, 0])
    with pytest.raises(ValueError, match="3-D: pass z="):
        line_profile(np.zeros((3, 10, 10)), (1, 1), (5, 5))
    with pytest.raises(ValueError, match="outside the stack of 3 slices"):
        line_profile(np.zeros((3, 10, 10)), (1, 1), (5, 5), z=3)
    with pytest.raises(ValueError, match="must lie in one slice"):
        line_profile(np.zeros((3, 10, 10)), (0, 1, 1), (1, 5, 5))
    with pytest.raises(ValueError, match="2-D image or a 3-D"):
        line_profile(np.zeros((2, 3, 10, 10)), (1, 1), (5, 5))
    with pytest.raises(ValueError, match="leave z out"):
        line_profile(image, (1, 1), (5, 5), z=0)
    with pytest.raises(ValueError, match="width = 0"):
        line_profile(image, (1, 1), (5, 5), width=0)


def test_iqr_known_values_and_numpy_agreement():
    assert iqr(np.arange(1, 9)) == 3.5  # Q1 = 2.75, Q3 = 6.25
    assert iqr([5.0] * 7) == 0.0
    values = np.random.default_rng(0).normal(size=1001)
    q1, q3 = np.percentile(values, [25, 75])
    assert iqr(values) == q3 - q1
    with pytest.raises(ValueError, match="empty"):
        iqr([])


def test_mean_line_iqr_averages_per_line_iqr():
    image = ramp()
    lines = [np.array([[0.0, 0.0], [0.0, 8.0]]), np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 8.0]])]
    # Line 1: values 7, 5, ..., -9 (iqr 8); line 2: 7..19 then 19..3 (13 samples, iqr computed below).
    second = path_profile(image, lines[1])
    assert mean_line_iqr(image, lines) == pytest.approx((8.0 + iqr(second)) / 2)
    with pytest.raises(ValueError, match="at least one line"):
        mean_line_iqr(image, [])
    with pytest.raises(ValueError, match="one 2-D image"):
        mean_line_iqr(np.zeros((2, 5, 5)), lines)


def test_public_names_point_here():
    assert napari_nrrn.line_profile is line_profile
    assert napari_nrrn.iqr is iqr
    assert napari_nrrn.psnr is psnr and napari_nrrn.ssim is ssim


def test_psnr_of_identical_images_is_infinite_and_ssim_one():
    image = (ramp() % 256).astype(np.uint8)
    assert psnr(image, image) == math.inf
    assert ssim(image, image) == 1.0


def test_psnr_of_a_constant_offset_is_exact():
    ref = np.full((32, 32), 100, np.uint8)
    ref[8:24, 8:24] = 150
    # MSE = 25 -> PSNR = 10 log10(255^2 / 25) for uint8 (data range from the dtype).
    assert psnr(ref + np.uint8(5), ref) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-12)
    # A float reference's range is its own: 50 here, so 10 log10(50^2 / 25) = 20 dB.
    assert psnr(ref.astype(np.float32) + 5, ref.astype(np.float32)) == pytest.approx(20.0, abs=1e-12)
    assert psnr(ref + np.uint8(5), ref, data_range=100) == pytest.approx(26.0206, abs=1e-4)


def test_ssim_matches_scikit_image_with_the_range_passed():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    ref = rng.integers(0, 256, (48, 48)).astype(np.uint8)
    noisy = np.clip(ref + rng.normal(0, 20, ref.shape), 0, 255).astype(np.uint8)
    expected = structural_similarity(noisy.astype(float), ref.astype(float), data_range=255)
    assert ssim(noisy, ref) == pytest.approx(expected, abs=1e-12)
    assert 0 < ssim(noisy, ref) < 1


def test_metrics_check_shapes_and_ranges():
    assert default_data_range(np.zeros(3, np.int16)) == 65535
    with pytest.raises(ValueError, match="differs from the reference"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="constant"):
        psnr(np.zeros((4, 4)), np.ones((4, 4)))


def test_resin_line_on_real_sem_has_a_large_iqr(shared_data):
    image = tifffile.imread(shared_data / "sem_n2v_demo_600x600_float32.tif")
    values = line_profile(image, (20, 40), (20, 280))
    assert values.shape == (241,)
    # An axis-aligned line through pixel centres reads the pixels themselves.
    np.testing.assert_allclose(values, image[20, 40:281], rtol=1e-12)
    assert iqr(values) == pytest.approx(np.subtract(*np.percentile(image[20, 40:281], [75, 25])))
