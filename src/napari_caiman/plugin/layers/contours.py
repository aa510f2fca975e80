"""Sparse footprints -> traced contours (no Qt, no viewer), the primitives of the layers.

Everything here works on the sparse footprint matrix ``A`` (pixels x K,
CaImAn pixel order) directly: no dense K x pixels array is ever made.

* :func:`contours` — one polygon per component (per plane in 3D) from
  ``cv2.findContours`` on the component's bounding box, at CaImAn's energy
  threshold;
* :func:`closed_paths` — polygons as closed napari paths;
* ``_entries`` / ``_support`` / ``_energy_mask`` — the non-zeros of ``A``,
  each component's support and its energy contour's pixels (shared with
  :mod:`.cnmf` and :mod:`.outlines`).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from scipy import sparse

from ...engine.cnmf.estimates import caiman_permutation

#: Resolution of the energy threshold of :func:`contours` (levels per peak).
ENERGY_BINS = 256

# ----------------------------------------------------------------------------- sparse helpers


def _csc(A: Any) -> sparse.csc_matrix:
    """Return ``A`` as CSC with sorted indices (no copy when it already is)."""
    A = A if sparse.issparse(A) and A.format == "csc" else sparse.csc_matrix(A)
    if not A.has_sorted_indices:
        A = A.sorted_indices()
    return A


def _entries(estimates: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Non-zeros of ``A`` as (component, C-order pixel, value) and K.

    C-order pixel = index into ``frame.ravel()`` of the array-order frame.
    """
    A = _csc(estimates.A)
    K = A.shape[1]
    comp = np.repeat(np.arange(K, dtype=np.int32), np.diff(A.indptr))
    perm = caiman_permutation(estimates.dims)
    return comp, perm[A.indices], np.asarray(A.data, dtype=np.float32), K


