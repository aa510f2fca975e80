"""Run an engine generator in a child process, so the viewer never waits for the GIL (Qt-free).

A step run in a thread of the viewer's process competes with the main thread
for the GIL: NumPy/SciPy calls that keep it, and the sheer number of switches,
left the window without a turn of its event loop for 0.2-1.7 s at a time
(``bench/bench_gui.py``), and slowed the step itself. :func:`iter_in_process`
runs the generator in a forked child instead and streams what it yields back
through a pipe; the parent generator yields the same ``Progress`` reports and
returns the same result, so the step runner does not change:

* forked, not spawned: the child starts at once with the parent's memory (the
  movie is shared, not copied; nothing is imported again; the generator
  factory need not be picklable). The child never touches Qt and leaves with
  ``os._exit``;
* the result is pickled back, its arrays' memory sent as it is (pickle
  protocol 5: no copy in the child, one in the parent); a NumPy memmap
  travels as its file name (a corrected movie written to disk is not read
  through the pipe);
* errors come back as the same exception (an ``InputError`` keeps its
  argument and message); one that cannot be pickled comes back as a
  ``RuntimeError`` with its type and text;
* closing the parent generator (the Cancel button) sends the child SIGTERM;
  the child's handler raises :class:`StepCancelled` (a ``KeyboardInterrupt``)
  wherever the engine is, not only at its next yield (CNMF's initialization
  and refinement run up to seconds between two yields, and a child at lower
  priority on a busy machine got too little CPU to reach one), so the engine's
  ``finally`` blocks (temporary files) run at once; the parent waits up to
  ``GRACE_S`` for it and then returns (the window is free again), leaving a
  daemon thread to kill a child still there after ``STOP_TIMEOUT_S``;
* while the child is quiet the parent yields ``None`` every ``HEARTBEAT_S``
  so a cancel request is seen within that time.

Only where ``fork`` is safe and available (Linux); elsewhere
:func:`process_available` is False and the runner keeps its thread.
``NAPARI_CAIMAN_STEP_PROCESS=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import io
import logging
import mmap
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from ...engine.errors import InputError

logger = logging.getLogger(__name__)

#: A quiet child is checked (and a cancel seen) this often, s.
HEARTBEAT_S = 0.1

#: A cancelled child that has not stopped after this long is killed, s.
STOP_TIMEOUT_S = 3.0

#: The parent waits this long for a cancelled child before it leaves it to a reaper thread, s.
GRACE_S = 0.5


class StepCancelled(KeyboardInterrupt):
    """Raised in the child by the parent's SIGTERM (Cancel), wherever the step is.

    A ``KeyboardInterrupt``: ``except Exception`` in the engine does not swallow
    it, and the engine's interrupt cleanups (pending patch futures) apply.
    """


def process_available() -> bool:
    """Return True where steps run in a forked child (Linux; not turned off by the environment)."""
    if os.environ.get("NAPARI_CAIMAN_STEP_PROCESS", "1").strip().lower() in {
        "0",
        "false",
        "no",
        "off",
    }:
        return False
    import multiprocessing as mp

    return sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods()


def _rebuild_memmap(
    filename: str, dtype: Any, mode: str, offset: int, shape: tuple, order: str
) -> Any:
    return np.memmap(filename, dtype=dtype, mode=mode, offset=offset, shape=shape, order=order)


def _file_of(obj: np.ndarray) -> tuple | None:
    """(file name, mode, byte offset) of a contiguous array that is (a view of) a NumPy memmap of a file, else None."""
    if not isinstance(obj, np.memmap) or not (obj.flags.c_contiguous or obj.flags.f_contiguous):
        return None
    root: Any = obj
    while isinstance(root, np.ndarray) and not isinstance(root.base, mmap.mmap):
        root = root.base
    if not isinstance(root, np.memmap) or not getattr(root, "filename", None):
        return None
    start = root.offset + (obj.ctypes.data - root.ctypes.data)
    return root.filename, ("r" if root.mode == "r" else "r+"), start


class _Pickler(pickle.Pickler):
    """Pickles a NumPy memmap backed by a file as its file name, not its data."""

    def reducer_override(self, obj: Any) -> Any:
        where = _file_of(obj) if isinstance(obj, np.memmap) else None
        if where is None:
            return NotImplemented
        filename, mode, offset = where
        order = "C" if obj.flags.c_contiguous else "F"
        return _rebuild_memmap, (filename, obj.dtype, mode, offset, obj.shape, order)


def _dumps(obj: Any, buffers: list | None = None) -> bytes:
    buf = io.BytesIO()
    callback = None if buffers is None else buffers.append
    _Pickler(buf, protocol=5, buffer_callback=callback).dump(obj)
    return buf.getvalue()


def _send(conn: Any, message: tuple) -> None:
    """Send one message.

    The pickle, then its large arrays' memory as they are (pickle protocol 5 out-of-band buffers: no
    copy of a result's arrays in the child).
    """
    buffers: list[pickle.PickleBuffer] = []
    head = _dumps(message, buffers)
    views = [b.raw() for b in buffers]
    conn.send_bytes(_dumps((head, [v.nbytes for v in views])))
    for view in views:
        conn.send_bytes(view)


def _receive(conn: Any) -> tuple:
    """Return a message from :func:`_send`.

    The arrays are rebuilt on writable buffers read straight from the pipe (one copy of the data
    here, none more).
    """
    head, sizes = pickle.loads(conn.recv_bytes())
    buffers = []
    for size in sizes:
        buf = bytearray(size)
        if size:
            conn.recv_bytes_into(buf)
        else:
            conn.recv_bytes()
        buffers.append(buf)
    return pickle.loads(head, buffers=buffers)


def _error_message(exc: BaseException) -> tuple:
    """Return what the parent raises for ``exc``: the exception itself when it survives pickling."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, InputError):
        return ("input", exc.argument, exc.message, text)
    try:
        data = _dumps(exc)
        pickle.loads(data)
    except Exception:
        return ("other", f"{type(exc).__name__}: {exc}", text)
    return ("pickled", data, text)


