"""Registered neighbours: each neighbour slice shifted onto its centre slice before it enters the network.

A drifting stack (measures/drift.py) pairs each centre with neighbours that show a place a fraction of a
pixel to several pixels away. Training and inference both read a neighbour at (y + dy, x + dx), where
(dy, dx) is the measured shift of that neighbour against that centre, rounded to whole pixels: the
neighbour's pixels are moved, never interpolated, so its noise stays untouched and independent of the
centre's (interpolation would smooth it and change what the noise check measures). The centre, and so the
output, is never resampled.

Borders a shift exposes: at inference the neighbour's edge row or column is repeated there (the nearest
place it shows), so the shifted neighbour is a whole slice and tiles and regions of it stitch exactly as
before; training draws only patches whose neighbours lie wholly inside their slices.

Each shift is measured on the two slices themselves (centred crops, ``measure_shift``), so the API, the
command line and the dock get the same shifts for the same stack. A pair that does not correlate, or is
shifted by more than a quarter of the slice, stays unshifted. Training registers when the drift measured on
its stack calls for it (or when told to) and records it; inference then registers with that model, unless
told otherwise (``model_registers``).
"""

from __future__ import annotations

import numpy as np

from napari_nrrn.measures.drift import measure_shift

Shift = tuple[int, int]


def neighbour_shift(centre, neighbour) -> Shift:
    """Whole-pixel (dy, dx): ``neighbour`` read at (y + dy, x + dx) shows ``centre``'s (y, x); (0, 0) where
    the two cannot be registered (no correlation, a shift beyond a quarter of the slice, tiny slices)."""
    try:
        found = measure_shift(centre, neighbour)
    except ValueError:
        return 0, 0
    return (0, 0) if found is None else (int(round(found[0])), int(round(found[1])))


def shift_onto(neighbour: np.ndarray, shift: Shift) -> np.ndarray:
    """``neighbour`` read at (y + dy, x + dx), its edge pixels repeated where that leaves the slice."""
    dy, dx = shift
    if dy == 0 and dx == 0:
        return neighbour
    height, width = neighbour.shape
    rows = np.clip(np.arange(height) + dy, 0, height - 1)
    columns = np.clip(np.arange(width) + dx, 0, width - 1)
    return neighbour[rows[:, None], columns[None, :]]


def register_triplet(prev, centre, next) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prev, centre, next) with both neighbours shifted onto the centre by whole pixels."""
    prev, centre, next = (np.asarray(image) for image in (prev, centre, next))
    before, after = (shift_onto(image, neighbour_shift(centre, image)) for image in (prev, next))
    return before, centre, after


def model_registers(model) -> bool:
    """Whether ``model`` was trained on registered neighbours (its training record): then inference registers
    them too, unless told otherwise. Models without the record (the shipped one, the authors') do not."""
    return bool(getattr(model, "metadata", {}).get("training", {}).get("register", False))
