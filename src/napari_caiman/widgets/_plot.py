"""A matplotlib canvas in a Qt widget, styled like napari's dark theme (shared by the plot docks)."""

from __future__ import annotations

from typing import Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QVBoxLayout, QWidget

BG = "#262930"  # napari's dark background
FG = "#d1d2d4"  # text
EDGE = "#5a5e66"  # spines, legend frames
GRID = "#3b3f47"


class PlotDock(QWidget):
    """Base of the plot docks: a constrained-layout figure filling the widget."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.figure = Figure(figsize=(6, 3.2), facecolor=BG, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(220)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)

    @staticmethod
    def style_axes(ax: Any, labelsize: int = 8) -> None:
        """Dark background, light ticks and labels, a faint grid."""
        ax.set_facecolor(BG)
        ax.tick_params(colors=FG, labelsize=labelsize)
        for spine in ax.spines.values():
            spine.set_color(EDGE)
        ax.xaxis.label.set_color(FG)
        ax.yaxis.label.set_color(FG)
        ax.title.set_color(FG)
        ax.grid(True, color=GRID, linewidth=0.5)
