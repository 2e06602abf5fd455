"""Resin line profiles: the paper's flatness measure, live in napari, with classic denoisers side by side.

Draw straight lines (or paths) through resin in a Shapes layer; every chosen image layer is sampled along each
line on the displayed slice, in world coordinates (each layer's scale and translate honoured). The dock plots
the profiles with their interquartile range (IQR: lower = flatter resin) and tabulates IQR, mean, std and the
number of samples. Profiles follow edits of the lines and slice changes (debounced, read in a worker thread).
The compare section runs Gaussian / median / non-local means / BM3D on the displayed slice of a layer into new
layers, and tabulates PSNR and SSIM of every layer against a reference layer.

The numerics live in ``napari_nrrn.measures``; this module only wires napari and Qt to them.
"""

import csv
from functools import partial

import matplotlib
import napari
import numpy as np
from napari.layers import Image, Shapes
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_nrrn.measures.baselines import BASELINES, BM3D_MISSING, bm3d_available

from ._dock_layout import layer_name_combo
from ._profile_compare import baseline_images, baseline_placement, compute_metrics, metric_inputs
from ._profile_layers import (
    NoSliceHere,
    compute_profiles,
    layer_slice,
    lines_in_data_coords,
    profile_tasks,
    transform_warning,
    world_lines,
)
from ._profile_plot import ProfilePlot
from ._viewer_helpers import RESIN_LINES_NAME

__all__ = ["ResinProfileWidget", "lines_in_data_coords", "RESIN_LINES_NAME"]

TABLE_COLUMNS = ("layer", "line", "iqr", "mean", "std", "samples")
METRIC_COLUMNS = ("layer", "psnr", "ssim", "note")
DEBOUNCE_MS = 150
COLOURS = matplotlib.colormaps["tab10"].colors


