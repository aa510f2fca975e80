import h5py
import numpy as np
import pytest

from napari_caiman.engine.errors import InputError
from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.results import Results
from napari_caiman.engine.validate import array_dims, caiman_dims
from napari_caiman.io import results_file as res_mod
from napari_caiman.io.results_file import load_results, save_results


def _results(ndim=2):
    rng = np.random.default_rng(0)
    dims = (40, 50) if ndim == 2 else (6, 40, 50)
    motion = {
        "shifts_rig": rng.normal(size=(30, ndim)).astype(np.float32),
        "shifts_els": rng.normal(size=(30, 4, ndim)).astype(np.float32),
        "template": rng.random(dims).astype(np.float32),
        "patch_bounds": np.zeros((4, ndim, 2), dtype=np.int64),
        "patch_grid_shape": (2, 2) if ndim == 2 else (1, 2, 2),
        "corr_raw": rng.random(30).astype(np.float32),
        "corr_corrected": rng.random(30).astype(np.float32),
        "crispness_raw": 10.5,
        "crispness_corrected": 12.25,
        "corrected_path": None,
    }
    summary = {k: rng.random(dims).astype(np.float32) for k in ("mean", "max", "std", "corr")}
    params = CaimanParams.from_dict({"pw_rigid": True, "max_shifts": (4, 5), "fr": 15.5})
    return Results(
        params=params,
        dims=dims,
        motion=motion,
        summary=summary,
        provenance={"input_path": "/x/movie.tif", "timings": {"motion": 1.5}},
    )


@pytest.mark.parametrize("ndim", [2, 3])
def test_roundtrip_is_lossless(tmp_path, ndim):
    r = _results(ndim)
    path = save_results(tmp_path / "r.hdf5", r)
    back = load_results(path)
    assert back.dims == r.dims
    assert back.params == r.params
    for k, v in r.motion.items():
        if isinstance(v, (np.ndarray, tuple)):
            np.testing.assert_array_equal(back.motion[k], v)
        else:
            assert back.motion[k] == v, k
    for k in r.summary:
        np.testing.assert_array_equal(back.summary[k], r.summary[k])
    assert back.provenance["timings"] == {"motion": 1.5}
    with h5py.File(path) as f:  # CaImAn layout: dims z last, params by group, None as 'NoneType'
        assert tuple(f["dims"][()]) == caiman_dims(r.dims)
        assert f["params/motion/pw_rigid"][()]
        assert f["params/motion/gSig_filt"][()] == b"NoneType"
        assert f["params/init"].attrs["method_init"] == "greedy_roi"


def test_dims_order_conversion():
    assert caiman_dims((12, 96, 80)) == (96, 80, 12)
    assert array_dims((96, 80, 12)) == (12, 96, 80)
    assert caiman_dims((5, 6)) == (5, 6)


def test_failed_save_leaves_old_file_intact_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "r.hdf5"
    save_results(path, _results())
    before = path.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(res_mod, "write_value", boom)
    with pytest.raises(RuntimeError):
        save_results(path, _results())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.hdf5"]


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_results(tmp_path / "missing.hdf5")
    junk = tmp_path / "junk.hdf5"
    junk.write_bytes(b"definitely not hdf5" * 10)
    with pytest.raises(InputError, match="HDF5"):
        load_results(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["mov"] = np.zeros((3, 4, 4))
    with pytest.raises(InputError, match="not a napari-caiman"):
        load_results(other)
    with pytest.raises(InputError, match="does not exist"):
        save_results(tmp_path / "no" / "dir" / "r.hdf5", _results())


@pytest.mark.realdata
def test_reads_params_of_a_caiman_written_file(shared_data):
    r = load_results(shared_data / "caiman_results" / "neurofinder_crop_caiman.hdf5")
    assert r.dims == (256, 256)
    assert r.params["gSig"] == (5, 5)
    # CaImAn's refit clears rf; strings come from group attributes
    assert r.params["K"] == 10 and r.params["rf"] is None and r.params["stride"] == 10
    assert r.params["max_shifts"] == (6, 6) and r.params["gSig_filt"] is None
    assert r.params["border_nan"] == "copy" and r.params["method_init"] == "greedy_roi"
    assert r.params["fr"] == 7 and r.params["decay_time"] == 1.0
    r3 = load_results(shared_data / "caiman_results" / "synthetic3d_caiman.hdf5")
    assert r3.dims == (12, 96, 96)  # CaImAn stores (96, 96, 12): z last


def _estimates(dims, K=5, T=40, seed=0):
    from scipy import sparse

    from napari_caiman.engine.cnmf.estimates import Estimates

    rng = np.random.default_rng(seed)
    P = int(np.prod(dims))
    A = sparse.random(P, K, density=0.05, format="csc", random_state=seed, dtype=np.float32)
    return Estimates(
        A=A,
        C=rng.random((K, T), np.float32),
        S=rng.random((K, T), np.float32),
        YrA=rng.normal(size=(K, T)).astype(np.float32),
        b=rng.random((P, 2), np.float32),
        f=rng.random((2, T), np.float32),
        sn=rng.random(P, np.float32),
        g=rng.random((K, 2)),
        bl=rng.random(K),
        c1=np.zeros(K),
        neurons_sn=rng.random(K),
        lam=rng.random(K),
        dims=tuple(dims),
    )


@pytest.mark.parametrize("dims", [(40, 50), (6, 40, 50)])
def test_estimates_roundtrip_in_caiman_layout(tmp_path, dims):
    r = _results(len(dims))
    r.dims = dims
    r.summary = {
        k: np.random.default_rng(1).random(dims).astype(np.float32)
        for k in ("mean", "max", "std", "corr")
    }
    r.estimates = _estimates(dims)
    path = save_results(tmp_path / "r.hdf5", r)
    back = load_results(path)
    e, b = r.estimates, back.estimates
    assert b.dims == e.dims
    assert (b.A != e.A).nnz == 0
    for name in ("C", "S", "YrA", "b", "f", "sn", "g", "bl", "neurons_sn", "lam"):
        np.testing.assert_array_equal(getattr(b, name), getattr(e, name))
    with h5py.File(path) as f:
        g = f["estimates"]
        assert set(g["A"]) == {"data", "indices", "indptr", "shape"}
        assert tuple(g["A/shape"][()]) == (int(np.prod(dims)), 5)
        assert tuple(g["dims"][()]) == caiman_dims(dims)
        # Cn in CaImAn's layout (z last)
        np.testing.assert_array_equal(
            g["Cn"][()],
            np.moveaxis(r.summary["corr"], 0, -1) if len(dims) == 3 else r.summary["corr"],
        )
        assert g["idx_components"][()] == b"NoneType"


@pytest.mark.realdata
def test_reads_caiman_estimates_in_the_right_pixel_order(shared_data):
    for name, dims, K, n_acc in (
        ("neurofinder_crop_caiman.hdf5", (256, 256), 303, 158),
        ("synthetic3d_caiman.hdf5", (12, 96, 96), 46, 37),
    ):
        r = load_results(shared_data / "caiman_results" / name)
        e = r.estimates
        assert e.dims == dims and e.A.shape[1] == K and len(e.idx_components) == n_acc
        F, cn = e.footprints(), r.summary["corr"]
        assert cn.shape == dims
        # footprints sit on bright spots of CaImAn's own correlation image (a
        # transposed pixel order would land on background)
        at_peaks = np.mean([cn[np.unravel_index(np.argmax(F[k]), dims)] for k in range(K)])
        assert at_peaks > 2 * cn.mean()
