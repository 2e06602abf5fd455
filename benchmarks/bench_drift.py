"""Drift between slices: what it costs NRRN, what registered neighbours win back, and how well it is measured.

Data: the first 64 slices of the FlyEM medulla FIB-SEM stack (250x250, 10 nm, the clean reference) seen
through a 200x200 window per slice. ``aligned``: the window stays put. ``whole``: it moves by a random walk
rounded to whole pixels; ``sub``: the same walk unrounded, each clean slice moved by cubic interpolation
(``scipy.ndimage.shift``) before the window is cut. The walk's steps are Gaussian per axis, 0.6 px long on
average (``STEP``). ``steady0.4``, ``steady0.7``: a steady drift of that many px per slice along y. Then
the same noise as benchmarks/bench_depth_noise.py (shot noise, gain 2, plus read noise 10: about 19 grey
levels), independent between slices, is added to the drifted clean stack, so the reference of each run is
the clean stack drifted the same way.

Each run trains NRRN (K=4, C=32 by default; ``--depth``, ``--width``) with ``napari_nrrn.train`` on its noisy
stack, from random weights, with registration off or forced on, for a fixed number of steps (``--steps``,
default STEPS) on one torch thread; the machine was shared, so step counts, not CPU minutes, make runs
comparable. Registration: ``+reg`` napari-nrrn's (cubic convolution); the alternatives it was chosen over,
in training and scoring alike: ``+px`` the measured shift rounded to whole pixels (napari-nrrn's before),
``+lin`` and ``+cub`` linear and cubic-spline interpolation (``scipy.ndimage``). Scoring denoises slices 16,
32 and 48 at full depth in float32, with registration as the run trained, and scores them against the
drifted clean slices.

    python benchmarks/bench_drift.py --measure              # the reported steps against the true ones
    python benchmarks/bench_drift.py --run whole+reg --seed 0 --depth 2 --width 16
    python benchmarks/bench_drift.py --run whole+px --seed 0 --depth 2 --width 16
    python benchmarks/bench_drift.py --score                 # the table, from saved runs

Runs and their models go to benchmarks/out/drift/ (not committed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _docs import cpu_description  # noqa: E402

import napari_nrrn.engine.train as train_module  # noqa: E402
from napari_nrrn.engine.events import run_to_end  # noqa: E402
from napari_nrrn.engine.inference import denoise_slice, slice_triplet, triplet_stats  # noqa: E402
from napari_nrrn.engine.registration import neighbour_shift, read_shifted  # noqa: E402
from napari_nrrn.engine.sampling import TripletSampler  # noqa: E402
from napari_nrrn.engine.train import RANDOM, TrainConfig, train  # noqa: E402
from napari_nrrn.measures.drift import estimate_drift  # noqa: E402
from napari_nrrn.measures.metrics import psnr, ssim  # noqa: E402
from napari_nrrn.model.checkpoint import load_model, save_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MEDULLA = REPO.parent / "shared" / "data" / "fibsem_flyem_medulla_A_250cube.tif"
OUT = Path(__file__).resolve().parent / "out" / "drift"
SLICES = 64
SIDE = 200
SCORED = (16, 32, 48)
STEP = 0.6  # mean step length, px per slice
WALK_SEED = 21
SHOT_GAIN = 2.0
READ_SIGMA = 10.0
NOISE_SEED = 1234
STEPS = 200
STACKS = ("aligned", "whole", "sub", "steady0.4", "steady0.7")
# Registration by run name suffix: None off, "product" napari-nrrn's own; else how the bench reads neighbours
# at the measured shift: "px" rounded to whole pixels, 1 or 3 the scipy.ndimage spline order.
REGISTRATIONS = {"": None, "+reg": "product", "+px": "px", "+lin": 1, "+cub": 3}


def walk(kind: str) -> np.ndarray:
    """(SLICES, 2) window positions: a random walk of mean step STEP, kept inside the 250 px slice; for
    ``steadyS`` a steady drift of S px per slice along y."""
    if kind == "aligned":
        return np.zeros((SLICES, 2))
    if kind.startswith("steady"):
        step = float(kind.removeprefix("steady"))
        positions = np.stack([np.arange(SLICES) * step, np.zeros(SLICES)], axis=1)
        return positions - positions.mean(axis=0)
    rng = np.random.default_rng(WALK_SEED)
    sigma = STEP / np.sqrt(np.pi / 2)  # per axis: the mean length of a 2-D Gaussian step is sigma sqrt(pi/2)
    positions = np.concatenate([[(0.0, 0.0)], np.cumsum(rng.normal(0, sigma, (SLICES - 1, 2)), axis=0)])
    positions -= positions.mean(axis=0)
    return np.rint(positions) if kind == "whole" else positions


def stacks(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, noisy, positions): clean and noisy uint8 (SLICES, SIDE, SIDE)."""
    volume = tifffile.imread(MEDULLA)[:SLICES].astype(np.float64)
    positions = walk(kind)
    margin = (volume.shape[1] - SIDE) // 2
    clean = []
    for plane, (py, px) in zip(volume, positions, strict=True):
        whole = np.rint([py, px]).astype(int)
        rest = (py, px) - whole
        if np.any(rest):
            plane = ndimage.shift(plane, -rest, order=3, mode="nearest")  # content read at y + rest
        y, x = margin + whole
        clean.append(plane[y : y + SIDE, x : x + SIDE])
    clean = np.clip(np.rint(clean), 0, 255)
    rng = np.random.default_rng(NOISE_SEED)
    sigma = np.sqrt(SHOT_GAIN * clean + READ_SIGMA**2)
    noisy = np.clip(np.rint(clean + sigma * rng.standard_normal(clean.shape)), 0, 255)
    return clean.astype(np.uint8), noisy.astype(np.uint8), positions


