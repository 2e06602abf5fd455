"""The compare panel of the resin profile dock: classic denoisers on the displayed slice, into new layers,
and PSNR/SSIM of every image layer against a reference layer. Both run through the dock's job runner."""

from __future__ import annotations

from napari.layers import Image
from napari.utils.notifications import show_error, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
)

from napari_nrrn.measures.baselines import BASELINES, BM3D_MISSING, bm3d_available

from ._denoise_jobs import start_job
from ._denoise_layers import show_result, slice_result
from ._dock_layout import WARNING_STYLE, layer_name_combo, set_choices
from ._profile_compare import (
    baseline_events,
    compute_metrics,
    metric_events,
    metric_inputs,
    noisy_reference_warning,
)
from ._profile_layers import layer_slice
from ._profile_table import fill_table, fit_height, results_table

METRIC_COLUMNS = ("layer", "psnr", "ssim", "note")
METRIC_ROWS_SHOWN = 8


class ComparePanel(QGroupBox):
    """Baselines and PSNR/SSIM. ``lines_layer()`` (given by the dock) is the Shapes layer of the profiles:
    new baseline layers go below it, so the lines stay visible."""

    def __init__(self, viewer, lines_layer, parent=None):
        super().__init__("Compare with classic denoisers (displayed slice)", parent)
        self.viewer = viewer
        self.lines_layer = lines_layer
        self.reference_warning: str | None = None
        self._metric_rows: list[dict] = []
        self._baseline_job = None
        self._metrics_job = None
        self._build_ui()

    def _build_ui(self):
        form = QFormLayout(self)
        self.source_combo = layer_name_combo()
        form.addRow("Denoise layer", self.source_combo)
        self.baseline_checks = {}
        checks = QGridLayout()  # two columns: four names in a row would not fit a narrow dock
        for index, name in enumerate(BASELINES):
            check = QCheckBox(name)
            check.setChecked(name in ("gaussian", "median"))
            if name == "bm3d" and not bm3d_available():
                check.setEnabled(False)
                check.setToolTip(BM3D_MISSING)
            self.baseline_checks[name] = check
            checks.addWidget(check, index // 2, index % 2)
        form.addRow("Baselines", checks)
        self.gaussian_sigma = QDoubleSpinBox()
        self.gaussian_sigma.setRange(0.1, 20.0)
        self.gaussian_sigma.setValue(1.0)
        self.gaussian_sigma.setSingleStep(0.5)
        self.median_size = QSpinBox()
        self.median_size.setRange(3, 31)
        self.median_size.setSingleStep(2)
        form.addRow("Gaussian sigma (px)", self.gaussian_sigma)
        form.addRow("Median size (px)", self.median_size)
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
        form.addRow("Reference", self.reference_combo)
        form.addRow(self.metrics_button)  # its own row: beside the combo it would widen the dock
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(WARNING_STYLE)
        self.warning.setVisible(False)
        form.addRow(self.warning)
        self.metrics_table = results_table(("layer", "PSNR (dB)", "SSIM", "note"), stretch=(0, 3))
        fit_height(self.metrics_table, METRIC_ROWS_SHOWN)
        form.addRow(self.metrics_table)

    def image_layers(self) -> list:
        return [layer for layer in self.viewer.layers if isinstance(layer, Image)]

    def refresh_layers(self, event=None):
        names = [layer.name for layer in self.image_layers()]
        set_choices(self.source_combo, names, self.source_combo.currentText())
        set_choices(self.reference_combo, names, self.reference_combo.currentText())

    # ----- baselines ----------------------------------------------------------------------------------

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
        """Denoise the displayed slice of a layer with each baseline, in a worker; returns the worker.

        The results become layers named "<layer> <baseline>" on the slice they were computed from (an older
        one of that name is replaced), below the profiles' lines. ``methods`` is ``{name: params}``;
        default: the dock's choice.
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
        if source.ndim > 3:
            show_error(
                f"Baselines run on a 2-D image or a (Z, Y, X) stack; '{source_name}' has {source.ndim} axes."
            )
            return None
        try:
            slice2d, index = layer_slice(source, self.viewer.dims.point)
        except ValueError as error:
            show_error(str(error))
            return None
        z = 0 if index is None else index[0]
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, len(methods))
        self.progress.setValue(0)
        self._baseline_job = start_job(
            self,
            lambda should_stop: baseline_events(slice2d, methods, should_stop),
            doing="running classic baselines",
            total=len(methods),
            describe=lambda event: f"Baseline {event.message} done",
            on_event=lambda event: self.progress.setValue(event.done),
            on_done=lambda results, _stopped: self._add_baseline_layers(source, z, index, methods, results),
            on_finished=self._on_baselines_finished,
        )
        return self._baseline_job

    def cancel_baselines(self):
        """Stop after the baseline that is running (each one is a single library call); nothing is added."""
        if self._baseline_job is not None:
            self._baseline_job.quit()

    def _on_baselines_finished(self):
        self._baseline_job = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _add_baseline_layers(self, source, z, index, methods, results):
        lines = self.lines_layer()
        for method, image in results:
            name = f"{source.name} {method}"
            layer = show_result(self.viewer, name, source, *slice_result(source, z, image))
            record = {"method": method, "params": methods[method], "source": source.name}
            layer.metadata["nrrn_baseline"] = record
            if index is not None:
                layer.metadata["nrrn_baseline"]["z"] = z
            layers = self.viewer.layers
            if lines is not None and lines in layers and layers.index(layer) > layers.index(lines):
                layers.move(layers.index(layer), layers.index(lines))
        if self.reference_combo.currentText():
            self.start_metrics()

    # ----- PSNR / SSIM --------------------------------------------------------------------------------

    def _metric_job(self, reference_name):
        if reference_name not in self.viewer.layers:
            show_error("No reference layer: choose an image layer under 'Reference'.")
            return None
        reference = self.viewer.layers[reference_name]
        try:
            job = metric_inputs(self.image_layers(), reference, self.viewer.dims.point)
        except ValueError as error:
            show_error(f"Reference '{reference_name}': {error}")
            return None
        warning = noisy_reference_warning(reference, self.image_layers())
        if warning is not None and warning != self.reference_warning:
            show_warning(warning)
        self.reference_warning = warning
        self.warning.setText(warning or "")
        self.warning.setVisible(warning is not None)
        return job

    def compute_metrics_now(self, reference_name=None) -> list[dict]:
        """PSNR/SSIM of every image layer against the reference on the displayed slice, synchronously."""
        job = self._metric_job(reference_name or self.reference_combo.currentText())
        if job is not None:
            self._show_metrics(compute_metrics(*job))
        return self.metric_rows()

    def start_metrics(self, reference_name=None):
        """As ``compute_metrics_now`` in a worker (SSIM of large slices takes seconds); the worker."""
        job = self._metric_job(reference_name or self.reference_combo.currentText())
        if job is None:
            return None
        self._metrics_job = start_job(
            self,
            lambda should_stop: metric_events(*job, should_stop),
            doing="computing PSNR and SSIM",
            total=max(len(job[1]), 1),
            describe=lambda event: f"PSNR/SSIM of {event.message}",
            on_done=lambda rows, _stopped: self._show_metrics(rows),
            on_finished=self._on_metrics_finished,
        )
        return self._metrics_job

    def _on_metrics_finished(self):
        self._metrics_job = None

    def _show_metrics(self, rows):
        self._metric_rows = rows
        fill_table(self.metrics_table, rows, METRIC_COLUMNS)
        fit_height(self.metrics_table, METRIC_ROWS_SHOWN)

    def metric_rows(self) -> list[dict]:
        """One dict per layer: layer, psnr (dB), ssim, note (why a layer was not compared)."""
        return [dict(row) for row in self._metric_rows]
