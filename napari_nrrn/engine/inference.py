"""Denoising with a trained NRRN: one slice or a region of it, a lazy stack, or slice by slice with progress.

Every slice of a triplet (prev, centre, next) is z-scored with its own whole-slice statistics; the output
``(f(prev, centre) + f(next, centre)) / 2`` is de-normalised with the centre's and cast back to the input
dtype (integers rounded and clipped to the dtype's range, floats not clipped). At the ends of a stack the
one neighbour serves as both. Slices are processed in tiles with an exact halo (see ``tiling.py``), batched
per forward pass, with the fast forward of ``fused.py``.

A region of a slice is tiled for itself (``tiling.plan_region``), its windows normalised with the whole
slices' statistics: its output equals that crop of the whole-slice output but for the float rounding of
other window shapes (within one grey level, identical at 99.99% of pixels or more). Tiles run centre
first and each finished tile is an event (``session.TileDone``).

Non-finite pixels (NaN, +-inf in floating-point stacks) are left out of the statistics and enter the network
as the slice mean (0 after z-scoring); the output keeps the centre's own non-finite value there and is finite
everywhere else. A slice without a finite pixel is refused.

Cancelling: ``denoise_stack(..., should_stop=...)`` stops between two batches of tiles and raises
``Cancelled``; a caller of ``iter_denoise_slice`` stops by no longer asking for events (or closing it),
which also happens between two batches.
"""

from __future__ import annotations

import math
import operator
import time
import warnings
from collections.abc import Iterator

import dask.array as da
import numpy as np
import torch

from napari_nrrn.engine.device import select_device
from napari_nrrn.engine.events import Cancelled, Progress, run_to_end
from napari_nrrn.engine.fused import FusedNRRN, cpu_has_native_bfloat16
from napari_nrrn.engine.normalise import slice_stats
from napari_nrrn.engine.registration import model_registers, register_triplet
from napari_nrrn.engine.session import InferenceSession, TileDone
from napari_nrrn.engine.tiling import plan_tiles, stitch
from napari_nrrn.model.nrrn import NRRN
from napari_nrrn.words import plural

# Tile cores in pixels per side (the largest core; cores are balanced, windows add the halo). On CPU, with one
# thread, windows up to about 350 px ran at the same CPU time per pixel and windows of 514 px or the whole
# 1000 px slice 30-40% slower; with two threads on a busy machine, smaller tiles (more, smaller operations)
# were slower (benchmarks/bench_inference.py). On a GPU large tiles, several per batch.
CPU_TILE = 336
GPU_TILE = 1024
GPU_TILES_PER_BATCH = 4

# How the slices of a triplet are named in errors.
TRIPLET_NAMES = ("the previous slice", "the centre slice", "the next slice")

PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def default_tile(device: torch.device) -> int:
    return GPU_TILE if torch.device(device).type == "cuda" else CPU_TILE


def inference_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """The convolution precision: ``precision`` by name, or for "auto" float16 on CUDA, bfloat16 on CPUs with
    native bfloat16 (outputs within one grey level of float32: docs/benchmarks.md), else float32."""
    if precision != "auto":
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be 'auto' or one of {sorted(PRECISIONS)}, got {precision!r}")
        return PRECISIONS[precision]
    device = torch.device(device)
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_native_bfloat16():
        return torch.bfloat16
    return torch.float32


def check_stack(stack) -> None:
    """ValueError unless ``stack`` is a (Z, Y, X) stack of at least 2 slices (neighbours are needed)."""
    shape = tuple(getattr(stack, "shape", ()))
    if len(shape) != 3:
        raise ValueError(
            f"NRRN denoises a stack: a stack of at least 2 slices is needed, (Z, Y, X), got shape {shape}: "
            "open the whole stack (or a multi-page TIFF / folder of slices), not one image"
        )
    if shape[0] < 2:
        raise ValueError(
            f"a stack of at least 2 slices is needed (NRRN compares each slice with its neighbours), "
            f"got {shape[0]}"
        )


