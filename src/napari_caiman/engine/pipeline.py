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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .params import CaimanParams
from .progress import Progress

#: Steps known to the pipeline, in order. Later issues add "cnmf", "evaluate".
STEPS = ("motion", "cnmf", "evaluate")


def _caiman_backend(params: CaimanParams) -> Any:
    """The caiman backend module when ``params["backend"] == "caiman"`` (after
    checking that CaImAn is there), else None (native)."""
    if params.get("backend", "native") != "caiman":
        return None
    from .backends import require_caiman

    require_caiman()
    from .backends import caiman_backend

    return caiman_backend


@dataclass
class MotionStepResult:
    """Motion correction plus the summary images of the corrected movie."""

    motion: Any  # engine.motion.MotionResult
    summary: Any  # engine.summary.SummaryImages
    timings: dict[str, float] = field(default_factory=dict)


def motion_kwargs(params: CaimanParams) -> dict[str, Any]:
    """The keyword arguments of :func:`~napari_caiman.engine.motion.iter_motion_correct`
    taken from ``params`` (CaImAn's motion group)."""
    m = params.group("motion")
    keys = ("max_shifts", "pw_rigid", "strides", "overlaps", "max_deviation_rigid", "niter_rig",
            "upsample_factor_grid", "border_nan", "shifts_opencv", "gSig_filt")
    return {k: m[k] for k in keys}


