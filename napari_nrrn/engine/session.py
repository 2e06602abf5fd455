"""An inference session: the fast network built once for a model, device and precision, then run over many
slices, regions and views tile by tile, each finished tile an event.

``iter_denoise_slice``, ``denoise_stack`` and the dock's preview use one: a stack builds its
``FusedNRRN`` once, not per slice. Tiles run centre first (nearest the middle of the region or view
first), so a viewer paints what the user looks at before the edges. ``iter_view`` follows a view that
moves while it runs: between two tiles it plans the view again, so tiles that left the view are never run
and the new ones are queued. With a ``TileCache`` finished tiles are kept and served again (never for
per-block outputs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np
import torch

from napari_nrrn.engine.device import select_device
from napari_nrrn.engine.events import Progress
from napari_nrrn.engine.fused import FusedNRRN
from napari_nrrn.engine.normalise import unzscore, zscore
from napari_nrrn.engine.tile_cache import TileCache, model_fingerprint
from napari_nrrn.engine.tiling import Tile, bounds, centre_first, check_tile, plan_region, plan_tiles

Region = tuple[int, int, int, int]


@dataclass(frozen=True)
class TileDone(Progress):
    """A finished tile: ``pixels``, the denoised centre slice (its dtype) at ``bounds`` (y0, y1, x0, x1) of
    the slice; ``cached`` when it came from the tile cache. ``total - done`` tiles are left."""

    bounds: Region = (0, 0, 0, 0)
    pixels: np.ndarray | None = field(default=None, repr=False, compare=False)
    cached: bool = False


def _geometry(tile: Tile) -> tuple[int, ...]:
    (wy, wx), (cy, cx) = tile.window, tile.core
    return (wy.start, wy.stop, wx.start, wx.stop, cy.start, cy.stop, cx.start, cx.stop)


def cast_like(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``image`` as ``dtype``: integers rounded and clipped to the dtype's range, floats cast as they are."""
    if np.issubdtype(dtype, np.integer):
        limits = np.iinfo(dtype)
        return np.clip(np.rint(image), limits.min, limits.max).astype(dtype)
    return image.astype(dtype)


