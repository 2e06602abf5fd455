"""Training recipes compared at a fixed CPU budget: PSNR/SSIM against clean data on held-out slices.

Data: a crop of the FlyEM medulla stack (fairly clean, used as ground truth) with synthetic FIB-SEM-like
noise added, independent per slice: Poisson-like shot noise (gain 2 grey levels per count) plus Gaussian
read noise (sigma 10), about 19 grey levels in all. Each recipe trains with ``napari_nrrn.train`` on the
noisy crop for the same CPU time: one torch thread, budgeted in process time. The machine is shared, so
wall time is not comparable between runs, and with two threads on a busy machine the process time fills
with spin-waiting (measured: 4.7 s against 1.4 s per K=4, C=32 step). Then it denoises the held-out
validation slices (never training centres) with ``denoise_slice``; scores are means over those slices.
A Gaussian filter at its best sigma (chosen on the clean data, so an optimistic reference) is reported
alongside.

Cosine schedules need the step count up front: it comes from a short calibration run of the same config
(5 steps, the first discarded), and the budget still stops the run if the calibration was optimistic.
Other schedules stop when the CPU budget is spent.

    python benchmarks/bench_training.py --minutes 3 --out docs/bench_training.json
    python benchmarks/bench_training.py --minutes 3 --recipes ours published   # a subset
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import tifffile
import torch
from scipy.ndimage import gaussian_filter

from napari_nrrn.engine.normalise import slice_stats, unzscore, zscore
from napari_nrrn.engine.sampling import split_centres
from napari_nrrn.engine.train import TrainConfig, train
from napari_nrrn.measures.metrics import psnr, ssim

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fibsem_flyem_medulla_A_250cube.tif"
CROP_SLICES = 64
SHOT_GAIN = 2.0
READ_SIGMA = 10.0
NOISE_SEED = 1234
CALIBRATION_STEPS = 5

BASE = TrainConfig(depth=4, width=32, validation_every=10_000, checkpoint_every=10_000)


def recipes(train_centres: int) -> dict[str, TrainConfig]:
    # The published schedule halves the rate every 10 epochs; an epoch is one crop per training triplet.
    ten_epochs = max(1, round(10 * train_centres / 12))
    published = TrainConfig.published(step_every=ten_epochs)
    published_schedule = {k: getattr(published, k) for k in ("lr", "schedule", "step_every", "warmup_steps")}
    return {
        "ours": BASE,
        "ours-constant-lr": replace(BASE, schedule="constant"),
        "ours-c16": replace(BASE, width=16),
        "ours-neighbour-mean": replace(BASE, target="neighbour-mean"),
        "ours-blind-spot": replace(BASE, blind_spot=1.0),
        "published-lr-p64": replace(BASE, **published_schedule),
        # 240 px: the largest crop of a 250 px slice (the published 256 does not fit).
        "published": replace(BASE, **published_schedule, batch=published.batch, patch=240),
        "ours-p128-b2": replace(BASE, patch=128, batch=2),
    }


def noisy_crop() -> tuple[np.ndarray, np.ndarray]:
    clean = tifffile.imread(DATA)[:CROP_SLICES]
    rng = np.random.default_rng(NOISE_SEED)
    shot = rng.poisson(clean / SHOT_GAIN) * SHOT_GAIN
    noisy = np.clip(np.round(shot + rng.normal(0, READ_SIGMA, clean.shape)), 0, 255).astype(np.uint8)
    return clean, noisy


def denoise_slice(model, prev, centre, next_, device="cpu"):
    """Whole-slice inference: both branches averaged, de-normalised with the centre's stats."""
    stats = [slice_stats(s) for s in (prev, centre, next_)]
    p, c, n = (torch.from_numpy(zscore(s, st)) for s, st in zip((prev, centre, next_), stats, strict=True))
    with torch.no_grad():
        out = model(torch.stack([torch.stack([p, c]), torch.stack([n, c])])).mean(0)[0].numpy()
    return np.clip(np.round(unzscore(out, stats[1])), 0, 255).astype(np.uint8)


