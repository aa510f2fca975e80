"""The CaImAn worker process of the ``caiman`` backend.

Start it, read its log as :class:`~..progress.Progress`, stop its whole process group (see
:mod:`.caiman_backend`).

Each job runs ``_caiman_worker.py`` under the interpreter
:func:`~.caiman_python` names, in a fresh temporary folder; its log lines
come back as progress (stage ``"CaImAn: <phase>"``) and go to the
``napari_caiman.caiman`` logger; its ``@@RESULT`` line is the job's result.
Closing the generator (cancel) or any failure terminates the worker's whole
process group (CaImAn's multiprocessing pool included): SIGTERM, then
SIGKILL after :data:`GRACE_S` seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError, NapariCaimanError
from ..progress import Progress
from . import caiman_python

__all__ = [
    "CaimanError",
    "WORKER_SCRIPT",
    "GRACE_S",
    "HEARTBEAT_S",
    "ENV_TMPDIR",
    "iter_run_worker",
]

logger = logging.getLogger("napari_caiman.caiman")

#: The worker script (tests may point this at another script).
WORKER_SCRIPT = Path(__file__).with_name("_caiman_worker.py")
#: Seconds between SIGTERM and SIGKILL when stopping the worker.
GRACE_S = 5.0
#: Seconds between two progress reports while the worker is silent (so a
#: cancel is acted on promptly).
HEARTBEAT_S = 0.25
#: Environment variable for the folder of temporary files.
ENV_TMPDIR = "NAPARI_CAIMAN_TMPDIR"


class CaimanError(NapariCaimanError):
    """CaImAn failed in the worker (its message and the last log lines)."""


# --------------------------------------------------------------------------- process


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    base = os.environ.get(ENV_TMPDIR) or None
    if base is not None and not Path(base).is_dir():
        raise InputError(ENV_TMPDIR, f"folder {base!r} does not exist")
    path = Path(tempfile.mkdtemp(prefix="napari-caiman-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _popen(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    kw: dict[str, Any] = {}
    if os.name == "posix":
        kw["start_new_session"] = True  # own process group: killed as a whole
    else:  # pragma: no cover - Windows
        kw["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    return subprocess.Popen(
        cmd,
        cwd=str(cwd),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
        **kw,
    )


def _kill_tree(proc: subprocess.Popen, grace: float) -> None:
    """Stop the worker and every process it started (its process group)."""
    if os.name == "posix":
        pgid = proc.pid  # session leader: its pid is the group id
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        # children may outlive the leader (or ignore SIGTERM)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    else:  # pragma: no cover - Windows
        with contextlib.suppress(OSError):
            subprocess.run(
                ["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True, timeout=30
            )
        with contextlib.suppress(OSError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def _reader(stream, q: queue.Queue) -> None:
    try:
        for line in stream:
            q.put(line.rstrip("\r\n"))
    except (OSError, ValueError):
        pass
    finally:
        q.put(None)


_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}


def iter_run_worker(
    job: dict[str, Any],
    workdir: Path,
    *,
    python: str | None = None,
    script: str | os.PathLike | None = None,
    grace: float | None = None,
) -> Generator[Progress, None, dict[str, Any]]:
    """Run the worker on ``job``, yield its progress, return its ``@@RESULT`` record.

    The job is written to ``workdir/job.json``.

    Closing the generator or an error kills the worker's process group.

    Raises
    ------
    InputError
        CaImAn cannot be imported by that interpreter.
    CaimanError
        The worker failed (CaImAn's error, or the process died).
    """
    python = python or caiman_python()
    script = Path(script) if script is not None else WORKER_SCRIPT
    grace = GRACE_S if grace is None else float(grace)
    job_path = Path(workdir) / "job.json"
    job_path.write_text(json.dumps(job))
    env = dict(os.environ)
    env["CAIMAN_TEMP"] = str(workdir)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONHOME", None)
    if int(job.get("n_processes") or 1) > 1:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setdefault(var, "1")  # CaImAn's advice for its process pool
    task = job.get("task", "?")
    try:
        proc = _popen([python, "-u", str(script), str(job_path)], Path(workdir), env)
    except OSError as exc:
        raise InputError("backend", f"cannot start the CaImAn python {python!r}: {exc}") from None
    q: queue.Queue = queue.Queue()
    thread = threading.Thread(
        target=_reader, args=(proc.stdout, q), daemon=True, name="caiman-worker-log"
    )
    thread.start()
    stage, done, total = "CaImAn: starting", 0, 1
    tail: list[str] = []
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    finished = False
    try:
        yield Progress(stage, done, total)
        eof = False
        while not eof:
            try:
                line = q.get(timeout=HEARTBEAT_S)
            except queue.Empty:
                yield Progress(stage, done, total)
                continue
            if line is None:
                eof = True
                break
            message = ""
            if line.startswith("@@PHASE "):
                parts = line.split(" ", 3)
                done, total = int(parts[1]), int(parts[2])
                stage = f"CaImAn: {parts[3] if len(parts) > 3 else ''}"
                logger.info("%s (%d/%d)", stage, done, total)
            elif line.startswith("@@LOG "):
                parts = line.split(" ", 2)
                level = _LEVELS.get(parts[1], logging.INFO) if len(parts) > 1 else logging.INFO
                message = parts[2] if len(parts) > 2 else ""
                logger.log(level, "%s", message)
            elif line.startswith("@@RESULT "):
                result = json.loads(line[len("@@RESULT ") :])
                continue
            elif line.startswith("@@ERROR "):
                try:
                    error = json.loads(line[len("@@ERROR ") :])
                except ValueError:
                    error = {"type": "Error", "message": line}
                continue
            else:
                message = line
                if line.strip():
                    logger.debug("worker: %s", line)
            if message:
                tail.append(message)
                del tail[:-20]
            yield Progress(stage, done, total, message[:160])
        rc = proc.wait()
        thread.join(timeout=5)
        finished = True
        if rc != 0:  # whatever the failed worker left running
            _kill_tree(proc, 0.5)
    finally:
        if not finished:
            _kill_tree(proc, grace)
            thread.join(timeout=5)
        if proc.stdout is not None:
            with contextlib.suppress(OSError):
                proc.stdout.close()
    if error is not None:
        text = f"{error.get('type')}: {error.get('message')}"
        logger.error("CaImAn %s failed: %s\n%s", task, text, error.get("traceback", ""))
        if error.get("type") == "ImportError":
            raise InputError("backend", f"{error.get('message')} (python {python})")
        raise CaimanError(f"CaImAn {task} failed: {text}")
    if rc != 0 or result is None:
        last = " | ".join(tail[-5:])
        raise CaimanError(
            f"the CaImAn worker ({python}) stopped with exit status {rc}"
            + (f"; last output: {last}" if last else "")
        )
    return result
