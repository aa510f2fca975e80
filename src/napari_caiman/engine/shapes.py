"""Shape metrics of footprints: whether a component is shaped like a cell.

Real two-photon data tempt CNMF into thin, scattered fragments over the
neuropil.  Three numbers per footprint tell them from somata (computed once,
with SNR and r-values, and thresholded by :func:`~.evaluation.apply_thresholds`):

``solidity``
    Area of the footprint cut at ``cut`` (20 %) of its maximum divided by the
    area of its convex hull (1 for a disc, ~0.5 for a crescent or a net).
``n_pieces``
    Connected pieces (4- / 6-connectivity: pixels sharing a face) of that cut that hold at least
    ``min_piece`` (10 %) of its pixels: 1 for a cell.
``area_ratio``
    Pixels of the cut divided by the area of a disc (ellipse / ellipsoid) of
    radius ``2 gSig``, the expected soma area; sprawling footprints have > 4.
    ``area_px`` holds the same area in pixels (the area floor's one-pixel allowance where the
    floor is a few pixels, :func:`~.evaluation.apply_thresholds`).
``elongation``
    Ratio of the principal axes (square root of the eigenvalue ratio of the
    covariance of the cut's pixel coordinates, each pixel counted as a unit
    square, coordinates divided by ``gSig`` per axis so that an anisotropic
    gSig is round): 1 for a disc, ~1.2-2 for somata on real two-photon data,
    > 2.5 for the streaks a CNMF component makes of a dendrite, a blood
    vessel wall or the dark edge of the field of view.

Volumes (Z, Y, X): pieces are counted in 3D; solidity and area are taken on
the maximum projection over Z (a few planes make a degenerate 3D hull), area
relative to the ellipse of the (y, x) radii.

:func:`junk_mask` is the rule of issue 14 used by ``bench/bench_realdata.py``:
a footprint is junk when its cut has more than one piece, solidity < 0.6, or
an area above four expected soma areas.  :func:`match_footprints` scores found
footprints against reference ROIs by footprint overlap (cosine similarity of
the footprints cut at 10 % of their maxima, one-to-one Hungarian assignment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage, sparse

__all__ = [
    "ShapeMetrics",
    "shape_metrics",
    "footprint_shape",
    "footprint_elongation",
    "junk_mask",
    "match_footprints",
    "expected_area",
    "footprint_images",
    "cut_areas",
]


@dataclass
class ShapeMetrics:
    """Per-component shape numbers (see the module docstring)."""

    solidity: np.ndarray
    n_pieces: np.ndarray
    area_ratio: np.ndarray
    elongation: np.ndarray | None = None
    area_px: np.ndarray | None = None


def expected_area(gSig: Any, nd: int) -> float:
    """Return the area (pixels) of the (y, x) ellipse of radii ``2 gSig``.

    ``gSig`` in CaImAn order (rows, cols[, planes]): the expected soma area in a frame.
    """
    g = np.atleast_1d(np.asarray(gSig, dtype=float))
    if g.size == 1:
        g = np.repeat(g, 2)
    return float(np.pi * (2 * g[0]) * (2 * g[1]))


def _convex_area(mask2d: np.ndarray) -> float:
    """Pixels of the convex hull of a 2D mask (scikit-image)."""
    from skimage.morphology import convex_hull_image

    if mask2d.sum() < 3:
        return float(mask2d.sum())
    try:
        return float(convex_hull_image(mask2d).sum())
    except Exception:  # collinear points: the hull is the set itself
        return float(mask2d.sum())


def footprint_shape(
    img: np.ndarray, *, cut: float = 0.2, min_piece: float = 0.1
) -> tuple[float, int, int]:
    """``(solidity, n_pieces, area)`` of one footprint image (2D or 3D, any size)."""
    img = np.asarray(img, dtype=np.float64)
    m = img.max() if img.size else 0.0
    if m <= 0:
        return 0.0, 0, 0
    mask = img >= cut * m
    lab, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(img.ndim, 1))
    if n > 1:
        counts = np.bincount(lab.ravel())[1:]
        pieces = int((counts >= min_piece * counts.sum()).sum())
    else:
        pieces = int(n)
    flat = mask if img.ndim == 2 else mask.any(axis=0)
    area = int(flat.sum())
    hull = _convex_area(flat)  # type: ignore[arg-type]
    solidity = area / hull if hull > 0 else 0.0
    return float(min(1.0, solidity)), pieces, area


def cut_areas(A: Any, dims: tuple[int, ...], *, cut: float = 0.2) -> np.ndarray:
    """Pixels of each footprint cut at ``cut`` of its maximum (3D: of its maximum projection over Z).

    The ``area`` of :func:`footprint_shape` without the hull: e.g. ``area_px`` for a file saved
    without it.
    """
    K = sparse.csc_matrix(A).shape[1]
    out = np.zeros(K)
    for k, img, _ in footprint_images(A, dims):
        m = img.max() if img.size else 0.0
        if m > 0:
            mask = img >= cut * m
            out[k] = (mask if img.ndim == 2 else mask.any(axis=0)).sum()
    return out


def footprint_elongation(img: np.ndarray, scale: Any = (1.0, 1.0), *, cut: float = 0.2) -> float:
    """Return the principal-axis ratio of one footprint image cut at ``cut`` of its maximum.

    3D: its maximum projection over Z. ``scale`` (rows, cols) divides the coordinates (gSig: an
    ellipse of those radii gives 1).
    """
    img = np.asarray(img, dtype=np.float64)
    m = img.max() if img.size else 0.0
    if m <= 0:
        return 1.0
    mask = img >= cut * m
    flat = mask if img.ndim == 2 else mask.any(axis=0)
    yy, xx = np.nonzero(flat)
    sy, sx = (float(v) for v in scale)
    pts = np.stack([yy / sy, xx / sx])
    cov = np.cov(pts) if yy.size > 1 else np.zeros((2, 2))
    cov = cov + np.diag([1.0 / (12 * sy * sy), 1.0 / (12 * sx * sx)])  # each pixel a unit square
    ev = np.linalg.eigvalsh(cov)
    return float(np.sqrt(ev[1] / max(ev[0], 1e-12)))


def footprint_images(A: Any, dims: tuple[int, ...], idx: Any = None):
    """Yield ``(k, image, offset)`` of the bounding box of each footprint's support.

    ``A`` is (pixels, K) in CaImAn order (``Estimates.A``); ``dims`` in array order.
    """
    from .cnmf.estimates import caiman_permutation

    A = sparse.csc_matrix(A)
    perm = caiman_permutation(tuple(dims))  # CaImAn row -> C-order pixel
    ks = range(A.shape[1]) if idx is None else np.asarray(idx, int)
    for k in ks:
        lo_, hi_ = A.indptr[k], A.indptr[k + 1]
        rows, vals = A.indices[lo_:hi_], A.data[lo_:hi_]
        pos = vals > 0
        rows, vals = rows[pos], vals[pos]
        if rows.size == 0:
            yield int(k), np.zeros((1,) * len(dims)), (0,) * len(dims)
            continue
        coords = np.array(np.unravel_index(perm[rows], dims))
        lo = coords.min(axis=1)
        hi = coords.max(axis=1) + 1
        img = np.zeros(tuple(hi - lo), np.float64)
        img[tuple(coords - lo[:, None])] = vals
        yield int(k), img, tuple(int(v) for v in lo)


def shape_metrics(
    A: Any, dims: tuple[int, ...], gSig: Any, *, cut: float = 0.2, min_piece: float = 0.1
) -> ShapeMetrics:
    """Shape metrics of every footprint of ``A`` (pixels, K; CaImAn order).

    ``gSig`` in CaImAn order (rows, cols[, planes]); 2D and 3D.
    """
    K = sparse.csc_matrix(A).shape[1]
    sol = np.zeros(K)
    pcs = np.zeros(K, np.int64)
    area = np.zeros(K)
    elong = np.ones(K)
    g = np.atleast_1d(np.asarray(gSig, dtype=float))
    scale = (g[0], g[1]) if g.size > 1 else (g[0], g[0])  # rows, cols
    for k, img, _ in footprint_images(A, dims):
        sol[k], pcs[k], area[k] = footprint_shape(img, cut=cut, min_piece=min_piece)
        elong[k] = footprint_elongation(img, scale, cut=cut)
    return ShapeMetrics(
        solidity=sol,
        n_pieces=pcs,
        area_ratio=area / expected_area(gSig, len(dims)),
        elongation=elong,
        area_px=area,
    )


def junk_mask(
    shape: ShapeMetrics,
    *,
    min_solidity: float = 0.6,
    max_pieces: int = 1,
    max_area_ratio: float = 4.0,
) -> np.ndarray:
    """Issue 14's junk rule: fragmented, non-convex or sprawling footprints."""
    return (
        (shape.n_pieces > max_pieces)
        | (shape.solidity < min_solidity)
        | (shape.area_ratio > max_area_ratio)
    )


