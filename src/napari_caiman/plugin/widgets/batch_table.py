"""The Batch dock's queue table: one row per item (name, status, elapsed, summary / error)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from qtpy.QtCore import QItemSelection, QItemSelectionModel
from qtpy.QtGui import QBrush, QColor, QFont
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from .batch_text import STATUS_COLORS, fmt_value, format_elapsed

#: Columns of the queue table.
COLUMNS = ("name", "status", "elapsed", "summary / error")


class QueueTable(QTableWidget):
    """Rows follow the batch's items.

    A cell is rewritten only when its text changes (an unchanged table costs no repaint).
    """

    def __init__(self) -> None:
        super().__init__(0, len(COLUMNS))
        self.setHorizontalHeaderLabels(list(COLUMNS))
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(22)
        self.setWordWrap(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.setMinimumHeight(150)
        self.setToolTip("Double-click a finished item to load it; select two to compare")
        self.row_names: list[str] = []

    def _cell(
        self,
        row: int,
        col: int,
        text: str,
        *,
        color: str | None = None,
        tip: str | None = None,
        bold: bool = False,
    ) -> None:
        cell = self.item(row, col)
        if cell is None:
            cell = QTableWidgetItem()
            self.setItem(row, col, cell)
        if cell.text() != text:
            cell.setText(text)
        tip = tip if tip is not None else text
        if cell.toolTip() != tip:
            cell.setToolTip(tip)
        if color is not None and cell.foreground().color() != QColor(color):
            cell.setForeground(QBrush(QColor(color)))
            font = QFont(cell.font())
            font.setBold(bold)
            cell.setFont(font)

    def show_items(self, items: Sequence[Any], live: Mapping[str, str] | None = None) -> None:
        """Show ``items`` (:class:`~napari_caiman.app.batch.BatchItem`).

        ``live``: the progress text of running items, shown instead of their summary.
        """
        live = live or {}
        names = [i.name for i in items]
        if names != self.row_names:
            selected = set(self.selected_names())
            self.setRowCount(len(items))
            for r, name in enumerate(names):
                self._cell(r, 0, name)
            self.row_names = names
            self.select(n for n in names if n in selected)
            self.resizeColumnToContents(0)
            if self.columnWidth(0) > 220:
                self.setColumnWidth(0, 220)
        for r, item in enumerate(items):
            self._cell(
                r,
                1,
                item.status,
                color=STATUS_COLORS.get(item.status),
                bold=item.status == "running",
            )
            self._cell(r, 2, format_elapsed(item.elapsed))
            text = (
                item.error
                if item.status in ("failed", "cancelled")
                or (item.status == "queued" and item.error)
                else item.summary
            )
            if item.status == "running" and item.name in live:
                text = live[item.name]
            tip = "\n".join(
                t
                for t in (
                    text,
                    "movie: " + ", ".join(item.movie),
                    "steps: " + ", ".join(item.steps),
                    "parameters: "
                    + ", ".join(f"{k}={fmt_value(v)}" for k, v in sorted(item.params.items())),
                )
                if t
            )
            self._cell(r, 3, text, tip=tip)

    def selected_names(self) -> list[str]:
        """Names of the selected rows, in table order."""
        rows = sorted({i.row() for i in self.selectionModel().selectedRows()})
        return [self.row_names[r] for r in rows if r < len(self.row_names)]

    def select(self, names: Iterable[str]) -> None:
        """Select these items' rows (and only these)."""
        wanted = set(names)
        selection = QItemSelection()
        for r, name in enumerate(self.row_names):
            if name in wanted:
                selection.select(self.model().index(r, 0), self.model().index(r, len(COLUMNS) - 1))
        self.selectionModel().select(
            selection,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
