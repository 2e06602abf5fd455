"""Random training patches from a lazy stack: triplets of adjacent slices, or repeated scans of one slice.

Data layouts, by ``mode``:

- ``"adjacent"``: a (Z, Y, X) stack, Z >= 3. A sample is the slices at ``z + offset`` for the sampler's
  ``offsets``: (previous, centre, next) = (z-1, z, z+1) by default, (z-s, z, z+s) at z-distance s, or the
  five slices (z-2s, z-s, z, z+s, z+2s) that the neighbour-mean target needs.
- ``"repeated-3"``: a (Z, 3, Y, X) array: 3 scans of each of Z slices (Z may be 1). A sample is the
  3 scans (a, b, c), used as (previous, centre, next): same signal, independent noise.
- ``"repeated-2"``: a (Z, 2, Y, X) array: 2 scans (a, b) of each slice. A sample is (a, b); training feeds
  f(a, a) toward b and f(b, b) toward a.

Stack the scans of a repeated acquisition on axis 1: ``np.stack([scan_a, scan_b], axis=1)`` or, lazily,
``dask.array.stack([open_stack(a), open_stack(b)], axis=1)``.

Slices are read one at a time (``stack[z]``) through a bounded LRU cache, and each is z-scored with its
own whole-slice mean and standard deviation (``engine.normalise``), as at inference. With ``register``
(adjacent mode), each slice of a sample is read at (y + dy, x + dx), its shift onto the centre
(``engine.registration.neighbour_shift``, measured once per slice pair on the cached slices), by cubic
convolution (``read_shifted``: the same pixels as the whole shifted slice that inference reads), inputs and
targets alike; patches are drawn only where every shifted window lies inside its slice. A batch draws its
centres from a *resident set* of centres whose slices all fit in the cache; one resident is replaced per
batch, so a batch reads at most one new triplet however large the stack, and a stack that fits in the
cache is read exactly once. Every patch of a sample gets the same random flip and 90-degree rotation.

A contiguous block of centres in the middle of the stack is held out for validation; in adjacent mode no
training sample's slices lie within the span of a validation sample's, for any reach. A stack too short to
spare that block trains without validation (the block and its margin would take more than half of the
centres).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from napari_nrrn.engine.normalise import slice_stats
from napari_nrrn.engine.registration import UNSHIFTED, Shift, neighbour_shift, read_shifted
from napari_nrrn.words import for_cli

MODES = ("adjacent", "repeated-2", "repeated-3")
SCANS = {"repeated-2": 2, "repeated-3": 3}


def check_training_stack(shape: tuple[int, ...], mode: str, patch: int, reach: int = 1) -> None:
    """ValueError naming the problem and the fix when a stack of ``shape`` cannot train in ``mode``."""
    if mode not in MODES:
        raise ValueError(f"training mode {mode!r} is unknown: choose one of {', '.join(MODES)}")
    if mode == "adjacent":
        if len(shape) != 3:
            raise ValueError(
                f"adjacent-slice training needs a (Z, Y, X) stack, got shape {tuple(shape)}: "
                "a 2-D image has no neighbour slices (use a model trained elsewhere)"
            )
        if shape[0] < 2 * reach + 1:
            single = " (a single 2-D image has no neighbour slices)" if shape[0] == 1 else ""
            needs = f"adjacent-slice training needs at least {2 * reach + 1} slices, the stack has {shape[0]}"
            # Training toward the neighbours themselves needs 3 slices: offered only where that is enough.
            shorter = ""
            if reach > 1 and shape[0] >= 3:
                shorter = " or train toward the neighbours themselves ({}, 3 slices),"
            api, cli = shorter.format("target='neighbours'"), shorter.format("--target neighbours")
            error = ValueError(
                f"{needs}{single}: add slices,{api} or train on 2 or 3 repeated scans of each slice "
                "(mode='repeated-2' or 'repeated-3')"
            )
            raise for_cli(
                error,
                f"{needs}{single}: add slices,{cli} or give 2 or 3 repeated scans of the same slices as "
                "extra STACKs (napari-nrrn train SCAN_A SCAN_B -o MODEL)",
            )
    else:
        scans = SCANS[mode]
        if len(shape) != 4 or shape[1] != scans:
            raise ValueError(
                f"{mode} training needs a (Z, {scans}, Y, X) array of {scans} scans per slice, got shape "
                f"{tuple(shape)}: stack the scans on axis 1, e.g. np.stack([scan_a, scan_b], axis=1)"
            )
    height, width = shape[-2:]
    if patch < 1 or patch > min(height, width):
        raise ValueError(
            f"patch size {patch} does not fit slices of {height}x{width} pixels: "
            f"choose a patch between 1 and {min(height, width)}"
        )


class SliceCache:
    """At most ``capacity`` slices read from ``stack``, least recently used dropped first.

    An entry is the raw slice (its stored dtype: 1 byte per pixel for uint8 data) and its whole-slice
    (mean, std), one pair per scan in repeated modes. ``reads`` counts slices read from the stack.
    """

    def __init__(self, stack, capacity: int):
        if capacity < 1:
            raise ValueError(f"slice cache capacity must be at least 1, got {capacity}")
        self.stack = stack
        self.capacity = capacity
        self.reads = 0
        self._entries: OrderedDict[int, tuple[np.ndarray, list[tuple[float, float]]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, z: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
        if z in self._entries:
            self._entries.move_to_end(z)
            return self._entries[z]
        part = self.stack[z]
        raw = np.asarray(part.compute() if hasattr(part, "compute") else part)
        self.reads += 1
        scans = raw[None] if raw.ndim == 2 else raw
        entry = (scans, [slice_stats(scan) for scan in scans])
        self._entries[z] = entry
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return entry

    def touch(self, z: int) -> None:
        """Mark slice ``z`` as just used, if cached."""
        if z in self._entries:
            self._entries.move_to_end(z)


@dataclass(frozen=True)
class Split:
    """Centres for training and for validation."""

    train: np.ndarray
    validation: np.ndarray


def split_centres(depth: int, mode: str, validation_fraction: float, reach: int = 1) -> Split:
    """Training and validation centres: a contiguous validation block in the middle of the stack."""
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation fraction {validation_fraction} must be in [0, 1)")
    centres = np.arange(reach, depth - reach) if mode == "adjacent" else np.arange(depth)
    n_val = int(round(validation_fraction * len(centres)))
    if n_val == 0:
        return Split(train=centres, validation=centres[:0])
    start = (len(centres) - n_val) // 2
    validation = centres[start : start + n_val]
    # Samples span centre +- reach: keep every training span clear of every validation span.
    margin = 2 * reach if mode == "adjacent" else 0
    train = centres[(centres < validation[0] - margin) | (centres > validation[-1] + margin)]
    if len(train) < len(centres) / 2:
        # The block and its margin would take most of a short stack: train on all of it instead.
        return Split(train=centres, validation=centres[:0])
    return Split(train=train, validation=validation)


ADJACENT = (-1, 0, 1)


class TripletSampler:
    """Random training patches (B, 3, P, P) = (previous, centre, next), or (B, 2, P, P) = (a, b) in
    repeated-2 mode, z-scored per slice, float32. In adjacent mode a sample is the slices ``z + offset``
    for each of ``offsets``, in that order (sorted, with 0 for the centre). Deterministic for a ``seed``;
    ``state()`` and ``restore()`` carry the random state across a checkpoint."""

    def __init__(
        self,
        stack,
        patch: int,
        mode: str = "adjacent",
        validation_fraction: float = 0.1,
        seed: int = 0,
        cache_bytes: int = 1 << 30,
        offsets: tuple[int, ...] = ADJACENT,
        register: bool = False,
    ):
        offsets = tuple(int(o) for o in offsets)
        if 0 not in offsets or list(offsets) != sorted(set(offsets)):
            raise ValueError(f"slice offsets {offsets} must be increasing and include 0 (the centre)")
        self.offsets = offsets if mode == "adjacent" else (0,)
        self.reach = max(-self.offsets[0], self.offsets[-1])
        shape = tuple(int(n) for n in stack.shape)
        check_training_stack(shape, mode, patch, self.reach)
        self.stack = stack
        self.patch = patch
        self.mode = mode
        self.register = register and mode == "adjacent"
        self._shifts: dict[int, tuple[Shift, ...]] = {}
        self.split = split_centres(shape[0], mode, validation_fraction, self.reach)
        slice_bytes = int(np.prod(shape[1:])) * np.dtype(stack.dtype).itemsize
        per_centre = len(self.offsets)
        # Room for the resident centres' slices plus one incoming triplet, so a step never evicts a resident.
        capacity = max(2 * per_centre, cache_bytes // max(slice_bytes, 1))
        self.cache = SliceCache(stack, capacity)
        self.resident_count = int(min(len(self.split.train), max(1, capacity // per_centre - 1)))
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.resident = [
            int(c) for c in self.rng.choice(self.split.train, size=self.resident_count, replace=False)
        ]

    def state(self) -> dict:
        """The random state and resident centres, as plain values for a checkpoint."""
        return {"rng": self.rng.bit_generator.state, "resident": list(self.resident)}

    def restore(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.resident = [int(c) for c in state["resident"]]

    def slices_of(self, centre: int) -> tuple[int, ...]:
        """The z indices a sample at ``centre`` reads, in sample order."""
        return tuple(centre + offset for offset in self.offsets)

    def shifts_of(self, centre: int) -> tuple[Shift, ...]:
        """The (dy, dx) each slice of a sample at ``centre`` is read at, in sample order: all (0, 0) without
        registration."""
        if not self.register:
            return (UNSHIFTED,) * len(self.offsets)
        if centre not in self._shifts:
            middle = self.cache.get(centre)[0][0]
            self._shifts[centre] = tuple(
                UNSHIFTED if z == centre else neighbour_shift(middle, self.cache.get(z)[0][0])
                for z in self.slices_of(centre)
            )
        return self._shifts[centre]

    def _sample(self, centre: int, y: int, x: int) -> np.ndarray:
        """The z-scored patches of one sample at (y, x), stacked on axis 0."""
        rows, columns = slice(y, y + self.patch), slice(x, x + self.patch)
        patches = []
        for z, shift in zip(self.slices_of(centre), self.shifts_of(centre), strict=True):
            scans, stats = self.cache.get(z)
            for scan, (mean, std) in zip(scans, stats, strict=True):
                if shift == UNSHIFTED:
                    window = scan[rows, columns].astype(np.float32)
                else:
                    window = read_shifted(scan, shift, rows, columns)
                patches.append((window - np.float32(mean)) / np.float32(std))
        return np.stack(patches)

    def _corner_range(self, centre: int) -> tuple[int, int, int, int]:
        """Top-left corners (y0..y1, x0..x1, inclusive) where every shifted window of the sample fits."""
        height, width = self.stack.shape[-2:]
        dys, dxs = zip(*self.shifts_of(centre), strict=True)
        y0, y1 = math.ceil(-min(dys)), math.floor(height - self.patch - max(dys))
        x0, x1 = math.ceil(-min(dxs)), math.floor(width - self.patch - max(dxs))
        if y1 < y0 or x1 < x0:
            farthest = max(map(abs, dys + dxs))
            raise ValueError(
                f"the slices around slice {centre} are shifted by up to {farthest:.1f} px: no "
                f"{self.patch} px patch fits inside all of them; train with a smaller patch, or without "
                "registration (register=False, --no-register)"
            )
        return y0, y1, x0, x1

    def _draw(self, centres, rng: np.random.Generator) -> np.ndarray:
        samples = []
        for centre in centres:
            y0, y1, x0, x1 = self._corner_range(int(centre))
            y = int(rng.integers(y0, y1 + 1))
            x = int(rng.integers(x0, x1 + 1))
            sample = np.rot90(self._sample(int(centre), y, x), k=int(rng.integers(4)), axes=(1, 2))
            if rng.integers(2):
                sample = sample[:, :, ::-1]
            samples.append(sample)
        return np.ascontiguousarray(np.stack(samples), dtype=np.float32)

    def batch(self, size: int) -> np.ndarray:
        """``size`` random training samples from the resident centres; then one resident is replaced."""
        for centre in self.resident:
            for z in self.slices_of(centre):
                self.cache.touch(z)
        samples = self._draw(self.rng.choice(self.resident, size=size), self.rng)
        outside = np.setdiff1d(self.split.train, self.resident)
        if len(outside):
            self.resident[int(self.rng.integers(len(self.resident)))] = int(self.rng.choice(outside))
        return samples

    def validation_batch(self, size: int) -> np.ndarray | None:
        """``size`` fixed validation samples (the same for a given seed), or None without validation."""
        if len(self.split.validation) == 0:
            return None
        rng = np.random.default_rng([self.seed, 1])
        return self._draw(rng.choice(self.split.validation, size=size), rng)
