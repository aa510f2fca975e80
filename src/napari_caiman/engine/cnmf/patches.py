"""Patches: split the field of view into overlapping pieces processed in parallel.

``rf`` is the half-size of a patch and ``stride`` the overlap between
neighbouring patches, per axis in CaImAn order (rows, cols[, planes]).  Along
an axis of length ``d`` patches have size ``min(2 rf, d)``, start every
``size - stride`` pixels and the last one is flush with the border.

Each patch (:func:`fit_patch`, a plain function of numpy arrays so that it can
run on a thread pool, a process pool or a ``dask.distributed.Client``) is
initialized with ``K`` components (greedy ROI on the patch downsampled by
``p_ssub``/``p_tsub``, ``nb_patch`` background components) followed by one
round of spatial/temporal updates on the patch at full resolution (AR order
``p_patch``).  The caller places the footprints into the full field of view
and merges duplicates found in overlapping patches.
"""

from __future__ import annotations

import itertools

import numpy as np

from ._shapes import downsample, upsample_images, upsample_time
from .data import MovieData
from .initialization import greedy_roi
from .steps import Settings, spatial_step, temporal_step

__all__ = ["patch_slices", "fit_patch", "fit_patch_from"]


def patch_slices(dims: tuple[int, ...], rf, stride) -> list[tuple[slice, ...]]:
    """Overlapping patch windows (array order)."""
    axes = []
    for d, r, s in zip(dims, rf, stride, strict=True):
        size = min(2 * int(r), d)
        step = max(1, size - int(s))
        starts = list(range(0, d - size + 1, step))
        if starts[-1] + size < d:
            starts.append(d - size)
        axes.append([slice(a, a + size) for a in starts])
    return [tuple(c) for c in itertools.product(*axes)]


def fit_patch(Y: np.ndarray, st: Settings, p_ssub: int, p_tsub: int, nb_patch: int, rounds: int = 1) -> dict:
    """Find components in one patch (T, *patch) float32.

    Returns ``A`` (patch pixels C-order, K'), ``C`` (K', T), ``b``, ``f``.
    """
    Y = np.ascontiguousarray(Y, dtype=np.float32)
    T = Y.shape[0]
    dims = Y.shape[1:]
    nd = len(dims)
    scale = np.array([1.0] * (nd - 2) + [p_ssub, p_ssub])
    gSig = tuple(float(g / s) for g, s in zip(st.gSig, scale, strict=True))
    gSiz = tuple(max(1, int(round(g / s))) for g, s in zip(st.gSiz, scale, strict=True))
    Yd = downsample(Y, p_ssub, p_tsub)
    A, C, b, f = greedy_roi(Yd, st.K, gSig, gSiz, nb=nb_patch, nIter=st.nIter)
    del Yd
    small = tuple(int(s) for s in downsample(Y[:1], p_ssub, 1).shape[1:])
    A = upsample_images(A, small, dims, p_ssub)
    b = upsample_images(b, small, dims, p_ssub)
    C = upsample_time(C, T, p_tsub)
    f = upsample_time(f, T, p_tsub)
    K = A.shape[1]
    W = np.ascontiguousarray(np.concatenate([A, b], axis=1), dtype=np.float32)
    H = np.ascontiguousarray(np.concatenate([C, f], axis=0), dtype=np.float32)
    if rounds and K:
        data = MovieData(Y)
        data.Y = Y.reshape(T, -1)
        for _ in range(rounds):
            W, H, K = spatial_step(data, W, H, K, nb_patch, st)
            W, H, K, _ = temporal_step(data, W, H, K, nb_patch, st.temporal)
    return {"A": W[:, :K], "C": H[:K], "b": W[:, K:], "f": H[K:]}


def fit_patch_from(movie, sl: tuple[slice, ...], st: Settings, p_ssub: int, p_tsub: int, nb_patch: int) -> dict:
    """:func:`fit_patch` of the patch ``sl`` read from ``movie`` where this runs
    (a cluster worker reading a path it shares); the result says which process ran it."""
    import os

    out = fit_patch(MovieData(movie, max_bytes=0).patch(sl), st, p_ssub, p_tsub, nb_patch)
    out["pid"] = os.getpid()
    return out