def _child(factory: Callable[[], Generator[Any, Any, Any]], conn: Any) -> None:
    stop: list[int] = []

    def on_sigterm(signum: int, frame: Any) -> None:  # the parent's Cancel
        if not stop:  # once: the engine's cleanup then runs undisturbed
            stop.append(signum)
            raise StepCancelled

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in the terminal is the parent's
    code = 0
    gen = None
    try:
        gen = factory()
        try:
            while True:
                progress = next(gen)
                _send(conn, ("progress", progress))
        except StopIteration as done:
            _send(conn, ("result", done.value))
    except StepCancelled:
        # raised inside the engine: its frames are unwound already; raised here, between
        # two yields: the suspended generator's finally blocks run now
        if gen is not None:
            with contextlib.suppress(BaseException):
                gen.close()
    except BaseException as exc:  # reported in the parent
        code = 1
        with contextlib.suppress(Exception):
            _send(conn, ("error", *_error_message(exc)))
    finally:
        stop.append(0)  # a Cancel arriving now must not raise out of the exit
        with contextlib.suppress(Exception):
            conn.close()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        # at once: not waiting for the engine's idle pool threads (a thread worker does not)
        os._exit(code)


def _raise(kind: str, *payload: Any) -> None:
    if kind == "input":
        argument, message, text = payload
        logger.debug("step process: %s", text)
        raise InputError(argument, message)
    if kind == "pickled":
        data, text = payload
        logger.error("the step failed in its process:\n%s", text)
        raise pickle.loads(data)
    message, text = payload
    logger.error("the step failed in its process:\n%s", text)
    raise RuntimeError(message)


def iter_in_process(factory: Callable[[], Generator[Any, Any, Any]]) -> Generator[Any, None, Any]:
    """Run ``factory()``'s generator in a forked child.

    Yield what it yields (and ``None`` while it is quiet), return what it returns.

    Raises what the child raised; ``RuntimeError`` if the child died without
    a word (e.g. killed for memory).
    """
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(factory, send), daemon=True, name="napari-caiman step")
    child.start()
    send.close()
    finished = False
    try:
        while True:
            if receive.poll(HEARTBEAT_S):
                try:
                    kind, *payload = _receive(receive)
                except EOFError:
                    kind, payload = "died", []
                if kind == "progress":
                    yield payload[0]
                    continue
                if kind == "result":
                    finished = True
                    return payload[0]
                if kind == "error":
                    finished = True
                    _raise(*payload)
            elif child.is_alive():
                yield None
                continue
            # the pipe closed (or stayed silent) and the child is gone without a result
            child.join(STOP_TIMEOUT_S)
            finished = True
            code = child.exitcode
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            hint = " (killed: out of memory?)" if code == -signal.SIGKILL else ""
            raise RuntimeError(f"the step's process ended without a result ({how}){hint}")
    finally:
        receive.close()
        if not finished and child.is_alive():  # cancelled: let the engine clean up, then go
            with contextlib.suppress(OSError):
                os.kill(child.pid, signal.SIGTERM)
            child.join(GRACE_S)
        else:
            child.join(1.0)
        if child.is_alive():  # still cleaning up (or starved of CPU): not the window's wait
            threading.Thread(
                target=_reap, args=(child,), daemon=True, name="napari-caiman reaper"
            ).start()
        else:
            with contextlib.suppress(Exception):
                child.close()


def _reap(child: Any) -> None:
    """Wait for a cancelled child; kill it when it has not stopped within ``STOP_TIMEOUT_S``."""
    child.join(STOP_TIMEOUT_S)
    if child.is_alive():
        logger.warning(
            "the step's process did not stop within %.0f s of Cancel: killed", STOP_TIMEOUT_S
        )
        child.kill()
        child.join(1.0)
    with contextlib.suppress(Exception):
        child.close()


def in_process_if_available(
    factory: Callable[[], Generator[Any, Any, Any]],
) -> Generator[Any, None, Any]:
    """:func:`iter_in_process` where :func:`process_available`, else ``factory()`` here."""
    return iter_in_process(factory) if process_available() else factory()
