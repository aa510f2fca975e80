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

from .estimates import pixels_to_images

__all__ = ["MatchResult", "match_components"]


@dataclass
class MatchResult:
    n_true: int
    n_found: int
    n_matched: int
    precision: float
    recall: float
    f1: float
    median_trace_corr: float
    pairs: np.ndarray          # (n_matched, 2): (true index, found index)
    similarity: np.ndarray     # cosine of the matched footprints
    trace_corr: np.ndarray     # trace correlation of the matched pairs

    def __str__(self) -> str:
        return (f"found {self.n_found}, true {self.n_true}, matched {self.n_matched}: "
                f"P {self.precision:.3f} R {self.recall:.3f} F1 {self.f1:.3f}, "
                f"median trace corr {self.median_trace_corr:.3f}")


def _flat(images) -> np.ndarray:
    images = np.asarray(images, np.float64)
    return images.reshape(images.shape[0], -1)


def match_components(found, true_footprints, found_traces=None, true_traces=None, *, dims=None,
                     thr: float = 0.5) -> MatchResult:
    """Match found components to the truth.

    Parameters
    ----------
    found : Estimates, or (K, *dims) footprint images (array order).
    true_footprints : (K_true, *dims) images (array order).
    found_traces, true_traces : (K, T) traces; ``found.C`` is used for Estimates.
    thr : minimum footprint cosine similarity of a match.
    """
    if hasattr(found, "A") and hasattr(found, "dims"):
        if found_traces is None:
            found_traces = found.C
        found = pixels_to_images(found.A, found.dims) if found.A.shape[1] else np.zeros((0, *found.dims))
    elif sparse.issparse(found):
        found = pixels_to_images(found, dims)
    F = _flat(found)
    G = _flat(true_footprints)
    nf, nt = F.shape[0], G.shape[0]
    if nf == 0 or nt == 0:
        return MatchResult(nt, nf, 0, 0.0, 0.0, 0.0, float("nan"), np.zeros((0, 2), int),
                           np.zeros(0), np.zeros(0))
    Fn = F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)
    Gn = G / np.maximum(np.linalg.norm(G, axis=1, keepdims=True), 1e-12)
    sim = Gn @ Fn.T  # (nt, nf)
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
