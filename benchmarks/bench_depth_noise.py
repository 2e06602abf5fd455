"""Every depth a denoiser, and training that survives z-correlated noise: PSNR/SSIM per depth, 500 steps.

Data: the first 64 slices of the FlyEM medulla FIB-SEM stack (250x250, 10 nm; fairly clean: the reference)
with synthetic FIB-SEM-like noise, signal-dependent (shot noise, gain 2 grey levels per count, plus read
noise, sigma 10: about 19 grey levels), Gaussian-approximated so that its correlation across z can be set:

- ``independent``: white noise, independent from slice to slice;
- ``correlated``: n_z = w_z + c (w_{z-1} + w_{z+1}) with white w, rescaled to unit variance, c = 0.219: the
  noise of adjacent slices correlates at 0.40, at distance 2 at 0.04 (as z-resampling or smoothing before
  binning would make it).

Each run trains NRRN K=4, C=32 with ``napari_nrrn.train`` on the noisy crop itself (no clean image; the
engine's defaults unless the run says otherwise) for 500 steps on one torch thread, and saves its model. 500
steps are what 10 minutes of process CPU time gave with two runs side by side on a 2-core AMD EPYC with
AVX-512 BF16 (bfloat16 training); on one with AVX2 only (float32) they take about 25 CPU-minutes. A fixed
step count, rather than a CPU-time budget, keeps the runs comparable when other work shares
the machine (seen: a third process cut the steps of a 10 CPU-minute run from ~500 to ~220); the CPU time each
run took is recorded and shown.

Training starts, by default, from the shipped model; that model trained on all 250 medulla slices (other
noise, no clean image), this crop among them. So runs that start from it here start instead from its stand-in,
the shipped recipe trained on slices 64-249 only (the crop unseen), made by (in benchmarks/out/):

    python ../bench_training.py --write-training-stack medulla_noisy.tif
    python -c "import tifffile as t; t.imwrite('m64.tif', t.imread('medulla_noisy.tif')[64:])"
    OMP_NUM_THREADS=2 napari-nrrn train m64.tif -o shipped-recipe-slices-64-249.pt --depth 4 --width 32 \
        --patch 64 --batch 8 --steps 900 --lr 0.001 --target neighbour-mean \
        --supervision every-depth --seed 0 --checkpoint-every 200 --start-from random

Scoring cuts every model to each depth k (``model.cut(k)``), denoises slices 16, 32 and 48 with adjacent
neighbours in float32, and scores them against the clean slices. Gaussian and BM3D run at
their best parameters from a grid, chosen with the clean data (oracle-tuned: no user has that).

    python benchmarks/bench_depth_noise.py --run independent-final --seed 0      # one run, 500 steps
    python benchmarks/bench_depth_noise.py --score --write-docs                  # the tables, from saved runs

Runs and their models go to benchmarks/out/ (not committed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import tifffile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _docs import cpu_description, replace_section  # noqa: E402

from napari_nrrn.engine.events import run_to_end  # noqa: E402
from napari_nrrn.engine.inference import denoise_slice  # noqa: E402
from napari_nrrn.engine.train import RANDOM, SHIPPED, TrainConfig, train  # noqa: E402
from napari_nrrn.measures import baselines  # noqa: E402
from napari_nrrn.measures.metrics import psnr, ssim  # noqa: E402
from napari_nrrn.model.checkpoint import load_model, save_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MEDULLA = REPO.parent / "shared" / "data" / "fibsem_flyem_medulla_A_250cube.tif"
OUT = Path(__file__).resolve().parent / "out"
CROP_SLICES = 64
SCORED = (16, 32, 48)
SHOT_GAIN = 2.0
READ_SIGMA = 10.0
NOISE_SEED = 1234
Z_KERNEL = 0.219  # 2c / (1 + 2c^2) = 0.40 at distance 1, c^2 / (1 + 2c^2) = 0.04 at distance 2
STEPS = 500
SHIPPED_STAND_IN = OUT / "shipped-recipe-slices-64-249.pt"
GRIDS = {
    "gaussian": [{"sigma": s} for s in (0.6, 0.8, 1.0, 1.25, 1.5, 2.0)],
    "bm3d": [{"sigma": s} for s in (10, 14, 18, 22, 26, 30)],
}
# name -> (noise, TrainConfig overrides). Runs that predate a config field leave it at today's default.
RUNS = {
    "independent-final": ("independent", {"supervision": "final", "start_from": RANDOM}),
    "independent-every-depth": ("independent", {"supervision": "every-depth", "start_from": RANDOM}),
    "independent-default": ("independent", {}),
    "correlated-distance-1-final": (
        "correlated",
        {"z_distance": 1, "supervision": "final", "start_from": RANDOM},
    ),
    "correlated-distance-1": ("correlated", {"z_distance": 1, "start_from": RANDOM}),
    "correlated-default": ("correlated", {}),
    "correlated-random-start": ("correlated", {"start_from": RANDOM}),
    "correlated-blind-spot": ("correlated", {"blind_spot": 1.0, "start_from": RANDOM}),
}
SECTION_DEPTH = "## Every depth a denoiser"
SECTION_NOISE = "## Training on z-correlated noise"


def noisy_crop(noise: str) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) uint8 crops; the same white noise underlies both noise kinds."""
    clean = tifffile.imread(MEDULLA)[:CROP_SLICES]
    rng = np.random.default_rng(NOISE_SEED)
    white = rng.standard_normal((CROP_SLICES + 2, *clean.shape[1:]))
    if noise == "correlated":
        field = (white[1:-1] + Z_KERNEL * (white[:-2] + white[2:])) / np.sqrt(1 + 2 * Z_KERNEL**2)
    elif noise == "independent":
        field = white[1:-1]
    else:
        raise ValueError(f"unknown noise {noise!r}")
    sigma = np.sqrt(SHOT_GAIN * clean.astype(np.float64) + READ_SIGMA**2)
    noisy = np.clip(np.round(clean + sigma * field), 0, 255).astype(np.uint8)
    return clean, noisy


