"""Viewport preview speed: a 1000x1000 view of a 6144x4096 slice at depth 2 of the shipped model, as the dock
previews it, and how well a stack's stated cost matches its run.

The dock previews with one ``InferenceSession`` (the fast network built once), the slice statistics cached
from the first preview and a tile cache; tiles come centre first. This times, after one untimed warm-up
region:

- the first tile on screen, the whole viewport, and a revisit (every tile from the cache);
- the region's cost against a standalone 1000x1000 image (the region is tiled for itself, so it should cost
  about the same: the goal is at most 1.25x), fastest of ``--repeats``;
- the stated estimate (``estimate_stack``) against the actual run of a small stack written to TIFF the way
  ``napari-nrrn denoise`` writes it (``--stack 20x4096x6144`` for the issue's check).

It prints a table ready for docs/benchmarks.md (section "## Viewport preview") and writes it there with
``--write-docs``.

    python benchmarks/bench_region.py [--threads 2] [--repeats 3] [--depth 2] [--stack 4x1024x1024]

The slice triplet is the real gala FIB-SEM crop tiled to 6144x4096 (the size of our users' slices).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import tifffile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _docs import cpu_description, replace_section  # noqa: E402

from napari_nrrn.engine.estimate import estimate_stack  # noqa: E402
from napari_nrrn.engine.events import run_to_end  # noqa: E402
from napari_nrrn.engine.inference import denoise_stack  # noqa: E402
from napari_nrrn.engine.normalise import slice_stats  # noqa: E402
from napari_nrrn.engine.session import InferenceSession  # noqa: E402
from napari_nrrn.engine.tile_cache import TileCache  # noqa: E402
from napari_nrrn.io.writers import iter_write_stack  # noqa: E402
from napari_nrrn.model.checkpoint import default_model_path, load_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GALA = REPO.parent / "shared" / "data" / "fibsem_flyem_gala_test_50x100x200.tif"
SLICE_SHAPE = (4096, 6144)
REGION = 1000
SECTION = "## Viewport preview"


def tiled(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The gala crop's slices tiled to ``shape``."""
    reps = (1, -(-shape[0] // images.shape[1]), -(-shape[1] // images.shape[2]))
    return np.ascontiguousarray(np.tile(images, reps)[:, : shape[0], : shape[1]])


def viewport(model, triplet, stats, region, repeats: int) -> dict[str, float]:
    """First tile, whole viewport and revisit of ``region`` in one cached session, after a warm-up."""
    session = InferenceSession(model, "cpu", cache=TileCache())
    y0, x0 = region[0] + REGION, region[2] + REGION  # the warm-up region: beside the measured one
    run_to_end(session.iter_view(triplet, stats, lambda: (y0, y0 + 400, x0, x0 + 400)))
    began = time.perf_counter()
    events = session.iter_view(triplet, stats, lambda: region, data_key="slice")
    next(events)
    first = time.perf_counter() - began
    tiles = 1 + sum(1 for _ in events)
    whole = time.perf_counter() - began
    revisits = []
    for _ in range(repeats):
        began = time.perf_counter()
        assert all(event.cached for event in session.iter_view(triplet, stats, lambda: region, "slice"))
        revisits.append(time.perf_counter() - began)
    return {"first": first, "whole": whole, "revisit": min(revisits), "tiles": tiles}


def region_against_standalone(model, triplet, stats, region, repeats: int) -> tuple[float, float]:
    """(region of the slice, the same pixels as a standalone image), seconds, fastest of ``repeats``, no
    cache."""
    session = InferenceSession(model, "cpu")
    y0, y1, x0, x1 = region
    crop = tuple(np.ascontiguousarray(image[y0:y1, x0:x1]) for image in triplet)
    crop_stats = tuple(slice_stats(image) for image in crop)
    run_to_end(session.iter_slice(crop, crop_stats))  # warm-up
    timings = {"region": [], "standalone": []}
    for _ in range(repeats):
        for name, call in (
            ("region", lambda: session.iter_slice(triplet, stats, region)),
            ("standalone", lambda: session.iter_slice(crop, crop_stats)),
        ):
            began = time.perf_counter()
            run_to_end(call())
            timings[name].append(time.perf_counter() - began)
    return min(timings["region"]), min(timings["standalone"])


def stack_estimate(model, stack: np.ndarray) -> tuple[float, float]:
    """(estimated, actual) seconds for ``stack``, written to TIFF as the command line writes it."""
    estimate = estimate_stack(model, stack, device="cpu").seconds
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        with dask.config.set(scheduler="threads"):
            run_to_end(iter_write_stack(denoise_stack(model, stack, device="cpu"), Path(folder) / "out.tif"))
        actual = time.perf_counter() - began
    return estimate, actual


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--stack", default="4x1024x1024", help="ZxYxX of the estimate check (0: skip it)")
    parser.add_argument("--note", default="", help="said under the table, e.g. 'machine shared with 6 jobs'")
    parser.add_argument("--write-docs", action="store_true", help="write docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    model = model.cut(args.depth) if args.depth < model.depth else model
    source = tifffile.imread(GALA)
    triplet = tuple(tiled(source[20:23], SLICE_SHAPE))
    stats = tuple(slice_stats(image) for image in triplet)
    y0, x0 = (SLICE_SHAPE[0] - REGION) // 2, (SLICE_SHAPE[1] - REGION) // 2
    region = (y0, y0 + REGION, x0, x0 + REGION)
    cpu = cpu_description()
    print(f"{cpu}, {args.threads} torch threads, depth {model.depth}", flush=True)

    view = viewport(model, triplet, stats, region, args.repeats)
    print(f"viewport: {view}", flush=True)
    in_slice, standalone = region_against_standalone(model, triplet, stats, region, args.repeats)
    print(f"region {in_slice:.2f} s, standalone {standalone:.2f} s", flush=True)
    rows = [
        ("first tile on screen", f"{view['first']:.2f} s", "0.5 s"),
        (f"whole viewport ({view['tiles']} tiles)", f"{view['whole']:.2f} s", "3 s"),
        ("revisit (tile cache)", f"{view['revisit'] * 1000:.1f} ms", "0.1 s"),
        (
            "region / standalone 1000x1000 image",
            f"{in_slice:.2f} s / {standalone:.2f} s = {in_slice / standalone:.2f}x",
            "1.25x",
        ),
    ]
    if args.stack != "0":
        depth, height, width = (int(n) for n in args.stack.split("x"))
        stack = tiled(source[:depth], (height, width))
        estimated, actual = stack_estimate(model, stack)
        print(f"stack {args.stack}: estimated {estimated:.1f} s, actual {actual:.1f} s", flush=True)
        rows.append(
            (
                f"stated cost of a {args.stack} stack / its run",
                f"{estimated:.1f} s / {actual:.1f} s ({estimated / actual - 1:+.0%})",
                "within 20%",
            )
        )
    table = "\n".join(
        ["| what | measured | goal |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    )
    body = (
        f"A {REGION}x{REGION} view in the middle of a {SLICE_SHAPE[1]}x{SLICE_SHAPE[0]} slice at depth "
        f"{model.depth} of the shipped model, previewed as the dock does it (one inference session, slice "
        f"statistics cached, tiles centre first into a tile cache), on {cpu}, {args.threads} torch threads, "
        f"precision auto, after one warm-up region. {args.note}\n\n{table}\n\n"
        f"Command: `python benchmarks/bench_region.py --threads {args.threads} --stack {args.stack} "
        "--write-docs`.\n"
    )
    print(f"\n{SECTION}\n\n{body}")
    if args.write_docs:
        replace_section(REPO / "docs" / "benchmarks.md", SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
