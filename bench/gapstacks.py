"""What the window waits for: Python stacks sampled while the main thread is late.

A helper thread wakes every 5 ms. When the main thread's 10 ms timer is more
than ``limit`` late, it records every thread's Python stack
(``sys._current_frames``), weighted by the time since its previous sample:

* ``main`` — what the main thread is doing (building/adding layers, redraws,
  or waiting for the GIL inside a call);
* ``gil`` — when the sampler itself woke much later than asked, some thread
  held the GIL without letting go (C code that does not release it); the
  other threads' stacks *before* that wait show who: their previous sample
  is charged with the wait.

Used by ``bench_gui.py --stacks``; a report lists the heaviest stacks per step.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import Counter

#: Innermost functions of a thread that is waiting, not computing.
IDLE = {
    "wait",
    "sleep",
    "result",
    "get",
    "select",
    "poll",
    "_wait_for_tstate_lock",
    "join",
    "acquire",
    "recv",
    "_recv",
    "_recv_bytes",
    "run_forever",
}


def _idle(frame) -> bool:
    return frame.f_code.co_name in IDLE or frame.f_code.co_filename.endswith(
        ("threading.py", "queue.py", "selectors.py", "connection.py")
    )


def _stack(frame, depth: int = 4) -> str:
    entries = traceback.extract_stack(frame)[::-1]
    # innermost first; skip the frames of threading/queue plumbing
    keep = [e for e in entries if "threading.py" not in e.filename][:depth]
    return " <- ".join(f"{e.filename.rsplit('/', 2)[-1]}:{e.lineno} {e.name}" for e in keep)


class StackSampler:
    """Sample all threads while ``monitor`` (a bench_gui.GapMonitor) is late."""

    def __init__(self, monitor, limit: float = 0.1, period: float = 0.005) -> None:
        self.monitor = monitor
        self.limit = limit
        self.period = period
        self.main_id = threading.main_thread().ident
        self.main: Counter = Counter()
        self.gil: Counter = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StackSampler:
        self.main.clear()
        self.gil.clear()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        me = threading.get_ident()
        prev_t = time.perf_counter()
        prev: dict[int, str] = {}
        while not self._stop.is_set():
            time.sleep(self.period)
            now = time.perf_counter()
            dt = now - prev_t
            prev_t = now
            frames = sys._current_frames()
            stacks = {tid: _stack(f) for tid, f in frames.items() if tid != me}
            busy = {tid for tid, f in frames.items() if tid != me and not _idle(f)}
            late = now - self.monitor._last
            if self.monitor.timer.isActive() and late > self.limit:
                main = stacks.get(self.main_id, "?")
                self.main[main] += dt
                if dt > 0.05:  # we could not run either: someone held the GIL
                    for tid, s in prev.items():
                        if tid != self.main_id:
                            self.gil[s] += dt
            prev = {tid: s for tid, s in stacks.items() if tid in busy}

    def report(self, title: str, top: int = 6) -> list[str]:
        lines = [f"### {title}", ""]
        for name, counter in (
            ("main thread while late", self.main),
            ("GIL held (other threads)", self.gil),
        ):
            total = sum(counter.values())
            lines.append(f"{name}: {total * 1000:.0f} ms sampled")
            for stack, t in counter.most_common(top):
                lines.append(f"  {t * 1000:7.0f} ms  {stack}")
        lines.append("")
        return lines