def model_path(name: str, seed: int) -> Path:
    return OUT / f"{name}-seed{seed}.pt"


def run(name: str, seed: int) -> None:
    noise, overrides = RUNS[name]
    known = TrainConfig.__dataclass_fields__
    config = TrainConfig(steps=STEPS, seed=seed, **{k: v for k, v in overrides.items() if k in known})
    if config.start_from == SHIPPED:
        if not SHIPPED_STAND_IN.is_file():
            raise SystemExit(
                f"{SHIPPED_STAND_IN} is missing: make it with the commands in this file's docstring"
            )
        config = replace(config, start_from=str(SHIPPED_STAND_IN))
    _, noisy = noisy_crop(noise)
    torch.set_num_threads(1)
    began = time.perf_counter()
    model = run_to_end(train(noisy, config, clock=time.process_time))
    metadata = model.metadata
    metadata["benchmark"] = {"run": name, "noise": noise, "wall_s": time.perf_counter() - began}
    OUT.mkdir(exist_ok=True)
    save_model(model, model_path(name, seed), metadata)
    print(f"{name} seed {seed}: {metadata['training']['step']} steps, saved {model_path(name, seed)}")


def scores(images: dict[int, np.ndarray], clean: np.ndarray) -> tuple[float, float]:
    return (
        float(np.mean([psnr(images[z], clean[z], data_range=255) for z in SCORED])),
        float(np.mean([ssim(images[z], clean[z], data_range=255) for z in SCORED])),
    )


def nrrn_scores(model, noisy, clean, distance: int = 1) -> list[tuple[float, float]]:
    """(PSNR, SSIM) of cut(1) .. cut(K), fed neighbours ``distance`` slices away."""
    result = []
    for depth in range(1, model.depth + 1):
        cut = model.cut(depth)
        images = {
            z: denoise_slice(cut, noisy[z - distance], noisy[z], noisy[z + distance], precision="float32")
            for z in SCORED
        }
        result.append(scores(images, clean))
    return result


