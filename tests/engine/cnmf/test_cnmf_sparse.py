"""The whole-field CNMF steps on sparse footprints agree with the dense steps
the patches use, and the movie products cost the non-zeros."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import sparse

from napari_caiman.engine.cnmf import sparse_steps as sps
from napari_caiman.engine.cnmf import steps
from napari_caiman.engine.cnmf.data import MovieData
from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.resolve import settings_from_params
from napari_caiman.engine.synthetic import make_movie_2d


@pytest.fixture(scope="module")
def problem():
    """A 2D movie with truth-initialized footprints (perturbed) and traces."""
    mv = make_movie_2d((300, 64, 64), n_neurons=12, gSig=3, seed=3, return_flow=False)
    Y = np.asarray(mv.movie, np.float32)
    T, dims = Y.shape[0], Y.shape[1:]
    P = int(np.prod(dims))
    A0 = mv.footprints.reshape(len(mv.footprints), P).T.astype(np.float32)  # (P, K) C order
    rng = np.random.default_rng(0)
    A0 = np.where(A0 > 0.05 * A0.max(axis=0), A0 * rng.uniform(0.7, 1.3, A0.shape), 0).astype(
        np.float32
    )
    C0 = np.asarray(mv.traces, np.float32) + 0.1
    b0 = Y.reshape(T, P).mean(axis=0)[:, None].astype(np.float32)
    H0 = np.concatenate([C0, np.ones((1, T), np.float32)], axis=0)
    params = CaimanParams.from_dict({"gSig": (3, 3), "K": 12, "nb": 1})
    st = settings_from_params(params, 2, dims)
    return Y, dims, A0, b0, H0, st


@pytest.mark.parametrize("streamed", [False, True])
def test_products_match_dense(problem, streamed):
    Y, dims, A0, b0, H0, _ = problem
    T, P = Y.shape[0], int(np.prod(dims))
    data = MovieData(Y, max_bytes=0 if streamed else None, chunk_bytes=1 << 20)
    list(data.load())
    Yf = Y.reshape(T, P).astype(np.float64)
    W = np.concatenate([A0, b0], axis=1)
    ref = W.T.astype(np.float64) @ Yf.T
    got = data.AtY_sparse(sparse.csc_matrix(A0), b0)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3 * np.abs(ref).max())
    np.testing.assert_allclose(data.AtY(W), ref, rtol=1e-4, atol=1e-3 * np.abs(ref).max())
    np.testing.assert_allclose(sps.gram(sparse.csc_matrix(A0), b0), W.T @ W, rtol=1e-5)
    regions = [np.flatnonzero(A0[:, k] > 0) for k in range(A0.shape[1])] + [None]
    YH = data.YHt(H0, regions)
    full = Yf.T @ H0.T.astype(np.float64)
    for k, r in enumerate(regions):
        if r is None:
            np.testing.assert_allclose(YH[:, k], full[:, k], rtol=1e-4)
        else:
            np.testing.assert_allclose(
                YH[r, k], full[r, k], rtol=1e-4, atol=1e-3 * np.abs(full[:, k]).max()
            )
            outside = np.ones(P, bool)
            outside[r] = False
            assert not YH[outside, k].any()


@pytest.mark.parametrize("noise_thr", [0.0, 2.0])
def test_sparse_spatial_step_matches_dense(problem, noise_thr):
    Y, dims, A0, b0, H0, st = problem
    st = dataclasses.replace(st, noise_thr=noise_thr)
    P = int(np.prod(dims))
    data = MovieData(Y)
    list(data.load())
    sn = np.full(P, float(np.std(Y[1:] - Y[:-1]) / np.sqrt(2)), np.float32)
    K = A0.shape[1]
    Wd, Hd, Kd = steps.spatial_step(
        data, np.concatenate([A0, b0], axis=1), H0.copy(), K, 1, st, sn=sn
    )
    A, b, H, keep = sps.spatial_step(data, sparse.csc_matrix(A0), b0, H0.copy(), st, sn=sn)
    assert A.shape[1] == Kd == keep.size
    np.testing.assert_allclose(A.toarray(), Wd[:, :Kd], rtol=2e-3, atol=2e-4 * Wd[:, :Kd].max())
    np.testing.assert_allclose(b, Wd[:, Kd:], rtol=2e-3, atol=1e-3 * Wd[:, Kd:].max())
    np.testing.assert_array_equal(H, Hd)
    assert sparse.isspmatrix_csc(A) and A.has_sorted_indices


def test_sparse_temporal_step_matches_dense(problem):
    Y, dims, A0, b0, H0, st = problem
    data = MovieData(Y)
    list(data.load())
    K = A0.shape[1]
    from napari_caiman.engine.progress import run

    Wd, Hd, Kd, ex_d = steps.temporal_step(
        data, np.concatenate([A0, b0], axis=1), H0.copy(), K, 1, st.temporal
    )
    A, b, H, ex, keep = run(
        sps.iter_temporal_step(data, sparse.csc_matrix(A0), b0, H0.copy(), st.temporal)
    )
    assert A.shape[1] == Kd
    np.testing.assert_allclose(H, Hd, rtol=1e-3, atol=1e-3 * np.abs(Hd).max())
    np.testing.assert_allclose(
        ex["YrA"], ex_d["YrA"], rtol=1e-3, atol=1e-3 * np.abs(ex_d["YrA"]).max()
    )


def _kernels_in_child(q) -> None:
    from napari_caiman.engine.summary import summary_images

    rng = np.random.default_rng(1)
    mv = rng.normal(100, 5, (40, 48, 48)).astype(np.float32)
    A = sparse.random(48 * 48, 6, density=0.02, format="csc", dtype=np.float32, random_state=0)
    data = MovieData(mv, max_bytes=0)
    q.put(
        (
            float(summary_images(mv).corr.mean()),
            float(data.AtY_sparse(A, np.ones((48 * 48, 1), np.float32)).sum()),
        )
    )


def test_the_kernels_run_in_a_forked_child_after_the_parent_ran_them():
    """The napari docks run each step in a forked child; numba kernels the parent
    already ran must work there (an OpenMP pool, numba's parallel=True, hangs)."""
    import multiprocessing as mp

    from napari_caiman.engine.summary import summary_images

    rng = np.random.default_rng(1)
    mv = rng.normal(100, 5, (40, 48, 48)).astype(np.float32)
    A = sparse.random(48 * 48, 6, density=0.02, format="csc", dtype=np.float32, random_state=0)
    want = (
        float(summary_images(mv).corr.mean()),
        float(MovieData(mv, max_bytes=0).AtY_sparse(A, np.ones((48 * 48, 1), np.float32)).sum()),
    )
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_kernels_in_child, args=(q,))
    p.start()
    p.join(120)
    if p.is_alive():
        p.kill()
        pytest.fail("the forked child hung in a numba kernel")
    assert p.exitcode == 0
    got = q.get(timeout=5)
    np.testing.assert_allclose(got, want, rtol=1e-6)
