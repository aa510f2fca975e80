"""Anatomical seeding: somata found in a summary image (mean / max / correlation).

Human annotators mark every soma they see in the mean image, including cells
that never fire during a recording; an activity-based initialization cannot
find those.  :func:`detect_somata` finds round, soma-sized objects in an image
with scikit-image / SciPy only:

1. flatten: subtract a wide Gaussian (``4 gSig``) and divide by the local
   standard deviation of the rest (so dim and bright regions count alike);
2. blob response: the negative Laplacian of Gaussian at ``sigma = gSig /
   sqrt(2)`` (best for discs of radius ``gSig``; scale-normalized), whose
   local maxima at least ``gSig`` apart and above ``thr`` are candidates;
3. segmentation of each candidate in a window of radius ``2 gSig``: the
   (lightly smoothed) flattened image above the midpoint between the local
   background and the peak, the connected piece holding the peak, holes
   filled (a ring of GCaMP around a dark nucleus becomes a disc), kept if it
   is soma-like (area between a disc of radius ``gSig / 2`` and one of
   ``2 gSig``, solidity >= 0.7).

:func:`cellpose_somata` uses Cellpose instead when it is installed (optional).
Volumes (Z, Y, X) are searched plane by plane.  The masks serve as seeds
(``Ain``) of CNMF alone (``seed_anatomy='only'``) or together with the
activity-based components (``seed_anatomy=True``): see :mod:`.fit`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage, sparse

__all__ = ["detect_somata", "cellpose_somata", "flatten_image", "merge_seeds"]


def flatten_image(img: np.ndarray, gSig: float) -> np.ndarray:
    """High-passed, locally contrast-normalized 2D image."""
    img = np.asarray(img, dtype=np.float64)
    img = np.where(np.isfinite(img), img, np.nanmedian(img) if np.isfinite(img).any() else 0.0)
    hp = img - ndimage.gaussian_filter(img, 4 * gSig, mode="reflect")
    loc = np.sqrt(ndimage.gaussian_filter(hp**2, 4 * gSig, mode="reflect"))
    scale = np.maximum(loc, 1e-6 * max(float(loc.max()), 1e-12))
    return hp / scale


def _solidity(mask: np.ndarray) -> float:
    from skimage.morphology import convex_hull_image

    n = int(mask.sum())
    if n < 3:
        return 0.0
    try:
        return n / max(int(convex_hull_image(mask).sum()), 1)
    except Exception:
        return 0.0


def _detect_2d(img: np.ndarray, g: float, thr: float, min_solidity: float) -> tuple[list, list]:
    from skimage.feature import peak_local_max

    z = flatten_image(img, g)
    sigma = g / np.sqrt(2)
    resp = -ndimage.gaussian_laplace(z, sigma, mode="reflect") * sigma**2
    sm = ndimage.gaussian_filter(z, max(0.5, g / 4), mode="reflect")
    h, w = z.shape
    R = int(np.ceil(2 * g))
    pk = peak_local_max(
        resp,
        min_distance=max(1, int(round(g))),
        threshold_abs=thr,
        exclude_border=max(1, int(g // 2)),
    )
    a_min, a_max = np.pi * (g / 2) ** 2, np.pi * (2 * g) ** 2
    yy, xx = np.mgrid[-R : R + 1, -R : R + 1]
    disc = yy**2 + xx**2 <= R**2
    masks, scores = [], []
    for y, x in pk:
        y0, y1, x0, x1 = max(0, y - R), min(h, y + R + 1), max(0, x - R), min(w, x + R + 1)
        win = sm[y0:y1, x0:x1]
        dwin = disc[y0 - (y - R) : y1 - (y - R), x0 - (x - R) : x1 - (x - R)]
        bg = np.percentile(win[dwin], 20)
        peak = sm[y, x]
        if peak <= bg:
            continue
        bw = (win >= 0.5 * (bg + peak)) & dwin
        lab, _ = ndimage.label(bw)
        lid = lab[y - y0, x - x0]
        if lid == 0:
            continue
        m = ndimage.binary_fill_holes(lab == lid)
        area = int(m.sum())
        if not (a_min <= area <= a_max) or _solidity(m) < min_solidity:
            continue
        full = np.zeros((h, w), bool)
        full[y0:y1, x0:x1] = m
        masks.append(full)
        scores.append(float(resp[y, x]))
    return masks, scores


def detect_somata(
    image: np.ndarray, gSig: Any, *, thr: float = 1.0, min_solidity: float = 0.7
) -> tuple[np.ndarray, np.ndarray]:
    """Soma masks in a summary image ((Y, X) or (Z, Y, X), array order).

    ``gSig``: expected half-size of a neuron, per axis in array order (the
    (y, x) values are used; their mean for anisotropic ones).  ``thr``: the
    minimum blob response (in local standard deviations).  Returns
    ``(masks (K, *image.shape) bool, scores (K,))`` sorted by decreasing score.
    """
    image = np.asarray(image, dtype=np.float64)
    g = float(np.mean(np.atleast_1d(gSig)[-2:]))
    if image.ndim == 2:
        masks, scores = _detect_2d(image, g, thr, min_solidity)
        out = np.array(masks, bool).reshape(len(masks), *image.shape)
    elif image.ndim == 3:
        out_l, scores = [], []
        for zi in range(image.shape[0]):
            ms, sc = _detect_2d(image[zi], g, thr, min_solidity)
            for m in ms:
                vol = np.zeros(image.shape, bool)
                vol[zi] = m
                out_l.append(vol)
            scores += sc
        out = np.array(out_l, bool).reshape(len(out_l), *image.shape)
    else:
        raise ValueError(f"expected a 2D or 3D image, got shape {image.shape}")
    sc = np.asarray(scores, float)  # type: ignore[assignment]
    order = np.argsort(-sc)  # type: ignore[operator]
    return out[order], sc[order]


def cellpose_somata(image: np.ndarray, gSig: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Soma masks from Cellpose (``cyto`` model) when it is installed, else None (2D only)."""
    try:
        from cellpose import models  # type: ignore[import-not-found]
    except Exception:
        return None
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        return None
    g = float(np.mean(np.atleast_1d(gSig)[-2:]))
    model = models.Cellpose(model_type="cyto")
    labels = model.eval(image, diameter=4 * g, channels=[0, 0])[0]
    ids = np.unique(labels)
    ids = ids[ids > 0]
    masks = np.array([labels == i for i in ids], bool).reshape(len(ids), *image.shape)
    return masks, np.ones(len(ids))


