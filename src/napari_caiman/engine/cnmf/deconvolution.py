"""Deconvolution of calcium traces: OASIS for AR(1)/AR(2) (Friedrich et al. 2017).

Model: ``y[t] = b + c[t] + noise``, ``c[t] = g1 c[t-1] + g2 c[t-2] + s[t]``,
``s >= 0`` (``c[-1] = c[-2] = 0``, so ``s[0] = c[0]``).  We solve

    min_c  1/2 ||y - b - c||^2 + lam * sum(s)      subject to s >= s_min or s = 0

with OASIS's pool-adjacent-violators scheme: each pool is a run of frames with
no spike except at its first frame, its first value solved in closed form given
the calcium just before it; a new frame opens a pool, which is merged
backwards while the spike at its start would be smaller than ``s_min``.  For
AR(1) this is the exact solution; for AR(2) it is the greedy OASIS variant.
The L1 term is folded into ``y`` (``sum(s)`` is linear in ``c``).

:func:`deconvolve` adds what CaImAn's ``constrained_foopsi`` does around it:
noise SD from the PSD, AR coefficients from the autocovariance (corrected for
the noise at lag 0, roots scaled by ``fudge_factor``), baseline, and the
noise-constrained ``lam`` (bisection so that ``||y - b - c||^2 = sn^2 T``).
Everything that loops over frames is compiled with numba.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .noise import psd_noise

__all__ = ["oasis", "estimate_ar", "deconvolve", "default_ar"]


@numba.njit(cache=True, nogil=True)
def _impulse(g1, g2, T):
    h = np.empty(T + 1)
    h[0] = 1.0
    if T >= 1:
        h[1] = g1
    for k in range(2, T + 1):
        h[k] = g1 * h[k - 1] + g2 * h[k - 2]
    return h


@numba.njit(cache=True, nogil=True)
def _oasis_core(y, g1, g2, smin, h):
    """OASIS on ``y`` (float64, baseline and lam already removed); returns c."""
    T = y.shape[0]
    st = np.empty(T, np.int64)  # pool start
    ln = np.empty(T, np.int64)  # pool length
    v = np.empty(T)  # pool first value
    u = np.empty(T)  # calcium just before the pool
    num = np.empty(T)
    den = np.empty(T)
    n = 0
    for t in range(T):
        # calcium at the end of the last pool
        if n == 0:
            uu = 0.0
        else:
            j = n - 1
            L = ln[j]
            uu = v[j] * h[L - 1] + (g2 * u[j] * h[L - 2] if L >= 2 else 0.0)
        st[n] = t
        ln[n] = 1
        u[n] = uu
        num[n] = y[t]
        den[n] = 1.0
        v[n] = y[t]
        if n == 0 and v[n] < 0:
            v[n] = 0.0
        n += 1
        # merge backwards while the spike at the start of the last pool is too small
        while n >= 2:
            i = n - 1
            j = n - 2
            L = ln[j]
            c_end1 = v[j] * h[L - 1] + (g2 * u[j] * h[L - 2] if L >= 2 else 0.0)
            if L >= 2:
                c_end2 = v[j] * h[L - 2] + (g2 * u[j] * h[L - 3] if L >= 3 else 0.0)
            else:
                c_end2 = u[j]
            s = v[i] - g1 * c_end1 - g2 * c_end2
            if s >= smin:
                break
            # merge pool i into pool j
            t0 = st[j]
            for k in range(L, L + ln[i]):
                hk = h[k]
                num[j] += hk * (y[t0 + k] - g2 * u[j] * h[k - 1])
                den[j] += hk * hk
            ln[j] += ln[i]
            v[j] = num[j] / den[j]
            if j == 0 and v[j] < 0:
                v[j] = 0.0
            n -= 1
    c = np.empty(T)
    prev1 = 0.0
    for i in range(n):
        t0 = st[i]
        c[t0] = v[i]
        if ln[i] > 1:
            c[t0 + 1] = g1 * v[i] + g2 * prev1
            for k in range(2, ln[i]):
                c[t0 + k] = g1 * c[t0 + k - 1] + g2 * c[t0 + k - 2]
        e = t0 + ln[i] - 1
        prev1 = c[e]
    for t in range(T):
        if c[t] < 0:
            c[t] = 0.0
    return c


@numba.njit(cache=True, nogil=True)
def _solve(y, g1, g2, lam, smin, b, fit_b, bas_nonneg, h, n_b_iter):
    """OASIS with penalty ``lam``, alternating with the baseline; returns (c, b, rss)."""
    T = y.shape[0]
    w = np.empty(T)
    for t in range(T):
        w[t] = 1.0 - (g1 if t < T - 1 else 0.0) - (g2 if t < T - 2 else 0.0)
    z = np.empty(T)
    c = np.zeros(T)
    for _ in range(n_b_iter if fit_b else 1):
        for t in range(T):
            z[t] = y[t] - b - lam * w[t]
        c = _oasis_core(z, g1, g2, smin, h)
        if fit_b:
            acc = 0.0
            for t in range(T):
                acc += y[t] - c[t]
            b = acc / T
            if bas_nonneg and b < 0:
                b = 0.0
    rss = 0.0
    for t in range(T):
        r = y[t] - b - c[t]
        rss += r * r
    return c, b, rss


@numba.njit(cache=True, nogil=True)
def _constrained(y, g1, g2, sn, smin, b0, fit_b, bas_nonneg, lam_fixed):
    """Noise-constrained lam by bisection (or a fixed lam when lam_fixed >= 0)."""
    T = y.shape[0]
    h = _impulse(g1, g2, T)
    if lam_fixed >= 0:
        c, b, rss = _solve(y, g1, g2, lam_fixed, smin, b0, fit_b, bas_nonneg, h, 3)
        return c, b, lam_fixed
    target = sn * sn * T
    c, b, rss = _solve(y, g1, g2, 0.0, smin, b0, fit_b, bas_nonneg, h, 3)
    if rss >= target or sn <= 0:
        return c, b, 0.0
    lo = 0.0
    hi = sn * math.sqrt(T) * 0.05 + 1e-12
    # grow hi until the fit is loose enough
    for _ in range(60):
        c2, b2, rss2 = _solve(y, g1, g2, hi, smin, b, fit_b, bas_nonneg, h, 2)
        if rss2 >= target:
            break
        lo = hi
        c, b = c2, b2
        hi *= 2.0
    for _ in range(14):
        mid = 0.5 * (lo + hi)
        c2, b2, rss2 = _solve(y, g1, g2, mid, smin, b, fit_b, bas_nonneg, h, 2)
        if rss2 > target:
            hi = mid
        else:
            lo = mid
            c, b = c2, b2
    return c, b, lo


def oasis(y, g, *, lam: float = 0.0, s_min: float = 0.0):
    """Plain OASIS (no baseline): returns ``(c, s)`` for AR coefficients ``g``.

    ``g`` is ``(g1,)`` or ``(g1, g2)``; ``lam`` the L1 penalty on ``s``;
    ``s_min`` the smallest allowed non-zero spike.
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    g1, g2 = _g12(g)
    c, _, _ = _solve(
        y, g1, g2, float(lam), float(s_min), 0.0, False, False, _impulse(g1, g2, len(y)), 1
    )
    return c, _spikes(c, g1, g2)


