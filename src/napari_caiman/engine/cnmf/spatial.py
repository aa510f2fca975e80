"""Spatial update: non-negative footprints by block-coordinate HALS.

Given the traces ``H = [C; f]`` (K + nb, T), the sufficient statistics
``YH = Y H^T`` (pixels, K + nb) and ``HH = H H^T`` are all that is needed:
each footprint ``a_k`` solves a non-negative least-squares problem restricted
to its search region (its current support dilated by an ellipsoid of about
``gSig / 2``), cycled over components (Cichocki's HALS).  The background
``b`` has no restriction.  Footprints are then cleaned (``maxthr`` of the
maximum, ``nrgthr`` of the energy, largest connected piece) and empty ones
removed by the caller.
"""

from __future__ import annotations

import numpy as np

from ._shapes import clean_footprint, dilated_support

__all__ = ["hals_spatial", "search_regions", "clean_footprints"]


def hals_spatial(
    W: np.ndarray, YH: np.ndarray, HH: np.ndarray, regions: list, n_iter: int = 3
) -> np.ndarray:
    """HALS on the columns of ``W`` (pixels, n) in place.

    ``regions[k]`` is an index array (restricted support) or None (all pixels).
    """
    n = W.shape[1]
    for _ in range(n_iter):
        for k in range(n):
            d = HH[k, k]
            if d <= 0:
                continue
            idx = regions[k]
            if idx is None:
                upd = W[:, k] + (YH[:, k] - W @ HH[:, k]) / d
                W[:, k] = np.maximum(upd, 0)
            elif idx.size:
                upd = W[idx, k] + (YH[idx, k] - W[idx] @ HH[:, k]) / d
                W[idx, k] = np.maximum(upd, 0)
    return W


def search_regions(A: np.ndarray, dims: tuple[int, ...], se: np.ndarray) -> list:
    """Dilated supports of the columns of ``A`` (pixels, K)."""
    return [dilated_support(A[:, k], dims, se) for k in range(A.shape[1])]


def restrict(A: np.ndarray, regions: list) -> None:
    """Zero every column of ``A`` outside its region (in place)."""
    for k, idx in enumerate(regions):
        if idx is None:
            continue
        keep = np.zeros(A.shape[0], bool)
        keep[idx] = True
        A[~keep, k] = 0


def clean_footprints(
    A: np.ndarray, dims, maxthr: float, nrgthr: float, extract_cc: bool, **kw
) -> np.ndarray:
    """Apply :func:`clean_footprint` to every column (in place); returns A.

    ``kw``: ``medw``, ``thr_method``, ``se``, ``ss``.
    """
    for k in range(A.shape[1]):
        A[:, k] = clean_footprint(A[:, k], dims, maxthr, nrgthr, extract_cc, **kw)
    return A
