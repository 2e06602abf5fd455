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
