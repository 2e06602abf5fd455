"""Denoising with a trained NRRN: one slice, a lazy stack, or slice by slice with progress.

Every slice of a triplet (prev, centre, next) is z-scored with its own whole-slice statistics; the output
``(f(prev, centre) + f(next, centre)) / 2`` is de-normalised with the centre's and cast back to the input
dtype (integers rounded and clipped to the dtype's range, floats not clipped). At the ends of a stack the
one neighbour serves as both. Slices are processed in tiles with an exact halo (see ``tiling.py``), batched
per forward pass, with the fast forward of ``fused.py``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator

import dask.array as da
import numpy as np
import torch

from napari_nrrn.engine.device import select_device
from napari_nrrn.engine.events import Progress, run_to_end
from napari_nrrn.engine.fused import FusedNRRN, cpu_has_native_bfloat16
from napari_nrrn.engine.normalise import slice_stats, unzscore, zscore
from napari_nrrn.engine.tiling import check_tile, plan_tiles, stitch
from napari_nrrn.model.nrrn import NRRN

# Tile cores in pixels per side (the largest core; cores are balanced, windows add the halo). On CPU, with one
# thread, windows up to about 350 px ran at the same CPU time per pixel and windows of 514 px or the whole
# 1000 px slice 30-40% slower; with two threads on a busy machine, smaller tiles (more, smaller operations)
# were slower (benchmarks/bench_inference.py). On a GPU large tiles, several per batch.
CPU_TILE = 336
GPU_TILE = 1024
GPU_TILES_PER_BATCH = 4

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


def _cast_like(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``image`` as ``dtype``: integers rounded and clipped to the dtype's range, floats cast as they are."""
    if np.issubdtype(dtype, np.integer):
        limits = np.iinfo(dtype)
        return np.clip(np.rint(image), limits.min, limits.max).astype(dtype)
    return image.astype(dtype)


def run_tiles(fused: FusedNRRN, images, tile: int, halo: int, blocks: bool = False, per_batch=None):
    """Run ``fused`` over z-scored (prev, centre, next) images, ``per_batch`` tiles per forward pass (default:
    1 on CPU, where more was not faster, GPU_TILES_PER_BATCH on CUDA). Yields Progress per batch; returns the
    stitched z-scored output and the per-block outputs (StopIteration.value)."""
    shape = images[0].shape
    plan = plan_tiles(shape, tile, halo)
    on_gpu = fused.device.type == "cuda"
    if per_batch is None:
        per_batch = GPU_TILES_PER_BATCH if on_gpu else 1
    output = np.empty(shape, np.float32)
    block_outputs = [np.empty(shape, np.float32) for _ in range(len(fused.blocks))] if blocks else []
    start = time.perf_counter()
    for first in range(0, len(plan), per_batch):
        batch = plan[first : first + per_batch]
        windows = []
        for image in images:
            host = torch.from_numpy(np.stack([image[tile.window] for tile in batch])[:, None])
            if on_gpu:
                host = host.pin_memory()
            windows.append(host.to(fused.device, non_blocking=on_gpu))
        estimate, per_block = fused(*windows, blocks=blocks)
        stitch(output, batch, estimate[:, 0].cpu().numpy())
        for target, block in zip(block_outputs, per_block, strict=True):
            stitch(target, batch, block[:, 0].cpu().numpy())
        yield Progress("denoise", first + len(batch), len(plan), time.perf_counter() - start, "tiles")
    return output, block_outputs