def iter_motion_step(
    movie: Any,
    params: CaimanParams,
    *,
    out: str | Path | None = None,
    template: Any = None,
    executor: Any = None,
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

    Returns
    -------
    MotionStepResult
    """
    backend = _caiman_backend(params)
    if backend is not None:
        return (yield from backend.iter_motion_step(movie, params, out=out, template=template))
    from .memory import budget
    from .motion import iter_motion_correct
    from .summary import iter_summary_images

    bud = budget(params)
    t0 = time.perf_counter()
    motion = yield from iter_motion_correct(movie, out=out, template=template, memory_limit=bud.limit,
                                            executor=executor, **motion_kwargs(params))
    t1 = time.perf_counter()
    try:
        summary = yield from iter_summary_images(motion.corrected, chunk_size=summary_chunk(motion.corrected, bud))
    except BaseException:
        # cancelled or failed after the movie file was completed: the step as a
        # whole did not finish, so do not leave its output behind
        if out is not None:
            with contextlib.suppress(OSError):
                Path(out).unlink()
        raise
    t2 = time.perf_counter()
    return MotionStepResult(motion=motion, summary=summary,
                            timings={"motion": t1 - t0, "summary": t2 - t1})


def summary_chunk(movie: Any, bud: Any) -> int:
    """Frames per chunk of the summary images within the budget (float64, ~4 copies)."""
    import numpy as np

    frame = int(np.prod(movie.shape[1:]))
    return bud.frames(8 * frame, copies=4, at_most=max(1, (1 << 24) // max(frame, 1)))


class NanFilled:
    """Lazy view of a motion-corrected movie, prepared for CNMF.

    Motion correction with ``border_nan=True`` leaves NaN where no data came
    in, and the width of that strip changes from frame to frame. Like
    CaImAn (``border_to_0``), we set a fixed border of ``border`` pixels per
    axis to 0 in every frame (so no fake activity appears there) and read any
    remaining NaN as 0. Only the frames read are converted; the movie stays
    on disk.

    Parameters
    ----------
    movie : array-like (T, (Z,) Y, X)
    border : sequence of int, optional
        Border width per spatial axis, array order ((z,) y, x).
    """

    def __init__(self, movie: Any, border: Any = None) -> None:
        self.movie = movie
        self.shape = tuple(movie.shape)
        self.dtype = movie.dtype
        self.ndim = len(self.shape)
        nd = self.ndim - 1
        self.border = tuple(int(b) for b in border) if border is not None else (0,) * nd

    #: what it returns holds no NaN or inf (readers may skip their finiteness check)
    finite = True

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> Any:
        import numpy as np

        key = key if isinstance(key, tuple) else (key,)
        if len(key) > self.ndim or not all(isinstance(k, (int, np.integer, slice)) for k in key):
            # arbitrary keys: prepare whole frames, then index within them
            return self[key[0]][(slice(None),) * (0 if isinstance(key[0], (int, np.integer)) else 1) + key[1:]]
        # ints and slices: read only the requested block, then blank the border
        # in the movie's coordinates (a patch, a block of rows, frames)
        from .validate import finite_float32

        frames = finite_float32(self.movie[key])
        key = key + (slice(None),) * (self.ndim - len(key))
        out_axis = 0 if isinstance(key[0], (int, np.integer)) else 1
        for axis, b in enumerate(self.border):
            k, n = key[1 + axis], self.shape[1 + axis]
            if isinstance(k, slice):
                if b > 0:
                    idx = np.arange(n)[k]
                    hit = np.flatnonzero((idx < b) | (idx >= n - b))
                    if hit.size:
                        sel = [slice(None)] * frames.ndim
                        sel[out_axis] = hit
                        frames[tuple(sel)] = 0
                out_axis += 1
            elif b > 0 and not (b <= (int(k) % n) < n - b):
                frames[...] = 0  # an int index inside the border: all of it is border
        return frames


def motion_border(motion: Any) -> tuple[int, ...]:
    """Border (pixels per axis, array order) that motion correction may have
    filled: the largest absolute shift, rigid plus piecewise deviation, rounded up.
    """
    import numpy as np

    from .validate import to_array_order

    shifts = np.abs(np.asarray(motion.shifts_rig, dtype=np.float64))
    nd = shifts.shape[1]
    worst = shifts.max(axis=0) if len(shifts) else np.zeros(nd)
    if getattr(motion, "shifts_els", None) is not None and np.size(motion.shifts_els):
        worst = np.maximum(worst, np.abs(np.asarray(motion.shifts_els)).reshape(-1, nd).max(axis=0))
    return tuple(int(np.ceil(w)) for w in to_array_order(tuple(worst), nd))


def _motion_attr(motion: Any, name: str) -> Any:
    if isinstance(motion, dict):
        return motion.get(name)
    return getattr(motion, name, None)


def nan_border(movie: Any, *, chunk_bytes: int = 32 << 20) -> tuple[int, ...] | None:
    """Border (pixels per axis, array order) covering the NaN strips at the
    frame edges of ``movie``, read chunk by chunk; None when it holds no NaN.

    A NaN pixel belongs to a strip when every pixel between it and the edge,
    along one axis, is NaN in that frame (what motion correction with
    ``border_nan=True`` leaves); it counts towards the axis where it is
    nearest the edge. The border of an axis is the deepest such pixel + 1.

    Raises
    ------
    InputError
        NaN away from the edges (a damaged movie, not a motion border).
    """
    import numpy as np

    from .errors import InputError

    if np.dtype(movie.dtype).kind != "f":
        return None
    shape = tuple(int(s) for s in movie.shape)
    nd = len(shape) - 1
    per_frame = 4 * int(np.prod(shape[1:]))
    step = max(1, chunk_bytes // max(1, per_frame))
    border = [0] * nd
    found = False
    for t0 in range(0, shape[0], step):
        chunk = np.isnan(np.asarray(movie[t0:t0 + step]))
        if not chunk.any():
            continue
        found = True
        whole = chunk.reshape(len(chunk), -1).all(axis=1)
        if whole.any():
            raise InputError("movie", f"frame {t0 + int(np.argmax(whole))} is all NaN")
        best = np.full(chunk.shape, np.iinfo(np.int32).max, np.int32)  # depth of each NaN in a strip
        axis_of = np.full(chunk.shape, -1, np.int8)
        covered = np.zeros(chunk.shape, bool)
        for a in range(nd):
            ax = a + 1
            n = shape[ax]
            m = np.moveaxis(chunk, ax, -1)
            full = m.all(axis=-1, keepdims=True)  # a line that is all NaN lies in another axis' strip
            lead = np.argmin(m, axis=-1)[..., None]            # run of NaN from the low edge
            trail = np.argmin(m[..., ::-1], axis=-1)[..., None]  # ... from the high edge
            i = np.arange(n)
            in_run = m & ((i < lead) | (i >= n - trail)) & ~full
            covered |= np.moveaxis(in_run | (m & full), -1, ax)
            depth = np.minimum(i, n - 1 - i).astype(np.int32) + np.zeros_like(lead, np.int32)
            depth = np.moveaxis(depth, -1, ax)
            in_run = np.moveaxis(in_run, -1, ax)
            better = in_run & (depth < best)
            best[better] = depth[better]
            axis_of[better] = a
        stray = chunk & ~covered
        if stray.any():
            frame = t0 + int(np.argmax(stray.reshape(len(chunk), -1).any(axis=1)))
            raise InputError("movie", f"contains NaN away from the frame edges (first in frame {frame}); "
                                      "only the borders left by motion correction may be NaN")
        for a in range(nd):
            sel = axis_of == a
            if sel.any():
                border[a] = max(border[a], int(best[sel].max()) + 1)
    return tuple(border) if found else None


def movie_for_cnmf(movie: Any, *, motion: Any = None, border_nan: Any = None) -> Any:
    """The movie as CNMF and the evaluation read it: THE rule for the borders
    motion correction leaves, used by every path (CLI, API, widgets, batch).

    Motion correction fills pixels shifted in from outside the frame with NaN
    (``border_nan=True``), 0 (``False``) or the nearest edge value
    (``"copy"``); the width of that strip changes from frame to frame. Like
    CaImAn (``border_to_0``), a fixed border is set to 0 in every frame, so
    that no fake activity appears there:

    * when the motion correction is known (``motion``: a
      :class:`~napari_caiman.engine.motion.MotionResult` or a results file's
      ``motion`` dict), the border is its largest shift rounded up
      (:func:`motion_border`), none with ``border_nan="copy"``;
    * otherwise (a corrected movie read from a file, ``res.corrected`` given
      to :func:`~napari_caiman.engine.cnmf.cnmf`), the border is measured
      from the NaN strips at the frame edges (:func:`nan_border`; the same
      width for rigid correction). NaN away from the edges is an error.

    Remaining NaN read as 0. Returns ``movie`` itself when nothing needs
    changing, else a lazy :class:`NanFilled` view (the movie stays on disk).
    Idempotent: a :class:`NanFilled` is returned as is.
    """
    if isinstance(movie, NanFilled):
        return movie
    if motion is not None and _motion_attr(motion, "shifts_rig") is not None:
        if border_nan is None:
            border_nan = (_motion_attr(motion, "params") or {}).get("border_nan", True)
        if border_nan == "copy":
            return NanFilled(movie, None)
        shifts = _motion_attr(motion, "shifts_rig")
        from types import SimpleNamespace

        return NanFilled(movie, motion_border(SimpleNamespace(shifts_rig=shifts,
                                                              shifts_els=_motion_attr(motion, "shifts_els"))))
    border = nan_border(movie)
    return movie if border is None else NanFilled(movie, border)


def _prepared(movie: Any, motion: Any, params: Any, fill_nan: bool, border: Any) -> Any:
    if isinstance(movie, NanFilled):
        return movie
    if fill_nan or border is not None:
        return NanFilled(movie, border)
    border_nan = None
    if motion is not None:
        border_nan = (_motion_attr(motion, "params") or {}).get("border_nan", params.get("border_nan"))
    return movie_for_cnmf(movie, motion=motion, border_nan=border_nan)


def _raw(movie: Any) -> Any:
    """The movie under a :class:`NanFilled` view (summary images are NaN-aware)."""
    return movie.movie if isinstance(movie, NanFilled) else movie


@dataclass
class CnmfStepResult:
    """CNMF estimates plus the summary images (``Cn`` = correlation image) of the movie."""

    estimates: Any  # engine.cnmf.estimates.Estimates
    summary: Any  # engine.summary.SummaryImages
    timings: dict[str, float] = field(default_factory=dict)


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
) -> Generator[Progress, None, CnmfStepResult]:
    """Run CNMF on a (motion-corrected) movie; compute its summary images
    first unless given (``summary``, e.g. from the motion step).

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

    Returns
    -------
    CnmfStepResult
    """
    movie = _prepared(movie, motion, params, fill_nan, border)
    backend = _caiman_backend(params)
    if backend is not None:
        filled = isinstance(movie, NanFilled)
        return (yield from backend.iter_cnmf_step(_raw(movie), params, Ain=Ain, summary=summary,
                                                  executor=executor, fill_nan=filled,
                                                  border=movie.border if filled else None))
    from .cnmf import iter_cnmf
    from .memory import budget
    from .summary import iter_summary_images

    timings: dict[str, float] = {}
    if summary is None:  # else the motion step computed (and timed) them
        t0 = time.perf_counter()
        summary = yield from iter_summary_images(_raw(movie), chunk_size=summary_chunk(_raw(movie), budget(params)))
        timings["summary"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    estimates = yield from iter_cnmf(movie, params, Ain=Ain, executor=executor)
    timings["cnmf"] = time.perf_counter() - t1
    return CnmfStepResult(estimates=estimates, summary=summary, timings=timings)


@dataclass
class EvaluateStepResult:
    """Quality metrics, the threshold result (also set on the estimates) and dF/F."""

    metrics: Any  # engine.evaluation.Metrics
    F_dff: Any
    timings: dict[str, float] = field(default_factory=dict)


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
    """Evaluate components (SNR, spatial r-values, thresholds from the
    ``quality`` group) and compute detrended dF/F.

    Sets ``estimates.idx_components`` / ``idx_components_bad`` to the threshold
    result; manual decisions are kept apart (see :mod:`.curation`). The movie
    is read as CNMF reads it (:func:`movie_for_cnmf`; ``fill_nan``, ``border``,
    ``motion`` as in :func:`iter_cnmf_step`).
    """
    movie = _prepared(movie, motion, params, fill_nan, border)
    backend = _caiman_backend(params)
    if backend is not None:
        filled = isinstance(movie, NanFilled)
        return (yield from backend.iter_evaluate_step(_raw(movie), estimates, params, fill_nan=filled,
                                                      border=movie.border if filled else None))
    from .dff import detrend_df_f
    from .evaluation import iter_evaluate_components

    t0 = time.perf_counter()
    metrics = yield from iter_evaluate_components(movie, estimates, params, executor=executor)
    t1 = time.perf_counter()
    yield Progress("dF/F", 0, 1)
    F_dff = detrend_df_f(estimates) if estimates.A.shape[1] else None
    yield Progress("dF/F", 1, 1)
    return EvaluateStepResult(metrics=metrics, F_dff=F_dff,
                              timings={"evaluate": t1 - t0, "dff": time.perf_counter() - t1})
