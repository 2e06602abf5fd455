"""A live plot of the training and validation loss, drawn in the dock with matplotlib."""

from __future__ import annotations

import math

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QVBoxLayout, QWidget

# Redrawing on every step would cost more than a tiny model's step; draw at most this often.
REDRAW_INTERVAL_MS = 250


class LossPlot(QWidget):
    """Training loss per step and validation loss where the engine reports one."""

    def __init__(self, background: str = "#262930", foreground: str = "#f0f1f2", parent=None):
        super().__init__(parent)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.val_losses: list[float] = []

        figure = Figure(figsize=(3.5, 2.2), facecolor=background, layout="constrained")
        self.canvas = FigureCanvasQTAgg(figure)
        self.axes = figure.add_subplot()
        self.axes.set_facecolor(background)
        for spine in self.axes.spines.values():
            spine.set_color(foreground)
        self.axes.tick_params(colors=foreground, labelsize=7)
        self.axes.set_xlabel("step", color=foreground, fontsize=8)
        self.axes.set_ylabel("consensus loss", color=foreground, fontsize=8)
        (self._train_line,) = self.axes.plot([], [], color="#4fa3e0", linewidth=1, label="training")
        (self._val_line,) = self.axes.plot(
            [], [], color="#f0a030", linewidth=1.5, marker="o", markersize=3, label="validation"
        )
        legend = self.axes.legend(fontsize=7, facecolor=background, edgecolor=foreground, loc="upper right")
        for text in legend.get_texts():
            text.set_color(foreground)

        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(REDRAW_INTERVAL_MS)
        self._redraw.timeout.connect(self._draw)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.setMinimumHeight(170)

    def clear(self) -> None:
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
        self._train_line.set_data(self.steps, self.losses)
        self._val_line.set_data(self.val_steps, self.val_losses)
        self.axes.relim()
        self.axes.autoscale_view()
        self.canvas.draw_idle()
