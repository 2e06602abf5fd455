"""Registered neighbours: each neighbour slice shifted onto its centre slice before it enters the network.

A drifting stack (measures/drift.py) pairs each centre with neighbours that show a place a fraction of a
pixel to several pixels away. Training and inference both read a neighbour at (y + dy, x + dx), where
(dy, dx) is the measured shift of that neighbour against that centre, by cubic convolution (Keys, a = -0.5):
four taps per axis, so any window of a shifted neighbour is computed from that window and 2 px around it and
equals the same pixels of the whole shifted slice exactly. A whole-pixel shift moves pixels untouched.
Interpolating between pixels averages neighbouring pixels' noise: it stays independent of the centre's, and
its variance shrinks by a known factor (``noise_variance_factor``, 0.41 at half a pixel on both axes), which
the shared-noise stop allows for. Measured against whole pixels, linear and cubic-spline interpolation in
docs/training.md. The centre, and so the output, is never resampled.

Borders a shift exposes: the neighbour's edge row or column is repeated there (the nearest place it shows),
so the shifted neighbour is a whole slice and tiles and regions of it stitch exactly as before; training
draws only patches whose shifted windows lie inside their slices.

Each shift is measured on the two slices themselves (centred crops, ``measure_shift``), so the API, the
command line and the dock get the same shifts for the same stack. A pair that does not correlate, or is
shifted by more than a quarter of the slice, stays unshifted. Training registers when the drift measured on
its stack calls for it (or when told to) and records it; inference then registers with that model, unless
told otherwise (``model_registers``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

from napari_nrrn.measures.drift import measure_shift, measured_crop

Shift = tuple[float, float]
UNSHIFTED: Shift = (0.0, 0.0)
# Shifts measured lately, by the content of the crops they were measured on: the preview measures the same
# pairs again for every view of a slice (0.16 CPU-s per 6144 x 4096 triplet; a digest of both crops, 1 ms).
RECENT_SHIFTS = 64
_recent: OrderedDict[bytes, Shift] = OrderedDict()
_recent_lock = threading.Lock()


def neighbour_shift(centre, neighbour) -> Shift:
    """(dy, dx): ``neighbour`` read at (y + dy, x + dx) shows ``centre``'s (y, x); (0, 0) where the two
    cannot be registered (no correlation, a shift beyond a quarter of the slice, tiny slices)."""
    key = _crops_digest(centre, neighbour)
    with _recent_lock:
        if key in _recent:
            _recent.move_to_end(key)
            return _recent[key]
    try:
        found = measure_shift(centre, neighbour)
    except ValueError:
        found = None
    shift = UNSHIFTED if found is None else (float(found[0]), float(found[1]))
    with _recent_lock:
        _recent[key] = shift
        while len(_recent) > RECENT_SHIFTS:
            _recent.popitem(last=False)
    return shift


def _crops_digest(*images) -> bytes:
    """A digest of what ``measure_shift`` reads of ``images``: their measured crops, shapes and types."""
    digest = hashlib.blake2b(digest_size=16)
    for image in images:
        crop = np.ascontiguousarray(np.asarray(image)[measured_crop(np.shape(image))])
        digest.update(repr((np.shape(image), crop.dtype.str)).encode())
        digest.update(crop.tobytes())
    return digest.digest()


def shift_onto(neighbour: np.ndarray, shift: Shift) -> np.ndarray:
    """``neighbour`` read at (y + dy, x + dx) (``read_shifted``), its edge pixels repeated where that leaves
    the slice; unchanged for (0, 0)."""
    if tuple(shift) == UNSHIFTED:
        return neighbour
    height, width = neighbour.shape
    return read_shifted(neighbour, shift, slice(0, height), slice(0, width))


class ShiftedSlice:
    """``shift_onto(image, shift)`` computed window by window as it is read (``[rows, columns]``, slices):
    the same pixels, for a view that reads a part of a large slice (the preview) instead of interpolating
    all of it (0.63 CPU-s per 6144 x 4096 neighbour)."""

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, image: np.ndarray, shift: Shift):
        self.image, self.shift, self.shape = image, shift, image.shape

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows, columns = (range(*part.indices(n)) for part, n in zip(key, self.shape, strict=True))
        if rows.step != 1 or columns.step != 1:
            raise IndexError("a shifted slice is read in contiguous windows")
        return read_shifted(
            self.image, self.shift, slice(rows.start, rows.stop), slice(columns.start, columns.stop)
        )

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = shift_onto(self.image, self.shift)
        return whole if dtype is None else whole.astype(dtype)


def register_triplet(prev, centre, next, lazy: bool = False):
    """(prev, centre, next) with both neighbours shifted onto the centre: arrays, or with ``lazy`` each
    shifted neighbour a ``ShiftedSlice``, interpolated only where it is read."""
    prev, centre, next = (np.asarray(image) for image in (prev, centre, next))
    shifted = []
    for image in (prev, next):
        shift = neighbour_shift(centre, image)
        lazily = lazy and shift != UNSHIFTED
        shifted.append(ShiftedSlice(image, shift) if lazily else shift_onto(image, shift))
    return shifted[0], centre, shifted[1]


def model_registers(model) -> bool:
    """Whether ``model`` was trained on registered neighbours (its training record): then inference registers
    them too, unless told otherwise. Models without the record (the shipped one, the authors') do not."""
    return bool(getattr(model, "metadata", {}).get("training", {}).get("register", False))


# Keys' cubic convolution kernel (a = -0.5, third-order accurate); four taps.
_KEYS_A = -0.5


def _keys(distance: float) -> float:
    x = abs(distance)
    if x <= 1:
        return (_KEYS_A + 2) * x**3 - (_KEYS_A + 3) * x**2 + 1
    if x < 2:
        return _KEYS_A * (x**3 - 5 * x**2 + 8 * x - 4)
    return 0.0


def cubic_taps(shift: float) -> tuple[int, np.ndarray]:
    """(whole, weights): reading at i + ``shift`` is the weighted sum of pixels i + whole + (-1, 0, 1, 2)."""
    whole = int(np.floor(shift))
    rest = shift - whole
    return whole, np.array([_keys(rest + 1), _keys(rest), _keys(1 - rest), _keys(2 - rest)], np.float32)


def noise_variance_factor(shift: tuple[float, float]) -> float:
    """How interpolating at ``shift`` scales independent pixel noise's variance (1 at whole pixels)."""
    return float(np.prod([np.square(cubic_taps(s)[1]).sum() for s in shift]))


def read_shifted(image: np.ndarray, shift: tuple[float, float], rows: slice, columns: slice) -> np.ndarray:
    """``image`` read at (y + dy, x + dx) for y in ``rows``, x in ``columns``, by cubic convolution, its edge
    pixels repeated beyond it; float32. The same pixels of the whole shifted image, exactly."""
    (y_whole, y_weights), (x_whole, x_weights) = cubic_taps(shift[0]), cubic_taps(shift[1])
    height, width = rows.stop - rows.start, columns.stop - columns.start
    # The pixels the taps read: 1 before and 2 after the shifted window, the edge repeated outside.
    block = _edge_padded(image, rows.start + y_whole - 1, height + 3, columns.start + x_whole - 1, width + 3)
    along_y = np.zeros((height, width + 3), np.float32)
    for tap, weight in enumerate(y_weights):
        if weight:
            along_y += weight * block[tap : tap + height]
    out = np.zeros((height, width), np.float32)
    for tap, weight in enumerate(x_weights):
        if weight:
            out += weight * along_y[:, tap : tap + width]
    return out


def _edge_padded(image: np.ndarray, top: int, height: int, left: int, width: int) -> np.ndarray:
    """``image[top : top + height, left : left + width]`` as float32, its edge repeated beyond it."""
    rows, columns = image.shape
    inside = image[
        min(max(top, 0), rows - 1) : max(min(top + height, rows), 1),
        min(max(left, 0), columns - 1) : max(min(left + width, columns), 1),
    ].astype(np.float32)
    return np.pad(
        inside,
        (
            (min(max(-top, 0), height - 1), max(top + height - max(rows, top + 1), 0)),
            (min(max(-left, 0), width - 1), max(left + width - max(columns, left + 1), 0)),
        ),
        mode="edge",
    )
