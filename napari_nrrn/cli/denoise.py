"""``napari-nrrn denoise STACK OUT``: denoise a stack slice by slice into TIFF, OME-Zarr or MRC.

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

from napari_nrrn.words import plural


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "stack",
        metavar="STACK",
        help="noisy stack: TIFF, folder of TIFF or .dat frames, Zarr/OME-Zarr, N5, MRC, HDF5 "
        "(file.h5/dataset)",
    )
    parser.add_argument(
        "output",
        metavar="OUT",
        help="denoised stack to write: .tif/.tiff, .zarr/.ome.zarr (a multiscale pyramid) or .mrc",
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
        help="shift each neighbour onto its centre slice by its shift measured on STACK (cubic "
        "interpolation; default: as the model was trained, its training record)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument(
        "--ngff",
        choices=("0.5", "0.4"),
        default=None,
        help="OME-Zarr version of OUT: 0.5 (Zarr v3, the default) or 0.4 (Zarr v2: ilastik, webKnossos)",
    )
    parser.add_argument("--channel", type=int, default=None, help="detector channel of a multi-channel file")
    parser.add_argument(
        "--z-step",
        type=float,
        default=None,
        metavar="NM",
        help="z step in nm written with the output where the input does not record it (.dat frames, "
        "2-D slices); default: the pixel size",
    )
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
    from napari_nrrn.engine.estimate import estimate_stack
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
    voxel = voxel_size(source, args.z_step)
    writing = iter_write_stack(denoised, output, voxel_size=voxel, overwrite=args.overwrite, ngff=args.ngff)
    # What it will cost, measured here, once the output is known to be writable and before any slice runs.
    print(estimate_stack(model, stack, args.tile, device, dtype).line(), file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        # One process: dask's threads here, even where a distributed client is active in this process.
        with dask.config.set(scheduler="threads"):
            drain(writing, desc="denoise", unit="slice", total=stack.shape[0])
    except KeyboardInterrupt:
        stop.set()  # the slice in flight, in one of dask's threads, stops at its next tile
        raise
    seconds = time.perf_counter() - start
    print(
        f"wrote {output}: {plural(stack.shape[0], 'slice')} of {stack.shape[1]}x{stack.shape[2]} "
        f"{stack.dtype} in "
        f"{seconds:.1f} s, model {model_path.name} (depth {model.depth}, width {model.width}), "
        f"{device.type}, {str(dtype).removeprefix('torch.')}"
        + (", neighbours registered onto each slice" if register else ""),
        file=sys.stderr,
    )
    return 0


def _run_distributed(args, model, model_path: Path, source: Path, output: Path, register: bool) -> int:
    """Each worker picks its own device (its GPU, by rank, on a multi-GPU machine), writes its own chunks."""
    from napari_nrrn.engine.distributed import denoise_distributed, partial_path
    from napari_nrrn.io.stack import voxel_size
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
            voxel_size=None if args.z_step is None else voxel_size(source, args.z_step),
            ngff=args.ngff,
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
        f"wrote {output} in {time.perf_counter() - start:.1f} s: {plural(run.chunks_computed, 'chunk')} "
        "denoised, "
        f"{run.chunks_skipped} already written by an interrupted run, model {model_path.name} "
        f"(depth {model.depth}, width {model.width})",
        file=sys.stderr,
    )
    return 0
