"""One progress bar per step: the engine's stage reports folded into one fraction (Qt-free).

An engine step yields ``Progress(stage, done, total)`` for several stages in
turn (motion: template, registering; CNMF: summary images,
loading, noise, initialization or patches, refine with temporal updates ...),
each counting from 0 again. :class:`StepProgress` maps them onto one bar
that only moves forward: each planned stage owns a slice of the bar (its
weight, about its share of the run time); a stage the plan does not name
(e.g. ``cnmf: temporal`` inside ``cnmf: refine``) moves within one unit of
the stage it runs in. It also estimates the time left from the elapsed time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: Stages of each step: (stage name prefixes sharing one slice, weight). The
#: alternatives in one slice never all run (e.g. greedy initialization or patches).
PLANS: dict[str, list[tuple[tuple[str, ...], float]]] = {
    "Motion correction": [
        (("template", "rigid template"), 0.12),
        # the summary images are made while registering, or after it where cluster
        # workers wrote the frames
        (("registering", "pw-rigid", "rigid"), 0.85),
        (("summary images",), 0.03),
    ],
    "CNMF": [
        (("summary images",), 0.12),
        (("cnmf: loading",), 0.04),
        (("cnmf: noise",), 0.04),
        (("cnmf: initialization", "cnmf: patches", "cnmf: seeded start"), 0.45),
        (("cnmf: refine",), 0.32),
        (("making layers",), 0.03),
    ],
    "Refit": [
        (("summary images",), 0.1),
        (("cnmf: loading",), 0.05),
        (("cnmf: noise",), 0.05),
        (("cnmf: initialization", "cnmf: patches", "cnmf: seeded start"), 0.2),
        (("cnmf: refine",), 0.6),
    ],
    "Evaluation": [
        (("SNR",), 0.25),
        (("r-values",), 0.6),
        (("dF/F",), 0.15),
    ],
}


#: One batch item: its steps in turn, each step's plan scaled to its share of an item's time.
PLANS["Batch item"] = [
    *[(prefixes, 0.3 * w) for prefixes, w in PLANS["Motion correction"]],
    (("motion (cached)",), 0.0),
    *[(prefixes, 0.55 * w) for prefixes, w in PLANS["CNMF"] if prefixes != ("making layers",)],
    *[(prefixes, 0.12 * w) for prefixes, w in PLANS["Evaluation"]],
    (("saving results",), 0.03),
]

#: A batch queue's stage: ``"<item> (<i>/<n>): <the item's stage>"`` (app.queue).
_QUEUE_STAGE = re.compile(r"^(?P<item>.*) \((?P<i>\d+)/(?P<n>\d+)\): (?P<stage>.*)$")


@dataclass
class _Slot:
    prefixes: tuple[str, ...]
    start: float
    end: float


def format_duration(seconds: float) -> str:
    """``"0:07"``, ``"2:05"``, ``"1:02:03"``."""
    s = max(0, int(round(seconds)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class StepProgress:
    """Fold a step's stage reports into one forward-only fraction with a time estimate.

    Parameters
    ----------
    step : str
        A key of :data:`PLANS`; unknown steps get one slice per stage seen
        (the bar then follows each stage's own fraction, never going back).
    clock : callable
        Seconds (``time.perf_counter``; tests pass their own).
    """

    def __init__(self, step: str, clock: Callable[[], float] = time.perf_counter) -> None:
        plan = PLANS.get(step, [])
        total = sum(w for _, w in plan) or 1.0
        self.slots: list[_Slot] = []
        at = 0.0
        for prefixes, weight in plan:
            self.slots.append(_Slot(prefixes, at / total, (at + weight) / total))
            at += weight
        self.clock = clock
        self.started = clock()
        self.fraction = 0.0
        self.stage = ""
        self.last_report = self.started
        self._slot: int | None = None
        self._outer: tuple[float, float] | None = None  # (fraction, unit) of the planned stage

    def _find(self, stage: str) -> int | None:
        best = None
        best_len = -1
        for i, slot in enumerate(self.slots):
            for prefix in slot.prefixes:
                if stage.startswith(prefix) and len(prefix) > best_len:
                    best, best_len = i, len(prefix)
        return best

    def update(self, stage: str, done: float, total: float) -> float:
        """Take one report; returns the overall fraction in [0, 1]."""
        frac = 1.0 if total <= 0 else min(1.0, max(0.0, done / total))
        self.stage = stage
        self.last_report = self.clock()
        if not self.slots:  # no plan (e.g. a batch of items): each stage's own fraction
            self.fraction = frac
            return frac
        i = self._find(stage)
        if i is not None and (self._slot is None or i >= self._slot):
            slot = self.slots[i]
            if i != self._slot:
                self._outer = None
            self._slot = i
            unit = 1.0 / total if total > 0 else 1.0
            value = slot.start + (slot.end - slot.start) * frac
            self._outer = (value, (slot.end - slot.start) * unit)
        elif self._outer is not None:  # a stage inside the planned one: within one unit of it
            base, unit = self._outer
            value = base + unit * frac
            if self._slot is not None:
                value = min(value, self.slots[self._slot].end)
        else:
            value = self.fraction
        self.fraction = max(self.fraction, min(1.0, value))
        return self.fraction

    def creep(self, share: float = 0.03) -> float:
        """Move a little towards the end of the current slice when the engine has been quiet.

        Called about once a second; never past the slice.
        """
        if self._slot is None:
            return self.fraction
        end = self.slots[self._slot].end
        self.fraction = max(self.fraction, self.fraction + (end - self.fraction) * share)
        return self.fraction

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def remaining(self) -> float | None:
        """Seconds left (None until there is enough to go on)."""
        f, t = self.fraction, self.elapsed
        if f < 0.02 or t < 1.0:
            return None
        return t * (1.0 - f) / f

    def text(self, detail: str = "") -> str:
        """``"<stage> — 0:12 elapsed, about 0:30 left"`` for the status line."""
        stage = detail or self.stage or "starting"
        left = self.remaining()
        time_text = format_duration(self.elapsed)
        if left is not None:
            time_text += f", ~{format_duration(left)} left"
        return f"{stage} — {time_text}"


class QueueProgress(StepProgress):
    """A batch queue's reports folded into one forward-only bar.

    Item ``i`` of ``n`` owns the slice ``[(i - 1) / n, i / n]``, filled by a :class:`StepProgress`
    of the "Batch item" plan (motion, CNMF, evaluation, saving), so the bar neither restarts at each
    step of an item nor at the next item.
    """

    def __init__(self, step: str = "Batch", clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(step, clock)
        self._item: tuple[str, int, int] | None = None
        self._inner: StepProgress | None = None

    def update(self, stage: str, done: float, total: float) -> float:
        self.stage = stage
        self.last_report = self.clock()
        m = _QUEUE_STAGE.match(stage)
        if m is None:  # connecting to Dask ...: no item yet
            return self.fraction
        item = (m["item"], int(m["i"]), max(int(m["n"]), 1))
        if item != self._item or self._inner is None:
            self._item, self._inner = item, StepProgress("Batch item", self.clock)
        i, n = item[1], item[2]
        inner = self._inner.update(m["stage"], done, total)
        self.fraction = max(self.fraction, min(1.0, (min(i, n) - 1 + inner) / n))
        return self.fraction

    def creep(self, share: float = 0.03) -> float:
        if self._inner is None or self._item is None:
            return self.fraction
        i, n = self._item[1], self._item[2]
        self.fraction = max(self.fraction, (min(i, n) - 1 + self._inner.creep(share)) / n)
        return self.fraction


def progress_for(step: str, clock: Callable[[], float] = time.perf_counter) -> StepProgress:
    """Return the progress fold of a dock's step (a batch queue: :class:`QueueProgress`)."""
    return QueueProgress(step, clock) if step == "Batch" else StepProgress(step, clock)


def stage_names(plan: Sequence[tuple[tuple[str, ...], float]]) -> list[str]:
    """Return the stage prefixes of a plan, in order (for documentation and tests)."""
    return [p for prefixes, _ in plan for p in prefixes]
