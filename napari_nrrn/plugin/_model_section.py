"""Section 2 of the denoise dock: the model (shipped, loaded or trained here) and the device it runs on."""

from __future__ import annotations

from pathlib import Path

from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QSettings
from qtpy.QtWidgets import QComboBox, QFileDialog, QInputDialog, QLabel, QLineEdit, QPushButton

from napari_nrrn.engine.device import select_device
from napari_nrrn.plugin._denoise_train_form import AUTO_DEVICE, available_devices
from napari_nrrn.plugin._dock_layout import DockSection, WrappedLabel, labelled, row_widget
from napari_nrrn.plugin._dock_state import EXPORT_JOB, DockJobs, DockState
from napari_nrrn.plugin._training_section import TrainingSection

DEVICE_NAMES = {"cuda": "CUDA GPU", "mps": "Apple MPS", "cpu": "CPU"}
# The shipped models (``shipped_model_paths`` names) as the dock offers them.
SHIPPED_CHOICES = {"default": "default (C=32)", "width 16": "fast (width 16)"}

# Where the author name of BioImage.IO packages is remembered between sessions (QSettings).
SETTINGS = ("napari-nrrn", "napari-nrrn")
AUTHOR_KEY = "bioimageio/author"
NO_AUTHOR = (
    "A BioImage.IO package names who trained its weights: type your name in the Model section's "
    "'Author' field, then export again."
)


def shipped_origin(name: str) -> str:
    """The model origin (``state.model_origin``) of the shipped model ``name``."""
    return f"shipped model, {SHIPPED_CHOICES[name]}"


def origin_text(model, origin: str) -> str:
    """A model origin with the kind of file it came from, as the Model section shows it."""
    kind = model.metadata.get("source", "")
    return f"{origin} ({kind})" if kind else origin


def shipped_name(origin: str) -> str | None:
    """Which shipped model a model origin names, if any."""
    return next((name for name in SHIPPED_CHOICES if origin.startswith(shipped_origin(name))), None)


def export_events(model, path: Path, overwrite: bool, depth: int | None, author: str):
    """A job without progress events: the BioImage.IO package written (seconds: tracing, validation)."""
    from napari_nrrn.model.bioimageio import export_bioimageio

    return export_bioimageio(model, path, overwrite=overwrite, depth=depth, author=author)
    yield  # start_job drives generators


def describe_model(model) -> str:
    return (
        f"depth {model.depth}, width {model.width}, {sum(p.numel() for p in model.parameters()):,} parameters"
    )


