"""Running the Batch dock's queue: one :class:`~napari_caiman.app.queue.QueueRunner` in one worker.

The dock adds no queue logic of its own: the runner picks the items (here
one after another, following items queued meanwhile, or on a Dask cluster),
and the buttons call its thread-safe controls (``cancel_item``, ``stop``).
The widget only shows what the batch file says, once a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from functools import partial
from typing import Any

from napari.utils.notifications import show_warning

from ...engine.errors import InputError, StateError
from ...engine.progress import Progress

#: Longest wait, when napari closes mid-run, for the running item to stop.
SHUTDOWN_WAIT_S = 10.0


#: Least time between two progress reports shown while the queue runs, s (a new stage
#: shows at once): each report costs the window a redraw of the dock's progress bar and status.
REPORT_S = 0.5


def queue_job(queue: Any, over: threading.Event) -> Generator[Progress, None, Any]:
    """Run the whole queue in the worker (a generator).

    Its progress is thinned to one report per :data:`REPORT_S` within a stage;
    ``over`` is set when it is over, whichever way.
    """
    gen = queue.iter_run()
    shown, stage = 0.0, None
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as stop:
                return stop.value
            now = time.monotonic()
            if p.stage != stage or now - shown >= REPORT_S:
                shown, stage = now, p.stage
                yield p
    finally:
        gen.close()  # a close here (cancel, the dock closing) cancels the running item
        over.set()


def requeue_interrupted(batch: Any, since: float) -> None:
    """Put items cancelled by closing the widget (after ``since``) back in the queue."""
    if batch is None:
        return
    for item in batch:
        if item.status == "cancelled" and (item.finished or 0) >= since:
            batch.requeue(item.name)
            item.error = "interrupted (the Batch dock or napari was closed)"
    batch.save()


class QueueControls:
    """The Run / Cancel / Re-run part of :class:`~.batch.BatchWidget` (a mixin).

    Uses the widget's ``batch``, ``runner`` (a StepRunner: progress and
    status), ``scheduler`` and ``isolate`` fields, ``refresh()``, ``_say()``
    and ``selected_names()``.
    """

    batch: Any
    runner: Any
    scheduler: Any
    isolate: Any
    _closed: bool

    def _init_queue(self) -> None:
        self.queue: Any = None  # the QueueRunner of the last Run queue
        self._queue_active = False
        self._stop = False
        self._over = threading.Event()
        self._run_started = 0.0
        self._warned: set[str] = set()
        self.runner.finished.connect(self._on_queue_finished)

    @property
    def is_running(self) -> bool:
        """True while the queue runs (from Run queue until the last item is over)."""
        return self._queue_active

    def live_text(self) -> dict[str, str]:
        """Progress text of the item running here (shown in its table row)."""
        q = self.queue
        if q is None or q.on_dask or not self.runner.is_running:
            return {}
        return {name: self.runner.status.value for name in q.running}

    def run_queue(self) -> None:
        """Run the queued items: one after another here, or on a Dask cluster."""
        from ...app.queue import QueueRunner

        batch = self._require_batch()
        if self.is_running:
            return
        if not batch.queued():
            raise StateError("queue", "nothing is queued (select items and Re-run them)")
        scheduler = self.scheduler.value.strip() or None
        self._dock_closed()  # notes whether the widget is docked (a later "x" stops the queue)
        here = scheduler is None
        self.queue = QueueRunner(
            batch, scheduler=scheduler, follow=here, isolate=here and self.isolate.value
        )
        self._stop = False
        self._queue_active = True
        self._run_started = time.time()
        self._warned = set()
        self._over = threading.Event()
        self._timer.start()
        self.runner.start(partial(queue_job, self.queue, self._over), self._on_queue_result)
        self.refresh()

    def _on_queue_result(self, counts: Any) -> None:
        self._warn_failed()

    def _warn_failed(self) -> None:
        """One warning per item that failed in this run (the table shows the error)."""
        if self.batch is None or not self._run_started:
            return
        for item in self.batch:
            if (
                item.status == "failed"
                and item.name not in self._warned
                and ((item.finished or 0) >= self._run_started)
            ):
                self._warned.add(item.name)
                show_warning(f"batch item {item.name!r} failed: {item.error}")

    def _on_queue_finished(self, outcome: str) -> None:
        was = self._queue_active
        self._queue_active = False
        if self._closed:
            return
        self._warn_failed()
        self.refresh()
        if was and self.batch is not None:
            counts: dict[str, int] = {}
            for i in self.batch:
                counts[i.status] = counts.get(i.status, 0) + 1
            text = ", ".join(f"{n} {s}" for s, n in counts.items())
            self.runner.status.value = ("stopped: " if self._stop else "queue over: ") + text

    def cancel_selected(self) -> None:
        """Cancel the selected items.

        The running one stops (the queue goes on), queued ones leave the queue.
        """
        batch = self._require_batch()
        names = self.selected_names()
        if not names:
            raise InputError("selection", "select the items to cancel in the table")
        notes = []
        for name in names:
            item = batch.item(name)
            if item.status == "running":
                if self.queue is not None and self.is_running and self.queue.cancel_item(name):
                    notes.append(f"cancelling {name}")
                elif self.queue is not None and self.is_running and self.queue.on_dask:
                    notes.append(f"{name} runs on the cluster: Cancel all stops it")
                else:
                    notes.append(f"{name} runs in another process (e.g. the command line)")
            elif item.status == "queued":
                batch.cancel(name)
                notes.append(f"{name} cancelled")
        self.refresh()
        if notes:
            self._say("; ".join(notes))

    def cancel_all(self) -> None:
        """Cancel the running item(s) and stop the queue (queued items stay queued)."""
        if not self.is_running:
            return
        self._stop = True
        self.queue.stop()
        self._say("stopping the queue …")

    def rerun_selected(self) -> None:
        """Queue the selected items again (done, failed or cancelled) and run."""
        batch = self._require_batch()
        names = self.selected_names()
        if not names:
            raise InputError("selection", "select the items to run again in the table")
        running = [n for n in names if batch.item(n).status == "running"]
        if running:
            raise StateError("selection", f"{running[0]!r} is running")
        for name in names:
            batch.requeue(name)
        self.refresh()
        if not self.is_running:
            self.run_queue()  # a running local queue takes them up by itself

    def _shutdown(self, *, wait: bool) -> None:
        """Stop a run when the dock or napari was closed mid-run.

        Stop the queue, cancel the running item(s) and put them back in the queue ("interrupted"),
        so the batch file reads as if the run had not started them.

        With ``wait`` (napari closing: the widgets are gone) this waits, at
        most :data:`SHUTDOWN_WAIT_S`, for the engine to stop at its next
        progress report so that the file is final before the process ends.
        """
        if self._closed:
            return
        self._closed = True
        self._stop = True
        self._queue_active = False
        if not self.runner.is_running:
            return
        batch, since = self.batch, time.time()
        # napari closing: the runner's widgets are deleted, its slots must not run
        worker = self.runner.detach() if wait else self.runner.worker
        worker.quit()
        if wait:
            self._over.wait(SHUTDOWN_WAIT_S)
            requeue_interrupted(batch, since)
        else:
            worker.finished.connect(partial(requeue_interrupted, batch, since))
