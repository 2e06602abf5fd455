"""GPU inference speed at full FIB-SEM size: one 6144x4096 slice and a short stack, fp32 / fp16 / bf16.

Run it on a machine with an NVIDIA GPU and a CUDA build of torch:

    python benchmarks/bench_gpu.py                 # prints the card and the table
    python benchmarks/bench_gpu.py --write-docs    # and appends them to docs/benchmarks.md "## GPU"

The model is NRRN K=4, C=32 (random weights: speed does not depend on them); the slices are real FlyEM
medulla slices tiled to 6144x4096 uint8. Each precision runs the engine's ``denoise_slice`` (tiled, batched
tiles, both branches) with its ``precision`` ("float32", "float16", "bfloat16": the convolutions' dtype,
the running estimate stays float32), after a warm-up, timed between ``torch.cuda.synchronize`` calls; the
stack is ``denoise_stack`` computed slice by slice. The fp16/bf16 outputs are compared with fp32's.
Without a GPU it exits with a message and status 1.
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
from _docs import replace_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MEDULLA = REPO.parent / "shared" / "data" / "fibsem_flyem_medulla_A_250cube.tif"
SECTION = "## GPU"
HEIGHT, WIDTH = 4096, 6144
PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def full_size_slices(count: int) -> np.ndarray:
    planes = tifffile.imread(MEDULLA)[:count]
    reps = -(-HEIGHT // planes.shape[1]), -(-WIDTH // planes.shape[2])
    return np.stack([np.tile(p, reps)[:HEIGHT, :WIDTH] for p in planes])


def timed(function):
    torch.cuda.synchronize()
    began = time.perf_counter()
    result = function()
    torch.cuda.synchronize()
    return result, time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", type=int, default=8, help="slices in the short stack")
    parser.add_argument("--tile", type=int, default=None, help="tile size (default: the engine's)")
    parser.add_argument("--write-docs", action="store_true", help=f"append the results to docs/ {SECTION}")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit(
            "bench_gpu.py: no CUDA GPU is visible to torch (torch.cuda.is_available() is False): run it on a "
            "machine with an NVIDIA GPU and a CUDA build of torch"
        )
    import dask.array as da

    from napari_nrrn.engine.inference import denoise_slice, denoise_stack
    from napari_nrrn.model.nrrn import NRRN

    card = torch.cuda.get_device_name()
    torch.manual_seed(0)
    model = NRRN(depth=4, width=32).cuda().eval()
    slices = full_size_slices(max(3, args.stack))
    stack = da.from_array(slices[: args.stack], chunks=(1, HEIGHT, WIDTH))
    prev, centre, following = slices[0], slices[1], slices[2]

    rows, reference = [], None
    for name, precision in PRECISIONS.items():
        options = {"tile": args.tile, "device": "cuda", "precision": precision}
        denoise_slice(model, prev, centre, following, **options)  # warm-up
        torch.cuda.reset_peak_memory_stats()
        output, slice_s = timed(lambda o=options: denoise_slice(model, prev, centre, following, **o))
        denoised = denoise_stack(model, stack, **options)
        _, stack_s = timed(lambda d=denoised: [np.asarray(d[z]) for z in range(args.stack)])
        peak_gib = torch.cuda.max_memory_allocated() / 2**30
        if reference is None:
            reference, difference = output, "-"
        else:
            delta = np.abs(output.astype(np.int16) - reference.astype(np.int16))
            difference = f"max {delta.max()}, {np.mean(delta > 0) * 100:.2f}% of pixels differ"
        rows.append(
            (name, slice_s, stack_s / args.stack, HEIGHT * WIDTH / slice_s / 1e6, peak_gib, difference)
        )
        print(
            f"{name}: slice {slice_s:.3f} s, stack {stack_s / args.stack:.3f} s/slice, "
            f"peak {peak_gib:.1f} GiB"
        )

    lines = [
        f"| precision | 6144x4096 slice (s) | {args.stack}-slice stack (s/slice) | Mpixel/s "
        "| peak GPU memory | output vs fp32 (grey levels) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {a:.3f} | {b:.3f} | {c:.1f} | {d:.1f} GiB | {e} |" for n, a, b, c, d, e in rows]
    print(f"card: {card}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    print("\n".join(lines))
    if args.write_docs:
        path = REPO / "docs" / "benchmarks.md"
        body = (
            f"NRRN K=4, C=32 on **{card}** (torch {torch.__version__}, CUDA {torch.version.cuda}), "
            f"tile {args.tile or 'default'}, after one warm-up slice, timed between "
            "`torch.cuda.synchronize()` calls; fp16/bf16: the engine's `precision` for the convolutions. "
            "Real FlyEM slices tiled to 6144x4096 uint8.\n\n"
            + "\n".join(lines)
            + "\n\nCommand: `python benchmarks/bench_gpu.py --write-docs`.\n"
        )
        replace_section(path, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
