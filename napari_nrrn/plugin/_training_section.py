"""The "Train a model on this stack" part of the model section: the form, a live loss plot, checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from napari.utils.notifications import show_error
from qtpy.QtWidgets import QLabel, QLineEdit, QPushButton

from napari_nrrn.plugin._denoise_jobs import format_duration
from napari_nrrn.plugin._denoise_layers import source_path, stack_data
from napari_nrrn.plugin._denoise_train_form import TrainForm
from napari_nrrn.plugin._dock_layout import DockSection, labelled, row_widget, safe_file_name, theme_colours
from napari_nrrn.plugin._loss_plot import LossPlot
from napari_nrrn.words import plural

if TYPE_CHECKING:
    from napari_nrrn.plugin.denoise_widget import DenoiseWidget

TRAIN = "train"


class TrainingSection(DockSection):
    def __init__(self, dock: DenoiseWidget):
        super().__init__("Train a model on this stack")
        self.dock = dock
        from napari_nrrn.model.checkpoint import checkpoint_folder

        self._checkpoint_dir = checkpoint_folder()
        self.train_form = TrainForm(skip=("device",))
        self.checkpoint_edit = QLineEdit()
        self.checkpoint_edit.setToolTip(
            f"Where training saves its checkpoints (also when cancelled); empty: a file in {self._checkpoint_dir}"
        )
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(lambda: self.start_training())
        self.cancel_train_button = QPushButton("Cancel")
        self.cancel_train_button.setToolTip("Stop after the current step; the checkpoint is kept")
        self.cancel_train_button.clicked.connect(lambda: dock.cancel(TRAIN))
        self.loss_plot = LossPlot(*theme_colours(dock.viewer))
        self.train_status = QLabel()
        self.train_status.setWordWrap(True)
        self.addWidget(self.train_form)
        self.addWidget(labelled("Checkpoint", self.checkpoint_edit))
        self.addWidget(row_widget(self.train_button, self.cancel_train_button))
        self.addWidget(self.loss_plot)
        self.addWidget(self.train_status)

    def checkpoint_path(self) -> Path:
        text = self.checkpoint_edit.text().strip()
        if text:
            return Path(text).expanduser()
        layer = self.dock.input_layer
        name = layer.name if layer is not None else "stack"
        return self._checkpoint_dir / f"{safe_file_name(name)}-nrrn.pt"

    def start_training(self, config=None):
        """Train on the selected stack with the form's parameters (or ``config``), in a worker."""
        from napari_nrrn.engine.train import train

        layer = self.dock.require_stack()
        if layer is None:
            return None
        try:
            config = config or self.train_form.config(device=self.dock.device())
        except ValueError as error:
            show_error(str(error))
            return None
        checkpoint = self.checkpoint_path()
        try:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            show_error(f"Cannot create the checkpoint folder {checkpoint.parent}: {error}")
            return None
        stack = stack_data(layer)
        metadata = {"data": {"layer": layer.name, "path": source_path(layer)}}
        self.loss_plot.clear()
        self.train_status.setText(f"Training on {layer.name}; checkpoints go to {checkpoint}")

        def describe(event) -> str:
            return (
                f"Training NRRN on {layer.name}: step {event.done}/{event.total}, loss {event.loss:.4g}, "
                f"ETA {format_duration(event.eta_s)}"
            )

        def done(model, cancelled: bool) -> None:
            step, start = model.metadata["training"]["step"], model.metadata["training"]["started_from"]
            self.dock.model_section.set_model(model, f"trained on {layer.name}, {plural(step, 'step')}")
            how = "Cancelled" if cancelled else "Finished"
            self.train_status.setText(
                f"{how} at step {step}, started from {start}; checkpoint saved to {checkpoint}."
            )

        return self.dock.run_job(
            TRAIN,
            lambda should_stop: train(
                stack, config, should_stop=should_stop, checkpoint_path=checkpoint, metadata=metadata
            ),
            doing=f"training on {layer.name}",
            total=config.steps,
            describe=describe,
            on_event=self.loss_plot.add,
            on_done=done,
            stop_by_closing=False,  # train() honours should_stop and returns the model it has
        )

    def update_buttons(self) -> None:
        training = self.dock.is_training()
        has_stack = self.dock.input_layer is not None
        self.train_button.setEnabled(has_stack and not training and not self.dock.is_writing())
        self.cancel_train_button.setEnabled(training)
