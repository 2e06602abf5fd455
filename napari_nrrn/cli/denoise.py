"""``napari-nrrn denoise STACK OUT``: denoise a stack slice by slice into a TIFF or OME-Zarr, with progress.

Each output slice is computed from its input slice and the two neighbours (the one neighbour at the ends),
read lazily: memory does not grow with the depth of the stack. OUT is written under a temporary name and
renamed when complete, so an interrupted or failed run leaves no half-written file (a distributed run keeps
its partial output under ``OUT.partial`` to resume it).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stack", metavar="STACK", help="noisy stack (TIFF, TIFF folder, Zarr/OME-Zarr, .dat)")
    parser.add_argument(
        "output", metavar="OUT", help="denoised stack to write: .tif/.tiff or .zarr/.ome.zarr"
    )
    parser.add_argument("--model", default=None, help="model file (.pt; default: the shipped model)")
    parser.add_argument("--depth", type=int, default=None, help="use only the first k blocks (default: all)")
    parser.add_argument(
        "--tile", type=int, default=None, help="tile size in pixels (default: chosen for the device)"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    parser.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16", "float16"),
        default="auto",
        help="convolution precision (default auto: float16 on CUDA, bfloat16 on CPUs with native support)",
    )
    parser.add_argument(
        "--register",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="shift each neighbour onto its centre slice by whole pixels, measured on STACK (default: as the "
        "model was trained, its training record)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--channel", type=int, default=None, help="detector channel of a multi-channel file")
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="denoise on N local worker processes (dask.distributed) into an OME-Zarr OUT; "
        "a partial OUT of the same job is resumed",
    )
    cluster.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="denoise on a running dask cluster (e.g. tcp://host:8786) into an OME-Zarr OUT; "
        "a partial OUT of the same job is resumed",
    )


def run(args: argparse.Namespace) -> int:
    import dask

    from napari_nrrn.cli.progress import drain
    from napari_nrrn.engine.device import select_device
    from napari_nrrn.engine.inference import check_stack, denoise_stack, inference_dtype
    from napari_nrrn.engine.registration import model_registers
    from napari_nrrn.io.stack import open_stack, voxel_size
    from napari_nrrn.io.writers import iter_write_stack
    from napari_nrrn.model.checkpoint import default_model_path, load_model

    source, output = Path(args.stack), Path(args.output)
    if output.expanduser().resolve() == source.expanduser().resolve():
        raise ValueError(f"OUT {output} is the input stack itself: write the denoised stack to another name")
    stack = open_stack(source, channel=args.channel)
    check_stack(stack)
    model_path = Path(args.model) if args.model else default_model_path()
    model = load_model(model_path)
    register = model_registers(model) if args.register is None else args.register  # the record, before a cut
    if args.depth is not None:
        model = model.cut(args.depth)
    if args.workers is not None or args.scheduler is not None:
        return _run_distributed(args, model, model_path, source, output, register)
    device = select_device(args.device)
    dtype = inference_dtype(device, args.precision)
    stop = threading.Event()
    denoised = denoise_stack(
        model,
        stack,
        tile=args.tile,
        device=device,
        precision=args.precision,
        should_stop=stop.is_set,
        register=register,
    )
    writing = iter_write_stack(denoised, output, voxel_size=voxel_size(source), overwrite=args.overwrite)
    start = time.perf_counter()
    try:
        # One process: dask's threads here, even where a distributed client is active in this process.
        with dask.config.set(scheduler="threads"):
            drain(writing, desc="denoise", unit="slice")
    except KeyboardInterrupt:
        stop.set()  # the slice in flight, in one of dask's threads, stops at its next tile
        raise
    seconds = time.perf_counter() - start
    print(
        f"wrote {output}: {stack.shape[0]} slices of {stack.shape[1]}x{stack.shape[2]} {stack.dtype} in "
        f"{seconds:.1f} s, model {model_path.name} (depth {model.depth}, width {model.width}), "
        f"{device.type}, {str(dtype).removeprefix('torch.')}"
        + (", neighbours registered onto each slice" if register else ""),
        file=sys.stderr,
    )
    return 0


def _run_distributed(args, model, model_path: Path, source: Path, output: Path, register: bool) -> int:
    """Each worker picks its own device (its GPU, by rank, on a multi-GPU machine), writes its own chunks."""
    from napari_nrrn.engine.distributed import denoise_distributed, partial_path
    from napari_nrrn.io.writers import os_error_message

    start = time.perf_counter()
    try:
        run = denoise_distributed(
            model,
            source,
            output,
            workers=args.workers,
            scheduler=args.scheduler,
            overwrite=args.overwrite,
            tile=args.tile,
            device=args.device,
            precision=args.precision,
            channel=args.channel,
            register=register,
        )
    except OSError as error:
        if error.errno is None:
            raise
        # Chunks already written took minutes to hours: they stay, under a name no reader takes for a stack.
        print(
            f"napari-nrrn denoise: error: {os_error_message(error, output)}; the slices written so far are "
            f"kept in {partial_path(output)}, and the same command resumes them",
            file=sys.stderr,
        )
        return 2
    print(
        f"wrote {output} in {time.perf_counter() - start:.1f} s: {run.chunks_computed} chunks denoised, "
        f"{run.chunks_skipped} already written by an interrupted run, model {model_path.name} "
        f"(depth {model.depth}, width {model.width})",
        file=sys.stderr,
    )
    return 0
