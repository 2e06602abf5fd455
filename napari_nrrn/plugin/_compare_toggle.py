"""Before/after in place: a toggle that hides the dock's results of the input layer, so the raw slice shows
where the denoised one was, at the same zoom and position; toggled back, they show again."""

from __future__ import annotations

from qtpy.QtWidgets import QPushButton

from napari_nrrn.plugin._denoise_layers import BLOCKS, DENOISED, PREVIEW, result_name
from napari_nrrn.plugin._dock_layout import follow_layer_list
from napari_nrrn.plugin._dock_state import DockState


class CompareToggle(QPushButton):
    """Checked: the input's result layers ("<input> NRRN preview/blocks/denoised") are hidden; unchecked: the
    ones it hid show again. Enabled when the input has a result to compare with."""

    def __init__(self, state: DockState, viewer, parent=None):
        super().__init__("Show raw (before / after)", parent)
        self.state, self.viewer = state, viewer
        self.setCheckable(True)
        self.setToolTip("Hide the denoised results of the input layer to see the raw data in the same place")
        self._hidden: list = []
        self.toggled.connect(self._compare)
        state.events.input_layer.connect(self._follow)
        follow_layer_list(viewer.layers, self._follow)
        self._follow()

    def results(self) -> list:
        layer = self.state.input_layer
        if layer is None:
            return []
        names = [result_name(layer.name, step) for step in (PREVIEW, BLOCKS, DENOISED)]
        return [self.viewer.layers[name] for name in names if name in self.viewer.layers]

    def _compare(self, raw: bool) -> None:
        if raw:
            self._hidden = [layer for layer in self.results() if layer.visible]
            for layer in self._hidden:
                layer.visible = False
            if self.state.input_layer is not None:
                self.state.input_layer.visible = True
        else:
            for layer in self._hidden:
                if layer.name in self.viewer.layers:
                    layer.visible = True
            self._hidden = []

    def _follow(self, *_) -> None:
        """A new input or a removed result ends the comparison."""
        if self.isChecked() and not any(layer.name in self.viewer.layers for layer in self._hidden):
            self.setChecked(False)
        self.setEnabled(self.isChecked() or bool(self.results()))