def _check_triplet(prev, centre, next) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrays = tuple(np.asarray(image) for image in (prev, centre, next))
    for name, image in zip(("prev", "centre", "next"), arrays, strict=True):
        if image.ndim != 2:
            raise ValueError(f"{name} must be a 2-D slice, got shape {image.shape}")
        if image.shape != arrays[1].shape:
            raise ValueError(
                f"{name} has shape {image.shape}, the centre slice {arrays[1].shape}: they must match"
            )
        if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
            raise ValueError(f"{name} has dtype {image.dtype}: integer or floating-point slices are needed")
    return arrays


Region = tuple[int, int, int, int]
SliceStats = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]


def check_region(region, shape: tuple[int, int]) -> Region:
    """``region`` as (y0, y1, x0, x1) ints; ValueError, giving the slice's shape, unless it is a non-empty
    part of a slice of ``shape`` (half-open bounds)."""
    height, width = shape
    try:
        y0, y1, x0, x1 = (operator.index(bound) for bound in region)
    except (TypeError, ValueError):
        raise ValueError(
            f"region must be four integer pixel bounds (y0, y1, x0, x1), got {region!r}"
        ) from None
    if not (0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width):
        raise ValueError(
            f"region (y0, y1, x0, x1) = {(y0, y1, x0, x1)} is empty or outside the slice of shape {shape}: "
            f"need 0 <= y0 < y1 <= {height} and 0 <= x0 < x1 <= {width}"
        )
    return y0, y1, x0, x1


def run_tiles(fused: FusedNRRN, images, tile: int, halo: int, blocks: bool = False, per_batch=None):
    """Run ``fused`` over z-scored (prev, centre, next) images by the whole-slice plan, ``per_batch`` tiles
    per forward pass (default: 1 on CPU, GPU_TILES_PER_BATCH on CUDA): the forward passes alone, for
    benchmarks. Yields Progress per batch; returns the stitched output and the per-block outputs."""
    shape = images[0].shape
    on_gpu = fused.device.type == "cuda"
    if per_batch is None:
        per_batch = GPU_TILES_PER_BATCH if on_gpu else 1
    plan = plan_tiles(shape, tile, halo)
    output = np.empty(shape, np.float32)
    block_outputs = [np.empty(shape, np.float32) for _ in range(len(fused.blocks))] if blocks else []
    start = time.perf_counter()
    batches = [plan[first : first + per_batch] for first in range(0, len(plan), per_batch)]
    for done, batch in enumerate(batches, 1):
        windows = []
        for image in images:
            host = torch.from_numpy(np.stack([image[tile.window] for tile in batch])).unsqueeze(1)
            windows.append((host.pin_memory() if on_gpu else host).to(fused.device, non_blocking=on_gpu))
        estimate, per_block = fused(*windows, blocks=blocks)
        stitch(output, batch, estimate[:, 0].cpu().numpy())
        for target, block in zip(block_outputs, per_block, strict=True):
            stitch(target, batch, block[:, 0].cpu().numpy())
        yield Progress("denoise", done, len(batches), time.perf_counter() - start, "tiles")
    return output, block_outputs


def _checked_stats(stats, images) -> SliceStats:
    """The caller's (mean, std) of prev, centre and next, checked; computed from the slices when None."""
    if stats is None:
        return tuple(slice_stats(image, name) for image, name in zip(images, TRIPLET_NAMES, strict=True))
    try:
        checked = tuple((float(mean), float(std)) for mean, std in stats)
    except (TypeError, ValueError):
        checked = ()
    if len(checked) != 3 or not all(math.isfinite(m) and math.isfinite(s) and s > 0 for m, s in checked):
        raise ValueError(
            f"stats must be three (mean, std) pairs, for prev, centre and next, as slice_stats returns them, "
            f"with finite means and positive standard deviations: got {stats!r}"
        )
    return checked


