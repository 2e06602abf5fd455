"""Section 3 of the denoise dock: denoise what is on screen (or the whole slice), by hand or whenever the
slice or the view changes.

A preview of the visible region takes its normalisation from the whole slices (cached per layer and slice,
so a pan or a zoom does not recompute it), so its pixels equal those of the full run there (within one grey
level: the region is tiled for itself). Tiles are computed centre of the view first and each is painted as
it finishes, over the raw pixels; the status says how many are left. A pan or zoom while a preview of the
same slice runs does not restart it: the running job plans the new view between two tiles, dropping the
tiles that left it. Finished tiles are kept in a tile cache (a setting; 0 turns it off), so returning to a
view or a slice costs nothing; when the view rests, the same region of the slices above and below is
denoised in the background (prefetch, with auto-preview), cancelled by any interaction.
"""

from __future__ import annotations

import time

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QCheckBox, QPushButton, QSpinBox

from napari_nrrn.engine.registration import model_registers
from napari_nrrn.engine.tile_cache import DEFAULT_CACHE_BYTES, TileCache
from napari_nrrn.plugin._denoise_layers import (
    PREVIEW,
    current_slice,
    registered_triplet,
    result_name,
    show_result,
    slice_result,
    stack_data,
    visible_region,
)
from napari_nrrn.plugin._dock_layout import DockSection, WrappedLabel, labelled
from napari_nrrn.plugin._dock_state import PREVIEW_JOB, DockJobs, DockState
from napari_nrrn.plugin._viewer_helpers import SliceStatsCache

PREFETCH_JOB = "prefetch"
# Auto-preview waits this long after the last slice or view change, so scrolling through z or panning
# starts one job, not many.
PREVIEW_DEBOUNCE_MS = 300


def view_events(make_session, stack, z: int, stats_of, view, data_key, centre_out: list, register=False):
    """The engine's tile events for the part of slice ``z`` of ``stack`` that ``view()`` returns, following
    it (``InferenceSession.iter_view``). The session and the slices are made here, in the worker: a lazy
    stack may be slow to read, and a session refused (a tile under the halo) is the job's error. The centre
    slice goes into ``centre_out`` before the first tile, for the raw pixels around the finished tiles. The
    neighbours are shifted onto the centre with ``register``, as ``denoise_stack`` does, interpolated only
    where the view's tiles read them."""
    session = make_session()
    slices, stats = registered_triplet(stack, z, register, stats_of, lazy=True)
    centre_out.append(slices[1])
    return (yield from session.iter_view(slices, stats, view, data_key))


def prefetch_events(session, stack, zs, stats_of, region, data_key, register=False):
    """Fill the session's tile cache with ``region`` of the slices ``zs``, one tile per event."""
    for z in zs:
        slices, stats = registered_triplet(stack, z, register, stats_of(z), lazy=True)
        yield from session.iter_view(slices, stats, lambda: region, data_key(z))


def view_outside(viewer, layer) -> bool:
    """True when the canvas (a 2-D view) shows no pixel of the layer's slice: a view panned off the image."""
    dims = viewer.dims
    if dims.ndisplay != 2:
        return False
    camera = viewer.scene.camera
    half = np.asarray(viewer.canvas.viewbox_size(viewer.layers), float) / (2 * camera.zoom)
    corners = []
    for dy in (-1, 1):
        for dx in (-1, 1):
            point = np.array(dims.point, float)
            point[-2:] = camera.center[-2] + dy * half[0], camera.center[-1] + dx * half[1]
            corners.append(layer.world_to_data(point)[-2:])
    low, high = np.min(corners, axis=0), np.max(corners, axis=0)
    last = np.asarray(stack_data(layer).shape[-2:]) - 0.5
    return bool(np.any(high < -0.5) or np.any(low > last))