def score(images, clean, centres) -> dict:
    return {
        "psnr": float(np.mean([psnr(image, clean[z]) for image, z in zip(images, centres, strict=True)])),
        "ssim": float(np.mean([ssim(image, clean[z]) for image, z in zip(images, centres, strict=True)])),
    }


def gaussian_reference(noisy, clean, centres) -> dict:
    best = None
    for sigma in np.arange(0.6, 3.01, 0.2):
        images = [
            np.clip(np.round(gaussian_filter(noisy[z].astype(np.float64), sigma)), 0, 255) for z in centres
        ]
        result = {**score(images, clean, centres), "sigma": round(float(sigma), 2)}
        if best is None or result["psnr"] > best["psnr"]:
            best = result
    return best


def drive(stack, config, cpu_budget_s=None):
    """Run ``train`` to the end (or until ``cpu_budget_s`` of process time); return (model, steps, cpu_s)."""
    start = time.process_time()
    should_stop = (lambda: time.process_time() - start >= cpu_budget_s) if cpu_budget_s else None
    steps, generator = 0, train(stack, config, should_stop=should_stop)
    while True:
        try:
            steps = next(generator).done
        except StopIteration as stop:
            return stop.value, steps, time.process_time() - start


def run_recipe(name, config, noisy, clean, centres, cpu_budget_s) -> dict:
    torch.manual_seed(0)
    if config.schedule == "cosine":
        start = time.process_time()
        generator = train(noisy, replace(config, steps=CALIBRATION_STEPS))
        next(generator)
        first = time.process_time()
        for _ in generator:
            pass
        per_step = (time.process_time() - first) / (CALIBRATION_STEPS - 1)
        calibration_s = time.process_time() - start
        config = replace(config, steps=max(1, int(cpu_budget_s / per_step)))
        # The budget stays a hard cap in case the calibration was optimistic.
        model, steps, cpu_s = drive(noisy, config, cpu_budget_s)
    else:
        model, steps, cpu_s = drive(noisy, replace(config, steps=10**9), cpu_budget_s)
        calibration_s = 0.0
    images = [denoise_slice(model, noisy[z - 1], noisy[z], noisy[z + 1], device="cpu") for z in centres]
    return {
        "recipe": name,
        **score(images, clean, centres),
        "steps": steps,
        "cpu_s": round(cpu_s, 1),
        "calibration_cpu_s": round(calibration_s, 1),
        "config": asdict(config),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=3.0, help="CPU minutes (process time) per recipe")
    parser.add_argument("--recipes", nargs="*", help="names to run (default: all)")
    parser.add_argument("--out", type=Path, help="append one JSON line per result to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)

    clean, noisy = noisy_crop()
    split = split_centres(len(noisy), "adjacent", BASE.validation_fraction)
    centres = [int(z) for z in split.validation]
    noisy_score = score([noisy[z] for z in centres], clean, centres)
    results = [
        {"recipe": "noisy input", **noisy_score},
        {"recipe": "gaussian (best sigma)", **gaussian_reference(noisy, clean, centres)},
    ]
    for result in results:
        print(json.dumps(result), flush=True)
    for name, config in recipes(len(split.train)).items():
        if args.recipes and name not in args.recipes:
            continue
        result = run_recipe(name, config, noisy, clean, centres, args.minutes * 60)
        results.append(result)
        print(json.dumps({k: v for k, v in result.items() if k != "config"}), flush=True)
        if args.out:
            with args.out.open("a") as file:
                file.write(json.dumps(result) + "\n")
    print("\n| recipe | PSNR (dB) | SSIM | steps | CPU s |\n|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['recipe']} | {r['psnr']:.2f} | {r['ssim']:.3f} "
            f"| {r.get('steps', '')} | {r.get('cpu_s', '')} |"
        )


if __name__ == "__main__":
    main()
