"""Run a :class:`~napari_caiman.app.batch.Batch` on a ``dask.distributed`` cluster.

Each item is one task. When there are fewer items than workers, CNMF patches
go to the same cluster too (the item's task secedes from its worker thread
while it waits for them, through ``distributed.worker_client``); when every
worker already has an item, sending patches around only adds transfers (measured in
``bench/bench_batch.py``), so each item runs its patches on its own worker's threads.
At most ``n_parallel`` items are submitted at once (default: the number of workers).
Only this (client) process writes the batch file; a task
returns its outcome, never raises, so a failing item cannot take the others
down, and a worker that dies mid-item shows up as that item's error.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from typing import Any

from ..engine.errors import InputError
from ..engine.progress import Progress


def run_item_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one batch item (on a Dask worker).

    Returns ``summary``/``started``/ ``finished``, or ``error`` with a one-line message.
    """
    from ..engine.errors import error_line
    from ..engine.params import CaimanParams
    from ..engine.progress import run
    from .runs import MotionCache, iter_pipeline, result_summary

    started = time.time()
    try:
        params = CaimanParams.defaults().update(spec["params"])
        kwargs = dict(
            steps=spec["steps"],
            output=spec["output"],
            params=params,
            cache=MotionCache(spec["cache"]),
        )
        movie = spec["movie"]  # iter_pipeline takes a one-file list as that file
        if spec.get("patches_on_cluster"):
            from distributed import worker_client

            with worker_client() as client:
                results = run(iter_pipeline(movie, executor=client, **kwargs))
        else:
            results = run(iter_pipeline(movie, **kwargs))
    except Exception as exc:  # noqa: BLE001 - reported as the item's error
        return {"error": error_line(exc), "started": started, "finished": time.time()}
    return {
        "summary": result_summary(results),
        "started": started,
        "finished": time.time(),
        "worker": os.getpid(),
    }


def connect(scheduler: str | None) -> tuple[Any, Any]:
    """Return a client for ``scheduler``, and its cluster.

    "local" or None: a new LocalCluster with one single-threaded worker process per core. Returns
    ``(client, cluster)``; ``cluster`` is None for a remote scheduler.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError(
            "--scheduler",
            "running on Dask needs the 'distributed' package: pip install 'napari-caiman[dask]'",
        ) from None
    if scheduler in (None, "", "local"):
        cluster = LocalCluster(
            n_workers=os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout="15s"), None
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(
            "--scheduler", f"cannot connect to the Dask scheduler at {scheduler!r}: {exc}"
        ) from None


def iter_run_on_dask(
    batch: Any,
    names: Sequence[str] | None = None,
    *,
    client: Any,
    n_parallel: int | None = None,
    patches_on_cluster: bool | None = None,
    poll: float = 0.5,
    stopped: Callable[[], bool] | None = None,
    on_running: Callable[[list[str]], Any] | None = None,
) -> Generator[Progress, None, dict]:
    """Run items on ``client``'s cluster (generator; yields about every ``poll`` seconds).

    Closing it, or ``stopped()`` turning true, cancels the running items (marked cancelled) and
    leaves the rest queued. Returns ``{status: count}``. ``on_running`` is told the names running
    after each change.

    ``patches_on_cluster``: None (default) sends CNMF patches to the cluster
    only when there are fewer items than workers.  Normally reached through
    :class:`~napari_caiman.app.queue.QueueRunner`; uses only the batch's
    public item lifecycle (:meth:`~napari_caiman.app.batch.Batch.start`,
    :meth:`~napari_caiman.app.batch.Batch.mark`).
    """
    from distributed import wait

    todo = list(names) if names is not None else batch.queued()
    for n in todo:
        batch.item(n)
    batch.results_dir.mkdir(exist_ok=True)
    n_workers = len(client.scheduler_info().get("workers", {})) or 1
    limit = max(1, int(n_parallel or n_workers))
    if patches_on_cluster is None:
        patches_on_cluster = min(limit, len(todo)) < n_workers
    pending, running = list(todo), {}
    counts: dict[str, int] = {}
    total, finished = len(todo), 0
    before = {n: batch.item(n).status for n in todo}

    def submit() -> None:
        nonlocal total
        while pending and len(running) < limit:
            name = pending.pop(0)
            if name not in batch.names or (
                batch.item(name).status == "cancelled" and before[name] != "cancelled"
            ):
                total -= 1  # removed, or cancelled (Batch.cancel), while the run was under way
                continue
            item = batch.item(name)
            if not batch.start(item):
                counts["failed"] = counts.get("failed", 0) + 1
                continue
            spec = {
                "movie": item.movie,
                "steps": item.steps,
                "params": item.params,
                "output": str(batch.output_path(item.name)),
                "cache": str(batch.cache.root),
                "patches_on_cluster": patches_on_cluster,
            }
            fut = client.submit(
                run_item_task, spec, pure=False, key=f"napari-caiman-item-{uuid.uuid4().hex}"
            )
            running[fut] = item.name
        if on_running is not None:
            on_running(list(running.values()))

    try:
        submit()
        while running:
            if (
                stopped is not None and stopped()
            ):  # QueueRunner.stop(): as a close, the rest stays queued
                _cancel_running(batch, running)
                break
            try:
                wait(list(running), timeout=poll, return_when="FIRST_COMPLETED")
            except TimeoutError:
                pass
            done = [f for f in running if f.done()]
            for fut in done:
                name = running.pop(fut)
                item = batch.item(name)
                try:
                    out = fut.result()
                except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: the worker died mid-item
                    out = {
                        "error": f"the Dask worker running it failed or died ({type(exc).__name__}: {exc})"
                    }
                if "error" in out:
                    batch.mark(
                        item,
                        status="failed",
                        error=out["error"],
                        runner={},
                        finished=out.get("finished", time.time()),
                    )
                else:
                    batch.mark(
                        item,
                        status="done",
                        error="",
                        runner={},
                        summary=out["summary"],
                        started=out["started"],
                        finished=out["finished"],
                        output=str(batch.output_path(name).relative_to(batch.folder)),
                    )
                counts[item.status] = counts.get(item.status, 0) + 1
                finished += 1
            submit()
            yield Progress(
                "batch items",
                finished,
                total,
                ", ".join(batch.item(n).name for n in running.values()),
            )
    except (
        KeyboardInterrupt
    ):  # Ctrl-C stops the run, not the items: queued again, a re-run resumes them
        for fut, name in list(running.items()):
            fut.cancel()
            batch.mark(
                batch.item(name),
                status="queued",
                runner={},
                finished=None,
                error="interrupted (Ctrl-C); queued again: the next run resumes it",
            )
        raise
    except BaseException:
        _cancel_running(batch, running)
        raise
    return counts


def _cancel_running(batch: Any, running: dict[Any, str]) -> None:
    for fut, name in list(running.items()):
        fut.cancel()
        batch.mark(
            batch.item(name), status="cancelled", error="cancelled", runner={}, finished=time.time()
        )
    running.clear()
