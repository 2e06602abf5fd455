"""The matplotlib canvas of the resin profile widget: profiles overlaid, IQR in the legend."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

LINE_STYLES = ("-", "--", ":", "-.")


class ProfilePlot(FigureCanvasQTAgg):
    def __init__(self, parent=None):
        self.figure = Figure(figsize=(5, 3), layout="constrained")
        super().__init__(self.figure)
        self.setParent(parent)
        self.axes = self.figure.add_subplot()
        self.setMinimumHeight(220)
        self.show_curves([])

    def show_curves(self, curves, x_label="distance along the line (world units)"):
        """Draw ``curves``: dicts with distances, values, label, colour and line (the line's index)."""
        self.axes.clear()
        line_indices = sorted({curve["line"] for curve in curves})
        for curve in curves:
            style = LINE_STYLES[line_indices.index(curve["line"]) % len(LINE_STYLES)]
            self.axes.plot(
                curve["distances"], curve["values"], style, color=curve["colour"], lw=1, label=curve["label"]
            )
        self.axes.set_xlabel(x_label)
        self.axes.set_ylabel("grey level")
        if curves:
            # Above the axes, so the legend never hides the profiles.
            self.axes.legend(
                fontsize="small",
                loc="lower left",
                bbox_to_anchor=(0, 1.02, 1, 0.2),
                mode="expand",
                ncols=2,
                borderaxespad=0,
                frameon=False,
            )
        else:
            self.axes.text(
                0.5, 0.5, "draw a line through resin", ha="center", va="center", transform=self.axes.transAxes
            )
        # Drawn now, not at idle: updates are already debounced, and a pending idle draw would outlive a
        # widget deleted right after its last update.
        self.draw()

    def save(self, path, dpi=150):
        self.figure.savefig(path, dpi=dpi)

    def curves(self):
        """The plotted (x, y) arrays and labels, for tests."""
        return [(line.get_xdata(), line.get_ydata(), line.get_label()) for line in self.axes.get_lines()]
