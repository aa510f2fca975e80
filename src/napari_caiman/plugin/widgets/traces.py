"""Dock widget plotting the traces of one component (pyqtgraph).

Three stacked panels sharing the frame axis: raw (``C + YrA``) with the
denoised ``C`` on top, dF/F (when computed) and the deconvolved ``S``. A
vertical line marks the current frame; a click on a panel asks to jump to
that frame (:attr:`TracesPlot.frame_clicked`). pyqtgraph only swaps the
curves' data and repaints, so selecting a component or stepping through
frames costs a few milliseconds (matplotlib's full redraw cost 170-260 ms).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from psygnal import Signal
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from ._plot import BG, FG, cache_axes

#: Dock title; the evaluation widget reuses the dock of this name.
DOCK_NAME = "Traces"

# napari's dark theme (as in shifts_plot)
_COLORS = {"raw": "#9e9e9e", "C": "#4fc3f7", "dff": "#aed581", "S": "#ff8a65", "frame": "#ffd54f"}
_LABELS = {"raw": "raw / denoised", "dff": "dF/F", "S": "deconvolved"}

#: Smallest useful size of the dock (px): three readable panels.
MIN_HEIGHT = 260
MIN_WIDTH = 520
#: Width of the value axes (px), fixed.
AXIS_WIDTH = 52


class TracesPlot(QWidget):
    """Raw, denoised, dF/F and deconvolved traces of the selected component.

    Call :meth:`show_component` with the traces and :meth:`set_frame` when the
    viewer's time step changes; connect :attr:`frame_clicked` to move it.

    Attributes
    ----------
    curves : dict of str -> PlotDataItem
        ``"raw"``, ``"C"``, ``"dff"``, ``"S"``; :meth:`ydata` reads them.
    frame_lines : list of InfiniteLine
        The current-frame marker of each panel (:meth:`frame`).
    frame_clicked : psygnal.Signal(int)
        Emitted with the frame under a mouse click on a panel.
    """

    frame_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground(BG)
        self.view.setMinimumHeight(MIN_HEIGHT)
        self.setMinimumWidth(MIN_WIDTH)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        # the title is a plain label above the plots: a new title repaints the label only,
        # where a pyqtgraph LabelItem re-lays out (and repaints) the whole plot scene
        self.title = QLabel("no component selected")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setStyleSheet(f"color: {FG}; background: {BG}; font-size: 9pt;")
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        layout.addWidget(self.title)
        layout.addWidget(self.view)
        self.plots: dict[str, Any] = {}
        for i, key in enumerate(("raw", "dff", "S")):
            plot = self.view.addPlot(row=i, col=0)
            plot.setLabel("left", _LABELS[key], color=FG)
            # no grid: pyqtgraph draws it with the axes, across the whole panel, so every
            # selection (a new y range) re-rendered three panel-sized grids (~15 ms of the
            # window's time per selection with Qt's software painting)
            plot.setMenuEnabled(False)
            plot.hideButtons()
            for axis in ("left", "bottom"):
                plot.getAxis(axis).enableAutoSIPrefix(False)  # no "(x0.001)" in the labels
                plot.getAxis(axis).setTextPen(FG)
                plot.getAxis(axis).setPen("#5a5e66")
            # a fixed width: new tick labels never re-lay out the panels
            plot.getAxis("left").setWidth(AXIS_WIDTH)
            cache_axes(plot)
            if self.plots:
                plot.setXLink(self.plots["raw"])
            self.plots[key] = plot
        for key in ("raw", "dff"):  # the panels share the frame axis: drawn once, at the bottom
            self.plots[key].getAxis("bottom").setStyle(showValues=False)
            self.plots[key].getAxis("bottom").setHeight(4)
        self.plots["S"].setLabel("bottom", "frame (click to jump)", color=FG)
        self.plots["raw"].addLegend(offset=(-10, 5), labelTextColor=FG, colCount=2)
        self.curves = {
            "raw": self.plots["raw"].plot(
                pen=pg.mkPen(_COLORS["raw"], width=1), name="raw (C+YrA)"
            ),
            "C": self.plots["raw"].plot(pen=pg.mkPen(_COLORS["C"], width=1.5), name="denoised C"),
            "dff": self.plots["dff"].plot(pen=pg.mkPen(_COLORS["dff"], width=1)),
            "S": self.plots["S"].plot(pen=pg.mkPen(_COLORS["S"], width=1)),
        }
        for curve in self.curves.values():
            curve.setClipToView(True)
            curve.setDownsampling(auto=True, method="peak")
        self.frame_lines = []
        for plot in self.plots.values():
            line = pg.InfiniteLine(0, angle=90, pen=pg.mkPen(_COLORS["frame"], width=1))
            plot.addItem(line)
            self.frame_lines.append(line)
        self._dff_note = pg.TextItem("", color=FG, anchor=(0.5, 0.5))
        self._note = ""
        self.plots["dff"].addItem(self._dff_note)
        self.component: int | None = None
        self.view.scene().sigMouseClicked.connect(self._on_click)
        self._empty_ranges()

    def _empty_ranges(self) -> None:
        """Plain 0..1 axes when nothing is shown (no "1e-17" offsets)."""
        for plot in self.plots.values():
            plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)

    def ydata(self, key: str) -> np.ndarray:
        """Return the values shown by curve ``key`` (empty when none)."""
        y = self.curves[key].yData
        return np.zeros(0) if y is None else np.asarray(y)

    def frame(self) -> int:
        """Return the frame the marker is on."""
        return int(round(self.frame_lines[0].value()))

    def show_component(
        self,
        component: int | None,
        *,
        raw: np.ndarray | None = None,
        C: np.ndarray | None = None,
        S: np.ndarray | None = None,
        dff: np.ndarray | None = None,
        title: str = "",
    ) -> None:
        """Show the traces (each (T,), any may be None) of ``component``; None clears."""
        self.component = component
        n = 0
        for key, values in (("raw", raw), ("C", C), ("S", S), ("dff", dff)):
            curve = self.curves[key]
            if component is None or values is None:
                curve.setData([], [])
            else:
                values = np.asarray(values, dtype=np.float64)
                n = max(n, values.size)
                curve.setData(np.arange(values.size), values)
        note = "" if dff is not None or component is None else "not computed: Evaluate"
        if note != self._note:  # a new text re-lays out the item (and repaints the panel)
            self._dff_note.setText(note)
            self._note = note
        if component is None or n == 0:
            self._empty_ranges()
        else:
            for plot in self.plots.values():
                plot.enableAutoRange()
            self.plots["raw"].setXRange(0, max(n - 1, 1), padding=0.01)
            if note:
                self.plots["dff"].setYRange(0, 1)
                self._dff_note.setPos(n / 2, 0.5)
        text = title or ("no component selected" if component is None else f"component {component}")
        if self.title.text() != text:
            self.title.setText(text)

    def set_frame(self, t: int) -> None:
        """Move the current-frame marker to frame ``t``."""
        for line in self.frame_lines:
            line.setValue(t)

    def _on_click(self, event: Any) -> None:
        from qtpy.QtCore import Qt

        if event.button() != Qt.MouseButton.LeftButton:
            return
        pos = event.scenePos()
        for plot in self.plots.values():
            if plot.sceneBoundingRect().contains(pos) and plot.vb.sceneBoundingRect().contains(pos):
                x = plot.vb.mapSceneToView(pos).x()
                n = self.ydata("raw").size
                t = int(round(x))
                if n:
                    t = int(np.clip(t, 0, n - 1))
                self.frame_clicked.emit(max(t, 0))
                return
