"""Small Qt layout helpers shared by the sections of the denoise dock and the resin-profile dock."""

from __future__ import annotations

import weakref
from collections.abc import Callable

from qtpy.QtCore import QPropertyAnimation, Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

WARNING_STYLE = "color: #e0a030;"
UNBOUNDED = 16777215  # Qt's QWIDGETSIZE_MAX


class DockSection(QCollapsible):
    """A foldable section of the dock whose open height follows its content.

    superqt's QCollapsible fixes the open height at the content's size hint, which leaves out the extra
    lines of a word-wrapped label, so text set or rewrapped later (the noise report) was cut off. Open, the
    content here has no height limit; sections open and close without animation."""

    def _expand_collapse(self, direction, animate=True, emit=True) -> None:
        super()._expand_collapse(direction, animate=False, emit=emit)
        if direction == QPropertyAnimation.Direction.Forward:
            self.content().setMaximumHeight(UNBOUNDED)


class WrappedLabel(QLabel):
    """A word-wrapped label whose height follows its text at its width.

    Qt's layouts size a word-wrapped label from its size hint at some other width, and the dock's scroll
    area ignores height-for-width, so a long line or a report that arrived later was cut off. Here the
    label's minimum height is the height its text needs at the width it got, updated on every resize and
    every new text. Its width is the layout's to give (a long word, such as a file name, would otherwise
    widen the whole dock past its edge, where the scroll area cuts every line): see ``breakable``."""

    def __init__(self, text: str = "", style: str = "", parent=None):
        super().__init__(text, parent)
        self.setWordWrap(True)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        if style:
            self.setStyleSheet(style)
        self._fit()

    def setText(self, text: str) -> None:
        super().setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        # An empty label (no warning now) takes no room: the layout's spacing around it would leave a gap.
        self.setVisible(bool(self.text()))
        needed = self.heightForWidth(self.width()) if self.text() else 0
        if needed != self.minimumHeight():
            self.setMinimumHeight(max(needed, 0))


def breakable(name: str) -> str:
    """``name`` (a file or layer name) with a zero-width space after each separator, where a word-wrapped
    label may then break it."""
    for separator in "_-./\\":
        name = name.replace(separator, separator + "\u200b")
    return name


def labelled(label: str, widget: QWidget) -> QWidget:
    holder = QWidget()
    form = QFormLayout(holder)
    form.setContentsMargins(0, 0, 0, 0)
    form.setLabelAlignment(Qt.AlignLeft)
    form.addRow(label, widget)
    return holder


def row_widget(*widgets: QWidget, stretch: QWidget | None = None) -> QWidget:
    """The widgets side by side; ``stretch`` (one of them) takes the spare width."""
    holder = QWidget()
    row = QHBoxLayout(holder)
    row.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        row.addWidget(widget, 1 if widget is stretch else 0)
    return holder


def layer_name_combo() -> QComboBox:
    """A combo box of layer names that does not widen to its longest name: a long name would push the
    dock's content past its edge, where Qt clips it."""
    combo = QComboBox()
    combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(12)
    return combo


def set_choices(combo: QComboBox, names: list[str], choice: str) -> None:
    """Replace a combo's items and select ``choice`` if it is one of them (else the first)."""
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if choice in names:
        combo.setCurrentText(choice)
    combo.blockSignals(False)


def safe_file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def theme_colours(viewer) -> tuple[str, str]:
    from napari.utils.theme import get_theme

    theme = get_theme(viewer.theme)
    return theme.background.as_hex(), theme.text.as_hex()


def follow_layer_list(layers, refresh: Callable) -> None:
    """Call ``refresh`` (a bound method) whenever a layer is added, removed, moved or renamed. napari holds
    bound methods weakly, and so does the watcher of new layers' names, so a closed dock is not kept alive."""
    events = layers.events
    for emitter in (events.inserted, events.removed, events.moved, events.reordered):
        emitter.connect(refresh)
    for layer in layers:
        layer.events.name.connect(refresh)
    method = weakref.WeakMethod(refresh)

    def watch_name(event) -> None:
        if (bound := method()) is not None:
            event.value.events.name.connect(bound)

    events.inserted.connect(watch_name)


def scrolling_column(dock: QWidget, widgets, stretch: dict | None = None, above=()) -> QScrollArea:
    """Lay ``widgets`` out in one column that scrolls vertically (never sideways: text wraps instead) as
    the whole of ``dock``, below the fixed widgets ``above``; ``stretch`` maps a widget to its stretch
    factor (the column ends in a stretch when none is given)."""
    column_widget = QWidget()
    column = QVBoxLayout(column_widget)
    for widget in widgets:
        column.addWidget(widget, (stretch or {}).get(widget, 0))
    if not stretch:
        column.addStretch(1)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    scroll.setWidget(column_widget)
    layout = QVBoxLayout(dock)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in (*above, scroll):
        layout.addWidget(widget)
    return scroll