def iter_denoise_slice(
    model: NRRN,
    prev,
    centre,
    next,
    tile=None,
    device=None,
    blocks=False,
    precision="auto",
    region=None,
    stats=None,
    session: InferenceSession | None = None,
    data_key=None,
) -> Iterator[TileDone]:
    """``denoise_slice`` as a generator: yields ``TileDone`` per tile (its pixels and place, centre first)
    and returns what ``denoise_slice`` returns (StopIteration.value). A caller cancels by asking for no
    more events: the work stops between two batches of tiles.

    ``session``: an ``InferenceSession`` to run in (it then decides device, precision and tile; ``model``
    is only checked against it), e.g. one per stack; ``data_key`` names the slice for the session's tile
    cache."""
    prev, centre, next = _check_triplet(prev, centre, next)
    region = None if region is None else check_region(region, centre.shape)
    stats = _checked_stats(stats, (prev, centre, next))
    if session is None:
        device = select_device(device)
        session = InferenceSession(model, device, inference_dtype(device, precision), tile)
    elif session.halo != model.halo:
        raise ValueError(
            f"the session was built for a model of halo {session.halo}, not this one's {model.halo}"
        )
    while True:
        try:
            output, block_outputs = yield from session.iter_slice(
                (prev, centre, next), stats, region, blocks, data_key
            )
            break
        except torch.cuda.OutOfMemoryError:
            if session.tile // 2 < session.halo:
                raise
            torch.cuda.empty_cache()
            warnings.warn(
                f"GPU out of memory with {session.tile}-pixel tiles: retrying the slice with "
                f"{session.tile // 2}-pixel tiles",
                RuntimeWarning,
                stacklevel=2,
            )
            session.tile //= 2
    return (output, block_outputs) if blocks else output


def denoise_slice(
    model: NRRN,
    prev,
    centre,
    next,
    tile=None,
    device=None,
    blocks=False,
    precision="auto",
    region=None,
    stats=None,
):
    """The denoised ``centre`` slice (numpy, its dtype kept); with ``blocks=True`` also, for k = 1..K, what
    ``model.cut(k)`` gives (``NRRN.depth_outputs``), de-normalised float32, averaged over both branches like
    the output: the tail at every depth for an ``every_depth`` model, y_1 .. y_{K-1} then the output for
    others. The last item equals the output.

    ``tile``: tile core size in pixels (None: chosen for the device); ``precision``: "auto", "float32",
    "bfloat16" or "float16" for the convolutions ("float32" reproduces the reference network to rounding).
    ``region``: (y0, y1, x0, x1), half-open pixel bounds: only that part of the slice is computed and
    returned (the block outputs too), equal to that crop of the whole slice's output. ``stats``: the
    whole-slice (mean, std) of prev, centre and next as ``slice_stats`` gives them, to save a pass over
    large slices when they are known (None: computed here).
    """
    return run_to_end(
        iter_denoise_slice(model, prev, centre, next, tile, device, blocks, precision, region, stats)
    )


def _neighbours(z: int, depth: int) -> tuple[int, int]:
    """The slices before and after slice ``z``; at an end, the one neighbour twice."""
    return (z - 1 if z > 0 else 1), (z + 1 if z < depth - 1 else depth - 2)


