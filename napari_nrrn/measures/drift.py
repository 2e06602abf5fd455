"""Drift between slices: the shift that brings slice z+1 onto slice z, measured through the noise, from a few
slice pairs read lazily. See docs/noise.md.

A raw acquisition is not registered: the sample drifts between slices, and NRRN's neighbours then do not show
the centre's place. The shift of a pair is the peak of the cross-correlation of the two slices' centred crops
(``skimage.registration.phase_cross_correlation`` without phase normalisation, which whitens and so
amplifies the noise): the whole pixels first, then the rest to 1/20 px on the overlap alone, smoothed and
tapered. Measured on FlyEM medulla slices moved by up to 8 px with noise of 20 grey levels added: within
0.07 px of the known shift (40 trials). Whether a pair shows one place at all is the correlation of the two
crops, smoothed against the noise and aligned by the shift (MIN_CORRELATION). On large slices a few pairs
are measured near the corners too, to tell whether one shift holds across the slice (``CornerShifts``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import window
from skimage.registration import phase_cross_correlation

from napari_nrrn.measures.noise import _ranges
from napari_nrrn.words import plural

# Steps above this (median, px per slice) cost denoising quality, and are warned about.
STEP_WARNING = 0.3
# Default number of adjacent pairs measured, spread over the stack.
PAIRS = 8
# Below this correlation of the smoothed, aligned crops a pair is taken not to show one place: measured with
# noise of 40 grey levels on the medulla stack, adjacent slices gave 0.95, slices 10 apart 0.56, unrelated
# slices 0.24 to 0.34 at their best shift.
MIN_CORRELATION = 0.5
# A shift beyond this fraction of the measured side is not trusted: cross-correlation wraps at half of it.
LARGEST_FRACTION = 0.25
UPSAMPLE = 20
# Slices are measured on a centred square of at most this side: 0.11 CPU-s per pair on an AMD EPYC, against
# 0.42 s at 1024 px, and training measures up to 4 pairs for every new centre it draws.
MEASURED_SIDE = 512
# On slices at least twice MEASURED_SIDE on both axes, this many of the measured pairs are measured again
# near the slice's four corners, to see whether one shift holds across the slice (rotation and scan distortion
# would move the corners against the centre); each such pair reads its two slices whole.
SPREAD_PAIRS = 3
# Corners that move against the centre by more than this (px) are not served by one shift per pair.
SPREAD_WARNING = 0.5
_SMOOTHING = 2.0
_SMALLEST_SIDE = 16


@dataclass(frozen=True)
class PairShift:
    """Slice ``z + 1`` shows slice ``z``'s content moved by (dy, dx) pixels: registered onto slice z, it is
    read at (y + dy, x + dx)."""

    z: int
    dy: float
    dx: float

    @property
    def step(self) -> float:
        return math.hypot(self.dy, self.dx)


@dataclass(frozen=True)
class CornerShifts:
    """The shift of pair (z, z+1) measured near each corner of the slice (top left, top right, bottom left,
    bottom right; None where it was not measured), against the shift at its centre."""

    z: int
    centre: tuple[float, float]
    corners: tuple[tuple[float, float] | None, ...]

    @property
    def spread(self) -> float | None:
        """The farthest a corner's shift lies from the centre's, in px."""
        found = [math.dist(corner, self.centre) for corner in self.corners if corner is not None]
        return max(found) if found else None


@dataclass(frozen=True)
class DriftReport:
    """What ``estimate_drift`` measured on a stack of ``depth`` slices.

    shifts: the pairs (z, z+1) measured, with their shift. uncorrelated: z of pairs whose slices do not show
    one place (no shift reported). too_large: pairs whose shift is beyond what can be measured or paired.
    skipped: blank or constant slices, left out. across: on large slices, a few pairs measured near the
    slice's corners too (``CornerShifts``).
    """

    depth: int
    shifts: tuple[PairShift, ...]
    uncorrelated: tuple[int, ...] = ()
    too_large: tuple[PairShift, ...] = ()
    skipped: tuple[int, ...] = ()
    across: tuple[CornerShifts, ...] = ()

    def to_dict(self) -> dict:
        values = asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}

    @classmethod
    def from_dict(cls, values: dict) -> DriftReport:
        return cls(
            depth=int(values["depth"]),
            shifts=tuple(PairShift(**pair) for pair in values["shifts"]),
            uncorrelated=tuple(int(z) for z in values.get("uncorrelated", ())),
            too_large=tuple(PairShift(**pair) for pair in values.get("too_large", ())),
            skipped=tuple(int(z) for z in values.get("skipped", ())),
            across=tuple(
                CornerShifts(
                    int(pair["z"]),
                    tuple(pair["centre"]),
                    tuple(None if corner is None else tuple(corner) for corner in pair["corners"]),
                )
                for pair in values.get("across", ())
            ),
        )

    @property
    def median_step(self) -> float | None:
        return float(np.median([p.step for p in self.shifts])) if self.shifts else None

    @property
    def largest_step(self) -> float | None:
        return max(p.step for p in self.shifts) if self.shifts else None

    @property
    def largest_spread(self) -> float | None:
        """The farthest a corner's shift lies from its slice centre's, over the pairs measured so."""
        found = [pair.spread for pair in self.across if pair.spread is not None]
        return max(found) if found else None

    @property
    def total_drift(self) -> tuple[float, float] | None:
        """(dy, dx) from the first slice to the last: the sum of the steps when every pair was measured, else
        the measured steps' mean times the number of pairs (an estimate)."""
        if not self.shifts:
            return None
        scale = (self.depth - 1) / len(self.shifts)
        return (scale * sum(p.dy for p in self.shifts), scale * sum(p.dx for p in self.shifts))

    def calls_for_registration(self) -> bool:
        """True when the measured steps are large enough to cost quality (median above STEP_WARNING)."""
        return self.median_step is not None and self.median_step > STEP_WARNING

    def describe(self) -> list[str]:
        """Plain-words lines for the dock and ``napari-nrrn info --noise``."""
        pairs = self.depth - 1
        lines = []
        if self.shifts:
            dy, dx = self.total_drift
            every = len(self.shifts) == pairs
            about = "" if every else "about "
            total = f"{about}{math.hypot(dy, dx):.1f} px over the stack (y {dy:+.1f}, x {dx:+.1f})"
            lines.append(
                f"drift between adjacent slices: median step {self.median_step:.2f} px, largest "
                f"{self.largest_step:.2f} px; {total}"
            )
            steps = ", ".join(f"{p.z}-{p.z + 1}: ({p.dy:+.2f}, {p.dx:+.2f})" for p in self.shifts)
            lines.append(f"shifts (y, x) px measured on {len(self.shifts)} of {pairs} pairs: {steps}")
        else:
            lines.append("drift between adjacent slices: not measured")
        if self.largest_spread is not None:
            lines.append(
                f"across the slice the shift varies by up to {self.largest_spread:.2f} px (near its corners "
                f"against its centre, {plural(len(self.across), 'pair')} measured)"
            )
        if self.skipped:
            skipped = _ranges(self.skipped)
            lines.append(f"blank or constant slices skipped in the drift measurement: z = {skipped}")
        return lines

    def warnings(self, register: bool | None = None) -> list[str]:
        """One plain sentence per problem, each saying what napari-nrrn does about it; ``register``: whether
        neighbours are registered, None for the default (where the drift calls for it)."""
        register = self.calls_for_registration() if register is None else register
        found = []
        if self.uncorrelated:
            pairs = ", ".join(f"{z}-{z + 1}" for z in self.uncorrelated)
            everywhere = not self.shifts and not self.too_large
            found.append(
                f"slices {pairs} do not correlate with each other, so no shift is reported for them: "
                + (
                    "this does not look like a z-stack of one sample (or its slices are shifted by more "
                    "than the slice); NRRN needs neighbouring slices that show the same place"
                    if everywhere
                    else "a jump in the stack, or a shift larger than the slice; napari-nrrn pairs them "
                    "unshifted"
                )
            )
        for pair in self.too_large:
            found.append(
                f"slices {pair.z} and {pair.z + 1} are shifted by ({pair.dy:+.1f}, {pair.dx:+.1f}) px, more "
                f"than {LARGEST_FRACTION:.0%} of the slice (of its centred {MEASURED_SIDE} px at most): too "
                "far to pair them; register the stack first (docs/noise.md names tools)"
            )
        if (self.largest_spread or 0.0) > SPREAD_WARNING:
            found.append(
                f"across the slice the shift varies by up to {self.largest_spread:.2f} px between its centre "
                "and its corners (rotation or scan distortion): one shift per slice pair, as napari-nrrn "
                "registers, fits the slice's middle best; registering the stack first with an affine or "
                "elastic tool fits it everywhere (docs/noise.md)"
            )
        if not self.calls_for_registration():
            return found
        drifts = f"the slices drift by {self.median_step:.2f} px per slice (median; above {STEP_WARNING} px)"
        if register:
            found.append(
                f"{drifts}, so neighbours do not show the centre's place and denoising loses quality: "
                "napari-nrrn shifts each neighbour onto its centre slice (cubic interpolation) before "
                "training and denoising with the model trained so (the output stays in the centre's frame); "
                "registering the stack itself stays your next step (docs/noise.md)"
            )
        else:
            found.append(
                f"{drifts} and registration is turned off: neighbours do not show the centre's place, which "
                "costs quality"
            )
        return found


