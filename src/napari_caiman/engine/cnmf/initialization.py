"""Initialization by greedy ROI search (``method_init='greedy_roi'``).

Own implementation of the idea in Pnevmatikakis et al. 2016:

1. subtract each pixel's temporal median and (when ``nb > 0``) its
   regression on the mean trace (the shared background fluctuation);
   Gaussian-filter every frame with ``gSig`` (per axis, zero outside);
2. repeatedly (up to K times, or until the best energy is below
   ``stop_ratio`` (2) x what white noise gives) take the pixel where the filtered movie has the most energy
   (sum over time of its positive part squared, minus the part expected from white noise,
   which is estimated per pixel from the PSD so that borders, where the
   filter averages fewer pixels, are not favoured), fit a rank-1 non-negative factorization
   (footprint x trace) of the data in a window around it (half-size
   ``gSiz // 2`` per axis), subtract it and refresh the filtered
   movie and the energy map locally;
3. background: rank-``nb`` non-negative factorization of the data minus the
   components (median image / non-negative SVD start), then ``nIter`` rounds
   of HALS on all footprints (restricted to windows of half-size
   ``max(gSiz // 2, 2 gSig)`` around their centres) and traces.

Works on (T, Y, X) and (T, Z, Y, X) arrays (already downsampled by the
caller when ``ssub``/``tsub`` > 1).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..progress import Progress, run
from ._shapes import box_indices
from .noise import psd_noise
from .spatial import hals_spatial
from .temporal import hals_temporal

__all__ = ["greedy_roi", "iter_greedy_roi", "init_window", "refine_window"]


def init_window(gSig, gSiz) -> tuple[int, ...]:
    """Half-size of the rank-1 window per axis (array order): ``gSiz // 2``."""
    return tuple(max(1, int(gz) // 2) for gs, gz in zip(gSig, gSiz, strict=True))


def refine_window(gSig, gSiz) -> tuple[int, ...]:
    """Half-size of the footprint support during the HALS refinement.

    ``max(gSiz // 2, 2 gSig)`` (the whole cell, not only its core).
    """
    return tuple(max(int(gz) // 2, int(np.ceil(2 * gs))) for gs, gz in zip(gSig, gSiz, strict=True))


def _filter(block: np.ndarray, gSig) -> np.ndarray:
    return ndimage.gaussian_filter(block, sigma=(0.0,) + tuple(gSig), mode="constant", truncate=3.0)


def _energy(rho: np.ndarray) -> np.ndarray:
    """Sum over time of the squared positive part (activity is positive)."""
    pos = np.maximum(rho, 0)
    return np.einsum("t...,t...->...", pos, pos)


def greedy_roi(Y: np.ndarray, K: int, gSig, gSiz, **kw):
    """Blocking :func:`iter_greedy_roi`; returns ``(A, C, b, f)``."""
    return run(iter_greedy_roi(Y, K, gSig, gSiz, **kw))


def iter_greedy_roi(
    Y: np.ndarray,
    K: int,
    gSig,
    gSiz,
    *,
    nb: int = 1,
    nIter: int = 5,
    rank1_iter: int = 5,
    min_energy: float = 0.0,
    stop_ratio: float = 2.0,
    check=None,
):
    """Greedy ROI initialization (generator yielding Progress, returns the factors).

    Parameters
    ----------
    Y : (T, *dims) float32, in memory.
    K : number of components.
    gSig, gSiz : per axis, array order.
    nb : background components.
    nIter : HALS refinement rounds.
    min_energy : stop early when the best remaining filtered energy falls below
        this (0: always find K).
    stop_ratio : stop early when the best remaining energy is below
        ``stop_ratio`` times the energy that white noise alone would give
        there (the data ran out of neurons); 0 disables.  2 by default: on
        real two-photon patches 3 stopped after ~3 of K = 10 components and
        missed visible cells (the evaluation, not the initialization, should
        tell weak cells from noise, as in CaImAn, whose greedy init always
        finds K); 1 finds a few more real cells but also noise components
        that the evaluation accepts on the demo movie (r-value >= 0.8 at
        SNR 0.5-0.9), see ``bench/results/realdata.md``.
    check : optional callable called once per component (for cancellation).

    Returns
    -------
    A (P, K') float32, C (K', T) float32, b (P, nb) float32, f (nb, T) float32
    with K' <= K (fewer if the data ran out of signal).
    """
    T = Y.shape[0]
    dims = Y.shape[1:]
    P = int(np.prod(dims))
    half = init_window(gSig, gSiz)
    rhalf = refine_window(gSig, gSiz)
    margin = tuple(int(np.ceil(3 * s)) + 1 for s in gSig)
    yield Progress("cnmf: initialization", 0, K)  # each report is also a chance to cancel
    med = np.median(Y, axis=0).astype(np.float32)
    yield Progress("cnmf: initialization", 0, K)
    R = Y - med[None]
    if nb > 0:
        # remove the shared background fluctuation (regression on the mean trace)
        mt = R.reshape(T, P).mean(axis=1)
        mt -= mt.mean()
        mm = float(mt @ mt)
        if mm > 0:
            beta = (mt @ R.reshape(T, P)) / mm
            R -= np.outer(mt, beta).reshape(R.shape)
    # the filter does not mix frames: chunks of ~2 M values, with a report after each
    rho = np.empty_like(R)
    step = max(1, (1 << 21) // max(P, 1))
    for t0 in range(0, T, step):
        rho[t0 : t0 + step] = _filter(R[t0 : t0 + step], gSig)
        yield Progress("cnmf: initialization", 0, K)
    # energy beyond the (filtered) white noise: the noise of a filtered pixel
    # depends on its position (borders), so compare signal, not raw power
    nvar = T * psd_noise(rho.reshape(T, -1).T).reshape(dims).astype(np.float32) ** 2
    yield Progress("cnmf: initialization", 0, K)
    energy = _energy(rho) - 0.5 * nvar
    A_list, C_list, idx_list = [], [], []  # type: ignore[var-annotated]
    fails = 0
    while len(A_list) < K and fails < 3 * K:
        if check is not None:
            check()
        yield Progress("cnmf: initialization", len(A_list), K)
        flat = int(np.argmax(energy))
        if energy.flat[flat] <= max(min_energy, stop_ratio * 0.5 * float(nvar.flat[flat]), 0.0):
            break
        ctr = np.unravel_index(flat, dims)
        win = tuple(
            slice(max(0, c - h), min(d, c + h + 1)) for c, h, d in zip(ctr, half, dims, strict=True)
        )
        Yw = R[(slice(None),) + win].reshape(T, -1)
        c = np.maximum(rho[(slice(None),) + tuple(ctr)], 0).astype(np.float32)
        a = None
        for _ in range(rank1_iter):
            cc = float(c @ c)
            if cc <= 0:
                break
            a = np.maximum(Yw.T @ c, 0) / cc
            aa = float(a @ a)
            if aa <= 0:
                break
            c = np.maximum(Yw @ a, 0) / aa
        if a is None or float(a @ a) <= 0 or float(c @ c) <= 0:
            energy[ctr] = 0
            fails += 1
            continue
        wshape = tuple(s.stop - s.start for s in win)
        R[(slice(None),) + win] -= np.outer(c, a).reshape((T,) + wshape)
        # refresh the filtered movie and the energy around the window;
        # the filter is linear: filtering the rank-1 update only needs the
        # (filtered) footprint image, not the T frames around it
        ext = tuple(
            slice(max(0, s.start - m), min(d, s.stop + m))  # type: ignore[operator]
            for s, m, d in zip(win, margin, dims, strict=True)
        )
        img = np.zeros(tuple(s.stop - s.start for s in ext), np.float32)
        img[
            tuple(slice(w.start - e.start, w.stop - e.start) for w, e in zip(win, ext, strict=True))  # type: ignore[operator]
        ] = a.reshape(wshape)
        ga = ndimage.gaussian_filter(img, sigma=tuple(gSig), mode="constant", truncate=3.0)
        rho[(slice(None),) + ext] -= (c[:, None] * ga.reshape(1, -1)).reshape((T,) + ga.shape)
        r_ext = rho[(slice(None),) + ext]
        energy[ext] = _energy(r_ext) - 0.5 * nvar[ext]
        A_list.append((box_indices(win, dims), a.astype(np.float32)))
        C_list.append(c.astype(np.float32))
        rwin = tuple(
            slice(max(0, c_ - h), min(d, c_ + h + 1))
            for c_, h, d in zip(ctr, rhalf, dims, strict=True)
        )
        idx_list.append(box_indices(rwin, dims))
    K2 = len(A_list)
    A = np.zeros((P, K2), np.float32)
    for k, (idx, a) in enumerate(A_list):
        A[idx, k] = a
    C = np.array(C_list, np.float32).reshape(K2, T)
    Y2 = Y.reshape(T, P)
    b, f = _init_background(Y2, A, C, med.ravel(), nb)
    # HALS refinement of everything together
    W = np.concatenate([A, b], axis=1)
    H = np.concatenate([C, f], axis=0)
    regions = idx_list + [None] * nb
    for it in range(nIter):
        if check is not None:
            check()
        yield Progress("cnmf: initialization refine", it, nIter)
        AtY = (Y2 @ W).T
        AtA = W.T @ W
        hals_temporal(H, AtY, AtA, 1)
        YH = (H @ Y2).T
        HH = H @ H.T
        hals_spatial(W, YH, HH, regions, 1)
    A, b = W[:, :K2], W[:, K2:]
    C, f = H[:K2], H[K2:]
    return A, C, b, f


def _init_background(Y2: np.ndarray, A: np.ndarray, C: np.ndarray, med: np.ndarray, nb: int):
    """Rank-nb non-negative background of ``Y2 - A C`` (T, P)."""
    T, P = Y2.shape
    if nb == 0:
        return np.zeros((P, 0), np.float32), np.zeros((0, T), np.float32)
    b = np.zeros((P, nb), np.float32)
    f = np.zeros((nb, T), np.float32)
    b[:, 0] = np.maximum(med - A @ np.median(C, axis=1) if A.shape[1] else med, 0)
    f[0] = 1.0
    if nb > 1:
        R = Y2 - (A @ C).T - np.outer(f[0], b[:, 0])
        R -= R.mean(axis=0, keepdims=True)
        try:
            from scipy.sparse.linalg import svds

            u, s, vt = svds(R.astype(np.float64), k=min(nb - 1, min(R.shape) - 1))
        except Exception:  # pragma: no cover - tiny data
            u, s, vt = np.linalg.svd(R, full_matrices=False)
        for j in range(min(nb - 1, len(s))):
            f[j + 1] = np.abs(u[:, j]) * np.sqrt(s[j])
            b[:, j + 1] = np.abs(vt[j]) * np.sqrt(s[j])
    return b, f
