"""One batch item in a child process of its own (:class:`~.queue.QueueRunner` with ``isolate=True``).

A front end (the Batch dock) runs its queue this way so that the engine never
shares the window's process: it does not hold the window's interpreter lock,
and an item that crashes or is killed (out of memory) fails alone. The child opens the batch file, runs
:meth:`Batch.iter_run_item <napari_caiman.app.batch.Batch.iter_run_item>` and
sends its progress back over a pipe (at most every :data:`REPORT_S`); the
parent asks it to cancel over the same pipe, and the child closes the item's
generator at its next progress report: the same cancel, with the same
result in the batch file, as in a thread. A child that does not stop within
:data:`GRACE_S` is terminated; one that dies marks its item failed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from ..engine.progress import Progress

#: Least time between two progress messages from the child, seconds (a new stage is sent at once).
REPORT_S = 0.25
#: Seconds a child may take to stop after a cancel before it is terminated.
GRACE_S = 10.0
#: Seconds between two progress reports to the caller while the child is silent.
HEARTBEAT_S = 1.0


def _child(batch_class: type, batch_path: str, cache_dir: str, name: str, conn: Any) -> None:
    """Run one item in the child process.

    Open the batch file (``batch_class``: the parent's Batch, pickled by name), run the item,
    report, obey "cancel" (or a parent that is gone).
    """
    batch = batch_class(batch_path, cache_dir=cache_dir)
    gen = batch.iter_run_item(name)
    last, stage = 0.0, None
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration:
                break
            try:
                if conn.poll() and conn.recv() == "cancel":
                    break
                now = time.monotonic()
                if p.stage != stage or now - last >= REPORT_S:
                    conn.send((p.stage, p.done, p.total, p.message))
                    last, stage = now, p.stage
            except (EOFError, OSError):  # the parent is gone: stop as a cancel does
                break
    finally:
        gen.close()  # a cancel marks the item cancelled in the batch file
        with contextlib.suppress(OSError):
            conn.close()


@contextlib.contextmanager
def _main_script_left_out() -> Iterator[None]:
    """Start a spawned child without running the parent's ``__main__`` again.

    ``spawn`` imports the parent's main script in the child (as ``__mp_main__``). A user's
    script that opens napari without an ``if __name__ == "__main__":`` guard would run
    again there: a second window, and the item never starts. The child needs only
    :func:`_child` and the Batch class, both importable by name, so the main module's
    file and spec are hidden from ``Process.start`` (which reads them) and put back.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def iter_item_in_process(
    batch: Any, name: str, prefix: str, cancelled: Callable[[], bool]
) -> Generator[Progress, None, None]:
    """Run item ``name`` of ``batch`` in a child process.

    Yields its progress (stage prefixed by ``prefix``), at least every :data:`HEARTBEAT_S`.
    ``cancelled()`` turning true, or closing this generator, cancels the item.
    """
    ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads (Qt, BLAS)
    here, there = ctx.Pipe()
    proc = ctx.Process(
        target=_child,
        args=(type(batch), str(batch.path), str(batch.cache.root), name, there),
        name=f"napari-caiman item {name}",
        daemon=True,
    )
    with _main_script_left_out():
        proc.start()
    there.close()
    last = Progress(f"{prefix}: starting", 0, 1)
    shown = time.monotonic()
    try:
        while proc.is_alive() or here.poll():
            if cancelled():
                break
            try:
                got = here.poll(0.05)
                msg = here.recv() if got else None
            except (EOFError, OSError):
                break
            if msg is not None:
                last = Progress(f"{prefix}: {msg[0]}", msg[1], msg[2], msg[3])
            if msg is not None or time.monotonic() - shown >= HEARTBEAT_S:
                shown = time.monotonic()
                yield last
    finally:
        _stop(proc, here)
        _settle(batch, name, proc.exitcode)


def _stop(proc: Any, conn: Any) -> None:
    if proc.is_alive():
        with contextlib.suppress(OSError):
            conn.send("cancel")
        proc.join(GRACE_S)
    if proc.is_alive():
        proc.terminate()
        proc.join(GRACE_S)
    with contextlib.suppress(OSError):
        conn.close()


def _settle(batch: Any, name: str, exitcode: int | None) -> None:
    """Take over what the child wrote; an item it left running was killed or died."""
    batch.refresh()
    if name not in batch.names:
        return
    item = batch.item(name)
    if item.status != "running":
        return
    if exitcode in (0, None) or exitcode < 0 and -exitcode == 15:  # terminated after a cancel
        batch.mark(item, status="cancelled", finished=time.time(), runner={}, error="cancelled")
    else:
        batch.mark(
            item,
            status="failed",
            finished=time.time(),
            runner={},
            error=f"the process running it died (exit code {exitcode})",
        )
