"""One base for the docks' matplotlib plots: napari's theme colours, axis labels with units, legends that
fit, and PNG export.

As in napari-matplotlib, the figure takes the viewer theme's background and text colours and follows
theme changes, so a plot reads as part of the dock.
"""

from __future__ import annotations

from functools import partial

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

from ._dock_layout import theme_colours

ELLIPSIS = "\N{HORIZONTAL ELLIPSIS}"
LEGEND_MARGIN_PX = 4
MIN_LAYOUT_PX = 50


class ThemedPlot(FigureCanvasQTAgg):
    """A figure with one axes in the napari theme of ``viewer``.

    Subclasses draw into ``axes``, clear it with ``clear()`` and call ``finish()``; legends made with
    ``legend()`` are shortened (the middle of a long label becomes an ellipsis) so that every entry fits the
    figure's width.
    """

    def __init__(self, viewer, parent=None, figsize=(5, 3)):
        self.figure = Figure(figsize=figsize, layout="constrained")
        super().__init__(self.figure)
        self.setParent(parent)
        self.viewer = viewer
        self.axes = self.figure.add_subplot()
        self._legend_labels: list[str] = []
        self._labels = ("", "")
        viewer.events.theme.connect(self._on_theme)
        # napari holds a weak reference to the method, but the Qt side can be deleted first.
        self.destroyed.connect(partial(_disconnect_theme, viewer, self))

    @property
    def colours(self) -> tuple[str, str]:
        """(background, text) of the viewer's theme."""
        return theme_colours(self.viewer)

    def clear(self) -> None:
        self.axes.clear()
        self.clear_legend()

    def set_labels(self, x: str, x_unit: str | None, y: str, y_unit: str | None = None) -> None:
        """Axis labels as "quantity (unit)"; a quantity without a known unit is labelled as such."""
        self._labels = (_with_unit(x, x_unit), _with_unit(y, y_unit))

    def legend(self):
        """A legend above the axes (a figure legend: the layout gives it rows, never the axes' width), one
        entry per row, its labels fitted to the figure's width."""
        self.clear_legend()
        handles, labels = self.axes.get_legend_handles_labels()
        self._legend_labels = labels
        return self.figure.legend(
            handles, labels, fontsize="small", loc="outside upper left", ncols=1, frameon=False
        )

    def get_legend(self):
        return self.figure.legends[0] if self.figure.legends else None

    def clear_legend(self) -> None:
        for legend in list(self.figure.legends):
            legend.remove()
        self._legend_labels = []

    def finish(self) -> None:
        """Apply the theme and labels, fit the legend, and draw now (updates are already debounced, and a
        pending idle draw would outlive a widget deleted right after its last update)."""
        background, text = self.colours
        self.figure.set_facecolor(background)
        self.axes.set_facecolor(background)
        for spine in self.axes.spines.values():
            spine.set_color(text)
        self.axes.tick_params(colors=text, labelsize="small")
        self.axes.set_xlabel(self._labels[0], color=text)
        self.axes.set_ylabel(self._labels[1], color=text)
        for artist in self.axes.texts:
            artist.set_color(text)
        legend = self.get_legend()
        if legend is not None:
            for entry in legend.get_texts():
                entry.set_color(text)
        self._fit_legend()
        self.draw()

    def _fit_legend(self) -> None:
        legend = self.get_legend()
        if legend is None or min(self.figure.bbox.width, self.figure.bbox.height) < MIN_LAYOUT_PX:
            return  # not laid out yet: constrained layout cannot place anything in a collapsed figure
        renderer = self.get_renderer()
        for entry, full in zip(legend.get_texts(), self._legend_labels, strict=True):
            entry.set_text(full)
        self.figure.draw_without_rendering()  # constrained layout places the axes and legend
        right = self.figure.bbox.x1 - LEGEND_MARGIN_PX
        for entry, full in zip(legend.get_texts(), self._legend_labels, strict=True):
            keep = len(full)
            while entry.get_window_extent(renderer).x1 > right and keep > 8:
                keep -= 2
                entry.set_text(_elide(full, keep))
        self.figure.draw_without_rendering()

    def resizeEvent(self, event):
        super().resizeEvent(event)  # which schedules a redraw
        self._fit_legend()

    def _on_theme(self, event=None) -> None:
        self.finish()

    def save(self, path, dpi=150) -> None:
        self.figure.savefig(path, dpi=dpi, facecolor=self.figure.get_facecolor())


def _with_unit(quantity: str, unit: str | None) -> str:
    return f"{quantity} ({unit})" if unit else quantity


def _elide(text: str, keep: int) -> str:
    """``text`` cut to ``keep`` characters by an ellipsis in the middle. Both ends say most, the end more:
    results are named "<input> <step>", and the IQR ends the label."""
    head = (keep - 1) // 3
    return text[:head] + ELLIPSIS + text[len(text) - (keep - 1 - head) :]


def _disconnect_theme(viewer, plot, *_):
    viewer.events.theme.disconnect(plot)
