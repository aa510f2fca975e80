"""Batches of pipeline runs: parameter variants and many movies, locally or on Dask.

A batch is a JSON file on disk listing items (a name, the movie file(s), the
steps, the parameters as a flat dict of CaImAn names) with their status
(queued, running, done, failed, cancelled), times, error and a one-line
summary. Results go to ``<batch folder>/<batch name>_results/<item>.hdf5``;
motion-corrected movies are shared between items through a content-addressed
:class:`~napari_caiman.app.runs.MotionCache` (``<batch folder>/napari_caiman_cache``
by default). The file is rewritten atomically after every change, so closing
napari (or a crash) mid-run loses nothing that finished: reopening shows the
interrupted item as queued again and :meth:`Batch.run` resumes with it.

Python API::

    from napari_caiman.app.batch import Batch
    b = Batch("runs.json")                      # opens or creates
    b.add("k5", "movie.tif", {"K": 5, "gSig": (4, 4)})
    b.add_variants("gsig", "movie.tif", {"K": 5}, {"gSig": [(3, 3), (4, 4), (5, 5)]})
    b.run()                                     # or b.run(scheduler="local")
    res = b.results("k5")                       # a Results object

No Qt, no napari.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..engine.errors import InputError, NapariCaimanError, StateError, error_line
from ..engine.progress import Progress
from .batch_item import DEFAULT_STEPS, STATUSES, BatchItem, check_params_for_movie, jsonable
from .batch_store import BatchFile

#: Characters not allowed in item names (they name result files).
_BAD_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f]')

__all__ = ["Batch", "BatchItem", "STATUSES", "check_params_for_movie"]


class Batch(BatchFile):
    """A batch file: items, their status and results.

    Parameters
    ----------
    path : path
        The batch file (``.json``). Opened if it exists, else created on the
        first change.
    cache_dir : path, optional
        Motion cache folder; default ``<batch folder>/napari_caiman_cache``
        (stored in the file).

    Raises
    ------
    InputError
        The file is not a batch file, is damaged, or was written by a newer
        napari-caiman.
    """

    def __init__(
        self, path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None
    ) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() != ".json":
            raise InputError("batch", f"batch file must end in .json, got {str(self.path)!r}")
        if not self.path.parent.is_dir():
            raise InputError("batch", f"folder {str(self.path.parent)!r} does not exist")
        self._lock = threading.RLock()
        self.items: list[BatchItem] = []
        #: Items as this object last read or wrote them: what differs was changed here.
        self._saved: dict[str, dict[str, Any]] = {}
        self.created = time.time()
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.path.exists():
            self._read()
        if self._cache_dir is None:
            self._cache_dir = self.folder / "napari_caiman_cache"

    # file ----------------------------------------------------------------------------
    @property
    def results_dir(self) -> Path:
        """Return the folder the items' results files go to (``<batch>_results``)."""
        return self.folder / f"{self.path.stem}_results"

    @property
    def cache(self) -> Any:
        """The motion cache, seen as this batch's entries.

        ``size_bytes()``, ``entries()`` and ``clear()`` cover only the entries of this batch's items
        (other batches may share the folder); lookups use every entry.
        """
        from .runs import MotionCache

        return MotionCache(self._cache_dir, owned=self._cache_keys)

    def _cache_keys(self) -> set[str]:
        """Cache keys of this batch's items.

        From their results files (what they used) and from their movies and parameters (what they
        would use).
        """
        from .runs import MotionCache

        keys: set[str] = set()
        for item in self.items:
            if item.output:
                with contextlib.suppress(Exception):
                    import h5py

                    with h5py.File(self.folder / item.output, "r") as f:
                        key = (
                            f["provenance"].attrs.get("motion_cache_key")
                            if "provenance" in f
                            else None
                        )
                    if key:
                        keys.add(str(key))
            if "motion" in item.steps and all(Path(m).exists() for m in item.movie):
                with contextlib.suppress(Exception):
                    source = item.movie[0] if len(item.movie) == 1 else list(item.movie)
                    keys.add(MotionCache.key_for(source, item.caiman_params()))
        return keys

    # items ------------------------------------------------------------------------
    def __len__(self) -> int:
        """Return the number of items."""
        return len(self.items)

    def __iter__(self) -> Iterator[BatchItem]:
        """Iterate over a snapshot of the items, in queue order."""
        return iter(list(self.items))

    @property
    def names(self) -> list[str]:
        """Return the items' names, in queue order."""
        return [i.name for i in self.items]

    def item(self, name: str) -> BatchItem:
        """Return the item called ``name``; raise InputError when there is none."""
        for i in self.items:
            if i.name == name:
                return i
        raise InputError("item", f"no item named {name!r} in the batch")

    def _check_name(self, name: str, taken: set[str]) -> str:
        if not isinstance(name, str) or not name.strip():
            raise InputError("name", "an item needs a name")
        name = name.strip()
        if _BAD_NAME.search(name) or name in (".", ".."):
            raise InputError(
                "name", f'item name {name!r} may not contain any of \\ / : * ? " < > |'
            )
        if name in taken:
            raise InputError("name", f"an item named {name!r} is already in the batch")
        return name

    def _prepare(
        self,
        name: str,
        movie: Any,
        params: Mapping[str, Any] | Any,
        steps: Sequence[str],
        taken: set[str],
    ) -> BatchItem:
        from ..engine.params import CaimanParams
        from ..engine.pipeline import STEPS
        from ..io.movie import open_movie

        name = self._check_name(name, taken)
        steps = list(steps)
        for s in steps:
            if s not in STEPS:
                raise InputError("steps", f"unknown step {s!r}; choose from {', '.join(STEPS)}")
        if not steps or sorted(steps, key=STEPS.index) != steps or len(set(steps)) != len(steps):
            raise InputError(
                "steps", f"steps must be a non-empty subset of {', '.join(STEPS)} in that order"
            )
        if "evaluate" in steps and "cnmf" not in steps:
            raise InputError("steps", "'evaluate' needs 'cnmf' in the same item")
        movies = [movie] if isinstance(movie, (str, os.PathLike)) else list(movie)
        if not movies:
            raise InputError("movie", f"item {name!r} has no movie")
        paths = []
        for m in movies:
            p = Path(m).expanduser()
            if not p.exists():
                raise InputError("movie", f"movie not found: {str(p)!r}")
            paths.append(str(p.resolve()))
        full = (
            params.copy()
            if isinstance(params, CaimanParams)
            else CaimanParams.defaults().update(params or {})
        )
        mov = open_movie(
            paths[0] if len(paths) == 1 else paths, var_name_hdf5=full["var_name_hdf5"]
        )
        check_params_for_movie(full, mov, steps)
        return BatchItem(name=name, movie=paths, steps=steps, params=jsonable(full.changed()))

    def add(
        self,
        name: str,
        movie: Any,
        params: Mapping[str, Any] | Any = None,
        steps: Sequence[str] = DEFAULT_STEPS,
    ) -> BatchItem:
        """Add an item (validated now: name, movie, steps, parameters against the movie).

        Parameters
        ----------
        name : str
        movie : path or list of paths
        params : dict of CaImAn names or CaimanParams, optional
        steps : sequence of str
        """
        with self._lock:
            self.refresh()  # another writer may have added this name meanwhile
            item = self._prepare(name, movie, params, steps, set(self.names))
            self.items.append(item)
            self.save()
            return item

    def add_variants(
        self,
        name: str,
        movie: Any,
        params: Mapping[str, Any] | Any,
        grid: Mapping[str, Sequence[Any]],
        steps: Sequence[str] = DEFAULT_STEPS,
    ) -> list[BatchItem]:
        """Add one item per combination of ``grid`` values on top of ``params``.

        Items are named ``<name> <param>=<value> ...``. All variants are
        validated before any is added.
        """
        from ..engine.params import CaimanParams

        if not grid:
            raise InputError("grid", "give at least one parameter with values to vary")
        base = params.to_dict() if isinstance(params, CaimanParams) else dict(params or {})
        keys = list(grid)
        for k in keys:
            if not isinstance(grid[k], (list, tuple)) or not len(grid[k]):
                raise InputError(k, f"expected a list of values to try, got {grid[k]!r}")
        with self._lock:
            self.refresh()
            taken = set(self.names)
            new = []
            for combo in itertools.product(*(grid[k] for k in keys)):
                label = " ".join(f"{k}={_short(v)}" for k, v in zip(keys, combo, strict=True))
                item = self._prepare(
                    f"{name} {label}".strip(),
                    movie,
                    {**base, **dict(zip(keys, combo, strict=True))},
                    steps,
                    taken,
                )
                taken.add(item.name)
                new.append(item)
            self.items.extend(new)
            self.save()
            return new

    def remove(self, name: str, *, delete_results: bool = False) -> None:
        """Remove an item (not while it runs); optionally delete its results file."""
        with self._lock:
            self.refresh()  # apply the change to the file's current state
            item = self.item(name)
            if item.status == "running":
                raise StateError("item", f"{name!r} is running; cancel it first")
            if delete_results and item.output:
                with contextlib.suppress(OSError):
                    (self.folder / item.output).unlink()
            self.items.remove(item)
            self.save()

    def requeue(self, name: str) -> BatchItem:
        """Put a failed, cancelled or done item back in the queue (to re-run it)."""
        with self._lock:
            self.refresh()  # apply the change to the file's current state
            item = self.item(name)
            if item.status == "running":
                raise StateError("item", f"{name!r} is running")
            item.status, item.error, item.runner = "queued", "", {}
            item.started = item.finished = None
            self.save()
            return item

    def cancel(self, name: str) -> None:
        """Take a queued item out of the queue (it stays listed as cancelled)."""
        with self._lock:
            self.refresh()  # apply the change to the file's current state
            item = self.item(name)
            if item.status == "queued":
                item.status = "cancelled"
                self.save()

    def queued(self) -> list[str]:
        """Return the names of the queued items, in queue order."""
        return [i.name for i in self.items if i.status == "queued"]

    def output_path(self, name: str) -> Path:
        """``<batch>_results/<file name>.hdf5`` of an item.

        Its name with spaces and other characters shells and tools trip over replaced (``k K=10`` ->
        ``k_K-10``), and a short hash of the name added if another item would get the same file.
        """
        stem = _safe_stem(name)
        if any(_safe_stem(n) == stem for n in self.names if n != name):
            stem = f"{stem}_{hashlib.sha1(name.encode()).hexdigest()[:6]}"
        return self.results_dir / f"{stem}.hdf5"

    def results(self, name: str) -> Any:
        """Return the :class:`~napari_caiman.engine.results.Results` of a finished item."""
        from ..io.results_file import load_results

        item = self.item(name)
        if item.status != "done" or not item.output:
            raise InputError("item", f"{name!r} has no results (status: {item.status})")
        return load_results(self.folder / item.output)

    def compare(self, a: str, b: str) -> dict[str, tuple[Any, Any]]:
        """Parameters that differ between two items: ``{name: (value in a, value in b)}``."""
        pa, pb = self.item(a).caiman_params().to_dict(), self.item(b).caiman_params().to_dict()
        return {k: (pa[k], pb[k]) for k in pa if jsonable(pa[k]) != jsonable(pb.get(k))}

    # running (the item lifecycle; :class:`~.queue.QueueRunner` orders the items) --------
    def mark(self, item: BatchItem, **changes: Any) -> None:
        """Set fields of ``item`` (status, error, times ...) and save, on the file's current state."""
        with self._lock:
            self.refresh()  # apply the change to the file's current state
            for k, v in changes.items():
                setattr(item, k, v)
            self.save()

    def start(self, item: BatchItem) -> bool:
        """Mark ``item`` running here (host, pid, attempt).

        False, with the item marked failed, when one of its movie files is missing.

        Raises
        ------
        StateError
            The item is running already.
        """
        if item.status == "running":
            raise StateError("item", f"{item.name!r} is already running")
        missing = [m for m in item.movie if not Path(m).exists()]
        self.mark(
            item,
            status="running",
            error="",
            started=time.time(),
            finished=None,
            attempts=item.attempts + 1,
            runner={"host": socket.gethostname(), "pid": os.getpid()},
        )
        if missing:
            self.mark(
                item,
                status="failed",
                finished=time.time(),
                runner={},
                error=f"movie not found: {missing[0]!r}",
            )
            return False
        return True

    def iter_run_item(self, name: str, *, executor: Any = None) -> Generator[Progress, None, Any]:
        """Run one item here (generator). Returns its Results, or None if it failed.

        Closing the generator (cancel) marks the item cancelled; a failure
        marks it failed with its error. Either way the batch file is updated.
        """
        from .runs import iter_pipeline, result_summary

        item = self.item(name)
        if not self.start(item):
            return None
        self.results_dir.mkdir(exist_ok=True)
        out = self.output_path(item.name)
        try:
            results = yield from iter_pipeline(
                item.movie,
                steps=item.steps,
                output=out,
                params=item.caiman_params(),
                cache=self.cache,
                executor=executor,
            )
        except KeyboardInterrupt:
            # Ctrl-C stops the run, not the item: it stays queued, and a plain re-run resumes it
            self.mark(
                item,
                status="queued",
                finished=None,
                runner={},
                error="interrupted (Ctrl-C); queued again: the next run resumes it",
            )
            raise
        except GeneratorExit:
            self.mark(item, status="cancelled", finished=time.time(), runner={}, error="cancelled")
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of one item is recorded, the batch goes on
            self.mark(item, status="failed", finished=time.time(), runner={}, error=error_line(exc))
            if not isinstance(exc, NapariCaimanError):
                self._log_traceback(item)
            return None
        self.mark(
            item,
            status="done",
            finished=time.time(),
            runner={},
            error="",
            output=str(out.relative_to(self.folder)),
            summary=result_summary(results),
        )
        return results

    def _log_traceback(self, item: BatchItem) -> None:
        import logging

        logging.getLogger(__name__).error(
            "batch item %r failed:\n%s", item.name, traceback.format_exc()
        )

    def iter_run(self, names: Sequence[str] | None = None) -> Generator[Progress, None, dict]:
        """Run queued items (or ``names``) one after another here (generator).

        Returns ``{status: count}`` over the items run. Closing the generator
        cancels the running item and leaves the rest queued.
        """
        from .queue import QueueRunner

        return (yield from QueueRunner(self).iter_run(names))

    def run(
        self,
        names: Sequence[str] | None = None,
        *,
        scheduler: str | None = None,
        client: Any = None,
        n_parallel: int | None = None,
        patches_on_cluster: bool | None = None,
        progress: Callable[[Progress], Any] | None = None,
    ) -> dict:
        """Run queued items (or ``names``) to the end; returns ``{status: count}``.

        Parameters
        ----------
        scheduler : str, optional
            ``"local"`` (a ``dask.distributed.LocalCluster`` on this machine)
            or the address of a Dask scheduler (``tcp://host:8786``): items
            (and, inside CNMF, patches) run on the cluster.
        client : dask.distributed.Client, optional
            Use this client instead of ``scheduler``.
        n_parallel : int, optional
            Items running at once on the cluster (default: its worker count).
        patches_on_cluster : bool, optional
            Send CNMF patches to the cluster too (else each item uses threads
            on its worker). Default: only when there are fewer items than
            workers (otherwise every worker is busy with an item already).
        """
        from .queue import QueueRunner

        return QueueRunner(
            self,
            scheduler=scheduler,
            client=client,
            n_parallel=n_parallel,
            patches_on_cluster=patches_on_cluster,
        ).run(names, progress)


def _safe_stem(name: str) -> str:
    """Return a file-name stem of letters, digits, ``. _ -`` only."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("=", "-")).strip("._") or "item"
    return stem


def _short(value: Any) -> str:
    """Compact text of a parameter value for item names: (4, 4) -> 4x4."""
    if isinstance(value, (tuple, list)):
        return "x".join(_short(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
