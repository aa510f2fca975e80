"""Batches of pipeline runs: parameter variants and many movies, locally or on Dask.

A batch is a JSON file on disk listing items (a name, the movie file(s), the
steps, the parameters as a flat dict of CaImAn names) with their status
(queued, running, done, failed, cancelled), times, error and a one-line
summary. Results go to ``<batch folder>/<batch name>_results/<item>.hdf5``;
motion-corrected movies are shared between items through a content-addressed
:class:`~napari_caiman.runs.MotionCache` (``<batch folder>/napari_caiman_cache``
by default). The file is rewritten atomically after every change, so closing
napari (or a crash) mid-run loses nothing that finished: reopening shows the
interrupted item as queued again and :meth:`Batch.run` resumes with it.

Python API::

    from napari_caiman.batch import Batch
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
import json
import os
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine.errors import InputError, NapariCaimanError
from .engine.progress import Progress

FORMAT = "napari-caiman-batch"
#: Version of the batch file layout this code writes and reads.
VERSION = 1
STATUSES = ("queued", "running", "done", "failed", "cancelled")
DEFAULT_STEPS = ("motion", "cnmf", "evaluate")
#: Characters not allowed in item names (they name result files).
_BAD_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def _jsonable(value: Any) -> Any:
    """Parameter values -> JSON (tuples become lists, numpy scalars numbers)."""
    import numpy as np

    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


@dataclass
class BatchItem:
    """One run of the batch.

    Attributes
    ----------
    name : str
        Unique within the batch; also the results file's name.
    movie : list of str
        Movie file(s) or a folder, as given (absolute paths).
    steps : list of str
        Pipeline steps, e.g. ``["motion", "cnmf", "evaluate"]``.
    params : dict
        Parameters that differ from CaImAn's defaults (flat CaImAn names).
    status : str
        One of :data:`STATUSES`.
    error : str
        Why the item failed or was interrupted (empty otherwise).
    started, finished : float or None
        Unix times of the last attempt.
    output : str
        Results file (relative to the batch folder) once done.
    summary : str
        One line, e.g. "52 components, 47 accepted".
    attempts : int
        How many times the item was started.
    runner : dict
        Host and process id running the item (while ``status == "running"``).
    """

    name: str
    movie: list[str]
    steps: list[str] = field(default_factory=lambda: list(DEFAULT_STEPS))
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "queued"
    error: str = ""
    started: float | None = None
    finished: float | None = None
    output: str = ""
    summary: str = ""
    attempts: int = 0
    runner: dict[str, Any] = field(default_factory=dict)

    @property
    def elapsed(self) -> float | None:
        """Seconds of the last attempt (so far, while running)."""
        if self.started is None:
            return None
        end = self.finished if self.finished is not None else (time.time() if self.status == "running" else None)
        return None if end is None else max(0.0, end - self.started)

    def caiman_params(self) -> Any:
        """The item's full :class:`~napari_caiman.engine.params.CaimanParams`."""
        from .engine.params import CaimanParams

        return CaimanParams.defaults().update(self.params)

    def to_dict(self) -> dict[str, Any]:
        return {f: _jsonable(getattr(self, f)) for f in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BatchItem:
        known = {f for f in cls.__dataclass_fields__}
        item = cls(**{k: v for k, v in d.items() if k in known})
        if item.status not in STATUSES:
            raise InputError("batch", f"item {item.name!r} has an unknown status {item.status!r}")
        return item


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``<folder>/.<name>.lock`` while the batch file is
    read and rewritten (POSIX; elsewhere no lock, the merge still applies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock = path.with_name(f".{path.name}.lock")
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_params_for_movie(params: Any, movie: Any, steps: Sequence[str]) -> None:
    """Check parameters against a movie's shape without running anything
    (max_shifts / patch sizes that do not fit the frame, gSig too large,
    rf/stride inconsistent). Raises InputError naming the parameter."""
    from .engine.validate import check_movie

    _, dims = check_movie(movie)
    if params["backend"] == "caiman":
        from .engine.backends import require_caiman

        require_caiman()
    if "motion" in steps:
        from .engine.motion import _Config
        from .engine.pipeline import motion_kwargs

        _Config(movie, **motion_kwargs(params), template=None, out=None, chunk_size=None, n_workers=1,
                ignored={})
    if "cnmf" in steps and params["backend"] == "native":
        from .engine.cnmf.fit import _patch_geometry, settings_from_params

        st = settings_from_params(params, len(dims), dims)
        _patch_geometry(params, st, len(dims), dims)


class Batch:
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

    def __init__(self, path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> None:
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
    def folder(self) -> Path:
        return self.path.parent

    @property
    def results_dir(self) -> Path:
        return self.folder / f"{self.path.stem}_results"

    @property
    def cache(self) -> Any:
        """The motion cache, seen as this batch's entries: ``size_bytes()``,
        ``entries()`` and ``clear()`` cover only the entries of this batch's
        items (other batches may share the folder); lookups use every entry."""
        from .runs import MotionCache

        return MotionCache(self._cache_dir, owned=self._cache_keys)

    def _cache_keys(self) -> set[str]:
        """Cache keys of this batch's items: from their results files (what they
        used) and from their movies and parameters (what they would use)."""
        from .runs import MotionCache

        keys: set[str] = set()
        for item in self.items:
            if item.output:
                with contextlib.suppress(Exception):
                    import h5py

                    with h5py.File(self.folder / item.output, "r") as f:
                        key = f["provenance"].attrs.get("motion_cache_key") if "provenance" in f else None
                    if key:
                        keys.add(str(key))
            if "motion" in item.steps and all(Path(m).exists() for m in item.movie):
                with contextlib.suppress(Exception):
                    source = item.movie[0] if len(item.movie) == 1 else list(item.movie)
                    keys.add(MotionCache.key_for(source, item.caiman_params()))
        return keys

    def _read(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InputError("batch", f"cannot read batch file {str(self.path)!r}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError("batch", f"{str(self.path)!r} is not a napari-caiman batch file")
        version = data.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise InputError("batch", f"{str(self.path)!r} was written by a newer napari-caiman (batch format "
                                      f"{version!r}; this version reads up to {VERSION}); update napari-caiman")
        try:
            self.items = [BatchItem.from_dict(d) for d in data.get("items", [])]
        except TypeError as exc:
            raise InputError("batch", f"damaged item in {str(self.path)!r}: {exc}") from None
        self._saved = {i.name: i.to_dict() for i in self.items}
        self.created = float(data.get("created", self.created))
        if self._cache_dir is None and data.get("cache_dir"):
            c = Path(data["cache_dir"])
            self._cache_dir = c if c.is_absolute() else self.folder / c
        host = socket.gethostname()
        for item in self.items:
            # an item left "running" by a process that is gone was interrupted
            r = item.runner or {}
            if item.status == "running" and not (r.get("host") == host and _pid_alive(int(r.get("pid", -1)))):
                item.status, item.error, item.runner = "queued", "interrupted (the run stopped before it finished)", {}

    def save(self) -> None:
        """Write the batch file atomically, merged with what others wrote meanwhile.

        Several writers may share a batch file (``napari-caiman batch`` in a
        terminal while the Batch widget adds items, or two widgets): under a
        lock file, the file is read again and only the items this object
        changed, added or removed since it last read or wrote the file are
        applied to it; items changed elsewhere are taken over (in place, so
        references to them stay valid).
        """
        from .engine.atomic import atomic_path

        with self._lock, _file_lock(self.path):
            self._sync()
            cache = self._cache_dir
            with contextlib.suppress(ValueError):
                cache = cache.relative_to(self.folder)
            head = {"format": FORMAT, "version": VERSION, "created": self.created, "saved": time.time(),
                    "cache_dir": str(cache)}
            dicts = [i.to_dict() for i in self.items]
            # one item per line: readable and diffable, and json's fast encoder (no indent) does the work
            items = ",\n  ".join(json.dumps(d) for d in dicts)
            text = json.dumps(head)[:-1] + ',\n "items": [' + (f"\n  {items}\n ]" if items else "]") + "\n}\n"
            with atomic_path(self.path) as tmp:
                tmp.write_text(text)
            self._saved = {d["name"]: d for d in dicts}

    def refresh(self) -> None:
        """Take over what other writers changed in the file (keeping changes made here)."""
        with self._lock, _file_lock(self.path):
            self._sync()

    def _sync(self) -> None:
        mine = {i.name: i.to_dict() for i in self.items}
        changed = {n for n, d in mine.items() if self._saved.get(n) != d}
        removed = set(self._saved) - set(mine)
        self._merge(self._disk_items(), changed, removed)

    def _disk_items(self) -> list[dict[str, Any]] | None:
        """The items in the file now (None: no readable batch file there)."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("items"), list):
            return None
        return [d for d in data["items"] if isinstance(d, dict) and isinstance(d.get("name"), str)]

    def _merge(self, disk: list[dict[str, Any]] | None, changed: set[str], removed: set[str]) -> None:
        if disk is None:
            return
        mine = {i.name: i for i in self.items}
        merged: list[BatchItem] = []
        for d in disk:
            name = d["name"]
            if name in removed:
                continue
            if name in changed or d == self._saved.get(name):
                if name in mine:  # ours is newer, or nobody else touched it
                    merged.append(mine.pop(name))
                continue
            try:  # changed or added by another writer
                theirs = BatchItem.from_dict(d)
            except (TypeError, InputError):
                continue
            if name in mine:
                item = mine.pop(name)
                for f in BatchItem.__dataclass_fields__:
                    setattr(item, f, getattr(theirs, f))
                merged.append(item)
            else:
                merged.append(theirs)
            self._saved[name] = d
        # ours that the file does not have: new here (or deleted there but changed here)
        merged.extend(i for n, i in mine.items() if n in changed or n not in self._saved)
        self.items = merged

    # items ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[BatchItem]:
        return iter(list(self.items))

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.items]

    def item(self, name: str) -> BatchItem:
        for i in self.items:
            if i.name == name:
                return i
        raise InputError("item", f"no item named {name!r} in the batch")

    def _check_name(self, name: str, taken: set[str]) -> str:
        if not isinstance(name, str) or not name.strip():
            raise InputError("name", "an item needs a name")
        name = name.strip()
        if _BAD_NAME.search(name) or name in (".", ".."):
            raise InputError("name", f"item name {name!r} may not contain any of \\ / : * ? \" < > |")
        if name in taken:
            raise InputError("name", f"an item named {name!r} is already in the batch")
        return name

    def _prepare(self, name: str, movie: Any, params: Mapping[str, Any] | Any, steps: Sequence[str],
                 taken: set[str]) -> BatchItem:
        from .engine.params import CaimanParams
        from .engine.pipeline import STEPS
        from .io.movie import open_movie

        name = self._check_name(name, taken)
        steps = list(steps)
        for s in steps:
            if s not in STEPS:
                raise InputError("steps", f"unknown step {s!r}; choose from {', '.join(STEPS)}")
        if not steps or sorted(steps, key=STEPS.index) != steps or len(set(steps)) != len(steps):
            raise InputError("steps", f"steps must be a non-empty subset of {', '.join(STEPS)} in that order")
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
        full = params.copy() if isinstance(params, CaimanParams) else CaimanParams.defaults().update(params or {})
        mov = open_movie(paths[0] if len(paths) == 1 else paths, var_name_hdf5=full["var_name_hdf5"])
        check_params_for_movie(full, mov, steps)
        return BatchItem(name=name, movie=paths, steps=steps, params=_jsonable(full.changed()))

    def add(self, name: str, movie: Any, params: Mapping[str, Any] | Any = None,
            steps: Sequence[str] = DEFAULT_STEPS) -> BatchItem:
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

    def add_variants(self, name: str, movie: Any, params: Mapping[str, Any] | Any, grid: Mapping[str, Sequence[Any]],
                     steps: Sequence[str] = DEFAULT_STEPS) -> list[BatchItem]:
        """Add one item per combination of ``grid`` values on top of ``params``.

        Items are named ``<name> <param>=<value> ...``. All variants are
        validated before any is added.
        """
        from .engine.params import CaimanParams

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
                item = self._prepare(f"{name} {label}".strip(), movie, {**base, **dict(zip(keys, combo, strict=True))},
                                     steps, taken)
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
                raise InputError("item", f"{name!r} is running; cancel it first")
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
                raise InputError("item", f"{name!r} is running")
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
        return [i.name for i in self.items if i.status == "queued"]

    def output_path(self, name: str) -> Path:
        """``<batch>_results/<file name>.hdf5`` of an item: its name with spaces and
        other characters shells and tools trip over replaced (``k K=10`` ->
        ``k_K-10``), and a short hash of the name added if another item would
        get the same file."""
        stem = _safe_stem(name)
        if any(_safe_stem(n) == stem for n in self.names if n != name):
            stem = f"{stem}_{hashlib.sha1(name.encode()).hexdigest()[:6]}"
        return self.results_dir / f"{stem}.hdf5"

    def results(self, name: str) -> Any:
        """The :class:`~napari_caiman.engine.results.Results` of a finished item."""
        from .engine.results import load_results

        item = self.item(name)
        if item.status != "done" or not item.output:
            raise InputError("item", f"{name!r} has no results (status: {item.status})")
        return load_results(self.folder / item.output)

    def compare(self, a: str, b: str) -> dict[str, tuple[Any, Any]]:
        """Parameters that differ between two items: ``{name: (value in a, value in b)}``."""
        pa, pb = self.item(a).caiman_params().to_dict(), self.item(b).caiman_params().to_dict()
        return {k: (pa[k], pb[k]) for k in pa if _jsonable(pa[k]) != _jsonable(pb.get(k))}

    # running --------------------------------------------------------------------------
    def _mark(self, item: BatchItem, **changes: Any) -> None:
        with self._lock:
            self.refresh()  # apply the change to the file's current state
            for k, v in changes.items():
                setattr(item, k, v)
            self.save()

    def _start(self, item: BatchItem) -> None:
        if item.status == "running":
            raise InputError("item", f"{item.name!r} is already running")
        missing = [m for m in item.movie if not Path(m).exists()]
        self._mark(item, status="running", error="", started=time.time(), finished=None,
                   attempts=item.attempts + 1, runner={"host": socket.gethostname(), "pid": os.getpid()})
        if missing:
            self._mark(item, status="failed", finished=time.time(), runner={},
                       error=f"movie not found: {missing[0]!r}")
            raise _ItemFailed(item.error)

    def iter_run_item(self, name: str, *, executor: Any = None) -> Generator[Progress, None, Any]:
        """Run one item here (generator). Returns its Results, or None if it failed.

        Closing the generator (cancel) marks the item cancelled; a failure
        marks it failed with its error. Either way the batch file is updated.
        """
        from .runs import iter_pipeline, result_summary

        item = self.item(name)
        try:
            self._start(item)
        except _ItemFailed:
            return None
        self.results_dir.mkdir(exist_ok=True)
        out = self.output_path(item.name)
        try:
            results = yield from iter_pipeline(item.movie, steps=item.steps, output=out,
                                               params=item.caiman_params(), cache=self.cache, executor=executor)
        except KeyboardInterrupt:
            # Ctrl-C stops the run, not the item: it stays queued, and a plain re-run resumes it
            self._mark(item, status="queued", finished=None, runner={},
                       error="interrupted (Ctrl-C); queued again: the next run resumes it")
            raise
        except GeneratorExit:
            self._mark(item, status="cancelled", finished=time.time(), runner={}, error="cancelled")
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of one item is recorded, the batch goes on
            self._mark(item, status="failed", finished=time.time(), runner={}, error=item_error(exc))
            if not isinstance(exc, NapariCaimanError):
                self._log_traceback(item)
            return None
        self._mark(item, status="done", finished=time.time(), runner={}, error="",
                   output=str(out.relative_to(self.folder)), summary=result_summary(results))
        return results

    def _log_traceback(self, item: BatchItem) -> None:
        import logging

        logging.getLogger(__name__).error("batch item %r failed:\n%s", item.name, traceback.format_exc())

    def iter_run(self, names: Sequence[str] | None = None, *, executor: Any = None) -> Generator[Progress, None, dict]:
        """Run queued items one after another here (generator).

        Returns ``{status: count}`` over the items run. Closing the generator
        cancels the running item and leaves the rest queued.
        """
        todo = list(names) if names is not None else self.queued()
        for n in todo:
            self.item(n)  # unknown names fail before anything runs
        before = {n: self.item(n).status for n in todo}
        counts: dict[str, int] = {}
        for i, n in enumerate(todo):
            if n not in self.names or (self.item(n).status == "cancelled" and before[n] != "cancelled"):
                continue  # removed or cancelled (Batch.cancel, e.g. from another thread) while the run went on
            prefix = f"{n} ({i + 1}/{len(todo)})"
            gen = self.iter_run_item(n, executor=executor)
            try:
                while True:
                    p = next(gen)
                    yield Progress(f"{prefix}: {p.stage}", p.done, p.total, p.message)
            except StopIteration:
                pass
            except KeyboardInterrupt:  # raised here or in the caller: the item learns it was interrupted
                with contextlib.suppress(BaseException):
                    gen.throw(KeyboardInterrupt())
                raise
            finally:
                gen.close()
            st = self.item(n).status
            counts[st] = counts.get(st, 0) + 1
        return counts

    def run(self, names: Sequence[str] | None = None, *, scheduler: str | None = None, client: Any = None,
            n_parallel: int | None = None, patches_on_cluster: bool | None = None,
            progress: Callable[[Progress], Any] | None = None) -> dict:
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
        from .engine.progress import run as _run

        if scheduler is None and client is None:
            gen = self.iter_run(names)
            try:
                return _run(gen, progress)
            except KeyboardInterrupt:  # e.g. in the progress callback: pass it to the running item
                with contextlib.suppress(BaseException):
                    gen.throw(KeyboardInterrupt())
                raise
        from .dask_batch import run_on_dask

        return run_on_dask(self, names, scheduler=scheduler, client=client, n_parallel=n_parallel,
                           patches_on_cluster=patches_on_cluster, progress=progress)


def item_error(exc: BaseException) -> str:
    """One line for a failed item: our errors as they are, others with their type."""
    return str(exc) if isinstance(exc, NapariCaimanError) else f"{type(exc).__name__}: {exc}"


class _ItemFailed(Exception):
    pass


def _safe_stem(name: str) -> str:
    """A file-name stem of letters, digits, ``. _ -`` only."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("=", "-")).strip("._") or "item"
    return stem


def _short(value: Any) -> str:
    """Compact text of a parameter value for item names: (4, 4) -> 4x4."""
    if isinstance(value, (tuple, list)):
        return "x".join(_short(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
