"""What the step docks of one viewer share: the newest result of each step, with events.

The Motion and CNMF docks publish their results here; the CNMF dock looks up
the motion step of its movie and the Evaluation dock follows the newest CNMF
result through the events, instead of scanning ``viewer.window.dock_widgets``
and reading other widgets' attributes. Qt-free (psygnal only), one per viewer.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from psygnal import Signal


@dataclass
class MotionRun:
    """A finished motion correction: the engine step result and its layers' names."""

    step: Any  # engine.pipeline.MotionStepResult
    params: Any
    movie: str  # input layer
    corrected: str  # the corrected movie's layer


@dataclass
class CnmfRun:
    """A finished CNMF run: the engine result, its parameters and layers' names."""

    result: Any  # engine.pipeline.CnmfStepResult
    params: Any
    movie: str  # the input layer; also the prefix of the result's layers
    seeds: Any = None


class ViewerState:
    """The shared state of one viewer's docks.

    Attributes
    ----------
    motion_done : Signal(MotionRun)
    cnmf_done : Signal(CnmfRun)
        Emitted (on the main thread) once the step's layers are in the viewer.
    """

    motion_done = Signal(object)
    cnmf_done = Signal(object)

    def __init__(self) -> None:
        self._motion: dict[str, MotionRun] = {}
        self.cnmf: CnmfRun | None = None

    def add_motion(self, run: MotionRun) -> None:
        """Publish a motion correction (it replaces the one of the same corrected layer)."""
        self._motion[run.corrected] = run
        self.motion_done.emit(run)

    def motion_for(self, corrected: str) -> MotionRun | None:
        """The motion correction whose corrected movie is the layer named ``corrected``."""
        return self._motion.get(corrected)

    def add_cnmf(self, run: CnmfRun) -> None:
        """Publish a CNMF result (the newest is :attr:`cnmf`)."""
        self.cnmf = run
        self.cnmf_done.emit(run)


# one per viewer; keyed by the viewer behind napari's proxy, held weakly
_STATES: dict[int, tuple[weakref.ref, ViewerState]] = {}


def viewer_state(viewer: Any) -> ViewerState:
    """The :class:`ViewerState` of ``viewer`` (a napari viewer or a plugin's proxy of it)."""
    real = getattr(viewer, "__wrapped__", viewer)
    for key, (ref, _) in list(_STATES.items()):  # forget closed viewers
        if ref() is None:
            del _STATES[key]
    entry = _STATES.get(id(real))
    if entry is not None and entry[0]() is real:
        return entry[1]
    state = ViewerState()
    _STATES[id(real)] = (weakref.ref(real), state)
    return state
