"""The progress of the dock's running job, inside the dock: napari's own bars sit in its activity panel,
collapsed by default, where a new user does not look."""

from __future__ import annotations

from qtpy.QtWidgets import QProgressBar, QPushButton, QVBoxLayout, QWidget

from napari_nrrn.plugin._dock_layout import WrappedLabel, row_widget
from napari_nrrn.plugin._dock_state import DockJobs


class JobProgress(QWidget):
    """A bar, a line of text and Cancel for the job started last that still runs; hidden when none runs.

    A job without a known total (a noise measurement, an export) shows a busy bar."""

    def __init__(self, jobs: DockJobs, parent=None):
        super().__init__(parent)
        self.jobs = jobs
        self.kind: str | None = None  # the job shown
        self._doing: dict[str, tuple[str, int]] = {}
        self.text = WrappedLabel()
        self.bar = QProgressBar()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(
            "Stop this job (training keeps its checkpoint; a partial file is removed)"
        )
        self.cancel_button.clicked.connect(lambda: self.kind is not None and jobs.cancel(self.kind))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.text)
        layout.addWidget(row_widget(self.bar, self.cancel_button, stretch=self.bar))
        jobs.started.connect(self._on_started)
        jobs.progress.connect(self._on_progress)
        jobs.finished.connect(self._on_finished)
        self.hide()

    def _on_started(self, kind: str, doing: str, total: int) -> None:
        self._doing[kind] = (doing, total)
        self._show(kind)

    def _show(self, kind: str) -> None:
        self.kind = kind
        doing, total = self._doing[kind]
        self.text.setText(doing[0].upper() + doing[1:] + "…")
        self.bar.setRange(0, total)  # 0..0: a busy bar
        self.bar.setValue(0)
        self.show()

    def _on_progress(self, kind: str, event) -> None:
        if kind != self.kind:
            return
        if event.total and event.total != self.bar.maximum():
            self.bar.setMaximum(event.total)
        self.bar.setValue(min(event.done, self.bar.maximum()))

    def _on_finished(self, kind: str) -> None:
        self._doing.pop(kind, None)
        if kind != self.kind:
            return
        if self._doing:
            self._show(next(reversed(self._doing)))
        else:
            self.kind = None
            self.hide()
