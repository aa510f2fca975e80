"""Temporal update.

Block-coordinate descent on ``A^T Y`` and ``A^T A`` with per-component deconvolution.

For component k the unmixed raw trace is
``y_k = c_k + (A^T Y - A^T A H)_k / (A^T A)_kk``; it is denoised by constrained
AR(p) deconvolution (:func:`~.deconvolution.deconvolve`); background rows are
only kept non-negative.  Components are visited in turn, each using the
others' latest traces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..progress import Progress
from .deconvolution import deconvolve, default_ar, estimate_ar
from .noise import psd_noise

__all__ = ["TemporalSettings", "update_temporal", "iter_update_temporal", "hals_temporal"]


@dataclass
class TemporalSettings:
    """The temporal update's settings (CaImAn's temporal and preprocess names)."""

    p: int = 2
    bas_nonneg: bool = False
    s_min: float | None = None
    fudge_factor: float = 0.96
    lags: int = 5
    noise_range: tuple = (0.25, 0.5)
    noise_method: str = "mean"
    n_iter: int = 2
    fr: float = 30.0
    decay_time: float = 0.4


def hals_temporal(H: np.ndarray, AtY: np.ndarray, AtA: np.ndarray, n_iter: int = 1) -> np.ndarray:
    """Non-negative HALS on the rows of ``H`` (n, T), in place (no deconvolution)."""
    for _ in range(n_iter):
        for k in range(H.shape[0]):
            d = AtA[k, k]
            if d <= 0:
                continue
            H[k] = np.maximum(H[k] + (AtY[k] - AtA[k] @ H) / d, 0)
    return H


def update_temporal(H, AtY, AtA, K, st: TemporalSettings):
    """Blocking :func:`iter_update_temporal`."""
    from ..progress import run

    return run(iter_update_temporal(H, AtY, AtA, K, st))


def iter_update_temporal(
    H: np.ndarray, AtY: np.ndarray, AtA: np.ndarray, K: int, st: TemporalSettings
):
    """Update ``H = [C; F]`` in place; rows < K are deconvolved.

    A generator: yields ``Progress`` every few components.

    Returns a dict with ``S``, ``YrA``, ``g``, ``bl``, ``neurons_sn``, ``lam`` for the K
    components (``C`` is ``H[:K]``).
    """
    T = H.shape[1]
    n = H.shape[0]
    p = st.p
    S = np.zeros((K, T), np.float32)
    g = np.zeros((K, p))
    bl = np.zeros(K)
    lam = np.zeros(K)
    diag = np.diag(AtA).astype(np.float64)
    safe = np.where(diag > 0, diag, 1.0)
    # noise and AR coefficients from the raw unmixed traces at the start
    raw = H[:K] + (AtY[:K] - AtA[:K] @ H) / safe[:K, None]
    sn = psd_noise(raw, st.noise_range, st.noise_method) if K else np.zeros(0)
    fallback = default_ar(p, st.fr, st.decay_time)
    for k in range(K):
        if p > 0:
            g[k] = estimate_ar(raw[k], p, sn[k], st.lags, st.fudge_factor, fallback=fallback)
    for it in range(st.n_iter):
        for k in range(n):
            if k % 16 == 0:
                yield Progress("cnmf: temporal", it * n + k, st.n_iter * n)
            d = diag[k]
            if d <= 0:
                if k < K:
                    H[k] = 0
                continue
            y = H[k] + (AtY[k] - AtA[k] @ H) / d
            if k >= K:
                H[k] = np.maximum(y, 0)
                continue
            c, s, b, _, lk, _ = deconvolve(
                y,
                p=p,
                g=g[k] if p else None,
                sn=sn[k],
                bas_nonneg=st.bas_nonneg,
                s_min=st.s_min,
                fudge_factor=st.fudge_factor,
                lags=st.lags,
            )
            H[k] = c
            S[k] = s
            bl[k] = b
            lam[k] = lk
    YrA = (AtY[:K] - AtA[:K] @ H) / safe[:K, None]
    return {"S": S, "YrA": YrA.astype(np.float32), "g": g, "bl": bl, "neurons_sn": sn, "lam": lam}
