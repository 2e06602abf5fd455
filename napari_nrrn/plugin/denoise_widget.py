"""The NRRN denoising dock: pick a stack, get a model (shipped, loaded or trained), preview a slice, explore
the depth, denoise the whole stack to disk.

The widget is thin: it gathers parameters, starts engine generators in napari thread workers
(``_denoise_jobs``), and turns their progress events into progress bars and layers (``_denoise_layers``).
Every job runs in a worker, so the viewer never freezes; the buttons that would start a clashing job are
disabled while one runs. The public methods (``open_stack_path``, ``load_checkpoint``, ``start_training``,
``preview``, ``explore_depth``, ``denoise_to_file``, ...) take plain arguments and return the worker they
start (also kept as ``last_worker``), so tests can wait on ``worker.finished``.
"""

from __future__ import annotations

import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from dask.utils import format_bytes
from napari.layers import Image, Shapes
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from napari_nrrn.engine.device import select_device
from napari_nrrn.plugin._denoise_jobs import format_duration, plain_message, start_job
from napari_nrrn.plugin._denoise_layers import (
    BLOCKS,
    DENOISED,
    PREVIEW,
    blocks_result,
    current_slice,
    result_name,
    show_result,
    slice_result,
    source_path,
    stack_data,
)
from napari_nrrn.plugin._denoise_train_form import AUTO_DEVICE, TrainForm, available_devices
from napari_nrrn.plugin._loss_plot import LossPlot
from napari_nrrn.plugin._profile_layers import lines_in_data_coords
from napari_nrrn.plugin.profile_widget import RESIN_LINES_NAME

if TYPE_CHECKING:
    import napari

# Auto-preview waits this long after the last slice change, so scrolling through z starts one job, not many.
PREVIEW_DEBOUNCE_MS = 300
NO_LINES = "(none)"
STACK_FILTER = "Stacks (*.tif *.tiff *.dat);;All files (*)"
OUTPUT_FILTER = "TIFF (*.tif *.tiff);;OME-Zarr (*.ome.zarr *.zarr)"

TRAIN, PREVIEW_JOB, BLOCKS_JOB, STACK_JOB = "train", "preview", "blocks", "stack"


def _describe_model(model) -> str:
    return (
        f"depth {model.depth}, width {model.width}, {sum(p.numel() for p in model.parameters()):,} parameters"
    )