class ModelSection(DockSection):
    """Choose the model every preview and run uses (``state.model``), the device (``state.device``), and
    (nested) train one on the stack."""

    def __init__(self, state: DockState, jobs: DockJobs, viewer):
        super().__init__("2. Model")
        self.state, self.jobs = state, jobs
        self.model_info = WrappedLabel("No model")
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        self.device_combo.setToolTip("auto: a CUDA GPU, else Apple MPS, else the CPU")
        self.device_combo.currentTextChanged.connect(self._show_device)
        self.device_info = QLabel()
        self.shipped_combo = QComboBox()
        self.shipped_combo.addItems(SHIPPED_CHOICES.values())
        self.shipped_combo.setToolTip(
            "The models shipped with napari-nrrn: the default (width 32), or the fast one (width 16, about "
            "3x faster, 0.2 dB lower on the FlyEM benchmark; docs/benchmarks.md)"
        )
        self.shipped_button = QPushButton("Use shipped")
        self.shipped_button.setToolTip("Use the shipped model chosen on the left")
        self.shipped_button.clicked.connect(lambda: self.use_shipped_model(self._shipped_choice()))
        self.load_button = QPushButton("Load…")
        self.load_button.setToolTip(
            "A napari-nrrn checkpoint, the authors' NRRN state dict (.pt, .pth), or a BioImage.IO package "
            "(.zip)"
        )
        self.load_button.clicked.connect(self._ask_checkpoint)
        self.save_button = QPushButton("Save…")
        self.save_button.clicked.connect(self._ask_save_path)
        self.export_button = QPushButton("Export for BioImage.IO…")
        self.export_button.setToolTip(
            "A BioImage.IO model package (.zip) of the model at the depth chosen in the depth explorer, for "
            "the BioImage Model Zoo and the tools that read it; Load takes it back"
        )
        self.export_button.clicked.connect(self._ask_export_path)
        self.author_edit = QLineEdit(QSettings(*SETTINGS).value(AUTHOR_KEY, "", type=str))
        self.author_edit.setPlaceholderText("your name, asked at the first export")
        self.author_edit.setToolTip("Who trained the weights: named as the author of BioImage.IO packages")
        self.author_edit.editingFinished.connect(self._remember_author)
        self.training = TrainingSection(state, jobs, viewer)

        self.addWidget(self.model_info)
        self.addWidget(
            row_widget(QLabel("Device"), self.device_combo, self.device_info, stretch=self.device_info)
        )
        self.addWidget(row_widget(QLabel("Shipped"), self.shipped_combo, self.shipped_button))
        self.addWidget(row_widget(self.load_button, self.save_button))
        self.addWidget(self.export_button)
        self.addWidget(labelled("Author", self.author_edit))
        self.addWidget(self.training)
        self.expand(animate=False)
        self._show_device()
        state.events.model.connect(self._show_model)
        for event in (state.events.model, state.events.running):
            event.connect(self.update_buttons)
        self.update_buttons()

    def use_shipped_model(self, name: str = "default", quiet: bool = False):
        """Use the shipped model ``name`` (a ``shipped_model_paths`` name), if this installation has it."""
        from napari_nrrn.model.checkpoint import shipped_model_paths

        path = shipped_model_paths()[name]
        if not path.exists():
            self.model_info.setText("No shipped model yet: load a checkpoint or train one below.")
            if not quiet:
                show_info("napari-nrrn has no shipped model yet: load a checkpoint or train one.")
            return None
        return self.load_checkpoint(path, origin=shipped_origin(name))

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
        self.state.set_model(model, origin_text(model, origin or Path(path).name))
        return model

    def save_model(self, path: str | Path) -> Path | None:
        """Save the current model (full depth) with its metadata to ``path``."""
        from napari_nrrn.model.checkpoint import save_model

        model = self.state.model
        if model is None:
            show_error("No model to save: train or load one first.")
            return None
        try:
            saved = save_model(model, path, getattr(model, "metadata", None))
        except (ValueError, OSError) as error:
            show_error(f"Could not save the model to {path}: {error}")
            return None
        show_info(f"Model saved to {saved}")
        return saved

    def export_for_bioimageio(self, path: str | Path, overwrite: bool = False):
        """Write the model, cut to the depth the depth explorer's "Use depth" chooses, as a BioImage.IO
        package at ``path`` (.zip) naming the author typed in the Author field, in a worker; no author, a
        missing ``bioimageio`` extra or a bad path gives a notification saying what to do, and nothing is
        written."""
        model = self.state.require_model()
        if model is None:
            return None
        author = self.author_edit.text().strip()
        if not author:
            show_error(NO_AUTHOR)
            return None
        self._remember_author()
        path = Path(path).expanduser()
        chosen = self.state.model_for_run().depth
        depth = None if chosen == model.depth else chosen

        def done(written, _) -> None:
            show_info(f"Model (depth {chosen} of {model.depth}) exported for BioImage.IO to {written}")

        return self.jobs.run(
            EXPORT_JOB,
            lambda _: export_events(model, path, overwrite, depth, author),
            doing=f"exporting the model for BioImage.IO to {path}",
            total=0,
            describe=lambda _: f"exporting the model for BioImage.IO to {path.name}",
            on_done=done,
        )

    def update_buttons(self) -> None:
        state = self.state
        busy = state.is_training() or state.is_writing()
        for button in (self.shipped_combo, self.shipped_button, self.load_button):
            button.setEnabled(not busy)
        has_model = state.model is not None
        self.save_button.setEnabled(has_model and not state.is_training())
        self.export_button.setEnabled(
            has_model and not state.is_training() and not state.is_running(EXPORT_JOB)
        )

    def _shipped_choice(self) -> str:
        chosen = self.shipped_combo.currentText()
        return next(name for name, text in SHIPPED_CHOICES.items() if text == chosen)

    def _show_model(self, model) -> None:
        shipped = shipped_name(self.state.model_origin)
        if shipped is not None:  # chosen here or by the depth explorer's "fastest within"
            self.shipped_combo.setCurrentText(SHIPPED_CHOICES[shipped])
        self.model_info.setText(f"Model: {self.state.model_origin}\n{describe_model(model)}")

    def _ask_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load an NRRN model", "", "Models (*.pt *.pth *.zip);;All files (*)"
        )
        if path:
            self.load_checkpoint(path)

    def _ask_save_path(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the NRRN model", "nrrn.pt", "Models (*.pt)")
        if path:
            self.save_model(path)

    def _ask_export_path(self) -> None:
        if not self.author_edit.text().strip():
            author, given = QInputDialog.getText(
                self, "Export for BioImage.IO", "The package names who trained the weights. Your name:"
            )
            if not (given and author.strip()):
                return
            self.author_edit.setText(author.strip())
            self._remember_author()
        path, _ = QFileDialog.getSaveFileName(
            self, "Export for BioImage.IO", "nrrn-bioimageio.zip", "BioImage.IO packages (*.zip)"
        )
        if path:  # the dialog has asked before replacing a file
            self.export_for_bioimageio(path, overwrite=True)

    def _remember_author(self) -> None:
        QSettings(*SETTINGS).setValue(AUTHOR_KEY, self.author_edit.text().strip())

    def _show_device(self, *_) -> None:
        choice = self.device_combo.currentText()
        self.state.device = None if choice == AUTO_DEVICE else choice
        device = select_device(self.state.device)
        self.device_info.setText(f"in use: {DEVICE_NAMES.get(device.type, device.type)}")
