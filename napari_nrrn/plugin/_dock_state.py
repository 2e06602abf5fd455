"""What the sections of the denoise dock share: one evented state and one job runner.

``DockState`` (a psygnal evented dataclass) holds the model, the input layer, the device, the tile, the depth
every run uses and which jobs run. A section writes the fields it owns (the data section the input layer, the
model section the model and device, the preview section the tile, the depth explorer the depth) and follows
the others' events (``state.events.model.connect(...)``), so no section calls the dock or a sibling.

``DockJobs`` is the one runner of all sections: it drives an engine generator through
``_denoise_jobs.start_job``, one job at a time per kind, keeps ``state.running`` up to date and tells what
happens: ``started(kind, doing, total)``, ``progress(kind, event)``, ``refused(kind, message)`` (the engine
refused the arguments: nothing started), ``failed(kind, message)`` (an error in the worker) and
``finished(kind)``; the messages are those of the notification.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from napari.utils.notifications import show_error
from psygnal import evented
from qtpy.QtCore import QObject, Signal

from napari_nrrn.plugin._denoise_jobs import plain_message, start_job

NOISE_JOB = "noise"
TRAIN = "train"
PREVIEW_JOB = "preview"
BLOCKS_JOB = "blocks"
STACK_JOB = "stack"
EXPORT_JOB = "export"


@evented
@dataclass
class DockState:
    """The dock's shared state; each field has an event of its name in ``state.events``."""

    model: Any = None
    model_origin: str = ""  # where the model came from, in words ("shipped model", "trained on ...")
    input_layer: Any = None  # the napari Image layer to denoise
    device: str | None = None  # None: automatic
    tile: int | None = None  # None: whole slices
    depth: int | None = None  # the depth every run uses (None: the model's full depth)
    running: tuple[str, ...] = ()  # kinds of the jobs running, in the order they started

    def set_model(self, model, origin: str) -> None:
        """Make ``model`` the one every job uses; ``origin`` first, so followers of ``model`` read it."""
        self.model_origin = origin
        self.depth = None  # the full depth, until the depth explorer says otherwise
        self.model = model

    def model_for_run(self):
        """The model cut to the chosen depth (the model itself at full depth)."""
        model, depth = self.model, self.depth
        if model is None or depth is None or depth == model.depth:
            return model
        return model.cut(depth)

    def can_denoise(self) -> bool:
        """A model and an input NRRN can denoise: one grey-level image or (Z, Y, X) stack."""
        layer = self.input_layer
        return self.model is not None and layer is not None and not layer.rgb and layer.ndim in (2, 3)

    def is_running(self, kind: str) -> bool:
        return kind in self.running

    def is_training(self) -> bool:
        return TRAIN in self.running

    def is_writing(self) -> bool:
        return STACK_JOB in self.running

    def require_stack(self):
        if self.input_layer is None:
            show_error("No image layer selected: open a stack first.")
        return self.input_layer

    def require_model(self):
        if self.model is None:
            show_error("No model: load a checkpoint or train one first.")
        return self.model


class DockJobs(QObject):
    """The dock's job runner (see the module docstring); ``workers`` maps a running kind to its worker."""

    started = Signal(str, str, int)
    progress = Signal(str, object)
    refused = Signal(str, str)
    failed = Signal(str, str)
    finished = Signal(str)

    def __init__(self, state: DockState, parent: QObject | None = None):
        super().__init__(parent)
        self.state = state
        self.workers: dict[str, object] = {}
        self.last_worker = None

    def cancel(self, kind: str) -> None:
        """Ask the running job of this kind to stop."""
        worker = self.workers.get(kind)
        if worker is not None:
            worker.quit()

    def run(self, kind: str, make_events, on_event=None, **job):
        """``start_job`` for a job of ``kind``; None (a notification, and ``refused``) when the engine refuses
        its arguments before starting."""

        def event(progress) -> None:
            if on_event is not None:
                on_event(progress)
            self.progress.emit(kind, progress)

        def finished() -> None:
            if self.workers.get(kind) is worker:
                del self.workers[kind]
                self.state.running = tuple(k for k in self.state.running if k != kind)
            self.finished.emit(kind)

        def errored(message: str) -> None:
            self.failed.emit(kind, message)

        try:
            worker = start_job(
                self, make_events, on_event=event, on_finished=finished, on_error=errored, **job
            )
        except (ValueError, OSError) as error:
            message = plain_message(error, job["doing"])
            show_error(message)
            self.refused.emit(kind, message)
            return None
        self.workers[kind] = worker
        self.last_worker = worker
        self.state.running = (*self.state.running, kind)
        self.started.emit(kind, job["doing"], job.get("total", 0))
        return worker
