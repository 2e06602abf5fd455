"""Peak memory of `napari-nrrn denoise` against stack depth: it must not grow with the number of slices.

Builds two TIFF stacks of the same slice size, SHALLOW and DEEP slices deep, slice by slice (never held in
memory), from real FIB-SEM slices of the FlyEM medulla crop tiled to the slice size; denoises each with the
command line in a child process, one process (no --workers), to OME-Zarr, TIFF and MRC; and reads the
child's own peak resident set size from the kernel (os.wait4's rusage: exact, no polling).

256 px slices get no pyramid (levels start at 1024 px), so the OME-Zarr pyramid writer is measured apart:
two stacks of 2048x2048 slices (levels 2048, 1024 and 512 px), PYRAMID_SHALLOW and PYRAMID_DEEP slices
deep, written by `write_stack` in a child process (no model: denoising 2048 px slices would take hours here).

    python benchmarks/bench_memory.py                        # 200 vs 2000 slices of 256x256, tiny model
    python benchmarks/bench_memory.py --write-docs           # also put the table into docs/benchmarks.md

The model is a tiny NRRN (depth 1, width 4, fixed seed) so that 2000 slices take minutes on 2 CPU cores:
the memory held per slice does not depend on the model, the network's own activations do not grow with
depth either. Goal: peak RSS(deep) / peak RSS(shallow) <= 1.15.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _docs import cpu_description, replace_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MEDULLA = REPO.parent / "shared" / "data" / "fibsem_flyem_medulla_A_250cube.tif"
SECTION = "## Memory vs stack depth"
GOAL_RATIO = 1.15
# The worktree's package, not the installed one: the children run from the repository root.
CLI = [sys.executable, "-c", "import sys; from napari_nrrn.cli import main; sys.exit(main(sys.argv[1:]))"]
WRITE = [
    sys.executable,
    "-c",
    "import sys; from napari_nrrn import open_stack as o, write_stack as w; w(o(sys.argv[1]), sys.argv[2])",
]


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
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=REPO)
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
    parser.add_argument(
        "--pyramid-slices",
        type=int,
        nargs=2,
        default=(100, 1000),
        metavar=("PYRAMID_SHALLOW", "PYRAMID_DEEP"),
    )
    parser.add_argument("--pyramid-size", type=int, default=2048, help="slice size for the pyramid writer")
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
        for suffix in (".ome.zarr", ".tif", ".mrc"):
            peaks = {}
            for depth, stack in stacks.items():
                output = scratch / f"out_{depth}{suffix}"
                command = [*CLI, "denoise", str(stack), str(output), "--model", str(model)]
                peaks[depth], seconds = peak_rss_mib(command)
                print(f"{depth:5d} slices -> {suffix:9s} peak RSS {peaks[depth]:7.1f} MiB, {seconds:6.1f} s")
                output.unlink() if output.is_file() else shutil.rmtree(output)
            shallow, deep = args.slices
            rows.append((f"denoise to {suffix}, {args.size} px", shallow, deep, peaks[shallow], peaks[deep]))
        for stack in stacks.values():
            stack.unlink()
        peaks = {}
        for depth in args.pyramid_slices:
            stack = scratch / f"pyramid_{depth}.tif"
            build_stack(stack, depth, args.pyramid_size)
            output = scratch / f"pyramid_{depth}.ome.zarr"
            peaks[depth], seconds = peak_rss_mib([*WRITE, str(stack), str(output)])
            levels = sorted(p.name for p in output.iterdir() if p.is_dir())
            print(f"{depth:5d} slices -> pyramid {levels} peak RSS {peaks[depth]:7.1f} MiB, {seconds:6.1f} s")
            stack.unlink()
            shutil.rmtree(output)
        shallow, deep = args.pyramid_slices
        what = f"write_stack to .ome.zarr, {args.pyramid_size} px, levels {', '.join(levels)}"
        rows.append((what, shallow, deep, peaks[shallow], peaks[deep]))

    lines = [
        "| what (one process) | slices | peak RSS, shallow | peak RSS, deep | ratio |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {what} | {a} / {b} | {pa:.0f} MiB | {pb:.0f} MiB | {pb / pa:.3f} |"
        for what, a, b, pa, pb in rows
    ]
    print("\n".join(lines))
    worst = max(pb / pa for *_, pa, pb in rows)
    verdict = "met" if worst <= GOAL_RATIO else "NOT met"
    print(f"goal ratio <= {GOAL_RATIO}: {verdict} (worst {worst:.3f})")
    if args.write_docs:
        defaults = {"slices": [200, 2000], "size": 256, "pyramid_slices": [100, 1000], "pyramid_size": 2048}
        options = "".join(
            f" --{name.replace('_', '-')} {' '.join(map(str, value)) if isinstance(value, list) else value}"
            for name, default in defaults.items()
            if (value := list(getattr(args, name)) if isinstance(default, list) else getattr(args, name))
            != default
        )
        body = (
            "Peak resident memory of one child process against the depth of the stack, read from the kernel "
            "(`os.wait4`), on uint8 stacks of real FlyEM medulla slices tiled to the slice size (written "
            "slice by slice). `denoise`: `napari-nrrn denoise STACK OUT --model tiny.pt` (NRRN depth 1, "
            "width 4: its activations do not depend on the stack's depth). `write_stack`: the OME-Zarr "
            "writer alone, writing every pyramid level of each slice as it goes. "
            f"{cpu_description()}, {os.cpu_count()} cores shared with other jobs (memory does not depend on "
            "the load). "
            f"Goal: ratio <= {GOAL_RATIO}; {verdict}.\n\n"
            + "\n".join(lines)
            + f"\n\nCommand: `python benchmarks/bench_memory.py --write-docs{options}`\n"
        )
        replace_section(REPO / "docs" / "benchmarks.md", SECTION, body)
    return 0 if worst <= GOAL_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
