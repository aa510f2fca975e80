"""Dock widget plotting motion-correction shifts and registration quality."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QWidget

from ..layers.motion import shift_series
from ._plot import BG, EDGE, FG, PlotDock

#: Dock title; re-runs update the dock of this name instead of adding one.
DOCK_NAME = "Motion shifts"

# napari's dark theme, so the plot does not glare next to the canvas.
_AXIS_COLORS = {"y": "#4fc3f7", "x": "#ff8a65", "z": "#aed581"}


class ShiftsPlot(PlotDock):
    """Rigid shifts per frame (with the pw-rigid spread over patches), and the
    per-frame correlation with the template before/after correction, with the
    crispness of the mean image in the title.

    Call :meth:`plot` with a ``MotionResult``.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.series: dict[str, Any] = {}

    def _style(self, ax: Any) -> None:
        self.style_axes(ax, labelsize=8)

    def plot(self, motion: Any, title: str = "") -> None:
        """Redraw for ``motion`` (an engine ``MotionResult``)."""
        series = shift_series(motion)
        self.series = series
        fig = self.figure
        fig.clear()
        has_corr = "corr_raw" in series or "corr_corrected" in series
        axes = fig.subplots(1, 2 if has_corr else 1, squeeze=False)[0]
        ax = axes[0]
        for axis, values in series["rigid"].items():
            color = _AXIS_COLORS[axis]
            frames = range(len(values))
            if axis in series["spread"]:
                lo, hi = series["spread"][axis]
                ax.fill_between(frames, lo, hi, color=color, alpha=0.25, linewidth=0)
            ax.plot(frames, values, color=color, linewidth=1.2, label=axis)
        ax.set_xlabel("frame", fontsize=8)
        ax.set_ylabel("shift (pixels)", fontsize=8)
        kind = "rigid (band: pw-rigid patches)" if series["spread"] else "rigid"
        ax.set_title(f"shifts, {kind}", fontsize=9)
        legend = ax.legend(
            fontsize=8, loc="upper right", facecolor=BG, edgecolor=EDGE, ncols=3
        )
        for text in legend.get_texts():
            text.set_color(FG)
        self._style(ax)
        if has_corr:
            ax = axes[1]
            if "corr_raw" in series:
                ax.plot(series["corr_raw"], color="#9e9e9e", linewidth=1.0, label="raw")
            if "corr_corrected" in series:
                ax.plot(series["corr_corrected"], color="#66bb6a", linewidth=1.2, label="corrected")
            ax.set_xlabel("frame", fontsize=8)
            ax.set_ylabel("correlation with template", fontsize=8)
            crisp_raw, crisp_cor = series["crispness_raw"], series["crispness_corrected"]
            crisp = ""
            if crisp_raw is not None and crisp_cor is not None:
                crisp = f"\ncrispness {crisp_raw:.4g} → {crisp_cor:.4g}"
            ax.set_title(f"registration quality{crisp}", fontsize=9)
            legend = ax.legend(fontsize=8, loc="lower right", facecolor=BG, edgecolor=EDGE)
            for text in legend.get_texts():
                text.set_color(FG)
            self._style(ax)
        if title:
            fig.suptitle(title, color=FG, fontsize=9)
        self.canvas.draw_idle()