class ResinProfileWidget(QWidget):
    """Dock widget: resin line profiles with IQR, live, and the comparison with classic denoisers.

    State for scripts and tests: ``profiles`` and ``distances`` map ``(layer name, line index)`` to the
    sampled values and their world distances along the line; ``table_rows()`` and ``metric_rows()`` return
    the tables; ``problems`` lists the messages of the last update. ``update_now()`` recomputes
    synchronously.
    """

    def __init__(self, viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.profiles: dict[tuple[str, int], np.ndarray] = {}
        self.distances: dict[tuple[str, int], np.ndarray] = {}
        self.problems: list[str] = []
        self._rows: list[dict] = []
        self._metric_rows: list[dict] = []
        self._shapes_layer = None
        self._generation = 0  # results of an older snapshot than this are dropped
        self._profile_worker = None
        self._update_pending = False
        self._baseline_worker = None
        self._baseline_context = None
        self._metrics_worker = None
        self._notified: set[str] = set()

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._start_update)

        self._build_ui()
        viewer.layers.events.inserted.connect(self._on_layers_changed)
        viewer.layers.events.removed.connect(self._on_layers_changed)
        viewer.layers.events.moved.connect(self._on_layers_changed)
        viewer.dims.events.current_step.connect(self.schedule_update)
        # napari holds weak references to our methods, but the Qt side can be deleted first (dock closed).
        self.destroyed.connect(partial(_disconnect_from_viewer, viewer, self))
        self._on_layers_changed()

    # ----- UI -----------------------------------------------------------------------------------------

    def _build_ui(self):
        layout = QVBoxLayout(self)

        lines_box = QGroupBox("Lines through resin")
        lines_form = QFormLayout(lines_box)
        self.shapes_combo = layer_name_combo()
        self.shapes_combo.currentTextChanged.connect(self._on_shapes_choice)
        self.new_lines_button = QPushButton("New resin lines layer")
        self.new_lines_button.setToolTip("Adds a Shapes layer in line-drawing mode: drag across resin")
        self.new_lines_button.clicked.connect(self.add_resin_lines_layer)
        shapes_row = QHBoxLayout()
        shapes_row.addWidget(self.shapes_combo, 1)
        shapes_row.addWidget(self.new_lines_button)
        lines_form.addRow("Shapes layer", shapes_row)
        self.width_spin = QSpinBox()
        self.width_spin.setRange(1, 101)
        self.width_spin.setToolTip("Average this many parallel 1-pixel profiles across the line")
        self.width_spin.valueChanged.connect(self.schedule_update)
        lines_form.addRow("Line width (px)", self.width_spin)
        layout.addWidget(lines_box)

        images_box = QGroupBox("Image layers to profile")
        images_layout = QVBoxLayout(images_box)
        self.image_list = QListWidget()
        self.image_list.setMaximumHeight(110)
        self.image_list.itemChanged.connect(self.schedule_update)
        images_layout.addWidget(self.image_list)
        layout.addWidget(images_box)

        self.plot = ProfilePlot(self)
        layout.addWidget(self.plot, 1)

        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(["layer", "line", "IQR", "mean", "std", "samples"])
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setMinimumHeight(100)
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

        layout.addWidget(self._build_compare_box())

    def _build_compare_box(self):
        box = QGroupBox("Compare with classic denoisers (displayed slice)")
        form = QFormLayout(box)
        self.source_combo = layer_name_combo()
        form.addRow("Denoise layer", self.source_combo)
        self.baseline_checks = {}
        checks_row = QHBoxLayout()
        for name in BASELINES:
            check = QCheckBox(name)
            check.setChecked(name in ("gaussian", "median"))
            if name == "bm3d" and not bm3d_available():
                check.setEnabled(False)
                check.setToolTip(BM3D_MISSING)
            self.baseline_checks[name] = check
            checks_row.addWidget(check)
        form.addRow("Baselines", checks_row)
        self.gaussian_sigma = QDoubleSpinBox()
        self.gaussian_sigma.setRange(0.1, 20.0)
        self.gaussian_sigma.setValue(1.0)
        self.gaussian_sigma.setSingleStep(0.5)
        self.median_size = QSpinBox()
        self.median_size.setRange(3, 31)
        self.median_size.setSingleStep(2)
        params_row = QHBoxLayout()
        params_row.addWidget(QLabel("Gaussian sigma (px)"))
        params_row.addWidget(self.gaussian_sigma)
        params_row.addWidget(QLabel("median size (px)"))
        params_row.addWidget(self.median_size)
        form.addRow(params_row)
        run_row = QHBoxLayout()
        self.run_button = QPushButton("Run baselines")
        self.run_button.clicked.connect(lambda: self.run_baselines())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_baselines)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.progress, 1)
        form.addRow(run_row)
        self.reference_combo = layer_name_combo()
        self.metrics_button = QPushButton("PSNR / SSIM")
        self.metrics_button.setToolTip("Every image layer against the reference, on the displayed slice")
        self.metrics_button.clicked.connect(lambda: self.start_metrics())
        reference_row = QHBoxLayout()
        reference_row.addWidget(self.reference_combo, 1)
        reference_row.addWidget(self.metrics_button)
        form.addRow("Reference", reference_row)
        self.metrics_table = QTableWidget(0, len(METRIC_COLUMNS))
        self.metrics_table.setHorizontalHeaderLabels(["layer", "PSNR (dB)", "SSIM", "note"])
        self.metrics_table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.metrics_table.setMinimumHeight(80)
        form.addRow(self.metrics_table)
        return box

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

    @property
    def shapes_layer(self):
        """The Shapes layer whose lines are profiled (None if there is none)."""
        return self._shapes_layer

    def choose_shapes_layer(self, name: str):
        self.shapes_combo.setCurrentText(name)

    def _on_layers_changed(self, event=None):
        for layer in self.viewer.layers:
            layer.events.name.connect(self._on_layers_changed)  # connecting twice is a no-op in napari
            if isinstance(layer, Image):
                for emitter in (layer.events.data, layer.events.scale, layer.events.translate):
                    emitter.connect(self.schedule_update)
        images = [layer.name for layer in self.image_layers()]
        shapes = [layer.name for layer in self.viewer.layers if isinstance(layer, Shapes)]

        was_checked = {
            self.image_list.item(row).text(): self.image_list.item(row).checkState()
            for row in range(self.image_list.count())
        }
        self.image_list.blockSignals(True)
        self.image_list.clear()
        for name in images:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(was_checked.get(name, Qt.Checked))
            self.image_list.addItem(item)
        self.image_list.blockSignals(False)

        _refill(self.source_combo, images)
        _refill(self.reference_combo, images)
        current = self._shapes_layer.name if self._shapes_layer is not None else None
        preferred = (
            current if current in shapes else (RESIN_LINES_NAME if RESIN_LINES_NAME in shapes else None)
        )
        _refill(self.shapes_combo, shapes, preferred=preferred, signals=False)
        self._on_shapes_choice(self.shapes_combo.currentText())
        self.schedule_update()

    def _on_shapes_choice(self, name):
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        if layer is not None and not isinstance(layer, Shapes):
            layer = None
        if layer is self._shapes_layer or (layer is not None and layer == self._shapes_layer):
            return
        if self._shapes_layer is not None:
            for emitter in (self._shapes_layer.events.data, self._shapes_layer.events.set_data):
                emitter.disconnect(self.schedule_update)
        self._shapes_layer = layer
        if layer is not None:
            layer.events.data.connect(self.schedule_update)
            # set_data fires while a line is dragged, so the plot follows the drag, not only its end.
            layer.events.set_data.connect(self.schedule_update)
        self.schedule_update()

    def add_resin_lines_layer(self):
        """Add a Shapes layer for resin lines, in line-drawing mode, on the pixel grid of the first image."""
        images = self.chosen_image_layers() or self.image_layers()
        if not images:
            show_warning("No image layers yet: open an image, then draw lines through its resin.")
        grid = {}
        if images:
            grid = {"scale": tuple(images[0].scale[-2:]), "translate": tuple(images[0].translate[-2:])}
        # 2-D, so the lines show (and are profiled) on every slice of a stack.
        layer = self.viewer.add_shapes(
            ndim=2, name=RESIN_LINES_NAME, edge_color="yellow", edge_width=2, face_color="transparent", **grid
        )
        layer.mode = "add_line"
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
        tasks, skipped = profile_tasks(layers, lines, self.viewer.dims.point, self.width_spin.value())
        for error in skipped:
            messages["info" if isinstance(error, NoSliceHere) else "warning"].append(str(error))
        return tasks, messages

    def _start_update(self):
        if self._profile_worker is not None:
            self._update_pending = True  # the running job's snapshot is stale: redo it when it ends
            return
        tasks, messages = self._snapshot()
        worker = thread_worker(_profile_job)(self._generation, messages, tasks)
        # Bound methods, not partials: PyQt drops these connections if the dock is deleted first.
        worker.returned.connect(self._on_profiles_computed)
        worker.errored.connect(lambda error: show_error(f"Profile update failed: {error}"))
        worker.finished.connect(self._on_profile_worker_finished)
        self._profile_worker = worker
        worker.start()

    def _on_profile_worker_finished(self):
        self._profile_worker = None
        if self._update_pending:
            self._update_pending = False
            self.schedule_update()

    def _on_profiles_computed(self, job_output):
        self._apply_profiles(*job_output)

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
        _fill_table(self.table, self._rows, TABLE_COLUMNS)

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
        self.plot.show_curves(curves)

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
        """One dict per (layer, line): layer, line, iqr, mean, std, samples."""
        return [dict(row) for row in self._rows]

    def export_csv(self, path):
        """Write the profile table to ``path`` (full precision)."""
        with open(path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=TABLE_COLUMNS)
            writer.writeheader()
            writer.writerows(self._rows)

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

    # ----- compare with baselines ---------------------------------------------------------------------

    def chosen_baselines(self) -> dict:
        """``{name: params}`` for the ticked baselines, with the parameters set in the dock."""
        params = {
            "gaussian": {"sigma": self.gaussian_sigma.value()},
            "median": {"size": self.median_size.value()},
        }
        return {
            name: params.get(name, {})
            for name, check in self.baseline_checks.items()
            if check.isChecked() and check.isEnabled()
        }

    def run_baselines(self, source_name=None, methods=None):
        """Denoise the displayed slice of a layer with each baseline, in a thread worker; returns the worker.

        The results become layers named "<layer> <baseline>" (an older one of that name is replaced), placed
        as ``baseline_placement`` describes. ``methods`` is ``{name: params}``; default: the dock's choice.
        """
        source_name = source_name or self.source_combo.currentText()
        if source_name not in self.viewer.layers or not isinstance(self.viewer.layers[source_name], Image):
            show_error("No image layer to denoise: open an image and choose it under 'Denoise layer'.")
            return None
        methods = self.chosen_baselines() if methods is None else dict(methods)
        if "bm3d" in methods and not bm3d_available():
            show_error(BM3D_MISSING)
            return None
        if not methods:
            show_warning("Tick at least one baseline to run.")
            return None
        source = self.viewer.layers[source_name]
        try:
            slice2d, z = layer_slice(source, self.viewer.dims.point)
        except ValueError as error:
            show_error(str(error))
            return None
        style = {
            **baseline_placement(source, z),
            "colormap": source.colormap.name,
            "contrast_limits": tuple(source.contrast_limits),
        }
        worker = thread_worker(baseline_images)(slice2d, methods)
        self._baseline_context = (source_name, z, methods, style)  # one run at a time: the button waits
        worker.yielded.connect(self._on_baseline_progress)
        worker.returned.connect(self._add_baseline_layers)
        worker.errored.connect(lambda error: show_error(f"Baseline failed: {error}"))
        worker.finished.connect(self._on_baselines_finished)
        self._baseline_worker = worker
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, len(methods))
        self.progress.setValue(0)
        worker.start()
        return worker

    def cancel_baselines(self):
        """Stop after the baseline that is running (each one is a single library call)."""
        if self._baseline_worker is not None:
            self._baseline_worker.quit()

    def _on_baseline_progress(self, progress):
        done, total = progress
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _on_baselines_finished(self):
        self._baseline_worker = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _add_baseline_layers(self, results):
        source_name, z, methods, style = self._baseline_context
        for method, image in results:
            name = f"{source_name} {method}"
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            data = image if z is None else image[np.newaxis]
            metadata = {"nrrn_baseline": {"method": method, "params": methods[method], "source": source_name}}
            if z is not None:
                metadata["nrrn_baseline"]["z"] = z
            self.viewer.add_image(data, name=name, metadata=metadata, **style)
        if self.reference_combo.currentText():
            self.start_metrics()

    def _metric_job(self, reference_name):
        if reference_name not in self.viewer.layers:
            show_error("No reference layer: choose an image layer under 'Reference'.")
            return None
        try:
            return metric_inputs(
                self.image_layers(), self.viewer.layers[reference_name], self.viewer.dims.point
            )
        except ValueError as error:
            show_error(f"Reference '{reference_name}': {error}")
            return None

    def compute_metrics_now(self, reference_name=None) -> list[dict]:
        """PSNR/SSIM of every image layer against the reference on the displayed slice, synchronously."""
        job = self._metric_job(reference_name or self.reference_combo.currentText())
        if job is not None:
            self._show_metrics(compute_metrics(*job))
        return self.metric_rows()

    def start_metrics(self, reference_name=None):
        """As ``compute_metrics_now`` in a thread worker (SSIM of large slices takes seconds); the worker."""
        job = self._metric_job(reference_name or self.reference_combo.currentText())
        if job is None:
            return None
        worker = thread_worker(compute_metrics)(*job)
        worker.returned.connect(self._show_metrics)
        worker.errored.connect(lambda error: show_error(f"PSNR/SSIM failed: {error}"))
        self._metrics_worker = worker
        worker.start()
        return worker

    def _show_metrics(self, rows):
        self._metric_rows = rows
        _fill_table(self.metrics_table, rows, METRIC_COLUMNS)

    def metric_rows(self) -> list[dict]:
        """One dict per layer: layer, psnr (dB), ssim, note (why a layer was not compared)."""
        return [dict(row) for row in self._metric_rows]


