"""Noise diagnostics without a clean image: the noise level and its growth with the signal (shot noise), its
correlation across z, and between neighbouring rows and columns of a slice. See docs/noise.md.

The noise is separated from the signal by high-pass residuals measured only in flat regions (the lower half
of the smoothed gradient magnitude). A linear in-plane filter applied to two slices keeps the correlation
coefficient of their noise, and a filter along x keeps the correlation between rows (likewise along y for
columns), so no bias correction is needed when the noise correlation is separable in z, y and x.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from napari_nrrn.words import plural

# |correlation| below which noise counts as independent: the estimator's measured error is under 0.05, and
# a correlation of 0.1 leaves 99 % of the noise variance unshared.
INDEPENDENT_BELOW = 0.1
Z_DISTANCES = (1, 2, 3)
# Default number of places in the stack measured, each on slices z .. z+3.
POSITIONS = 5
# Larger slices are measured on a centred crop of this side: enough pixels, bounded memory.
MAX_SIDE = 1024
FLAT_FRACTION = 0.5
_GRADIENT_SMOOTHING = 1.0
_LOCAL_MEAN_SMOOTHING = 2.0
_SHOT_NOISE_BINS = 8
_SMALLEST_SIDE = 16
_FIT_PIXELS_PER_SLICE = 20_000


@dataclass(frozen=True)
class NoiseReport:
    """What ``estimate_noise`` measured.

    sigma: noise standard deviation in grey levels, over all pixels of the slices used.
    variance_intercept, variance_slope: noise variance = intercept + slope * signal (grey levels); a
        positive slope is shot noise.
    z_correlation: noise correlation between slices 1, 2 and 3 apart (None where not measurable).
    row_correlation: corr(n[y, x], n[y + 1, x]), between neighbouring rows.
    column_correlation: corr(n[y, x], n[y, x + 1]), between neighbouring columns.
    slices: the z indices measured; notes: what could not be measured, in plain words.
    """

    sigma: float
    variance_intercept: float
    variance_slope: float
    z_correlation: tuple[float | None, float | None, float | None]
    row_correlation: float
    column_correlation: float
    slices: tuple[int, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """Plain JSON-able values."""
        values = asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}

    @classmethod
    def from_dict(cls, values: dict) -> NoiseReport:
        return cls(
            sigma=float(values["sigma"]),
            variance_intercept=float(values["variance_intercept"]),
            variance_slope=float(values["variance_slope"]),
            z_correlation=tuple(None if c is None else float(c) for c in values["z_correlation"]),
            row_correlation=float(values["row_correlation"]),
            column_correlation=float(values["column_correlation"]),
            slices=tuple(int(z) for z in values["slices"]),
            notes=tuple(str(note) for note in values.get("notes", ())),
        )

    def safe_z_distance(self) -> int:
        """The smallest distance in 1..3 whose noise correlation is below INDEPENDENT_BELOW; the least
        correlated one when none is; 1 when nothing was measured."""
        measured = [(d, c) for d, c in zip(Z_DISTANCES, self.z_correlation, strict=True) if c is not None]
        if not measured:
            return 1
        for distance, correlation in measured:
            if abs(correlation) < INDEPENDENT_BELOW:
                return distance
        return min(measured, key=lambda item: abs(item[1]))[0]

    def describe(self) -> list[str]:
        """Plain-words lines for the dock and ``napari-nrrn info --noise``."""
        shot_share = 1 - self.variance_intercept / self.sigma**2 if self.sigma > 0 else 0.0
        level = (
            f"shot noise: variance grows {self.variance_slope:.2g} per grey level"
            if shot_share >= 0.1
            else "about the same at every grey level"
        )
        lines = [f"noise: {self.sigma:.1f} grey levels ({level})"]
        if any(c is not None for c in self.z_correlation):
            parts = ["not measured" if c is None else f"{c:.2f}" for c in self.z_correlation]
            lines.append(
                f"z correlation of the noise: {parts[0]} (1 slice apart), {parts[1]} (2), {parts[2]} (3)"
            )
        else:
            lines.append("z correlation of the noise: not measured")
        lines.append(
            f"noise correlation within a slice: {self.row_correlation:.2f} between neighbouring rows, "
            f"{self.column_correlation:.2f} between neighbouring columns"
        )
        lines.append(f"measured on {plural(len(self.slices), 'slice')}: z = {_ranges(self.slices)}")
        return lines + list(self.notes)

    def warnings(self) -> list[str]:
        """One plain sentence per assumption that fails."""
        found = []
        distance = self.safe_z_distance()
        measured = [c for c in self.z_correlation if c is not None]
        if measured and all(abs(c) >= INDEPENDENT_BELOW for c in measured):
            listed = ", ".join(f"{c:.2f}" for c in measured)
            found.append(
                f"slices share noise at every distance measured (correlation {listed}): training would learn "
                f"part of it; napari-nrrn will train on slices {distance} apart, the least correlated"
            )
        elif distance > 1:
            found.append(
                f"adjacent slices share noise (correlation {self.z_correlation[0]:.2f}): training on "
                f"neighbours would learn it; napari-nrrn will train on slices {distance} apart"
            )
        for correlation, neighbours in (
            (self.row_correlation, "rows"),
            (self.column_correlation, "columns"),
        ):
            if abs(correlation) >= INDEPENDENT_BELOW:
                found.append(
                    f"neighbouring {neighbours} share noise (correlation {correlation:.2f}): streak or "
                    "scan-line noise; training is unaffected (its targets are other slices)"
                )
        return found


def estimate_noise(stack, slices=None) -> NoiseReport:
    """Measure the noise of ``stack``, a (Z, Y, X) numpy or dask array or a 2-D image, without a clean image.

    Reads only the slices it measures, one ``stack[z]`` at a time. ``slices``: the z indices to measure
    from, each compared with the slices 1, 2 and 3 after it that exist (default: POSITIONS places spread
    over the stack). Blank or constant slices are skipped, with a note.
    """
    if stack.ndim not in (2, 3):
        raise ValueError(f"estimate_noise needs a 2-D image or a (Z, Y, X) stack, not shape {stack.shape}")
    if min(stack.shape[-2:]) < _SMALLEST_SIDE:
        raise ValueError(
            f"slices of {stack.shape[-2]} x {stack.shape[-1]} pixels are too small to measure noise on: "
            f"it needs at least {_SMALLEST_SIDE} x {_SMALLEST_SIDE}"
        )
    depth = 1 if stack.ndim == 2 else stack.shape[0]
    starts = _starts(depth, slices)
    crop = tuple(_centred(n) for n in stack.shape[-2:])

    def read(z: int) -> np.ndarray:
        plane = stack[crop] if stack.ndim == 2 else stack[(z, *crop)]
        return np.asarray(plane).astype(np.float64)

    pairs: dict[int, list[float]] = {d: [] for d in Z_DISTANCES}
    planes: dict[int, _Plane] = {}
    skipped: set[int] = set()
    cached: dict[int, np.ndarray | None] = {}
    for start in starts:
        group = range(start, min(start + Z_DISTANCES[-1] + 1, depth))
        cached = {z: cached[z] if z in cached else read(z) for z in group}
        images = {}
        for z in group:
            image = cached[z]
            if image is None or image.max() == image.min():
                cached[z] = None
                skipped.add(z)
            else:
                images[z] = image
        if not images:
            continue
        flat = _flat_mask(list(images.values()))
        residuals = {
            z: image - ndimage.uniform_filter(image, 3, mode="reflect") for z, image in images.items()
        }
        for z, image in images.items():
            if z not in planes:
                planes[z] = _Plane.measure(image, flat)
            for d in Z_DISTANCES:
                if z + d in residuals:
                    both = flat & planes[z].unsaturated & _unsaturated(images[z + d])
                    pairs[d].append(_correlation(residuals[z][both], residuals[z + d][both]))

    notes = []
    if skipped:
        notes.append(f"blank or constant slices skipped: z = {_ranges(sorted(skipped))}")
    if not planes:
        raise ValueError(
            f"every slice measured (z = {_ranges(sorted(skipped))}) is blank or constant: there is no noise "
            "to measure"
        )
    if stack.ndim == 2:
        notes.append("a 2-D image has no z correlation")
    elif depth == 1:
        notes.append("a single slice has no z correlation")
    else:
        for d in Z_DISTANCES:
            if not pairs[d]:
                notes.append(f"no two usable slices {d} apart: no z correlation at distance {d}")
    z_correlation = tuple(float(np.mean(pairs[d])) if pairs[d] else None for d in Z_DISTANCES)

    measured = list(planes.values())
    row = float(np.mean([p.row_lag1 for p in measured]))
    column = float(np.mean([p.column_lag1 for p in measured]))
    column_lag2 = float(np.mean([p.column_lag2 for p in measured]))
    row_lag2 = float(np.mean([p.row_lag2 for p in measured]))
    # Variance of the half second difference along x (or y) in units of the noise variance, from the noise
    # correlation at lags 1 and 2 along that axis: exact for separable noise.
    gain_x = 1.5 - 2 * column + 0.5 * column_lag2
    gain_y = 1.5 - 2 * row + 0.5 * row_lag2
    intercept, slope, fit_note = _variance_fit(measured, gain_x, gain_y)
    if fit_note:
        notes.append(fit_note)
    mean_grey = float(np.mean([p.mean for p in measured]))
    variance = max(intercept + slope * mean_grey, 0.0)
    return NoiseReport(
        sigma=float(np.sqrt(variance)),
        variance_intercept=float(intercept),
        variance_slope=float(slope),
        z_correlation=z_correlation,
        row_correlation=row,
        column_correlation=column,
        slices=tuple(sorted(planes)),
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class _Plane:
    """In-plane measures of one slice, over its flat pixels."""

    mean: float
    unsaturated: np.ndarray
    row_lag1: float
    row_lag2: float
    column_lag1: float
    column_lag2: float
    local_mean: np.ndarray  # smoothed signal at the flat pixels
    across_x: np.ndarray  # half second difference along x at the flat pixels
    across_y: np.ndarray

    @classmethod
    def measure(cls, image: np.ndarray, flat: np.ndarray) -> _Plane:
        unsaturated = _unsaturated(image)
        use = flat & unsaturated
        # Every few flat pixels are enough for the variance fit, and keep its memory small.
        kept = np.flatnonzero(use)
        kept = kept[:: max(1, kept.size // _FIT_PIXELS_PER_SLICE)]
        # A filter along x alone keeps the correlation between rows, one along y keeps it between columns.
        along_x = image - 0.5 * (np.roll(image, 1, axis=1) + np.roll(image, -1, axis=1))
        along_y = image - 0.5 * (np.roll(image, 1, axis=0) + np.roll(image, -1, axis=0))
        return cls(
            mean=float(image.mean()),
            unsaturated=unsaturated,
            row_lag1=_lagged(along_x, use, 1, axis=0),
            row_lag2=_lagged(along_x, use, 2, axis=0),
            column_lag1=_lagged(along_y, use, 1, axis=1),
            column_lag2=_lagged(along_y, use, 2, axis=1),
            local_mean=ndimage.gaussian_filter(image, _LOCAL_MEAN_SMOOTHING).ravel()[kept],
            across_x=along_x.ravel()[kept],
            across_y=along_y.ravel()[kept],
        )


def _starts(depth: int, slices) -> list[int]:
    if slices is None:
        last = max(depth - Z_DISTANCES[-1] - 1, 0)
        return sorted({round(z) for z in np.linspace(0, last, min(POSITIONS, last + 1))})
    starts = [int(z) for z in np.atleast_1d(slices)]
    bad = [z for z in starts if not 0 <= z < depth]
    if bad or not starts:
        raise ValueError(f"slices must be z indices in 0..{depth - 1}, got {list(np.atleast_1d(slices))}")
    return sorted(set(starts))


def _centred(size: int) -> slice:
    start = max((size - MAX_SIDE) // 2, 0)
    return slice(start, start + min(size, MAX_SIDE))


def _flat_mask(images: list[np.ndarray]) -> np.ndarray:
    """Pixels in the flatter FLAT_FRACTION of the smoothed gradient magnitude of the images' mean, away from
    the 2-pixel border where the filters wrap or reflect."""
    smooth = ndimage.gaussian_filter(np.mean(images, axis=0), _GRADIENT_SMOOTHING)
    gradient = np.hypot(*np.gradient(smooth))
    inner = np.zeros(gradient.shape, bool)
    inner[2:-2, 2:-2] = True
    return inner & (gradient <= np.quantile(gradient[inner], FLAT_FRACTION))


def _unsaturated(image: np.ndarray) -> np.ndarray:
    """Pixels not at the slice's extreme values, where clipping or padding would hide the noise."""
    return (image > image.min()) & (image < image.max())


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def _lagged(values: np.ndarray, use: np.ndarray, lag: int, axis: int) -> float:
    """Correlation of ``values`` with itself ``lag`` pixels further along ``axis``, where both are used."""
    head = [slice(None)] * 2
    tail = [slice(None)] * 2
    head[axis] = slice(None, -lag)
    tail[axis] = slice(lag, None)
    both = use[tuple(head)] & use[tuple(tail)]
    return _correlation(values[tuple(head)][both], values[tuple(tail)][both])


