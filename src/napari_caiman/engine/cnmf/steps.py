"""The spatial / temporal / merge steps on a :class:`~.data.MovieData` (internal).

State: ``W = [A | b]`` (pixels, K + nb) and ``H = [C; f]`` (K + nb, T), dense
float32, C-order pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._shapes import ellipsoid
from .merging import merge_components
from .spatial import clean_footprints, hals_spatial, search_regions
from .temporal import TemporalSettings, iter_update_temporal


@dataclass
class Settings:
    """Everything the native engine reads from CaimanParams, in array order."""

    K: int
    gSig: tuple
    gSiz: tuple
    nb: int
    nIter: int
    ssub: int
    tsub: int
    maxthr: float
    nrgthr: float
    extract_cc: bool
    update_background: bool
    merge_thr: float
    do_merge: bool
    temporal: TemporalSettings
    noise_range: tuple = (0.25, 0.5)
    noise_method: str = "mean"
    max_num_samples_fft: int = 3072
    spatial_iter: int = 3
    dilation: tuple = field(default=())

    def se(self) -> np.ndarray:
        radii = self.dilation or tuple(max(1.0, np.ceil(s / 2)) for s in self.gSig)
        return ellipsoid(radii)


def spatial_step(data, W, H, K, nb, st: Settings):
    """Update footprints and background; drop empty components. Returns (W, H, K)."""
    YH = data.YHt(H)
    HH = H @ H.T
    regions = search_regions(W[:, :K], data.dims, st.se())
    regions += [None if st.update_background else np.zeros(0, np.int64)] * nb
    hals_spatial(W, YH, HH, regions, st.spatial_iter)
    A = W[:, :K]  # a view: no second pixels x K copy (cleaned in place)
    clean_footprints(A, data.dims, st.maxthr, st.nrgthr, st.extract_cc)
    keep = np.flatnonzero(A.max(axis=0) > 0) if K else np.zeros(0, int)
    if keep.size < K:
        sel = np.r_[keep, np.arange(K, K + nb)].astype(int)
        W, H, K = np.ascontiguousarray(W[:, sel]), np.ascontiguousarray(H[sel]), keep.size
    return W, H, K


def temporal_step(data, W, H, K, nb, ts: TemporalSettings):
    """Blocking :func:`iter_temporal_step`."""
    from ..progress import run

    return run(iter_temporal_step(data, W, H, K, nb, ts))


def iter_temporal_step(data, W, H, K, nb, ts: TemporalSettings):
    """Update traces (deconvolving components); drop silent ones. Returns (W, H, K, extra)."""
    AtY = data.AtY(W)
    AtA = W.T @ W
    extra = yield from iter_update_temporal(H, AtY, AtA, K, ts)
    keep = np.flatnonzero(H[:K].max(axis=1) > 0) if K else np.zeros(0, int)
    if keep.size < K:
        sel = np.r_[keep, np.arange(K, K + nb)].astype(int)
        W, H = np.ascontiguousarray(W[:, sel]), np.ascontiguousarray(H[sel])
        extra = {k: v[keep] for k, v in extra.items()}
        K = keep.size
    return W, H, K, extra


def merge_step(W, H, K, nb, merge_thr, YrA=None):
    """Merge components; returns (W, H, K, n_merged_groups)."""
    if K < 2:
        return W, H, K, 0
    A, C, groups, kept = merge_components(W[:, :K], H[:K], merge_thr, YrA=YrA)
    if not groups:
        return W, H, K, 0
    W = np.ascontiguousarray(np.concatenate([A, W[:, K:]], axis=1))
    H = np.ascontiguousarray(np.concatenate([C, H[K:]], axis=0))
    return W, H, A.shape[1], len(groups)
