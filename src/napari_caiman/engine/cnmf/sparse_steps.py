"""The whole-field refinement on sparse footprints (internal).

On a whole field of view the footprints ``A`` (pixels x K) are a sparse CSC
matrix and the background ``b`` (pixels x nb) is dense; the traces
``H = [C; f]`` are (K + nb, T).  Nothing here is pixels x K dense, so a
512 x 512 x 24 volume with thousands of neurons needs memory in proportion to
the footprints' non-zeros, not to pixels x components:

* :func:`spatial_step`: each footprint is updated by HALS on its search
  region (its support dilated by ``st.se()``), the background on every
  pixel; ``Y H^T`` is computed on the regions only.  Then the noise cut and
  CaImAn's thresholding (:func:`.._shapes.clean_footprint_idx`) per footprint.
  Past :data:`.patches.PATCH_MAX_FRAMES` frames it reads the movie binned in
  time (:func:`binned_spatial_step`).
* :func:`iter_temporal_step`: ``A^T Y`` and the Gram matrix at the cost of
  the non-zeros, then the usual temporal update (:mod:`.temporal`).
* :func:`merge_step`: merging of sparse footprints (:mod:`.merging`).

The dense counterparts in :mod:`.steps` serve the small patches.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy import sparse

from ._shapes import clean_footprint_idx, dilated_support_idx, downsample, upsample_time
from .merging import merge_components
from .products import Regions
from .temporal import TemporalSettings, iter_update_temporal


@numba.njit(nogil=True, cache=True)
def _hals(
    vals, comp, indptr, pix, inv_ptr, inv_q, update, YH, b, YHb, HH, n_iter, bg_update
):  # pragma: no cover
    K = indptr.size - 1
    nb = b.shape[1]
    P = b.shape[0]
    for _ in range(n_iter):
        for k in range(K):
            d = HH[k, k]
            if d <= 0 or not update[k]:
                continue
            for q in range(indptr[k], indptr[k + 1]):
                p = pix[q]
                s = 0.0
                for r in range(inv_ptr[p], inv_ptr[p + 1]):
                    q2 = inv_q[r]
                    s += vals[q2] * HH[comp[q2], k]
                for m in range(nb):
                    s += b[p, m] * HH[K + m, k]
                v = vals[q] + (YH[q] - s) / d
                vals[q] = v if v > 0 else 0.0
        if not bg_update:
            continue
        for m in range(nb):
            d = HH[K + m, K + m]
            if d <= 0:
                continue
            contrib = np.zeros(P)
            for q in range(vals.size):
                contrib[pix[q]] += vals[q] * HH[comp[q], K + m]
            for p in range(P):
                s = contrib[p]
                for m2 in range(nb):
                    s += b[p, m2] * HH[K + m2, K + m]
                v = b[p, m] + (YHb[p, m] - s) / d
                b[p, m] = v if v > 0 else 0.0


class RegionSet:
    """Footprint values on their search regions, with a pixel -> entries index."""

    def __init__(self, A: sparse.csc_matrix, regions: list):
        K = A.shape[1]
        self.R = Regions(regions, np.arange(K))
        self.comp = np.repeat(np.arange(K, dtype=np.int64), np.diff(self.R.indptr))
        self.vals = np.zeros(self.R.pix.size, np.float32)
        P = A.shape[0]
        scratch = np.zeros(P, np.float32)
        for k in range(K):
            sl = slice(A.indptr[k], A.indptr[k + 1])
            q = slice(self.R.indptr[k], self.R.indptr[k + 1])
            scratch[A.indices[sl]] = A.data[sl]
            self.vals[q] = scratch[self.R.pix[q]]
            scratch[A.indices[sl]] = 0
        order = np.argsort(self.R.pix, kind="stable")
        self.inv_q = order.astype(np.int64)
        self.inv_ptr = np.r_[0, np.cumsum(np.bincount(self.R.pix, minlength=P))].astype(np.int64)

    def hals(
        self,
        YH: np.ndarray,
        b: np.ndarray,
        YHb: np.ndarray,
        HH: np.ndarray,
        n_iter: int,
        update: np.ndarray | None = None,
        bg_update: bool = True,
    ) -> None:
        """Run ``n_iter`` HALS passes on the footprints' region values in place.

        The background is updated too with ``bg_update``.
        """
        K = self.R.indptr.size - 1
        upd = np.ones(K, np.bool_) if update is None else np.asarray(update, np.bool_)
        _hals(
            self.vals,
            self.comp,
            self.R.indptr,
            self.R.pix,
            self.inv_ptr,
            self.inv_q,
            upd,
            np.asarray(YH, np.float64),
            b,
            np.asarray(YHb, np.float32),
            np.asarray(HH, np.float64),
            int(n_iter),
            bool(bg_update),
        )

    def columns(self):
        """Yield ``(k, pixel indices, values)`` of the positive entries per footprint."""
        for k in range(self.R.indptr.size - 1):
            q = slice(self.R.indptr[k], self.R.indptr[k + 1])
            v = self.vals[q]
            pos = v > 0
            yield k, self.R.pix[q][pos], v[pos]


def csc_from_columns(cols: list, P: int) -> sparse.csc_matrix:
    """CSC (P, len(cols)) from ``(indices, values)`` per column (indices sorted)."""
    sizes = [idx.size for idx, _ in cols]
    indptr = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    ind = (
        np.concatenate([idx for idx, _ in cols]).astype(np.int32) if cols else np.zeros(0, np.int32)
    )
    val = (
        np.concatenate([v for _, v in cols]).astype(np.float32) if cols else np.zeros(0, np.float32)
    )
    return sparse.csc_matrix((val, ind, indptr), shape=(P, len(cols)))


def _canonical(A) -> sparse.csc_matrix:
    A = sparse.csc_matrix(A, dtype=np.float32)
    A.sum_duplicates()
    A.sort_indices()
    A.eliminate_zeros()
    return A


def gram(A: sparse.csc_matrix, b: np.ndarray) -> np.ndarray:
    """Return ``[A b]^T [A b]`` (K + nb, K + nb) float32."""
    K, nb = A.shape[1], b.shape[1]
    G = np.empty((K + nb, K + nb), np.float32)
    G[:K, :K] = (A.T @ A).toarray()
    Atb = np.asarray(A.T @ b, np.float32)
    G[:K, K:] = Atb
    G[K:, :K] = Atb.T
    G[K:, K:] = b.T @ b
    return G


def regions_of(A: sparse.csc_matrix, dims, se: np.ndarray) -> list:
    """Return each footprint's support dilated by the structuring element ``se`` (flat indices)."""
    return [
        dilated_support_idx(A.indices[A.indptr[k] : A.indptr[k + 1]], dims, se)
        for k in range(A.shape[1])
    ]


