"""Peak memory of `napari-nrrn denoise` against stack depth: it must not grow with the number of slices.

Builds two TIFF stacks of the same slice size, SHALLOW and DEEP slices deep, slice by slice (never held in
memory), from real FIB-SEM slices of the FlyEM medulla crop tiled to the slice size; denoises each with the
command line in a child process, one process (no --workers), to OME-Zarr and to TIFF; and reads the child's
own peak resident set size from the kernel (os.wait4's rusage: exact, no polling).

    python benchmarks/bench_memory.py                        # 200 vs 2000 slices of 256x256, tiny model
    python benchmarks/bench_memory.py --write-docs           # also put the table into docs/benchmarks.md

The model is a tiny NRRN (depth 1, width 4, fixed seed) so that 2000 slices take minutes on 2 CPU cores:
the memory held per slice does not depend on the model, the network's own activations do not grow with
depth either. Goal: peak RSS(deep) / peak RSS(shallow) <= 1.15.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _docs import replace_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MEDULLA = REPO.parent / "shared" / "data" / "fibsem_flyem_medulla_A_250cube.tif"
SECTION = "## Memory vs stack depth"
GOAL_RATIO = 1.15


def build_stack(path: Path, depth: int, size: int) -> None:
    """A (depth, size, size) uint8 TIFF of medulla slices tiled to size, written one slice at a time."""
    with tifffile.TiffFile(MEDULLA) as source:
        pages = len(source.pages)
        with tifffile.TiffWriter(path, bigtiff=depth * size * size > 2**31) as out:
            for z in range(depth):
                plane = source.pages[z % pages].asarray()
                reps = (-(-size // plane.shape[0]), -(-size // plane.shape[1]))
                out.write(np.tile(plane, reps)[:size, :size], photometric="minisblack", contiguous=True)


def tiny_model(path: Path) -> None:
    import torch

    from napari_nrrn.model.checkpoint import save_model
    from napari_nrrn.model.nrrn import NRRN

    torch.manual_seed(0)
    save_model(NRRN(depth=1, width=4), path, {"purpose": "bench_memory"})


def peak_rss_mib(command: list[str]) -> tuple[float, float]:
    """The child's peak RSS in MiB and its wall time in seconds; raises if the command fails."""
    # stderr (the progress bar) goes to a file: an unread pipe would fill up and block the child.
    with tempfile.TemporaryFile() as stderr:
        began = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not the sum of all children
        seconds = time.perf_counter() - began
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed:\n{stderr.read().decode(errors='replace')}")
    return usage.ru_maxrss / 1024, seconds  # Linux reports kilobytes


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slices", type=int, nargs=2, default=(200, 2000), metavar=("SHALLOW", "DEEP"))
    parser.add_argument("--size", type=int, default=256, help="slice height and width in pixels")
    parser.add_argument("--write-docs", action="store_true", help=f"write the table into docs/ {SECTION}")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as scratch:
        scratch = Path(scratch)
        model = scratch / "tiny.pt"
        tiny_model(model)
        stacks = {}
        for depth in args.slices:
            stacks[depth] = scratch / f"stack_{depth}.tif"
            build_stack(stacks[depth], depth, args.size)
        for suffix in (".ome.zarr", ".tif"):
            peaks = {}
            for depth, stack in stacks.items():
                output = scratch / f"out_{depth}{suffix}"
                command = ["napari-nrrn", "denoise", str(stack), str(output), "--model", str(model)]
                peaks[depth], seconds = peak_rss_mib(command)
                print(f"{depth:5d} slices -> {suffix:9s} peak RSS {peaks[depth]:7.1f} MiB, {seconds:6.1f} s")
            shallow, deep = args.slices
            rows.append((suffix, peaks[shallow], peaks[deep], peaks[deep] / peaks[shallow]))

    shallow, deep = args.slices
    lines = [
        f"| output | peak RSS, {shallow} slices | peak RSS, {deep} slices | ratio |",
        "|---|---|---|---|",
    ]
    lines += [f"| {suffix} | {a:.0f} MiB | {b:.0f} MiB | {ratio:.3f} |" for suffix, a, b, ratio in rows]
    print("\n".join(lines))
    worst = max(ratio for *_, ratio in rows)
    verdict = "met" if worst <= GOAL_RATIO else "NOT met"
    print(f"goal ratio <= {GOAL_RATIO}: {verdict} (worst {worst:.3f})")
    if args.write_docs:
        body = (
            f"Peak resident memory of `napari-nrrn denoise STACK OUT --model tiny.pt` (one process) on uint8 "
            f"stacks of {args.size}x{args.size} slices, {shallow} and {deep} slices deep (real FlyEM medulla "
            "slices tiled to the slice size, written slice by slice), read from the kernel per child process "
            "(`os.wait4`). Model: NRRN depth 1, width 4: its activations do not depend on the stack's depth. "
            f"Goal: ratio <= {GOAL_RATIO}; {verdict}.\n\n"
            + "\n".join(lines)
            + "\n\nCommand: `python benchmarks/bench_memory.py --write-docs"
            + ("" if (shallow, deep) == (200, 2000) else f" --slices {shallow} {deep}")
            + ("" if args.size == 256 else f" --size {args.size}")
            + "`\n"
        )
        replace_section(REPO / "docs" / "benchmarks.md", SECTION, body)
    return 0 if worst <= GOAL_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
