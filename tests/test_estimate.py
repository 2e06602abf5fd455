"""A stack's cost, stated before it starts: measured on the middle slice, scaled to the whole stack."""

import numpy as np
import pytest
import torch

from napari_nrrn.engine.estimate import StackEstimate, estimate_stack, format_hours, seconds_per_slice
from napari_nrrn.engine.session import InferenceSession
from napari_nrrn.model.nrrn import NRRN

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_line_states_slices_size_both_depths_and_device():
    estimate = StackEstimate(2000, 4096, 6144, 2, 30 * 3600, 14.4 * 3600, "CPU")
    assert estimate.line() == "2000 slices of 25 MP: about 30 h at depth 2, 14 h at depth 1 on this CPU"
    assert StackEstimate(6, 100, 200, 1, 12.4, 12.4, "GPU").line() == (
        "6 slices of 0.02 MP: about 12 s at depth 1 on this GPU"
    )
    assert [format_hours(s) for s in (9, 600, 5400, 36000)] == ["9 s", "10 min", "1.5 h", "10 h"]


def test_the_estimate_scales_a_measured_slice_by_the_stack(monkeypatch):
    torch.manual_seed(0)
    model = NRRN(depth=2, width=4)
    stack = np.random.default_rng(0).integers(0, 255, (7, 96, 160), dtype=np.uint8)
    measured = []

    def fixed(session, triplet, stats):
        measured.append((session.fused.blocks.__len__(), triplet[1].shape))
        return 2.0 * len(session.fused.blocks)

    monkeypatch.setattr("napari_nrrn.engine.estimate.seconds_per_slice", fixed)
    estimate = estimate_stack(model, stack, tile=40, device="cpu", dtype=torch.float32)
    assert measured == [(2, (96, 160)), (1, (96, 160))]  # the chosen depth, then depth 1
    assert (estimate.seconds, estimate.seconds_depth1, estimate.depth) == (28.0, 14.0, 2)


def test_a_slice_costs_the_measured_time_per_window_pixel_times_its_plan(monkeypatch):
    """With a clock that advances 1 s per tile, a slice costs (timed tiles) / (their window pixels) times
    the whole-slice plan's window pixels; the first, untimed tile is left out."""
    torch.manual_seed(0)
    session = InferenceSession(NRRN(depth=1, width=4), "cpu", torch.float32, 40)
    triplet = tuple(np.random.default_rng(z).normal(100, 10, (120, 200)).astype(np.float32) for z in range(3))
    stats = tuple((float(image.mean()), float(image.std())) for image in triplet)
    clock = iter(range(1000))
    monkeypatch.setattr("napari_nrrn.engine.estimate.time.perf_counter", lambda: next(clock))
    plan = session.plan((120, 200))
    sample = plan[:4]  # the middle tiles of the slice's plan, the centre one first
    assert (sample[0].core[0].start, sample[0].core[1].start) == (40, 80)

    def pixels(tiles):
        sizes = [(wy.stop - wy.start) * (wx.stop - wx.start) for wy, wx in (t.window for t in tiles)]
        return sum(sizes)

    expected = 3 / pixels(sample[1:]) * pixels(plan)
    assert seconds_per_slice(session, triplet, stats) == pytest.approx(expected)
