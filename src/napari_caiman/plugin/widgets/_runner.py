"""Run an engine generator in a thread: progress bar, status, cancel, errors.

Every step widget (motion correction, CNMF, evaluation) embeds one
:class:`StepRunner`. The widget validates its form on the main thread, then
hands the runner a *factory* that builds the engine generator
(``iter_<op>(...)``) and a callback for the result. The runner

* runs the generator in a napari generator worker (so it can be cancelled
  between two yields) and shows each yielded
  :class:`~napari_caiman.engine.progress.Progress` in a bar and a label;
* on Cancel calls ``worker.quit()``; the generator is then closed in the
  worker thread, so ``atomic_path`` blocks in the engine delete their
  temporary files;
* shows errors as napari notifications with a plain message;
* calls the result callback on the main thread (``returned`` signal), where
  layers may be touched;
* emits :attr:`StepRunner.finished` with ``"done"``, ``"cancelled"`` or
  ``"error"`` once the worker is over (tests wait on it or on
  :attr:`StepRunner.is_running`).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import sys
import time
import traceback
from collections.abc import Callable, Generator
from typing import Any

from magicgui.widgets import Container, ProgressBar, PushButton
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error
from psygnal import Signal
from qtpy.QtCore import QTimer

from ...engine.errors import InputError, StateError
from ._dock import StatusLabel
from ._progress import StepProgress, progress_for

logger = logging.getLogger(__name__)

#: The progress bar counts in these steps (a fraction in [0, 1] times this).
BAR_STEPS = 1000

#: While a step runs, the status line (elapsed, time left) is refreshed this often, ms.
TICK_MS = 500

#: Within one stage, the bar and the status line are redrawn at most this often, s.
#: Each redraw repaints (and, with napari's OpenGL canvas, recomposes) the whole
#: window: ~60 ms of the main thread at 1920x1080 with software OpenGL, so an
#: engine reporting 20 times a second would keep the window busy just drawing its
#: progress. A new stage is shown at once.
UPDATE_S = 0.25


def error_message(exc: BaseException, step: str = "") -> str:
    """Return the text shown to the user for an error raised by a step.

    ``InputError`` / ``StateError`` are the user's to fix: their own ``"argument: message"``.
    Anything else is a bug or an environment problem: a short message with the
    exception type; the full traceback goes to the log.
    """
    if isinstance(exc, (InputError, StateError)):
        return str(exc)
    prefix = f"{step} failed" if step else "Failed"
    text = str(exc) or "(no message)"
    return f"{prefix}: {text} ({type(exc).__name__}; details in the log)"


#: Niceness added to a step's worker thread (and the threads it starts), so
#: that the viewer's main thread wins the CPU when both want it (2 cores).
WORKER_NICE = 10


def lower_thread_priority(nice: int = WORKER_NICE) -> None:
    """Lower the calling thread's CPU priority (Linux).

    Per-thread niceness, inherited by the threads it starts, e.g. the engine's pools. No-op
    elsewhere or when refused.
    """
    import os
    import threading

    if not hasattr(os, "setpriority") or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, max(current, nice)))
    except OSError:
        pass


class _Job:
    """Holds the engine generator so that a cancelled worker can close it."""

    def __init__(self, factory: Callable[[], Generator[Any, Any, Any]]) -> None:
        self.factory = factory
        self.gen: Generator[Any, Any, Any] | None = None

    def steps(self) -> Generator[Any, Any, Any]:
        # Built here, in the worker thread, so that even the engine's setup
        # (opening files, first validation) runs off the main thread.
        lower_thread_priority()
        self.gen = self.factory()
        return (yield from self.gen)

    def close(self) -> None:
        if self.gen is not None:
            try:
                self.gen.close()
            except Exception:  # cleanup must not hide the cancel
                logger.exception("error while closing a cancelled step")


class _EngineWorker(GeneratorWorker):
    """Generator worker that closes the engine generator when it is quit.

    superqt's worker simply stops iterating on ``quit()``; closing the
    generator here (still in the worker thread, before ``finished``) runs its
    ``finally`` blocks at once, so temporary files are gone by the time the
    widget hears that the step is over.
    """

    job: _Job | None = None

    def work(self) -> Any:
        try:
            return super().work()
        finally:
            if self.abort_requested and self.job is not None:
                self.job.close()


class StepRunner(Container):
    """Run / Cancel buttons, a progress bar and a status line for one step.

    Parameters
    ----------
    step : str
        Name of the step, used in messages (e.g. ``"Motion correction"``).
    on_run : callable
        Called (no arguments) when Run is clicked. It validates the form and
        calls :meth:`start`, or raises (the error is shown, nothing starts).

    Attributes
    ----------
    worker : GeneratorWorker or None
        The worker of the current (or last) run.
    finished : psygnal.Signal(str)
        Emitted on the main thread when a run is over, with ``"done"``,
        ``"cancelled"`` or ``"error"``.
    """

    finished = Signal(str)

    def __init__(self, step: str, on_run: Callable[[], Any]) -> None:
        self.step = step
        self._on_run_callback = on_run
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        buttons = Container(
            widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False
        )
        buttons.margins = (0, 0, 0, 0)
        self.progress = ProgressBar(min=0, max=BAR_STEPS, value=0, label="progress")
        self.status = StatusLabel(value="ready")
        super().__init__(widgets=[buttons, self.progress, self.status], labels=False)
        self.margins = (0, 0, 0, 0)
        self.worker: GeneratorWorker | None = None
        self._job: _Job | None = None
        self._on_result: Callable[[Any], Any] | None = None
        self._outcome = "done"
        self.tracker: StepProgress | None = None
        self._showing: Generator[Any, Any, Any] | None = None
        self._finish_pending = False
        self._detail = ""
        self._shown_at = 0.0  # perf_counter of the last bar/status redraw
        self._shown_stage = ""
        self._pending: tuple[float | None, str] | None = None
        self._flush = QTimer(self.native)
        self._flush.setSingleShot(True)
        self._flush.timeout.connect(self._apply_pending)
        self._tick = QTimer(self.native)
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self._on_tick)
        self.run_button.changed.connect(self._on_run_clicked)
        self.cancel_button.changed.connect(self.cancel)
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance()
        if (
            app is not None
        ):  # napari quitting mid-run: stop the worker, keep it off the deleted widgets
            app.aboutToQuit.connect(self.detach)

    # -- state ----------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        """True from :meth:`start` until ``finished`` has been emitted."""
        return self._job is not None

    # -- actions --------------------------------------------------------------
    def _on_run_clicked(self, *_: Any) -> None:
        if self.is_running:
            return
        try:
            self._on_run_callback()
        except Exception as exc:  # bad form input, shown like a worker error
            self.report_error(exc)

    def start(
        self,
        factory: Callable[[], Generator[Any, Any, Any]],
        on_result: Callable[[Any], Any],
    ) -> GeneratorWorker:
        """Run ``factory()``'s generator in a worker thread.

        Parameters
        ----------
        factory : callable
            Returns an engine generator (yields ``Progress``, returns the
            result). Called in the worker thread.
        on_result : callable
            Called on the main thread with the generator's return value.

        Returns
        -------
        The started worker.
        """
        if self.is_running:
            raise StateError(self.step, "is already running")
        job = _Job(factory)
        self._job = job
        self._on_result = on_result
        self._outcome = "done"
        worker = create_worker(
            job.steps,
            _start_thread=False,
            _worker_class=_EngineWorker,
            _connect={
                "yielded": self._on_yielded,
                "returned": self._on_returned,
                "errored": self._on_errored,
                "aborted": self._on_aborted,
                "finished": self._on_finished,
            },
        )
        worker.job = job
        self.worker = worker
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.progress.value = 0
        self.status.value = "starting…"
        self.tracker = progress_for(self.step)
        self._detail = "starting"
        self._shown_at = 0.0
        self._shown_stage = ""
        self._pending = None
        self._tick.start()
        worker.start()
        return worker

    def cancel(self, *_: Any) -> None:
        """Ask the worker to stop at its next yield (no result is delivered)."""
        if self.worker is not None and self.is_running:
            self.status.value = "cancelling…"
            self.cancel_button.enabled = False
            self.worker.quit()

    def detach(self) -> GeneratorWorker | None:
        """Stop the running worker without touching this runner's widgets again.

        For when the widgets are going away (dock closed, napari quitting):
        the worker's signals are disconnected from this runner's slots, then
        it is asked to stop at its next yield. Returns the worker (None when
        nothing ran), e.g. to wait for the engine to stop.
        """
        worker = self.worker if self.is_running else None
        if worker is None:
            return None
        for signal, slot in (
            (worker.yielded, self._on_yielded),
            (worker.returned, self._on_returned),
            (worker.errored, self._on_errored),
            (worker.aborted, self._on_aborted),
            (worker.finished, self._on_finished),
        ):
            with contextlib.suppress(TypeError, RuntimeError):
                signal.disconnect(slot)
        worker.quit()
        self._job = None
        with contextlib.suppress(RuntimeError):  # the timers went with the widgets
            self._tick.stop()
            self._flush.stop()
        return worker

    def report_error(self, exc: BaseException) -> None:
        """Show ``exc`` as a napari error notification (traceback to the log)."""
        if not isinstance(exc, (InputError, StateError)):
            logger.error(
                "%s failed:\n%s",
                self.step,
                "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            )
        message = error_message(exc, self.step)
        self.status.value = message if len(message) < 90 else message[:87] + "…"
        show_error(message)

    # -- worker slots (main thread) ----------------------------------------------
    def _on_yielded(self, progress: Any) -> None:
        if progress is None:  # a heartbeat (e.g. from a step in a process): nothing to show
            return
        tracker = self.tracker
        stage = getattr(progress, "stage", None)
        if tracker is not None and stage is not None:
            fraction = tracker.update(str(stage), progress.done, progress.total)
        else:
            fraction = getattr(progress, "fraction", None)
        self._detail = str(progress)
        self._pending = (fraction, self._detail)
        wait = UPDATE_S - (time.perf_counter() - self._shown_at)
        if str(stage) != self._shown_stage or wait <= 0:
            self._shown_stage = str(stage)
            self._apply_pending()
        elif not self._flush.isActive():
            self._flush.start(max(1, int(wait * 1000)))

    def _apply_pending(self) -> None:
        """Show the latest progress report (one redraw of the bar and the status line)."""
        pending, self._pending = self._pending, None
        if pending is None or not self.is_running or self.status.value.startswith("cancel"):
            return
        fraction, detail = pending
        self._shown_at = time.perf_counter()
        if fraction is not None:
            self._set_bar(round(fraction * BAR_STEPS))
        tracker = self.tracker
        self.status.value = tracker.text(detail) if tracker is not None else detail

    def _set_bar(self, value: int) -> None:
        """Move the bar without QProgressBar's synchronous repaint.

        The bar and the status line are then drawn in one pass of the event loop (one window
        recomposition).
        """
        bar = self.progress.native
        bar.setUpdatesEnabled(False)
        try:
            self.progress.value = value
        finally:
            bar.setUpdatesEnabled(True)  # schedules one ordinary (coalesced) update

    def _on_tick(self) -> None:
        """Once in a while: elapsed / time left, and a little movement when the engine is quiet."""
        tracker = self.tracker
        if tracker is None or not self.is_running or self.status.value.startswith("cancel"):
            return
        if tracker.clock() - tracker.last_report > 1.0:
            self._set_bar(round(tracker.creep() * BAR_STEPS))
        self.status.value = tracker.text(self._detail)

    def _on_returned(self, result: Any) -> None:
        self._flush.stop()
        self._pending = None
        callback = self._on_result
        if callback is None:
            return
        try:
            out = callback(result)
        except Exception as exc:  # turning results into layers failed
            self._outcome = "error"
            self.report_error(exc)
            return
        if inspect.isgenerator(out):
            # the callback adds layers one by one: one piece per event-loop turn, so
            # the window redraws and takes clicks in between; the run is over after it
            self._showing = out
            self.status.value = "showing the result…"
            self._tick.stop()
            QTimer.singleShot(0, self._show_next)
            return
        self.progress.value = BAR_STEPS
        self.status.value = "done"

    def _show_next(self) -> None:
        gen = self._showing
        if gen is None:
            return
        try:
            next(gen)
        except StopIteration:
            self._showing = None
            self.progress.value = BAR_STEPS
            self.status.value = "done"
        except Exception as exc:
            self._showing = None
            self._outcome = "error"
            self.report_error(exc)
        else:
            QTimer.singleShot(0, self._show_next)
            return
        if self._finish_pending:
            self._finish_pending = False
            self._on_finished()

    def _on_errored(self, exc: BaseException) -> None:
        self._outcome = "error"
        self.progress.value = 0
        self.report_error(exc)

    def _on_aborted(self) -> None:
        self._outcome = "cancelled"

    def _on_finished(self) -> None:
        if self._showing is not None:  # still adding the result's layers
            self._finish_pending = True
            return
        self._tick.stop()
        self._flush.stop()
        self._pending = None
        if self._outcome == "cancelled":
            self.progress.value = 0
            self.status.value = "cancelled"
        self._job = None
        self._on_result = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        self.finished.emit(self._outcome)
