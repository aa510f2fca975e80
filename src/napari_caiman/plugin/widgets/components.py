"""The "Components" dock: a sortable, filterable table and a metrics scatter plot.

Columns and plot axes come from the evaluation's
:class:`~napari_caiman.engine.evaluation.Metrics` fields (every per-component
number it holds), so metrics added there show up without changes here. The
scatter plot (pyqtgraph) draws one point per component in the accepted /
rejected colours, the threshold lines of the sliders that apply to its axes,
and selects the component of a clicked point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyqtgraph as pg
from psygnal import Signal
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ..layers.evaluation import ACCEPTED_COLOR, REJECTED_COLOR
from ._plot import BG, FG, cache_axes

#: Dock title of the components table.
DOCK_NAME = "Components"

#: Table filter choices.
FILTERS = ("all", "accepted", "rejected")

#: Column headers short enough for a ~450 px table (the full name and its
#: meaning are the header's tooltip).
SHORT_HEADERS = {
    "r_value": "r",
    "solidity": "solid",
    "n_pieces": "pcs",
    "area_ratio": "area",
    "manual": "hand",
    "status": "status",
    "size": "px",
    "anatomy": "anat",
    "classifier_prob": "clf",
}

#: Header tooltips: what each column holds.
HEADER_TIPS = {
    "id": "id: component index",
    "SNR": "SNR: peak signal-to-noise of the trace (min_SNR threshold)",
    "r_value": "r_value: spatial correlation of the footprint with the movie (rval_thr)",
    "size": "size: footprint pixels",
    "solidity": "solidity: footprint area / its convex hull (round cells near 1)",
    "n_pieces": "n_pieces: connected pieces of the footprint",
    "anatomy": "anatomy: overlap with a cell found in the anatomy image",
    "area_ratio": "area_ratio: footprint area / the area of a gSig disk",
    "cnn": "cnn: CNN classifier probability",
    "classifier_prob": "classifier_prob: trained classifier probability",
    "status": "status: accepted or rejected",
    "manual": "manual: decided by hand (a/r keys), else by the thresholds",
}

#: Columns that are not metrics (never plotted).
_NOT_METRICS = frozenset({"id", "status", "manual"})


def threshold_axis(threshold: str, columns: Mapping[str, Any]) -> str | None:
    """Return the column a threshold slider applies to.

    ``min_SNR`` -> ``SNR``, ``rval_thr`` -> ``r_value``, ``min_solidity`` -> ``solidity`` ... or
    None.
    """
    known = {"min_SNR": "SNR", "SNR_lowest": "SNR", "rval_thr": "r_value", "rval_lowest": "r_value"}
    if threshold in known:
        return known[threshold] if known[threshold] in columns else None
    base = threshold
    for prefix in ("min_", "max_"):
        base = base.removeprefix(prefix)
    for suffix in ("_thr", "_lowest", "_highest", "_min", "_max"):
        base = base.removesuffix(suffix)
    for name in columns:
        if name in _NOT_METRICS:
            continue
        if name == base or name.rstrip("s") == base.rstrip("s") or name.lower() == base.lower():
            return name
    return None


class ComponentTableModel(QAbstractTableModel):
    """One row per shown component, any columns (``id`` first), sorted by numpy.

    ``order`` maps rows to components, ``rank`` components to rows (-1 when
    filtered out). Sorting and value updates move Qt's persistent indexes
    with their components, so the table's selection stays on the same
    components whatever the order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.columns: dict[str, np.ndarray] = {"id": np.zeros(0, np.int64)}
        self.names: tuple[str, ...] = ("id",)
        self.order = np.zeros(0, np.int64)  # row -> component
        self.rank = np.zeros(0, np.int64)  # component -> row (-1 = hidden)
        self.show = "all"
        self._sort: tuple[str, Any] = ("id", Qt.SortOrder.AscendingOrder)
        #: Called after a reset that changed the column names (the view sizes its columns then)
        self.columns_changed: list[Callable[[], Any]] = []

    @property
    def COLUMNS(self) -> tuple[str, ...]:  # noqa: N802 - kept from the fixed-column version
        """Return the column names (kept from the fixed-column version)."""
        return self.names

    def _compute(self) -> tuple[np.ndarray, np.ndarray]:
        K = len(self.columns["id"])
        keep = np.ones(K, bool)
        status = self.columns.get("status")
        if self.show != "all" and status is not None:
            keep = np.asarray(status) == self.show
        name, order = self._sort
        values = self.columns.get(name, self.columns["id"])
        if values.dtype == object:
            values = values.astype(str)
        elif values.dtype.kind == "f":  # NaN (not evaluated) last
            values = np.where(np.isfinite(values), values, np.inf)
        idx = np.argsort(values, kind="stable")
        if order == Qt.SortOrder.DescendingOrder:
            idx = idx[::-1]
        idx = idx[keep[idx]].astype(np.int64)
        rank = np.full(K, -1, np.int64)
        rank[idx] = np.arange(len(idx))
        return idx, rank

    def set_columns(self, columns: dict[str, np.ndarray]) -> None:
        """Replace all rows and columns (K may change)."""
        renamed = tuple(columns) != self.names
        self.beginResetModel()
        self.columns = columns
        self.names = tuple(columns)
        self.order, self.rank = self._compute()
        self.endResetModel()
        if renamed:
            for listener in self.columns_changed:
                listener()

    def update_columns(self, columns: dict[str, np.ndarray]) -> None:
        """Show new values of the same components.

        Repaint in place when the shown rows are the same ones, else reset.
        """
        if tuple(columns) != self.names or len(columns["id"]) != len(self.columns["id"]):
            self.set_columns(columns)
            return
        old_columns = self.columns
        self.columns = columns
        order, rank = self._compute()
        if len(order) != len(self.order) or not np.array_equal(np.sort(order), np.sort(self.order)):
            self.columns = old_columns
            self.set_columns(columns)
            return
        self._relayout(order, rank)

    def set_filter(self, show: str) -> None:
        """Show all, the accepted or the rejected components."""
        self.show = show
        self.set_columns(self.columns)

    def _relayout(self, order: np.ndarray, rank: np.ndarray) -> None:
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        comps = [
            int(self.order[i.row()]) if i.isValid() and i.row() < len(self.order) else -1
            for i in old
        ]
        self.order, self.rank = order, rank
        new = [
            self.index(int(rank[c]), i.column()) if c >= 0 and rank[c] >= 0 else QModelIndex()
            for c, i in zip(comps, old, strict=True)
        ]
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()
        if len(self.order):
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self.order) - 1, len(self.names) - 1)
            )

    def sort(self, column: int, order: Any = Qt.SortOrder.AscendingOrder) -> None:  # noqa: D102
        if not 0 <= column < len(self.names):
            return
        self._sort = (self.names[column], order)
        self._relayout(*self._compute())

    def rowCount(self, parent: Any = QModelIndex()) -> int:  # noqa: B008, D102, N802
        return 0 if parent.isValid() else len(self.order)

    def columnCount(self, parent: Any = QModelIndex()) -> int:  # noqa: B008, D102, N802
        return len(self.names)

    def data(self, index: Any, role: int = Qt.ItemDataRole.DisplayRole) -> Any:  # noqa: D102
        if not index.isValid() or role != Qt.ItemDataRole.DisplayRole:
            return None
        values = self.columns[self.names[index.column()]]
        value = values[self.order[index.row()]]
        if values.dtype.kind == "f":
            return "" if not np.isfinite(value) else f"{value:.2f}"
        return str(value)

    def headerData(
        self, section: int, orientation: Any, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:  # noqa: D102, N802
        """Return the column name as the horizontal header (Qt's model method)."""
        if orientation != Qt.Orientation.Horizontal or section >= len(self.names):
            return None
        name = self.names[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return SHORT_HEADERS.get(name, name)
        if role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS.get(name, name)
        return None


def _rgb(color: np.ndarray) -> tuple[int, int, int, int]:
    return tuple(int(round(255 * c)) for c in color)  # type: ignore[return-value]


class MetricsScatter(QWidget):
    """Scatter plot of two metrics (one point per component), with the threshold lines.

    Attributes
    ----------
    component_clicked : psygnal.Signal(int, bool)
        A point was clicked: its component, and whether Shift was held.
    """

    component_clicked = Signal(int, bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.x_axis = QComboBox()
        self.y_axis = QComboBox()
        self.x_axis.setToolTip("Metric along x")
        self.y_axis.setToolTip("Metric along y")
        axes = QHBoxLayout()
        axes.setContentsMargins(2, 0, 2, 0)
        for text, box in (("x", self.x_axis), ("y", self.y_axis)):
            axes.addWidget(QLabel(text))
            axes.addWidget(box, 1)
        self.plot = pg.PlotWidget(background=BG)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).setTextPen(FG)
        self.plot.getAxis("left").setWidth(48)  # new tick labels never re-lay out the plot
        cache_axes(self.plot.getPlotItem())
        self._labels: tuple[str, str] = ("", "")
        self.points = pg.ScatterPlotItem(size=7, pxMode=True, hoverable=True)
        self.points.sigClicked.connect(self._on_clicked)
        self.plot.addItem(self.points)
        self.highlight = pg.ScatterPlotItem(
            size=13, pen=pg.mkPen("#ffeb3b", width=2), brush=None, pxMode=True
        )
        self.plot.addItem(self.highlight)
        self.lines: dict[str, Any] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(axes)
        #: shown instead of a plot of a column against itself (before the first Evaluate)
        self.hint = QLabel("Evaluate to plot SNR against r-value (or choose two columns).")
        self.hint.setWordWrap(True)
        self.hint.hide()
        layout.addWidget(self.hint)
        layout.addWidget(self.plot, 1)
        self.columns: dict[str, np.ndarray] = {}
        self.accepted = np.zeros(0, bool)
        self.thresholds: dict[str, float] = {}
        self.selected: list[int] = []
        self._chosen: set[Any] = set()
        self._range_key: tuple = ()
        self._points_key: tuple = ()
        self.x_axis.activated.connect(lambda *_: self._chosen.add(self.x_axis))
        self.y_axis.activated.connect(lambda *_: self._chosen.add(self.y_axis))
        self.x_axis.currentTextChanged.connect(self._redraw)
        self.y_axis.currentTextChanged.connect(self._redraw)

    def metric_names(self) -> list[str]:
        """Return the plottable columns (numeric metrics with some finite value)."""
        out = []
        for name, values in self.columns.items():
            if name in _NOT_METRICS or values.dtype.kind not in "fiu":
                continue
            if values.dtype.kind == "f" and not np.isfinite(values).any():
                continue
            out.append(name)
        return out

    def set_data(
        self,
        columns: dict[str, np.ndarray],
        accepted: np.ndarray,
        thresholds: Mapping[str, float],
        selected: list[int],
    ) -> None:
        """Show these components (the table's columns), statuses and thresholds."""
        self.columns, self.accepted = columns, np.asarray(accepted, bool)
        self.thresholds, self.selected = dict(thresholds), list(selected)
        names = self.metric_names()
        for box, default in ((self.x_axis, "r_value"), (self.y_axis, "SNR")):
            current = box.currentText()
            if [box.itemText(i) for i in range(box.count())] != names:
                box.blockSignals(True)
                box.clear()
                box.addItems(names)
                chosen = box in self._chosen and current in names  # the user's choice stays
                pick = current if chosen else default
                if pick not in names and current in names:
                    pick = current
                if pick in names:
                    box.setCurrentText(pick)
                elif names:
                    box.setCurrentIndex(min(1 if box is self.y_axis else 0, len(names) - 1))
                box.blockSignals(False)
        self._redraw()

    def _xy(self) -> tuple[np.ndarray, np.ndarray] | None:
        x, y = self.x_axis.currentText(), self.y_axis.currentText()
        self.hint.setVisible(x == y)
        if x not in self.columns or y not in self.columns or x == y:
            return None
        return (np.asarray(self.columns[x], np.float64), np.asarray(self.columns[y], np.float64))

    def _redraw(self, *_: Any) -> None:
        xy = self._xy()
        if xy is None:
            self.points.clear()
            self.highlight.clear()
            self._points_key = ()
            return
        x, y = xy
        ok = np.isfinite(x) & np.isfinite(y)
        idx = np.flatnonzero(ok)
        acc = self.accepted[idx] if len(self.accepted) == len(x) else np.ones(len(idx), bool)
        points_key = (x[idx].tobytes(), y[idx].tobytes(), acc.tobytes())
        if points_key != self._points_key:  # a slider step mostly changes no status
            self._points_key = points_key
            brushes = np.where(acc, "a", "r")
            brush = {"a": pg.mkBrush(*_rgb(ACCEPTED_COLOR)), "r": pg.mkBrush(*_rgb(REJECTED_COLOR))}
            self.points.setData(
                x=x[idx], y=y[idx], data=idx, brush=[brush[b] for b in brushes], pen=None
            )
        key = (self.x_axis.currentText(), self.y_axis.currentText(), len(x), int(ok.sum()))
        if key != self._range_key and len(idx):  # new axes or points: fit them (else keep the zoom)
            self._range_key = key
            self.plot.getPlotItem().vb.autoRange(padding=0.08)
        self._draw_lines()
        self.set_selected(self.selected)
        labels = (self.x_axis.currentText(), self.y_axis.currentText())
        if labels != self._labels:  # a label set again re-lays out and repaints the plot
            self._labels = labels
            self.plot.setLabel("bottom", labels[0], color=FG)
            self.plot.setLabel("left", labels[1], color=FG)

    def _draw_lines(self) -> None:
        """One line per threshold on a shown axis.

        Existing lines are moved, not rebuilt (a slider step then costs a move, not new items and
        labels).
        """
        x_name, y_name = self.x_axis.currentText(), self.y_axis.currentText()
        wanted: dict[str, tuple[str, int, float]] = {}
        for name, value in self.thresholds.items():
            axis = threshold_axis(name, self.columns)
            if axis is None or value is None or not np.isfinite(value):
                continue
            for angle, shown in ((90, x_name), (0, y_name)):
                if axis == shown:
                    wanted[f"{name}:{angle}"] = (name, angle, float(value))
        for key in [k for k in self.lines if k not in wanted]:
            self.plot.removeItem(self.lines.pop(key))
        for key, (name, angle, value) in wanted.items():
            line = self.lines.get(key)
            if line is not None:
                if line.value() != value:
                    line.setValue(value)
                continue
            style = Qt.PenStyle.DashLine if "lowest" in name else Qt.PenStyle.SolidLine
            pen = pg.mkPen("#ffd54f", width=1, style=style)
            opts: dict = {"color": "#ffd54f", "position": 0.9}
            if angle == 0:  # right-aligned above the line: inside the view, not cut at its edge
                opts["anchors"] = [(1, 1), (1, 0)]
            line = pg.InfiniteLine(value, angle=angle, pen=pen, label=name, labelOpts=opts)
            self.plot.addItem(line)
            self.lines[key] = line

    def set_selected(self, components: list[int]) -> None:
        """Ring the selected components' points."""
        self.selected = list(components)
        xy = self._xy()
        if xy is None or not components:
            self.highlight.clear()
            return
        x, y = xy
        k = np.asarray([c for c in components if 0 <= c < len(x)], np.int64)
        ok = np.isfinite(x[k]) & np.isfinite(y[k])
        self.highlight.setData(x=x[k][ok], y=y[k][ok])

    def _on_clicked(self, item: Any, points: Any, event: Any = None) -> None:
        if len(points) == 0:
            return
        shift = False
        if event is not None:
            shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        self.component_clicked.emit(int(points[0].data()), shift)


class ComponentsDock(QWidget):
    """Filter, table and scatter plot side by side (a splitter between them)."""

    def __init__(self, model: ComponentTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.filter = QComboBox()
        self.filter.addItems(FILTERS)
        self.filter.setToolTip("Show all components, or only the accepted / rejected ones")
        self.count = QLabel("")
        top = QHBoxLayout()
        top.setContentsMargins(2, 0, 2, 0)
        top.addWidget(QLabel("show"))
        top.addWidget(self.filter)
        top.addWidget(self.count, 1)
        table = QTableView()
        table.setModel(model)
        table.setSortingEnabled(True)
        table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        table.verticalHeader().setVisible(False)
        table.verticalHeader().setDefaultSectionSize(20)
        header = table.horizontalHeader()
        # each column as wide as its header and values ("accepted"), measured on the first rows
        # only and only when the columns change (not on every reset: a re-evaluation, a filter,
        # a new result with the same columns; measuring is ~0.1 s of the window's time)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setResizeContentsPrecision(50)
        header.setStretchLastSection(True)
        model.columns_changed.append(table.resizeColumnsToContents)
        if model.rowCount():
            table.resizeColumnsToContents()
        table.setMinimumHeight(160)
        self.table = table
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(top)
        left_layout.addWidget(table, 1)
        self.scatter = MetricsScatter()
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.scatter)
        splitter.setSizes([420, 360])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)
        self.setMinimumSize(620, 220)
        self.filter.currentTextChanged.connect(self._on_filter)

    def _on_filter(self, show: str) -> None:
        self.model.set_filter(show)
        self.count.setText(f"{self.model.rowCount()} shown")
