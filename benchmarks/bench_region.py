"""Viewport preview speed: one 1000x1000 region of a 6144x4096 slice at every depth, as the dock previews it.

The dock's "Preview what is on screen" calls ``denoise_slice(..., region=..., stats=...)`` with the slice
statistics cached from the first preview, so a pan costs the region's tiles only. This times exactly that
call, for each cut of the model, on the tiles of the whole-slice plan that meet a centred 1000x1000 region,
after one untimed warm-up call; the table gives the fastest of ``--repeats`` runs and is written to
docs/benchmarks.md under "## Viewport preview".

    python benchmarks/bench_region.py [--threads 2] [--repeats 3] [--model MODEL.pt]

The slice triplet is the real gala FIB-SEM crop tiled to 6144x4096 (the size of our users' slices).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _docs import cpu_description, replace_section  # noqa: E402

from napari_nrrn.engine.device import select_device  # noqa: E402
from napari_nrrn.engine.inference import denoise_slice  # noqa: E402
from napari_nrrn.engine.normalise import slice_stats  # noqa: E402
from napari_nrrn.model.checkpoint import default_model_path, load_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GALA = REPO.parent / "shared" / "data" / "fibsem_flyem_gala_test_50x100x200.tif"
SLICE_SHAPE = (4096, 6144)
REGION = 1000
SECTION = "## Viewport preview"


def slice_triplet() -> list[np.ndarray]:
    crop = tifffile.imread(GALA)[20:23]
    reps = (-(-SLICE_SHAPE[0] // crop.shape[1]), -(-SLICE_SHAPE[1] // crop.shape[2]))
    return [np.ascontiguousarray(np.tile(image, reps)[: SLICE_SHAPE[0], : SLICE_SHAPE[1]]) for image in crop]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--write-docs", action="store_true", help="write docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    device = select_device(None)
    prev, centre, next_ = slice_triplet()
    y0, x0 = (SLICE_SHAPE[0] - REGION) // 2, (SLICE_SHAPE[1] - REGION) // 2
    region = (y0, y0 + REGION, x0, x0 + REGION)
    stats = [slice_stats(image) for image in (prev, centre, next_)]
    rows = []
    for depth in range(1, model.depth + 1):
        cut = model if depth == model.depth else model.cut(depth)
        times = []
        for repeat in range(args.repeats + 1):
            began = time.perf_counter()
            denoise_slice(cut, prev, centre, next_, region=region, stats=stats)
            if repeat:  # the first call warms up
                times.append(time.perf_counter() - began)
        rows.append((depth, min(times)))
        print(f"depth {depth}: {min(times):.2f} s", flush=True)
    if args.write_docs:
        table = "\n".join(
            ["| depth | 1000x1000 region (s) |", "|---|---|"] + [f"| {d} | {t:.2f} |" for d, t in rows]
        )
        body = (
            f"One {REGION}x{REGION} region in the middle of a {SLICE_SHAPE[1]}x{SLICE_SHAPE[0]} slice, "
            "with the slice statistics cached (what a pan of the dock's viewport preview costs), for each "
            f"cut of the shipped model, on {device} ({cpu_description()}, {args.threads} torch threads), "
            f"precision auto, fastest of {args.repeats} runs. The tiles of the whole-slice plan that "
            "meet the region are computed, so the output equals that crop of the whole slice's.\n\n"
            f"{table}\n\nCommand: `python benchmarks/bench_region.py --threads {args.threads} "
            "--write-docs`.\n"
        )
        replace_section(REPO / "docs" / "benchmarks.md", SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
