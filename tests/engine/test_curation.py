"""Manual curation: overrides, HDF5 and sidecar storage, transfer across a refit."""

from __future__ import annotations

import time

import h5py
import numpy as np
import pytest
from scipy import sparse

from napari_caiman.engine import curation as cur
from napari_caiman.engine.cnmf import images_to_pixels
from napari_caiman.engine.curation import (
    Curation,
    load_curation_sidecar,
    read_curation,
    save_curation_sidecar,
    sidecar_path,
    transfer_curation,
    write_curation,
)
from napari_caiman.engine.errors import InputError
from napari_caiman.engine.evaluation import Metrics, apply_thresholds


def test_decisions_survive_rethresholding():
    rng = np.random.default_rng(0)
    K = 50
    met = Metrics(SNR_comp=rng.gamma(2, 2, K), r_values=rng.uniform(-1, 1, K), size=np.full(K, 50))
    c = Curation.empty(K)
    c.accept([3, 4]).reject(7)
    c.set(9, "reject")
    for min_snr in (0.0, 2.5, 1e9):
        good, _ = apply_thresholds(met, min_SNR=min_snr, rval_thr=1.0)
        thr = np.zeros(K, bool)
        thr[good] = True
        final = c.accepted(thr)
        assert final[[3, 4]].all() and not final[[7, 9]].any()
        undecided = c.manual == 0
        np.testing.assert_array_equal(final[undecided], thr[undecided])
        # index arrays work too
        np.testing.assert_array_equal(c.accepted(good), final)
    c.clear(7)
    assert c.manual[7] == 0 and c.n_decisions == 3
    thr = np.zeros(K, bool)
    c.toggle(10, thr)
    assert c.accepted(thr)[10] and c.manual[10] == 1
    c.toggle(10, thr)
    assert not c.accepted(thr)[10] and c.manual[10] == -1
    with pytest.raises(InputError):
        c.set(K, 1)
    with pytest.raises(InputError):
        c.set(0, 2)
    with pytest.raises(InputError):
        c.set(0, "maybe")
    with pytest.raises(InputError):
        c.accepted(np.zeros(K + 1, bool))


def test_hdf5_round_trip(tmp_path):
    path = tmp_path / "results.hdf5"
    with h5py.File(path, "w") as f:
        f.create_group("estimates").create_dataset("idx_components", data=np.arange(5))
    c = Curation.empty(10).accept(8).reject(1)
    thr = np.zeros(10, bool)
    thr[:5] = True
    with h5py.File(path, "a") as f:
        write_curation(f, c, threshold_accepted=thr)
    back = read_curation(path)
    np.testing.assert_array_equal(back.manual, c.manual)
    assert back.manual.dtype == np.int8 and back.updated
    with h5py.File(path, "r") as f:
        assert f["estimates/idx_components"][()].tolist() == [0, 2, 3, 4, 8]
        assert f["estimates/idx_components_bad"][()].tolist() == [1, 5, 6, 7, 9]
        assert f["curation"].attrs["n_components"] == 10
    # explicit indices, rewrite in place
    c.clear()
    write_curation(path, c, idx_components=[1, 2], idx_components_bad=[0, 3, 4, 5, 6, 7, 8, 9])
    assert read_curation(path).n_decisions == 0
    with h5py.File(path, "r") as f:
        assert f["estimates/idx_components"][()].tolist() == [1, 2]
    with h5py.File(tmp_path / "empty.h5", "w"):
        pass
    assert read_curation(tmp_path / "empty.h5") is None
    assert read_curation(tmp_path / "missing.h5") is None


def test_sidecar_round_trip_fast_and_atomic(tmp_path, monkeypatch):
    results = tmp_path / "run.hdf5"
    assert load_curation_sidecar(results) is None
    K = 5000
    c = Curation.empty(K)
    times = []
    for i in range(20):
        c.set(i * 37 % K, 1 if i % 2 else -1)
        t = time.perf_counter()
        p = save_curation_sidecar(results, c)
        times.append(time.perf_counter() - t)
    assert p == sidecar_path(results) == tmp_path / "run.hdf5.curation.json"
    assert np.median(times) < 0.01, times
    back = load_curation_sidecar(results)
    np.testing.assert_array_equal(back.manual, c.manual)
    before = p.read_bytes()

    # a failure while writing leaves the previous sidecar intact and no temp file
    orig_open = open

    class Exploding:
        def __init__(self, *a, **k):
            self.f = orig_open(*a, **k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

        def write(self, s):
            self.f.write(s[:10])
            raise OSError("disk full")

    monkeypatch.setattr(cur, "open", Exploding, raising=False)
    with pytest.raises(InputError, match="disk full"):
        save_curation_sidecar(results, c)
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["run.hdf5.curation.json"]
    with pytest.raises(InputError):
        save_curation_sidecar(tmp_path / "no_such_dir" / "r.hdf5", c)
    p.write_text("{not json")
    with pytest.raises(InputError):
        load_curation_sidecar(results)


def _blobs(centers, shape=(48, 48), s=3.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = []
    for cy, cx in centers:
        g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        g[g < 0.05] = 0
        out.append(g)
    return np.array(out)


def test_transfer_across_perturbed_reordered_refit():
    rng = np.random.default_rng(1)
    centers = rng.uniform(5, 43, (12, 2))
    old = _blobs(centers)
    old_A = sparse.csc_matrix(images_to_pixels(old))
    manual = np.zeros(12, np.int8)
    manual[[0, 3, 5]] = 1
    manual[[2, 7]] = -1
    # refit: shifted by ~1 px, amplitudes changed, reordered, one decided component gone (7), two new
    perm = rng.permutation(12)
    keep = [k for k in perm if k != 7]
    new_centers = np.vstack([centers[keep] + rng.normal(0, 0.7, (11, 2)), [[2, 2], [45, 45]]])
    new = _blobs(new_centers) * rng.uniform(0.5, 2, (13, 1, 1))
    new_A = sparse.csc_matrix(images_to_pixels(new))
    got = transfer_curation(old_A, manual, new_A, (48, 48), min_overlap=0.5)
    expected = np.zeros(13, np.int8)
    for j, k in enumerate(keep):
        expected[j] = manual[k]
    np.testing.assert_array_equal(got, expected)
    # with a Curation object and a threshold that nothing meets
    assert not transfer_curation(old_A, Curation(manual), new_A, min_overlap=1.0).any()
    with pytest.raises(InputError):
        transfer_curation(old_A, manual[:5], new_A)
    with pytest.raises(InputError):
        transfer_curation(old_A, manual, new_A, dims=(10, 10))
