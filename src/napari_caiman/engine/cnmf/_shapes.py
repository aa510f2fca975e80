"""Small n-d helpers shared by the CNMF steps (internal; C-order pixels)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def ellipsoid(radii) -> np.ndarray:
    """Boolean ellipsoid structuring element with the given radius per axis."""
    radii = [max(0, int(round(r))) for r in radii]
    grids = np.ogrid[tuple(slice(-r, r + 1) for r in radii)]
    q = sum(
        (g / max(r, 1e-9)) ** 2 if r > 0 else (g * 0.0) for g, r in zip(grids, radii, strict=True)
    )
    return np.asarray(q <= 1.0)


def bbox_of(idx: np.ndarray, dims: tuple[int, ...], pad) -> tuple[tuple[slice, ...], np.ndarray]:
    """Bounding box (slices) of flat C-order pixel indices, padded, and their coordinates."""
    coords = np.array(np.unravel_index(idx, dims))
    lo = np.maximum(coords.min(axis=1) - np.asarray(pad), 0)
    hi = np.minimum(coords.max(axis=1) + np.asarray(pad) + 1, dims)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True)), coords


def box_indices(sl: tuple[slice, ...], dims: tuple[int, ...]) -> np.ndarray:
    """Flat C-order indices of all pixels of a box."""
    grids = np.meshgrid(*[np.arange(s.start, s.stop) for s in sl], indexing="ij")
    return np.ravel_multi_index(tuple(g.ravel() for g in grids), dims)


def dilated_support(a: np.ndarray, dims: tuple[int, ...], se: np.ndarray) -> np.ndarray:
    """Flat indices of the support of ``a`` (P,) dilated by ``se``."""
    return dilated_support_idx(np.flatnonzero(a > 0), dims, se)


def dilated_support_idx(nz: np.ndarray, dims: tuple[int, ...], se: np.ndarray) -> np.ndarray:
    """Flat indices (sorted) of the pixels ``nz`` dilated by ``se``."""
    nz = np.asarray(nz, np.int64)
    if nz.size == 0:
        return nz
    pad = [s // 2 for s in se.shape]
    sl, coords = bbox_of(nz, dims, pad)
    lo = np.array([s.start for s in sl])
    sub = np.zeros(tuple(s.stop - s.start for s in sl), bool)
    sub[tuple(coords - lo[:, None])] = True
    dil = ndimage.binary_dilation(sub, structure=se)
    pts = np.nonzero(dil)
    return np.ravel_multi_index(tuple(p + lo_ for p, lo_ in zip(pts, lo, strict=True)), dims)


def clean_footprint(
    a: np.ndarray,
    dims: tuple[int, ...],
    maxthr: float,
    nrgthr: float,
    extract_cc: bool,
    *,
    medw: tuple | None = None,
    thr_method: str = "nrg",
    se: np.ndarray | None = None,
    ss: np.ndarray | None = None,
) -> np.ndarray:
    """Threshold one footprint (P,) as CaImAn's ``threshold_components`` does.

    The mask is computed on the footprint median-filtered with ``medw`` (a
    3-pixel window in y and x by default, none along z; 1s: none): with
    ``thr_method='nrg'`` the pixels holding ``nrgthr`` of the energy that are
    also above ``maxthr`` of the maximum, with ``'max'`` the pixels above
    ``maxthr`` of the maximum.  With ``extract_cc`` the mask is closed with
    ``se`` (3 x 3 pixels in y, x by default) and only its connected piece (connectivity ``ss``,
    full by default) holding the most energy is kept.  The kept pixels keep
    their original (unfiltered) values.
    """
    nz = np.flatnonzero(a > 0)
    out = np.zeros_like(a)
    idx, v = clean_footprint_idx(
        nz, a[nz], dims, maxthr, nrgthr, extract_cc, medw=medw, thr_method=thr_method, se=se, ss=ss
    )
    out[idx] = v
    return out


def clean_footprint_idx(
    nz: np.ndarray,
    vals: np.ndarray,
    dims: tuple[int, ...],
    maxthr: float,
    nrgthr: float,
    extract_cc: bool,
    *,
    medw: tuple | None = None,
    thr_method: str = "nrg",
    se: np.ndarray | None = None,
    ss: np.ndarray | None = None,
):
    """Apply :func:`clean_footprint` to the footprint with values ``vals`` (> 0) at the flat pixels ``nz``.

    Returns the kept ``(indices, values)``, indices sorted.
    """
    nz = np.asarray(nz, np.int64)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.asarray(vals).dtype))
    if nz.size == 0:
        return empty
    nd = len(dims)
    if medw is None:  # 3 pixels in y, x; volumes often have only a few planes: none along z
        medw = (1,) * (nd - 2) + (3, 3)
    medw = tuple(int(m) for m in medw) if len(medw) else (1,) * nd
    pad = [max(m // 2, 1) for m in medw]
    sl, coords = bbox_of(nz, dims, pad)
    lo = np.array([s.start for s in sl])
    img = np.zeros(tuple(s.stop - s.start for s in sl), np.float64)
    img[tuple(coords - lo[:, None])] = vals
    filt = ndimage.median_filter(img, size=medw, mode="constant") if max(medw) > 1 else img
    v = filt[filt > 0]
    if v.size == 0:
        return empty
    mx = v.max()
    if thr_method == "max":
        bw = filt > maxthr * mx
    else:
        bw = filt >= maxthr * mx
        if nrgthr < 1:
            srt = np.sort(v)[::-1]
            cum = np.cumsum(srt**2)
            n = int(np.searchsorted(cum, nrgthr * cum[-1])) + 1
            bw &= filt >= srt[min(n, srt.size) - 1]
    bw &= img > 0
    if extract_cc and bw.sum() > 1:
        se_ = np.ones((1,) * (nd - 2) + (3, 3), bool) if se is None else np.asarray(se, bool)
        ss_ = np.ones((3,) * nd, bool) if ss is None else np.asarray(ss, bool)
        bw = ndimage.binary_closing(bw, structure=se_) & (img > 0)
        lab, n = ndimage.label(bw, structure=ss_)
        if n > 1:
            energy = ndimage.sum_labels(img**2, lab, index=np.arange(1, n + 1))
            bw = lab == int(np.argmax(energy)) + 1
    pts = np.nonzero(bw)
    idx = np.ravel_multi_index(tuple(p + lo_ for p, lo_ in zip(pts, lo, strict=True)), dims)
    return idx.astype(np.int64), img[pts].astype(np.asarray(vals).dtype)


def downsample(Y: np.ndarray, ssub: int, tsub: int) -> np.ndarray:
    """Average ``tsub`` frames and ``ssub`` x ``ssub`` pixel blocks (y, x only) of (T, *dims).

    Sums of strided views (a few passes over the data) instead of a mean over
    the axes of a reshaped array, which numpy reduces element by element.
    """
    if tsub > 1:
        T = Y.shape[0]
        n = T // tsub
        head = _mean_of_views([Y[j : n * tsub : tsub] for j in range(tsub)])
        if T > n * tsub:
            head = np.concatenate(
                [head, Y[n * tsub :].mean(axis=0, keepdims=True, dtype=np.float32)]
            )
        Y = head
    if ssub > 1:
        pads = [(0, 0)] * (Y.ndim - 2) + [(0, (-Y.shape[-2]) % ssub), (0, (-Y.shape[-1]) % ssub)]
        if any(p for _, p in pads):
            Y = np.pad(Y, pads, mode="edge")
        Y = _mean_of_views([Y[..., i::ssub, j::ssub] for i in range(ssub) for j in range(ssub)])
    return np.ascontiguousarray(Y, dtype=np.float32)


def _mean_of_views(views: list[np.ndarray]) -> np.ndarray:
    """Element-wise float32 mean of equally shaped arrays."""
    acc = np.array(views[0], dtype=np.float32, copy=True)
    for v in views[1:]:
        acc += v
    acc *= np.float32(1.0 / len(views))
    return acc


def upsample_images(
    A: np.ndarray, small: tuple[int, ...], dims: tuple[int, ...], ssub: int
) -> np.ndarray:
    """(P_small, K) footprints on the ``ssub`` grid -> (P, K) on the full grid (nearest + crop)."""
    if ssub == 1:
        return A
    K = A.shape[1]
    if K == 0:  # e.g. a patch without any neuron
        return np.zeros((int(np.prod(dims)), 0), dtype=A.dtype)
    imgs = A.T.reshape(K, *small)
    imgs = np.repeat(np.repeat(imgs, ssub, axis=-2), ssub, axis=-1)
    imgs = imgs[(slice(None),) + tuple(slice(0, d) for d in dims)]
    return np.ascontiguousarray(imgs.reshape(K, -1).T)


def upsample_time(C: np.ndarray, T: int, tsub: int) -> np.ndarray:
    """(K, T_small) traces -> (K, T) by linear interpolation of bin centres."""
    if tsub == 1 or C.shape[1] == T:
        return C
    Ts = C.shape[1]
    centres = np.minimum(np.arange(Ts) * tsub + (tsub - 1) / 2.0, T - 1)
    t = np.arange(T)
    out = np.empty((C.shape[0], T), np.float32)
    for k in range(C.shape[0]):
        out[k] = np.interp(t, centres, C[k])
    return out
