"""The tables of the resin profile dock and the profile CSV.

Tables never scroll sideways: the name columns take the width left by the numbers and elide long layer
names in the middle (results are named "<input> <step>", so the ends tell them apart); the full name is the
tooltip.
"""

from __future__ import annotations

import csv

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem

PROFILE_NUMBERS = ("iqr", "mean", "std", "samples")


def results_table(headers, stretch=(0,)) -> QTableWidget:
    """A read-only table; the ``stretch`` columns share the width the others leave."""
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    table.setEditTriggers(QTableWidget.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    table.setTextElideMode(Qt.ElideMiddle)
    table.setWordWrap(False)  # else Qt elides at the end, where results differ
    header = table.horizontalHeader()
    header.setMinimumSectionSize(20)
    header.setSectionResizeMode(QHeaderView.ResizeToContents)
    for column in stretch:
        header.setSectionResizeMode(column, QHeaderView.Stretch)
    return table


def fill_table(table: QTableWidget, rows: list[dict], columns) -> None:
    """One table row per dict, the values of ``columns`` in order (floats to 5 significant digits)."""
    table.setRowCount(len(rows))
    for row_index, row in enumerate(rows):
        for column_index, column in enumerate(columns):
            value = row[column]
            text = f"{value:.5g}" if isinstance(value, float) else str(value)
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            table.setItem(row_index, column_index, item)


def fit_height(table: QTableWidget, shown: int) -> None:
    """Tall enough for every row up to ``shown`` (at least 2) without a scroll bar; more rows scroll."""
    rows = min(max(table.rowCount(), 2), shown)
    height = table.horizontalHeader().sizeHint().height()
    height += rows * table.verticalHeader().defaultSectionSize() + 2 * table.frameWidth()
    table.setFixedHeight(height)


def csv_columns(unit: str | None) -> list[str]:
    """The profile CSV's header: lengths and end points carry the world unit."""
    unit = unit or "world_units"
    places = [f"{end}_{axis}_{unit}" for end in ("start", "end") for axis in ("y", "x")]
    return ["layer", "line", "slice", *places, f"length_{unit}", *PROFILE_NUMBERS]


def write_profiles_csv(path, rows: list[dict], unit: str | None) -> None:
    """The profile table at full precision, with where each profile was taken: slice, end points, length."""
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(csv_columns(unit))
        for row in rows:
            slice_index = "" if row["slice"] is None else row["slice"]
            place = [*row["start"], *row["end"], row["length"]]
            numbers = [row[name] for name in PROFILE_NUMBERS]
            writer.writerow([row["layer"], row["line"], slice_index, *place, *numbers])
