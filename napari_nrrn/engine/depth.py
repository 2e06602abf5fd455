"""Choosing a depth: what each cut of a model costs on a device, and the smallest depth worth using.

The validation loss estimates the mean squared error to the clean signal up to a constant (the target's
noise variance), so the depth whose loss is lowest is the best denoiser, and depths whose losses are close
to it are nearly as good at a fraction of the block work.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import torch

from napari_nrrn.engine.device import select_device
from napari_nrrn.engine.fused import FusedNRRN
from napari_nrrn.engine.inference import inference_dtype
from napari_nrrn.model.nrrn import NRRN

# Relative to the best validation loss. The loss is MSE + C, C the target's noise variance (z-score units),
# and on FIB-SEM C is about 5x the MSE of a good denoiser (noise variance ~0.2, denoised MSE ~0.04 at
# 30 dB): 2% of the loss is then about 12% of the MSE, 10 * log10(1.12) = 0.5 dB. Noisier data (larger C)
# allows more dB, cleaner data less.
DEPTH_TOLERANCE = 0.02
# Between models and depths, in PSNR ("fastest within 0.3 dB of the best"). For scale: the shipped model's
# depths 1 to 4 span 0.21 dB on held-out medulla (napari_nrrn/data/nrrn_default.md).
QUALITY_TOLERANCE_DB = 0.3


class Option(NamedTuple):
    """One model at one depth: its cost (any unit, e.g. seconds per megapixel on this device) and quality."""

    name: str
    depth: int
    cost: float
    psnr: float


def measure_depth_costs(
    model: NRRN,
    device: str | torch.device | None = None,
    precision: str = "auto",
    size: int = 256,
    repeats: int = 1,
) -> list[float]:
    """Milliseconds per megapixel of output of ``model.cut(k)`` for k = 1..K: the fused forward pass with
    both branches on one ``size`` x ``size`` tile on ``device`` (default: the best available), after one
    warm-up pass, the fastest of ``repeats`` runs."""
    if size < 1 or repeats < 1:
        raise ValueError(f"size = {size} and repeats = {repeats} must be at least 1")
    device = select_device(device)
    dtype = inference_dtype(device, precision)
    generator = torch.Generator().manual_seed(0)
    prev, centre, next_ = torch.randn(3, 1, 1, size, size, generator=generator).to(device)
    costs = []
    for depth in range(1, model.depth + 1):
        fused = FusedNRRN(model.cut(depth), device, dtype)
        fused(prev, centre, next_)
        times = []
        for _ in range(repeats):
            _synchronise(device)
            began = time.perf_counter()
            fused(prev, centre, next_)
            _synchronise(device)
            times.append(time.perf_counter() - began)
        costs.append(min(times) * 1e3 / (size * size / 1e6))
    return costs


def flop_per_pixel(depth: int, width: int) -> int:
    """Useful FLOP per output pixel of an NRRN of ``width`` cut at ``depth``, both branches: the stem
    (1 -> C), 7 C -> C convs per block and the tail, 3x3 each, a multiply-add counted as 2 (DESIGN.md
    section 1: about 1.07 MFLOP at K=4, C=32)."""
    per_branch = 18 * width + depth * 126 * width**2 + 18 * width**2
    return 2 * per_branch


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def recommend_depth(val_losses, tolerance: float = DEPTH_TOLERANCE) -> tuple[int, str]:
    """The smallest depth (1-based) whose validation loss is within ``tolerance`` (relative) of the best
    depth's, and why, in one sentence."""
    losses = [float(loss) for loss in val_losses]
    if not losses:
        raise ValueError("no validation losses to choose a depth from: train with validation to record them")
    bad = [loss for loss in losses if not math.isfinite(loss)]
    if bad:
        raise ValueError(f"validation losses must be finite numbers, got {bad[0]} in {losses}")
    if tolerance < 0:
        raise ValueError(f"tolerance = {tolerance} must be 0 or more")
    best = min(range(len(losses)), key=losses.__getitem__)
    limit = losses[best] + tolerance * abs(losses[best])
    chosen = next(k for k, loss in enumerate(losses) if loss <= limit)
    depth, full, within = chosen + 1, len(losses), f"{tolerance * 100:g}%"
    if chosen == best:
        reason = (
            f"depth {depth} of {full} has the lowest validation loss ({losses[best]:.4g}) and no smaller "
            f"depth comes within {within} of it"
        )
    else:
        reason = (
            f"depth {depth} of {full} comes within {within} of the best validation loss "
            f"({losses[chosen]:.4g} against {losses[best]:.4g} at depth {best + 1}) for {depth}/{full} "
            "of the block work"
        )
    return depth, reason + "."


def fastest_within(options, tolerance_db: float = QUALITY_TOLERANCE_DB) -> Option:
    """The cheapest of ``options`` whose PSNR is within ``tolerance_db`` of the best one's; of equally cheap
    ones, the better."""
    options = [Option(*option) for option in options]
    if not options:
        raise ValueError("no models or depths to choose from")
    bad = [o for o in options if not (math.isfinite(o.cost) and math.isfinite(o.psnr)) or o.cost < 0]
    if bad:
        raise ValueError(f"cost and PSNR must be finite and the cost 0 or more, got {bad[0]}")
    if not tolerance_db >= 0:
        raise ValueError(f"tolerance_db = {tolerance_db} must be 0 or more")
    best = max(o.psnr for o in options)
    return min((o for o in options if o.psnr >= best - tolerance_db), key=lambda o: (o.cost, -o.psnr))
