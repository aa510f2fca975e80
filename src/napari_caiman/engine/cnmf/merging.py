"""Merging of components that are one neuron.

Two components are linked when their footprints overlap (share a pixel) and
their traces correlate above ``merge_thr``; each connected group is replaced
by the rank-1 non-negative factorization of its combined activity
``sum_k a_k (c_k + YrA_k)`` (computed from the factors, never the movie).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

__all__ = ["find_merges", "merge_components"]


def find_merges(A: np.ndarray, C: np.ndarray, merge_thr: float) -> list[np.ndarray]:
    """Return the groups (index arrays, size >= 2) of components to merge."""
    K = A.shape[1]
    if K < 2:
        return []
    Ab = sparse.csc_matrix(A > 0, dtype=np.float32)
    overlap = (Ab.T @ Ab).toarray() > 0
    Cc = C - C.mean(axis=1, keepdims=True)
    nrm = np.sqrt((Cc**2).sum(axis=1))
    nrm[nrm == 0] = np.inf
    corr = (Cc @ Cc.T) / np.outer(nrm, nrm)
    link = overlap & (corr > merge_thr)
    np.fill_diagonal(link, False)
    if not link.any():
        return []
    n, lab = connected_components(sparse.csr_matrix(link), directed=False)
    groups = []
    for g in range(n):
        idx = np.flatnonzero(lab == g)
        if idx.size > 1:
            groups.append(idx)
    return groups


def _rank1(Ag: np.ndarray, Cg: np.ndarray, n_iter: int):
    """Compute the rank-1 non-negative factorization ``a c`` of ``Ag Cg`` (the group's activity).

    Started from the footprint-energy-weighted traces.
    """
    w = np.sqrt((Ag**2).sum(axis=0))
    c = np.maximum(w @ Cg, 0) / max(w.sum(), 1e-12)
    a = Ag @ (Cg @ c) / max(float(c @ c), 1e-12)
    for _ in range(n_iter):
        cc = float(c @ c)
        if cc <= 0:
            break
        a = np.maximum(Ag @ (Cg @ c), 0) / cc
        aa = float(a @ a)
        if aa <= 0:
            break
        c = np.maximum(Cg.T @ (Ag.T @ a), 0) / aa
    return a, c


def _merge_sparse(A: sparse.csc_matrix, C: np.ndarray, groups, YrA, n_iter: int):
    """:func:`merge_components` on sparse footprints (pixels x K CSC); returns CSC."""
    C = C.copy()
    cols = {
        k: (A.indices[A.indptr[k] : A.indptr[k + 1]], A.data[A.indptr[k] : A.indptr[k + 1]])
        for k in range(A.shape[1])
    }
    drop = []
    for idx in groups:
        Asub = A[:, idx]
        rows = np.unique(Asub.indices[Asub.data > 0])
        Ag = Asub[rows].toarray()
        Cg = C[idx] + (YrA[idx] if YrA is not None else 0)
        a, c = _rank1(Ag, Cg, n_iter)
        nz = a != 0
        cols[int(idx[0])] = (rows[nz], a[nz].astype(A.dtype))
        C[idx[0]] = c
        drop.extend(idx[1:].tolist())
    kept = np.setdiff1d(np.arange(A.shape[1]), drop)
    indptr = np.zeros(len(kept) + 1, np.int64)
    indptr[1:] = np.cumsum([cols[int(k)][0].size for k in kept])
    indices = (
        np.concatenate([cols[int(k)][0] for k in kept]) if len(kept) else np.zeros(0, np.int64)
    )
    data = np.concatenate([cols[int(k)][1] for k in kept]) if len(kept) else np.zeros(0, A.dtype)
    out = sparse.csc_matrix((data, indices, indptr), shape=(A.shape[0], len(kept)))
    out.sort_indices()
    return out, C[kept], groups, kept


def merge_components(
    A: np.ndarray, C: np.ndarray, merge_thr: float, YrA: np.ndarray | None = None, n_iter: int = 10
):
    """Merge correlated overlapping components.

    Returns ``(A, C, groups, kept)``: new arrays (merged components replace the
    first member of their group, the others are dropped), the merged groups
    (indices into the input) and the input index each output column came from.
    """
    groups = find_merges(A, C, merge_thr)
    if not groups:
        return A, C, [], np.arange(A.shape[1])
    if sparse.issparse(A):
        return _merge_sparse(sparse.csc_matrix(A), C, groups, YrA, n_iter)
    A = A.copy()
    C = C.copy()
    drop = []
    for idx in groups:
        Ag = A[:, idx]
        rows = np.flatnonzero((Ag > 0).any(axis=1))
        Ag = Ag[rows]
        Cg = C[idx] + (YrA[idx] if YrA is not None else 0)
        a, c = _rank1(Ag, Cg, n_iter)
        keep = idx[0]
        A[:, keep] = 0
        A[rows, keep] = a
        C[keep] = c
        drop.extend(idx[1:].tolist())
    kept = np.setdiff1d(np.arange(A.shape[1]), drop)
    return A[:, kept], C[kept], groups, kept