def _support(
    comp: np.ndarray, values: np.ndarray, K: int, fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mask of entries above ``fraction`` of their component's peak, and each entry's value relative to that peak."""
    peak = np.zeros(K, np.float32)
    np.maximum.at(peak, comp, values)
    rel = values / np.maximum(peak[comp], np.finfo(np.float32).tiny)
    return (rel > fraction) & (values > 0), rel


def _energy_mask(
    comp: np.ndarray, values: np.ndarray, K: int, thr: float, bins: int = ENERGY_BINS
) -> np.ndarray:
    """Per component, the largest pixels holding ``thr`` of its energy (sum of squares).

    CaImAn's ``thr_method='nrg'``.

    Sorting millions of values per component is the slow way; instead each
    component's energy is histogrammed over ``bins`` levels of value / peak
    and cut at the level where the energy above reaches ``thr``, so the
    outline level is exact to ``1 / bins`` of the peak.
    """
    inside, rel = _support(comp, values, K, 0.0)
    level = np.minimum((rel * bins).astype(np.int64), bins - 1)
    sq = values.astype(np.float64) ** 2
    hist = np.bincount(comp.astype(np.int64) * bins + level, weights=sq, minlength=K * bins)
    above = np.cumsum(hist.reshape(K, bins)[:, ::-1], axis=1)[:, ::-1]  # energy at >= level
    cut = (above >= thr * above[:, :1]).sum(axis=1) - 1
    return inside & (level >= cut[comp])


# ----------------------------------------------------------------------------- contours


def closed_paths(polygons: list[np.ndarray]) -> list[np.ndarray]:
    """Each polygon with its first vertex repeated at the end (a closed napari path)."""
    return [np.concatenate([p, p[:1]]) for p in polygons]


def contours(
    estimates: Any, thr: float = 0.9, thr_method: str = "nrg", *, simplify: bool = True
) -> tuple[list[np.ndarray], np.ndarray]:
    """Outline of every component, one polygon per component and plane.

    Parameters
    ----------
    estimates : Estimates
        Needs ``A`` (pixels x K, CaImAn order) and ``dims`` (array order).
    thr : float
        ``thr_method='nrg'``: fraction of the footprint's energy (sum of
        squares) inside the outline (CaImAn's default 0.9);
        ``thr_method='max'``: outline at ``thr`` times the footprint's peak.
    thr_method : {'nrg', 'max'}
    simplify : bool
        Straighten the outline: drop collinear vertices (OpenCV's
        ``CHAIN_APPROX_SIMPLE``) and replace pixel staircases by straight
        segments at most 0.75 px away (``approxPolyDP``), so napari has fewer
        vertices to draw. False keeps every boundary pixel corner.

    Returns
    -------
    polygons : list of (n, 2) or (n, 3) float arrays
        Vertices in pixel coordinates, array order ((z,) y, x): each polygon
        runs along the outer edges of the boundary pixels, so a single pixel
        gives a unit square. 3D footprints give one polygon per z plane they
        cover, with a constant z column. Only the largest connected piece of
        a component on a plane is outlined.
    component : (n_polygons,) int array
        Component index (column of ``A``, 0-based) of each polygon.

    Raises
    ------
    ValueError
        Unknown ``thr_method`` or ``thr`` outside (0, 1].

    Examples
    --------
    >>> polys, comp = contours(estimates)          # doctest: +SKIP
    >>> polys[0][:2], comp[0]                      # doctest: +SKIP
    """
    if thr_method not in ("nrg", "max"):
        raise ValueError(f"thr_method must be 'nrg' or 'max', got {thr_method!r}")
    if not 0 < thr <= 1:
        raise ValueError(f"thr must be in (0, 1], got {thr!r}")
    dims = tuple(int(d) for d in estimates.dims)
    comp, pix, values, K = _entries(estimates)
    if thr_method == "nrg":
        keep = _energy_mask(comp, values, K, thr)
    else:
        keep, rel = _support(comp, values, K, 0.0)
        keep &= rel >= thr
    comp, pix = comp[keep], pix[keep]
    nd = len(dims)
    coords = np.unravel_index(pix, dims)  # ((z,) y, x)
    # one group per component (2D) or per (component, plane) (3D), sorted
    if nd == 3:
        group = comp.astype(np.int64) * dims[0] + coords[0]
        order = np.argsort(group, kind="stable")
        group, ys, xs = group[order], coords[1][order], coords[2][order]
    else:  # CSC entries are already grouped by component
        group, ys, xs = comp.astype(np.int64), coords[0], coords[1]
    if len(group) == 0:
        return [], np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    counts = np.diff(np.r_[starts, len(group)])
    y0, x0 = np.minimum.reduceat(ys, starts), np.minimum.reduceat(xs, starts)
    heights = 2 * (np.maximum.reduceat(ys, starts) - y0 + 1) + 2
    widths = 2 * (np.maximum.reduceat(xs, starts) - x0 + 1) + 2
    gid = group[starts]

    # Every group's box is painted at 2x resolution (pixel (y, x) -> a 2x2
    # block), with a 1-pixel empty border, into one shared canvas (shelf
    # packing, tallest first), all at once. OpenCV then traces each box
    # through a view: the only per-component Python work is one call. At 2x
    # the traced boundary pixels sit half a pixel inside the outer edge, so
    # the polygon follows the footprint's outer pixel edges (within 1/4 px)
    # and a single pixel gives a square instead of a point.
    oy, ox, canvas_shape = _shelf_pack(heights, widths)
    canvas = np.zeros(canvas_shape, np.uint8)
    g_of = np.repeat(np.arange(len(starts)), counts)
    cy = oy[g_of] + 2 * (ys - y0[g_of]) + 1
    cx = ox[g_of] + 2 * (xs - x0[g_of]) + 1
    for dy in (0, 1):
        for dx in (0, 1):
            canvas[cy + dy, cx + dx] = 1
    mode = cv2.CHAIN_APPROX_SIMPLE if simplify else cv2.CHAIN_APPROX_NONE
    traced: list[np.ndarray] = []
    for top, left, h, w in zip(
        oy.tolist(), ox.tolist(), heights.tolist(), widths.tolist(), strict=True
    ):
        found, _ = cv2.findContours(canvas[top : top + h, left : left + w], cv2.RETR_EXTERNAL, mode)
        c = max(found, key=len) if len(found) > 1 else found[0]
        if simplify and len(c) > 8:
            # straighten the pixel staircase (at most 0.75 px off the edges)
            smooth = cv2.approxPolyDP(c, 1.5, True)
            c = smooth if len(smooth) >= 4 else c
        traced.append(c)
    lengths = np.fromiter((len(c) for c in traced), np.int64, len(traced))
    xy = np.concatenate(traced).reshape(-1, 2).astype(np.float32)  # (x, y) in the 2x box
    vertices = np.empty((len(xy), nd), np.float32)
    vertices[:, -2] = (xy[:, 1] - 1.5) / 2 + np.repeat(y0, lengths)
    vertices[:, -1] = (xy[:, 0] - 1.5) / 2 + np.repeat(x0, lengths)
    if nd == 3:
        vertices[:, 0] = np.repeat(gid % dims[0], lengths)
        owner = gid // dims[0]
    else:
        owner = gid
    polygons = np.split(vertices, np.cumsum(lengths)[:-1])
    return polygons, owner.astype(np.int64)


def _shelf_pack(
    heights: np.ndarray, widths: np.ndarray, canvas_width: int = 4096
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Place boxes on shelves (tallest first); returns (top, left, canvas shape)."""
    canvas_width = max(canvas_width, int(widths.max()))
    top = np.zeros(len(heights), np.int64)
    left = np.zeros(len(heights), np.int64)
    y = x = shelf = 0
    order = np.argsort(-heights, kind="stable")
    for i, h, w in zip(
        order.tolist(), heights[order].tolist(), widths[order].tolist(), strict=True
    ):
        if x + w > canvas_width:
            y, x, shelf = y + shelf, 0, 0
        top[i], left[i] = y, x
        x += w
        shelf = max(shelf, h)
    return top, left, (y + shelf, canvas_width)
