"""Dock widget plotting motion-correction shifts and registration quality (pyqtgraph).

pyqtgraph draws in a few milliseconds (the matplotlib version with its
constrained layout held the event loop for up to a second when a run ended).
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from qtpy.QtCore import QSize
from qtpy.QtWidgets import QVBoxLayout, QWidget

from ..layers.motion import shift_series
from ._plot import BG, FG

#: Dock title; re-runs update the dock of this name instead of adding one.
DOCK_NAME = "Motion shifts"

# napari's dark theme, so the plot does not glare next to the canvas.
_AXIS_COLORS = {"y": "#4fc3f7", "x": "#ff8a65", "z": "#aed581"}


def _style(plot: Any, bottom: str, left: str) -> None:
    plot.setMenuEnabled(False)
    plot.hideButtons()
    plot.showGrid(x=True, y=True, alpha=0.15)
    for axis, text in (("bottom", bottom), ("left", left)):
        plot.getAxis(axis).enableAutoSIPrefix(False)
        plot.getAxis(axis).setTextPen(FG)
        plot.setLabel(axis, text, color=FG)


#: Height the shifts dock asks for (px): the two plots readable, the canvas left most of the window.
SIZE_HINT_HEIGHT = 280


class ShiftsPlot(QWidget):
    """Plot the rigid shifts per frame and the correlation with the template before/after.

    The pw-rigid spread over patches is drawn with the shifts; the title holds the crispness of the
    mean image.

    Call :meth:`plot` with a ``MotionResult``; :attr:`series` holds what is shown.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground(BG)
        self.view.setMinimumHeight(220)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.series: dict[str, Any] = {}

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """Ask for a short dock (:data:`SIZE_HINT_HEIGHT`).

        pyqtgraph's view asks for 480 px, half of a 1080 px screen: the movie canvas was
        left ~400 px high above the docks.
        """
        return QSize(600, SIZE_HINT_HEIGHT)

    def plot(self, motion: Any, title: str = "") -> None:
        """Redraw for ``motion`` (an engine ``MotionResult``)."""
        series = shift_series(motion)
        self.series = series
        view = self.view
        view.clear()
        has_corr = "corr_raw" in series or "corr_corrected" in series
        view.addLabel(title, row=0, col=0, colspan=2 if has_corr else 1, color=FG, size="9pt")
        kind = "rigid (band: pw-rigid patches)" if series["spread"] else "rigid"
        shifts = view.addPlot(row=1, col=0, title=f"shifts, {kind}")
        _style(shifts, "frame", "shift (pixels)")
        shifts.addLegend(offset=(-10, 5), labelTextColor=FG, colCount=3)
        for axis, values in series["rigid"].items():
            color = _AXIS_COLORS[axis]
            if axis in series["spread"]:
                lo, hi = series["spread"][axis]
                low = pg.PlotDataItem(lo, pen=None)
                high = pg.PlotDataItem(hi, pen=None)
                fill = pg.mkColor(color)
                fill.setAlpha(60)
                band = pg.FillBetweenItem(low, high, brush=pg.mkBrush(fill))
                shifts.addItem(band)
            shifts.plot(values, pen=pg.mkPen(color, width=1.5), name=axis)
        if has_corr:
            corr = view.addPlot(row=1, col=1)
            _style(corr, "frame", "correlation with template")
            corr.addLegend(offset=(-10, -10), labelTextColor=FG)
            if "corr_raw" in series:
                corr.plot(series["corr_raw"], pen=pg.mkPen("#9e9e9e", width=1), name="raw")
            if "corr_corrected" in series:
                corr.plot(
                    series["corr_corrected"], pen=pg.mkPen("#66bb6a", width=1.5), name="corrected"
                )
            crisp_raw, crisp_cor = series["crispness_raw"], series["crispness_corrected"]
            crisp = ""
            if crisp_raw is not None and crisp_cor is not None:
                crisp = f", crispness {crisp_raw:.4g} → {crisp_cor:.4g}"
            corr.setTitle(f"registration quality{crisp}", color=FG, size="9pt")
