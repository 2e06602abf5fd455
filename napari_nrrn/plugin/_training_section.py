"""The "Train a model on this stack" part of the model section: the form, a live loss plot, checkpoints."""

from __future__ import annotations

from pathlib import Path

from napari.utils.notifications import show_error
from qtpy.QtWidgets import QLineEdit, QPushButton

from napari_nrrn.model.checkpoint import checkpoint_folder
from napari_nrrn.plugin._denoise_jobs import format_duration
from napari_nrrn.plugin._denoise_layers import source_path, stack_data
from napari_nrrn.plugin._denoise_train_form import TrainForm
from napari_nrrn.plugin._dock_layout import (
    WARNING_STYLE,
    DockSection,
    WrappedLabel,
    labelled,
    row_widget,
    safe_file_name,
)
from napari_nrrn.plugin._dock_state import TRAIN, DockJobs, DockState
from napari_nrrn.plugin._loss_plot import LossPlot
from napari_nrrn.words import plural

# Names a progress event may give its estimate of the time left under; the first one present is shown.
REMAINING_FIELDS = ("remaining_s", "eta_s")


def why_not_trainable(layer) -> str:
    """Why Train cannot run on ``layer`` (empty when it can): training needs three slices or more."""
    if layer is None:
        return "Train needs a stack: open one in the Data section."
    if layer.rgb or layer.ndim != 3:
        kind = "an RGB" if layer.rgb else f"a {layer.ndim}-D"
        return (
            f"Train needs a (Z, Y, X) stack; {layer.name} is {kind} image. A model trained elsewhere can "
            "still denoise it."
        )
    slices = stack_data(layer).shape[0]
    if slices < 3:
        return f"Train needs at least 3 slices; {layer.name} has {slices}."
    return ""


def remaining_seconds(event) -> float | None:
    for name in REMAINING_FIELDS:
        value = getattr(event, name, None)
        if value is not None:
            return float(value)
    return None


class TrainingSection(DockSection):
    def __init__(self, state: DockState, jobs: DockJobs, viewer):
        super().__init__("Train a model on this stack")
        self.state, self.jobs = state, jobs
        self.train_form = TrainForm(skip=("device",))
        self.checkpoint_edit = QLineEdit()
        self.checkpoint_edit.setToolTip(
            "Where training saves its checkpoints (also when cancelled); empty: a file in "
            f"{checkpoint_folder()}"
        )
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(lambda: self.start_training())
        self.cancel_train_button = QPushButton("Cancel")
        self.cancel_train_button.setToolTip("Stop after the current step; the checkpoint is kept")
        self.cancel_train_button.clicked.connect(lambda: jobs.cancel(TRAIN))
        self.train_reason = WrappedLabel(style=WARNING_STYLE)
        self.loss_plot = LossPlot(viewer)
        self.train_status = WrappedLabel()
        self.addWidget(self.train_form)
        self.addWidget(labelled("Checkpoint", self.checkpoint_edit))
        self.addWidget(row_widget(self.train_button, self.cancel_train_button))
        self.addWidget(self.train_reason)
        self.addWidget(self.loss_plot)
        self.addWidget(self.train_status)
        for event in (state.events.input_layer, state.events.running):
            event.connect(self.update_buttons)
        state.events.input_layer.connect(self._show_checkpoint_path)
        self._show_checkpoint_path()
        jobs.failed.connect(self._on_failed)
        jobs.refused.connect(self._on_refused)
        self.update_buttons()

    def checkpoint_path(self) -> Path:
        text = self.checkpoint_edit.text().strip()
        return Path(text).expanduser() if text else self._default_checkpoint()

    def _default_checkpoint(self) -> Path:
        layer = self.state.input_layer
        name = layer.name if layer is not None else "stack"
        return checkpoint_folder() / f"{safe_file_name(name)}-nrrn.pt"

    def _show_checkpoint_path(self, *_) -> None:
        """The default checkpoint file, shown in the field while it is empty."""
        self.checkpoint_edit.setPlaceholderText(str(self._default_checkpoint()))

    def start_training(self, config=None):
        """Train on the selected stack with the form's parameters (or ``config``), in a worker."""
        from napari_nrrn.engine.train import train

        layer = self.state.require_stack()
        if layer is None:
            return None
        if why := why_not_trainable(layer):
            return self._refuse(why)
        try:
            config = config or self.train_form.config(device=self.state.device)
        except ValueError as error:
            return self._refuse(str(error))
        checkpoint = self.checkpoint_path()
        try:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            return self._refuse(f"Cannot create the checkpoint folder {checkpoint.parent}: {error}")
        stack = stack_data(layer)
        metadata = {"data": {"layer": layer.name, "path": source_path(layer)}}
        self.loss_plot.reset()
        starting = f"Training on {layer.name}; checkpoints go to {checkpoint}"
        self.train_status.setText(starting + ".")

        def describe(event) -> str:
            return (
                f"Training NRRN on {layer.name}: step {event.done}/{event.total}, loss {event.loss:.4g}, "
                f"ETA {format_duration(event.eta_s)}"
            )

        def progress(event) -> None:
            self.loss_plot.add(event)
            remaining = remaining_seconds(event)
            left = f", about {format_duration(remaining)} left" if remaining is not None else ""
            self.train_status.setText(f"{starting}.\nStep {event.done} of {event.total}{left}.")

        def done(model, cancelled: bool) -> None:
            step, start = model.metadata["training"]["step"], model.metadata["training"]["started_from"]
            self.state.set_model(model, f"trained on {layer.name}, {plural(step, 'step')}")
            how = "Cancelled" if cancelled else "Finished"
            self.train_status.setText(
                f"{how} at step {step}, started from {start}; checkpoint saved to {checkpoint}."
            )

        return self.jobs.run(
            TRAIN,
            lambda should_stop: train(
                stack, config, should_stop=should_stop, checkpoint_path=checkpoint, metadata=metadata
            ),
            doing=f"training on {layer.name}",
            total=config.steps,
            describe=describe,
            on_event=progress,
            on_done=done,
            stop_by_closing=False,  # train() honours should_stop and returns the model it has
        )

    def update_buttons(self) -> None:
        state = self.state
        training = state.is_training()
        why = why_not_trainable(state.input_layer)
        self.train_button.setEnabled(not why and not training and not state.is_writing())
        self.train_button.setToolTip(why)
        self.train_reason.setText(why)
        self.train_reason.setVisible(bool(why))
        self.cancel_train_button.setEnabled(training)

    def _refuse(self, why: str) -> None:
        show_error(why)
        self.train_status.setText(f"Not started: {why}")
        return None

    def _on_failed(self, kind: str, message: str) -> None:
        if kind == TRAIN:
            self.train_status.setText(f"Failed: {message}")

    def _on_refused(self, kind: str, message: str) -> None:
        if kind == TRAIN:
            self.train_status.setText(f"Not started: {message}")
