"""The parameters of a new batch item, from the step docks' forms on the viewer's shared state.

Each open Motion / CNMF / Evaluation dock publishes its form on the viewer's
:class:`~._state.ViewerSessions` (:mod:`._publish`); this module reads only
that, never the docks themselves: each step's groups from its own dock's form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...engine.errors import InputError
from ...engine.params import ALL_GROUPS
from ...engine.resolve import THRESHOLD_NAMES
from . import cnmf_settings, motion_settings
from ._state import viewer_sessions
from .batch_text import PER_MOVIE

#: Per step: the dock's title (for messages) and the parameter names the step takes from it.
STEP_FORMS: dict[str, tuple[str, frozenset[str]]] = {
    "motion": ("Motion correction", motion_settings.STEP_NAMES),
    "cnmf": ("CNMF", cnmf_settings.STEP_NAMES),
    # the quality group and every threshold the dock sets (sizes, anatomy, classifier)
    "evaluate": ("Evaluation", frozenset(ALL_GROUPS["quality"]) | frozenset(THRESHOLD_NAMES)),
}


def params_from_widgets(
    viewer: Any, frame_shape: Sequence[int], steps: Sequence[str]
) -> tuple[dict[str, Any], list[str]]:
    """Return the parameters for ``steps`` from the open step docks' forms, and the docks used.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer (or napari's proxy of it) whose shared state holds the forms.
    frame_shape : sequence of int
        The movie's frame shape, array order ((Y, X) or (Z, Y, X)).
    steps : sequence of str
        The item's steps (``"motion"``, ``"cnmf"``, ``"evaluate"``).

    Returns
    -------
    values : dict
        Flat CaImAn names: each step's groups from its own dock's form (per-movie
        names left out); a step without an open dock gives nothing (defaults).
    used : list of str
        The titles of the docks whose forms were read.

    Raises
    ------
    InputError
        A field of one of those forms holds a bad value (the dock is named).
    """
    frame_shape = tuple(int(s) for s in frame_shape)
    sessions = viewer_sessions(viewer)
    values: dict[str, Any] = {}
    used: list[str] = []
    for step, (title, names) in STEP_FORMS.items():
        if step not in steps:
            continue
        try:
            full = sessions.form_values(step, frame_shape)
        except InputError as exc:
            raise InputError(f"{title} dock", str(exc)) from None
        if full is None:
            continue
        values.update({k: v for k, v in full.items() if k in names and k not in PER_MOVIE})
        used.append(title)
    return values, used
