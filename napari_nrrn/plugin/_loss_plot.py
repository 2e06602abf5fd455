"""A live plot of the training and validation loss in the Training section, in the viewer's theme."""

from __future__ import annotations

import math

from qtpy.QtCore import QTimer

from ._plot_base import ThemedPlot

# Redrawing on every step would cost more than a tiny model's step; draw at most this often.
REDRAW_INTERVAL_MS = 250
PLOT_HEIGHT_PX = 190
TRAINING_COLOUR = "#4fa3e0"
VALIDATION_COLOUR = "#f0a030"


class LossPlot(ThemedPlot):
    """Training loss per step and validation loss where the engine reports one."""

    def __init__(self, viewer, parent=None):
        super().__init__(viewer, parent, figsize=(3.5, 2.2))
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.val_losses: list[float] = []
        self.set_labels("step", None, "consensus loss")
        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(REDRAW_INTERVAL_MS)
        self._redraw.timeout.connect(self._draw)
        self.setMinimumHeight(PLOT_HEIGHT_PX)
        self._draw()

    def reset(self) -> None:
        """Forget the points of the last run."""
        for values in (self.steps, self.losses, self.val_steps, self.val_losses):
            values.clear()
        self._draw()

    def add(self, event) -> None:
        """Add one ``TrainProgress`` event (step ``done``, ``loss``, optional ``val_loss``)."""
        if math.isfinite(event.loss):
            self.steps.append(event.done)
            self.losses.append(event.loss)
        # Every event repeats the last validation loss: plot it once, at the step it was measured.
        if event.val_loss is not None and (not self.val_losses or self.val_losses[-1] != event.val_loss):
            self.val_steps.append(event.done)
            self.val_losses.append(event.val_loss)
        if not self._redraw.isActive():
            self._redraw.start()

    def _draw(self) -> None:
        self.clear()
        self.axes.plot(self.steps, self.losses, color=TRAINING_COLOUR, linewidth=1, label="training")
        self.axes.plot(
            self.val_steps,
            self.val_losses,
            color=VALIDATION_COLOUR,
            linewidth=1.5,
            marker="o",
            markersize=3,
            label="validation",
        )
        self.legend()
        self.finish()