def merge_seeds(A: np.ndarray, masks: np.ndarray, max_overlap: float = 0.3) -> np.ndarray:
    """Return the indices of ``masks`` (K2, P) that overlap neither the footprints ``A`` (P, K) nor each other.

    Overlap: the fraction of a mask's pixels inside a footprint (cut at 20 % of its maximum) (or an
    earlier mask) stays below ``max_overlap``.
    """
    if len(masks) == 0:
        return np.zeros(0, int)
    M = np.asarray(masks, bool).reshape(len(masks), -1)
    if sparse.issparse(A):  # CSC footprints: pixels of any footprint at >= 20 % of its maximum
        A = sparse.csc_matrix(A)
        covered = np.zeros(M.shape[1], bool)
        if A.nnz:  # type: ignore[attr-defined]
            col = np.repeat(np.arange(A.shape[1]), np.diff(A.indptr))  # type: ignore[attr-defined]
            mx = np.zeros(A.shape[1])
            np.maximum.at(mx, col, A.data)
            covered[A.indices[(A.data >= 0.2 * np.maximum(mx[col], 1e-30)) & (A.data > 0)]] = True  # type: ignore[attr-defined, operator]
    elif np.asarray(A).size:
        A = np.asarray(A)
        covered = (A >= 0.2 * np.maximum(A.max(axis=0, keepdims=True), 1e-30)).any(axis=1) & (
            A > 0
        ).any(axis=1)
    else:
        covered = np.zeros(M.shape[1], bool)
    keep = []
    for i, m in enumerate(M):
        n = m.sum()
        if n == 0:
            continue
        if (m & covered).sum() / n < max_overlap:
            keep.append(i)
            covered = covered | m
    return np.asarray(keep, int)
