"""napari's dark theme colours, shared by the plot docks (pyqtgraph)."""

from __future__ import annotations

from typing import Any

BG = "#262930"  # napari's dark background
FG = "#d1d2d4"  # text
EDGE = "#5a5e66"  # spines, legend frames
GRID = "#3b3f47"


def cache_axes(plot: Any) -> None:
    """Keep each axis of a pyqtgraph PlotItem as a pixmap.

    When another item of the plot changes (a curve, a marker), the axes are copied, not redrawn
    (their tick text costs milliseconds per axis with Qt's software painting); the hidden axes get
    no SI prefix (nothing to relabel on a range change).
    """
    from qtpy.QtWidgets import QGraphicsItem

    for name in ("left", "bottom", "right", "top"):
        plot.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    # the hidden axes follow every range change too: with the SI prefix on, each one
    # re-renders its (invisible) label's HTML and re-sizes itself (~10 per selection)
    for name in ("right", "top"):
        plot.getAxis(name).enableAutoSIPrefix(False)
