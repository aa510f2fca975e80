"""One headless pipeline run (movie files -> results file), with a motion cache.

:func:`iter_pipeline` is what ``napari-caiman run``, each batch item and the
Python API execute: open the movie, run the chosen steps, record provenance
and save the results atomically. With a :class:`MotionCache`, motion
correction of the same input with the same motion parameters is done once:
the corrected movie (``.npy``, memory-mapped when reused), its shifts and its
summary images are stored under a key made of the input's sampled-content
hash, the motion parameters, the backend and the package version.

No Qt, no napari.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.errors import InputError
from ..engine.progress import Progress

# --- motion cache ----------------------------------------------------------------


@dataclass
class CacheInfo:
    """What a :meth:`MotionCache.lookup` found: the key, and whether it was a hit."""

    key: str
    hit: bool
    path: Path


class MotionCache:
    """Content-addressed cache of motion-corrected movies on disk.

    Parameters
    ----------
    root : path
        Folder of the cache (created on first use). Each entry is a
        sub-folder named by its key holding ``corrected.npy`` (float32, array
        order) and ``motion.h5`` (shifts, template, metrics, summary images).

    Notes
    -----
    Entries are written into a temporary folder and renamed when complete, so
    a cancelled or crashed motion step never leaves a half entry; two runs
    computing the same entry at once both succeed and one copy is kept.
    """

    CORRECTED = "corrected.npy"
    META = "motion.h5"

    def __init__(self, root: str | os.PathLike, *, owned: Any = None) -> None:
        self.root = Path(root)
        #: None: every entry is this cache's; else a callable giving the keys that
        #: are (a batch's own entries in a folder shared with other batches)
        self.owned = owned

    # key -----------------------------------------------------------------------
    @staticmethod
    def key_for(source: Any, params: Any) -> str:
        """Cache key of ``source`` (movie file(s)) corrected with ``params``."""
        from .. import __version__
        from ..engine.pipeline import motion_kwargs
        from ..io.provenance import file_fingerprint, input_files

        prints = [file_fingerprint(f)["content_sha256"] for f in input_files(source)]
        record = {
            "inputs": prints,
            "motion": motion_kwargs(params),
            "backend": params["backend"],
            "var_name_hdf5": params["var_name_hdf5"],
            "version": __version__,
        }
        text = json.dumps(record, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def entry(self, key: str) -> Path:
        """Return the folder of the cache entry ``key``."""
        return self.root / key

    def has(self, key: str) -> bool:
        """Return True when the entry ``key`` holds a complete corrected movie and its record."""
        e = self.entry(key)
        return (e / self.CORRECTED).is_file() and (e / self.META).is_file()

    # use ------------------------------------------------------------------------
    def iter_motion(
        self, source: Any, movie: Any, params: Any, executor: Any = None
    ) -> Generator[Progress, None, tuple[Any, CacheInfo]]:
        """Motion step through the cache: reuse an entry or compute and store it.

        Returns ``(MotionStepResult, CacheInfo)``; the result's corrected movie
        is a read-only memmap of the cached file.
        """
        from ..engine.pipeline import iter_motion_step

        key = self.key_for(source, params)
        final = self.entry(key)
        if self.has(key):
            yield Progress("motion (cached)", 1, 1)
            return self.load(key), CacheInfo(key, True, final)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{key}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.mkdir()
        try:
            step = yield from iter_motion_step(
                movie, params, out=tmp / self.CORRECTED, executor=executor
            )
            self._write_meta(tmp / self.META, step)
            timings = step.timings
            del step  # release the memmap before the folder is renamed
            try:
                os.replace(tmp, final)
            except OSError:
                if not self.has(key):  # not a concurrent writer's complete entry: a real error
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        result = self.load(key)
        result.timings = timings
        return result, CacheInfo(key, False, final)

    @staticmethod
    def _write_meta(path: Path, step: Any) -> None:
        import h5py

        from ..engine.results import motion_to_dict, summary_to_dict, write_value

        m = step.motion
        with h5py.File(path, "w") as f:
            write_value(f, "motion", motion_to_dict(m))
            write_value(f, "summary", summary_to_dict(step.summary))
            write_value(f, "params", {k: v for k, v in m.params.items()})
            f.attrs["timings"] = json.dumps({**m.timings, **step.timings}, default=_plain)

    def load(self, key: str) -> Any:
        """Return the cached ``MotionStepResult`` for ``key``."""
        import h5py

        from ..engine.motion import MotionResult
        from ..engine.pipeline import MotionStepResult
        from ..engine.results import read_value
        from ..engine.summary import SummaryImages

        e = self.entry(key)
        with h5py.File(e / self.META, "r") as f:
            d = read_value(f["motion"])
            s = read_value(f["summary"])
            params = read_value(f["params"]) if "params" in f else {}
        corrected = np.load(e / self.CORRECTED, mmap_mode="r")
        grid = d.get("patch_grid_shape")
        motion = MotionResult(
            corrected=corrected,
            template=d["template"],
            shifts_rig=d["shifts_rig"],
            shifts_els=d.get("shifts_els"),
            patch_bounds=d.get("patch_bounds"),
            patch_grid_shape=None if grid is None else tuple(int(g) for g in np.ravel(grid)),
            metrics={
                k: d[k]
                for k in ("corr_raw", "corr_corrected", "crispness_raw", "crispness_corrected")
            },
            params=params,
        )
        summary = SummaryImages(mean=s["mean"], max=s["max"], std=s["std"], corr=s.get("corr"))
        return MotionStepResult(
            motion=motion, summary=summary, timings={"motion": 0.0, "summary": 0.0}
        )

    # housekeeping -----------------------------------------------------------------
    def size_bytes(self) -> int:
        """Disk space used by the cache (its owned entries, see ``owned``)."""
        if not self.root.is_dir():
            return 0
        if self.owned is not None:
            return sum(
                p.stat().st_size for e in self.entries() for p in e.rglob("*") if p.is_file()
            )
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def entries(self) -> list[Path]:
        """Return the entry folders (only the owned ones when ``owned`` is set), sorted."""
        if not self.root.is_dir():
            return []
        keys = None if self.owned is None else set(self.owned())
        return sorted(
            p
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (keys is None or p.name in keys)
        )

    def clear(self) -> int:
        """Delete every entry and leftovers; return the bytes freed.

        With ``owned``: only the owned entries.
        """
        freed = self.size_bytes()
        if self.owned is not None:
            for p in self.entries():
                shutil.rmtree(p, ignore_errors=True)
            return freed
        if self.root.is_dir():
            for p in self.root.iterdir():
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        p.unlink()
        return freed


# --- one run ---------------------------------------------------------------------


def check_output_path(output: str | os.PathLike, argument: str = "--output") -> Path:
    """Return ``output`` as a path after checking it can take a results file (``.hdf5``/``.h5``, folder exists)."""
    output = Path(output)
    if output.suffix.lower() not in (".hdf5", ".h5"):
        raise InputError(argument, f"results file must end in .hdf5 or .h5, got {str(output)!r}")
    if not output.parent.exists():
        raise InputError(argument, f"folder {str(output.parent)!r} does not exist")
    return output


def iter_pipeline(
    movie_paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    steps: Sequence[str] = ("motion",),
    output: str | os.PathLike,
    params: Any = None,
    save_movie: str | os.PathLike | None = None,
    cache: MotionCache | None = None,
    executor: Any = None,
) -> Generator[Progress, None, Any]:
    """Run pipeline steps on a movie file and save the results (generator).

    Parameters
    ----------
    movie_paths : path or list of paths
        One movie file, several files forming one movie, or a folder of TIFFs.
    steps : sequence of str
        Subset of :data:`napari_caiman.engine.pipeline.STEPS`, in order.
    output : path
        Results HDF5 file, written atomically at the end.
    params : CaimanParams, optional
    save_movie : path, optional
        Where to write the motion-corrected movie (.tif or .npy); not with ``cache``.
    cache : MotionCache, optional
        Reuse / store the motion step's output.
    executor : optional
        Where CNMF patches run (thread pool by default). A
        ``dask.distributed.Client`` gets the motion-correction chunks, the CNMF
        patches and the evaluation chunks of this one movie: workers open the
        movie by its path and write the corrected movie into a file they share
        (``save_movie``, the cache, or a temporary file next to ``output``).

    Memory: ``params["memory_limit"]`` (see :mod:`napari_caiman.engine.memory`)
    is resolved once; a corrected movie that does not fit it is written to a
    temporary ``.npy`` next to ``output`` (removed at the end) unless
    ``save_movie`` or ``cache`` give it a place. A run that cannot fit the
    budget or the disk is refused before it starts (:mod:`.engine.preflight`).

    Returns
    -------
    Results
    """
    from ..engine.memory import budget
    from ..engine.params import CaimanParams
    from ..io.movie import open_movie

    if params is None:
        params = CaimanParams.defaults()
    elif not isinstance(params, CaimanParams):  # a plain dict of CaImAn names (flat or grouped)
        params = CaimanParams.from_dict(params)
    output = check_output_path(output)
    if "evaluate" in steps and "cnmf" not in steps:
        raise InputError(
            "--steps", "'evaluate' needs 'cnmf' in the same run (or use `napari-caiman evaluate`)"
        )
    if save_movie is not None and cache is not None:
        raise InputError(
            "save_movie", "give either a path for the corrected movie or a motion cache, not both"
        )
    source = movie_paths if isinstance(movie_paths, (str, os.PathLike)) else list(movie_paths)
    if isinstance(source, list) and len(source) == 1:
        source = source[0]
    started = time.time()
    movie = open_movie(source, var_name_hdf5=params["var_name_hdf5"])
    input_shape, input_dtype = list(movie.shape), str(movie.dtype)
    from ..engine.resolve import for_movie

    params = for_movie(params, movie.shape)  # a volume's planes entries: the docks' values
    extra: dict[str, Any] = {"fr_source": "given"}
    if not params.is_set("fr"):
        from ..io.movie import frame_rate

        found = frame_rate(source)
        if found is not None:
            params = params.copy().update({"fr": round(found[0], 6)})
            extra["fr_source"] = f"from the movie's {found[1]}"
        else:
            extra["fr_source"] = (
                f"default: the movie's metadata holds no frame rate; "
                f"give the real one with --set fr=... if it is not {params['fr']:g} Hz"
            )
    # the memory budget is fixed once, at the start, for every step
    from ..engine.preflight import check_run, corrected_on_disk

    bud = budget(params)
    params = params.copy().update({"memory_limit": bud.limit})
    temp_movie = None
    cluster = hasattr(
        executor, "scatter"
    )  # a dask.distributed.Client: workers share files, not memory
    if (
        "motion" in steps
        and save_movie is None
        and cache is None
        and (cluster or corrected_on_disk(movie.shape, bud))
    ):
        # the corrected movie does not fit the budget (or cluster workers write it):
        # a temporary file next to the results
        temp_movie = output.with_name(f".{output.stem}.corrected.{uuid.uuid4().hex[:8]}.tmp.npy")
    if cluster:
        from ..io.shared import MovieFile

        movie = MovieFile(source, params["var_name_hdf5"], movie=movie)
    check_run(
        movie.shape,
        steps,
        params,
        bud,
        movie_out=save_movie or temp_movie or (cache.root if cache is not None else None),
        output=output,
    )
    try:
        return (
            yield from _iter_run(
                source,
                movie,
                input_shape,
                input_dtype,
                started,
                steps=steps,
                output=output,
                params=params,
                save_movie=save_movie or temp_movie,
                keep_movie=temp_movie is None,
                cache=cache,
                executor=executor,
                extra=extra,
            )
        )
    finally:
        if temp_movie is not None:
            if cluster:  # workers keep the file open (memmap) otherwise
                from ..io.shared import forget

                with contextlib.suppress(Exception):
                    executor.run(forget, str(temp_movie.resolve()))
            with contextlib.suppress(OSError):
                temp_movie.unlink()


def _iter_run(
    source,
    movie,
    input_shape,
    input_dtype,
    started,
    *,
    steps,
    output,
    params,
    save_movie,
    keep_movie,
    cache,
    executor,
    extra,
):
    """Return the steps as a loop over one :class:`~.session.Session`, then the results saved."""
    from .session import Session

    session = Session(movie, params, source=source)
    cluster = executor if hasattr(executor, "scatter") else None
    ran_on: dict[str, list] = {}
    if "motion" in steps:
        step = yield from session.iter_motion(
            out=None if cache is not None else save_movie,
            executor=cluster,
            cache=cache,
            for_cnmf="cnmf" in steps,
        )
        corrected_file = session.corrected_path
        if cache is None:
            corrected_file = str(Path(save_movie).resolve()) if save_movie else None
            session.corrected_path = corrected_file if keep_movie else None
        if (
            session.corrected_path is not None
        ):  # what `napari-caiman evaluate --movie` checks a movie against
            from ..io.provenance import file_fingerprint

            extra["corrected_files"] = [file_fingerprint(session.corrected_path)]
        if cluster is not None:
            ran_on["motion"] = list(step.motion.params.get("workers", []))
            if corrected_file is not None:
                from ..io.shared import MovieFile

                # workers open it by its path
                session.use_corrected(MovieFile(corrected_file, movie=step.motion.corrected))
    if "cnmf" in steps:
        yield from session.iter_cnmf(executor=executor)
    if "evaluate" in steps:
        estep = yield from session.iter_evaluate(executor=cluster)
        if cluster is not None:
            ran_on["evaluate"] = list(estep.metrics.timings.pop("workers", []))
    if cluster is not None:
        if "cnmf" in steps:
            ran_on["cnmf"] = list(session.estimates.info.get("workers", []))
        # process ids of the cluster workers that ran each step's chunks / patches
        extra["workers"] = json.dumps(ran_on, default=_plain)
    session.stamp(started, steps, input_shape=input_shape, input_dtype=input_dtype, **extra)
    yield Progress("saving results", 0, 1)
    session.save(output)
    yield Progress("saving results", 1, 1)
    return session.results()


def _plain(value: Any) -> Any:
    """JSON for numpy scalars (worker pids, timings): the Python number."""
    return value.item() if hasattr(value, "item") else repr(value)


def result_summary(results: Any) -> str:
    """One line describing a run's outcome (for tables and logs)."""
    parts = []
    if results.motion is not None:
        s = np.abs(np.asarray(results.motion["shifts_rig"]))
        parts.append(f"max shift {s.max():.1f} px" if s.size else "no frames")
    e = results.estimates
    if e is not None:
        k = e.A.shape[1]
        acc = results.accepted()
        parts.append(f"{k} components" + ("" if acc is None else f", {len(acc)} accepted"))
    return "; ".join(parts) or "no output"
