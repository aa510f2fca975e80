"""Duplicates: a weak fragment of an accepted cell is rejected, overlapping neighbours stay."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import sparse

from napari_caiman.engine.cnmf import cnmf, images_to_pixels, match_components, pixels_to_images
from napari_caiman.engine.duplicates import duplicate_mask, duplicate_scores
from napari_caiman.engine.evaluation import (
    Metrics,
    apply_thresholds,
    evaluate_components,
    thresholds_from_params,
)
from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.synthetic import make_movie_2d


def _add_fragment(est, movie, k):
    """Append a fragment of component ``k``: the half of its footprint left of its
    centroid, with the trace CNMF would give it (the movie less the background
    and the other components, projected on the fragment)."""
    img = pixels_to_images(est.A[:, [k]], est.dims)[0]
    cx = (img.sum(0) * np.arange(img.shape[1])).sum() / img.sum()
    frag = img.copy()
    frag[:, int(np.ceil(cx)) :] = 0
    frag /= np.linalg.norm(frag)
    a = images_to_pixels(frag[None])  # (P, 1) CaImAn order
    T = movie.shape[0]
    Y = np.asarray(movie, np.float64).swapaxes(-1, -2).reshape(T, -1).T  # (P, T) CaImAn order
    others = [j for j in range(est.A.shape[1]) if j != k]
    resid = Y - est.A[:, others] @ est.C[others] - est.b @ est.f
    raw = (a.T @ resid).ravel()
    c = np.clip(raw - np.median(raw), 0, None)
    est.A = sparse.hstack([est.A, sparse.csc_matrix(a)]).tocsc()
    est.C = np.vstack([est.C, c[None]]).astype(np.float32)
    est.YrA = np.vstack([est.YrA, (raw - c)[None]]).astype(np.float32)
    est.S = np.vstack([est.S, np.zeros((1, T))]).astype(np.float32)
    return est


@pytest.fixture(scope="module")
def with_fragment():
    m = make_movie_2d((400, 64, 64), n_neurons=12, seed=3)
    params = CaimanParams.from_dict({"K": 20, "gSig": (4, 4)})
    est = cnmf(m.movie, params)
    match = match_components(est, m.footprints, true_traces=m.traces)
    assert match.f1 == 1.0  # the test starts from a clean result
    metrics0 = evaluate_components(m.movie, copy.deepcopy(est), params)
    k = int(np.argmax(metrics0.SNR_comp))  # the fragment of the strongest cell
    est = _add_fragment(est, m.movie, k)
    metrics = evaluate_components(m.movie, est, params)
    return m, est, params, metrics, k, match


def test_fragment_is_a_duplicate_of_its_cell_and_rejected(with_fragment):
    m, est, params, metrics, k, match = with_fragment
    K = est.A.shape[1]
    frag = K - 1
    # the SNR / r-value / shape tests alone accept the fragment: it carries its cell's activity
    th = thresholds_from_params(params)
    assert th["max_duplicate"] == 0.5
    good, _ = apply_thresholds(metrics, **{**th, "max_duplicate": None})
    assert frag in good and metrics.SNR_comp[frag] >= th["min_SNR"]
    assert metrics.SNR_comp[frag] < metrics.SNR_comp[k]
    # the duplicate test names its cell and rejects it; every true neuron stays accepted
    assert metrics.dup_of[frag] == k and metrics.dup_score[frag] > 0.5
    assert frag not in est.idx_components
    true = set(match.pairs[:, 1].tolist())
    assert true <= set(est.idx_components.tolist())
    # different neurons that overlap have their own activity: far below the threshold
    assert metrics.dup_score[:frag].max() < 0.5
    # the fragment's cell rejected (here: SNR and r-value thresholds above it): the fragment is kept
    cell = metrics.subset(np.arange(K))
    cell.SNR_comp = cell.SNR_comp.copy()
    cell.r_values = cell.r_values.copy()
    cell.SNR_comp[k] = 0.1
    cell.r_values[k] = 0.0
    good, _ = apply_thresholds(cell, **th)
    assert k not in good and frag in good


def test_duplicate_fields_saved_and_subset(with_fragment, tmp_path):
    _, est, _, metrics, k, _ = with_fragment
    K = est.A.shape[1]
    back = Metrics.from_saved(metrics.to_dict(), est)
    np.testing.assert_array_equal(back.dup_of, metrics.dup_of)
    np.testing.assert_allclose(back.dup_score, metrics.dup_score)
    # removing the cell leaves the fragment without a partner; removing another keeps the link
    keep = np.r_[np.arange(k), np.arange(k + 1, K)]
    sub = metrics.subset(keep)
    assert sub.dup_of[-1] == -1
    drop = 0 if k != 0 else 1
    keep = np.setdiff1d(np.arange(K), [drop])
    sub = metrics.subset(keep)
    assert keep[sub.dup_of[-1]] == k


def test_duplicate_scores_on_known_footprints():
    # three discs: B is the left half of A with A's activity + noise, N overlaps A with its own activity
    yy, xx = np.mgrid[:40, :40]
    disc = lambda cy, cx: ((yy - cy) ** 2 + (xx - cx) ** 2 <= 36).astype(float)  # noqa: E731
    a = disc(20, 15)
    b = a * (xx < 15)
    n = disc(20, 21)
    A = np.stack([a, b, n]).reshape(3, -1).T
    rng = np.random.default_rng(0)
    ca, cn = rng.gamma(1, 1, 500), rng.gamma(1, 1, 500)
    C = np.stack([ca, 0.5 * ca + 0.3 * rng.normal(size=500), cn])
    snr = np.array([8.0, 1.2, 6.0])
    score, of = duplicate_scores(sparse.csc_matrix(A), C, snr)
    assert of[1] == 0 and score[1] > 0.8  # inside A, correlated
    assert score[2] < 0.2  # overlaps A by a third but its own activity
    assert of[0] == -1 and score[0] == 0  # the strongest has no stronger partner
    dup = duplicate_mask(score, of, np.ones(3, bool), 0.5, snr)
    np.testing.assert_array_equal(dup, [False, True, False])
    dup = duplicate_mask(score, of, np.array([False, True, True]), 0.5, snr)
    assert not dup.any()  # its cell is rejected: the fragment is kept


def test_duplicate_scores_leave_the_footprints_intact():
    # float32 with explicit zeros and unsorted indices, as files and edits give them: a converted
    # copy shares scipy's index arrays, so nothing may be compacted or sorted in place
    rng = np.random.default_rng(1)
    dense = (rng.random((50, 4)) * (rng.random((50, 4)) > 0.5)).astype(np.float32)
    A = sparse.csc_matrix(dense)
    A.data[::3] = 0  # explicit zeros
    for k in range(4):
        sl = slice(A.indptr[k], A.indptr[k + 1])
        p = rng.permutation(sl.stop - sl.start)
        A.indices[sl], A.data[sl] = A.indices[sl][p], A.data[sl][p]
    before = (A.indices.copy(), A.data.copy(), A.toarray())
    duplicate_scores(A, rng.random((4, 30)), np.arange(4.0))
    np.testing.assert_array_equal(A.indices, before[0])
    np.testing.assert_array_equal(A.data, before[1])
    np.testing.assert_array_equal(A.toarray(), before[2])
