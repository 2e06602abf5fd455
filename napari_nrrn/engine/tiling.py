"""Tile plans for exact tiled inference, kept apart from running the network and from stitching.

Every tile is a *window* of the image fed to the network and a *core* of the output it writes. The window is
the core grown by ``halo`` pixels on each side, then shifted (never clipped) to lie inside the image, so all
windows of a plan have one shape and batch together. Where a window touches the image border, the network's
own zero padding does there exactly what it does on the whole image, at every layer; elsewhere the core lies
at least ``halo`` pixels inside the window. With ``halo`` at least the model's receptive-field radius, the
stitched output equals the whole-image output to float rounding.

Padding the normalised image with zeros and cutting windows from that would not be exact: only the first
convolution would see what it sees on the whole image, deeper layers would see features computed from the
padding instead of zeros.

A region of a slice is tiled for itself (``plan_region``): its cores follow a grid of the slice cut to the
region, so a 1000 px region costs its own pixels and halo, not the whole-slice tiles that meet it, and the
inner tiles of two overlapping regions are the same tiles (a cache of finished tiles serves a pan). Its output
differs from the whole-slice plan's only by the float rounding of other window shapes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tile:
    """One tile: ``window`` of the input, ``core`` of the output, ``crop``: the core inside the window."""

    window: tuple[slice, slice]
    core: tuple[slice, slice]
    crop: tuple[slice, slice]


def _axis_tiles(length: int, tile: int, halo: int) -> list[tuple[slice, slice, slice]]:
    """(window, core, crop) along one axis: cores of near-equal size at most ``tile``."""
    count = math.ceil(length / tile)
    bounds = [round(i * length / count) for i in range(count + 1)]
    window_size = min(length, max(b - a for a, b in itertools.pairwise(bounds)) + 2 * halo)
    result = []
    for start, stop in itertools.pairwise(bounds):
        window_start = min(max(start - halo, 0), length - window_size)
        result.append(
            (
                slice(window_start, window_start + window_size),
                slice(start, stop),
                slice(start - window_start, stop - window_start),
            )
        )
    return result


def _window(start: int, stop: int, length: int, halo: int) -> tuple[slice, slice, slice]:
    """(window, core, crop) of the core [start, stop): grown by ``halo``, shifted to lie inside ``length``."""
    size = min(length, stop - start + 2 * halo)
    window_start = min(max(start - halo, 0), length - size)
    return (
        slice(window_start, window_start + size),
        slice(start, stop),
        slice(start - window_start, stop - window_start),
    )


def _grid_cuts(start: int, stop: int, tile: int) -> list[int]:
    """Bounds of the cores covering [start, stop): the multiples of ``tile`` inside it, an end piece shorter
    than a quarter tile joined to its neighbour (a sliver costs its halo for nothing)."""
    cuts = [start, *range((start // tile + 1) * tile, stop, tile), stop]
    if len(cuts) > 2 and cuts[1] - cuts[0] < tile // 4:
        del cuts[1]
    if len(cuts) > 2 and cuts[-1] - cuts[-2] < tile // 4:
        del cuts[-2]
    return cuts


def check_tile(tile: int, halo: int) -> None:
    if tile < halo:
        raise ValueError(
            f"tile size {tile} is smaller than the model's halo of {halo} pixels: use a tile of at least "
            f"{halo} (a few hundred pixels is fastest)"
        )


def plan_tiles(shape: tuple[int, int], tile: int, halo: int) -> list[Tile]:
    """Tiles covering a 2-D ``shape`` with cores of at most ``tile`` x ``tile`` pixels, row by row."""
    check_tile(tile, halo)
    rows, columns = (_axis_tiles(length, tile, halo) for length in shape)
    return [
        Tile(window=(wy, wx), core=(cy, cx), crop=(ky, kx)) for wy, cy, ky in rows for wx, cx, kx in columns
    ]


def stitch(output: np.ndarray, tiles: list[Tile], predictions: np.ndarray) -> None:
    """Write each tile's core from ``predictions`` (one window-shaped 2-D array per tile) into ``output``."""
    for tile, prediction in zip(tiles, predictions, strict=True):
        output[tile.core] = prediction[tile.crop]


def plan_region(
    shape: tuple[int, int], region: tuple[int, int, int, int], tile: int, halo: int
) -> list[Tile]:
    """Tiles whose cores cover ``region`` (y0, y1, x0, x1) of a 2-D ``shape`` exactly: the cells of a
    ``tile``-pixel grid of the slice cut to the region (end pieces under a quarter tile joined to their
    neighbour), each window the core and its halo, shifted inside the image. Cores are in slice coordinates;
    windows of edge tiles are smaller, so tiles of one plan may differ in shape."""
    check_tile(tile, halo)
    y0, y1, x0, x1 = region
    rows = [_window(a, b, shape[0], halo) for a, b in itertools.pairwise(_grid_cuts(y0, y1, tile))]
    columns = [_window(a, b, shape[1], halo) for a, b in itertools.pairwise(_grid_cuts(x0, x1, tile))]
    return [
        Tile(window=(wy, wx), core=(cy, cx), crop=(ky, kx)) for wy, cy, ky in rows for wx, cx, kx in columns
    ]


def centre_first(tiles: list[Tile], focus: tuple[float, float]) -> list[Tile]:
    """``tiles`` ordered by the distance of their core's centre from ``focus`` (y, x), nearest first."""

    def distance(tile: Tile) -> float:
        (cy, cx), (fy, fx) = tile.core, focus
        return math.hypot((cy.start + cy.stop) / 2 - fy, (cx.start + cx.stop) / 2 - fx)

    return sorted(tiles, key=distance)


def bounds(tile: Tile) -> tuple[int, int, int, int]:
    """The tile's core as (y0, y1, x0, x1)."""
    cy, cx = tile.core
    return cy.start, cy.stop, cx.start, cx.stop
