"""Section 3 of the denoise dock: denoise what is on screen (or the whole slice), by hand or whenever the
slice or the view changes.

A preview of the visible region takes its normalisation from the whole slices (cached per layer and slice,
so a pan or a zoom does not recompute it), so its pixels equal those of the full run there exactly.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QCheckBox, QLabel, QPushButton, QSpinBox

from napari_nrrn.plugin._denoise_layers import (
    PREVIEW,
    current_slice,
    result_name,
    show_result,
    slice_result,
    stack_data,
    triplet,
    visible_region,
)
from napari_nrrn.plugin._dock_layout import DockSection, labelled

if TYPE_CHECKING:
    from napari_nrrn.plugin.denoise_widget import DenoiseWidget

PREVIEW_JOB = "preview"
# Auto-preview waits this long after the last slice or view change, so scrolling through z or panning
# starts one job, not many.
PREVIEW_DEBOUNCE_MS = 300
# Slices whose statistics are kept: a few triplets' worth for every layer the user moves between.
STATS_CACHE_SIZE = 64


def slice_events(model, stack, z: int, stats_of=None, **options):
    """The engine's events for slice ``z`` of ``stack``; returns (the engine's result, the centre slice).

    The slices are read here, in the worker: a lazy stack may be slow to read; the neighbours are registered
    onto the centre when the model was trained so, as ``denoise_stack`` does. ``stats_of(slices)`` gives
    their whole-slice statistics (default: the engine computes them).
    """
    from napari_nrrn.engine.inference import iter_denoise_slice
    from napari_nrrn.engine.registration import model_registers

    slices = triplet(stack, z, model_registers(model))
    stats = None if stats_of is None else stats_of(slices)
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

    def getter(self, layer, z: int, depth: int, registered: bool = False):
        """``stats_of(slices)`` for ``slice_events``: the cached statistics, else computed and kept;
        ``registered``: of the neighbours shifted onto the centre (their statistics differ)."""
        from napari_nrrn.engine.inference import triplet_stats

        key = (layer.unique_id, z, registered)

        def stats_of(slices):
            stats = self._stats.get(key)
            if stats is None:
                stats = self._stats[key] = triplet_stats(slices, z, depth)
                while len(self._stats) > self._size:
                    self._stats.popitem(last=False)
            return stats

        return stats_of


class PreviewSection(DockSection):
    def __init__(self, dock: DenoiseWidget):
        super().__init__("3. Preview")
        self.dock = dock
        self.stats_cache = SliceStatsCache()
        self._pending = False
        self._previewed: tuple | None = None  # (layer, z, region) of the last preview started
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(0, 1 << 16)
        self.tile_spin.setSingleStep(256)
        self.tile_spin.setSpecialValueText("whole slice")
        self.tile_spin.setToolTip(
            "Tile size in pixels for preview and full run (the result is the same; smaller tiles use less "
            "memory, e.g. on a GPU)"
        )
        self.whole_slice = QCheckBox("Whole slice")
        self.whole_slice.setToolTip(
            "Denoise the whole slice, not only the part on screen (the pixels on screen are the same)"
        )
        self.preview_button = QPushButton("Preview what is on screen")
        self.preview_button.clicked.connect(lambda: self.preview())
        self.whole_slice.toggled.connect(self._name_button)
        self.auto_preview = QCheckBox("Re-run when the slice or the view changes")
        self.preview_status = QLabel()
        self.preview_status.setWordWrap(True)
        self.addWidget(labelled("Tile", self.tile_spin))
        self.addWidget(self.whole_slice)
        self.addWidget(self.preview_button)
        self.addWidget(self.auto_preview)
        self.addWidget(self.preview_status)
        self.expand(animate=False)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DEBOUNCE_MS)
        self._timer.timeout.connect(self._auto_preview)
        viewer = dock.viewer
        for event in (
            viewer.dims.events.current_step,
            viewer.scene.camera.events.center,
            viewer.scene.camera.events.zoom,
        ):
            event.connect(self._on_view_change)
        dock.job_finished.connect(self._start_pending)

    def tile(self) -> int | None:
        """The tile size for every job, None for the whole slice."""
        return self.tile_spin.value() or None

    def region(self, layer) -> tuple[int, int, int, int] | None:
        """What the preview denoises: the visible part of the slice (None: the whole slice)."""
        return None if self.whole_slice.isChecked() else visible_region(self.dock.viewer, layer)

    def preview(self):
        """Denoise what is on screen of the slice on screen (or the whole slice) into "<input> NRRN preview",
        a one-slice layer placed over that part of the slice.

        A preview asked for while one runs stops the running one (between tiles) and starts once it ended.
        """
        running = self.dock.jobs.get(PREVIEW_JOB)
        if running is not None:
            self._pending = True
            running.quit()
            return running
        dock = self.dock
        layer, model = dock.require_stack(), dock.require_model()
        if layer is None or model is None:
            return None
        z, region = current_slice(layer, dock.viewer.dims.point), self.region(layer)
        self._previewed = (layer, z, region)
        stack = stack_data(layer)
        where = (
            f"slice {z}"
            if region is None
            else f"slice {z}, y {region[0]}:{region[1]}, x {region[2]}:{region[3]}"
        )
        started = time.perf_counter()

        def done(result, _) -> None:
            output, _centre = result
            origin = (0, 0) if region is None else (region[0], region[2])
            placed = slice_result(layer, z, output, origin)
            show_result(dock.viewer, result_name(layer.name, PREVIEW), layer, *placed)
            seconds = time.perf_counter() - started
            self.preview_status.setText(
                f"{where.capitalize()} ({output.shape[0]}×{output.shape[1]} px) denoised in {seconds:.2f} s."
            )

        def stopped() -> None:
            self.preview_status.setText(f"Preview of {where} stopped.")

        self.preview_status.setText(f"Denoising {where}…")
        self.stats_cache.watch(layer)
        from napari_nrrn.engine.registration import model_registers

        model, tile, device = dock.model_for_run(), self.tile(), dock.device()
        stats_of = self.stats_cache.getter(layer, z, int(stack.shape[0]), model_registers(model))
        return dock.run_job(
            PREVIEW_JOB,
            lambda _: slice_events(model, stack, z, stats_of, tile=tile, device=device, region=region),
            doing=f"computing the preview of {where} of {layer.name}",
            total=1,
            describe=lambda event: f"NRRN preview of {where}: tile {event.done}/{event.total}",
            on_done=done,
            on_stopped=stopped,
        )

    def update_buttons(self) -> None:
        dock = self.dock
        ready = dock.model is not None and dock.input_layer is not None
        self.preview_button.setEnabled(ready and not dock.is_training())

    def _name_button(self, whole: bool) -> None:
        self.preview_button.setText("Preview this slice" if whole else "Preview what is on screen")

    def _start_pending(self, kind: str) -> None:
        if kind == PREVIEW_JOB and self._pending:
            self._pending = False
            self.preview()

    def _on_view_change(self, event=None) -> None:
        if self.auto_preview.isChecked():
            self._timer.start()

    def _auto_preview(self) -> None:
        """Re-run the preview if the slice or the part of it on screen is not the one last previewed. Decided
        when the debounce ends: napari updates the visible corners when it draws, after the camera event."""
        layer = self.dock.input_layer
        if self.dock.model is None or layer is None:
            return
        shown = (layer, current_slice(layer, self.dock.viewer.dims.point), self.region(layer))
        if shown != self._previewed:
            self.preview()
