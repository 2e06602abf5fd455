"""Helpers shared by the denoise dock and the resin-profile dock: one slice through the engine, the cache
of whole-slice statistics, and the resin lines layer both docks read."""

from __future__ import annotations

from collections import OrderedDict

from napari_nrrn.plugin._denoise_layers import registered_triplet

RESIN_LINES_NAME = "resin lines"
DRAWN_ON = "nrrn_drawn_on"  # metadata of a lines layer made here: the image layer whose grid it uses
# Slices whose statistics are kept: a few triplets' worth for every layer the user moves between.
STATS_CACHE_SIZE = 64


def slice_events(model, stack, z: int, stats_of=None, **options):
    """The engine's events for slice ``z`` of ``stack``; returns (the engine's result, the centre slice).

    The slices are read here, in the worker: a lazy stack may be slow to read; the neighbours are registered
    onto the centre when the model was trained so, as ``denoise_stack`` does. ``stats_of(slices)`` gives
    the whole-slice statistics of the slices as read (default: computed here).
    """
    from napari_nrrn.engine.inference import iter_denoise_slice
    from napari_nrrn.engine.registration import model_registers

    slices, stats = registered_triplet(stack, z, model_registers(model), stats_of)
    result = yield from iter_denoise_slice(model, *slices, stats=stats, **options)
    return result, slices[1]


class SliceStatsCache:
    """Whole-slice (mean, std) of the triplet of slice z of a layer, per (layer, z), for the engine's
    ``stats``. A layer's entries go when its data is replaced."""

    def __init__(self, size: int = STATS_CACHE_SIZE):
        self._size = size
        self._stats: OrderedDict = OrderedDict()
        self._watched: set = set()

    def watch(self, layer) -> None:
        """Forget ``layer``'s statistics when its data changes (call in the GUI thread)."""
        if layer.unique_id not in self._watched:
            self._watched.add(layer.unique_id)
            layer.events.data.connect(lambda _: self.forget(layer.unique_id))

    def forget(self, layer_id) -> None:
        for key in [key for key in self._stats if key[0] == layer_id]:
            del self._stats[key]

    def getter(self, layer, z: int, depth: int):
        """``stats_of(slices)`` for ``slice_events``: the cached statistics, else computed and kept."""
        from napari_nrrn.engine.inference import triplet_stats

        key = (layer.unique_id, z)

        def stats_of(slices):
            stats = self._stats.get(key)
            if stats is None:
                stats = self._stats[key] = triplet_stats(slices, z, depth)
                while len(self._stats) > self._size:
                    self._stats.popitem(last=False)
            return stats

        return stats_of


def add_resin_lines(viewer, like=None):
    """Add a 2-D Shapes layer named ``RESIN_LINES_NAME`` in line-drawing mode, on the (y, x) pixel grid of
    the image layer ``like`` if given (recorded as ``DRAWN_ON`` in its metadata). 2-D, so its lines show
    (and are measured) on every slice of a stack."""
    grid = {}
    if like is not None:
        grid = {
            "scale": tuple(like.scale[-2:]),
            "translate": tuple(like.translate[-2:]),
            "metadata": {DRAWN_ON: like.name},
        }
    layer = viewer.add_shapes(
        ndim=2, name=RESIN_LINES_NAME, edge_color="yellow", edge_width=2, face_color="transparent", **grid
    )
    layer.mode = "add_line"
    return layer
