"""Pure helpers behind the evaluation widget: colours and tables; the hand edits (engine.component_edits)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from napari_caiman.engine import component_edits as edits
from napari_caiman.engine.cnmf.estimates import Estimates, pixels_to_images
from napari_caiman.engine.errors import InputError
from napari_caiman.plugin.layers import evaluation as ev


def _estimates(K=4, dims=(12, 10), T=50, seed=0):
    rng = np.random.default_rng(seed)
    P = int(np.prod(dims))
    A = np.zeros((P, K), np.float32)
    for k in range(K):
        A[rng.choice(P, 8, replace=False), k] = rng.uniform(0.5, 1, 8)
    A /= np.linalg.norm(A, axis=0)
    C = rng.uniform(0, 5, (K, T)).astype(np.float32)
    return Estimates(
        A=sparse.csc_matrix(A),
        C=C,
        S=C * 0.5,
        YrA=rng.normal(0, 0.1, (K, T)).astype(np.float32),
        b=np.zeros((P, 1), np.float32),
        f=np.zeros((1, T), np.float32),
        sn=np.ones(P, np.float32),
        g=np.full((K, 1), 0.9),
        bl=np.arange(K, dtype=float),
        c1=np.zeros(K),
        neurons_sn=np.ones(K),
        lam=np.ones(K),
        dims=dims,
        idx_components=np.array([0, 2]),
        idx_components_bad=np.array([1, 3]),
    )


def test_status_colors_and_show_filter():
    accepted = np.array([True, False, True])
    owner = np.array([0, 0, 1, 2])
    colors = ev.status_colors(accepted, owner)
    np.testing.assert_array_equal(colors[[0, 1, 3]], np.tile(ev.ACCEPTED_COLOR, (3, 1)))
    np.testing.assert_array_equal(colors[2], ev.REJECTED_COLOR)
    assert ev.status_colors(accepted, owner, "accepted")[2, 3] == 0
    assert ev.status_colors(accepted, owner, "rejected")[0, 3] == 0
    with pytest.raises(InputError, match="show"):
        ev.status_colors(accepted, owner, "some")


def test_features_table_is_new_and_complete():
    features = pd.DataFrame({"component": [0, 1, 1]})
    metrics = type("M", (), {"SNR_comp": np.array([3.0, 1.0]), "r_values": np.array([0.9, 0.1])})()
    out = ev.evaluation_features(
        features, [0, 1, 1], metrics, np.array([True, False]), np.array([0, -1])
    )
    assert out is not features and list(features.columns) == ["component"]
    assert list(out["status"]) == ["accepted", "rejected", "rejected"]
    assert list(out["manual"]) == ["", "rejected", "rejected"]
    np.testing.assert_allclose(out["SNR"], [3, 1, 1])
    no_metrics = ev.evaluation_features(
        features, [0, 1, 1], None, np.array([True, True]), np.zeros(2)
    )
    assert no_metrics["SNR"].isna().all()
    assert (
        ev.count_text(np.array([True, False, True]), np.array([1, 0, 0]))
        == "2 accepted / 1 rejected / 1 manual"
    )
    table = ev.component_table(metrics, np.array([True, False]), np.array([1, 0]), np.array([5, 6]))
    assert list(table["id"]) == [0, 1] and list(table["manual"]) == ["accepted", ""]


def test_delete_keeps_rows_and_remaps_indices():
    est = _estimates()
    new, rows = edits.delete_components(est, [1])
    assert new.n_components == 3 and list(rows) == [0, 2, 3]
    np.testing.assert_array_equal(new.C, est.C[[0, 2, 3]])
    assert list(new.idx_components) == [0, 1] and list(new.idx_components_bad) == [2]
    assert est.n_components == 4  # input untouched
    manual = edits.take_rows(np.array([1, 0, -1, 0], np.int8), rows)
    assert list(manual) == [1, -1, 0]


def test_merge_is_least_squares_fit_of_both():
    est = _estimates()
    new, rows = edits.merge_components(est, [3, 1])
    assert new.n_components == 3 and list(rows) == [0, -1, 2]
    a = new.A[:, 1].toarray().ravel()
    assert np.isclose(np.linalg.norm(a), 1.0)
    assert set(np.flatnonzero(a)) == set(np.flatnonzero(est.A[:, [1, 3]].toarray().any(axis=1)))
    # a F approximates a1 F1 + a3 F3 best in the least-squares sense: residual is orthogonal to a
    raw = est.C + est.YrA
    target = est.A[:, [1, 3]].toarray() @ raw[[1, 3]]
    F = new.C[1] + new.YrA[1]
    resid = target - np.outer(a, F)
    np.testing.assert_allclose(a @ resid, 0, atol=1e-4)
    assert (new.C[1] >= 0).all()
    with pytest.raises(InputError, match="two or more"):
        edits.merge_components(est, [2])


def test_refit_seeds_pixel_order():
    est = _estimates()
    painted = np.zeros((1, *est.dims), bool)
    painted[0, 2:4, 5:8] = True
    Ain = edits.refit_seeds(est, [0, 2], painted)
    assert Ain.shape == (est.A.shape[0], 3)
    images = pixels_to_images(Ain, est.dims)
    np.testing.assert_array_equal(images[2] > 0, painted[0])
    np.testing.assert_array_equal(images[0] > 0, est.footprints([0])[0] > 0)
    with pytest.raises(InputError, match="no seeds"):
        edits.refit_seeds(est, [], None)
