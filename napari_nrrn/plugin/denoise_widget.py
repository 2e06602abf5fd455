"""The NRRN denoising dock: pick a stack, get a model (shipped, loaded or trained), preview a slice, explore
the depth, denoise the whole stack to disk.

The dock composes five sections, one module each (``_data_section``, ``_model_section`` with the nested
``_training_section``, ``_preview_section``, ``_depth_section``, ``_stack_section``), around what they share
(``_dock_state``): one evented ``DockState`` (model, input layer, device, tile, depth, running jobs), whose
events each section follows, and one job runner, ``DockJobs``. A section gathers its parameters, starts an
engine generator in a napari thread worker through the runner (``_denoise_jobs``), and turns its progress
events into progress bars and layers (``_denoise_layers``); the running job's progress also shows at the top
of the dock (``_job_progress``), above a before/after toggle (``_compare_toggle``). The buttons that would
start a clashing job are disabled while one runs.
The sections' public methods (``data_section.open_stack_path``, ``model_section.load_checkpoint``,
``model_section.training.start_training``, ``preview_section.preview``, ``depth_section.explore_depth``,
``stack_section.denoise_to_file``, ...) take plain arguments and return the worker they start (also kept
as ``last_worker``), so tests can wait on ``worker.finished``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtWidgets import QWidget

from napari_nrrn.plugin._compare_toggle import CompareToggle
from napari_nrrn.plugin._data_section import DataSection
from napari_nrrn.plugin._depth_section import DepthSection
from napari_nrrn.plugin._dock_layout import scrolling_column
from napari_nrrn.plugin._dock_state import (
    BLOCKS_JOB,
    EXPORT_JOB,
    NOISE_JOB,
    PREVIEW_JOB,
    STACK_JOB,
    TRAIN,
    DockJobs,
    DockState,
)
from napari_nrrn.plugin._job_progress import JobProgress
from napari_nrrn.plugin._model_section import ModelSection
from napari_nrrn.plugin._preview_section import PreviewSection
from napari_nrrn.plugin._stack_section import StackSection

if TYPE_CHECKING:
    import napari

__all__ = ["BLOCKS_JOB", "EXPORT_JOB", "NOISE_JOB", "PREVIEW_JOB", "STACK_JOB", "TRAIN", "DenoiseWidget"]


class DenoiseWidget(QWidget):
    """Dock widget for interactive NRRN denoising of FIB-SEM stacks.

    ``state`` is the shared ``DockState``, ``runner`` the ``DockJobs`` every section starts its jobs with;
    ``job_progress(kind, event)`` and ``job_finished(kind)`` (the runner's signals) are emitted in the GUI
    thread for every job (kind: "noise", "train", "preview", "blocks", "stack", "export"), after the
    section has handled the event or the end.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.state = DockState()
        self.runner = DockJobs(self.state, self)
        sections = (self.state, self.runner)
        self.progress = JobProgress(self.runner)
        self.data_section = DataSection(*sections, napari_viewer)
        self.model_section = ModelSection(*sections, napari_viewer)
        self.training_section = self.model_section.training
        self.preview_section = PreviewSection(*sections, napari_viewer)
        self.depth_section = DepthSection(*sections, napari_viewer)
        self.stack_section = StackSection(*sections, napari_viewer)
        self.compare = CompareToggle(self.state, napari_viewer)
        self.scroll = scrolling_column(
            self,
            (
                self.data_section,
                self.model_section,
                self.preview_section,
                self.depth_section,
                self.stack_section,
            ),
            above=(self.progress, self.compare),
        )

        self.model_section.use_shipped_model(quiet=True)

    # What tests and scripts reach through the dock; the sections use the state and the runner.

    @property
    def sections(self) -> tuple:
        """The dock's sections, top to bottom (Training is nested in Model)."""
        return (
            self.data_section,
            self.model_section,
            self.training_section,
            self.preview_section,
            self.depth_section,
            self.stack_section,
        )

    @property
    def model(self):
        return self.state.model

    @property
    def input_layer(self):
        return self.state.input_layer

    @property
    def jobs(self) -> dict:
        """The running jobs' workers by kind."""
        return self.runner.workers

    @property
    def last_worker(self):
        return self.runner.last_worker

    @property
    def job_progress(self):
        return self.runner.progress

    @property
    def job_finished(self):
        return self.runner.finished

    def model_for_run(self):
        """The model cut to the depth chosen in the depth explorer."""
        return self.state.model_for_run()

    def cancel(self, kind: str) -> None:
        """Ask the running job of this kind (TRAIN, STACK_JOB, ...) to stop."""
        self.runner.cancel(kind)
