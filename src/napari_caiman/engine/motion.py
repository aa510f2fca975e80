"""Rigid and piecewise-rigid (NoRMCorre-style) motion correction, 2D and 3D.

Out of core: the movie is read in chunks of frames only; memory does not grow
with the number of frames (apart from O(T) shift arrays).  Work is split in
batches of frames run on a thread pool (FFTs, BLAS and OpenCV release the GIL).

Algorithm
---------
1. Template: the median of ~10 group means of frames sampled evenly over the
   movie, refined ``niter_rig`` times by registering the sample (rigidly) to it
   and averaging the registered frames, re-centred each time on the sample's
   mean position (so the output sits where the average frame is, not at an
   arbitrary offset); for ``pw_rigid`` one more pass
   registers the sample piecewise-rigidly and averages.  A user ``template``
   is used as given (no refinement).
2. Every frame is registered to the final template: rigid shift by plain
   cross-correlation (template zero-windowed within ``max_shifts`` of the
   edges; matrix-DFT evaluation of the correlation inside
   ``|s| <= max_shifts``; upsampled-DFT sub-pixel refinement to 1/4 px plus a
   parabola; 2D frames of >= 128 px are registered on 2x2-binned copies).  For ``pw_rigid`` the frame is cut
   into overlapping patches (size ``strides + overlaps``, step ``strides``,
   the last patch flush with the border), each patch's shift is found within
   ``max_deviation_rigid`` of the frame's rigid shift, and the grid of patch
   shifts is interpolated into a smooth displacement field (cubic spline
   through the patch centres evaluated on a grid ``upsample_factor_grid``
   times finer, then linear to the pixels; continued linearly beyond the outer patch
   centres in y/x, held constant along z).
3. Shifts are estimated on high-pass filtered frames if ``gSig_filt`` is given
   (CaImAn's 1p approach) and always applied to the raw frames: 2D with
   OpenCV bicubic ``warpAffine``/``remap``; 3D rigid with an in-plane bicubic
   warp + Catmull-Rom along z, 3D pw-rigid with a bicubic OpenCV remap of
   each source plane + cubic convolution across planes.

Borders (``border_nan``): ``True`` -> pixels whose source lies outside the
frame are NaN; ``'copy'`` -> nearest edge pixel replicated; ``False`` ->
mirror (reflect) of the frame.

Shifts follow CaImAn: they are the *correction*: if ``raw(r) = truth(r - d)``
the shift is ``-d`` and ``corrected(r) = raw(r - shift)``.  Shift arrays are
in CaImAn's axis order (rows, cols[, planes]), patch bounds in array order.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import math
import os
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _registration as R
from ._output import check_out, output_writer
from .errors import InputError
from .progress import Progress, run
from .resolve import _border as _check_border
from .resolve import _int as _check_int
from .resolve import resolve_motion
from .schema import Motion
from .threads import single_threaded_blas
from .validate import check_finite, check_movie

__all__ = ["MotionResult", "iter_motion_correct", "motion_correct", "apply_shifts"]

#: CaImAn's motion defaults, from the schema (the signature's defaults)
_MOTION = Motion()

N_SAMPLE = 200  # frames sampled for the template
N_GROUPS = 10  # groups whose means give the initial (median) template


@dataclass
class MotionResult:
    """Result of :func:`motion_correct`.

    Attributes
    ----------
    corrected : ndarray
        (T, Y, X) or (T, Z, Y, X) float32; a read-only memmap when ``out`` was
        given.
    template : ndarray
        (Y, X) or (Z, Y, X) float32 final template (raw intensities; when
        ``gSig_filt`` is set registration used its high-pass filtered version).
    shifts_rig : ndarray
        (T, n_axes) float32 rigid correction shifts, CaImAn order
        (rows=y, cols=x[, planes=z]).
    shifts_els : ndarray or None
        pw-rigid: (T, n_patches, n_axes) float32 patch shifts, CaImAn order;
        patches in C order over ``patch_grid_shape``.
    patch_bounds : ndarray or None
        (n_patches, n_axes, 2) int [start, stop) per axis, array order.
    patch_grid_shape : tuple or None
        Number of patches per axis, array order.
    metrics : dict
        ``corr_raw``/``corr_corrected`` (T,) Pearson correlation of each frame
        with the template over the frame interior (a border of the largest
        possible shift is left out); ``crispness_raw``/``crispness_corrected``
        sqrt(sum of squared np.gradient of the mean image) over that interior.
    params : dict
        Motion parameters used, CaImAn names and order.
    timings : dict
        Seconds per stage.
    """

    corrected: np.ndarray
    template: np.ndarray
    shifts_rig: np.ndarray
    shifts_els: np.ndarray | None
    patch_bounds: np.ndarray | None
    patch_grid_shape: tuple | None
    metrics: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- validation


class _Config:
    """Validated parameters (array order internally)."""

    def __init__(
        self,
        movie,
        *,
        max_shifts,
        pw_rigid,
        strides,
        overlaps,
        max_deviation_rigid,
        niter_rig,
        upsample_factor_grid,
        border_nan,
        shifts_opencv,
        gSig_filt,
        template,
        out,
        chunk_size,
        n_workers,
        ignored,
        memory_limit=None,
    ):
        self.T, self.frame_shape = check_movie(movie, min_frames=2)
        self.nd = len(self.frame_shape)
        fs = self.frame_shape
        # the parameters: the one resolver of the schema (CaImAn order in, array order out)
        r = resolve_motion(
            dict(
                max_shifts=max_shifts,
                pw_rigid=pw_rigid,
                strides=strides,
                overlaps=overlaps,
                max_deviation_rigid=max_deviation_rigid,
                niter_rig=niter_rig,
                upsample_factor_grid=upsample_factor_grid,
                border_nan=border_nan,
                shifts_opencv=shifts_opencv,
                gSig_filt=gSig_filt,
            ),
            fs,
        )
        self.max_shifts, self.pw_rigid = r.max_shifts, r.pw_rigid
        self.strides, self.overlaps, self.max_dev = r.strides, r.overlaps, r.max_deviation_rigid
        self.niter_rig, self.upsample_factor_grid = r.niter_rig, r.upsample_factor_grid
        self.border_nan, self.gsig = r.border_nan, r.gSig_filt
        self.out = check_out(out)
        if chunk_size is not None:
            chunk_size = _check_int(chunk_size, "chunk_size", 1)
        if n_workers is not None:
            n_workers = _check_int(n_workers, "n_workers", 1)
        self.n_workers = n_workers or (os.cpu_count() or 1)
        npix = int(np.prod(fs))
        default = (1 << 21) // npix // (2 if self.pw_rigid else 1)
        self.batch = int(chunk_size or max(1, min(64, default)))
        if memory_limit is not None and chunk_size is None:
            # a batch in flight holds ~COPIES float32 frames (raw, filtered, spectra,
            # displacement fields, output); n_workers + 1 batches are in flight
            from .memory import Budget

            copies = (24 if self.pw_rigid else 12) * (self.n_workers + 1)
            self.batch = min(self.batch, Budget(int(memory_limit)).frames(4 * npix, copies=copies))
        self.template = None
        if template is not None:
            tm = np.asarray(template, dtype=np.float32)
            if tm.shape != tuple(fs):
                raise InputError(
                    "template", f"expected shape {tuple(fs)} (one frame), got {tm.shape}"
                )
            if not np.all(np.isfinite(tm)):
                raise InputError("template", "contains NaN or infinite values")
            if float(tm.max()) == float(tm.min()):
                raise InputError("template", "template has no contrast (all pixels equal)")
            self.template = tm
        self.params = dict(r.caiman, chunk_size=self.batch, n_workers=self.n_workers)
        if ignored:
            self.params["ignored"] = sorted(ignored)
        # interior crop for metrics: largest possible |shift| + interpolation margin
        reach = [
            m + (d if self.pw_rigid else 0) + 2
            for m, d in zip(self.max_shifts, self.max_dev, strict=True)
        ]
        self.crop = tuple(
            slice(r, n - r) if n - 2 * r >= 4 else slice(None)
            for r, n in zip(reach, fs, strict=True)
        )


# ----------------------------------------------------------------------------- the registration engine


def _pearson(a: np.ndarray, b: np.ndarray, has_nan: bool = False) -> np.ndarray:
    """Pearson correlation of each a[i] (B, ...) with b (...), NaN-tolerant.

    Works on strided views (no copies).
    """
    B = len(a)
    if has_nan:
        out = np.empty(B, np.float32)
        for i in range(B):
            ok = np.isfinite(a[i])
            out[i] = _pearson(a[i][ok][None], b[ok])[0] if ok.sum() > 2 else np.nan
        return out
    n = b.size
    bc = (b - b.mean(dtype=np.float64)).astype(np.float32)
    sub = "byx" if a.ndim == 3 else ("bzyx" if a.ndim == 4 else "bx")
    sub1 = sub[1:]
    num = np.einsum(f"{sub},{sub1}->b", a, bc).astype(np.float64)
    sa = np.einsum(f"{sub}->b", a).astype(np.float64)
    ssa = np.einsum(f"{sub},{sub}->b", a, a).astype(np.float64) - sa * sa / n
    ssb = float(np.sum(bc.astype(np.float64) ** 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (num / np.sqrt(np.maximum(ssa, 0) * ssb)).astype(np.float32)


class _Engine:
    def __init__(self, cfg: _Config):
        self.cfg = cfg
        fs = cfg.frame_shape
        # 2D frames of >= 128 px (and patches of >= 32 px) are registered on
        # 2x2-binned copies: same accuracy, a quarter of the FFT work
        b = 1
        if cfg.nd == 2 and min(fs) >= 128:
            b = 2
            if (
                cfg.pw_rigid
                and min(
                    min(s + o, n) for s, o, n in zip(cfg.strides, cfg.overlaps, fs, strict=True)
                )
                < 32
            ):
                b = 1
        self.bin = b
        bfs = tuple(n // b for n in fs)
        ms_b = tuple(
            min(int(math.ceil(m / b)), (n - 1) // 2)
            for m, n in zip(cfg.max_shifts, bfs, strict=True)
        )
        self.spec = R.Spectral(bfs, ms_b, keep=0.5 if b == 1 else 1.0)
        self.grid: R.PatchGrid | None = None
        if cfg.pw_rigid:
            pad = tuple(
                int(math.ceil((m + d + 1) / b))
                for m, d in zip(cfg.max_shifts, cfg.max_dev, strict=True)
            )
            self.grid = R.PatchGrid(
                fs,
                cfg.strides,
                cfg.overlaps,
                cfg.upsample_factor_grid,
                pad,
                keep=0.5 if b == 1 else 1.0,
                binning=b,
            )
        self.half = np.asarray(ms_b)
        self.template_raw: np.ndarray | None = None

    def set_template(self, tmpl: np.ndarray) -> None:
        self.template_raw = tmpl.astype(np.float32)
        est = self._filt(tmpl[None])
        self.T_full = self.spec.prepare_template(est)  # (1, ...)
        if self.grid is not None:
            self.T_patch = self.grid.prepare_template(est[0])  # (np, ...)
        self.t_crop = np.ascontiguousarray(self.template_raw[self.cfg.crop])

    def _filt(self, frames):
        """Frames as used for estimation: high-pass filtered and/or binned."""
        if self.cfg.gsig is not None:
            frames = R.high_pass(frames, self.cfg.gsig)
        return R.bin2(frames) if self.bin == 2 else frames

    def estimate(self, raw: np.ndarray, pw: bool):
        """Return (rigid shifts (B, nd), patch shifts (B, np, nd) or None), array order."""
        B = len(raw)
        est = self._filt(raw)
        F = self.spec.prepare(est)
        center = np.zeros((B, self.cfg.nd), np.int64)
        s_b = R.find_shifts(self.spec, self.T_full * np.conj(F), center, self.half)  # binned px
        del F
        # sub-pixel refinement can step just past the search window: the
        # user's max_shifts is a hard bound (0 on an axis = no shift there)
        lim = np.asarray(self.cfg.max_shifts, np.float32)
        s_rig = np.clip(s_b * self.bin, -lim, lim)
        if not pw:
            return s_rig, None
        g = self.grid
        assert g is not None  # pw-rigid
        n = g.n_patches
        Fp = g.prepare_frames(est)
        P = (self.T_patch[None] * np.conj(Fp.reshape(B, n, *Fp.shape[1:]))).reshape(
            B * n, *Fp.shape[1:]
        )
        md = np.asarray(self.cfg.max_dev, np.float32) / self.bin
        rig = np.repeat(s_b, n, axis=0)
        pad = np.asarray(g.pad)
        half = np.ceil(md).astype(np.int64)
        s_p = (
            R.find_shifts(
                g.spec, P, np.rint(rig).astype(np.int64) + pad, half, rig - md + pad, rig + md + pad
            )
            - pad
        ) * self.bin
        return s_rig, s_p.reshape(B, n, self.cfg.nd)

    def fields(self, s_els: np.ndarray) -> np.ndarray:
        g = self.grid
        assert g is not None  # pw-rigid
        B = len(s_els)
        nd = self.cfg.nd
        out = np.empty((B, nd, *self.cfg.frame_shape), np.float32)
        for a in range(nd):
            out[:, a] = g.field(s_els[:, :, a].reshape(B, *g.grid_shape))
        return out

    def apply(self, raw, s_rig, s_els, border_nan):
        if s_els is None:
            return R.shift_rigid(raw, s_rig, border_nan)
        return R.shift_field(raw, self.fields(s_els), border_nan)

    # -- work units run on the thread pool
    def sample_job(self, movie, idx, pw):
        raw = _read_frames(movie, idx)
        s_rig, s_els = self.estimate(raw, pw)
        reg = self.apply(raw, s_rig, s_els, "copy")
        return reg.sum(axis=0, dtype=np.float64), len(raw), s_rig.sum(axis=0, dtype=np.float64)

    def full_job(self, movie, t0, t1, pw):
        raw = np.asarray(movie[t0:t1], dtype=np.float32)
        check_finite(raw, first_frame=t0)
        s_rig, s_els = self.estimate(raw, pw)
        cor = self.apply(raw, s_rig, s_els, self.cfg.border_nan)
        crop = (slice(None), *self.cfg.crop)
        cc = cor[crop]
        has_nan = bool(np.isnan(cc).any())
        corr_raw = _pearson(raw[crop], self.t_crop)
        corr_cor = _pearson(cc, self.t_crop, has_nan)
        raw_sum = raw[crop].sum(axis=0)
        if has_nan:
            ok = np.isfinite(cc)
            cor_sum = np.where(ok, cc, 0).sum(axis=0)
            cor_cnt = ok.sum(axis=0)
        else:
            cor_sum = cc.sum(axis=0)
            cor_cnt = len(cc)
        return cor, s_rig, s_els, corr_raw, corr_cor, raw_sum, cor_sum, cor_cnt


def _read_frames(movie, idx) -> np.ndarray:
    """Read frames ``idx`` (increasing ints), contiguous runs as slices."""
    idx = np.asarray(idx)
    parts = []
    start = 0
    for k in range(1, len(idx) + 1):
        if k == len(idx) or idx[k] != idx[k - 1] + 1:
            a, b = int(idx[start]), int(idx[k - 1]) + 1
            chunk = np.asarray(movie[a:b], dtype=np.float32)
            check_finite(chunk, first_frame=a)
            parts.append(chunk)
            start = k
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _remote_full_job(eng, movie, t0, t1, pw, target):
    """:meth:`_Engine.full_job` on a cluster worker.

    The corrected frames go straight into the output file at ``target = (path, offset,
    frame_bytes)`` (a path the workers share); only the small per-frame results come back.
    """
    res = eng.full_job(movie, t0, t1, pw)
    cor = np.ascontiguousarray(res[0], dtype=np.float32)
    if target is not None:
        path, offset, frame_bytes = target
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, cor.tobytes(), offset + t0 * frame_bytes)
        finally:
            os.close(fd)
        cor = len(cor)
    return (cor, *res[1:], os.getpid())


def _pipeline(pool, n_inflight, jobs, consume, stage, total):
    """Run ``jobs`` on ``pool``, keeping up to ``n_inflight`` in flight; results go to ``consume`` in order.

    ``jobs`` is an iterable of (units, callable). Yields Progress at least every 0.25 s; closing the
    generator cancels the rest. ``pool`` is an executor, or None when each callable submits itself
    and returns its future (a ``dask.distributed`` cluster).
    """
    pending = collections.deque()
    done = 0
    it = iter(jobs)
    exhausted = False
    try:
        yield Progress(stage, 0, total)
        while True:
            while not exhausted and len(pending) < n_inflight:
                try:
                    units, fn = next(it)
                except StopIteration:
                    exhausted = True
                    break
                pending.append((units, pool.submit(fn) if pool is not None else fn()))
            if not pending:
                break
            units, fut = pending[0]
            try:
                res = fut.result(timeout=0.25)
            except cf.TimeoutError:
                yield Progress(stage, done, total)
                continue
            pending.popleft()
            consume(res)
            done += units
            yield Progress(stage, done, total)
    finally:
        for _, f in pending:
            f.cancel()
        cf.wait([f for _, f in pending if isinstance(f, cf.Future)])


# ----------------------------------------------------------------------------- public API


@single_threaded_blas
def iter_motion_correct(
    movie,
    *,
    max_shifts=_MOTION.max_shifts,
    pw_rigid=_MOTION.pw_rigid,
    strides=_MOTION.strides,
    overlaps=_MOTION.overlaps,
    max_deviation_rigid=_MOTION.max_deviation_rigid,
    niter_rig=_MOTION.niter_rig,
    upsample_factor_grid=_MOTION.upsample_factor_grid,
    border_nan=_MOTION.border_nan,
    shifts_opencv=_MOTION.shifts_opencv,
    gSig_filt=_MOTION.gSig_filt,
    template=None,
    out=None,
    chunk_size=None,
    n_workers=None,
    memory_limit=None,
    executor=None,
    on_frames=None,
    **ignored,
) -> Generator[Progress, None, MotionResult]:
    """Motion-correct a movie (rigid or piecewise rigid), yielding progress.

    Parameters
    ----------
    movie : array-like
        (T, Y, X) or (T, Z, Y, X), any integer or float dtype (ndarray,
        memmap, h5py/zarr/dask array ...); read in chunks of frames.
    max_shifts : int or tuple
        Largest rigid shift per axis, pixels, CaImAn order (rows, cols[,
        planes]); 2 values for a 3D movie: the planes value repeats the cols
        value (clipped to the depth).
    pw_rigid : bool
        Piecewise-rigid correction after the rigid one.
    strides, overlaps : int or tuple
        Patch step and overlap per axis (patch size = strides + overlaps),
        CaImAn order.  With 2 values for a 3D movie and a patch deeper than
        the volume, one patch spans all planes.
    max_deviation_rigid : int
        Largest deviation of a patch shift from the frame's rigid shift.
    niter_rig : int
        Template refinement passes (rigid).
    upsample_factor_grid : int
        The displacement field is evaluated (cubic spline through the patch
        centres) on a grid this many times finer than the patches, then
        interpolated linearly to the pixels.
    border_nan : True, False or 'copy'
        Pixels whose source lies outside the frame: NaN / mirrored / nearest
        edge value.
    shifts_opencv : bool
        Accepted for CaImAn compatibility (OpenCV is always used in 2D).
    gSig_filt : float or tuple, optional
        Estimate shifts on high-pass filtered frames (1p data); apply them to
        the raw frames.
    template : ndarray, optional
        Template (one frame) to register to, used as given.
    out : None or path
        None: in-memory result; ``.npy``/``.tif``/``.tiff``: written chunk by
        chunk to a temporary file renamed at the end, returned as a read-only
        memmap.  Nothing is left if the run fails or is cancelled.
    chunk_size : int, optional
        Frames per batch (work unit); default ~2 M pixels per batch.
    n_workers : int, optional
        Threads; default all cores.
    memory_limit : int, optional
        Bytes of the memory budget (:mod:`.memory`): batches are made small
        enough for the frames in flight to fit it (with ``out=None`` the
        result itself is in memory: give ``out`` when it does not fit).
    executor : dask.distributed.Client, optional
        Register the chunks of frames on this cluster (the template is made
        here). Workers read ``movie`` themselves when it pickles by path
        (:class:`napari_caiman.io.shared.MovieFile`) and write their frames
        into ``out`` (a path they share); otherwise frames travel with the tasks.
    on_frames : callable, optional
        Called as ``on_frames(t0, frames)`` with each chunk of corrected frames
        (float32, in frame order) as it is written, e.g. to make the summary
        images without reading the corrected movie again; not called for the
        frames a cluster worker wrote into ``out`` itself.
    **ignored
        Other CaImAn motion parameters (``splits_rig``, ``num_frames_split``
        ...) are accepted and ignored (listed in ``params['ignored']``).

    Yields
    ------
    Progress
        Stages ``"template"`` and ``"registering"`` (frames).

    Returns
    -------
    MotionResult

    Raises
    ------
    InputError
        Bad movie (shape, dtype, NaN/inf with the frame named, no contrast) or
        parameter; ``.argument`` names it.
    """
    cfg = _Config(
        movie,
        max_shifts=max_shifts,
        pw_rigid=pw_rigid,
        strides=strides,
        overlaps=overlaps,
        max_deviation_rigid=max_deviation_rigid,
        niter_rig=niter_rig,
        upsample_factor_grid=upsample_factor_grid,
        border_nan=border_nan,
        shifts_opencv=shifts_opencv,
        gSig_filt=gSig_filt,
        template=template,
        out=out,
        chunk_size=chunk_size,
        n_workers=n_workers,
        ignored=ignored,
        memory_limit=memory_limit,
    )
    T, nd = cfg.T, cfg.nd
    eng = _Engine(cfg)
    timings: dict[str, float] = {}
    pool = cf.ThreadPoolExecutor(max_workers=cfg.n_workers, thread_name_prefix="motion")
    n_inflight = cfg.n_workers + 1
    try:
        # ------------------------------------------------------------ template
        t_start = time.perf_counter()
        n_s = min(T, N_SAMPLE)
        sample = np.unique(np.linspace(0, T - 1, n_s).round().astype(np.int64))
        batches = [sample[i : i + cfg.batch] for i in range(0, len(sample), cfg.batch)]
        n_pass = 0 if cfg.template is not None else cfg.niter_rig + (1 if cfg.pw_rigid else 0)
        total = len(sample) * (n_pass + (1 if cfg.template is None else 0))
        done = 0
        if cfg.template is None:
            groups = np.array_split(sample, min(N_GROUPS, len(sample)))
            means = np.empty((len(groups), *cfg.frame_shape), np.float32)
            lo, hi = np.inf, -np.inf
            for gi, gidx in enumerate(groups):
                fr = _read_frames(movie, gidx)
                lo, hi = min(lo, float(fr.min())), max(hi, float(fr.max()))
                means[gi] = fr.mean(axis=0)
                done += len(gidx)
                yield Progress("template", done, total)
            if hi <= lo:
                raise InputError("movie", "movie has no contrast (all sampled pixels are equal)")
            tmpl = (
                np.median(means, axis=0).astype(np.float32)
                if len(groups) > 2
                else means.mean(axis=0)
            )
            del means
            for it_ in range(n_pass):
                pw = cfg.pw_rigid and it_ == n_pass - 1
                eng.set_template(tmpl)
                acc: list[Any] = [np.zeros(cfg.frame_shape, np.float64), 0, np.zeros(nd)]

                def consume(res, acc=acc):
                    acc[0] += res[0]
                    acc[1] += res[1]
                    acc[2] += res[2]

                jobs = [
                    (len(b), (lambda b=b, pw=pw: eng.sample_job(movie, b, pw))) for b in batches
                ]
                for p in _pipeline(pool, n_inflight, jobs, consume, "template", total):
                    yield Progress("template", done + p.done, total)
                done += len(sample)
                tmpl = (acc[0] / max(int(acc[1]), 1)).astype(np.float32)
                if not pw:
                    # re-centre: put the template at the sample's mean position
                    # (so a movie whose motion averages out ends up where the
                    # motion-free truth is, not at an arbitrary offset)
                    c = (acc[2] / max(int(acc[1]), 1)).astype(np.float32)
                    tmpl = R.shift_rigid(tmpl[None], -c[None], "copy")[0]
        else:
            tmpl = cfg.template
        eng.set_template(tmpl)
        timings["template"] = time.perf_counter() - t_start

        # ------------------------------------------------------------ full pass
        t_start = time.perf_counter()
        s_rig = np.empty((T, nd), np.float32)
        s_els = np.empty((T, eng.grid.n_patches, nd), np.float32) if eng.grid is not None else None
        corr_raw = np.empty(T, np.float32)
        corr_cor = np.empty(T, np.float32)
        crop_shape = np.empty(cfg.frame_shape)[cfg.crop].shape
        sums = dict(
            raw=np.zeros(crop_shape), cor=np.zeros(crop_shape), cnt=np.zeros(crop_shape, np.int64)
        )
        chunks = [(t0, min(T, t0 + cfg.batch)) for t0 in range(0, T, cfg.batch)]
        with output_writer(cfg.out, (T, *cfg.frame_shape)) as writer:
            pos = [0]

            def consume_full(res):
                cor, sr, se, cr, cc, rs, cs, cn = res
                t0 = pos[0]
                if isinstance(cor, int):  # written into the file by a cluster worker
                    t1 = t0 + cor
                    writer.skip(t0, cor)
                else:
                    t1 = t0 + len(cor)
                    writer.write(t0, cor)
                    if on_frames is not None:
                        on_frames(t0, np.asarray(cor, np.float32))
                s_rig[t0:t1] = sr
                if se is not None:
                    s_els[t0:t1] = se
                corr_raw[t0:t1] = cr
                corr_cor[t0:t1] = cc
                sums["raw"] += rs
                sums["cor"] += cs
                sums["cnt"] += cn
                pos[0] = t1

            if executor is None:
                jobs = [
                    (t1 - t0, (lambda t0=t0, t1=t1: eng.full_job(movie, t0, t1, cfg.pw_rigid)))
                    for t0, t1 in chunks
                ]
                yield from _pipeline(pool, n_inflight, jobs, consume_full, "registering", T)
            else:
                target = writer.remote()
                remote_eng = (
                    executor.scatter(eng, broadcast=True) if hasattr(executor, "scatter") else eng
                )
                workers: set[int] = set()

                def consume_remote(res):
                    workers.add(res[-1])
                    consume_full(res[:-1])

                kw = {"pure": False} if hasattr(executor, "scatter") else {}
                jobs = [
                    (
                        t1 - t0,
                        (
                            lambda t0=t0, t1=t1: executor.submit(
                                _remote_full_job,
                                remote_eng,
                                movie,
                                t0,
                                t1,
                                cfg.pw_rigid,
                                target,
                                **kw,
                            )
                        ),
                    )
                    for t0, t1 in chunks
                ]
                n_remote = max(
                    n_inflight,
                    2 * len(executor.scheduler_info().get("workers", ()))
                    if hasattr(executor, "scheduler_info")
                    else n_inflight,
                )
                yield from _pipeline(None, n_remote, jobs, consume_remote, "registering", T)
                cfg.params["workers"] = sorted(workers)
        corrected = writer.result()
        timings["registration"] = time.perf_counter() - t_start
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

    mean_raw = sums["raw"] / T
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_cor = np.where(sums["cnt"] > 0, sums["cor"] / np.maximum(sums["cnt"], 1), np.nan)
    metrics = dict(
        corr_raw=corr_raw,
        corr_corrected=corr_cor,
        crispness_raw=crispness(mean_raw),
        crispness_corrected=crispness(mean_cor),
    )
    to_c = (lambda a: a) if nd == 2 else (lambda a: a[..., [1, 2, 0]])
    assert eng.template_raw is not None
    return MotionResult(
        corrected=corrected,
        template=eng.template_raw,
        shifts_rig=np.ascontiguousarray(to_c(s_rig)),
        shifts_els=None if s_els is None else np.ascontiguousarray(to_c(s_els)),
        patch_bounds=None if eng.grid is None else eng.grid.bounds.copy(),
        patch_grid_shape=None if eng.grid is None else tuple(eng.grid.grid_shape),
        metrics=metrics,
        params=cfg.params,
        timings=timings,
    )


def motion_correct(movie, **kwargs) -> MotionResult:
    """Blocking version of :func:`iter_motion_correct` (same arguments)."""
    return run(iter_motion_correct(movie, **kwargs))


def crispness(mean_image: np.ndarray) -> float:
    """Return CaImAn's crispness of ``mean_image``.

    The square root of the sum of squared ``np.gradient`` of the mean image (NaN pixels ignored).
    """
    g = np.gradient(np.asarray(mean_image, np.float64))
    sq = sum(np.nan_to_num(x) ** 2 for x in (g if isinstance(g, (list, tuple)) else [g]))
    return float(np.sqrt(np.sum(sq)))


def apply_shifts(
    frames,
    shifts_rig,
    shifts_els=None,
    *,
    patch_bounds=None,
    patch_grid_shape=None,
    upsample_factor_grid=_MOTION.upsample_factor_grid,
    border_nan=_MOTION.border_nan,
) -> np.ndarray:
    """Apply shifts from a :class:`MotionResult` to frames (e.g. another channel).

    Parameters
    ----------
    frames : array-like
        (T, Y, X) or (T, Z, Y, X); read in full (pass a slice for big movies).
    shifts_rig : (T, n_axes)
        Rigid shifts, CaImAn order; used when ``shifts_els`` is None.
    shifts_els : (T, n_patches, n_axes), optional
        Patch shifts, CaImAn order; needs ``patch_bounds`` and
        ``patch_grid_shape`` from the same result.

    Returns
    -------
    ndarray float32 of the frames' shape.
    """
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim not in (3, 4):
        raise InputError("frames", f"expected (T, Y, X) or (T, Z, Y, X), got shape {frames.shape}")
    nd = frames.ndim - 1
    border_nan = _check_border(border_nan)
    to_a = (lambda a: a) if nd == 2 else (lambda a: a[..., [2, 0, 1]])
    sr = np.asarray(shifts_rig, np.float32)
    if sr.shape != (len(frames), nd):
        raise InputError("shifts_rig", f"expected shape {(len(frames), nd)}, got {sr.shape}")
    if shifts_els is None:
        return R.shift_rigid(frames, to_a(sr), border_nan)
    if patch_bounds is None or patch_grid_shape is None:
        raise InputError(
            "patch_bounds", "patch_bounds and patch_grid_shape are needed with shifts_els"
        )
    se = to_a(np.asarray(shifts_els, np.float32))
    pb = np.asarray(patch_bounds)
    gshape = tuple(int(v) for v in patch_grid_shape)
    if se.shape != (len(frames), int(np.prod(gshape)), nd):
        raise InputError(
            "shifts_els",
            f"expected shape {(len(frames), int(np.prod(gshape)), nd)}, got {se.shape}",
        )
    fs = frames.shape[1:]
    weights = []
    for a in range(nd):
        starts = np.unique(pb[:, a, 0])
        size = int(pb[0, a, 1] - pb[0, a, 0])
        weights.append(
            R.field_weights(
                fs[a],
                starts + (size - 1) / 2.0,
                upsample_factor_grid,
                extrapolate=not (nd == 3 and a == 0),
            )
        )  # as in PatchGrid
    fields = np.empty((len(frames), nd, *fs), np.float32)
    for a in range(nd):
        g = se[:, :, a].reshape(len(frames), *gshape)
        if nd == 2:
            fields[:, a] = np.matmul(np.matmul(weights[0], g), weights[1].T)
        else:
            fields[:, a] = np.einsum("zi,yj,xk,bijk->bzyx", *weights, g, optimize=True)
    return R.shift_field(frames, fields, border_nan)
