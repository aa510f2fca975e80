"""Detrended dF/F of CNMF traces (CaImAn's ``detrend_df_f`` in spirit).

For component ``k`` with footprint ``a_k`` (CaImAn pixel order, any norm):

* ``F_k(t) = C_k(t) + YrA_k(t)`` (the raw, unmixed trace; ``C`` alone with
  ``use_residuals=False``);
* ``B_k(t) = a_k^T b f(t) / (a_k^T a_k)``: the background under the
  footprint, expressed in the units of the trace (the least-squares amplitude
  of the background projected on the footprint);
* ``F0_k(t)``: a running low quantile of ``F_k`` over ``frames_window``
  frames (the baseline; slow drifts are followed);
* ``B0_k(t)``: the same running quantile of ``B_k``;
* ``dF/F = (F - F0) / (F0 + B0)``; with ``detrend_only=True`` just ``F - F0``.

``flag_auto=True`` picks the quantile of each trace automatically: the
percentile rank of the trace's mode (estimated by the half-sample mode) after
removing slow drifts with a running median (CaImAn uses the first window
only, which a drift biases), which sits in the middle of the noise around
the baseline when activity is sparse;
``quantileMin`` is used otherwise.  ``use_fast=True`` evaluates the running
quantile only every ``frames_window // 4`` frames and interpolates linearly
(CaImAn decimates in the same spirit); the exact version runs a 1D percentile
filter per trace (reflecting at the ends).

The helpers :func:`half_sample_mode` and :func:`running_percentile` are also
used by component evaluation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage, sparse

from .errors import InputError

__all__ = ["detrend_df_f", "half_sample_mode", "mode_percentile", "running_percentile"]


def half_sample_mode(x: np.ndarray, *, block_bytes: int = 64 << 20) -> np.ndarray:
    """Robust mode of each row of ``x`` (K, T) by the half-sample mode (Bickel).

    Vectorized over rows: repeatedly keep the densest half of the sorted
    samples (the window of ``ceil(n/2)`` consecutive order statistics with the
    smallest range) until three or fewer remain.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    K, T = x.shape
    out = np.empty(K)
    if T == 0:
        out[:] = np.nan
        return out
    rows_per_block = max(1, int(block_bytes // max(1, 16 * T)))
    for r0 in range(0, K, rows_per_block):
        s = np.sort(x[r0 : r0 + rows_per_block], axis=1)
        kb = s.shape[0]
        rr = np.arange(kb)[:, None]
        lo = np.zeros(kb, dtype=np.int64)
        n = T
        while n > 3:
            h = (n + 1) // 2
            starts = lo[:, None] + np.arange(n - h + 1)[None, :]
            width = s[rr, starts + (h - 1)] - s[rr, starts]
            lo = lo + np.argmin(width, axis=1)
            n = h
        r = rr[:, 0]
        if n == 1:
            out[r0 : r0 + kb] = s[r, lo]
        elif n == 2:
            out[r0 : r0 + kb] = 0.5 * (s[r, lo] + s[r, lo + 1])
        else:  # 3 points: the mean of the closer pair (the middle one on ties)
            a, b, c = s[r, lo], s[r, lo + 1], s[r, lo + 2]
            d1, d2 = b - a, c - b
            out[r0 : r0 + kb] = np.where(
                d1 < d2, 0.5 * (a + b), np.where(d2 < d1, 0.5 * (b + c), b)
            )
    return out


def mode_percentile(x: np.ndarray) -> np.ndarray:
    """Percentile rank (0-100) of each row's half-sample mode within the row."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    md = half_sample_mode(x)
    return 100.0 * np.mean(x <= md[:, None], axis=1)


def running_percentile(F: np.ndarray, q: Any, window: int, *, fast: bool = False) -> np.ndarray:
    """Return the running percentile of each row of ``F`` (K, T) over ``window`` frames.

    Parameters
    ----------
    q : float or (K,) array
        Percentile (0-100), one for all rows or one per row.
    window : int
        Window length in frames; a window >= T gives a constant baseline per
        row (the percentile of the whole row).
    fast : bool
        Evaluate every ``window // 4`` frames and interpolate linearly.
    """
    F = np.atleast_2d(np.asarray(F, dtype=np.float64))
    K, T = F.shape
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), (K,))
    window = int(window)
    if K == 0 or T == 0:
        return F.copy()
    if window >= T:
        srt = np.sort(F, axis=1)
        return np.repeat(_take_quantile(srt, q)[:, None], T, axis=1)
    window = max(window, 1)
    if not fast:
        out = np.empty_like(F)
        for k in range(K):
            out[k] = ndimage.percentile_filter(F[k], float(q[k]), size=window, mode="reflect")
        return out
    step = max(1, window // 4)
    half = window // 2
    Fp = np.pad(F, ((0, 0), (half, window - 1 - half)), mode="reflect")
    centers = np.arange(0, T, step)
    if centers[-1] != T - 1:
        centers = np.append(centers, T - 1)
    view = np.lib.stride_tricks.sliding_window_view(Fp, window, axis=1)  # (K, T, window)
    vals = np.empty((K, centers.size))
    rows = max(1, int((32 << 20) // max(1, 8 * centers.size * window)))
    for r0 in range(0, K, rows):
        blk = np.sort(view[r0 : r0 + rows, centers], axis=-1)
        vals[r0 : r0 + rows] = _take_quantile(blk, q[r0 : r0 + rows, None])
    # linear interpolation to every frame (same abscissae for all rows)
    t = np.arange(T)
    i1 = np.clip(np.searchsorted(centers, t, side="left"), 1, centers.size - 1)
    i0 = i1 - 1
    if centers.size == 1:
        return np.repeat(vals[:, :1], T, axis=1)
    w = (t - centers[i0]) / (centers[i1] - centers[i0])
    return vals[:, i0] * (1 - w) + vals[:, i1] * w


def _take_quantile(srt: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Linear-interpolated percentile ``q`` (broadcast to srt.shape[:-1]) of sorted last axis."""
    n = srt.shape[-1]
    pos = np.clip(np.asarray(q) / 100.0, 0.0, 1.0) * (n - 1)
    pos = np.broadcast_to(pos, srt.shape[:-1])
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = pos - lo
    a = np.take_along_axis(srt, lo[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(srt, hi[..., None], axis=-1)[..., 0]
    return a * (1 - frac) + b * frac


def background_traces(estimates: Any) -> np.ndarray:
    """(K, T) background under each footprint, in trace units: a^T b f / (a^T a)."""
    A = sparse.csc_matrix(estimates.A)
    K = A.shape[1]
    T = int(np.asarray(estimates.C).shape[1])
    b = np.asarray(estimates.b) if estimates.b is not None else np.zeros((A.shape[0], 0))
    f = np.asarray(estimates.f) if estimates.f is not None else np.zeros((0, T))
    if b.ndim == 1:
        b = b[:, None]
    if f.ndim == 1:
        f = f[None, :]
    if b.shape[1] == 0 or f.shape[0] == 0:
        return np.zeros((K, T))
    nA2 = np.asarray(A.multiply(A).sum(axis=0)).ravel()
    nA2[nA2 == 0] = 1.0
    Ab = np.asarray(A.T @ b.astype(np.float64))  # (K, nb)
    return (Ab @ f.astype(np.float64)) / nA2[:, None]


def detrend_df_f(
    estimates: Any,
    *,
    quantileMin: float = 8,
    frames_window: int | None = 500,
    flag_auto: bool = True,
    use_fast: bool = False,
    use_residuals: bool = True,
    detrend_only: bool = False,
) -> np.ndarray:
    """Detrended dF/F of every component, (K, T) float32.

    Parameters
    ----------
    estimates : Estimates
        Uses ``A``, ``C``, ``YrA`` (``use_residuals``), ``b``, ``f``.
    quantileMin : float
        Baseline percentile when ``flag_auto`` is False.
    frames_window : int or None
        Running window (frames); None or >= T: one baseline per trace.
    flag_auto : bool
        Per-trace percentile at the rank of the trace's mode.
    use_fast : bool
        Decimated running percentile (see module docstring).
    use_residuals : bool
        ``F = C + YrA`` (else ``C``).
    detrend_only : bool
        Return ``F - F0`` instead of dF/F.

    Raises
    ------
    InputError
        Bad ``quantileMin`` / ``frames_window`` or traces with NaN/inf.
    """
    if not (np.isscalar(quantileMin) and 0 <= float(quantileMin) <= 100):  # type: ignore[arg-type]
        raise InputError("quantileMin", f"must be a percentile in [0, 100], got {quantileMin!r}")
    if frames_window is not None and (not np.isscalar(frames_window) or int(frames_window) < 1):  # type: ignore[arg-type]
        raise InputError(
            "frames_window", f"must be a positive number of frames or None, got {frames_window!r}"
        )
    C = np.asarray(estimates.C, dtype=np.float64)
    F = (
        C + np.asarray(estimates.YrA, dtype=np.float64)
        if use_residuals and estimates.YrA is not None
        else C.copy()
    )
    if F.ndim != 2:
        raise InputError("estimates", f"C must be (K, T), got shape {C.shape}")
    K, T = F.shape
    if K == 0:
        return np.zeros((0, T), np.float32)
    if not np.isfinite(F).all():
        raise InputError("estimates", "traces (C + YrA) contain NaN or inf")
    window = T if frames_window is None else min(int(frames_window), T)  # type: ignore[arg-type]
    if flag_auto:
        # rank of the mode among the samples, measured after removing slow
        # drifts (a running median), so that a drift does not bias it
        R = F - running_percentile(F, 50.0, window, fast=True) if window < T else F
        q = mode_percentile(R)
    else:
        q = np.full(K, float(quantileMin))  # type: ignore[arg-type]
    F0 = running_percentile(F, q, window, fast=use_fast)
    if detrend_only:
        return (F - F0).astype(np.float32)
    B = background_traces(estimates)
    B0 = running_percentile(B, q, window, fast=use_fast) if np.any(B) else 0.0
    denom = F0 + B0
    tiny = 1e-9 * max(1.0, float(np.max(np.abs(denom))) if np.size(denom) else 1.0)
    denom = np.where(np.abs(denom) < tiny, np.where(denom < 0, -tiny, tiny), denom)
    return ((F - F0) / denom).astype(np.float32)