class DenoiseWidget(QWidget):
    """Dock widget for interactive NRRN denoising of FIB-SEM stacks.

    ``job_progress(kind, event)`` and ``job_finished(kind)`` are emitted in the GUI thread for every job
    (kind: "train", "preview", "blocks", "stack"), after the widget has handled the event or the end.
    """

    job_progress = Signal(str, object)
    job_finished = Signal(str)

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.model = None
        self.jobs: dict[str, object] = {}
        self.last_worker = None
        self._preview_pending = False
        self._preview_z: int | None = None  # the slice of the last preview started
        self._checkpoint_dir = Path(tempfile.gettempdir()) / "napari-nrrn"

        sections = QWidget()
        column = QVBoxLayout(sections)
        self.data_section = self._data_section()
        self.model_section = self._model_section()
        self.preview_section = self._preview_section()
        self.depth_section = self._depth_section()
        self.stack_section = self._stack_section()
        for section in (
            self.data_section,
            self.model_section,
            self.preview_section,
            self.depth_section,
            self.stack_section,
        ):
            column.addWidget(section)
        column.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.scroll.setWidget(sections)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.scroll)

        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(PREVIEW_DEBOUNCE_MS)
        self._preview_timer.timeout.connect(self.preview)

        layers = self.viewer.layers.events
        for event in (layers.inserted, layers.removed, layers.moved, layers.reordered):
            event.connect(self._refresh_layer_choices)
        layers.inserted.connect(self._watch_layer_name)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._refresh_layer_choices)
        self.viewer.dims.events.current_step.connect(self._on_slice_change)
        self._refresh_layer_choices()
        self.use_shipped_model(quiet=True)

    # ---------------------------------------------------------------- sections

    def _data_section(self) -> QCollapsible:
        section = QCollapsible("1. Data")
        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("The image layer to denoise: a (Z, Y, X) stack")
        self.layer_combo.currentTextChanged.connect(self._on_layer_choice)
        open_file = QPushButton("Open stack file…")
        open_file.setToolTip("TIFF/BigTIFF, FIB-SEM .dat; opened lazily (nothing is read until shown)")
        open_file.clicked.connect(self._ask_stack_file)
        open_folder = QPushButton("Open folder…")
        open_folder.setToolTip("A folder of per-slice TIFF/.dat files, or a Zarr/OME-Zarr store")
        open_folder.clicked.connect(self._ask_stack_folder)
        self.data_info = QLabel()
        self.data_info.setWordWrap(True)
        self.data_warning = QLabel()
        self.data_warning.setWordWrap(True)
        self.data_warning.setStyleSheet("color: #e0a030;")
        row = QHBoxLayout()
        row.addWidget(open_file)
        row.addWidget(open_folder)
        section.addWidget(_labelled("Image layer", self.layer_combo))
        section.addWidget(_row_widget(row))
        section.addWidget(self.data_info)
        section.addWidget(self.data_warning)
        section.expand(animate=False)
        return section

    def _model_section(self) -> QCollapsible:
        section = QCollapsible("2. Model")
        self.model_info = QLabel("No model")
        self.model_info.setWordWrap(True)
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        self.device_combo.setToolTip("auto: a CUDA GPU, else Apple MPS, else the CPU")
        self.device_combo.currentTextChanged.connect(self._show_device)
        self.device_info = QLabel()
        device_row = QHBoxLayout()
        device_row.addWidget(QLabel("Device"))
        device_row.addWidget(self.device_combo)
        device_row.addWidget(self.device_info, 1)
        self.shipped_button = QPushButton("Shipped model")
        self.shipped_button.setToolTip("The model shipped with napari-nrrn")
        self.shipped_button.clicked.connect(lambda: self.use_shipped_model())
        self.load_button = QPushButton("Load…")
        self.load_button.setToolTip("A napari-nrrn checkpoint or the authors' NRRN state dict (.pt, .pth)")
        self.load_button.clicked.connect(self._ask_checkpoint)
        self.save_button = QPushButton("Save…")
        self.save_button.clicked.connect(self._ask_save_path)
        buttons = QHBoxLayout()
        for button in (self.shipped_button, self.load_button, self.save_button):
            buttons.addWidget(button)

        self.training_section = training = QCollapsible("Train a model on this stack")
        self.train_form = TrainForm(skip=("device",))
        self.checkpoint_edit = QLineEdit()
        self.checkpoint_edit.setToolTip(
            "Where training saves its checkpoints (also when cancelled); empty: a file in the temp folder"
        )
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(lambda: self.start_training())
        self.cancel_train_button = QPushButton("Cancel")
        self.cancel_train_button.setToolTip("Stop after the current step; the checkpoint is kept")
        self.cancel_train_button.clicked.connect(lambda: self.cancel(TRAIN))
        train_buttons = QHBoxLayout()
        train_buttons.addWidget(self.train_button)
        train_buttons.addWidget(self.cancel_train_button)
        theme = _theme_colours(self.viewer)
        self.loss_plot = LossPlot(*theme)
        self.train_status = QLabel()
        self.train_status.setWordWrap(True)
        training.addWidget(self.train_form)
        training.addWidget(_labelled("Checkpoint", self.checkpoint_edit))
        training.addWidget(_row_widget(train_buttons))
        training.addWidget(self.loss_plot)
        training.addWidget(self.train_status)

        section.addWidget(self.model_info)
        section.addWidget(_row_widget(device_row))
        section.addWidget(_row_widget(buttons))
        section.addWidget(training)
        section.expand(animate=False)
        self._show_device()
        return section

    def _preview_section(self) -> QCollapsible:
        section = QCollapsible("3. Preview")
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(0, 1 << 16)
        self.tile_spin.setSingleStep(256)
        self.tile_spin.setSpecialValueText("whole slice")
        self.tile_spin.setToolTip(
            "Tile size in pixels for preview and full run (the result is the same; smaller tiles use less "
            "memory, e.g. on a GPU)"
        )
        self.preview_button = QPushButton("Preview this slice")
        self.preview_button.clicked.connect(lambda: self.preview())
        self.auto_preview = QCheckBox("Re-run when the slice changes")
        self.preview_status = QLabel()
        self.preview_status.setWordWrap(True)
        section.addWidget(_labelled("Tile", self.tile_spin))
        section.addWidget(self.preview_button)
        section.addWidget(self.auto_preview)
        section.addWidget(self.preview_status)
        section.expand(animate=False)
        return section

    def _depth_section(self) -> QCollapsible:
        section = QCollapsible("4. Depth explorer")
        self.lines_combo = QComboBox()
        self.lines_combo.setToolTip(
            f"A Shapes layer with lines drawn through resin (default: one named {RESIN_LINES_NAME!r}); each "
            "block's output gets the mean IQR of its grey levels along them: flatter is lower"
        )
        self.blocks_button = QPushButton("Show every block's output")
        self.blocks_button.clicked.connect(lambda: self.explore_depth())
        self.blocks_table = QTableWidget(0, 2)
        self.blocks_table.setHorizontalHeaderLabels(["output", "mean resin IQR"])
        self.blocks_table.verticalHeader().setVisible(False)
        self.blocks_table.horizontalHeader().setStretchLastSection(True)
        self.blocks_table.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self._fit_table()
        self.depth_spin = QSpinBox()
        self.depth_spin.setRange(1, 1)
        self.depth_spin.setToolTip("Cut the model after this many blocks for the preview and the full run")
        self.depth_spin.valueChanged.connect(self._show_depth_cost)
        self.depth_cost = QLabel()
        self.depth_cost.setWordWrap(True)
        section.addWidget(_labelled("Resin lines", self.lines_combo))
        section.addWidget(self.blocks_button)
        section.addWidget(self.blocks_table)
        section.addWidget(_labelled("Use depth", self.depth_spin))
        section.addWidget(self.depth_cost)
        section.expand(animate=False)
        return section

    def _stack_section(self) -> QCollapsible:
        section = QCollapsible("5. Denoise the whole stack")
        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText("output .tif / .tiff / .ome.zarr")
        browse = QPushButton("…")
        browse.setMaximumWidth(30)
        browse.clicked.connect(self._ask_output_path)
        output_row = QHBoxLayout()
        output_row.addWidget(self.output_edit, 1)
        output_row.addWidget(browse)
        self.stack_button = QPushButton("Denoise stack to file")
        self.stack_button.clicked.connect(self._run_to_typed_path)
        self.cancel_stack_button = QPushButton("Cancel")
        self.cancel_stack_button.setToolTip("Stop after the current slice; the partial file is removed")
        self.cancel_stack_button.clicked.connect(lambda: self.cancel(STACK_JOB))
        buttons = QHBoxLayout()
        buttons.addWidget(self.stack_button)
        buttons.addWidget(self.cancel_stack_button)
        self.stack_status = QLabel()
        self.stack_status.setWordWrap(True)
        section.addWidget(_labelled("Output", _row_widget(output_row)))
        section.addWidget(_row_widget(buttons))
        section.addWidget(self.stack_status)
        section.expand(animate=False)
        return section

    # ---------------------------------------------------------------- data

    @property
    def input_layer(self) -> Image | None:
        name = self.layer_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def open_stack_path(self, path: str | Path) -> Image | None:
        """Open a stack file or folder lazily (as napari's reader does) and select it."""
        from napari_nrrn.plugin.reader import read_stack

        try:
            [(data, kwargs, _)] = read_stack(path)
        except (ValueError, OSError) as error:
            show_error(f"Could not open {path}: {error}")
            return None
        layer = self.viewer.add_image(data, **kwargs)
        self.layer_combo.setCurrentText(layer.name)
        return layer

    def _ask_stack_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a FIB-SEM stack", "", STACK_FILTER)
        if path:
            self.open_stack_path(path)

    def _ask_stack_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a folder of slices or a Zarr store")
        if path:
            self.open_stack_path(path)

    def _watch_layer_name(self, event) -> None:
        event.value.events.name.connect(self._refresh_layer_choices)

    def _refresh_layer_choices(self, event=None) -> None:
        images = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        images = [name for name in images if not name.endswith((f" NRRN {PREVIEW}", f" NRRN {BLOCKS}"))]
        _set_choices(self.layer_combo, images, self.layer_combo.currentText())
        shapes = [layer.name for layer in self.viewer.layers if isinstance(layer, Shapes)]
        chosen = self.lines_combo.currentText()
        _set_choices(self.lines_combo, [NO_LINES, *shapes], chosen if chosen in shapes else RESIN_LINES_NAME)
        self._on_layer_choice()

    def _on_layer_choice(self, *_) -> None:
        self._show_data_info()
        self._update_buttons()

    def _show_data_info(self) -> None:
        layer = self.input_layer
        if layer is None:
            self.data_info.setText("No image layer: open a stack or load one in napari.")
            self.data_warning.setText("")
            return
        data = layer.data[0] if layer.multiscale else layer.data
        dtype = np.dtype(data.dtype)
        lines = [
            f"shape {tuple(data.shape)}, {dtype}, {format_bytes(int(np.prod(data.shape)) * dtype.itemsize)}"
            " uncompressed"
        ]
        path = source_path(layer)
        if path is not None:
            size = _disk_bytes(path)
            lines.append(
                f"{Path(path).name}" + (f": {format_bytes(size)} on disk" if size is not None else "")
            )
        voxel = _voxel_size(layer)
        if data.ndim >= 3 and voxel is not None:
            unit = " nm" if layer.metadata.get("voxel_size_nm") else ""
            lines.append("voxel (z, y, x): " + " × ".join(f"{s:g}" for s in voxel) + unit)
        self.data_info.setText("\n".join(lines))
        self.data_warning.setText(_stack_warning(layer, data))

    # ---------------------------------------------------------------- model

    def use_shipped_model(self, quiet: bool = False):
        """Use the shipped default model, if this installation has one."""
        from napari_nrrn.model.checkpoint import default_model_path

        path = default_model_path()
        if not path.exists():
            self.model_info.setText("No shipped model yet: load a checkpoint or train one below.")
            if not quiet:
                show_info("napari-nrrn has no shipped model yet: load a checkpoint or train one.")
            return None
        return self.load_checkpoint(path, origin="shipped model")

    def load_checkpoint(self, path: str | Path, origin: str | None = None):
        """Load a napari-nrrn checkpoint or an authors' state dict; a bad file gives a notification."""
        from napari_nrrn.model.checkpoint import load_model

        try:
            model = load_model(path)
        except (ValueError, OSError) as error:
            show_error(f"Could not load the model: {error}")
            return None
        except Exception as error:  # torch's unpickler fails in many ways on a file that is not a model
            show_error(
                f"Could not load the model: {path} is not a model file napari-nrrn can read "
                f"({type(error).__name__}: {error})"
            )
            return None
        kind = model.metadata.get("source", "")
        self.set_model(model, f"{origin or Path(path).name} ({kind})" if kind else origin or Path(path).name)
        return model

    def set_model(self, model, origin: str) -> None:
        """Make ``model`` the one every preview and run uses."""
        self.model = model
        self.model_info.setText(f"Model: {origin}\n{_describe_model(model)}")
        self.depth_spin.setRange(1, model.depth)
        self.depth_spin.setValue(model.depth)
        self.blocks_table.setRowCount(0)
        self._fit_table()
        self._show_depth_cost()
        self._update_buttons()

    def save_model(self, path: str | Path) -> Path | None:
        """Save the current model (full depth) with its metadata to ``path``."""
        from napari_nrrn.model.checkpoint import save_model

        if self.model is None:
            show_error("No model to save: train or load one first.")
            return None
        try:
            saved = save_model(self.model, path, getattr(self.model, "metadata", None))
        except (ValueError, OSError) as error:
            show_error(f"Could not save the model to {path}: {error}")
            return None
        show_info(f"Model saved to {saved}")
        return saved

    def _ask_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load an NRRN model", "", "Models (*.pt *.pth);;All files (*)"
        )
        if path:
            self.load_checkpoint(path)

    def _ask_save_path(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the NRRN model", "nrrn.pt", "Models (*.pt)")
        if path:
            self.save_model(path)

    def _device(self) -> str | None:
        choice = self.device_combo.currentText()
        return None if choice == AUTO_DEVICE else choice

    def _show_device(self, *_) -> None:
        device = select_device(self._device())
        names = {"cuda": "CUDA GPU", "mps": "Apple MPS", "cpu": "CPU"}
        self.device_info.setText(f"in use: {names.get(device.type, device.type)}")

    def _model_for_run(self):
        """The model cut to the chosen depth (the full model when the depth is K)."""
        depth = self.depth_spin.value()
        return self.model if depth == self.model.depth else self.model.cut(depth)

    def _show_depth_cost(self, *_) -> None:
        if self.model is None:
            self.depth_cost.setText("")
            return
        depth, full = self.depth_spin.value(), self.model.depth
        if depth == full:
            self.depth_cost.setText(f"All {full} blocks (and the tail) are used.")
        else:
            self.depth_cost.setText(
                f"Preview and full run stop after block {depth} of {full}: {depth}/{full} of the block work, "
                f"about {full / depth:.1f}× faster."
            )

    # ---------------------------------------------------------------- training

    def checkpoint_path(self) -> Path:
        text = self.checkpoint_edit.text().strip()
        if text:
            return Path(text).expanduser()
        name = self.input_layer.name if self.input_layer is not None else "stack"
        return self._checkpoint_dir / f"{_safe_file_name(name)}-nrrn.pt"

    def start_training(self, config=None):
        """Train on the selected stack with the form's parameters (or ``config``), in a worker."""
        from napari_nrrn.engine.train import train

        layer = self._require_stack()
        if layer is None:
            return None
        try:
            config = config or self.train_form.config(device=self._device())
        except ValueError as error:
            show_error(str(error))
            return None
        checkpoint = self.checkpoint_path()
        try:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            show_error(f"Cannot create the checkpoint folder {checkpoint.parent}: {error}")
            return None
        stack = stack_data(layer)
        metadata = {"data": {"layer": layer.name, "path": source_path(layer)}}
        self.loss_plot.clear()
        self.train_status.setText(f"Training on {layer.name}; checkpoints go to {checkpoint}")

        def describe(event) -> str:
            return (
                f"Training NRRN on {layer.name}: step {event.done}/{event.total}, loss {event.loss:.4g}, "
                f"ETA {format_duration(event.eta_s)}"
            )

        def done(model, cancelled: bool) -> None:
            step = model.metadata["training"]["step"]
            self.set_model(model, f"trained on {layer.name}, {step} steps")
            how = "Cancelled" if cancelled else "Finished"
            self.train_status.setText(f"{how} at step {step}; checkpoint saved to {checkpoint}.")

        return self._start(
            TRAIN,
            lambda should_stop: train(
                stack, config, should_stop=should_stop, checkpoint_path=checkpoint, metadata=metadata
            ),
            doing=f"training on {layer.name}",
            total=config.steps,
            describe=describe,
            on_event=self.loss_plot.add,
            on_done=done,
            stop_by_closing=False,  # train() honours should_stop and returns the model it has
        )

    # ---------------------------------------------------------------- preview and depth

    def preview(self):
        """Denoise the slice on screen into "<input> NRRN preview", a one-slice layer on that slice.

        A preview asked for while one runs stops the running one (between tiles) and starts once it ended.
        """
        if PREVIEW_JOB in self.jobs:
            self._preview_pending = True
            self.jobs[PREVIEW_JOB].quit()
            return self.jobs[PREVIEW_JOB]
        layer, model = self._require_stack(), self._require_model()
        if layer is None or model is None:
            return None
        z = current_slice(layer, self.viewer.dims.point)
        self._preview_z = z
        started = time.perf_counter()

        def done(result, _) -> None:
            output, _centre = result
            show_result(self.viewer, result_name(layer.name, PREVIEW), layer, *slice_result(layer, z, output))
            self.preview_status.setText(f"Slice {z} denoised in {time.perf_counter() - started:.2f} s.")

        def stopped() -> None:
            self.preview_status.setText(f"Preview of slice {z} stopped.")

        self.preview_status.setText(f"Denoising slice {z}…")
        return self._start_slice_job(
            PREVIEW_JOB, layer, self._model_for_run(), z, blocks=False, on_done=done, on_stopped=stopped
        )

    def explore_depth(self):
        """Show y_1 .. y_K of the slice on screen as "<input> NRRN blocks" (a block slider), the final output
        as the preview, and the mean resin IQR of each. Always the full model, whatever "use depth" says."""
        layer, model = self._require_stack(), self._require_model()
        if layer is None or model is None:
            return None
        z = current_slice(layer, self.viewer.dims.point)

        def done(result, _) -> None:
            (output, blocks), centre = result
            show_result(self.viewer, result_name(layer.name, BLOCKS), layer, *blocks_result(layer, z, blocks))
            show_result(self.viewer, result_name(layer.name, PREVIEW), layer, *slice_result(layer, z, output))
            self._show_block_scores(layer, centre, blocks, output)

        return self._start_slice_job(BLOCKS_JOB, layer, model, z, blocks=True, on_done=done)

    def _start_slice_job(self, kind: str, layer, model, z: int, blocks: bool, on_done, on_stopped=None):
        from napari_nrrn.engine.inference import iter_denoise_slice

        stack, tile, device = stack_data(layer), self.tile_spin.value() or None, self._device()

        def events(_):
            """Returns the engine's result and the centre slice (read here: a lazy stack may be slow)."""
            triplet = _triplet(stack, z)
            result = yield from iter_denoise_slice(model, *triplet, tile=tile, device=device, blocks=blocks)
            return result, triplet[1]

        what = "block outputs" if blocks else "preview"
        return self._start(
            kind,
            events,
            doing=f"computing the {what} of slice {z} of {layer.name}",
            total=1,
            describe=lambda event: f"NRRN {what} of slice {z}: tile {event.done}/{event.total}",
            on_done=on_done,
            on_stopped=on_stopped,
        )

    def block_scores(self, layer, centre, blocks, output) -> list[float] | None:
        """Mean resin IQR of the input slice, every block output and the final output (None without lines)."""
        from napari_nrrn.measures.profiles import mean_line_iqr

        name = self.lines_combo.currentText()
        if name not in self.viewer.layers:
            return None
        lines = lines_in_data_coords(self.viewer.layers[name], layer)
        if not lines:
            return None
        return [mean_line_iqr(image, lines) for image in (centre, *blocks, output)]

    def _fit_table(self) -> None:
        """Size the block table to its rows, so no row hides behind a scroll bar."""
        table = self.blocks_table
        rows = sum(table.rowHeight(row) for row in range(table.rowCount()))
        table.setFixedHeight(table.horizontalHeader().sizeHint().height() + rows + 2 * table.frameWidth())

    def _show_block_scores(self, layer, centre, blocks, output) -> None:
        try:
            scores = self.block_scores(layer, centre, blocks, output)
        except ValueError as error:  # a line outside the image, a zero-length line
            show_error(f"Resin lines: {error}")
            scores = None
        names = ["input", *(f"block {k}" for k in range(1, len(blocks) + 1)), "output"]
        self.blocks_table.setRowCount(len(names))
        for row, name in enumerate(names):
            self.blocks_table.setItem(row, 0, QTableWidgetItem(name))
            text = f"{scores[row]:.2f}" if scores is not None else "draw resin lines"
            self.blocks_table.setItem(row, 1, QTableWidgetItem(text))
        self._fit_table()

    def _on_slice_change(self, event=None) -> None:
        """Auto-preview: re-run (debounced) when the input's slice on screen changes, not for other axes."""
        layer = self.input_layer
        if not self.auto_preview.isChecked() or self.model is None or layer is None:
            return
        if current_slice(layer, self.viewer.dims.point) != self._preview_z:
            self._preview_timer.start()

    # ---------------------------------------------------------------- full stack

    def denoise_to_file(self, path: str | Path, overwrite: bool = False):
        """Denoise the whole stack slice by slice straight to ``path`` (.tif/.tiff/.zarr/.ome.zarr), then
        open the result lazily as "<input> NRRN denoised"."""
        from napari_nrrn.engine.inference import denoise_stack
        from napari_nrrn.io.writers import iter_write_stack

        layer, model = self._require_stack(), self._require_model()
        if layer is None or model is None:
            return None
        path = Path(path).expanduser()
        model = self._model_for_run()
        stack, tile, device = stack_data(layer), self.tile_spin.value() or None, self._device()
        voxel = _voxel_size(layer)

        def describe(event) -> str:
            return (
                f"NRRN denoising {layer.name}: {event.done}/{event.total} slices, {event.rate:.2f} slices/s, "
                f"ETA {format_duration(event.eta_s)}"
            )

        started = time.perf_counter()

        def done(_, __) -> None:  # the writer ended: the file is complete under its final name
            self.stack_status.setText(f"Saved {path} ({time.perf_counter() - started:.1f} s).")
            self._open_result(layer, path)

        def stopped() -> None:  # the writer was closed: it removed its partial file
            self.stack_status.setText(f"Cancelled: {path.name} was not written.")

        self.stack_status.setText(f"Denoising {layer.name} to {path}…")
        return self._start(
            STACK_JOB,
            lambda _: iter_write_stack(
                denoise_stack(model, stack, tile=tile, device=device),
                path,
                voxel_size=voxel,
                overwrite=overwrite,
            ),
            doing=f"denoising {layer.name} to {path}",
            total=int(stack.shape[0]),
            describe=describe,
            on_done=done,
            on_stopped=stopped,
        )

    def _open_result(self, layer, path: Path) -> None:
        from napari_nrrn.io.stack import open_stack

        try:
            data = open_stack(path)
        except (ValueError, OSError) as error:
            show_error(f"The denoised stack was written but could not be opened: {error}")
            return
        show_result(
            self.viewer, result_name(layer.name, DENOISED), layer, data[0] if layer.ndim == 2 else data
        )

    def _run_to_typed_path(self) -> None:
        text = self.output_edit.text().strip()
        if not text:
            self._ask_output_path()
            text = self.output_edit.text().strip()
            if not text:
                return
        path = Path(text).expanduser()
        overwrite = False
        if path.exists():
            answer = QMessageBox.question(
                self, "Replace?", f"{path} exists. Replace it when the run completes?"
            )
            if answer != QMessageBox.Yes:
                return
            overwrite = True
        self.denoise_to_file(path, overwrite=overwrite)

    def _ask_output_path(self) -> None:
        layer = self.input_layer
        suggestion = f"{_safe_file_name(layer.name)}_nrrn.tif" if layer is not None else "denoised.tif"
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Write the denoised stack",
            suggestion,
            OUTPUT_FILTER,
            options=QFileDialog.DontConfirmOverwrite,
        )
        if path:
            self.output_edit.setText(path)

    # ---------------------------------------------------------------- jobs

    def cancel(self, kind: str) -> None:
        """Ask the running job of this kind (TRAIN, STACK_JOB, ...) to stop."""
        worker = self.jobs.get(kind)
        if worker is not None:
            worker.quit()

    def _start(self, kind: str, make_events, on_event=None, **job):
        def event(progress) -> None:
            if on_event is not None:
                on_event(progress)
            self.job_progress.emit(kind, progress)

        def finished() -> None:
            if self.jobs.get(kind) is worker:
                del self.jobs[kind]
            self._update_buttons()
            self.job_finished.emit(kind)
            if kind == PREVIEW_JOB and self._preview_pending:
                self._preview_pending = False
                self.preview()

        try:
            worker = start_job(self, make_events, on_event=event, on_finished=finished, **job)
        except (ValueError, OSError) as error:  # arguments the engine refuses before starting
            show_error(plain_message(error, job["doing"]))
            return None
        self.jobs[kind] = worker
        self.last_worker = worker
        self._update_buttons()
        return worker

    def _update_buttons(self) -> None:
        training, writing = TRAIN in self.jobs, STACK_JOB in self.jobs
        has_model, has_stack = self.model is not None, self.input_layer is not None
        self.train_button.setEnabled(has_stack and not training and not writing)
        self.cancel_train_button.setEnabled(training)
        for button in (self.shipped_button, self.load_button):
            button.setEnabled(not training and not writing)
        self.save_button.setEnabled(has_model and not training)
        self.depth_spin.setEnabled(has_model and not writing)
        self.preview_button.setEnabled(has_model and has_stack and not training)
        self.blocks_button.setEnabled(
            has_model and has_stack and not training and BLOCKS_JOB not in self.jobs
        )
        self.stack_button.setEnabled(has_model and has_stack and not training and not writing)
        self.cancel_stack_button.setEnabled(writing)

    def _require_stack(self):
        layer = self.input_layer
        if layer is None:
            show_error("No image layer selected: open a stack first.")
        return layer

    def _require_model(self):
        if self.model is None:
            show_error("No model: load a checkpoint or train one first.")
        return self.model