def _cut_matrix(M: np.ndarray, cut: float) -> np.ndarray:
    """(K, P) footprints with values below ``cut`` x their max set to 0, unit norm."""
    M = np.asarray(M, dtype=np.float64).copy()
    mx = M.max(axis=1, keepdims=True) if M.size else np.zeros((M.shape[0], 1))
    M[M < cut * mx] = 0
    nrm = np.linalg.norm(M, axis=1, keepdims=True)
    nrm[nrm == 0] = 1
    return M / nrm


def match_footprints(
    found: np.ndarray, truth: np.ndarray, *, cut: float = 0.1, min_cos: float = 0.5
) -> dict[str, Any]:
    """One-to-one matching of footprints by overlap.

    ``found`` (K, *frame) and ``truth`` (N, *frame) images (masks or weights).
    Each is cut at ``cut`` of its maximum; pairs with cosine similarity >=
    ``min_cos`` are assigned by the Hungarian algorithm (maximum total
    similarity).  Returns counts, precision, recall, F1 and the matched pairs.
    """
    from scipy.optimize import linear_sum_assignment

    K, N = len(found), len(truth)
    out: dict[str, Any] = {
        "n": K,
        "n_truth": N,
        "matched": 0,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "pairs": np.zeros((0, 2), int),
    }
    if K == 0 or N == 0:
        return out
    F = sparse.csr_matrix(_cut_matrix(np.asarray(found).reshape(K, -1), cut))
    G = sparse.csr_matrix(_cut_matrix(np.asarray(truth).reshape(N, -1), cut))
    S = (G @ F.T).toarray()
    S[S < min_cos] = 0
    r, c = linear_sum_assignment(-S)
    ok = S[r, c] >= min_cos
    m = int(ok.sum())
    p, rc = m / K, m / N
    out.update(
        matched=m,
        precision=p,
        recall=rc,
        f1=0.0 if m == 0 else 2 * p * rc / (p + rc),
        pairs=np.stack([c[ok], r[ok]], 1),
    )
    return out
