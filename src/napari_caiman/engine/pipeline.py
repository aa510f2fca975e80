"""Steps of the pipeline chained the same way for the CLI, the API and the widgets.

Each ``iter_<step>_step`` takes a movie and a :class:`CaimanParams`, yields
:class:`Progress` from every sub-operation and returns a small result object.

``params["backend"]`` chooses who computes: ``"native"`` (default) this
package's engine, ``"caiman"`` the real CaImAn in a separate process
(:mod:`.backends.caiman_backend`, same results types; an ``InputError`` when
CaImAn is not installed).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

from .border import NanFilled, _motion_attr, motion_border, movie_for_cnmf, nan_border
from .params import CaimanParams
from .progress import Progress
from .resolve import for_movie, thresholds
from .step_results import CnmfStepResult, EvaluateStepResult, MotionStepResult

__all__ = [
    "STEPS",
    "iter_motion_step",
    "iter_cnmf_step",
    "iter_evaluate_step",
    "motion_kwargs",
    "summary_chunk",
    "MotionStepResult",
    "CnmfStepResult",
    "EvaluateStepResult",
    "NanFilled",
    "motion_border",
    "nan_border",
    "movie_for_cnmf",
]

#: Steps known to the pipeline, in order. Later issues add "cnmf", "evaluate".
STEPS = ("motion", "cnmf", "evaluate")


def _caiman_backend(params: CaimanParams) -> Any:
    """Return the caiman backend module when ``params["backend"] == "caiman"``, else None (native).

    CaImAn is checked to be there first.
    """
    if params.get("backend", "native") != "caiman":
        return None
    from .backends import require_caiman

    require_caiman()
    from .backends import caiman_backend

    return caiman_backend


def motion_kwargs(params: CaimanParams) -> dict[str, Any]:
    """Return the keyword arguments of :func:`~napari_caiman.engine.motion.iter_motion_correct`.

    Taken from ``params`` (CaImAn's motion group).
    """
    from .resolve import MOTION_NAMES

    m = params.group("motion")
    return {k: m[k] for k in MOTION_NAMES}


def iter_motion_step(
    movie: Any,
    params: CaimanParams,
    *,
    out: str | Path | None = None,
    template: Any = None,
    executor: Any = None,
    for_cnmf: bool = False,
) -> Generator[Progress, None, MotionStepResult]:
    """Motion-correct ``movie`` and compute mean/max/std/correlation images.

    Parameters
    ----------
    movie : array-like, (T, Y, X) or (T, Z, Y, X)
    params : CaimanParams
        Uses the ``motion`` group.
    out : path, optional
        Where to write the corrected movie (``.tif``/``.npy``); in memory if None.
    template : array, optional
        Registration template (e.g. from an earlier session) instead of one
        estimated from the movie.
    executor : dask.distributed.Client, optional
        Register the chunks of frames on this cluster (see
        :func:`~napari_caiman.engine.motion.iter_motion_correct`).
    for_cnmf : bool
        CNMF runs next on the corrected movie ``out``: when its patches will
        read it through a tile-major copy (a movie larger than the page cache,
        :func:`~napari_caiman.engine.cnmf.patches.patch_store_plan`), write
        that copy with the corrected frames, as ``result.tiles``, so that CNMF
        does not read the movie once more to make it.

    Returns
    -------
    MotionStepResult
    """
    params = for_movie(params, movie.shape)  # a volume's planes entries, as the docks fill them
    backend = _caiman_backend(params)
    if backend is not None:
        return (yield from backend.iter_motion_step(movie, params, out=out, template=template))
    from .finite import finite_float32
    from .memory import budget
    from .motion import iter_motion_correct
    from .summary import SummaryAccumulator, iter_summary_images

    bud = budget(params)
    t0 = time.perf_counter()
    shape = tuple(int(n) for n in movie.shape)
    # the summary images are accumulated from the corrected frames as they are
    # written, so the corrected movie (larger than the page cache at recording
    # scale) is not read back for them; frames written by cluster workers are
    # not seen here, and then one pass over the corrected movie makes them
    summing = {"s": 0.0, "tiles": 0.0}  # seconds spent on the summary images, the tile copy
    acc = SummaryAccumulator(shape[1:])
    writer = _tile_writer(shape, params, out, bud) if for_cnmf and executor is None else None

    def on_frames(t0: int, frames: Any) -> None:
        ts = time.perf_counter()
        acc.add(frames)
        tw = time.perf_counter()
        summing["s"] += tw - ts
        if writer is not None:
            writer.add(t0, finite_float32(frames))  # NaN borders read as CNMF reads them
            summing["tiles"] += time.perf_counter() - tw

    tiles = None
    try:
        with acc:
            motion = yield from iter_motion_correct(
                movie,
                out=out,
                template=template,
                memory_limit=bud.limit,
                executor=executor,
                on_frames=on_frames,
                **motion_kwargs(params),
            )
            summary = acc.result() if acc.frames == shape[0] else None
        if writer is not None and writer.complete:
            tiles = writer.finish()
    finally:
        if writer is not None and tiles is None:  # cancelled, failed, or frames written elsewhere
            writer.abort()
    t1 = time.perf_counter()
    if summary is None:
        try:
            summary = yield from iter_summary_images(
                motion.corrected, chunk_size=summary_chunk(motion.corrected, bud)
            )
        except BaseException:
            # cancelled or failed after the movie file was completed: the step as a
            # whole did not finish, so do not leave its output behind
            if tiles is not None:
                tiles.close()
            if out is not None:
                with contextlib.suppress(OSError):
                    Path(out).unlink()
            raise
        summing["s"] += time.perf_counter() - t1
    t2 = time.perf_counter()
    timings = {"motion": t2 - t0 - summing["s"] - summing["tiles"], "summary": summing["s"]}
    if writer is not None:
        timings["motion tile copy"] = summing["tiles"]
    return MotionStepResult(motion=motion, summary=summary, timings=timings, tiles=tiles)


def _tile_writer(shape: tuple[int, ...], params: CaimanParams, out: Any, bud: Any) -> Any:
    """Return the writer of the tile store CNMF's patches will read, or None when they read none.

    Written next to the corrected movie ``out`` (none when it stays in memory), in runs of a
    64th of the memory budget (about four copies of a run are held while one is written).
    """
    if out is None:
        return None
    from .cnmf.patches import patch_store_plan
    from .cnmf.tiles import TileWriter

    plan = patch_store_plan(shape, params)
    if plan is None:
        return None
    tile, tbin = plan
    folder = str(Path(out).resolve().parent)
    run = max(1 << 20, bud.limit // 64)
    return TileWriter(shape[1:], shape[0], tile, tbin=tbin, folder=folder, buffer_bytes=run)


def summary_chunk(movie: Any, bud: Any) -> int:
    """Frames per chunk of the summary images within the budget (float64, ~4 copies)."""
    import numpy as np

    frame = int(np.prod(movie.shape[1:]))
    return bud.frames(8 * frame, copies=4, at_most=max(1, (1 << 24) // max(frame, 1)))


def _prepared(movie: Any, motion: Any, params: Any, fill_nan: bool, border: Any) -> Any:
    if isinstance(movie, NanFilled):
        return movie
    if fill_nan or border is not None:
        return NanFilled(movie, border)
    border_nan = None
    if motion is not None:
        border_nan = (_motion_attr(motion, "params") or {}).get(
            "border_nan", params.get("border_nan")
        )
    return movie_for_cnmf(movie, motion=motion, border_nan=border_nan)


def _raw(movie: Any) -> Any:
    """Return the movie under a :class:`NanFilled` view (summary images are NaN-aware)."""
    return movie.movie if isinstance(movie, NanFilled) else movie


def iter_cnmf_step(
    movie: Any,
    params: CaimanParams,
    *,
    Ain: Any = None,
    summary: Any = None,
    executor: Any = None,
    fill_nan: bool = False,
    border: Any = None,
    motion: Any = None,
    tiles: Any = None,
) -> Generator[Progress, None, CnmfStepResult]:
    """Run CNMF on a (motion-corrected) movie.

    Compute its summary images first unless given (``summary``, e.g. from the motion step).

    Parameters
    ----------
    movie : array-like, (T, Y, X) or (T, Z, Y, X)
    params : CaimanParams
        CaImAn's init/spatial/temporal/merging/patch groups.
    Ain : array or sparse matrix, optional
        Seed footprints ((K, *frame) images or (pixels, K)); skips initialization.
    summary : SummaryImages, optional
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Where patches run.
    fill_nan, border : optional
        Explicit border handling (NaN as 0; pixels per axis, array order, set
        to 0) instead of the rule of :func:`movie_for_cnmf`.
    motion : MotionResult or dict, optional
        The motion correction that produced ``movie``, for
        :func:`movie_for_cnmf` (which is applied unless ``fill_nan``/``border``
        are given, or ``movie`` already is its result).
    tiles : TileStore, optional
        The motion step's ``result.tiles`` for this movie (taken over: closed
        by the time this returns).

    Returns
    -------
    CnmfStepResult
    """
    try:
        return (
            yield from _cnmf_step(
                movie, params, Ain, summary, executor, fill_nan, border, motion, tiles
            )
        )
    finally:
        if tiles is not None:  # the patches' copy, used or not, goes with the step
            tiles.close()


def _cnmf_step(movie, params, Ain, summary, executor, fill_nan, border, motion, tiles):
    params = for_movie(params, movie.shape)  # a volume's planes entries, as the docks fill them
    movie = _prepared(movie, motion, params, fill_nan, border)
    backend = _caiman_backend(params)
    if backend is not None:
        filled = isinstance(movie, NanFilled)
        return (
            yield from backend.iter_cnmf_step(
                _raw(movie),
                params,
                Ain=Ain,
                summary=summary,
                executor=executor,
                fill_nan=filled,
                border=movie.border if filled else None,
            )
        )
    from .cnmf import iter_cnmf
    from .memory import budget
    from .summary import iter_summary_images

    timings: dict[str, float] = {}
    if summary is None:  # else the motion step computed (and timed) them
        t0 = time.perf_counter()
        summary = yield from iter_summary_images(
            _raw(movie), chunk_size=summary_chunk(_raw(movie), budget(params))
        )
        timings["summary"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    estimates = yield from iter_cnmf(movie, params, Ain=Ain, executor=executor, tiles=tiles)
    timings["cnmf"] = time.perf_counter() - t1
    # the engine's own stages (loading, reordering, noise, patches, each refinement step)
    for k, v in (getattr(estimates, "timings", None) or {}).items():
        timings[f"cnmf {k}"] = float(v)
    return CnmfStepResult(estimates=estimates, summary=summary, timings=timings)


def iter_evaluate_step(
    movie: Any,
    estimates: Any,
    params: CaimanParams,
    *,
    fill_nan: bool = False,
    border: Any = None,
    motion: Any = None,
    executor: Any = None,
) -> Generator[Progress, None, EvaluateStepResult]:
    """Evaluate components (SNR, spatial r-values, thresholds from the ``quality`` group) and compute detrended dF/F.

    Sets ``estimates.idx_components`` / ``idx_components_bad`` to the threshold
    result; manual decisions are kept apart (see :mod:`.curation`). The movie
    is read as CNMF reads it (:func:`movie_for_cnmf`; ``fill_nan``, ``border``,
    ``motion`` as in :func:`iter_cnmf_step`).
    """
    params = for_movie(params, movie.shape)
    movie = _prepared(movie, motion, params, fill_nan, border)
    backend = _caiman_backend(params)
    if backend is not None:
        filled = isinstance(movie, NanFilled)
        return (
            yield from backend.iter_evaluate_step(
                _raw(movie),
                estimates,
                params,
                fill_nan=filled,
                border=movie.border if filled else None,
            )
        )
    from .dff import detrend_df_f
    from .evaluation import iter_evaluate_components

    t0 = time.perf_counter()
    metrics = yield from iter_evaluate_components(movie, estimates, params, executor=executor)
    limits = thresholds(params)
    if limits["min_size"] is not None or limits["max_size"] is not None:
        # the footprint size limits are parameters (the schema's, not the evaluation's own list)
        from .evaluation import apply_thresholds

        estimates.idx_components, estimates.idx_components_bad = apply_thresholds(metrics, **limits)
    t1 = time.perf_counter()
    yield Progress("dF/F", 0, 1)
    F_dff = detrend_df_f(estimates) if estimates.A.shape[1] else None
    yield Progress("dF/F", 1, 1)
    return EvaluateStepResult(
        metrics=metrics, F_dff=F_dff, timings={"evaluate": t1 - t0, "dff": time.perf_counter() - t1}
    )