def measure() -> dict:
    """The reported steps against the true ones. The medulla's own adjacent slices already differ by an
    apparent step (oblique structures, residual misregistration), measured on the clean aligned stack and
    added to the truth."""
    clean_aligned, _, _ = stacks("aligned")
    own = estimate_drift(clean_aligned, pairs=SLICES - 1)
    own_steps = np.array([(p.dy, p.dx) for p in own.shifts])
    result = {"own": {"median_step": own.median_step, "largest_step": own.largest_step}}
    for kind in ("whole", "sub"):
        _, noisy, positions = stacks(kind)
        report = estimate_drift(noisy, pairs=SLICES - 1)
        found = np.array([(p.dy, p.dx) for p in report.shifts])
        # Slice z+1's window sits at positions[z+1]: its content moved by positions[z] - positions[z+1].
        true = -np.diff(positions, axis=0) + own_steps
        errors = np.hypot(*(found - true).T)
        true_lengths = np.hypot(*(-np.diff(positions, axis=0)).T)
        result[kind] = {
            "true_median_step": float(np.median(true_lengths)),
            "true_with_own_median_step": float(np.median(np.hypot(*true.T))),
            "reported_median_step": report.median_step,
            "reported_largest_step": report.largest_step,
            "median_error": float(np.median(errors)),
            "largest_error": float(errors.max()),
            "pairs_within_0.25": float(np.mean(errors <= 0.25)),
            "pairs": len(report.shifts),
        }
    return result


def split_name(name: str) -> tuple[str, int | str | None]:
    """(stack kind, registration as in REGISTRATIONS)."""
    for suffix, order in REGISTRATIONS.items():
        if suffix and name.endswith(suffix):
            return name.removesuffix(suffix), order
    return name, None


def interpolated(image: np.ndarray, shift: tuple[float, float], order, corner=(0, 0), size=None):
    """``image`` read at (y + dy, x + dx) by a spline of ``order``, or at the nearest whole pixels (``"px"``),
    from ``corner`` over ``size`` (the whole image by default), its edge repeated outside."""
    size = size or image.shape
    if order == "px":
        rows, columns = (slice(start, start + n) for start, n in zip(corner, size, strict=True))
        return read_shifted(image, (float(round(shift[0])), float(round(shift[1]))), rows, columns)
    rows, columns = np.mgrid[corner[0] : corner[0] + size[0], corner[1] : corner[1] + size[1]]
    coordinates = np.stack([rows + shift[0], columns + shift[1]]).astype(np.float64)
    return ndimage.map_coordinates(image.astype(np.float32), coordinates, order=order, mode="nearest")


class InterpolatingSampler(TripletSampler):
    """napari-nrrn's sampler with its neighbours read at their measured shift by ``interpolated`` of
    ``order`` instead of cubic convolution (the same shifts and corner range)."""

    order = 1

    def _sample(self, centre: int, y: int, x: int) -> np.ndarray:
        patches = []
        for z, shift in zip(self.slices_of(centre), self.shifts_of(centre), strict=True):
            scans, stats = self.cache.get(z)
            for scan, (mean, std) in zip(scans, stats, strict=True):
                if z == centre:
                    window = scan[y : y + self.patch, x : x + self.patch].astype(np.float32)
                else:
                    window = interpolated(scan, shift, self.order, (y, x), (self.patch, self.patch))
                patches.append((window - np.float32(mean)) / np.float32(std))
        return np.stack(patches)