def best_baselines(noisy, clean) -> dict[str, tuple[float, float, dict]]:
    best = {}
    for name, grid in GRIDS.items():
        if name == "bm3d" and not baselines.bm3d_available():
            print("BM3D skipped: pip install bm3d")
            continue
        for params in grid:
            images = {z: baselines.BASELINES[name](noisy[z], **params) for z in SCORED}
            psnr_value, ssim_value = scores(images, clean)
            if name not in best or psnr_value > best[name][0]:
                best[name] = (psnr_value, ssim_value, params)
    return best


def score_all() -> dict:
    torch.set_num_threads(1)
    table = {"noise": {}, "runs": []}
    for noise in ("independent", "correlated"):
        clean, noisy = noisy_crop(noise)
        table["noise"][noise] = {
            "input": scores({z: noisy[z] for z in SCORED}, clean),
            **best_baselines(noisy, clean),
        }
        if SHIPPED_STAND_IN.is_file():
            table["noise"][noise]["start"] = nrrn_scores(load_model(SHIPPED_STAND_IN), noisy, clean)[-1]
    for path in sorted(OUT.glob("*-seed*.pt")):
        model = load_model(path)
        record = model.metadata
        noise = record["benchmark"]["noise"]
        clean, noisy = noisy_crop(noise)
        training = record["training"]
        entry = {
            "run": record["benchmark"]["run"],
            "seed": training["config"]["seed"],
            "noise": noise,
            "steps": training["step"],
            "cpu_s": training["elapsed_s"],
            "config": training["config"],
            "z_distance": training.get("z_distance", training["config"].get("z_distance") or 1),
            "every_depth": bool(model.config().get("every_depth", False)),
            "val_loss_by_depth": training.get("val_loss_by_depth"),
            "by_depth": nrrn_scores(model, noisy, clean),
        }
        if entry["z_distance"] > 1:
            entry["by_depth_fed_at_distance"] = nrrn_scores(model, noisy, clean, entry["z_distance"])
        table["runs"].append(entry)
        print(json.dumps({k: v for k, v in entry.items() if k != "config"}), flush=True)
    return table


def depth_costs() -> list[float] | None:
    try:
        from napari_nrrn.engine.depth import measure_depth_costs
    except ImportError:
        return None
    from napari_nrrn.model.nrrn import NRRN

    return measure_depth_costs(NRRN(depth=4, width=32, every_depth=True), device="cpu", size=512, repeats=3)


def _row(label: str, values) -> str:
    return f"| {label} | " + " | ".join(values) + " |"


def _write_depth_section(independent: dict, runs: list[dict], costs, cpu: str, command: str) -> None:
    depth = max((len(r["by_depth"]) for r in runs), default=4)
    lines = [_row("training (seed)", [f"depth {k}" for k in range(1, depth + 1)] + ["CPU min"])]
    lines.append("|" + "---|" * (depth + 2))
    for name in sorted({r["run"] for r in runs}):
        seeds = sorted((r for r in runs if r["run"] == name), key=lambda r: r["seed"])
        for r in seeds:
            cells = [f"{p:.2f} / {s:.3f}" for p, s in r["by_depth"]]
            lines.append(_row(f"{name} ({r['seed']})", cells + [f"{r['cpu_s'] / 60:.1f}"]))
        if len(seeds) > 1:
            means = np.mean([r["by_depth"] for r in seeds], axis=0)
            cells = [f"**{p:.2f}** / {s:.3f}" for p, s in means]
            lines.append(_row(f"{name}, mean of {len(seeds)} seeds", cells + [""]))
    for name in ("bm3d", "gaussian"):
        if name in independent:
            p, s, params = independent[name]
            label = f"{name} (oracle, {', '.join(f'{k}={v}' for k, v in params.items())})"
            lines.append(_row(label, [f"{p:.2f} / {s:.3f}"] + [""] * depth))
    p, s = independent["input"]
    lines.append(_row("noisy input", [f"{p:.2f} / {s:.3f}"] + [""] * depth))
    body = (
        f"PSNR (dB) / SSIM of each depth's cut (`model.cut(k)`), after {STEPS} steps of training on one "
        f"thread of an {cpu} (the CPU minutes of each run are given), on FlyEM medulla with independent "
        "synthetic noise (about 19 grey levels), "
        "slices 16, 32, 48. `final`: the loss on the final output only (the published form; its cuts stop "
        "before the tail). `every-depth`: the loss averaged over every depth's output, each through the "
        "shared tail (the default supervision). `default`: all of today's defaults, which start from the "
        "shipped model's stand-in (see the docstring); the others start from random weights.\n\n"
        + "\n".join(lines)
        + "\n"
    )
    if costs:
        body += (
            "\nCost of each depth on this CPU, one thread, float32/bfloat16 as `auto` picks, both branches, "
            "512x512 tiles (`napari_nrrn.engine.depth.measure_depth_costs`): "
            + ", ".join(f"depth {k}: {c / 1000:.2f} s/MP" for k, c in enumerate(costs, 1))
            + ".\n"
        )
    body += f"\nCommand: {command}.\n"
    replace_section(REPO / "docs" / "benchmarks.md", SECTION_DEPTH, body)


