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
    noise_thr: float = 0.0
    medw: tuple | None = None
    thr_method: str = "nrg"
    se_close: np.ndarray | None = None
    ss: np.ndarray | None = None

    def se(self) -> np.ndarray:
        """Return the structuring element that dilates a footprint's support (an ellipsoid)."""
        radii = self.dilation or tuple(max(1.0, np.ceil(s / 2)) for s in self.gSig)
        return ellipsoid(radii)


def spatial_step(data, W, H, K, nb, st: Settings, sn=None):
    """Update footprints and background; drop empty components. Returns (W, H, K).

    With the pixels' noise SD ``sn`` (P,) and ``st.noise_thr`` > 0, footprint
    pixels below ``noise_thr`` standard errors of their estimate
    (``sn / ||c_k||``) are set to 0 before the cleaning: the noisy halo a
    footprint grows on real data is not part of the cell.
    """
    regions = search_regions(W[:, :K], data.dims, st.se())
    regions += [None if st.update_background else np.zeros(0, np.int64)] * nb
    YH = data.YHt(H, regions)
    HH = H @ H.T
    hals_spatial(W, YH, HH, regions, st.spatial_iter)
    A = W[:, :K]  # a view: no second pixels x K copy (cleaned in place)
    if sn is not None and st.noise_thr > 0 and K:
        se = np.sqrt(np.maximum(np.diag(HH)[:K], 1e-30))
        A[A < st.noise_thr * np.asarray(sn, np.float32)[:, None] / se[None, :]] = 0
    clean_footprints(
        A,
        data.dims,
        st.maxthr,
        st.nrgthr,
        st.extract_cc,
        medw=st.medw,
        thr_method=st.thr_method,
        se=st.se_close,
        ss=st.ss,
    )
    keep = np.flatnonzero(A.max(axis=0) > 0) if K else np.zeros(0, int)
    if keep.size < K:
        sel = np.r_[keep, np.arange(K, K + nb)].astype(int)
        W, H, K = np.ascontiguousarray(W[:, sel]), np.ascontiguousarray(H[sel]), keep.size
    return W, H, K


def temporal_step(data, W, H, K, nb, ts: TemporalSettings):
    """Blocking :func:`iter_temporal_step`."""
    from ..progress import run

    return run(iter_temporal_step(data, W, H, K, nb, ts))


def iter_temporal_step(data, W, H, K, nb, ts: TemporalSettings, keep_silent=None):
    """Update traces (deconvolving components).

    Drop silent ones (except those where the (K,) bool ``keep_silent`` is True). Returns (W, H, K,
    extra).
    """
    AtY = data.AtY(W)
    AtA = W.T @ W
    extra = yield from iter_update_temporal(H, AtY, AtA, K, ts)
    alive = H[:K].max(axis=1) > 0
    if keep_silent is not None:
        alive |= np.asarray(keep_silent, bool)
    keep = np.flatnonzero(alive) if K else np.zeros(0, int)
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
