"""The profile panel of the resin profile dock: lines through resin, the layers to profile, the plot, the
table and their export.

Every chosen image layer is sampled along each line on the displayed slice, in world coordinates (each
layer's scale and translate honoured). Profiles follow edits of the lines and slice changes, debounced, and
the pixels are read by the dock's job runner in a worker, so a slow lazy layer never freezes the viewer.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from napari.layers import Image, Shapes
from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ._denoise_jobs import start_job
from ._dock_layout import layer_name_combo, set_choices
from ._profile_layers import (
    NoSliceHere,
    compute_profiles,
    length_unit,
    profile_events,
    profile_tasks,
    same_field,
    transform_warning,
    world_lines,
)
from ._profile_plot import ProfilePlot
from ._profile_table import fill_table, fit_height, results_table, write_profiles_csv
from ._viewer_helpers import DRAWN_ON, RESIN_LINES_NAME, add_resin_lines

TABLE_COLUMNS = ("layer", "line", "iqr", "mean", "std", "samples")
TABLE_HEADERS = ("layer", "line", "IQR", "mean", "std", "samples")
TABLE_ROWS_SHOWN = 8  # the table grows to show this many rows before it scrolls
DEBOUNCE_MS = 150
COLOURS = matplotlib.colormaps["tab10"].colors


class ProfilePanel(QWidget):
    """Resin line profiles with IQR, live.

    State for scripts and tests: ``profiles`` and ``distances`` map ``(layer name, line index)`` to the
    sampled values and their world distances along the line; ``table_rows()`` returns the table (with the
    slice and the lines' end points); ``problems`` lists the messages of the last update; ``unit`` is the
    world unit of the distances. ``update_now()`` recomputes synchronously.
    """

    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.profiles: dict[tuple[str, int], np.ndarray] = {}
        self.distances: dict[tuple[str, int], np.ndarray] = {}
        self.problems: list[str] = []
        self.unit: str | None = None
        self._rows: list[dict] = []
        self._shapes_layer = None
        self._generation = 0  # results of an older snapshot than this are dropped
        self._job = None
        self._update_pending = False
        self._notified: set[str] = set()
        self._ticked_by_user: dict[str, bool] = {}

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._start_update)
        self._build_ui()

    def _build_ui(self):
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)

        lines_box = QGroupBox("Lines through resin")
        lines_form = QFormLayout(lines_box)
        self.shapes_combo = layer_name_combo()
        self.shapes_combo.currentTextChanged.connect(self._on_shapes_choice)
        self.new_lines_button = QPushButton("New resin lines layer")
        self.new_lines_button.setToolTip("Adds a Shapes layer in line-drawing mode: drag across resin")
        self.new_lines_button.clicked.connect(self.add_resin_lines_layer)
        lines_form.addRow("Shapes layer", self.shapes_combo)
        lines_form.addRow(self.new_lines_button)
        self.width_spin = QSpinBox()
        self.width_spin.setRange(1, 101)
        self.width_spin.setToolTip("Average this many parallel 1-pixel profiles across the line")
        self.width_spin.valueChanged.connect(self.schedule_update)
        lines_form.addRow("Line width (px)", self.width_spin)
        layout.addWidget(lines_box)

        images_box = QGroupBox("Image layers to profile")
        images_layout = QVBoxLayout(images_box)
        self.image_list = QListWidget()
        self.image_list.setToolTip(
            "Visible layers covering the same field as the lines' image are ticked when they appear"
        )
        self.image_list.setMaximumHeight(110)
        self.image_list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.image_list.setTextElideMode(Qt.ElideMiddle)
        self.image_list.itemChanged.connect(self._on_item_ticked)
        images_layout.addWidget(self.image_list)
        layout.addWidget(images_box)

        self.plot = ProfilePlot(self.viewer, self)
        layout.addWidget(self.plot, 1)

        self.table = results_table(TABLE_HEADERS)
        fit_height(self.table, TABLE_ROWS_SHOWN)
        layout.addWidget(self.table)
        export_row = QHBoxLayout()
        self.csv_button = QPushButton("Export table (CSV)")
        self.csv_button.clicked.connect(self._ask_export_csv)
        self.png_button = QPushButton("Export plot (PNG)")
        self.png_button.clicked.connect(self._ask_export_png)
        export_row.addWidget(self.csv_button)
        export_row.addWidget(self.png_button)
        layout.addLayout(export_row)

        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

    # ----- layers -------------------------------------------------------------------------------------

    def image_layers(self) -> list:
        return [layer for layer in self.viewer.layers if isinstance(layer, Image)]

    def chosen_image_layers(self) -> list:
        """The image layers ticked in the list, in the viewer's order."""
        checked = {
            self.image_list.item(row).text()
            for row in range(self.image_list.count())
            if self.image_list.item(row).checkState() == Qt.Checked
        }
        return [layer for layer in self.image_layers() if layer.name in checked]

    def set_layer_checked(self, name: str, checked: bool):
        for row in range(self.image_list.count()):
            item = self.image_list.item(row)
            if item.text() == name:
                item.setCheckState(Qt.Checked if checked else Qt.Unchecked)
                return
        raise ValueError(f"no image layer named '{name}' in the profile list")

    def _on_item_ticked(self, item):
        self._ticked_by_user[item.text()] = item.checkState() == Qt.Checked
        self.schedule_update()

    @property
    def shapes_layer(self):
        """The Shapes layer whose lines are profiled (None if there is none)."""
        return self._shapes_layer

    def choose_shapes_layer(self, name: str):
        self.shapes_combo.setCurrentText(name)

    def drawn_on(self):
        """The image layer the lines belong with: the one a lines layer made here was drawn on, else
        ``looked_at()``."""
        lines = self._shapes_layer
        name = lines.metadata.get(DRAWN_ON) if lines is not None else None
        for layer in self.image_layers():
            if layer.name == name:
                return layer
        return self.looked_at()

    def looked_at(self):
        """The selected image layer, else the top visible one, else the top one (None without images)."""
        active = self.viewer.layers.selection.active
        if isinstance(active, Image):
            return active
        images = self.image_layers()
        visible = [layer for layer in images if layer.visible]
        return (visible or images or [None])[-1]

    def _ticked_by_default(self, layer, reference) -> bool:
        """Hidden layers, and layers of another field than the lines' image, are not profiled unless
        ticked."""
        return layer.visible and (reference is None or same_field(layer, reference))

    def refresh_layers(self, event=None):
        """Refill the layer list and the Shapes choice from the viewer (on any change to its layer list)."""
        for layer in self.image_layers():
            for emitter in (layer.events.data, layer.events.scale, layer.events.translate):
                emitter.connect(self.schedule_update)  # connecting twice is a no-op in napari
        shapes = [layer.name for layer in self.viewer.layers if isinstance(layer, Shapes)]
        current = self._shapes_layer.name if self._shapes_layer is not None else None
        preferred = current if current in shapes else RESIN_LINES_NAME
        set_choices(self.shapes_combo, shapes, preferred)
        self._on_shapes_choice(self.shapes_combo.currentText(), refill=False)
        self._fill_image_list()

    def _fill_image_list(self):
        reference = self.drawn_on()
        self.image_list.blockSignals(True)
        self.image_list.clear()
        for layer in self.image_layers():
            item = QListWidgetItem(layer.name)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            ticked = self._ticked_by_user.get(layer.name, self._ticked_by_default(layer, reference))
            item.setCheckState(Qt.Checked if ticked else Qt.Unchecked)
            self.image_list.addItem(item)
        self.image_list.blockSignals(False)
        self.schedule_update()

    def _on_shapes_choice(self, name, refill=True):
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        if layer is not None and not isinstance(layer, Shapes):
            layer = None
        if layer is self._shapes_layer:
            return
        if self._shapes_layer is not None:
            for emitter in (self._shapes_layer.events.data, self._shapes_layer.events.set_data):
                emitter.disconnect(self.schedule_update)
        self._shapes_layer = layer
        if layer is not None:
            layer.events.data.connect(self.schedule_update)
            # set_data fires while a line is dragged, so the plot follows the drag, not only its end.
            layer.events.set_data.connect(self.schedule_update)
        if refill:
            self._fill_image_list()  # other lines may belong with another image
        self.schedule_update()

    def add_resin_lines_layer(self):
        """Add a Shapes layer for resin lines, in line-drawing mode, on the pixel grid of the image looked at
        (``looked_at``); layers of another field are then no longer ticked by default."""
        image = self.looked_at()
        if image is None:
            show_warning("No image layers yet: open an image, then draw lines through its resin.")
        layer = add_resin_lines(self.viewer, like=image)
        self.choose_shapes_layer(layer.name)
        return layer

    # ----- profiles -----------------------------------------------------------------------------------

    def schedule_update(self, event=None):
        """Recompute soon: bursts of events (a drag, a slider) give one update per DEBOUNCE_MS."""
        if not self._timer.isActive():
            self._timer.start()

    def _snapshot(self):
        """Tasks for the current lines, layers and slice (GUI thread), and messages on what was left out."""
        self._generation += 1
        messages = {"error": [], "warning": [], "info": []}
        shapes = self._shapes_layer
        lines = world_lines(shapes) if shapes is not None else []
        if not lines:
            messages["info"].append(
                "Draw a line through resin: 'New resin lines layer', then drag across a flat resin area."
            )
            return [], messages
        layers = self.chosen_image_layers()
        if not layers:
            if self.image_layers():
                messages["warning"].append("No image layer is ticked: tick the layers to profile.")
            else:
                messages["warning"].append("No image layers to profile: open an image first.")
            return [], messages
        for layer in layers:
            if warning := transform_warning(layer):
                messages["warning"].append(warning)
        # The unit of the lines' image, else of the first layer that knows one (results carry no metadata).
        units = [length_unit(layer) for layer in [self.drawn_on(), *layers] if layer is not None]
        self.unit = next((unit for unit in units if unit is not None), None)
        dims = self.viewer.dims
        slice_index = int(dims.current_step[-3]) if dims.ndim >= 3 else None
        tasks, skipped = profile_tasks(layers, lines, dims.point, self.width_spin.value(), slice_index)
        for error in skipped:
            messages["info" if isinstance(error, NoSliceHere) else "warning"].append(str(error))
        return tasks, messages

    def _start_update(self):
        if self._job is not None:
            self._update_pending = True  # the running job's snapshot is stale: redo it when it ends
            return
        tasks, messages = self._snapshot()
        if not tasks:
            self._apply_profiles(self._generation, messages, [])
            return
        generation = self._generation
        self._job = start_job(
            self,
            lambda should_stop: profile_events(tasks, should_stop),
            doing="measuring resin profiles",
            total=len(tasks),
            describe=lambda event: "Resin profiles",
            on_done=lambda results, _stopped: self._apply_profiles(generation, messages, results),
            on_finished=self._on_job_finished,
        )

    def _on_job_finished(self):
        self._job = None
        if self._update_pending:
            self._update_pending = False
            self.schedule_update()

    def update_now(self):
        """Recompute every profile now, synchronously (scripts and tests; the GUI uses the debounced path)."""
        self._timer.stop()
        tasks, messages = self._snapshot()
        self._apply_profiles(self._generation, messages, compute_profiles(tasks))

    def _apply_profiles(self, generation, messages, results):
        if generation != self._generation:
            return
        good = [result for result in results if result.error is None]
        messages["error"].extend(result.error for result in results if result.error is not None)
        self.profiles = {(r.layer_name, r.line_index): r.values for r in good}
        self.distances = {(r.layer_name, r.line_index): r.distances for r in good}
        self._rows = [result.stats for result in good]
        self._report(messages)
        self._draw(good)
        fill_table(self.table, self._rows, TABLE_COLUMNS)
        fit_height(self.table, TABLE_ROWS_SHOWN)

    def _draw(self, results):
        names = [layer.name for layer in self.image_layers()]
        several_lines = len({result.line_index for result in results}) > 1
        curves = []
        for result, row in zip(results, self._rows, strict=True):
            label = result.layer_name + (f" (line {result.line_index})" if several_lines else "")
            curves.append(
                {
                    "distances": result.distances,
                    "values": result.values,
                    "line": result.line_index,
                    "label": f"{label}: IQR {format_value(row['iqr'])}",
                    "colour": COLOURS[names.index(result.layer_name) % len(COLOURS)],
                }
            )
        self.plot.show_curves(curves, self.unit)

    def _report(self, messages):
        """Show new errors and warnings as napari notifications, once each; everything in the status line."""
        self.problems = messages["error"] + messages["warning"]
        for message in messages["error"]:
            if message not in self._notified:
                show_error(message)
        for message in messages["warning"]:
            if message not in self._notified:
                show_warning(message)
        self._notified = set(self.problems)
        self.status.setText("\n".join(self.problems + messages["info"]))

    def table_rows(self) -> list[dict]:
        """One dict per (layer, line): layer, line, slice, start, end, length, iqr, mean, std, samples."""
        return [dict(row) for row in self._rows]

    def export_csv(self, path):
        """Write the profile table to ``path`` (full precision), with the slice and the lines' end points;
        the header names the unit (``length_nm``)."""
        write_profiles_csv(path, self._rows, self.unit)

    def export_png(self, path, dpi=150):
        """Save the profile plot to ``path``."""
        self.plot.save(path, dpi=dpi)

    def _ask_export_csv(self):
        if not self._rows:
            show_warning("No profiles to export yet: draw a line through resin.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save profile table", "resin_profiles.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def _ask_export_png(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save profile plot", "resin_profiles.png", "PNG (*.png)")
        if path:
            self.export_png(path)


def format_value(value: float) -> str:
    """Grey levels without exponents: whole numbers from 100 up (16-bit IQRs), 3 digits below."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