def _keep_missing(image: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Where the centre has no value, neither has the output: its own NaN or infinity, not an estimate."""
    if np.issubdtype(centre.dtype, np.floating):
        missing = ~np.isfinite(centre)
        image[missing] = centre[missing]
    return image


class InferenceSession:
    """``model`` prepared for ``device`` at ``dtype`` (a torch dtype, see ``inference_dtype``), run in tiles
    of at most ``tile`` pixels per side (None: ``default_tile``). ``cache``: a ``TileCache`` for runs given
    a ``data_key`` (what names the layer data and slice: the caller's)."""

    def __init__(self, model, device=None, dtype=None, tile=None, cache: TileCache | None = None):
        from napari_nrrn.engine.inference import GPU_TILES_PER_BATCH, default_tile, inference_dtype

        self.device = select_device(device)
        self.dtype = inference_dtype(self.device) if dtype is None else dtype
        self.halo = model.halo
        self.tile = default_tile(self.device) if tile is None else int(tile)
        check_tile(self.tile, self.halo)
        self.per_batch = GPU_TILES_PER_BATCH if self.device.type == "cuda" else 1
        self.fused = FusedNRRN(model, self.device, self.dtype)
        self.cache = cache if cache is not None and cache.max_bytes > 0 else None
        self._model_key = (
            None
            if self.cache is None
            else (model_fingerprint(model), model.depth, str(self.dtype), str(self.device))
        )

    def plan(self, shape: tuple[int, int], region: Region | None = None) -> list[Tile]:
        """The tiles of the whole slice (None) or of ``region``, nearest the region's middle first."""
        if region is None:
            region = (0, shape[0], 0, shape[1])
            tiles = plan_tiles(shape, self.tile, self.halo)
        else:
            tiles = plan_region(shape, region, self.tile, self.halo)
        return centre_first(tiles, ((region[0] + region[1]) / 2, (region[2] + region[3]) / 2))

    def iter_slice(self, images, stats, region: Region | None = None, blocks=False, data_key=None):
        """Yield ``TileDone`` per tile of ``region`` (None: the whole slice) of the (prev, centre, next)
        ``images``, z-scored with their whole-slice ``stats``; return (output, per-block outputs): the
        denoised region in the centre's dtype, and with ``blocks`` the per-depth outputs, float32."""
        centre = images[1]
        shape = centre.shape
        y0, y1, x0, x1 = (0, shape[0], 0, shape[1]) if region is None else region
        output = np.empty((y1 - y0, x1 - x0), centre.dtype)
        block_outputs = [np.empty(output.shape, np.float32) for _ in self.fused.blocks] if blocks else []
        tiles = self.plan(shape, region)
        start = time.perf_counter()
        results = self.iter_tiles(images, stats, tiles, blocks, data_key)
        for done, (tile, pixels, per_block, cached) in enumerate(results, 1):
            ty0, ty1, tx0, tx1 = bounds(tile)
            target = (slice(ty0 - y0, ty1 - y0), slice(tx0 - x0, tx1 - x0))
            output[target] = pixels
            for whole, part in zip(block_outputs, per_block, strict=True):
                whole[target] = part
            elapsed = time.perf_counter() - start
            yield TileDone("denoise", done, len(tiles), elapsed, "tiles", bounds(tile), pixels, cached)
        return output, block_outputs

    def iter_tiles(self, images, stats, tiles: list[Tile], blocks=False, data_key=None):
        """Yield (tile, pixels, per-block pixels, cached) for ``tiles`` in their order, batched."""
        for batch in self._batches(tiles):
            yield from self._run(images, stats, batch, blocks, data_key)

    def iter_view(self, images, stats, view: Callable[[], Region | None], data_key=None):
        """Yield ``TileDone`` per tile of the region ``view()`` returns, planned again before every batch: a
        tile that left the view is dropped, the tiles of the new view queued, centre first. Ends when the
        current view's tiles are all done, returning that view, or at once when ``view()`` returns None
        (returning None)."""
        shape = images[1].shape
        finished: set[tuple[int, ...]] = set()
        start = time.perf_counter()
        while (region := view()) is not None:
            todo = [tile for tile in self.plan(shape, region) if _geometry(tile) not in finished]
            if not todo:
                return region
            batch = self._batches(todo)[0]
            results = self._run(images, stats, batch, False, data_key)
            for index, (tile, pixels, _, cached) in enumerate(results):
                finished.add(_geometry(tile))
                done = len(finished)
                total = done + len(todo) - index - 1
                elapsed = time.perf_counter() - start
                yield TileDone("preview", done, total, elapsed, "tiles", bounds(tile), pixels, cached)
        return None

    def _batches(self, tiles: list[Tile]) -> list[list[Tile]]:
        """Consecutive tiles of one window shape, at most ``per_batch`` to a forward pass."""
        batches: list[list[Tile]] = []
        for tile in tiles:
            last = batches[-1] if batches else None
            shape = _window_shape(tile)
            if last is not None and len(last) < self.per_batch and _window_shape(last[0]) == shape:
                last.append(tile)
            else:
                batches.append([tile])
        return batches

    def _run(self, images, stats, batch: list[Tile], blocks: bool, data_key: Hashable | None):
        """[(tile, pixels, per-block pixels, cached)] for ``batch``: from the cache where it has them, one
        forward pass for the rest."""
        use_cache = self.cache is not None and data_key is not None and not blocks
        keys = [(self._model_key, data_key, tuple(stats), _geometry(t)) for t in batch] if use_cache else []
        found = [self.cache.get(key) for key in keys] if use_cache else [None] * len(batch)
        missing = [index for index, hit in enumerate(found) if hit is None]
        computed = {}
        if missing:
            on_gpu = self.device.type == "cuda"
            windows = []
            for image, image_stats in zip(images, stats, strict=True):
                cut = np.stack([zscore(image[batch[index].window], image_stats) for index in missing])
                host = torch.from_numpy(cut).unsqueeze(1)
                if on_gpu:
                    host = host.pin_memory()
                windows.append(host.to(self.device, non_blocking=on_gpu))
            estimate, per_block = self.fused(*windows, blocks=blocks)
            for row, index in enumerate(missing):
                tile = batch[index]
                centre = images[1][tile.core]
                pixels = _keep_missing(
                    cast_like(unzscore(estimate[row, 0].cpu().numpy()[tile.crop], stats[1]), centre.dtype),
                    centre,
                )
                parts = [
                    _keep_missing(
                        unzscore(block[row, 0].cpu().numpy()[tile.crop], stats[1]).astype(np.float32), centre
                    )
                    for block in per_block
                ]
                if use_cache:
                    self.cache.put(keys[index], pixels)
                computed[index] = (pixels, parts)
        return [
            (tile, *(computed[index] if index in computed else (found[index], [])), index not in computed)
            for index, tile in enumerate(batch)
        ]


def _window_shape(tile: Tile) -> tuple[int, int]:
    return tile.window[0].stop - tile.window[0].start, tile.window[1].stop - tile.window[1].start
