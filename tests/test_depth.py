"""Choosing a depth: the recommendation on constructed validation curves, and the cost measurement."""

import math

import pytest
import torch

from napari_nrrn.engine.depth import (
    DEPTH_TOLERANCE,
    QUALITY_TOLERANCE_DB,
    Option,
    fastest_within,
    flop_per_pixel,
    measure_depth_costs,
    recommend_depth,
)
from napari_nrrn.model.nrrn import NRRN

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_recommends_the_smallest_depth_within_the_tolerance_of_the_best():
    # Depth 2 is 1.5% above the best (depth 4), depth 1 is 10% above.
    depth, reason = recommend_depth([0.264, 0.2436, 0.2412, 0.24], tolerance=0.02)
    assert depth == 2
    assert reason == (
        "depth 2 of 4 comes within 2% of the best validation loss (0.2436 against 0.24 at depth 4) "
        "for 2/4 of the block work."
    )
    # A tighter tolerance asks for depth 3; none at all for the best itself.
    assert recommend_depth([0.264, 0.2436, 0.2412, 0.24], tolerance=0.01)[0] == 3
    assert recommend_depth([0.264, 0.2436, 0.2412, 0.24], tolerance=0)[0] == 4
    # The best need not be the deepest; the default tolerance is the module's constant.
    assert recommend_depth([0.30, 0.25, 0.26]) == (
        2,
        f"depth 2 of 3 has the lowest validation loss (0.25) and no smaller depth comes within "
        f"{DEPTH_TOLERANCE * 100:g}% of it.",
    )
    # Negative losses (the consensus loss of the published target can be): within 2% of |best|.
    assert recommend_depth([-0.095, -0.0985, -0.1])[0] == 2


@pytest.mark.parametrize(
    ("losses", "message"),
    [([], "no validation losses"), ([0.2, math.nan], "must be finite numbers, got nan"), ([math.inf], "inf")],
)
def test_recommendation_refuses_empty_or_non_finite_curves(losses, message):
    with pytest.raises(ValueError, match=message):
        recommend_depth(losses)


def test_depth_costs_are_measured_for_every_cut():
    torch.manual_seed(0)
    costs = measure_depth_costs(NRRN(depth=3, width=4, every_depth=True), device="cpu", size=16)
    assert len(costs) == 3 and all(math.isfinite(c) and c > 0 for c in costs)
    with pytest.raises(ValueError, match="size = 0 and repeats = 1 must be at least 1"):
        measure_depth_costs(NRRN(depth=1, width=2), device="cpu", size=0)


def test_fastest_within_picks_the_cheapest_option_near_the_best_quality():
    options = [
        ("shipped", 1, 1.4, 31.21),
        ("shipped", 2, 2.25, 31.32),
        ("shipped", 4, 4.27, 31.42),
        ("small", 4, 1.2, 30.90),
        ("small", 2, 0.7, 30.20),
    ]
    # 31.21 is within 0.3 dB of 31.42; the small model at full depth is cheaper but 0.52 dB below.
    assert QUALITY_TOLERANCE_DB == 0.3
    assert fastest_within(options) == Option("shipped", 1, 1.4, 31.21)
    assert fastest_within(options, tolerance_db=0.6) == Option("small", 4, 1.2, 30.90)
    assert fastest_within(options, tolerance_db=0) == Option("shipped", 4, 4.27, 31.42)
    # Of two equally cheap options within the tolerance, the better one.
    assert fastest_within([("a", 1, 1.0, 30.0), ("b", 1, 1.0, 30.2)]) == Option("b", 1, 1.0, 30.2)


@pytest.mark.parametrize(
    ("options", "tolerance", "message"),
    [
        ([], 0.3, "no models or depths"),
        ([("a", 1, 1.0, math.nan)], 0.3, "must be finite"),
        ([("a", 1, -1.0, 30.0)], 0.3, "cost 0 or more"),
        ([("a", 1, 1.0, 30.0)], -0.1, "tolerance_db = -0.1 must be 0 or more"),
    ],
)
def test_fastest_within_refuses_empty_or_bad_options(options, tolerance, message):
    with pytest.raises(ValueError, match=message):
        fastest_within(options, tolerance_db=tolerance)


def test_flop_per_pixel_matches_the_shipped_models_cards():
    # nrrn_width16.md: 0.27 / 0.07 MFLOP per output pixel at depth 4 / 1, against 1.07 / 0.30 at width 32.
    megaflop = [round(flop_per_pixel(k, c) / 1e6, 2) for c in (32, 16) for k in (4, 1)]
    assert megaflop == [1.07, 0.30, 0.27, 0.07]
