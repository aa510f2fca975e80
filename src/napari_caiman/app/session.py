"""One analysis of one movie, headless: the object that owns how the steps chain.

A :class:`Session` holds the movie, its parameters (fitted to the movie by
:func:`~napari_caiman.engine.resolve.for_movie`), the motion result and
summary images, the CNMF estimates, the evaluation metrics and the
curation, and knows what follows from what:

- :meth:`Session.iter_motion` corrects the movie; what came after it
  (estimates, metrics, curation) no longer applies and is dropped;
- :meth:`Session.iter_cnmf` reads the movie the way every path reads it:
  the corrected movie when there is one, with the motion border rule applied
  once (:meth:`Session.cnmf_movie`); ``seeds`` skip the initialization;
- :meth:`Session.iter_evaluate` computes the metrics and thresholds them;
  :meth:`Session.rethreshold` applies new thresholds to stored metrics;
- :meth:`Session.iter_refit` re-runs CNMF seeded with the accepted footprints
  (and painted masks), manual decisions following the footprints;
- :meth:`Session.results`, :meth:`Session.save`, :meth:`Session.export`.

Every change is announced on :attr:`Session.events` (psygnal signals:
``motion``, ``cnmf``, ``evaluated``, ``curation``, ``params``, ``saved``), so
views follow the session instead of each other. The CLI's ``run`` and
``evaluate``, the batch items and the Python API are loops over a session.
No Qt, no napari.

Examples
--------
>>> from napari_caiman.engine.progress import run
>>> s = Session(movie, {"gSig": (3, 3), "K": 10})            # doctest: +SKIP
>>> run(s.iter_motion()); run(s.iter_cnmf()); run(s.iter_evaluate())  # doctest: +SKIP
>>> s.save("results.hdf5")                                    # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal, SignalGroup

from ..engine.errors import InputError, StateError
from ..engine.params import CaimanParams
from ..engine.progress import Progress
from ..engine.resolve import Resolved, for_movie, resolve

__all__ = ["Session", "SessionEvents"]


class SessionEvents(SignalGroup):
    """What a :class:`Session` announces (each signal carries the session)."""

    params = Signal(object)
    motion = Signal(object)
    cnmf = Signal(object)
    evaluated = Signal(object)
    curation = Signal(object)
    saved = Signal(object, str)


class Session:
    """The state of one movie's analysis and the rules that chain its steps.

    Parameters
    ----------
    movie : array-like, (T, Y, X) or (T, Z, Y, X)
        The raw movie (numpy, memmap, dask, a lazy file view).
    params : CaimanParams or dict, optional
        CaImAn names; fitted to the movie's shape (planes defaults of a volume).
    source : path or list of paths, optional
        The movie's file(s), recorded in the provenance.
    name : str, optional
        What the movie is called where it is shown (a viewer's layer name; the
        docks name a result's layers after it).

    Attributes
    ----------
    motion : MotionResult or MotionRecord or None
        The motion correction (its record when read from a results file).
    summary : SummaryImages or None
    corrected : array-like or None
        The corrected movie (None: the movie as given is the one CNMF reads).
    corrected_path : str or None
        Where the corrected movie was saved (recorded in the results).
    estimates, metrics, F_dff, curation :
        CNMF, evaluation and manual decisions, or None.
    provenance, timings : dict
    """

    def __init__(
        self, movie: Any, params: Any = None, *, source: Any = None, name: str | None = None
    ) -> None:
        self.events = SessionEvents()
        self.movie = movie
        self.source = source
        self.name = name
        shape = getattr(movie, "shape", None)
        if shape is None:
            raise InputError("movie", f"expected an array, got {type(movie).__name__}")
        self.shape = tuple(int(s) for s in shape)
        self.params: CaimanParams = for_movie(
            params if params is not None else CaimanParams.defaults(), self.shape
        )
        self.motion: Any = None
        self.summary: Any = None
        self.corrected: Any = None
        self.corrected_path: str | None = None
        self.estimates: Any = None
        self.metrics: Any = None
        self.F_dff: Any = None
        self.curation: Any = None
        self.provenance: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self._cnmf_movie: Any = None
        self._tiles: Any = None  # the motion step's tile copy for CNMF's patches (for_cnmf)

    # construction -----------------------------------------------------------------
    @classmethod
    def open(
        cls, source: str | os.PathLike | Sequence[str | os.PathLike], params: Any = None
    ) -> Session:
        """Return a session of the movie in file(s) ``source`` (opened lazily where the format allows)."""
        from ..io.movie import open_movie

        params = (
            CaimanParams.from_dict(params or {}) if not isinstance(params, CaimanParams) else params
        )
        if not isinstance(source, (str, os.PathLike)):
            source = list(source)
            if len(source) == 1:
                source = source[0]
        movie = open_movie(source, var_name_hdf5=params["var_name_hdf5"])
        return cls(movie, params, source=source)

    @classmethod
    def from_results(cls, results: Any, movie: Any = None) -> Session:
        """Return a session continuing a results file's analysis.

        ``movie``: the movie the steps read (the corrected movie when the results corrected motion).
        """
        if movie is None:
            dims = tuple(int(d) for d in results.dims)
            movie = _NoMovie((0, *dims))
        s = cls(movie, results.params)
        s.params = results.params  # as stored (already fitted when it was run)
        s.motion, s.estimates, s.metrics = results.motion, results.estimates, results.metrics
        s.F_dff, s.curation = results.F_dff, results.curation
        s.provenance = dict(results.provenance or {})
        s.summary = (
            results.summary
        )  # a SummaryRecord (a CaImAn file may hold only the correlation image)
        if results.motion is not None:
            s.corrected_path = results.motion.get("corrected_path")
        return s

    # parameters ---------------------------------------------------------------------
    def resolved(self, steps: Sequence[str] = ("motion", "cnmf", "evaluate")) -> Resolved:
        """Return the array-order settings of ``steps`` for this movie (checks without running)."""
        return resolve(self.params, self.shape, steps)

    def update_params(self, values: Any) -> None:
        """Change parameters (CaImAn names); announced on ``events.params``."""
        self.params = for_movie(self.params.copy().update(values), self.shape)
        self.events.params.emit(self)

    # the movie CNMF reads -------------------------------------------------------------
    def cnmf_movie(self) -> Any:
        """Return the movie CNMF and the evaluation read.

        The corrected one when motion was corrected, with the motion border rule applied (once,
        here).
        """
        if self._cnmf_movie is None:
            from ..engine.border import movie_for_cnmf

            base = self.corrected if self.corrected is not None else self.movie
            border_nan = self.params["border_nan"] if self.motion is not None else None
            self._cnmf_movie = movie_for_cnmf(base, motion=self.motion, border_nan=border_nan)
        return self._cnmf_movie

    def use_corrected(self, corrected: Any, path: str | None = None) -> None:
        """Take ``corrected`` as the movie later steps read; ``path``: where it is saved.

        E.g. the same file as cluster workers open it.
        """
        self.corrected = corrected
        if path is not None:
            self.corrected_path = path
        self._cnmf_movie = None
        self._drop_tiles()

    def _drop_after_motion(self) -> None:
        self.estimates = self.metrics = self.F_dff = self.curation = None
        self._cnmf_movie = None
        self._drop_tiles()

    def _drop_tiles(self) -> None:
        tiles, self._tiles = self._tiles, None
        if tiles is not None:
            tiles.close()

    # steps ---------------------------------------------------------------------------
    def iter_motion(
        self,
        *,
        out: str | os.PathLike | None = None,
        template: Any = None,
        executor: Any = None,
        cache: Any = None,
        for_cnmf: bool = False,
    ) -> Generator[Progress, None, Any]:
        """Correct motion (and make the summary images); returns the step's result.

        ``cache`` (a :class:`~.runs.MotionCache`, with ``source`` set) reuses a
        stored correction of the same input and motion parameters. ``for_cnmf``:
        :meth:`iter_cnmf` comes next, so the copy of the frames its patches read
        is written with the corrected movie (see
        :func:`~napari_caiman.engine.pipeline.iter_motion_step`).
        """
        if cache is not None:
            if self.source is None:
                raise InputError("cache", "a motion cache needs the movie's file (Session.open)")
            step, info = yield from cache.iter_motion(
                self.source, self.movie, self.params, executor=executor
            )
            path = str((info.path / cache.CORRECTED).resolve())
            self.provenance.update(
                motion_cache="hit" if info.hit else "miss", motion_cache_key=info.key
            )
        else:
            from ..engine.pipeline import iter_motion_step

            step = yield from iter_motion_step(
                self.movie,
                self.params,
                out=out,
                template=template,
                executor=executor,
                for_cnmf=for_cnmf,
            )
            path = str(Path(out).resolve()) if out is not None else None
        self.take_motion(step, path=path)
        return step

    def take_motion(
        self, step: Any, *, params: Any = None, path: str | os.PathLike | None = None
    ) -> None:
        """Take a motion step's result computed elsewhere (a dock's worker).

        What came after the old one is dropped; announced on ``events.motion``.

        ``params``: the parameters it ran with (kept as given); ``path``: where
        the corrected movie was saved.
        """
        if params is not None:
            self.params = (
                params if isinstance(params, CaimanParams) else CaimanParams.from_dict(params)
            )
        self._drop_after_motion()
        self.motion, self.summary = step.motion, step.summary
        self.corrected = step.motion.corrected
        self.corrected_path = None if path is None else str(Path(path).resolve())
        self._tiles = getattr(step, "tiles", None)
        self.timings.update(step.timings)
        self.events.motion.emit(self)

    def iter_cnmf(
        self, seeds: Any = None, *, executor: Any = None
    ) -> Generator[Progress, None, Any]:
        """CNMF on :meth:`cnmf_movie`.

        ``seeds`` (footprints, (K, *frame) or (pixels, K)) skip the initialization. Metrics and
        curation are dropped.
        """
        from ..engine.pipeline import iter_cnmf_step

        # the motion step's images when complete (a file's may hold only "corr": computed again)
        summary = self.summary if getattr(self.summary, "std", None) is not None else None
        tiles, self._tiles = self._tiles, None  # the step takes it (and removes its file)
        step = yield from iter_cnmf_step(
            self.cnmf_movie(),
            self.params,
            Ain=seeds,
            summary=summary,
            executor=executor,
            tiles=tiles,
        )
        self.take_cnmf(step)
        return step

    def take_cnmf(self, step: Any, *, params: Any = None) -> None:
        """Take a CNMF step's result computed elsewhere (a dock's worker).

        Metrics and curation are dropped; announced on ``events.cnmf``.

        ``params``: the parameters it ran with (kept as given).
        """
        if params is not None:
            self.params = (
                params if isinstance(params, CaimanParams) else CaimanParams.from_dict(params)
            )
        self.estimates, self.summary = step.estimates, step.summary
        self.metrics = self.F_dff = self.curation = None
        self.timings.update(step.timings)
        self.events.cnmf.emit(self)

    def iter_evaluate(self, *, executor: Any = None) -> Generator[Progress, None, Any]:
        """Metrics, thresholds (``estimates.idx_components``) and dF/F; manual decisions kept."""
        from ..engine.pipeline import iter_evaluate_step

        if self.estimates is None:
            raise StateError("session", "no CNMF components to evaluate: run CNMF first")
        step = yield from iter_evaluate_step(
            self.cnmf_movie(), self.estimates, self.params, executor=executor
        )
        self.metrics, self.F_dff = step.metrics, step.F_dff
        self.timings.update(step.timings)
        self.events.evaluated.emit(self)
        return step

    def rethreshold(self, values: Any = None) -> np.ndarray:
        """Apply (new) thresholds to the stored metrics; returns the accepted indices."""
        if values:
            self.update_params(values)
        if self.estimates is None:
            raise StateError("session", "no CNMF components to threshold")
        if self.metrics is None:
            raise StateError("session", "no quality metrics: evaluate first (give the movie)")
        acc = self.results().threshold_accepted()
        self.estimates.idx_components = acc
        self.events.evaluated.emit(self)
        return acc

    def iter_refit(
        self, painted: Any = None, *, executor: Any = None
    ) -> Generator[Progress, None, Any]:
        """Run seeded CNMF from the accepted footprints' support (plus ``painted`` masks).

        ``painted`` is (n, *frame) bool. Manual decisions follow the footprints
        (:func:`~napari_caiman.engine.curation.transfer_curation`); the metrics are recomputed by
        the next :meth:`iter_evaluate`.
        """
        from ..engine.component_edits import refit_seeds
        from ..engine.curation import Curation, transfer_curation

        if self.estimates is None:
            raise StateError("session", "no CNMF components to refit")
        old = self.estimates
        acc = self.accepted()
        seeds = refit_seeds(old, np.arange(old.A.shape[1]) if acc is None else acc, painted)
        manual = None if self.curation is None else self.curation.manual
        step = yield from self.iter_cnmf(seeds, executor=executor)
        if manual is not None:
            self.curation = Curation(
                transfer_curation(old.A, manual, step.estimates.A, step.estimates.dims)
            )
            self.events.curation.emit(self)
        return step

    def set_curation(self, curation: Any) -> None:
        """Manual decisions (an :class:`~napari_caiman.engine.curation.Curation`)."""
        self.curation = curation
        self.events.curation.emit(self)

    # outputs -----------------------------------------------------------------------
    def accepted(self) -> np.ndarray | None:
        """Return the accepted component indices: thresholds, then manual decisions."""
        return None if self.estimates is None else self.results().accepted()

    def results(self) -> Any:
        """Everything but the movies, as :class:`~napari_caiman.engine.results.Results`."""
        from ..engine.results import (
            MotionRecord,
            Results,
            SummaryRecord,
            motion_to_dict,
            summary_to_dict,
        )

        motion = self.motion
        if motion is not None and not isinstance(motion, MotionRecord):
            motion = motion_to_dict(motion, self.corrected_path)
        summary = self.summary
        if summary is not None and not isinstance(summary, SummaryRecord):
            summary = summary_to_dict(summary)
        dims = tuple(self.shape[1:])
        return Results(
            params=self.params,
            dims=dims,
            motion=motion,
            summary=summary,
            provenance=dict(self.provenance),
            estimates=self.estimates,
            metrics=self.metrics,
            F_dff=self.F_dff,
            curation=self.curation,
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the results file (atomically); announced on ``events.saved``."""
        from ..io.results_file import save_results

        out = save_results(path, self.results())
        self.events.saved.emit(self, str(out))
        return out

    def export(
        self,
        *,
        nwb: Any = None,
        csv: Any = None,
        masks: Any = None,
        all_components: bool = False,
        **nwb_kw: Any,
    ) -> list[Any]:
        """Write the accepted (or all) components as NWB / CSV of traces / TIFF of masks."""
        from ..io import export

        est = self.estimates
        if est is None:
            raise InputError("results", "no CNMF components to export")
        idx = None if all_components else self.accepted()
        if idx is None:
            idx = np.arange(est.A.shape[1])
        fr = float(self.params["fr"])
        written = []
        if nwb:
            written.append(
                export.export_nwb(
                    nwb, est, fr=fr, idx=idx, F_dff=self.F_dff, metrics=self.metrics, **nwb_kw
                )
            )
        if csv:
            written.append(export.export_csv(csv, np.asarray(est.C)[idx], ids=idx, fr=fr))
        if masks:
            written.append(export.export_masks_tiff(masks, est, idx=idx))
        return written

    def stamp(self, started: float, steps: Sequence[str], **extra: Any) -> None:
        """Record the provenance of the steps run since ``started`` (``time.time()``)."""
        from ..io.provenance import make_provenance

        finished = time.time()
        record: dict[str, Any] = {
            k: v for k, v in self.provenance.items() if k.startswith("motion_cache")
        }
        record.update(
            steps=list(steps),
            backend=self.params["backend"],
            input_shape=list(self.shape),
            input_dtype=str(getattr(self.movie, "dtype", "")),
            started=_iso(started),
            finished=_iso(finished),
            elapsed=finished - started,
        )
        record.update(extra)
        self.provenance = make_provenance(self.source, dict(self.timings), **record)


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


class _NoMovie:
    """Stands for a movie a results file was computed on but which was not given."""

    dtype = np.dtype(np.float32)

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def __getitem__(self, key: Any) -> Any:
        raise InputError("--movie", "the movie is needed for this step: give it")
