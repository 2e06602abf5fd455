"""What a stack will cost, stated before it starts: a short measurement on this device.

The middle tiles of the middle slice run at the chosen depth and at depth 1, the first tile of each
untimed (it sets the convolutions up). Their time per window pixel, times the window pixels of the
whole-slice tile plan, gives a slice; times the slices, the stack. Reading and writing are not counted: on
a local disk they are small beside the network on a CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from napari_nrrn.engine.session import InferenceSession
from napari_nrrn.engine.tiling import Tile

# Tiles per side of the measured middle: 2x2 tiles, 3 of them timed.
SAMPLE_TILES = 2


@dataclass(frozen=True)
class StackEstimate:
    """Seconds for the whole stack at ``depth`` and at depth 1, on ``device`` ("CPU", "GPU", ...)."""

    slices: int
    height: int
    width: int
    depth: int
    seconds: float
    seconds_depth1: float
    device: str

    def line(self) -> str:
        """E.g. "2000 slices of 25 MP: about 30 h at depth 2, 14 h at depth 1 on this CPU"."""
        megapixels = self.height * self.width / 1e6
        size = f"{megapixels:.0f} MP" if megapixels >= 10 else f"{megapixels:.2g} MP"
        at_depth = f"about {format_hours(self.seconds)} at depth {self.depth}"
        if self.depth > 1:
            at_depth += f", {format_hours(self.seconds_depth1)} at depth 1"
        return f"{self.slices} slices of {size}: {at_depth} on this {self.device}"


def format_hours(seconds: float) -> str:
    """A duration as people state one in advance: "30 h", "2.5 h", "40 min", "12 s"."""
    if seconds >= 10 * 3600:
        return f"{seconds / 3600:.0f} h"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _window_pixels(tiles: list[Tile]) -> int:
    return sum((wy.stop - wy.start) * (wx.stop - wx.start) for wy, wx in (tile.window for tile in tiles))


def seconds_per_slice(session: InferenceSession, triplet, stats) -> float:
    """The measured time of one whole slice of ``triplet``'s shape in ``session``."""
    plan = session.plan(triplet[1].shape)
    tiles = plan[: SAMPLE_TILES**2]  # the middle tiles of the slice's own plan (it runs centre first)
    times, last = [], time.perf_counter()
    for _ in session.iter_tiles(triplet, stats, tiles):
        now = time.perf_counter()
        times.append(now - last)
        last = now
    if len(tiles) > 1:  # the first tile sets the convolutions up
        times, tiles = times[1:], tiles[1:]
    return sum(times) / _window_pixels(tiles) * _window_pixels(plan)


def estimate_stack(model, stack, tile=None, device=None, dtype=None) -> StackEstimate:
    """Measure a few tiles of the middle slice of ``stack`` with ``model`` and with its cut at depth 1."""
    from napari_nrrn.engine.inference import check_stack, slice_triplet, triplet_stats

    check_stack(stack)
    slices, height, width = (int(n) for n in stack.shape)
    z = slices // 2
    triplet = slice_triplet(stack, z)
    stats = triplet_stats(triplet, z, slices)
    session = InferenceSession(model, device, dtype, tile)
    seconds = seconds_per_slice(session, triplet, stats)
    if model.depth > 1:
        shallow = InferenceSession(model.cut(1), session.device, session.dtype, session.tile)
        seconds_depth1 = seconds_per_slice(shallow, triplet, stats)
    else:
        seconds_depth1 = seconds
    kind = {"cuda": "GPU", "mps": "GPU"}.get(session.device.type, "CPU")
    return StackEstimate(slices, height, width, model.depth, seconds * slices, seconds_depth1 * slices, kind)