def measure_shift(reference, moving) -> tuple[float, float] | None:
    """(dy, dx) such that ``moving`` shows ``reference``'s content moved by (dy, dx): ``moving`` read at
    (y + dy, x + dx) matches ``reference`` at (y, x). On centred crops of at most MEASURED_SIDE px; None when
    the two do not correlate (no common place, or one is blank). ValueError when the shift is beyond
    LARGEST_FRACTION of the crop, or the slices are too small."""
    crop = measured_crop(np.shape(reference))
    a = np.asarray(reference[crop], np.float64)
    b = np.asarray(moving[crop], np.float64)
    if min(a.shape) < _SMALLEST_SIDE:
        raise ValueError(
            f"slices of {a.shape[0]} x {a.shape[1]} pixels are too small to measure a shift on: it needs at "
            f"least {_SMALLEST_SIDE} x {_SMALLEST_SIDE}"
        )
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    coarse, _, _ = phase_cross_correlation(a - a.mean(), b - b.mean(), normalization=None)
    dy, dx = (-int(round(v)) for v in coarse)
    if _aligned_correlation(a, b, dy, dx) < MIN_CORRELATION:
        return None
    if max(abs(dy) / a.shape[0], abs(dx) / a.shape[1]) > LARGEST_FRACTION:
        raise ShiftTooLarge(dy, dx)
    # The sub-pixel rest on the overlap alone, lightly smoothed and tapered: the whole crops' shrinking
    # overlap would pull the peak toward 0, and the noise would jitter it (0.2 px errors seen without).
    part_a, part_b = _overlap(a, b, dy, dx)
    taper = window(("tukey", 0.3), part_a.shape)
    part_a, part_b = ((ndimage.gaussian_filter(part, 1.0) - part.mean()) * taper for part in (part_a, part_b))
    rest, _, _ = phase_cross_correlation(part_a, part_b, upsample_factor=UPSAMPLE, normalization=None)
    return dy - float(rest[0]), dx - float(rest[1])