def _variance_fit(planes: list[_Plane], gain_x: float, gain_y: float) -> tuple[float, float, str | None]:
    """Noise variance against the local signal: robust variances in bins of local mean, fitted by a line."""
    local_mean = np.concatenate([p.local_mean for p in planes])
    across_x = np.concatenate([p.across_x for p in planes])
    across_y = np.concatenate([p.across_y for p in planes])
    edges = np.quantile(local_mean, np.linspace(0, 1, _SHOT_NOISE_BINS + 1))
    which = np.clip(np.searchsorted(edges, local_mean, side="right") - 1, 0, _SHOT_NOISE_BINS - 1)
    centres, variances, counts = [], [], []
    for b in range(_SHOT_NOISE_BINS):
        inside = which == b
        if inside.sum() < 50:
            continue
        centres.append(local_mean[inside].mean())
        variances.append(_noise_variance(across_x[inside], across_y[inside], gain_x, gain_y))
        counts.append(inside.sum())
    if len(centres) < 2 or np.ptp(centres) < 1e-6 * max(abs(np.mean(centres)), 1):
        return (
            _noise_variance(across_x, across_y, gain_x, gain_y),
            0.0,
            "the flat regions span too few grey levels to measure shot noise",
        )
    slope, intercept = np.polyfit(centres, variances, 1, w=np.sqrt(counts))
    return float(intercept), float(slope), None


def _noise_variance(across_x: np.ndarray, across_y: np.ndarray, gain_x: float, gain_y: float) -> float:
    """Both directions pooled by their gain: the direction along which the noise is correlated has a small
    gain, and leaked signal would weigh too much in it alone."""
    return (_robust_variance(across_x) + _robust_variance(across_y)) / (gain_x + gain_y)


def _robust_variance(values: np.ndarray) -> float:
    """Variance from the median absolute deviation: edges that leak into flat regions do not inflate it."""
    return float((1.4826 * np.median(np.abs(values - np.median(values)))) ** 2)


def _ranges(indices) -> str:
    """``0-3, 7, 9-12`` for sorted indices."""
    runs = []
    for z in indices:
        if runs and z == runs[-1][1] + 1:
            runs[-1][1] = z
        else:
            runs.append([z, z])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)
