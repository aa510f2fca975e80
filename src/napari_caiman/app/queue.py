"""The one queue runner: a batch's queued items, here one after another or on a Dask cluster.

    from napari_caiman.app.batch import Batch
    from napari_caiman.app.queue import QueueRunner

    runner = QueueRunner(Batch("runs.json"))               # here
    runner = QueueRunner(batch, scheduler="local")         # a LocalCluster (or client=...)
    counts = runner.run(progress=print)                    # {status: count}
    for p in runner.iter_run(): ...                        # the same, as a generator

The command line (``napari-caiman batch``), the API (:meth:`Batch.run
<napari_caiman.app.batch.Batch.run>`) and the Batch dock all run a queue
through this class. A front end that drives :meth:`iter_run` in a worker
thread controls it from its own thread with :meth:`cancel_item` (that item
stops, the queue goes on) and :meth:`stop` (the running items stop, the rest
stays queued); closing the generator does what :meth:`stop` does.

The item lifecycle (queued -> running -> done / failed / cancelled) is the
batch's public API (:meth:`Batch.start`, :meth:`Batch.mark`,
:meth:`Batch.iter_run_item`); this module only orders the items.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Generator, Sequence
from typing import Any

from ..engine.errors import StateError
from ..engine.progress import Progress

__all__ = ["QueueRunner"]


class QueueRunner:
    """Runs the queued items of a batch (``batch``: a :class:`~napari_caiman.app.batch.Batch`).

    Parameters
    ----------
    batch : Batch
    scheduler : str, optional
        ``"local"`` (a ``dask.distributed.LocalCluster``, closed at the end) or
        the address of a Dask scheduler: items run on that cluster. None: here.
    client : dask.distributed.Client, optional
        Run on this client's cluster (left open).
    n_parallel : int, optional
        Items at once on the cluster (default: its worker count).
    patches_on_cluster : bool, optional
        Send CNMF patches to the cluster too (default: only when there are
        fewer items than workers).
    follow : bool
        Also run items queued while the queue runs (a front end's queue; the
        command line and :meth:`Batch.run` run the items queued at the start).
    isolate : bool
        Run each item (here, not on Dask) in a child process of its own
        (:mod:`.item_process`): a front end's window then shares neither the
        interpreter lock nor its process with the engine.
    """

    def __init__(
        self,
        batch: Any,
        *,
        scheduler: str | None = None,
        client: Any = None,
        n_parallel: int | None = None,
        patches_on_cluster: bool | None = None,
        follow: bool = False,
        isolate: bool = False,
        poll: float = 0.5,
    ) -> None:
        self.batch = batch
        self.scheduler = scheduler
        self.client = client
        self.n_parallel = n_parallel
        self.patches_on_cluster = patches_on_cluster
        self.follow = follow
        self.isolate = isolate
        self.poll = poll
        self._lock = threading.Lock()
        self._cancel: set[str] = set()
        self._stop = threading.Event()
        self._running: list[str] = []
        self._active = False

    @property
    def on_dask(self) -> bool:
        """Return True when the queue runs its items on a Dask cluster."""
        return self.scheduler is not None or self.client is not None

    @property
    def running(self) -> list[str]:
        """Names of the items running now (thread-safe)."""
        with self._lock:
            return list(self._running)

    def cancel_item(self, name: str) -> bool:
        """Ask the running item ``name`` to stop (it is marked cancelled; the queue goes on).

        Thread-safe. False when that item is not running here (on Dask a running task cannot be
        stopped alone: :meth:`stop` stops all).
        """
        with self._lock:
            if self.on_dask or name not in self._running:
                return False
            self._cancel.add(name)
            return True

    def stop(self) -> None:
        """Stop the running items (marked cancelled) and leave the rest queued. Thread-safe."""
        self._stop.set()

    def _set_running(self, names: Sequence[str]) -> None:
        with self._lock:
            self._running = list(names)

    # --------------------------------------------------------------------------------
    def iter_run(self, names: Sequence[str] | None = None) -> Generator[Progress, None, dict]:
        """Run queued items (or ``names``); yields :class:`Progress`, returns ``{status: count}``.

        Raises
        ------
        StateError
            This runner is already running a queue.
        InputError
            An unknown name (before anything runs), or the Dask scheduler
            cannot be reached.
        """
        with self._lock:
            if self._active:
                raise StateError("queue", "this queue is already running")
            self._active = True
            self._cancel.clear()
        self._stop.clear()
        try:
            if self.on_dask:
                return (yield from self._iter_dask(names))
            return (yield from self._iter_local(names))
        finally:
            self._set_running(())
            with self._lock:
                self._active = False

    def run(
        self, names: Sequence[str] | None = None, progress: Callable[[Progress], Any] | None = None
    ) -> dict:
        """Blocking :meth:`iter_run`.

        Ctrl-C (also in ``progress``) reaches the running items, which go back to the queue.
        """
        from ..engine.progress import run

        gen = self.iter_run(names)
        try:
            return run(gen, progress)
        except KeyboardInterrupt:
            with contextlib.suppress(BaseException):
                gen.throw(KeyboardInterrupt())
            raise

    # --------------------------------------------------------------------------------
    def _iter_local(self, names: Sequence[str] | None) -> Generator[Progress, None, dict]:
        batch = self.batch
        todo = list(names) if names is not None else batch.queued()
        for n in todo:
            batch.item(n)  # unknown names fail before anything runs
        before = {n: batch.item(n).status for n in todo}
        counts: dict[str, int] = {}
        ran: list[str] = []
        while not self._stop.is_set():
            if self.follow:
                batch.refresh()  # items queued meanwhile (or again), by this process or another
                queued = batch.queued()
                if not queued or (ran and queued[0] == ran[-1]):
                    break  # (an item still queued after its run would come back for ever)
                name, left = queued[0], len(queued) - 1
            else:
                if len(ran) == len(todo):
                    break
                name, left = todo[len(ran)], len(todo) - len(ran) - 1
            ran.append(name)
            if name not in batch.names or (
                not self.follow
                and batch.item(name).status == "cancelled"
                and before[name] != "cancelled"
            ):
                continue  # removed or cancelled (Batch.cancel, e.g. from another thread) meanwhile
            prefix = f"{name} ({len(ran)}/{len(ran) + left})"
            if self.isolate:
                yield from self._run_one_isolated(name, prefix)
            else:
                yield from self._run_one(name, prefix)
            if name in batch.names:
                st = batch.item(name).status
                counts[st] = counts.get(st, 0) + 1
        return counts

    def _run_one(self, name: str, prefix: str) -> Generator[Progress, None, None]:
        self._set_running([name])
        gen = self.batch.iter_run_item(name)
        try:
            while name not in self._cancel and not self._stop.is_set():
                try:
                    p = next(gen)
                except StopIteration:
                    break
                yield Progress(f"{prefix}: {p.stage}", p.done, p.total, p.message)
        except (
            KeyboardInterrupt
        ):  # raised here or in the caller: the item learns it was interrupted
            with contextlib.suppress(BaseException):
                gen.throw(KeyboardInterrupt())
            raise
        finally:
            gen.close()  # a cancel (or an early stop) marks the item cancelled
            with self._lock:
                self._cancel.discard(name)
            self._set_running(())

    def _run_one_isolated(self, name: str, prefix: str) -> Generator[Progress, None, None]:
        from .item_process import iter_item_in_process

        self._set_running([name])
        try:
            yield from iter_item_in_process(
                self.batch, name, prefix, lambda: name in self._cancel or self._stop.is_set()
            )
        finally:
            with self._lock:
                self._cancel.discard(name)
            self._set_running(())

    def _iter_dask(self, names: Sequence[str] | None) -> Generator[Progress, None, dict]:
        from .dask_batch import connect, iter_run_on_dask

        client, cluster = self.client, None
        if client is None:
            yield Progress(f"connecting to Dask ({self.scheduler or 'local'})", 0, 1)
            client, cluster = connect(self.scheduler)
        try:
            return (
                yield from iter_run_on_dask(
                    self.batch,
                    names,
                    client=client,
                    n_parallel=self.n_parallel,
                    patches_on_cluster=self.patches_on_cluster,
                    poll=self.poll,
                    stopped=self._stop.is_set,
                    on_running=self._set_running,
                )
            )
        finally:
            if cluster is not None or self.client is None:
                client.close()
            if cluster is not None:
                cluster.close()
