"""Probe, not a recipe: where should the inputs and targets of training lie when adjacent slices share noise?

The engine pairs inputs 2s and targets s slices from the centre (z-distance s). This probe swaps in another
layout, inputs ``--inputs`` slices away and the target the mean of the slices ``--targets`` away, by
replacing ``sample_offsets`` and ``branch_inputs`` of ``napari_nrrn.engine.train`` for its own process
(the shared-noise stop is off, since its threshold assumes the engine's layout). Everything else is
``bench_depth_noise``'s protocol: the correlated crop, 500 steps on one thread, the default config.

    python benchmarks/probe_target_layout.py --inputs 1 --targets 3 --seed 0
    python benchmarks/probe_target_layout.py --clean-targets     # PSNR of the clean targets' signal

With noise correlated between adjacent slices, no target may lie next to an input, so inputs at 1 need
targets at 3 or more. ``--clean-targets`` shows what that costs before any training: the mean of the clean
slices b apart, scored against the clean centre.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_depth_noise as bench  # noqa: E402

from napari_nrrn.engine import train as engine  # noqa: E402
from napari_nrrn.engine.events import run_to_end  # noqa: E402
from napari_nrrn.measures.metrics import psnr  # noqa: E402


def clean_targets() -> None:
    clean = bench.noisy_crop("correlated")[0].astype(np.float64)
    for b in (1, 2, 3, 4):
        value = np.mean(
            [psnr((clean[z - b] + clean[z + b]) / 2, clean[z], data_range=255) for z in bench.SCORED]
        )
        print(f"mean of the clean slices {b} apart against the clean centre: {value:.2f} dB")


def probe(inputs: int, targets: list[int], seed: int) -> dict:
    offsets = sorted({0, inputs, -inputs, *targets, *(-t for t in targets)})
    where = {offset: index for index, offset in enumerate(offsets)}

    def branch_inputs(samples, mode, target="neighbours"):
        def at(offset):
            return samples[:, where[offset] : where[offset] + 1]

        mean = sum(at(t) + at(-t) for t in targets) / (2 * len(targets))
        return torch.cat([at(-inputs), at(0)], 1), torch.cat([at(inputs), at(0)], 1), mean, mean

    engine.sample_offsets = lambda config: tuple(offsets)
    engine.branch_inputs = branch_inputs
    engine.shared_noise_threshold = lambda *args: None
    clean, noisy = bench.noisy_crop("correlated")
    torch.set_num_threads(1)
    # From random weights, as the layouts were measured (the shipped start is measured in bench_depth_noise).
    config = engine.TrainConfig(steps=bench.STEPS, seed=seed, z_distance=1, start_from=engine.RANDOM)
    model = run_to_end(engine.train(noisy, config, clock=time.process_time))
    return {
        "inputs": inputs,
        "targets": targets,
        "seed": seed,
        "cpu_min": model.metadata["training"]["elapsed_s"] / 60,
        "psnr_ssim_by_depth": bench.nrrn_scores(model, noisy, clean),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inputs", type=int, default=1, help="slices between the centre and each input")
    parser.add_argument("--targets", default="3", help="comma-separated distances of the target slices")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clean-targets", action="store_true", help="score the clean targets and stop")
    args = parser.parse_args()
    if args.clean_targets:
        clean_targets()
        return 0
    print(json.dumps(probe(args.inputs, [int(t) for t in args.targets.split(",")], args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
