"""Resin line profiles: the paper's flatness measure, live in napari, with classic denoisers side by side.

The dock composes two panels, one module each: the profile panel (``_profile_panel``: lines, layers, plot,
table, export) and the compare panel (``_compare_panel``: baselines and PSNR/SSIM). Both run their long work
through the denoise dock's job runner. The numerics live in ``napari_nrrn.measures``; the panels only wire
napari and Qt to them.
"""

from __future__ import annotations

from functools import partial

import napari
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QDockWidget, QMainWindow, QWidget

from ._compare_panel import ComparePanel
from ._dock_layout import follow_layer_list, scrolling_column
from ._profile_layers import lines_in_data_coords
from ._profile_panel import ProfilePanel
from ._viewer_helpers import RESIN_LINES_NAME

__all__ = ["ResinProfileWidget", "lines_in_data_coords", "RESIN_LINES_NAME"]


class ResinProfileWidget(QWidget):
    """Dock widget: ``profile`` (a :class:`ProfilePanel`) above ``compare`` (a :class:`ComparePanel`).

    Its content scrolls, so beside the denoise dock it takes a share of the height, not all of it.
    """

    MINIMUM_HEIGHT = 200  # napari gives the docks above a new one their minimum height: keep this usable

    def __init__(self, viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.profile = ProfilePanel(viewer)
        self.compare = ComparePanel(viewer, lambda: self.profile.shapes_layer)
        self.scroll = scrolling_column(self, (self.profile, self.compare), stretch={self.profile: 1})
        self.setMinimumHeight(self.MINIMUM_HEIGHT)
        self._height_shared = False

        follow_layer_list(viewer.layers, self._on_layers_changed)
        viewer.dims.events.current_step.connect(self.profile.schedule_update)
        # napari holds weak references to our methods, but the Qt side can be deleted first (dock closed).
        self.destroyed.connect(partial(_disconnect_from_viewer, viewer, self))
        self._on_layers_changed()

    def showEvent(self, event):
        super().showEvent(event)
        if not self._height_shared:
            self._height_shared = True
            # After napari's add_dock_widget returns: it sizes the docks above a new one to their minimum.
            QTimer.singleShot(0, self._share_height)

    def _share_height(self):
        """Share the height of the dock column equally with the docks stacked above or below this one (the
        denoise dock), rather than leave them squashed to a header."""
        dock = self.parent()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parent()
        window = dock.parent() if dock is not None else None
        if not isinstance(window, QMainWindow):
            return
        area = window.dockWidgetArea(dock)
        if area not in (Qt.LeftDockWidgetArea, Qt.RightDockWidgetArea):
            return
        # Tabs behind another are hidden, so only the shown tab of a tabbed group counts.
        column = [
            other
            for other in window.findChildren(QDockWidget)
            if other.isVisible() and not other.isFloating() and window.dockWidgetArea(other) == area
        ]
        if len(column) > 1:
            height = sum(other.height() for other in column)
            window.resizeDocks(column, [height // len(column)] * len(column), Qt.Vertical)

    def _on_layers_changed(self, event=None):
        self.profile.refresh_layers()
        self.compare.refresh_layers()


def _disconnect_from_viewer(viewer, widget, *_):
    """Drop every callback of the dock's panels from the viewer's and its layers' events."""
    events = viewer.layers.events
    emitters = [events.inserted, events.removed, events.moved, events.reordered]
    emitters.append(viewer.dims.events.current_step)
    for layer in viewer.layers:
        layer_events = layer.events
        emitters += [layer_events.name, layer_events.data, layer_events.set_data, layer_events.scale]
        emitters.append(layer_events.translate)
    for emitter in emitters:
        for receiver in (widget, widget.profile, widget.compare):
            emitter.disconnect(receiver)  # a non-callable: removes all callbacks bound to it
