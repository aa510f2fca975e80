"""Progress reports for long operations written as generators.

Every long engine operation is written as ``iter_<op>(...)``: a generator that
yields :class:`Progress` objects and *returns* its result (available as
``StopIteration.value``).  :func:`run` drives such a generator to the end, which
is what the blocking wrappers (``<op>(...)``) and the CLI use; napari widgets
wrap the generator in a thread worker instead so that they can report progress
and cancel between two yields.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    """One progress report.

    Attributes
    ----------
    stage : str
        Short name of the current stage (e.g. ``"rigid template"``).
    done, total : int
        Units of work finished so far and in all, for this stage.
    message : str
        Optional human-readable detail.
    """

    stage: str
    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        """Fraction of the stage that is done, in [0, 1]."""
        return 1.0 if self.total <= 0 else min(1.0, max(0.0, self.done / self.total))

    def __str__(self) -> str:
        """Return the stage and its progress as text."""
        text = f"{self.stage}: {self.done}/{self.total}"
        return f"{text} ({self.message})" if self.message else text


def run(
    gen: Generator[Progress, Any, R],
    callback: Callable[[Progress], Any] | None = None,
) -> R:
    """Drive a progress generator to completion and return its result.

    Parameters
    ----------
    gen : generator
        An ``iter_<op>(...)`` generator.
    callback : callable, optional
        Called with each :class:`Progress` yielded.

    Returns
    -------
    The value the generator returned.
    """
    try:
        while True:
            p = next(gen)
            if callback is not None:
                callback(p)
    except StopIteration as stop:
        return stop.value


def as_progress(
    gen: Generator[tuple[int, int], Any, R], stage: str
) -> Generator[Progress, None, R]:
    """Re-yield a generator of ``(done, total)`` pairs as :class:`Progress` of ``stage``.

    Returns the generator's value (use with ``yield from``).
    """
    try:
        while True:
            done, total = next(gen)
            yield Progress(stage, done, total)
    except StopIteration as stop:
        return stop.value