class PreviewSection(DockSection):
    def __init__(self, state: DockState, jobs: DockJobs, viewer):
        super().__init__("3. Preview")
        self.state, self.jobs, self.viewer = state, jobs, viewer
        self.stats_cache = SliceStatsCache()
        self.tile_cache = TileCache(DEFAULT_CACHE_BYTES)
        self._session = None  # (its key, the InferenceSession): the fast network is built once per model
        self._data_versions: dict = {}  # layer id -> how many times its data was replaced (cache keys)
        self._pending = False
        self._previewed: tuple | None = None  # (layer, z, region) of the last preview started or followed
        self._view: tuple | None = None  # the region the running preview follows, read by its worker
        self._painted: dict = {}  # tile bounds -> pixels of the running preview's slice
        self._canvas = None  # (region, image): the preview layer's pixels, painted tile by tile
        self._centre: list = []  # the running preview's centre slice, once its worker has read it
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(0, 1 << 16)
        self.tile_spin.setSingleStep(256)
        self.tile_spin.setSpecialValueText("whole slice")
        self.tile_spin.setToolTip(
            "Tile size in pixels for preview and full run (the result is the same; smaller tiles use less "
            "memory, e.g. on a GPU)"
        )
        self.cache_spin = QSpinBox()
        self.cache_spin.setRange(0, 1 << 20)
        self.cache_spin.setSingleStep(256)
        self.cache_spin.setSuffix(" MiB")
        self.cache_spin.setSpecialValueText("off")
        self.cache_spin.setValue(DEFAULT_CACHE_BYTES >> 20)
        self.cache_spin.setToolTip(
            "Memory for finished preview tiles: returning to a view or a slice shows them at once"
        )
        self.cache_spin.valueChanged.connect(self._resize_cache)
        self.whole_slice = QCheckBox("Whole slice")
        self.whole_slice.setToolTip(
            "Denoise the whole slice, not only the part on screen (the pixels on screen are the same)"
        )
        self.preview_button = QPushButton("Preview what is on screen")
        self.preview_button.clicked.connect(lambda: self.preview())
        self.whole_slice.toggled.connect(self._name_button)
        self.auto_preview = QCheckBox("Re-run when the slice or the view changes")
        self.auto_preview.setToolTip(
            "When the view rests, the slices above and below are denoised too, in the background"
        )
        self.preview_status = WrappedLabel()
        self.addWidget(labelled("Tile", self.tile_spin))
        self.addWidget(labelled("Tile cache", self.cache_spin))
        self.addWidget(self.whole_slice)
        self.addWidget(self.preview_button)
        self.addWidget(self.auto_preview)
        self.addWidget(self.preview_status)
        self.expand(animate=False)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DEBOUNCE_MS)
        self._timer.timeout.connect(self._auto_preview)
        for event in (
            viewer.dims.events.current_step,
            viewer.scene.camera.events.center,
            viewer.scene.camera.events.zoom,
        ):
            event.connect(self._on_view_change)
        jobs.finished.connect(self._start_pending)
        jobs.failed.connect(self._on_failed)
        jobs.refused.connect(self._on_failed)
        self.tile_spin.valueChanged.connect(self._set_tile)
        self._set_tile()
        for event in (state.events.model, state.events.input_layer, state.events.running):
            event.connect(self.update_buttons)
        self.update_buttons()

    def tile(self) -> int | None:
        """The tile size for every job, None for the whole slice."""
        return self.tile_spin.value() or None

    def region(self, layer) -> tuple[int, int, int, int] | None:
        """What the preview denoises: the visible part of the slice (None: the whole slice)."""
        return None if self.whole_slice.isChecked() else visible_region(self.viewer, layer)

    def session(self, model, device):
        """The inference session of ``model`` on ``device`` at the chosen tile, built once and kept while they
        stay the same (the model by its weights: the depth explorer hands out a new cut per run)."""
        from napari_nrrn.engine.session import InferenceSession
        from napari_nrrn.engine.tile_cache import model_fingerprint

        tile = self.tile()
        key = (model_fingerprint(model), device, tile, self.tile_cache.max_bytes)
        if self._session is None or self._session[0] != key:
            self._session = key, InferenceSession(model, device, tile=tile, cache=self.tile_cache)
        return self._session[1]

    def preview(self):
        """Denoise what is on screen of the slice on screen (or the whole slice) into "<input> NRRN preview",
        a one-slice layer placed over that part of the slice, painted tile by tile.

        While a preview of the same slice runs, it follows the new view instead; a preview of another slice
        stops the running one (between tiles) and starts once it ended. A view showing nothing of the
        slice starts nothing and says so.
        """
        state = self.state
        layer, model = state.require_stack(), state.require_model()
        if layer is None or model is None:
            return None
        self.cancel_prefetch()
        z = current_slice(layer, self.viewer.dims.point)
        if not self.whole_slice.isChecked() and view_outside(self.viewer, layer):
            self.preview_status.setText(
                f"No part of {layer.name} is on screen: pan or zoom to it to preview it."
            )
            return None
        stack = stack_data(layer)
        height, width = (int(n) for n in stack.shape[-2:])
        region = self.region(layer)
        whole = (0, height, 0, width)
        running = self.jobs.workers.get(PREVIEW_JOB)
        if running is not None:
            if self._previewed is not None and self._previewed[:2] == (layer, z) and not running.cancelled:
                self._previewed = (layer, z, region)
                self._follow(layer, z, whole if region is None else region)
                return running
            self._pending = True
            running.quit()
            return running
        self._previewed = (layer, z, region)
        self._painted, self._centre, self._canvas = {}, [], None
        self._view = whole if region is None else region
        started = time.perf_counter()

        def on_event(event) -> None:
            self._painted[event.bounds] = event.pixels
            name = result_name(layer.name, PREVIEW)
            if self._canvas is None or name not in self.viewer.layers:  # the first tile, or layer removed
                self._follow(layer, z, self._view)
            else:
                self._paint(event.bounds, event.pixels)
                self.viewer.layers[name].refresh()
            self.preview_status.setText(
                f"Denoising {self._where(z)}: {event.total - event.done} tiles left"
                + (" (from the cache)" if event.cached else "")
                + "…"
            )

        def done(finished_view, _) -> None:
            if finished_view != self._view:  # the view moved as the job ended: preview it once it has
                self._pending = True
                return
            y0, y1, x0, x1 = self._view
            seconds = time.perf_counter() - started
            self.preview_status.setText(
                f"{self._where(z).capitalize()} ({y1 - y0}×{x1 - x0} px) denoised in {seconds:.2f} s."
            )
            if self.auto_preview.isChecked():
                self._prefetch(layer, z, self._view)

        def stopped() -> None:
            self.preview_status.setText(f"Preview of {self._where(z)} stopped.")

        self.preview_status.setText(f"Denoising {self._where(z)}…")
        model, device = state.model_for_run(), state.device
        register = model_registers(model)
        stats_of = self._stats_getter(layer, z)
        data_key = self._data_key(layer, z)
        centre = self._centre
        return self.jobs.run(
            PREVIEW_JOB,
            lambda _: view_events(
                lambda: self.session(model, device),
                *(stack, z, stats_of, lambda: self._view, data_key, centre, register),
            ),
            doing=f"computing the preview of {self._where(z)} of {layer.name}",
            total=1,
            describe=lambda event: f"NRRN preview of slice {z}: tile {event.done}/{event.total}",
            on_event=on_event,
            on_done=done,
            on_stopped=stopped,
        )

    def cancel_prefetch(self) -> None:
        self.jobs.cancel(PREFETCH_JOB)

    def update_buttons(self) -> None:
        state = self.state
        self.preview_button.setEnabled(state.can_denoise() and not state.is_training())

    def _on_failed(self, kind: str, message: str) -> None:
        if kind == PREVIEW_JOB:
            self.preview_status.setText(f"Preview failed: {message}")

    def _set_tile(self, *_) -> None:
        self.state.tile = self.tile()

    # ---------------------------------------------------------------- painting

    def _where(self, z: int) -> str:
        layer = self._previewed[0] if self._previewed else None
        y0, y1, x0, x1 = self._view
        if layer is not None and (y0, x0) == (0, 0) and (y1, x1) == tuple(stack_data(layer).shape[-2:]):
            return f"slice {z}"
        return f"slice {z}, y {y0}:{y1}, x {x0}:{x1}"

    def _follow(self, layer, z: int, region) -> None:
        """Make ``region`` the one the running preview computes and the preview layer shows: its raw pixels
        (once read) with every tile finished so far painted over them."""
        self._view = region
        if not self._centre:  # nothing read yet: the first tile builds the layer
            return
        y0, y1, x0, x1 = region
        image = np.array(self._centre[0][y0:y1, x0:x1])
        self._canvas = region, image
        for bounds, pixels in self._painted.items():
            self._paint(bounds, pixels)
        placed = slice_result(layer, z, image, (y0, x0))
        show_result(self.viewer, result_name(layer.name, PREVIEW), layer, *placed)

    def _paint(self, bounds, pixels) -> None:
        (y0, y1, x0, x1), image = self._canvas
        top, bottom = max(bounds[0], y0), min(bounds[1], y1)
        left, right = max(bounds[2], x0), min(bounds[3], x1)
        if top < bottom and left < right:
            image[top - y0 : bottom - y0, left - x0 : right - x0] = pixels[
                top - bounds[0] : bottom - bounds[0], left - bounds[2] : right - bounds[2]
            ]

    # ---------------------------------------------------------------- caches and prefetch

    def _stats_getter(self, layer, z: int):
        self.stats_cache.watch(layer)
        if layer.unique_id not in self._data_versions:
            self._data_versions[layer.unique_id] = 0
            layer.events.data.connect(lambda _: self._new_data(layer.unique_id))
        return self.stats_cache.getter(layer, z, int(stack_data(layer).shape[0]))

    def _data_key(self, layer, z: int):
        """What names the pixels of slice ``z`` of ``layer`` in the tile cache: new data, a new key."""
        return layer.unique_id, self._data_versions.get(layer.unique_id, 0), z

    def _new_data(self, layer_id) -> None:
        self._data_versions[layer_id] += 1

    def _resize_cache(self, mebibytes: int) -> None:
        self.tile_cache = TileCache(mebibytes << 20)
        self._session = None

    def _prefetch(self, layer, z: int, region) -> None:
        """Denoise ``region`` of slices z-1 and z+1 into the tile cache, in the background; any interaction
        cancels it (``_on_view_change``, ``preview``)."""
        depth = int(stack_data(layer).shape[0])
        zs = [n for n in (z + 1, z - 1) if 0 <= n < depth]
        if not zs or self.tile_cache.max_bytes == 0 or self.state.model is None:
            return
        model = self.state.model_for_run()
        stack, register = stack_data(layer), model_registers(model)
        session = self.session(model, self.state.device)
        getters = {n: self._stats_getter(layer, n) for n in zs}
        keys = {n: self._data_key(layer, n) for n in zs}
        self.jobs.run(
            PREFETCH_JOB,
            lambda _: prefetch_events(
                session, stack, zs, getters.__getitem__, region, keys.__getitem__, register
            ),
            doing=f"denoising slices {zs} of {layer.name} ahead",
            total=1,
            describe=lambda event: f"NRRN prefetch of slices {zs}: tile {event.done}/{event.total}",
            on_done=lambda _, __: None,
        )

    # ---------------------------------------------------------------- auto-preview

    def _name_button(self, whole: bool) -> None:
        self.preview_button.setText("Preview this slice" if whole else "Preview what is on screen")

    def _start_pending(self, kind: str) -> None:
        if kind == PREVIEW_JOB and self._pending:
            self._pending = False
            self.preview()

    def _on_view_change(self, event=None) -> None:
        self.cancel_prefetch()
        if self.auto_preview.isChecked():
            self._timer.start()

    def _auto_preview(self) -> None:
        """Re-run the preview if the slice or the part of it on screen is not the one last previewed. Decided
        when the debounce ends: napari updates the visible corners when it draws, after the camera event."""
        layer = self.state.input_layer
        if self.state.model is None or layer is None:
            return
        shown = (layer, current_slice(layer, self.viewer.dims.point), self.region(layer))
        if shown != self._previewed:
            self.preview()
