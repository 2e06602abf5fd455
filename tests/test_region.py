"""Region denoising: a region of a slice, tiled for itself, equals that crop of the whole slice's output
within one grey level (identical at 99.99% of pixels or more); tiles arrive centre first and follow a
moving view."""

import numpy as np
import pytest
import tifffile
import torch

from napari_nrrn.engine.inference import CPU_TILE, denoise_slice, iter_denoise_slice
from napari_nrrn.engine.normalise import slice_stats
from napari_nrrn.engine.session import InferenceSession, TileDone
from napari_nrrn.engine.tiling import plan_region, plan_tiles
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


def _assert_preview_standard(got, expected):
    """Within one grey level everywhere, identical at 99.99% of pixels or more (docs: DESIGN, previews)."""
    difference = np.abs(got.astype(np.int64) - expected.astype(np.int64))
    assert difference.max() <= 1
    assert np.count_nonzero(difference) <= 1e-4 * difference.size


@pytest.mark.parametrize("precision", ["float32", "auto"])
@pytest.mark.parametrize("tile", [5, 24, 64, 300])
def test_region_equals_the_crop_of_the_whole_slice_within_one_grey_level(model, triplet, tile, precision):
    """Regions tiled for themselves: corners, borders, one pixel, the whole slice, several tile sizes."""
    slices = tuple(image.astype(np.uint8) for image in triplet)
    whole = denoise_slice(model, *slices, tile=tile, precision=precision)
    whole_float, whole_blocks = denoise_slice(model, *triplet, tile=tile, precision=precision, blocks=True)
    parts, crops = [], []
    for region in REGIONS:
        part = denoise_slice(model, *slices, tile=tile, precision=precision, region=region)
        assert part.dtype == np.uint8
        assert part.shape == (region[1] - region[0], region[3] - region[2])
        parts.append(part.ravel())
        crops.append(_crop(whole, region).ravel())
        part_float, part_blocks = denoise_slice(
            model, *triplet, tile=tile, precision=precision, blocks=True, region=region
        )
        np.testing.assert_allclose(part_float, _crop(whole_float, region), atol=0.5)
        for got, expected in zip(part_blocks, whole_blocks, strict=True):
            np.testing.assert_allclose(got, _crop(expected, region), atol=0.5)
    _assert_preview_standard(np.concatenate(parts), np.concatenate(crops))


@pytest.mark.parametrize("tile", [5, 24, 64, 300])
@pytest.mark.parametrize("region", REGIONS + [(3, 97, 5, 196), (50, 51, 0, 200)])
def test_a_region_plan_covers_it_once_with_the_halo_inside_the_image(model, tile, region):
    halo = model.halo
    covered = np.zeros(SHAPE, int)
    for spec in plan_region(SHAPE, region, tile, halo):
        (wy, wx), (cy, cx) = spec.window, spec.core
        assert 0 <= wy.start and wy.stop <= SHAPE[0] and 0 <= wx.start and wx.stop <= SHAPE[1]
        covered[spec.core] += 1
        # the core lies a halo inside its window, except where the window meets the image border
        for window, core, length in ((wy, cy, SHAPE[0]), (wx, cx, SHAPE[1])):
            assert core.start - window.start >= halo or window.start == 0
            assert window.stop - core.stop >= halo or window.stop == length
        ky, kx = spec.crop
        assert (ky.start, ky.stop, kx.start, kx.stop) == (
            cy.start - wy.start,
            cy.stop - wy.start,
            cx.start - wx.start,
            cx.stop - wx.start,
        )
    inside = np.zeros(SHAPE, int)
    inside[region[0] : region[1], region[2] : region[3]] = 1
    np.testing.assert_array_equal(covered, inside)


def test_a_viewport_of_a_large_slice_costs_about_its_own_pixels():
    """A 1000x1000 region of a 6144x4096 slice at the CPU tile: windows add the halo only (issue: <= 1.25x
    the pixels of a standalone 1000x1000 image, which pays the same tiles' halos); the whole-slice plan's
    tiles that meet it were 1.8x."""
    shape, halo = (4096, 6144), 5
    region = (1548, 2548, 2572, 3572)
    plan = plan_region(shape, region, CPU_TILE, halo)
    pixels = sum((w[0].stop - w[0].start) * (w[1].stop - w[1].start) for w in (t.window for t in plan))
    standalone = sum(
        (w[0].stop - w[0].start) * (w[1].stop - w[1].start)
        for w in (t.window for t in plan_tiles((1000, 1000), CPU_TILE, halo))
    )
    assert pixels <= 1.25 * standalone
    assert pixels <= 1.1 * 1000 * 1000


def test_tiles_arrive_centre_first_and_tile_the_region(model, triplet):
    region = (0, 100, 0, 200)
    events = list(iter_denoise_slice(model, *triplet, tile=24, precision="float32", region=region))
    assert all(isinstance(event, TileDone) for event in events)
    assert [event.done for event in events] == list(range(1, len(events) + 1))
    assert {event.total for event in events} == {len(events)}
    middles = [((y0 + y1) / 2, (x0 + x1) / 2) for y0, y1, x0, x1 in (event.bounds for event in events)]
    distances = [np.hypot(y - 50, x - 100) for y, x in middles]
    assert distances == sorted(distances)
    y0, y1, x0, x1 = events[0].bounds
    assert y0 <= 50 < y1 and x0 <= 100 < x1  # the first tile holds the centre of the view
    whole = denoise_slice(model, *triplet, tile=24, precision="float32")
    for event in events:  # each event carries its finished pixels
        np.testing.assert_array_equal(event.pixels, _crop(whole, event.bounds))


def test_a_pan_cancels_the_tiles_that_left_the_view_and_queues_the_new_ones(model, triplet):
    session = InferenceSession(model, "cpu", torch.float32, tile=24)
    stats = tuple(slice_stats(image) for image in triplet)
    first, second = (0, 48, 0, 48), (52, 100, 120, 200)
    current = {"view": first}
    events = session.iter_view(triplet, stats, lambda: current["view"])
    opening = next(events)
    assert _meets(opening.bounds, first)
    current["view"] = second  # the user pans away after the first tile
    rest = []
    while True:
        try:
            rest.append(next(events))
        except StopIteration as finished:
            assert finished.value == second  # the view whose tiles are all done
            break
    assert rest and all(_meets(event.bounds, second) for event in rest)
    assert not any(_meets(event.bounds, first) for event in rest)
    covered = np.zeros(SHAPE, bool)
    for event in rest:
        covered[event.bounds[0] : event.bounds[1], event.bounds[2] : event.bounds[3]] = True
    assert covered[second[0] : second[1], second[2] : second[3]].all()
    assert rest[-1].done == rest[-1].total == 1 + len(rest)


def test_a_view_showing_nothing_runs_nothing(model, triplet):
    session = InferenceSession(model, "cpu", torch.float32, tile=24)
    stats = tuple(slice_stats(image) for image in triplet)
    assert list(session.iter_view(triplet, stats, lambda: None)) == []


def _meets(bounds, region):
    return bounds[0] < region[1] and region[0] < bounds[1] and bounds[2] < region[3] and region[2] < bounds[3]


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
