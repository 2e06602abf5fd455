"""Section 5 of the denoise dock: denoise the whole stack slice by slice to a file, then open it lazily."""

from __future__ import annotations

import time
from pathlib import Path

from napari.utils.notifications import show_error
from qtpy.QtWidgets import QFileDialog, QLineEdit, QMessageBox, QPushButton

from napari_nrrn.plugin._denoise_jobs import format_duration
from napari_nrrn.plugin._denoise_layers import DENOISED, result_name, show_result, stack_data, voxel_size
from napari_nrrn.plugin._dock_layout import DockSection, WrappedLabel, labelled, row_widget, safe_file_name
from napari_nrrn.plugin._dock_state import STACK_JOB, DockJobs, DockState
from napari_nrrn.words import plural

ESTIMATE = "estimate"


def estimated_then(model, stack, tile, device, writing):
    """First an event whose message states what the run will cost (a short measurement, in the worker),
    then the writer's events: the estimate is on screen before the first slice is denoised."""
    from napari_nrrn.engine.estimate import estimate_stack
    from napari_nrrn.progress import Progress

    started = time.perf_counter()
    line = estimate_stack(model, stack, tile, device).line()
    yield Progress(ESTIMATE, 0, int(stack.shape[0]), time.perf_counter() - started, line)
    return (yield from writing)


OUTPUT_FILTER = "TIFF (*.tif *.tiff);;OME-Zarr (*.ome.zarr *.zarr);;MRC (*.mrc)"


class StackSection(DockSection):
    def __init__(self, state: DockState, jobs: DockJobs, viewer):
        super().__init__("5. Denoise the whole stack")
        self.state, self.jobs, self.viewer = state, jobs, viewer
        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText("output .tif / .tiff / .ome.zarr / .mrc")
        browse = QPushButton("…")
        browse.setMaximumWidth(30)
        browse.clicked.connect(self._ask_output_path)
        self.stack_button = QPushButton("Denoise stack to file")
        self.stack_button.clicked.connect(self._run_to_typed_path)
        self.cancel_stack_button = QPushButton("Cancel")
        self.cancel_stack_button.setToolTip(
            "Stop the run: it stops within one tile; the partial file is removed"
        )
        self.cancel_stack_button.clicked.connect(lambda: jobs.cancel(STACK_JOB))
        self.stack_status = WrappedLabel()
        self.addWidget(labelled("Output", row_widget(self.output_edit, browse, stretch=self.output_edit)))
        self.addWidget(row_widget(self.stack_button, self.cancel_stack_button))
        self.addWidget(self.stack_status)
        self.expand(animate=False)
        self._written: Path | None = None  # the output of the run in progress, until it ends
        jobs.failed.connect(self._on_failed)
        jobs.refused.connect(self._on_refused)
        for event in (state.events.model, state.events.input_layer, state.events.running):
            event.connect(self.update_buttons)
        self.update_buttons()

    def denoise_to_file(self, path: str | Path, overwrite: bool = False):
        """Denoise the whole stack slice by slice straight to ``path`` (.tif/.tiff/.zarr/.ome.zarr), then
        open the result lazily as "<input> NRRN denoised"."""
        from napari_nrrn.engine.inference import denoise_stack
        from napari_nrrn.io.writers import iter_write_stack

        state = self.state
        layer, model = state.require_stack(), state.require_model()
        if layer is None or model is None:
            return None
        path = Path(path).expanduser()
        model = state.model_for_run()
        stack, tile, device = stack_data(layer), state.tile, state.device
        voxel = voxel_size(layer)

        def describe(event) -> str:
            if event.stage == ESTIMATE:
                return f"NRRN denoising {layer.name}: {event.message}"
            return (
                f"NRRN denoising {layer.name}: {event.done}/{plural(event.total, 'slice')}, "
                f"{event.rate:.2f} slices/s, "
                f"ETA {format_duration(event.eta_s)}"
            )

        started = time.perf_counter()

        def done(_, __) -> None:  # the writer ended: the file is complete under its final name
            self._written = None
            self.stack_status.setText(f"Saved {path} ({time.perf_counter() - started:.1f} s).")
            self._open_result(layer, path)

        def stopped() -> None:  # the writer was closed or cancelled: it removed its partial file
            self._written = None
            self.stack_status.setText(f"Cancelled: {path.name} was not written.")

        def on_event(event) -> None:
            if event.stage == ESTIMATE:
                self.stack_status.setText(f"{event.message}. Denoising {layer.name} to {path}…")

        self.stack_status.setText(f"Measuring what denoising {layer.name} will cost…")
        self._written = path  # before the start: napari's progress bar may handle the job's end in it
        worker = self.jobs.run(
            STACK_JOB,
            lambda should_stop: estimated_then(
                model,
                stack,
                tile,
                device,
                iter_write_stack(
                    # should_stop: a cancel lands between two tiles, not only between two slices
                    denoise_stack(model, stack, tile=tile, device=device, should_stop=should_stop),
                    path,
                    voxel_size=voxel,
                    overwrite=overwrite,
                ),
            ),
            doing=f"denoising {layer.name} to {path}",
            total=int(stack.shape[0]),
            describe=describe,
            on_event=on_event,
            on_done=done,
            on_stopped=stopped,
        )
        if worker is None:
            self._written = None
        return worker

    def update_buttons(self) -> None:
        state = self.state
        writing = state.is_writing()
        self.stack_button.setEnabled(state.can_denoise() and not state.is_training() and not writing)
        self.cancel_stack_button.setEnabled(writing)

    def _on_failed(self, kind: str, message: str) -> None:
        """After an error (also shown as a notification) the writer has removed its partial file."""
        if kind == STACK_JOB and self._written is not None:
            self.stack_status.setText(
                f"Stopped by an error: {self._written.name} was not written.\n{message}"
            )
            self._written = None

    def _on_refused(self, kind: str, message: str) -> None:
        if kind == STACK_JOB:
            self.stack_status.setText(f"Not started: {message}")

    def _open_result(self, layer, path: Path) -> None:
        from napari_nrrn.io.stack import open_stack

        try:
            data = open_stack(path)
        except (ValueError, OSError) as error:
            show_error(f"The denoised stack was written but could not be opened: {error}")
            return
        show_result(
            self.viewer, result_name(layer.name, DENOISED), layer, data[0] if layer.ndim == 2 else data
        )

    def _run_to_typed_path(self) -> None:
        text = self.output_edit.text().strip()
        if not text:
            self._ask_output_path()
            text = self.output_edit.text().strip()
            if not text:
                return
        path = Path(text).expanduser()
        overwrite = False
        if path.exists():
            answer = QMessageBox.question(
                self, "Replace?", f"{path} exists. Replace it when the run completes?"
            )
            if answer != QMessageBox.Yes:
                return
            overwrite = True
        self.denoise_to_file(path, overwrite=overwrite)

    def _ask_output_path(self) -> None:
        layer = self.state.input_layer
        suggestion = f"{safe_file_name(layer.name)}_nrrn.tif" if layer is not None else "denoised.tif"
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Write the denoised stack",
            suggestion,
            OUTPUT_FILTER,
            options=QFileDialog.DontConfirmOverwrite,
        )
        if path:
            self.output_edit.setText(path)