def write_docs(table: dict, costs: list[float] | None) -> None:
    cpu = cpu_description()
    command = (
        "`python benchmarks/bench_depth_noise.py --run NAME --seed S` for each run, then "
        "`--score --write-docs`"
    )
    runs = [r for r in table["runs"] if r["noise"] == "independent"]
    if runs:
        _write_depth_section(table["noise"]["independent"], runs, costs, cpu, command)
    else:
        print(f"no independent-noise runs saved: {SECTION_DEPTH!r} left as it is")

    correlated = table["noise"]["correlated"]
    lines = ["| method | z-distance | PSNR (dB) | SSIM | CPU min |", "|---|---|---|---|---|"]
    correlated_runs = [r for r in table["runs"] if r["noise"] == "correlated"]
    for name in sorted({r["run"] for r in correlated_runs}):
        seeds = sorted((r for r in correlated_runs if r["run"] == name), key=lambda r: r["seed"])
        for r in seeds:
            p, s = r["by_depth"][-1]
            lines.append(
                f"| NRRN, {name} (seed {r['seed']}) | {r['z_distance']} | {p:.2f} | {s:.3f} "
                f"| {r['cpu_s'] / 60:.1f} |"
            )
            if "by_depth_fed_at_distance" in r:
                p, s = r["by_depth_fed_at_distance"][-1]
                lines.append(
                    f"| same model, fed neighbours {r['z_distance']} apart at inference | {r['z_distance']} "
                    f"| {p:.2f} | {s:.3f} | |"
                )
        if len(seeds) > 1:
            p, s = np.mean([r["by_depth"][-1] for r in seeds], axis=0)
            lines.append(f"| NRRN, {name}, mean of {len(seeds)} seeds | | **{p:.2f}** | {s:.3f} | |")
    if "start" in correlated:
        p, s = correlated["start"]
        lines.append(f"| the shipped model's stand-in, no training | 1 | {p:.2f} | {s:.3f} | |")
    for name in ("bm3d", "gaussian"):
        if name in correlated:
            p, s, params = correlated[name]
            lines.append(f"| {name} (oracle, {params}) | | {p:.2f} | {s:.3f} | |")
    p, s = correlated["input"]
    lines.append(f"| noisy input | | {p:.2f} | {s:.3f} | |")
    body = (
        "FlyEM medulla with synthetic noise whose adjacent-slice correlation is 0.40 (0.04 at distance 2), "
        f"about 19 grey levels; {STEPS} steps of training each (one thread of an "
        f"{cpu}); full depth, fed adjacent neighbours unless the row says otherwise.\n\n"
        + "\n".join(lines)
        + f"\n\nCommand: {command}.\n"
    )
    replace_section(REPO / "docs" / "benchmarks.md", SECTION_NOISE, body)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", choices=sorted(RUNS), help="train this run and save its model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score", action="store_true", help="score every saved run against the baselines")
    parser.add_argument("--write-docs", action="store_true", help="with --score: write docs/benchmarks.md")
    args = parser.parse_args()
    if args.run:
        run(args.run, args.seed)
    if args.score:
        table = score_all()
        (OUT / "scores.json").write_text(json.dumps(table, indent=1, default=str))
        if args.write_docs:
            write_docs(table, depth_costs())
    return 0


if __name__ == "__main__":
    sys.exit(main())