def _triplet(stack, z: int):
    """(previous, centre, next) slices at ``z`` as numpy. A single image is its own neighbour: a model
    trained elsewhere sees it in both channels."""
    from napari_nrrn.engine.inference import slice_triplet

    if stack.shape[0] == 1:
        image = np.asarray(stack[0])
        return image, image, image
    return slice_triplet(stack, z)


def _voxel_size(layer) -> tuple[float, float, float] | None:
    recorded = layer.metadata.get("voxel_size_nm")
    if recorded:
        return tuple(float(v) for v in recorded)
    scale = tuple(float(s) for s in layer.scale[-3:])
    return None if scale == (1.0, 1.0, 1.0) else scale


@lru_cache(maxsize=64)  # the data panel refreshes on every layer change; a folder may hold many files
def _disk_bytes(path: str) -> int | None:
    from napari_nrrn.io.stack import inspect_stack

    try:
        return inspect_stack(path).disk_bytes
    except (ValueError, OSError):
        return None


def _stack_warning(layer, data) -> str:
    if layer.rgb or data.ndim > 3:
        return f"NRRN needs a single-channel (Z, Y, X) stack; this layer is {data.ndim}-D."
    if data.ndim == 2:
        return (
            "2-D image: NRRN trains on neighbouring slices, so it cannot train here; a model trained "
            "elsewhere can still denoise it (the image stands in for both neighbours)."
        )
    if data.shape[0] < 3:
        return f"Only {data.shape[0]} slice(s): training needs at least 3 (previous, centre, next triplets)."
    return ""


def _safe_file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _theme_colours(viewer) -> tuple[str, str]:
    from napari.utils.theme import get_theme

    theme = get_theme(viewer.theme)
    return theme.background.as_hex(), theme.text.as_hex()


def _set_choices(combo: QComboBox, names: list[str], choice: str) -> None:
    """Replace a combo's items and select ``choice`` if it is one of them (else the first)."""
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if choice in names:
        combo.setCurrentText(choice)
    combo.blockSignals(False)


def _labelled(label: str, widget: QWidget) -> QWidget:
    holder = QWidget()
    form = QFormLayout(holder)
    form.setContentsMargins(0, 0, 0, 0)
    form.setLabelAlignment(Qt.AlignLeft)
    form.addRow(label, widget)
    return holder


def _row_widget(row: QHBoxLayout) -> QWidget:
    holder = QWidget()
    row.setContentsMargins(0, 0, 0, 0)
    holder.setLayout(row)
    return holder
