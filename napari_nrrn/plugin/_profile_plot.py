"""The profile plot of the resin profile dock: profiles overlaid against distance in physical units, each
curve's IQR in the legend."""

from __future__ import annotations

from ._plot_base import ThemedPlot

LINE_STYLES = ("-", "--", ":", "-.")
# Distances of this many nm or more are shown in µm.
MICROMETRE_FROM_NM = 2000.0
PLOT_HEIGHT_PX = 220
LEGEND_ROW_PX = 17  # the legend sits above the axes, one entry per row: the plot grows with it


def display_unit(unit: str | None, longest: float) -> tuple[str | None, float]:
    """The unit to show distances in and the factor from world units: nm, or µm for long lines."""
    if unit == "nm" and longest >= MICROMETRE_FROM_NM:
        return "\N{MICRO SIGN}m", 1e-3
    return unit, 1.0


class ProfilePlot(ThemedPlot):
    def __init__(self, viewer, parent=None):
        super().__init__(viewer, parent)
        self.setMinimumHeight(PLOT_HEIGHT_PX)
        self.show_curves([], None)

    def show_curves(self, curves, unit: str | None):
        """Draw ``curves``: dicts with distances (world units), values, label, colour and line (the line's
        index). ``unit`` is the world unit (None: unknown)."""
        self.clear()
        longest = max((float(curve["distances"][-1]) for curve in curves), default=0.0)
        shown_unit, factor = display_unit(unit, longest)
        line_indices = sorted({curve["line"] for curve in curves})
        for curve in curves:
            style = LINE_STYLES[line_indices.index(curve["line"]) % len(LINE_STYLES)]
            self.axes.plot(
                curve["distances"] * factor,
                curve["values"],
                style,
                color=curve["colour"],
                lw=1,
                label=curve["label"],
            )
        self.set_labels("distance along the line", shown_unit or "world units", "grey level")
        self.setMinimumHeight(PLOT_HEIGHT_PX + LEGEND_ROW_PX * len(curves))
        if curves:
            self.legend()  # above the axes, so it never hides the profiles
        else:
            self.axes.text(
                0.5, 0.5, "draw a line through resin", ha="center", va="center", transform=self.axes.transAxes
            )
        self.finish()

    def curves(self):
        """The plotted (x, y) arrays and labels, for tests."""
        return [(line.get_xdata(), line.get_ydata(), line.get_label()) for line in self.axes.get_lines()]

    def x_label(self) -> str:
        return self.axes.get_xlabel()
