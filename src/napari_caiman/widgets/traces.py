"""Dock widget plotting the traces of one component (matplotlib).

Three stacked panels sharing the frame axis: raw (``C + YrA``) with the
denoised ``C`` on top, dF/F (when computed) and the deconvolved ``S``. A
vertical line marks the current frame; a click on a panel asks to jump to
that frame (:attr:`TracesPlot.frame_clicked`). Drawing is cheap: the line
artists are made once and only their data change (``draw_idle``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from psygnal import Signal
from qtpy.QtWidgets import QWidget

from ._plot import BG, EDGE, FG, PlotDock

#: Dock title; the evaluation widget reuses the dock of this name.
DOCK_NAME = "Traces"

# napari's dark theme (as in shifts_plot)
_COLORS = {"raw": "#9e9e9e", "C": "#4fc3f7", "dff": "#aed581", "S": "#ff8a65", "frame": "#ffd54f"}


class TracesPlot(PlotDock):
    """Raw, denoised, dF/F and deconvolved traces of the selected component.

    Call :meth:`show_component` with the traces and :meth:`set_frame` when the
    viewer's time step changes; connect :attr:`frame_clicked` to move it.

    Attributes
    ----------
    lines : dict of str -> Line2D
        ``"raw"``, ``"C"``, ``"dff"``, ``"S"`` (tests read their data).
    frame_clicked : psygnal.Signal(int)
        Emitted with the frame under a mouse click on a panel.
    """

    frame_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        axes = self.figure.subplots(3, 1, sharex=True)
        self.axes = {"raw": axes[0], "dff": axes[1], "S": axes[2]}
        labels = {"raw": "raw / denoised", "dff": "dF/F", "S": "deconvolved"}
        self.lines: dict[str, Any] = {}
        self.frame_lines = []
        for key, ax in self.axes.items():
            self._style(ax)
            ax.set_ylabel(labels[key], fontsize=8)
            self.frame_lines.append(ax.axvline(0, color=_COLORS["frame"], linewidth=0.8, alpha=0.8))
        self.lines["raw"] = self.axes["raw"].plot(
            [], [], color=_COLORS["raw"], lw=0.8, label="raw (C+YrA)"
        )[0]
        self.lines["C"] = self.axes["raw"].plot(
            [], [], color=_COLORS["C"], lw=1.2, label="denoised C"
        )[0]
        self.lines["dff"] = self.axes["dff"].plot([], [], color=_COLORS["dff"], lw=1.0)[0]
        self.lines["S"] = self.axes["S"].plot([], [], color=_COLORS["S"], lw=1.0)[0]
        legend = self.axes["raw"].legend(
            fontsize=7, loc="upper right", facecolor=BG, edgecolor=EDGE, ncols=2
        )
        for text in legend.get_texts():
            text.set_color(FG)
        self.axes["S"].set_xlabel("frame (click to jump)", fontsize=8)
        self._dff_note = self.axes["dff"].text(
            0.5,
            0.5,
            "",
            transform=self.axes["dff"].transAxes,
            ha="center",
            va="center",
            color=FG,
            fontsize=8,
        )
        self.title = self.axes["raw"].set_title("no component selected", fontsize=9, color=FG)
        self.component: int | None = None
        self.canvas.mpl_connect("button_press_event", self._on_click)

    def _style(self, ax: Any) -> None:
        self.style_axes(ax, labelsize=7)

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
        for key, values in (("raw", raw), ("C", C), ("S", S), ("dff", dff)):
            line = self.lines[key]
            if component is None or values is None:
                line.set_data([], [])
            else:
                values = np.asarray(values, dtype=np.float64)
                line.set_data(np.arange(values.size), values)
        self._dff_note.set_text(
            "" if dff is not None or component is None else "not computed: Evaluate"
        )
        for ax in self.axes.values():
            ax.relim()
            ax.autoscale_view()
        self.title.set_text(
            title or ("no component selected" if component is None else f"component {component}")
        )
        self.canvas.draw_idle()

    def set_frame(self, t: int) -> None:
        """Move the current-frame marker to frame ``t``."""
        for line in self.frame_lines:
            line.set_xdata([t, t])
        self.canvas.draw_idle()

    def _on_click(self, event: Any) -> None:
        if event.inaxes is None or event.xdata is None or event.button != 1:
            return
        n = self.lines["raw"].get_xdata()
        t = int(round(event.xdata))
        if len(n):
            t = int(np.clip(t, 0, len(n) - 1))
        self.frame_clicked.emit(max(t, 0))
