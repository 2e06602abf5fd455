"""Training recipes compared at a fixed CPU budget: PSNR/SSIM against clean data on held-out slices.

Data: a crop of the FlyEM medulla stack (fairly clean, used as ground truth) with synthetic FIB-SEM-like
noise added, independent per slice: Poisson-like shot noise (gain 2 grey levels per count) plus Gaussian
read noise (sigma 10), about 19 grey levels in all. Each recipe trains with ``napari_nrrn.train`` on the
noisy crop for the same CPU time: one torch thread, budgeted in process time. The machine is shared, so
wall time is not comparable between runs, and with two threads on a busy machine the process time fills
with spin-waiting (measured: 4.7 s against 1.4 s per K=4, C=32 step). Then it denoises the held-out
validation slices (never training centres) with ``denoise_slice`` in float32; scores are means over those
slices. A Gaussian filter at its best sigma (chosen on the clean data, so an optimistic reference) is
reported alongside.

Budgets are exact: ``train`` runs with ``seconds`` = the budget on ``clock=time.process_time``, so the
cosine schedule decays over the CPU budget, and the published step schedule stops when it is spent.

    python benchmarks/bench_training.py --minutes 3 --out docs/bench_training.json
    python benchmarks/bench_training.py --minutes 3 --recipes ours published   # a subset
    python benchmarks/bench_training.py --write-training-stack medulla_noisy.tif   # the shipped model's data
    python benchmarks/bench_training.py --score-model napari_nrrn/data/nrrn_default.pt
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

from napari_nrrn.engine.inference import denoise_slice
from napari_nrrn.engine.sampling import split_centres
from napari_nrrn.engine.train import RANDOM, TrainConfig, train
from napari_nrrn.measures.metrics import psnr, ssim

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fibsem_flyem_medulla_A_250cube.tif"
CROP_SLICES = 64
SHOT_GAIN = 2.0
READ_SIGMA = 10.0
NOISE_SEED = 1234

GAUSSIAN_SIGMAS = [round(float(sigma), 2) for sigma in np.arange(0.6, 3.01, 0.2)]
BM3D_SIGMAS = (10, 14, 18, 22, 26)

# The engine's defaults, without periodic validation or checkpoints (they would cost CPU time), from random
# weights: the shipped model, the default start, was trained on this stack.
DEFAULT = TrainConfig(validation_every=10**9, checkpoint_every=10**9, start_from=RANDOM)
# The measured alternatives start from the published target in float32 at our schedule and patches.
COSINE = replace(DEFAULT, target="neighbours", amp=False)


def recipes(train_centres: int) -> dict[str, TrainConfig]:
    # The published schedule halves the rate every 10 epochs; an epoch is one crop per training triplet.
    ten_epochs = max(1, round(10 * train_centres / 12))
    published = TrainConfig.published(step_every=ten_epochs)
    published_schedule = {k: getattr(published, k) for k in ("lr", "schedule", "step_every", "warmup_steps")}
    return {
        # 240 px: the largest crop of a 250 px slice (the published 256 does not fit).
        "published": replace(COSINE, **published_schedule, batch=published.batch, patch=240),
        "published-schedule-p64": replace(COSINE, **published_schedule),
        "cosine": COSINE,
        "constant": replace(COSINE, schedule="constant"),
        "c16": replace(COSINE, width=16),
        "p128-b2": replace(COSINE, patch=128, batch=2),
        "bf16": replace(COSINE, amp=True),
        "blind-spot": replace(COSINE, blind_spot=1.0),
        "neighbour-mean": replace(COSINE, target="neighbour-mean"),
        "default": DEFAULT,
        "default-blind-spot": replace(DEFAULT, blind_spot=1.0),
    }


def noisy_crop(slices=slice(0, CROP_SLICES)) -> tuple[np.ndarray, np.ndarray]:
    clean = tifffile.imread(DATA)[slices]
    rng = np.random.default_rng(NOISE_SEED)
    shot = rng.poisson(clean / SHOT_GAIN) * SHOT_GAIN
    noisy = np.clip(np.round(shot + rng.normal(0, READ_SIGMA, clean.shape)), 0, 255).astype(np.uint8)
    return clean, noisy


def write_training_stack(path: Path) -> None:
    """The whole medulla stack with synthetic noise of a different level on each slice (shot gain 0.5 to 3,
    read sigma 4 to 16: about 9 to 25 grey levels): the data the shipped model trains on."""
    clean = tifffile.imread(DATA)
    rng = np.random.default_rng(NOISE_SEED)
    noisy = np.empty_like(clean)
    for z, image in enumerate(clean):
        gain, read_sigma = rng.uniform(0.5, 3.0), rng.uniform(4.0, 16.0)
        shot = rng.poisson(image / gain) * gain
        noisy[z] = np.clip(np.round(shot + rng.normal(0, read_sigma, image.shape)), 0, 255)
    tifffile.imwrite(
        path, noisy, imagej=True, resolution=(0.1, 0.1), metadata={"axes": "ZYX", "spacing": 10, "unit": "nm"}
    )


def score_model(path: Path) -> list[dict]:
    """A trained model, cut to every depth, against the Gaussian and BM3D references (their best sigma,
    chosen with the clean data) on medulla slices the shipped model never saw.

    The shipped model trains on all 250 slices with other noise; with its defaults (neighbour-mean target,
    10 % validation) no training sample touches slices 110-138, so centres 121-126 (the bench's noise
    model, with neighbours 120-127) are held out from it.
    """
    from napari_nrrn.measures import baselines
    from napari_nrrn.model.checkpoint import load_model

    clean, noisy = noisy_crop(slice(120, 128))
    centres = list(range(1, 7))
    model = load_model(path)
    triplets = [(noisy[z - 1], noisy[z], noisy[z + 1]) for z in centres]
    results = [
        {"recipe": "noisy input (medulla 121-126)", **score([noisy[z] for z in centres], clean, centres)},
        {"recipe": "gaussian (best sigma)", **best_sigma(gaussian, GAUSSIAN_SIGMAS, noisy, clean, centres)},
    ]
    if baselines.bm3d_available():
        bm3d = best_sigma(baselines.BASELINES["bm3d"], BM3D_SIGMAS, noisy, clean, centres)
        results.append({"recipe": "bm3d (best sigma)", **bm3d})
    for depth in range(1, model.depth + 1):
        cut = model if depth == model.depth else model.cut(depth)
        images = [denoise_slice(cut, *triplet, device="cpu", precision="float32") for triplet in triplets]
        results.append({"recipe": f"{path}, depth {depth}", **score(images, clean, centres)})
    return results


def score(images, clean, centres) -> dict:
    return {
        "psnr": float(np.mean([psnr(image, clean[z]) for image, z in zip(images, centres, strict=True)])),
        "ssim": float(np.mean([ssim(image, clean[z]) for image, z in zip(images, centres, strict=True)])),
    }


def gaussian(image, sigma):
    return np.clip(np.round(gaussian_filter(image.astype(np.float64), sigma)), 0, 255)


def best_sigma(denoise, sigmas, noisy, clean, centres) -> dict:
    """The score of ``denoise(image, sigma=...)`` at its best sigma, chosen with the clean data."""
    best = None
    for sigma in sigmas:
        images = [denoise(noisy[z], sigma=sigma) for z in centres]
        result = {**score(images, clean, centres), "sigma": sigma}
        if best is None or result["psnr"] > best["psnr"]:
            best = result
    return best


def run_recipe(name, config, noisy, clean, centres, cpu_budget_s) -> dict:
    config = replace(config, steps=10**9, seconds=cpu_budget_s)
    generator = train(noisy, config, clock=time.process_time)
    while True:
        try:
            steps = next(generator).done
        except StopIteration as stop:
            model = stop.value
            break
    triplets = [(noisy[z - 1], noisy[z], noisy[z + 1]) for z in centres]
    images = [denoise_slice(model, *triplet, device="cpu", precision="float32") for triplet in triplets]
    return {
        "recipe": name,
        **score(images, clean, centres),
        "steps": steps,
        "cpu_s": round(model.metadata["training"]["elapsed_s"], 1),
        "config": asdict(config),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=3.0, help="CPU minutes (process time) per recipe")
    parser.add_argument("--recipes", nargs="*", help="names to run (default: all)")
    parser.add_argument("--out", type=Path, help="append one JSON line per result to this file")
    parser.add_argument(
        "--write-training-stack",
        type=Path,
        metavar="TIF",
        help="write the shipped model's training data and exit",
    )
    parser.add_argument("--score-model", type=Path, metavar="PT", help="score a trained model and exit")
    args = parser.parse_args()
    if args.write_training_stack:
        write_training_stack(args.write_training_stack)
        return
    if args.score_model:
        for result in score_model(args.score_model):
            print(json.dumps(result))
        return
    torch.set_num_threads(1)

    clean, noisy = noisy_crop()
    # Slices 29-34 and their neighbours: held out from every recipe (the neighbour-mean block is wider).
    split = split_centres(len(noisy), "adjacent", DEFAULT.validation_fraction)
    centres = [int(z) for z in split.validation]
    noisy_score = score([noisy[z] for z in centres], clean, centres)
    results = [
        {"recipe": "noisy input", **noisy_score},
        {"recipe": "gaussian (best sigma)", **best_sigma(gaussian, GAUSSIAN_SIGMAS, noisy, clean, centres)},
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
