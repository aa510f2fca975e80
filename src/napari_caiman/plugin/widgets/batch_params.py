"""The parameters of a new batch item, from the open step docks (each step's groups from its own dock)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...engine.errors import InputError
from .batch_text import PER_MOVIE


def params_from_widgets(
    viewer: Any, frame_shape: Sequence[int], steps: Sequence[str]
) -> tuple[dict[str, Any], list[str]]:
    """Parameters for ``steps`` from the open step docks, each step's groups
    from its own dock; returns the flat dict and the docks used."""
    from ...engine.params import ALL_GROUPS
    from . import cnmf_settings, motion_settings
    from ._settings import step_names
    from .cnmf import CNMFWidget
    from .evaluation import EvaluationWidget
    from .motion import MotionCorrectionWidget

    frame_shape = tuple(int(s) for s in frame_shape)
    window = getattr(viewer, "window", None)
    docks = list(window.dock_widgets.values()) if window is not None else []

    def find(cls: type) -> Any:
        return next((w for w in docks if isinstance(w, cls)), None)

    quality = frozenset(ALL_GROUPS["quality"])
    plan = [
        (
            "motion",
            MotionCorrectionWidget,
            "Motion correction",
            getattr(motion_settings, "STEP_NAMES", None) or step_names("motion"),
        ),
        (
            "cnmf",
            CNMFWidget,
            "CNMF",
            getattr(cnmf_settings, "STEP_NAMES", None)
            or step_names("data", "patch", "preprocess", "init", "spatial", "temporal", "merging"),
        ),
        ("evaluate", EvaluationWidget, "Evaluation", quality),
    ]
    values: dict[str, Any] = {}
    used: list[str] = []
    for step, cls, title, names in plan:
        widget = find(cls)
        if step not in steps or widget is None:
            continue
        try:
            if cls is MotionCorrectionWidget:
                full = widget.get_settings().to_params(len(frame_shape)).to_dict()
            elif cls is CNMFWidget:
                full = widget.get_settings().to_params(frame_shape).to_dict()
            elif hasattr(widget, "get_settings"):
                settings = widget.get_settings()
                try:
                    full = settings.to_params(frame_shape).to_dict()
                except TypeError:
                    full = settings.to_params().to_dict()
            else:
                full = dict(widget.thresholds())
        except InputError as exc:
            raise InputError(f"{title} dock", str(exc)) from None
        values.update({k: v for k, v in full.items() if k in names and k not in PER_MOVIE})
        used.append(title)
    return values, used
