"""Denoising throughput, slices per second: one process against a dask.distributed cluster of 1 and 2 workers.

All three write the same OME-Zarr from the same TIFF stack with the same K=4, C=32 model (random weights:
speed does not depend on them):
- one process: ``denoise_stack`` + ``write_stack`` in this process, torch with 2 threads;
- 1 worker: ``iter_denoise_distributed`` on a LocalCluster of 1 process, torch with 2 threads in it;
- 2 workers: the same on 2 processes with 1 torch thread each.
The time of a distributed run counts registering the model on the workers, the chunks and the final rename;
the cluster's start (seconds, once per session) is reported apart. Configurations are interleaved and
repeated (the machine is shared with other work, so the best of the repeats is reported).

    python benchmarks/bench_distributed.py --write-docs
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _docs import replace_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MEDULLA = REPO.parent / "shared" / "data" / "fibsem_flyem_medulla_A_250cube.tif"
SECTION = "## Distributed throughput"
USAGE = """How to run it. `napari-nrrn denoise STACK OUT.ome.zarr --workers N` starts N local worker processes
(one task at a time each, torch sharing the cores between them); `--scheduler tcp://HOST:8786` joins a
cluster you started, for example one worker per GPU:

    dask scheduler                                            # prints tcp://HOST:8786
    dask worker tcp://HOST:8786 --nworkers 4 --nthreads 1 --name gpu   # workers gpu-0 .. gpu-3

Each worker loads the model once and uses GPU `rank % GPU count` (rank from its name: LocalCluster's 0, 1, ...
or `--name gpu`'s gpu-0, gpu-1, ...; or give each worker one GPU with CUDA_VISIBLE_DEVICES). Every worker must
be able to open STACK and write OUT by the same path (a shared file system). Tasks of 8 slices read 10 input
slices and write their slices straight into OUT; nothing passes through the client. OUT is written as
`OUT.partial` with a checksummed record per finished chunk; after a crash or Ctrl-C, the same command
verifies the records against the data, skips the chunks that match and computes the rest; OUT gets its name
when complete.
"""


def single_process(model, source: Path, output: Path) -> float:
    from napari_nrrn.engine.inference import denoise_stack
    from napari_nrrn.io.stack import open_stack
    from napari_nrrn.io.writers import write_stack

    began = time.perf_counter()
    write_stack(denoise_stack(model, open_stack(source)), output)
    return time.perf_counter() - began


def distributed(client, model_path: Path, source: Path, output: Path, chunk: int, threads: int) -> float:
    from napari_nrrn.engine.distributed import iter_denoise_distributed
    from napari_nrrn.engine.events import run_to_end

    began = time.perf_counter()
    run_to_end(
        iter_denoise_distributed(
            client, model_path, source, output, chunk_slices=chunk, torch_threads=threads
        )
    )
    return time.perf_counter() - began


def main() -> int:
    from distributed import Client, LocalCluster

    from napari_nrrn.model.checkpoint import save_model
    from napari_nrrn.model.nrrn import NRRN

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slices", type=int, default=48)
    parser.add_argument("--size", type=int, default=256, help="slice height and width (medulla slices tiled)")
    parser.add_argument("--chunk", type=int, default=4, help="slices per distributed task")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true", help=f"write the table into docs/ {SECTION}")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    torch.set_num_threads(cores)
    times: dict[str, list[float]] = {"one process": [], "1 worker": [], "2 workers": []}
    startup: dict[str, list[float]] = {"1 worker": [], "2 workers": []}
    with tempfile.TemporaryDirectory(prefix="bench_distributed_") as scratch:
        scratch = Path(scratch)
        planes = tifffile.imread(MEDULLA)[: args.slices]
        reps = -(-args.size // planes.shape[1]), -(-args.size // planes.shape[2])
        stack = np.stack([np.tile(p, reps)[: args.size, : args.size] for p in planes])
        source = scratch / "stack.tif"
        tifffile.imwrite(source, stack, photometric="minisblack", contiguous=True)
        torch.manual_seed(0)
        model = NRRN(depth=4, width=32).eval()
        model_path = save_model(model, scratch / "model.pt")
        for repeat in range(args.repeats):
            output = scratch / f"single_{repeat}.ome.zarr"
            times["one process"].append(single_process(model, source, output))
            shutil.rmtree(output)
            for workers in (1, 2):
                label = f"{workers} worker" + ("s" if workers > 1 else "")
                began = time.perf_counter()
                with (
                    LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster,
                    Client(cluster) as client,
                ):
                    client.run(lambda: __import__("torch"))  # torch's import is start-up, not throughput
                    startup[label].append(time.perf_counter() - began)
                    output = scratch / f"{workers}_{repeat}.ome.zarr"
                    seconds = distributed(
                        client, model_path, source, output, args.chunk, max(1, cores // workers)
                    )
                    times[label].append(seconds)
                    shutil.rmtree(output)
            print({k: [round(args.slices / t, 3) for t in v] for k, v in times.items()})

    load = (load_before, os.getloadavg()[0])
    lines = ["| path | slices/s (best) | s/slice | cluster start |", "|---|---|---|---|"]
    for label, values in times.items():
        best = min(values)
        start = f"{min(startup[label]):.1f} s" if label in startup else "-"
        lines.append(f"| {label} | {args.slices / best:.3f} | {best / args.slices:.2f} | {start} |")
    print("\n".join(lines))
    if args.write_docs:
        body = (
            f"{args.slices} uint8 slices of {args.size}x{args.size} (FlyEM medulla slices tiled), NRRN "
            f"K=4 C=32, to OME-Zarr, on this {cores}-core CPU machine (no GPU), best of {args.repeats} "
            f"interleaved repeats; distributed tasks of {args.chunk} slices. One process uses torch with "
            f"{cores} threads, one worker the same, two workers {max(1, cores // 2)} thread each. Load "
            f"average of the machine (other jobs ran beside) {load[0]:.1f} at the start, {load[1]:.1f} at "
            f"the end, so the numbers are noisy. On {cores} cores a cluster adds no compute to one process "
            "that already uses them all, and pays per task (the halo reads, a chunk record) and per job "
            "(sending and loading the model, the final rename): it pays where there are more cores, GPUs "
            "or machines than one process can use.\n\n"
            + "\n".join(lines)
            + "\n\nCommand: `python benchmarks/bench_distributed.py --write-docs`.\n\n"
            + USAGE
        )
        replace_section(REPO / "docs" / "benchmarks.md", SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