def iter_denoise_slice(
    model: NRRN, prev, centre, next, tile=None, device=None, blocks=False, precision="auto"
) -> Iterator[Progress]:
    """``denoise_slice`` as a generator: yields Progress per batch of tiles (for progress bars and cancelling
    between tiles) and returns what ``denoise_slice`` returns (StopIteration.value)."""
    prev, centre, next = _check_triplet(prev, centre, next)
    device = select_device(device)
    halo = model.halo
    tile = default_tile(device) if tile is None else int(tile)
    check_tile(tile, halo)
    fused = FusedNRRN(model, device, inference_dtype(device, precision))
    centre_stats = slice_stats(centre)
    images = (zscore(prev, slice_stats(prev)), zscore(centre, centre_stats), zscore(next, slice_stats(next)))
    while True:
        try:
            output, block_outputs = yield from run_tiles(fused, images, tile, halo, blocks)
            break
        except torch.cuda.OutOfMemoryError:
            if tile // 2 < halo:
                raise
            torch.cuda.empty_cache()
            warnings.warn(
                f"GPU out of memory with {tile}-pixel tiles: retrying the slice with {tile // 2}-pixel tiles",
                RuntimeWarning,
                stacklevel=2,
            )
            tile //= 2
    denoised = _cast_like(unzscore(output, centre_stats), centre.dtype)
    if not blocks:
        return denoised
    return denoised, [unzscore(block, centre_stats).astype(np.float32) for block in block_outputs]


def denoise_slice(model: NRRN, prev, centre, next, tile=None, device=None, blocks=False, precision="auto"):
    """The denoised ``centre`` slice (numpy, its dtype kept); with ``blocks=True`` also ``[y_1 .. y_K]``, the
    de-normalised float32 estimates after each block, averaged over both branches like the output.

    ``tile``: tile core size in pixels (None: chosen for the device); ``precision``: "auto", "float32",
    "bfloat16" or "float16" for the convolutions ("float32" reproduces the reference network to rounding).
    """
    return run_to_end(iter_denoise_slice(model, prev, centre, next, tile, device, blocks, precision))


def slice_triplet(stack, z: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slices (z-1, z, z+1) of a (Z, Y, X) stack as numpy, reading only those; at an end, the one neighbour
    twice."""
    check_stack(stack)
    depth = stack.shape[0]
    if not 0 <= z < depth:
        raise ValueError(f"slice {z} is outside the stack of {depth} slices")
    before = z - 1 if z > 0 else 1
    after = z + 1 if z < depth - 1 else depth - 2
    return tuple(np.asarray(stack[index]) for index in (before, z, after))


def _as_slice_chunked(stack) -> da.Array:
    if isinstance(stack, da.Array):
        return stack.rechunk({0: 1, 1: -1, 2: -1})
    return da.from_array(stack, chunks=(1, -1, -1))


def denoise_stack(model: NRRN, stack, tile=None, device=None, precision="auto") -> da.Array:
    """The denoised stack, lazily: a dask array of the same shape and dtype, one chunk per slice; computing
    slice z reads input slices z-1, z and z+1 only."""
    check_stack(stack)
    if tile is not None:
        check_tile(int(tile), model.halo)
    inference_dtype(select_device(device), precision)  # a bad device or precision fails now, not per slice
    stack = _as_slice_chunked(stack)
    # Neighbour stacks, one slice per chunk: at each end the one neighbour stands in for the missing one.
    before = da.concatenate([stack[1:2], stack[:-1]])
    after = da.concatenate([stack[1:], stack[-2:-1]])

    def denoise_chunk(prev, centre, next):
        return denoise_slice(model, prev[0], centre[0], next[0], tile, device, precision=precision)[None]

    return da.map_blocks(denoise_chunk, before, stack, after, dtype=stack.dtype, name="nrrn-denoise")


def iter_denoise_slices(model: NRRN, stack, zs=None, tile=None, device=None, precision="auto"):
    """Yield ``(z, denoised slice)`` for each z of ``zs`` (default: all), reading three slices per step: the
    widget and scripts drive it, showing progress and stopping between slices."""
    check_stack(stack)
    for z in range(stack.shape[0]) if zs is None else zs:
        yield z, denoise_slice(model, *slice_triplet(stack, z), tile=tile, device=device, precision=precision)