def _kept_rows(H: np.ndarray, keep: np.ndarray, K: int, nb: int) -> np.ndarray:
    """Return the rows of ``H = [C; f]`` of the kept components and every background."""
    return np.ascontiguousarray(H[np.r_[keep, np.arange(K, K + nb)].astype(int)])


def _binned_traces(H: np.ndarray, tbin: int) -> np.ndarray:
    """Return the traces ``H`` (k, T) averaged over ``tbin`` frames as the movie is binned."""
    binned = downsample(np.ascontiguousarray(H.T, dtype=np.float32), 1, tbin)
    return np.ascontiguousarray(binned.T)


def spatial_step(
    data,
    A: sparse.csc_matrix,
    b: np.ndarray,
    H: np.ndarray,
    st,
    sn=None,
    n_iter: int | None = None,
    update: np.ndarray | None = None,
    regions: list | None = None,
    clean: bool = True,
):
    """Update footprints and background; drop empty components. Returns (A, b, H).

    ``update`` (K,) bool: only those footprints move (the others keep their
    values); ``regions``: their search regions (default: dilated supports).
    With the pixels' noise SD ``sn`` and ``st.noise_thr`` > 0, footprint
    pixels below ``noise_thr`` standard errors of their estimate are dropped
    before the cleaning (see :func:`.steps.spatial_step`).
    """
    A = _canonical(A)
    K, nb = A.shape[1], b.shape[1]
    dims, P = data.dims, data.P
    if regions is None:
        regions = regions_of(A, dims, st.se())
    if update is not None:  # fixed footprints: their region is their support
        regions = [
            r if u else A.indices[A.indptr[k] : A.indptr[k + 1]].astype(np.int64)
            for k, (r, u) in enumerate(zip(regions, update, strict=True))
        ]
    rs = RegionSet(A, regions)
    bg_update = bool(st.update_background) and nb > 0
    H = np.ascontiguousarray(H, dtype=np.float32)
    acc, YHb = data.region_YHt(
        H, rs.R, np.arange(K, K + nb) if bg_update else np.zeros(0, np.int64)
    )
    HH = H @ H.T
    b = np.array(b, np.float32, order="C", copy=True)
    rs.hals(
        acc,
        b,
        YHb if bg_update else np.zeros((P, nb), np.float32),
        HH,
        st.spatial_iter if n_iter is None else n_iter,
        update,
        bg_update,
    )
    if sn is not None and st.noise_thr > 0 and K:
        se = np.sqrt(np.maximum(np.diag(HH)[:K], 1e-30))
        low = rs.vals < st.noise_thr * np.asarray(sn, np.float32)[rs.R.pix] / se[rs.comp]
        if update is not None:
            low &= np.asarray(update, bool)[rs.comp]
        rs.vals[low] = 0
    cols = []
    for k, idx, v in rs.columns():
        if clean and (update is None or update[k]):
            idx, v = clean_footprint_idx(
                idx,
                v,
                dims,
                st.maxthr,
                st.nrgthr,
                st.extract_cc,
                medw=st.medw,
                thr_method=st.thr_method,
                se=st.se_close,
                ss=st.ss,
            )
        cols.append((idx, v))
    keep = np.array([k for k, (idx, _) in enumerate(cols) if idx.size], np.int64)
    A = csc_from_columns([cols[k] for k in keep], P)
    if keep.size < K:
        H = _kept_rows(H, keep, K, nb)
    return A, b, H, keep


