"""napari's dark theme colours, shared by the plot docks (pyqtgraph)."""

from __future__ import annotations

BG = "#262930"  # napari's dark background
FG = "#d1d2d4"  # text
EDGE = "#5a5e66"  # spines, legend frames
GRID = "#3b3f47"