class ShiftTooLarge(ValueError):
    """A pair shifted by more than can be measured reliably, or paired."""

    def __init__(self, dy: float, dx: float):
        super().__init__(f"shift ({dy:+.1f}, {dx:+.1f}) px is beyond {LARGEST_FRACTION:.0%} of the slice")
        self.dy, self.dx = dy, dx


def measured_crop(shape) -> tuple[slice, slice]:
    """The centred square of at most MEASURED_SIDE px of a slice of ``shape`` that a shift is measured on."""
    starts = [max((n - MEASURED_SIDE) // 2, 0) for n in shape]
    return tuple(slice(start, start + min(n, MEASURED_SIDE)) for start, n in zip(starts, shape, strict=True))


def _overlap(a: np.ndarray, b: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """The parts of ``a`` and ``b`` that show the same place once ``b`` is read at (y + dy, x + dx)."""
    height, width = a.shape
    part_a = a[max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)]
    part_b = b[max(0, dy) : height + min(0, dy), max(0, dx) : width + min(0, dx)]
    return part_a, part_b


def _aligned_correlation(a: np.ndarray, b: np.ndarray, dy: int, dx: int) -> float:
    """Correlation of the smoothed crops where they overlap once ``b`` is read at (y + dy, x + dx)."""
    if abs(dy) >= a.shape[0] - _SMALLEST_SIDE or abs(dx) >= a.shape[1] - _SMALLEST_SIDE:
        return 0.0
    part_a, part_b = (ndimage.gaussian_filter(part, _SMOOTHING) for part in _overlap(a, b, dy, dx))
    part_a = part_a - part_a.mean()
    part_b = part_b - part_b.mean()
    norm = math.sqrt(float((part_a * part_a).sum() * (part_b * part_b).sum()))
    return float((part_a * part_b).sum() / norm) if norm > 0 else 0.0


def estimate_drift(stack, pairs: int = PAIRS) -> DriftReport:
    """Measure the shift between adjacent slices of ``stack`` (Z, Y, X), numpy or dask, reading only the
    2 x ``pairs`` slices it measures (``pairs`` pairs spread over the stack; every pair of a shorter stack).
    Blank or constant slices are skipped; a pair whose slices do not correlate is listed, not measured."""
    if stack.ndim != 3 or stack.shape[0] < 2:
        raise ValueError(
            f"drift is measured between slices: it needs a (Z, Y, X) stack of at least 2 slices, got shape "
            f"{tuple(stack.shape)}"
        )
    depth = stack.shape[0]
    starts = sorted({round(z) for z in np.linspace(0, depth - 2, min(pairs, depth - 1))})
    crop = measured_crop(stack.shape[-2:])
    cached: dict[int, np.ndarray] = {}

    def read(z: int) -> np.ndarray:
        if z not in cached:
            cached[z] = np.asarray(stack[(z, *crop)])
        return cached[z]

    shifts, uncorrelated, too_large, skipped = [], [], [], set()
    measured_across = set(np.array(starts)[_spread_over(len(starts), SPREAD_PAIRS)].tolist())
    across = []
    for z in starts:
        blank = [index for index in (z, z + 1) if np.ptp(read(index)) == 0]
        if blank:
            skipped.update(blank)
            continue
        try:
            found = measure_shift(read(z), read(z + 1))
        except ShiftTooLarge as error:
            too_large.append(PairShift(z, error.dy, error.dx))
            continue
        if found is None:
            uncorrelated.append(z)
        else:
            shifts.append(PairShift(z, *found))
            corners = _corner_crops(stack.shape[-2:])
            if corners and z in measured_across:
                pair = np.asarray(stack[z]), np.asarray(stack[z + 1])
                across.append(CornerShifts(z, found, tuple(_shift_or_none(*pair, crop) for crop in corners)))
        for old in [index for index in cached if index < z + 1]:
            del cached[old]
    return DriftReport(
        depth, tuple(shifts), tuple(uncorrelated), tuple(too_large), tuple(sorted(skipped)), tuple(across)
    )


def _spread_over(count: int, wanted: int) -> np.ndarray:
    """Indices of ``wanted`` items spread over ``count`` (all of them when fewer)."""
    return np.unique(np.round(np.linspace(0, count - 1, min(wanted, count))).astype(int))


def _corner_crops(shape) -> list[tuple[slice, slice]]:
    """MEASURED_SIDE squares near the four corners (inset by a sixteenth of the side, where scan edges and
    charging show), on slices at least twice MEASURED_SIDE on both axes; none on smaller ones."""
    if min(shape) < 2 * MEASURED_SIDE:
        return []
    starts = [(n // 16, n - n // 16 - MEASURED_SIDE) for n in shape]
    return [(slice(y, y + MEASURED_SIDE), slice(x, x + MEASURED_SIDE)) for y in starts[0] for x in starts[1]]


def _shift_or_none(reference, moving, crop) -> tuple[float, float] | None:
    """The shift measured on ``crop`` of both slices; None where it cannot be (no correlation, too large)."""
    try:
        return measure_shift(reference[crop], moving[crop])
    except ValueError:
        return None