def _g12(g) -> tuple[float, float]:
    g = np.atleast_1d(np.asarray(g, float))
    if g.size == 0:
        return 0.0, 0.0
    return float(g[0]), float(g[1]) if g.size > 1 else 0.0


def _spikes(c, g1, g2):
    s = c.copy()
    s[1:] -= g1 * c[:-1]
    s[2:] -= g2 * c[:-2]
    return np.maximum(s, 0.0)


def default_ar(p: int, fr: float = 30.0, decay_time: float = 0.4) -> np.ndarray:
    """AR coefficients from the frame rate and decay time (rise = decay / 8 for p = 2)."""
    if p == 0:
        return np.zeros(0)
    d = math.exp(-1.0 / max(decay_time * fr, 1e-3))
    if p == 1:
        return np.array([d])
    r = math.exp(-8.0 / max(decay_time * fr, 1e-3))
    return np.array([d + r, -d * r])


def estimate_ar(
    y, p: int, sn: float | None = None, lags: int = 5, fudge_factor: float = 1.0, fallback=None
) -> np.ndarray:
    """AR(p) coefficients of ``y`` from its autocovariance at lags 1..p+lags.

    The lag-0 autocovariance is corrected for the white noise ``sn``; the
    resulting roots are scaled by ``fudge_factor`` and must be real, in (0, 1),
    else ``fallback`` (or :func:`default_ar`) is returned.
    """
    if p == 0:
        return np.zeros(0)
    y = np.asarray(y, float)
    if sn is None:
        sn = psd_noise(y)  # type: ignore[assignment]
    L = p + lags
    yc = y - y.mean()
    T = len(yc)
    if T <= L + 1:
        return default_ar(p) if fallback is None else np.asarray(fallback, float)
    n = 1 << int(np.ceil(np.log2(2 * T)))
    F = np.fft.rfft(yc, n)
    r = np.fft.irfft(F.real**2 + F.imag**2, n)[: L + 1] / T
    rc = r.copy()
    rc[0] -= sn * sn  # type: ignore[operator]
    M = np.array([[rc[abs(k - j)] for j in range(1, p + 1)] for k in range(1, L + 1)])
    try:
        g = np.linalg.lstsq(M, r[1 : L + 1], rcond=None)[0]
    except np.linalg.LinAlgError:
        g = None
    if g is not None:
        roots = np.roots(np.r_[1.0, -g])
        ok = np.all(np.isreal(roots)) and np.all(np.real(roots) > 0) and np.all(np.real(roots) < 1)
        if ok:
            roots = np.real(roots) * fudge_factor
            return -np.poly(roots)[1:]
    return default_ar(p) if fallback is None else np.asarray(fallback, float)