def slice_triplet(stack, z: int, register: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slices (z-1, z, z+1) of a (Z, Y, X) stack as numpy, reading only those; at an end, the one neighbour
    twice. ``register``: each neighbour shifted onto slice z (engine/registration.py); to denoise them as
    napari-nrrn does, pass ``denoise_slice`` the statistics of the slices as read (``prepared_triplet``)."""
    check_stack(stack)
    depth = stack.shape[0]
    if not 0 <= z < depth:
        raise ValueError(f"slice {z} is outside the stack of {plural(depth, 'slice')}")
    before, after = _neighbours(z, depth)
    triplet = tuple(np.asarray(stack[index]) for index in (before, z, after))
    return register_triplet(*triplet) if register else triplet


def prepared_triplet(triplet, z: int, depth: int, register: bool, stats_of=None, lazy: bool = False):
    """(triplet, stats) for ``iter_denoise_slice``: the whole-slice (mean, std) of slice ``z``'s triplet as
    read (``stats_of(triplet)``, else ``triplet_stats``), and the triplet with its neighbours shifted onto
    the centre when ``register`` (``lazy``: interpolated only where a session reads them, for views of part
    of a slice). The statistics come first: training z-scores a shifted window with its slice's own
    statistics, and interpolation shrinks a neighbour's noise, so statistics taken after the shift would
    scale its pixels differently from training."""
    stats = triplet_stats(triplet, z, depth) if stats_of is None else stats_of(triplet)
    return (register_triplet(*triplet, lazy=lazy) if register else triplet), stats


def triplet_stats(triplet, z: int, depth: int) -> SliceStats:
    """``slice_stats`` of the triplet of slice ``z`` of a stack of ``depth`` slices, naming each slice by its
    index in errors."""
    before, after = _neighbours(z, depth)
    return tuple(
        slice_stats(image, f"slice {index} of the stack")
        for image, index in zip(triplet, (before, z, after), strict=True)
    )


def _as_slice_chunked(stack) -> da.Array:
    if isinstance(stack, da.Array):
        return stack.rechunk({0: 1, 1: -1, 2: -1})
    return da.from_array(stack, chunks=(1, -1, -1))


def run_unless_stopped(events, should_stop):
    """Drive a generator of events to its end and return its value; ``Cancelled`` (the generator closed) as
    soon as ``should_stop()`` is True, checked before each event is asked for."""
    while True:
        if should_stop():
            events.close()
            raise Cancelled("denoising was cancelled")
        try:
            next(events)
        except StopIteration as finished:
            return finished.value


def denoise_stack(
    model: NRRN, stack, tile=None, device=None, precision="auto", should_stop=None, register=None
) -> da.Array:
    """The denoised stack, lazily: a dask array of the same shape and dtype, one chunk per slice; computing
    slice z reads input slices z-1, z and z+1 only. All slices run in one ``InferenceSession``.

    ``register``: shift each neighbour onto its centre (engine/registration.py); None: as the
    model was trained (its training record, ``model_registers``).

    ``should_stop``: a callable checked between batches of tiles; when it returns True, the slice being
    computed stops there and raises ``Cancelled`` (a writer computing the stack then removes its partial
    output).
    """
    check_stack(stack)
    device = select_device(device)
    # One session for the stack: the fast network is built once (a bad tile, device or precision fails now).
    session = InferenceSession(model, device, inference_dtype(device, precision), tile)
    register = model_registers(model) if register is None else bool(register)
    stack = _as_slice_chunked(stack)
    depth = stack.shape[0]
    # Neighbour stacks, one slice per chunk: at each end the one neighbour stands in for the missing one.
    before = da.concatenate([stack[1:2], stack[:-1]])
    after = da.concatenate([stack[1:], stack[-2:-1]])

    def denoise_chunk(prev, centre, next, block_info=None):
        z = block_info[None]["chunk-location"][0]
        triplet, stats = prepared_triplet((prev[0], centre[0], next[0]), z, depth, register)
        events = iter_denoise_slice(model, *triplet, stats=stats, session=session)
        return (run_to_end(events) if should_stop is None else run_unless_stopped(events, should_stop))[None]

    return da.map_blocks(denoise_chunk, before, stack, after, dtype=stack.dtype, token="nrrn-denoise")


def iter_denoise_slices(model: NRRN, stack, zs=None, tile=None, device=None, precision="auto", register=None):
    """Yield ``(z, denoised slice)`` for each z of ``zs`` (default: all), reading three slices per step: the
    widget and scripts drive it, showing progress and stopping between slices. ``register`` as for
    ``denoise_stack``."""
    check_stack(stack)
    device = select_device(device)
    session = InferenceSession(model, device, inference_dtype(device, precision), tile)
    register = model_registers(model) if register is None else bool(register)
    for z in range(stack.shape[0]) if zs is None else zs:
        triplet, stats = prepared_triplet(slice_triplet(stack, z), z, stack.shape[0], register)
        yield z, run_to_end(iter_denoise_slice(model, *triplet, stats=stats, session=session))