def run(name: str, seed: int, steps: int, depth: int, width: int) -> None:
    kind, registration = split_name(name)
    _, noisy, _ = stacks(kind)
    config = TrainConfig(
        depth=depth,
        width=width,
        steps=steps,
        seed=seed,
        start_from=RANDOM,
        register=registration is not None,
    )
    torch.set_num_threads(1)
    thresholds = []
    if registration not in (None, "product"):
        # Interpolation smooths the neighbours' noise, so the shared-noise stop ends such runs early (it
        # did at step 100 with linear interpolation): here the threshold is kept to compare, not to stop.
        InterpolatingSampler.order = registration
        train_module.TripletSampler = InterpolatingSampler
        measured = train_module.shared_noise_threshold

        def shared_noise_threshold(*args):
            thresholds.append(measured(*args))

        train_module.shared_noise_threshold = shared_noise_threshold
    began = time.perf_counter()
    model = run_to_end(train(noisy, config, clock=time.process_time))
    metadata = model.metadata
    metadata["benchmark"] = {
        "run": name,
        "stack": kind,
        "interpolation_order": None if registration in (None, "product") else registration,
        "shared_noise_threshold": thresholds[0] if thresholds else None,
        "wall_s": time.perf_counter() - began,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    save_model(model, OUT / f"{name}-seed{seed}.pt", metadata)
    training = metadata["training"]
    print(f"{name} seed {seed}: {training['step']} steps, {training['elapsed_s']:.0f} CPU s")


def triplet(noisy: np.ndarray, z: int, register: bool, order):
    """Slice z's triplet as the run trained: unregistered, whole pixels, or interpolated of ``order``."""
    if not order:
        return slice_triplet(noisy, z, register)
    before, centre, after = slice_triplet(noisy, z)
    return tuple(
        image if image is centre else interpolated(image, neighbour_shift(centre, image), order)
        for image in (before, centre, after)
    )


def score(model, kind: str, register: bool, order=None) -> tuple[float, float]:
    clean, noisy, _ = stacks(kind)
    images = {}
    for z in SCORED:
        # Normalised by the statistics of the slices as read, as training and napari-nrrn's inference do.
        stats = triplet_stats(slice_triplet(noisy, z), z, len(noisy))
        slices = triplet(noisy, z, register, order)
        images[z] = denoise_slice(model, *slices, stats=stats, precision="float32")
    return (
        float(np.mean([psnr(images[z], clean[z], data_range=255) for z in SCORED])),
        float(np.mean([ssim(images[z], clean[z], data_range=255) for z in SCORED])),
    )


def score_all() -> list[dict]:
    torch.set_num_threads(1)
    rows = []
    for path in sorted(OUT.glob("*-seed*.pt")):
        model = load_model(path)
        record = model.metadata
        training = record["training"]
        kind = record["benchmark"]["stack"]
        order = record["benchmark"].get("interpolation_order")
        psnr_value, ssim_value = score(model, kind, training["register"], order)
        rows.append(
            {
                "run": record["benchmark"]["run"],
                "seed": training["config"]["seed"],
                "steps": training["step"],
                "depth": model.depth,
                "width": model.width,
                "cpu_s": training["elapsed_s"],
                "psnr": psnr_value,
                "ssim": ssim_value,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    for kind in STACKS:
        clean, noisy, _ = stacks(kind)
        value = float(np.mean([psnr(noisy[z], clean[z], data_range=255) for z in SCORED]))
        rows.append({"run": f"{kind} noisy input", "psnr": value})
    return rows


def main() -> int:
    global OUT
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = [f"{kind}{suffix}" for kind in STACKS for suffix in REGISTRATIONS]
    parser.add_argument("--run", choices=names, help="train this run and save its model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--depth", type=int, default=4, help="blocks K (default 4, the default model)")
    parser.add_argument("--width", type=int, default=32, help="feature maps C (default 32)")
    parser.add_argument(
        "--out", type=Path, default=None, help="where runs are saved and scored (default out/drift)"
    )
    parser.add_argument("--measure", action="store_true", help="reported steps against the true ones")
    parser.add_argument("--score", action="store_true", help="score every saved run")
    args = parser.parse_args()
    OUT = args.out or OUT
    print(cpu_description())
    if args.measure:
        print(json.dumps(measure(), indent=1))
    if args.run:
        run(args.run, args.seed, args.steps, args.depth, args.width)
    if args.score:
        rows = score_all()
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "scores.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
