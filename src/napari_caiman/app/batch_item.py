"""One item of a batch (what to run, its status and outcome) and the check of its parameters."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine.errors import InputError

STATUSES = ("queued", "running", "done", "failed", "cancelled")
DEFAULT_STEPS = ("motion", "cnmf", "evaluate")

__all__ = ["BatchItem", "STATUSES", "DEFAULT_STEPS", "check_params_for_movie", "jsonable"]


def jsonable(value: Any) -> Any:
    """Parameter values -> JSON (tuples become lists, numpy scalars numbers)."""
    import numpy as np

    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


@dataclass
class BatchItem:
    """One run of the batch.

    Attributes
    ----------
    name : str
        Unique within the batch; also the results file's name.
    movie : list of str
        Movie file(s) or a folder, as given (absolute paths).
    steps : list of str
        Pipeline steps, e.g. ``["motion", "cnmf", "evaluate"]``.
    params : dict
        Parameters that differ from CaImAn's defaults (flat CaImAn names).
    status : str
        One of :data:`STATUSES`.
    error : str
        Why the item failed or was interrupted (empty otherwise).
    started, finished : float or None
        Unix times of the last attempt.
    output : str
        Results file (relative to the batch folder) once done.
    summary : str
        One line, e.g. "52 components, 47 accepted".
    attempts : int
        How many times the item was started.
    runner : dict
        Host and process id running the item (while ``status == "running"``).
    """

    name: str
    movie: list[str]
    steps: list[str] = field(default_factory=lambda: list(DEFAULT_STEPS))
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "queued"
    error: str = ""
    started: float | None = None
    finished: float | None = None
    output: str = ""
    summary: str = ""
    attempts: int = 0
    runner: dict[str, Any] = field(default_factory=dict)

    @property
    def elapsed(self) -> float | None:
        """Seconds of the last attempt (so far, while running)."""
        if self.started is None:
            return None
        end = (
            self.finished
            if self.finished is not None
            else (time.time() if self.status == "running" else None)
        )
        return None if end is None else max(0.0, end - self.started)

    def caiman_params(self) -> Any:
        """Return the item's full :class:`~napari_caiman.engine.params.CaimanParams`."""
        from ..engine.params import CaimanParams

        return CaimanParams.defaults().update(self.params)

    def to_dict(self) -> dict[str, Any]:
        """Return the item as JSON-ready values (what the batch file holds)."""
        return {f: jsonable(getattr(self, f)) for f in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BatchItem:
        """Return an item read from the batch file (unknown keys ignored, the status checked)."""
        known = {f for f in cls.__dataclass_fields__}
        item = cls(**{k: v for k, v in d.items() if k in known})
        if item.status not in STATUSES:
            raise InputError("batch", f"item {item.name!r} has an unknown status {item.status!r}")
        return item


def check_params_for_movie(params: Any, movie: Any, steps: Sequence[str]) -> None:
    """Check parameters against a movie's shape without running anything.

    Catches max_shifts / patch sizes that do not fit the frame, gSig too large, rf/stride
    inconsistent. Raises InputError naming the parameter.
    """
    from ..engine.resolve import resolve
    from ..engine.validate import check_movie

    check_movie(movie)
    if params["backend"] == "caiman":
        from ..engine.backends import require_caiman

        require_caiman()
    resolve(params, movie.shape, [s for s in steps if s in ("motion", "cnmf")])
