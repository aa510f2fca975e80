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
        frames = np.nan_to_num(np.array(self.movie[key], dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
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
    fill_nan : bool
        Treat NaN as 0 (for a movie motion-corrected with ``border_nan=True``).
        Otherwise NaNs are an error.
    border : sequence of int, optional
        Pixels per axis (array order) at the edges to set to 0, e.g.
        :func:`motion_border` of the motion step (implies ``fill_nan``).

    Returns
    -------
    CnmfStepResult
    """
    backend = _caiman_backend(params)
    if backend is not None:
        return (yield from backend.iter_cnmf_step(movie, params, Ain=Ain, summary=summary, executor=executor,
                                                  fill_nan=fill_nan, border=border))
    from .cnmf import iter_cnmf
    from .memory import budget
    from .summary import iter_summary_images

    t0 = time.perf_counter()
    if summary is None:
        summary = yield from iter_summary_images(movie, chunk_size=summary_chunk(movie, budget(params)))
    t1 = time.perf_counter()
    if fill_nan or border is not None:
        movie = NanFilled(movie, border)
    estimates = yield from iter_cnmf(movie, params, Ain=Ain, executor=executor)
    t2 = time.perf_counter()
    return CnmfStepResult(estimates=estimates, summary=summary,
                          timings={"summary": t1 - t0, "cnmf": t2 - t1})


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
    executor: Any = None,
) -> Generator[Progress, None, EvaluateStepResult]:
    """Evaluate components (SNR, spatial r-values, thresholds from the
    ``quality`` group) and compute detrended dF/F.

    Sets ``estimates.idx_components`` / ``idx_components_bad`` to the threshold
    result; manual decisions are kept apart (see :mod:`.curation`).
    """
    backend = _caiman_backend(params)
    if backend is not None:
        return (yield from backend.iter_evaluate_step(movie, estimates, params, fill_nan=fill_nan, border=border))
    from .dff import detrend_df_f
    from .evaluation import iter_evaluate_components

    t0 = time.perf_counter()
    if fill_nan or border is not None:
        movie = NanFilled(movie, border)
    metrics = yield from iter_evaluate_components(movie, estimates, params, executor=executor)
    t1 = time.perf_counter()
    yield Progress("dF/F", 0, 1)
    F_dff = detrend_df_f(estimates) if estimates.A.shape[1] else None
    yield Progress("dF/F", 1, 1)
    return EvaluateStepResult(metrics=metrics, F_dff=F_dff,
                              timings={"evaluate": t1 - t0, "dff": time.perf_counter() - t1})
