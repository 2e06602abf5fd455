"""Region denoising: a region of a slice equals that crop of the whole slice's output, bit for bit."""

import numpy as np
import pytest
import tifffile
import torch

from napari_nrrn.engine.inference import denoise_slice, iter_denoise_slice
from napari_nrrn.engine.normalise import slice_stats
from napari_nrrn.engine.tiling import plan_tiles
from napari_nrrn.model.nrrn import NRRN

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPE = (100, 200)
# Corners, borders, the interior, one pixel, the whole slice: (y0, y1, x0, x1).
REGIONS = [
    (0, 23, 0, 31),
    (77, 100, 150, 200),
    (0, 100, 190, 200),
    (41, 42, 99, 100),
    (13, 87, 40, 161),
    (0, 100, 0, 200),
]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return NRRN(depth=2, width=8)


@pytest.fixture(scope="module")
def triplet(shared_data):
    """Three real noisy slices as float32, so that outputs compare unrounded."""
    stack = tifffile.imread(shared_data / "fibsem_flyem_gala_test_50x100x200.tif")[10:13]
    return tuple(image.astype(np.float32) for image in stack)


def _crop(image, region):
    y0, y1, x0, x1 = region
    return image[y0:y1, x0:x1]


@pytest.mark.parametrize("precision", ["float32", "auto"])
@pytest.mark.parametrize("tile", [5, 24, 64, 300])
def test_region_equals_the_crop_of_the_whole_slice(model, triplet, tile, precision):
    whole, whole_blocks = denoise_slice(model, *triplet, tile=tile, precision=precision, blocks=True)
    for region in REGIONS:
        part, part_blocks = denoise_slice(
            model, *triplet, tile=tile, precision=precision, blocks=True, region=region
        )
        assert part.shape == (region[1] - region[0], region[3] - region[2])
        np.testing.assert_array_equal(part, _crop(whole, region))
        for got, expected in zip(part_blocks, whole_blocks, strict=True):
            np.testing.assert_array_equal(got, _crop(expected, region))


def test_uint8_region_equals_the_crop(model, triplet):
    slices = tuple(image.astype(np.uint8) for image in triplet)
    whole = denoise_slice(model, *slices, tile=40)
    region = (60, 100, 0, 75)
    part = denoise_slice(model, *slices, tile=40, region=region)
    assert part.dtype == np.uint8
    np.testing.assert_array_equal(part, _crop(whole, region))


def test_a_region_runs_only_the_tiles_that_meet_it(model, triplet):
    tile, region = 40, (0, 30, 0, 30)  # inside the first tile's core
    assert len(plan_tiles(SHAPE, tile, model.halo)) == 15
    events = list(iter_denoise_slice(model, *triplet, tile=tile, precision="float32", region=region))
    assert [(e.stage, e.done, e.total) for e in events] == [("denoise", 1, 1)]
    events = list(
        iter_denoise_slice(model, *triplet, tile=tile, precision="float32", region=(30, 50, 30, 50))
    )
    assert [e.done for e in events] == [1, 2, 3, 4]  # the four tiles around a tile corner


def test_given_statistics_are_used_as_they_are(model, triplet):
    stats = tuple(slice_stats(image) for image in triplet)
    computed = denoise_slice(model, *triplet, tile=64, precision="float32")
    np.testing.assert_array_equal(
        denoise_slice(model, *triplet, tile=64, precision="float32", stats=stats), computed
    )
    region = (10, 60, 20, 90)
    np.testing.assert_array_equal(
        denoise_slice(model, *triplet, tile=64, precision="float32", region=region, stats=stats),
        _crop(computed, region),
    )
    # The statistics of the crop alone would give another result: the whole slice's are what make it exact.
    own = denoise_slice(model, *(_crop(image, region) for image in triplet), tile=64, precision="float32")
    assert not np.array_equal(own, _crop(computed, region))
    shifted = ((stats[0][0] + 10, stats[0][1]), stats[1], stats[2])
    assert not np.array_equal(
        denoise_slice(model, *triplet, tile=64, precision="float32", stats=shifted), computed
    )


@pytest.mark.parametrize(
    "region",
    [
        (10, 10, 0, 50),
        (0, 50, 30, 30),
        (50, 10, 0, 50),
        (0, 50, 60, 20),
        (0, 101, 0, 50),
        (-1, 5, 0, 5),
        (0, 5, 195, 201),
        (100, 110, 0, 5),
    ],
)
def test_empty_reversed_or_outside_regions_are_refused_with_the_shape(model, triplet, region):
    with pytest.raises(ValueError, match=r"empty or outside the slice of shape \(100, 200\)"):
        denoise_slice(model, *triplet, region=region)


@pytest.mark.parametrize("region", [(0, 10, 0), (0, 10.5, 0, 10), "0:10", 5])
def test_regions_that_are_not_four_integers_are_refused(model, triplet, region):
    with pytest.raises(ValueError, match=r"region must be four integer pixel bounds \(y0, y1, x0, x1\)"):
        denoise_slice(model, *triplet, region=region)


@pytest.mark.parametrize("stats", [((0.0, 1.0), (0.0, 1.0)), ((0.0, 1.0), (0.0, 0.0), (0.0, 1.0)), "mean"])
def test_bad_statistics_are_refused(model, triplet, stats):
    with pytest.raises(ValueError, match=r"stats must be three \(mean, std\) pairs"):
        denoise_slice(model, *triplet, stats=stats)
