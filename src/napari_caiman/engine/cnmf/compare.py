"""Compare found components with ground truth (tests, benchmarks).

Footprints are matched one-to-one by the Hungarian algorithm on their cosine
similarity; a pair counts as a match when the similarity is at least
``thr``.  Reported: precision, recall, F1 and the median correlation of the
matched traces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment

from .estimates import caiman_permutation

__all__ = ["MatchResult", "match_components"]


@dataclass
class MatchResult:
    """How found components match the true ones: counts, precision / recall / F1, the pairs."""

    n_true: int
    n_found: int
    n_matched: int
    precision: float
    recall: float
    f1: float
    median_trace_corr: float
    pairs: np.ndarray  # (n_matched, 2): (true index, found index)
    similarity: np.ndarray  # cosine of the matched footprints
    trace_corr: np.ndarray  # trace correlation of the matched pairs

    def __str__(self) -> str:
        """Return the counts and scores on one line."""
        return (
            f"found {self.n_found}, true {self.n_true}, matched {self.n_matched}: "
            f"P {self.precision:.3f} R {self.recall:.3f} F1 {self.f1:.3f}, "
            f"median trace corr {self.median_trace_corr:.3f}"
        )


def _rows(x, dims=None) -> sparse.csr_matrix:
    """Footprints as sparse rows (K, pixels in C order over the array-order frame).

    From Estimates or a (pixels, K) CaImAn-order matrix without making them dense (a volume's
    thousand footprints would be gigabytes), or from (K, *dims) images.
    """
    if hasattr(x, "A") and hasattr(x, "dims"):
        x, dims = x.A, x.dims
    if sparse.issparse(x):
        inv = np.argsort(caiman_permutation(tuple(int(d) for d in dims)))
        return sparse.csr_matrix(sparse.csc_matrix(x).T)[:, inv].astype(np.float64)
    images = np.asarray(x)
    return sparse.csr_matrix(images.reshape(images.shape[0], -1)).astype(np.float64)


def _unit_rows(M: sparse.csr_matrix) -> sparse.csr_matrix:
    norm = np.sqrt(np.asarray(M.multiply(M).sum(axis=1)).ravel())
    return sparse.diags(1.0 / np.maximum(norm, 1e-12)) @ M


def match_components(
    found, true_footprints, found_traces=None, true_traces=None, *, dims=None, thr: float = 0.5
) -> MatchResult:
    """Match found components to the truth.

    Parameters
    ----------
    found : Estimates, a (pixels, K) CaImAn-order matrix with ``dims`` (sparse stays
        sparse), or (K, *dims) footprint images (array order).
    true_footprints : (K_true, *dims) images (array order), or as ``found``.
    found_traces, true_traces : (K, T) traces; ``found.C`` is used for Estimates.
    thr : minimum footprint cosine similarity of a match.
    """
    if hasattr(found, "A") and hasattr(found, "dims") and found_traces is None:
        found_traces = found.C
    F = _rows(found, dims)
    G = _rows(true_footprints, dims)
    nf, nt = F.shape[0], G.shape[0]
    if nf == 0 or nt == 0:
        return MatchResult(
            nt, nf, 0, 0.0, 0.0, 0.0, float("nan"), np.zeros((0, 2), int), np.zeros(0), np.zeros(0)
        )
    sim = (_unit_rows(G) @ _unit_rows(F).T).toarray()  # (nt, nf) cosines
    r, c = linear_sum_assignment(-sim)
    ok = sim[r, c] >= thr
    pairs = np.stack([r[ok], c[ok]], axis=1)
    n = int(ok.sum())
    precision = n / nf
    recall = n / nt
    f1 = 0.0 if n == 0 else 2 * precision * recall / (precision + recall)
    corr = np.full(n, np.nan)
    if found_traces is not None and true_traces is not None and n:
        for i, (a, b) in enumerate(pairs):
            x = np.asarray(true_traces[a], float)
            y = np.asarray(found_traces[b], float)
            if x.std() > 0 and y.std() > 0:
                corr[i] = np.corrcoef(x, y)[0, 1]
    med = float(np.nanmedian(corr)) if n and np.isfinite(corr).any() else float("nan")
    return MatchResult(nt, nf, n, precision, recall, f1, med, pairs, sim[r[ok], c[ok]], corr)
