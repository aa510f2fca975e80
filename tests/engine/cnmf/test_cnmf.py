"""Accuracy of the native CNMF on synthetic movies with ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from napari_caiman.engine.cnmf import cnmf, iter_cnmf, match_components
from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.synthetic import make_movie_2d, make_movie_3d


@pytest.fixture(scope="module")
def movie2d():
    return make_movie_2d((300, 64, 64), n_neurons=15, seed=1)


@pytest.fixture(scope="module")
def movie3d():
    return make_movie_3d((200, 8, 48, 48), n_neurons=12, seed=1)


def _check(est, truth, f1=0.9, corr=0.9):
    r = match_components(est, truth.footprints, true_traces=truth.traces)
    print(r)
    assert r.f1 >= f1, str(r)
    assert r.median_trace_corr >= corr, str(r)
    return r


def test_2d_whole_fov(movie2d):
    est = cnmf(movie2d.movie, CaimanParams.from_dict({"K": 15, "gSig": (4, 4)}))
    _check(est, movie2d)
    assert est.A.shape == (64 * 64, est.n_components)
    assert est.C.shape == est.S.shape == est.YrA.shape == (est.n_components, 300)


def test_2d_uint16_memmap(movie2d, tmp_path):
    path = tmp_path / "m.npy"
    np.save(path, np.clip(np.rint(movie2d.movie), 0, 65535).astype(np.uint16))
    mm = np.load(path, mmap_mode="r")
    # stream (no in-memory copy) to exercise the chunked statistics
    est = cnmf(mm, CaimanParams.from_dict({"K": 15, "gSig": (4, 4)}), max_in_memory=0)
    _check(est, movie2d)


def test_2d_patches(movie2d):
    est = cnmf(
        movie2d.movie,
        CaimanParams.from_dict({"K": 8, "gSig": (4, 4), "rf": 20, "stride": 10, "n_processes": 2}),
    )
    assert est.info["n_patches"] == 4
    _check(est, movie2d)


def test_long_movies_fit_their_patches_on_slabs_binned_in_time(movie2d, tmp_path, monkeypatch):
    """Past PATCH_MAX_FRAMES frames a patch reads its slab averaged over frames
    (streamed from disk); the components are as good and the traces full-rate."""
    from napari_caiman.engine.cnmf import patches

    path = tmp_path / "m.npy"
    np.save(path, movie2d.movie.astype(np.float32))
    mm = np.load(path, mmap_mode="r")
    monkeypatch.setattr(patches, "PATCH_MAX_FRAMES", 100)  # 300 frames: slabs of 100 means of 3
    params = CaimanParams.from_dict(
        {"K": 8, "gSig": (4, 4), "rf": 20, "stride": 10, "n_processes": 2}
    )
    est = cnmf(mm, params, max_in_memory=0)
    assert est.info["patch_time_bin"] == 3
    assert est.C.shape == (est.n_components, 300)
    _check(est, movie2d)
    monkeypatch.undo()
    assert cnmf(mm, params, max_in_memory=0).info["patch_time_bin"] == 1


def test_a_binned_patch_slab_is_the_mean_of_its_frames(movie2d, tmp_path):
    from napari_caiman.engine.cnmf.data import MovieData

    path = tmp_path / "m.npy"
    np.save(path, movie2d.movie.astype(np.float32))
    data = MovieData(
        np.load(path, mmap_mode="r"), max_bytes=0, chunk_bytes=7 * 20 * 30 * 4
    )  # 7-frame chunks
    sl = (slice(10, 30), slice(5, 35))
    got = data.patch(sl, 4)
    full = movie2d.movie[:, 10:30, 5:35].astype(np.float64)
    ref = np.stack([full[t : t + 4].mean(axis=0) for t in range(0, 300, 4)])
    assert got.shape == (75, 20, 30) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(data.patch(sl), movie2d.movie[:, 10:30, 5:35].astype(np.float32))


def test_streamed_noise_reads_only_the_frames_it_uses_and_equals_the_in_memory_one(
    movie2d, tmp_path
):
    from napari_caiman.engine.cnmf.data import MovieData
    from napari_caiman.engine.progress import run

    class Counting:  # a movie that records which frames were read
        def __init__(self, a):
            self.a, self.shape, self.dtype, self.ndim, self.frames = (
                a,
                a.shape,
                a.dtype,
                a.ndim,
                set(),
            )

        def __getitem__(self, key):
            t = key[0] if isinstance(key, tuple) else key
            self.frames.update(range(*t.indices(self.shape[0])))
            return self.a[key]

    movie = Counting(np.asarray(movie2d.movie, np.float32))
    sn, lo, hi = run(MovieData(movie, max_bytes=0).noise((0.25, 0.5), "mean", 90))
    assert movie.frames == set(range(30)) | set(range(135, 165)) | set(range(270, 300))
    data = MovieData(movie2d.movie.astype(np.float32))
    run(data.load())
    ref, _, _ = run(data.noise((0.25, 0.5), "mean", 90))
    np.testing.assert_allclose(sn, ref, rtol=1e-5)
    assert lo < hi


def test_2d_patches_dask_like_executor(movie2d):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as ex:
        est = cnmf(
            movie2d.movie,
            CaimanParams.from_dict({"K": 8, "gSig": (4, 4), "rf": 20, "stride": 10}),
            executor=ex,
        )
    _check(est, movie2d)


def test_2d_patches_on_a_dask_distributed_cluster(movie2d):
    distributed = pytest.importorskip("distributed")
    params = CaimanParams.from_dict({"K": 8, "gSig": (4, 4), "rf": 20, "stride": 10})
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        est = cnmf(movie2d.movie, params, executor=client)
        assert sum(client.run(lambda: 1).values()) == 2  # the cluster was really there
    _check(est, movie2d)
    local = cnmf(movie2d.movie, params)
    # the same patches give the same result wherever they ran
    assert est.n_components == local.n_components
    np.testing.assert_allclose(est.C, local.C, rtol=1e-3, atol=1e-3 * float(np.abs(local.C).max()))


def test_3d_whole_volume(movie3d):
    est = cnmf(movie3d.movie, CaimanParams.from_dict({"K": 12, "gSig": (4, 4, 2)}))
    assert est.dims == (8, 48, 48) and est.caiman_dims == (48, 48, 8)
    _check(est, movie3d)


def test_seeded_from_true_masks(movie2d):
    ain = movie2d.footprints > 0.2
    est = cnmf(movie2d.movie, CaimanParams.from_dict({"K": 15, "gSig": (4, 4)}), Ain=ain)
    r = _check(est, movie2d, f1=0.99, corr=0.95)
    assert np.nanmin(r.trace_corr) > 0.9


def test_seeded_caiman_order_sparse(movie3d):
    from scipy import sparse

    A = sparse.csc_matrix(movie3d.footprints_caiman().toarray() > 0.2)
    est = cnmf(movie3d.movie, CaimanParams.from_dict({"K": 12, "gSig": (4, 4, 2)}), Ain=A)
    _check(est, movie3d, f1=0.95, corr=0.95)


def test_merging_rejoins_split_neuron(movie2d):
    fp = movie2d.footprints
    k = int(np.argmax(movie2d.traces.max(axis=1)))
    mask = fp[k] > 0.2
    yy = np.nonzero(mask)[0]
    cut = int(np.median(yy))
    half1 = mask.copy()
    half1[cut:] = False
    half2 = mask & ~half1
    others = [fp[j] > 0.2 for j in range(len(fp)) if j != k]
    ain = np.stack(others + [half1, half2])
    est = cnmf(
        movie2d.movie, CaimanParams.from_dict({"K": 15, "gSig": (4, 4), "merge_thr": 0.8}), Ain=ain
    )
    assert est.info["merged_groups"] >= 1
    assert est.n_components == len(fp)
    r = match_components(est, fp, true_traces=movie2d.traces)
    assert k in r.pairs[:, 0]


def test_cancel_closes_cleanly(movie2d):
    gen = iter_cnmf(
        movie2d.movie, CaimanParams.from_dict({"K": 8, "gSig": (4, 4), "rf": 20, "stride": 10})
    )
    for _ in range(3):
        next(gen)
    gen.close()  # must not hang or raise


def test_final_merge_rejoins_a_cell_cut_by_the_last_spatial_update(movie2d, monkeypatch):
    # the last spatial update (noise cut, largest piece) can leave one cell in two touching
    # components with one trace (the demo movie had one); here the cut is made by hand there
    from scipy import sparse

    from napari_caiman.engine.cnmf import sparse_steps

    fp = movie2d.footprints
    real = sparse_steps.spatial_step
    calls = []

    def cutting(data, A, b, H, st, sn=None, **kw):
        A, b, H, keep = real(data, A, b, H, st, sn=sn, **kw)
        K = A.shape[1]
        calls.append(K)
        if len(calls) == 2:  # the plan's last spatial update: cut the strongest cell in two
            k = int(np.argmax(H[:K].max(axis=1)))
            Ad = A.toarray()
            img = Ad[:, k].reshape(data.dims)
            rows = np.nonzero(img.max(axis=1) > 0)[0]
            mid = int(np.median(rows))
            top, bottom = img.copy(), img.copy()
            top[mid + 1 :] = 0  # the two pieces share the row mid
            bottom[:mid] = 0
            Ad[:, k] = top.ravel()
            A = sparse.csc_matrix(np.concatenate([Ad, bottom.reshape(-1, 1)], axis=1))
            H = np.concatenate([H[:K], H[k : k + 1], H[K:]], axis=0)
            keep = np.r_[keep, keep[k]]
        return A, b, H, keep

    monkeypatch.setattr(sparse_steps, "spatial_step", cutting)
    est = cnmf(movie2d.movie, CaimanParams.from_dict({"K": 15, "gSig": (4, 4), "merge_thr": 0.8}))
    assert len(calls) == 2
    assert est.n_components == len(fp)  # without the final merge: one more (the cut half)
    _check(est, movie2d, f1=1.0, corr=0.95)
    assert est.info["final_merges"] >= 1
