"""Finished tiles kept in memory: panning back, toggling a preview or returning to a slice costs nothing.

A least-recently-used cache bounded by the bytes of the pixels it holds. A key names everything a tile's
pixels depend on: the model's weights (a fingerprint of their values, so a retrained or reloaded model is
another model) and depth, the precision and device, the layer data and slice (given by the caller), the
slice statistics and the tile's window and core. A new model, depth or layer data therefore never meets an
old tile; the old ones age out. A limit of 0 keeps nothing.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np

# The default bound: about 40 whole 6144x4096 8-bit slices, or 1000 viewports of 1000x1000.
DEFAULT_CACHE_BYTES = 1 << 30


def model_fingerprint(model) -> str:
    """A digest of the model's depth, width and every weight's values (not its identity in memory)."""
    digest = hashlib.blake2b(f"{model.depth}/{model.width}/{model.every_depth}".encode(), digest_size=16)
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class TileCache:
    """LRU of finished tiles, at most ``max_bytes`` of pixels; thread-safe (a preview and a prefetch share
    it)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES):
        if max_bytes < 0:
            raise ValueError(f"the tile cache limit must be 0 (no cache) or more bytes, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._tiles: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._tiles)

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            pixels = self._tiles.get(key)
            if pixels is not None:
                self._tiles.move_to_end(key)
            return pixels

    def put(self, key: Hashable, pixels: np.ndarray) -> None:
        """Keep ``pixels`` (read-only from now on) under ``key``, dropping the least recently used tiles
        beyond the bound; a tile larger than the bound is not kept."""
        if pixels.nbytes > self.max_bytes:
            return
        pixels.flags.writeable = False
        with self._lock:
            old = self._tiles.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._tiles[key] = pixels
            self._bytes += pixels.nbytes
            while self._bytes > self.max_bytes:
                _, dropped = self._tiles.popitem(last=False)
                self._bytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._tiles.clear()
            self._bytes = 0