def binned_spatial_step(
    data, A: sparse.csc_matrix, b: np.ndarray, H: np.ndarray, st, sn, tbin: int
):
    """Run :func:`spatial_step` on the movie averaged over ``tbin`` frames.

    This is how the patches read a long movie (:func:`.patches.patch_time_bin`).
    The footprints are a regression of the frames on the traces, and calcium
    transients last many frames, so ``tbin`` frames' means carry them: ``Y H^T``
    then costs ``T / tbin`` samples, read from the tile store the patches built
    (a third of the bytes at 30,000 frames, so it stays in the page cache where
    the full movie does not).  The traces are binned alike, and the pixels'
    noise by ``sqrt(tbin)`` (the noise cut's standard error is unchanged).
    Returns ``(A, b, H, keep)`` with ``H`` at full rate.
    """
    tbin = max(1, int(tbin))
    if tbin == 1:
        return spatial_step(data, A, b, H, st, sn=sn)
    K, nb = A.shape[1], b.shape[1]
    Hb = _binned_traces(H, tbin)
    snb = None if sn is None else np.asarray(sn, np.float32) / np.float32(np.sqrt(tbin))
    A, b, _, keep = spatial_step(data.binned(tbin), A, b, Hb, st, sn=snb)
    if keep.size < K:
        H = _kept_rows(H, keep, K, nb)
    return A, b, H, keep


def iter_temporal_step(
    data, A: sparse.csc_matrix, b: np.ndarray, H: np.ndarray, ts: TemporalSettings, keep_silent=None
):
    """Update traces (deconvolving components).

    Drop silent ones (except where ``keep_silent`` is True). Generator; returns (A, b, H, extra,
    keep).
    """
    K, nb = A.shape[1], b.shape[1]
    AtY = data.AtY_sparse(A, b)
    extra = yield from iter_update_temporal(H, AtY, gram(A, b), K, ts)
    alive = H[:K].max(axis=1) > 0
    if keep_silent is not None:
        alive |= np.asarray(keep_silent, bool)
    keep = np.flatnonzero(alive) if K else np.zeros(0, np.int64)
    if keep.size < K:
        A = sparse.csc_matrix(A[:, keep])
        H = _kept_rows(H, keep, K, nb)
        extra = {k: v[keep] for k, v in extra.items()}
    return A, b, H, extra, keep


def iter_binned_temporal_step(
    data, A: sparse.csc_matrix, b: np.ndarray, H: np.ndarray, ts: TemporalSettings, tbin: int
):
    """Run :func:`iter_temporal_step` on the movie averaged over ``tbin`` frames.

    For a refinement before the last: its traces feed the merge and the next
    spatial update, which read binned traces anyway; the last temporal update,
    which gives the traces and spikes, runs at full rate from these.

    The frame rate is ``fr / tbin`` for the deconvolution.  Generator; returns
    ``(A, b, H, extra, keep)`` with ``H`` and ``extra["YrA"]`` interpolated back
    to the full rate (the other entries of ``extra`` are of the binned traces).
    """
    tbin = max(1, int(tbin))
    if tbin == 1:
        return (yield from iter_temporal_step(data, A, b, H, ts))
    import dataclasses

    T = H.shape[1]
    Hb = _binned_traces(H, tbin)
    tsb = dataclasses.replace(ts, fr=float(ts.fr) / tbin)
    A, b, Hb, extra, keep = yield from iter_temporal_step(data.binned(tbin), A, b, Hb, tsb)
    H = upsample_time(Hb, T, tbin)
    extra = dict(extra, YrA=upsample_time(np.asarray(extra["YrA"], np.float32), T, tbin))
    return A, b, np.ascontiguousarray(H, dtype=np.float32), extra, keep


def merge_step(A: sparse.csc_matrix, H: np.ndarray, nb: int, merge_thr: float, YrA=None):
    """Merge components; returns (A, H, n_merged_groups)."""
    K = A.shape[1]
    if K < 2:
        return A, H, 0
    A2, C, groups, _ = merge_components(sparse.csc_matrix(A), H[:K], merge_thr, YrA=YrA)
    if not groups:
        return A, H, 0
    H = np.ascontiguousarray(np.concatenate([C, H[K:]], axis=0), dtype=np.float32)
    return _canonical(A2), H, len(groups)
