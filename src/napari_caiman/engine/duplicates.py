"""Duplicates: components that are a part of a stronger component's cell.

CNMF with patches can leave a weak second component on a cell: a fragment
that lies mostly inside the cell's footprint and carries a noisy copy of its
activity (on the synthetic 256 x 256 benchmark: half to two thirds of its
footprint inside the true component's, trace correlation 0.65-0.68, SNR 1-1.5
against 7-8).  Its r-value is high for the same reason as the cell's (the cell
fires under it), so the SNR / r-value tests cannot tell it from a neuron.
CaImAn's ``remove_duplicates`` (``detect_duplicates_and_subsets``) drops
footprints that are subsets of others; here a subset must also share the
activity, so that overlapping neighbours with their own activity stay.

For every component ``i`` :func:`duplicate_scores` finds the stronger (higher
SNR) component ``j`` maximizing

    score(i, j) = min(overlap(i in j), corr(c_i, c_j))

where ``overlap(i in j)`` is the fraction of the pixels of ``i``'s footprint
cut at ``cut`` (20 %) of its maximum that are also in ``j``'s cut footprint,
and ``corr`` is the Pearson correlation of their traces ``C``.  The
evaluation (:func:`~.evaluation.apply_thresholds`, ``max_duplicate``) rejects
``i`` when ``score > max_duplicate`` and ``j`` is accepted, so a duplicate
goes only when the cell it duplicates is kept.  Different neurons that
overlap have their own activity: on the synthetic benchmark their largest
score is 0.39.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

__all__ = ["duplicate_scores", "duplicate_mask"]


def _cut_masks(A: Any, cut: float) -> sparse.csc_matrix:
    """(pixels, K) boolean masks of the footprints cut at ``cut`` of their maxima."""
    # never in place: a converted matrix shares the caller's index arrays
    A = sparse.csc_matrix(A)
    K = A.shape[1]
    data = np.asarray(A.data, np.float64)
    col = np.repeat(np.arange(K), np.diff(A.indptr))
    mx = np.zeros(K)
    if data.size:
        np.maximum.at(mx, col, data)
    keep = (data > 0) & (data >= cut * mx[col])
    return sparse.csc_matrix(
        (np.ones(int(keep.sum())), (A.indices[keep], col[keep])), shape=A.shape
    )


def duplicate_scores(
    A: Any, C: Any, snr: Any, *, cut: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """``(score, of)`` per component.

    The largest ``min(overlap, corr)`` with a stronger component and that component's index (-1 and
    0 when none).

    ``A`` (pixels, K) footprints in any pixel order, ``C`` (K, T) traces,
    ``snr`` (K,) the strength that orders them (ties: the lower index is stronger).
    """
    M = _cut_masks(A, cut)
    K = M.shape[1]
    score = np.zeros(K)
    of = np.full(K, -1, np.int64)
    if K < 2:
        return score, of
    inter = sparse.coo_matrix(M.T @ M)
    size = np.asarray(M.sum(axis=0)).ravel()
    i, j, n = inter.row, inter.col, inter.data
    sel = i != j
    i, j, n = i[sel], j[sel], n[sel]
    snr = np.nan_to_num(np.asarray(snr, np.float64).ravel(), nan=-np.inf)
    stronger = (snr[j] > snr[i]) | ((snr[j] == snr[i]) & (j < i))
    i, j, n = i[stronger], j[stronger], n[stronger]
    if i.size == 0:
        return score, of
    overlap = n / np.maximum(size[i], 1)
    Cc = np.asarray(C, np.float64)
    Cc = Cc - Cc.mean(axis=1, keepdims=True)
    nrm = np.linalg.norm(Cc, axis=1)
    nrm[nrm == 0] = np.inf
    Cc /= nrm[:, None]
    corr = np.einsum("ij,ij->i", Cc[i], Cc[j])
    s = np.minimum(overlap, corr)
    order = np.lexsort((-s, i))  # per i, the best score first
    i, j, s = i[order], j[order], s[order]
    first = np.r_[True, i[1:] != i[:-1]]
    best = first & (s > 0)
    score[i[best]] = s[best]
    of[i[best]] = j[best]
    return score, of


def duplicate_mask(
    score: np.ndarray, of: np.ndarray, accepted: np.ndarray, max_duplicate: float, snr: np.ndarray
) -> np.ndarray:
    """Return the (K,) bool mask of accepted components that duplicate a stronger accepted one.

    A duplicate scores above ``max_duplicate``.
    ``accepted`` (K,) bool is the decision of the other tests, ``snr`` the strength
    :func:`duplicate_scores` used: components are decided from the strongest down, so a partner is
    final before the components it holds are judged.
    """
    score = np.asarray(score, np.float64)
    of = np.asarray(of, np.int64)
    acc = np.asarray(accepted, bool).copy()
    dup = np.zeros(score.size, bool)
    cand = np.flatnonzero((score > max_duplicate) & (of >= 0) & acc)
    strength = np.nan_to_num(np.asarray(snr, np.float64).ravel(), nan=-np.inf)
    for k in cand[np.lexsort((cand, -strength[cand]))]:
        if acc[of[k]]:
            dup[k] = True
            acc[k] = False
    return dup