def deconvolve(
    y,
    *,
    p: int = 2,
    g=None,
    sn: float | None = None,
    bas_nonneg: bool = False,
    s_min: float | None = None,
    lam: float | None = None,
    fudge_factor: float = 0.96,
    lags: int = 5,
    noise_range=(0.25, 0.5),
    noise_method: str = "mean",
    b: float | None = None,
    fallback_g=None,
):
    """Constrained deconvolution of one trace (CaImAn's ``constrained_foopsi`` role).

    Parameters
    ----------
    y : (T,) raw trace (baseline included).
    p : AR order 0, 1 or 2.  ``p = 0``: no deconvolution, ``c = max(y - b, 0)``.
    g : AR coefficients; estimated from ``y`` when None.
    sn : noise SD of ``y``; PSD estimate when None.
    bas_nonneg : keep the baseline >= 0.
    s_min : smallest spike; negative values mean ``|s_min| * sn * sqrt(1 - sum(g))``
        (CaImAn's convention).  When given, ``lam`` is 0 unless set.
    lam : fixed L1 penalty; None = noise-constrained (``||y - b - c|| = sn sqrt(T)``).
    b : fixed baseline; estimated when None.

    Returns
    -------
    c, s, b, g, lam, sn
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    if sn is None:
        sn = psd_noise(y, noise_range, noise_method)  # type: ignore[assignment]
    sn = float(sn)  # type: ignore[arg-type]
    if p == 0:
        bb = float(np.percentile(y, 8)) if b is None else float(b)
        if bas_nonneg:
            bb = max(bb, 0.0)
        c = np.maximum(y - bb, 0.0)
        return c, c.copy(), bb, np.zeros(0), 0.0, sn
    if g is None:
        g = estimate_ar(y, p, sn, lags, fudge_factor, fallback=fallback_g)
    g1, g2 = _g12(g)
    if s_min is None:
        smin = 0.0
    elif s_min < 0:
        smin = abs(s_min) * sn * math.sqrt(max(1.0 - g1 - g2, 1e-6))
    else:
        smin = float(s_min)
    lam_fixed = -1.0 if (lam is None and s_min is None) else float(lam or 0.0)
    fit_b = b is None
    b0 = float(np.percentile(y, 15)) if fit_b else float(b)  # type: ignore[arg-type]
    if bas_nonneg:
        b0 = max(b0, 0.0)
    c, bb, lam_used = _constrained(y, g1, g2, sn, smin, b0, fit_b, bool(bas_nonneg), lam_fixed)
    return c, _spikes(c, g1, g2), float(bb), np.asarray(g, float), float(lam_used), sn
