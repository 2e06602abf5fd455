"""The training form: one input per ``TrainConfig`` field, built from the dataclass itself.

Defaults, types and the set of fields come from ``engine.train.TrainConfig``, so the form never repeats the
engine's numbers. The everyday fields are shown; the others go in a collapsed "Advanced" section. Fields
whose type the form cannot edit (none today) keep their default. The z-distance is "auto" (None: training
chooses it from the noise it measures, as the Data section reports) or a number of slices; an optional
switch (registration) is "auto", "on" or "off".
"""

from __future__ import annotations

from dataclasses import fields

from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLineEdit, QSpinBox, QWidget
from superqt import QCollapsible

from napari_nrrn.engine.sampling import MODES
from napari_nrrn.engine.train import SCHEDULES, SUPERVISIONS, TARGETS, TrainConfig

MAIN_FIELDS = ("depth", "width", "patch", "batch", "steps", "seconds", "lr", "z_distance", "device")
LABELS = {
    "depth": "depth (blocks K)",
    "width": "width (channels C)",
    "patch": "patch (px)",
    "batch": "batch",
    "steps": "steps",
    "seconds": "time budget (s)",
    "lr": "learning rate",
    "z_distance": "z-distance (slices)",
    "device": "device",
}
TOOLTIPS = {
    "z_distance": (
        "How many slices apart training pairs its inputs and target. auto: the smallest distance at which "
        "slices share no noise, measured when training starts (see the noise report in the Data section)"
    ),
    "start_from": "The weights training starts from: shipped (the model shipped with napari-nrrn, cut to "
    "the depth; random where the width differs), random, or the path of a napari-nrrn model file",
    "supervision": "every-depth: every depth's output is trained, so a cut model is a good denoiser; "
    "final: only the full depth's (the published recipe)",
    "register": "Shift each neighbour onto its centre slice (cubic interpolation), in training and when "
    "denoising with the model. auto: when the drift measured between slices calls for it (see the Data "
    "section)",
}
CHOICES = {"schedule": SCHEDULES, "mode": MODES, "target": TARGETS, "supervision": SUPERVISIONS}
# Optional ints chosen from "auto" (None) or 1..N.
AUTO = "auto"
AUTO_OR_UP_TO = {"z_distance": 3}
AUTO_DEVICE = "auto"
# Optional switches (bool | None): "auto" (None), "on", "off".
SWITCH = {AUTO: None, "on": True, "off": False}
MAX_INT = 2**31 - 1
EDITOR_WIDTH = 80  # px


def available_devices() -> list[str]:
    import torch

    devices = [AUTO_DEVICE, "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


class TrainForm(QWidget):
    """Inputs for a ``TrainConfig``; ``config()`` reads them back (ValueError naming a field it cannot read).

    Fields named in ``skip`` get no input here: the caller passes their values to ``config()``.
    """

    def __init__(self, skip: tuple[str, ...] = (), parent=None):
        super().__init__(parent)
        self.inputs: dict[str, QWidget] = {}
        self._kinds: dict[str, str] = {}
        defaults = TrainConfig()
        main = QFormLayout(self)
        main.setContentsMargins(0, 0, 0, 0)
        self.advanced = QCollapsible("Advanced")
        advanced_form = QWidget()
        advanced = QFormLayout(advanced_form)
        for field in fields(TrainConfig):
            if field.name in skip:
                continue
            editor = self._editor(field.name, field.type, getattr(defaults, field.name))
            if editor is None:
                continue
            self.inputs[field.name] = editor
            # A spin box sizes itself for 2**31: the form would widen the dock past its edge.
            editor.setMinimumWidth(EDITOR_WIDTH)
            editor.setToolTip(TOOLTIPS.get(field.name, ""))
            form = main if field.name in MAIN_FIELDS else advanced
            form.addRow(LABELS.get(field.name, field.name.replace("_", " ")), editor)
        self.advanced.addWidget(advanced_form)
        main.addRow(self.advanced)

    def _editor(self, name: str, kind: str, default) -> QWidget | None:
        kind = kind.replace(" ", "")
        self._kinds[name] = kind
        if name in CHOICES:
            editor = QComboBox()
            editor.addItems(CHOICES[name])
            editor.setCurrentText(default)
            return editor
        if name in AUTO_OR_UP_TO:
            editor = QComboBox()
            editor.addItems([AUTO, *(str(n) for n in range(1, AUTO_OR_UP_TO[name] + 1))])
            editor.setCurrentText(AUTO if default is None else str(default))
            return editor
        if kind == "bool|None":
            editor = QComboBox()
            editor.addItems(list(SWITCH))
            editor.setCurrentText(next(text for text, value in SWITCH.items() if value is default))
            return editor
        if kind == "bool":
            editor = QCheckBox()
            editor.setChecked(default)
            return editor
        if kind == "int":
            editor = QSpinBox()
            editor.setRange(0, MAX_INT)
            editor.setValue(default)
            return editor
        if kind in ("float", "float|None", "int|None", "str", "str|None"):
            editor = QLineEdit("" if default is None else str(default))
            if kind.endswith("|None"):
                editor.setPlaceholderText("none")
            return editor
        return None

    def set_value(self, name: str, value) -> None:
        editor = self.inputs[name]
        if self._kinds[name] == "bool|None":
            editor.setCurrentText(next(text for text, switch in SWITCH.items() if switch is value))
        elif isinstance(editor, QComboBox):
            editor.setCurrentText(AUTO if value is None and name in AUTO_OR_UP_TO else str(value))
        elif isinstance(editor, QCheckBox):
            editor.setChecked(bool(value))
        elif isinstance(editor, QSpinBox):
            editor.setValue(int(value))
        else:
            editor.setText("" if value is None else str(value))

    def config(self, **given) -> TrainConfig:
        values = dict(given)
        for name, editor in self.inputs.items():
            if name in AUTO_OR_UP_TO:
                values[name] = None if editor.currentText() == AUTO else int(editor.currentText())
            elif self._kinds[name] == "bool|None":
                values[name] = SWITCH[editor.currentText()]
            elif isinstance(editor, QComboBox):
                values[name] = editor.currentText()
            elif isinstance(editor, QCheckBox):
                values[name] = editor.isChecked()
            elif isinstance(editor, QSpinBox):
                values[name] = editor.value()
            else:
                values[name] = self._parse(name, editor.text().strip())
        config = TrainConfig(**values)
        config.check()
        return config

    def _parse(self, name: str, text: str):
        kind = self._kinds[name]
        if text == "" and kind.endswith("|None"):
            return None
        number = int if kind.startswith("int") else float if kind.startswith("float") else str
        try:
            return number(text)
        except ValueError:
            raise ValueError(
                f"training parameter {LABELS.get(name, name)}: {text!r} is not a number"
            ) from None
