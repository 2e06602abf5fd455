"""The NRRN denoising dock: pick a stack, get a model (shipped, loaded or trained), preview a slice, explore
the depth, denoise the whole stack to disk.

The dock composes five sections, one module each (``_data_section``, ``_model_section`` with the nested
``_training_section``, ``_preview_section``, ``_depth_section``, ``_stack_section``), and holds what they
share: the model, the running jobs and the job runner. Each section gathers its parameters, starts an
engine generator in a napari thread worker through ``run_job`` (``_denoise_jobs``), and turns its progress
events into progress bars and layers (``_denoise_layers``). Every job runs in a worker, so the viewer never
freezes; the buttons that would start a clashing job are disabled while one runs. The sections' public
methods (``data_section.open_stack_path``, ``model_section.load_checkpoint``,
``model_section.training.start_training``, ``preview_section.preview``, ``depth_section.explore_depth``,
``stack_section.denoise_to_file``, ...) take plain arguments and return the worker they start (also kept
as ``last_worker``), so tests can wait on ``worker.finished``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari.layers import Image
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QScrollArea, QVBoxLayout, QWidget

from napari_nrrn.plugin._data_section import NOISE_JOB, DataSection
from napari_nrrn.plugin._denoise_jobs import plain_message, start_job
from napari_nrrn.plugin._depth_section import BLOCKS_JOB, DepthSection
from napari_nrrn.plugin._model_section import EXPORT_JOB, ModelSection
from napari_nrrn.plugin._preview_section import PREVIEW_JOB, PreviewSection
from napari_nrrn.plugin._stack_section import STACK_JOB, StackSection
from napari_nrrn.plugin._training_section import TRAIN

if TYPE_CHECKING:
    import napari

__all__ = ["BLOCKS_JOB", "EXPORT_JOB", "NOISE_JOB", "PREVIEW_JOB", "STACK_JOB", "TRAIN", "DenoiseWidget"]


class DenoiseWidget(QWidget):
    """Dock widget for interactive NRRN denoising of FIB-SEM stacks.

    ``job_progress(kind, event)`` and ``job_finished(kind)`` are emitted in the GUI thread for every job
    (kind: "noise", "train", "preview", "blocks", "stack", "export"), after the widget has handled the event
    or the end; ``model_changed()`` after a new model became the one every job uses.
    """

    job_progress = Signal(str, object)
    job_finished = Signal(str)
    model_changed = Signal()

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.model = None
        self.jobs: dict[str, object] = {}
        self.last_worker = None
        self._with_buttons: list[QWidget] = []  # filled once built: update_buttons runs while they are built

        self.data_section = DataSection(self)
        self.model_section = ModelSection(self)
        self.training_section = self.model_section.training
        self.preview_section = PreviewSection(self)
        self.depth_section = DepthSection(self)
        self.stack_section = StackSection(self)
        self._with_buttons = [
            self.model_section,
            self.preview_section,
            self.depth_section,
            self.stack_section,
        ]
        column_widget = QWidget()
        column = QVBoxLayout(column_widget)
        for section in (self.data_section, *self._with_buttons):
            column.addWidget(section)
        column.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.scroll.setWidget(column_widget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.scroll)

        self.update_buttons()
        self.model_section.use_shipped_model(quiet=True)

    # ---------------------------------------------------------------- what the sections share

    @property
    def input_layer(self) -> Image | None:
        return self.data_section.input_layer

    def device(self) -> str | None:
        return self.model_section.device()

    def tile(self) -> int | None:
        return self.preview_section.tile()

    def model_for_run(self):
        """The model cut to the depth chosen in the depth explorer."""
        return self.depth_section.model_for_run(self.model)

    def set_model(self, model) -> None:
        """Make ``model`` the one every preview and run uses (the model section shows where it came from)."""
        self.model = model
        self.model_changed.emit()
        self.update_buttons()

    def require_stack(self):
        layer = self.input_layer
        if layer is None:
            show_error("No image layer selected: open a stack first.")
        return layer

    def require_model(self):
        if self.model is None:
            show_error("No model: load a checkpoint or train one first.")
        return self.model

    def is_training(self) -> bool:
        return TRAIN in self.jobs

    def is_writing(self) -> bool:
        return STACK_JOB in self.jobs

    # ---------------------------------------------------------------- jobs

    def cancel(self, kind: str) -> None:
        """Ask the running job of this kind (TRAIN, STACK_JOB, ...) to stop."""
        worker = self.jobs.get(kind)
        if worker is not None:
            worker.quit()

    def run_job(self, kind: str, make_events, on_event=None, **job):
        """``_denoise_jobs.start_job`` for a job of ``kind``, one at a time per kind; None (and a
        notification) when the engine refuses its arguments before starting."""

        def event(progress) -> None:
            if on_event is not None:
                on_event(progress)
            self.job_progress.emit(kind, progress)

        def finished() -> None:
            if self.jobs.get(kind) is worker:
                del self.jobs[kind]
            self.update_buttons()
            self.job_finished.emit(kind)

        try:
            worker = start_job(self, make_events, on_event=event, on_finished=finished, **job)
        except (ValueError, OSError) as error:
            show_error(plain_message(error, job["doing"]))
            return None
        self.jobs[kind] = worker
        self.last_worker = worker
        self.update_buttons()
        return worker

    def update_buttons(self) -> None:
        for section in self._with_buttons:
            section.update_buttons()