def _profile_job(generation, messages, tasks):
    """Worker body: the profiles, with the snapshot's generation and messages passed through."""
    return generation, messages, compute_profiles(tasks)


def format_value(value: float) -> str:
    """Grey levels without exponents: whole numbers from 100 up (16-bit IQRs), 3 digits below."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _refill(combo, names, preferred=None, signals=True):
    """Replace a combo's entries, keeping its choice when it still exists."""
    current = preferred or combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if current in names:
        combo.setCurrentText(current)
    combo.blockSignals(False)
    if signals:
        combo.currentTextChanged.emit(combo.currentText())


def _fill_table(table, rows, columns):
    table.setRowCount(len(rows))
    for row_index, row in enumerate(rows):
        for column_index, column in enumerate(columns):
            value = row[column]
            text = f"{value:.5g}" if isinstance(value, float) else str(value)
            table.setItem(row_index, column_index, QTableWidgetItem(text))
    table.resizeColumnsToContents()


def _disconnect_from_viewer(viewer, widget, *_):
    """Drop every callback of ``widget`` from the viewer's and its layers' events."""
    emitters = [viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.moved]
    emitters.append(viewer.dims.events.current_step)
    for layer in viewer.layers:
        events = layer.events
        emitters += [events.name, events.data, events.set_data, events.scale, events.translate]
    for emitter in emitters:
        emitter.disconnect(widget)  # a non-callable: removes all callbacks bound to it
