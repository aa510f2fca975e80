"""Results files in CaImAn's own layout, built here by hand, and bad files.

The files follow what CaImAn's ``CNMF.save()`` (``save_dict_to_hdf5``) writes:
``dims`` in CaImAn order (rows, cols[, planes]); ``estimates/A`` a sparse CSC
group (``data``, ``indices``, ``indptr``, ``shape``) whose pixels are
flattened in Fortran order over ``dims``; ``None`` as the string
``'NoneType'``; strings as attributes of their group; ``params/<group>/...``
with names this package may not know (a newer CaImAn).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy import sparse

from napari_caiman.engine.errors import InputError
from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.results import Results
from napari_caiman.io.results_file import load_results, save_results
from napari_caiman.plugin.readers import get_reader
from napari_caiman.plugin.results_reader import get_results_reader, read_results

NONE = "NoneType"


def _blobs(dims, centers, radius=2.0):
    """(K, *dims) Gaussian footprints in array order ((Z,) Y, X)."""
    grids = np.meshgrid(*[np.arange(d) for d in dims], indexing="ij")
    out = []
    for c in centers:
        r2 = sum((g - ci) ** 2 for g, ci in zip(grids, c, strict=True))
        out.append(np.exp(-r2 / (2 * radius**2)) * (r2 <= (3 * radius) ** 2))
    return np.asarray(out)


def _caiman_order(image):
    """Array order ((Z,) Y, X) -> CaImAn's (Y, X[, Z])."""
    return image if image.ndim == 2 else np.moveaxis(image, 0, -1)


def write_caiman_file(
    path,
    dims,
    centers,
    *,
    T=50,
    idx_components="all",
    with_S=True,
    with_YrA=True,
    F_dff=None,
    seed=0,
):
    """A results file as CaImAn's ``CNMF.save()`` writes it.

    ``dims`` and ``centers`` are in array order; ``idx_components`` is
    ``"all"``, ``None`` (stored as ``'NoneType'``) or an index array;
    ``with_S=False`` / ``with_YrA=False`` leave those datasets out;
    ``F_dff=None`` stores ``'NoneType'`` (CaImAn before detrend_df_f).
    Returns the footprints (K, *dims) and the traces C (K, T).
    """
    rng = np.random.default_rng(seed)
    foot = _blobs(dims, centers)
    K = len(centers)
    cdims = _caiman_order(np.zeros(dims)).shape
    # columns of A: each footprint in CaImAn's layout, flattened in Fortran order
    A = sparse.csc_matrix(np.stack([_caiman_order(f).ravel(order="F") for f in foot], axis=1))
    C = rng.random((K, T))
    P = int(np.prod(dims))
    with h5py.File(path, "w") as f:
        f["dims"] = np.asarray(cdims, np.int64)
        f["dview"] = NONE
        f["remove_very_bad_comps"] = False
        f.attrs["mmap_file"] = "memmap_d1_x_order_C.mmap"
        e = f.create_group("estimates")
        for key in ("data", "indices", "indptr"):
            e[f"A/{key}"] = getattr(A, key)
        e["A/shape"] = np.asarray(A.shape, np.int64)
        e["C"] = C
        if with_S:
            e["S"] = np.maximum(np.diff(C, axis=1, prepend=0), 0)
        if with_YrA:
            e["YrA"] = rng.normal(scale=0.1, size=(K, T))
        e["b"] = rng.random((P, 1))
        e["f"] = rng.random((1, T))
        e["sn"] = rng.random(P)
        e["g"] = rng.random((K, 1))
        e["bl"] = np.asarray(
            [repr(v) for v in rng.normal(size=K)], "S32"
        )  # CaImAn writes these as text
        e["dims"] = np.asarray(cdims, np.int64)
        e["nr"] = K
        e["Cn"] = _caiman_order(foot.sum(0))
        for key in ("W", "b0", "OASISinstances", "ecc", "discarded_components"):
            e[key] = NONE
        e["F_dff"] = NONE if F_dff is None else F_dff
        if idx_components is None:
            e["idx_components"] = NONE
            e["idx_components_bad"] = NONE
        else:
            idx = np.arange(K) if isinstance(idx_components, str) else np.asarray(idx_components)
            e["idx_components"] = idx.astype(np.int64)
            e["idx_components_bad"] = np.setdiff1d(np.arange(K), idx).astype(np.int64)
        p = f.create_group("params")
        d = p.create_group("data")
        d["fr"] = 7
        d["decay_time"] = 1.0
        d["dims"] = np.asarray(cdims, np.int64)
        d["fnames"] = np.asarray(["movie.tif"], "S11")
        d.attrs["caiman_version"] = "1.12.1"
        d.attrs["var_name_hdf5"] = "mov"
        i = p.create_group("init")
        i["K"] = K
        i["gSig"] = np.asarray((2,) * len(dims), np.int64)
        i["gSiz"] = np.asarray((5,) * len(dims), np.int64)
        i["nb"] = 1
        i["kernel"] = NONE
        i["a_name_of_a_newer_caiman"] = 3  # dropped, not an error
        i.attrs["method_init"] = "greedy_roi"
        m = p.create_group("motion")
        m["gSig_filt"] = NONE
        m["max_shifts"] = np.asarray((6,) * len(dims), np.int64)
        m["is3D"] = len(dims) == 3
        m["indices"] = np.asarray(["slice(None, None, None)"] * len(dims), "S32")
        m.attrs["border_nan"] = "copy"
        q = p.create_group("quality")
        q["min_SNR"] = 2.0
        q["rval_thr"] = 0.85
        q["use_cnn"] = False
        q["gSig_range"] = NONE
    return foot, C


@pytest.mark.parametrize(
    "dims, centers",
    [
        ((32, 40), [(8, 10), (20, 30), (25, 6)]),
        ((5, 24, 28), [(1, 6, 8), (3, 15, 20), (2, 18, 5), (4, 6, 22)]),
    ],
    ids=["2d", "3d"],
)
def test_caiman_layout_reads_in_the_right_pixel_order(tmp_path, dims, centers):
    path = tmp_path / "caiman.hdf5"
    foot, C = write_caiman_file(
        path, dims, centers, idx_components=[0, 2] if len(dims) == 2 else "all"
    )
    r = load_results(path)
    e = r.estimates
    assert r.dims == dims and e.dims == dims  # CaImAn's (Y, X, Z) back in array order
    assert e.A.shape == (int(np.prod(dims)), len(centers))
    np.testing.assert_allclose(e.footprints(), foot, atol=1e-12)
    for k, c in enumerate(centers):  # each footprint peaks where it was put
        assert np.unravel_index(np.argmax(e.footprints()[k]), dims) == c
    np.testing.assert_allclose(e.C, C, rtol=1e-6)
    np.testing.assert_allclose(r.summary["corr"], foot.sum(0))  # Cn (CaImAn layout) -> array order
    expected = [0, 2] if len(dims) == 2 else list(range(len(centers)))
    assert list(e.idx_components) == expected and list(r.accepted()) == expected
    assert r.params["gSig"] == (2,) * len(dims) and r.params["border_nan"] == "copy"
    assert r.params["method_init"] == "greedy_roi" and r.params["fr"] == 7
    # the reader takes it, the movie reader does not, and the layers line up with dims
    assert get_reader(str(path)) is None
    layers = {
        meta["name"]: (data, kind) for data, meta, kind in get_results_reader(str(path))(str(path))
    }
    labels, kind = layers["caiman footprints"]
    assert kind == "labels" and labels.shape == dims
    for k, c in enumerate(centers):
        assert labels[c] == k + 1


def test_caiman_layout_without_optional_fields(tmp_path):
    """S and YrA absent, F_dff and idx_components stored as CaImAn's None."""
    dims, centers = (3, 20, 22), [(1, 5, 5), (2, 14, 16)]
    path = tmp_path / "sparse_caiman.hdf5"
    foot, C = write_caiman_file(
        path, dims, centers, idx_components=None, with_S=False, with_YrA=False
    )
    r = load_results(path)
    e = r.estimates
    assert e.S.shape == C.shape and not e.S.any()  # neutral values, not an error
    assert e.YrA.shape == C.shape and not e.YrA.any()
    assert r.F_dff is None and r.metrics is None
    assert e.idx_components is None and r.accepted() is None  # never evaluated
    layers = read_results(str(path))
    assert {meta["name"] for _, meta, _ in layers} >= {
        "sparse_caiman footprints",
        "sparse_caiman contours",
    }


def test_caiman_file_saves_back(tmp_path):
    path = tmp_path / "caiman.hdf5"
    write_caiman_file(path, (20, 20), [(8, 8)])
    r = load_results(path)
    back = load_results(save_results(tmp_path / "again.hdf5", r))
    assert (back.estimates.A != r.estimates.A).nnz == 0
    # CaImAn's number strings (bl, c1, lam, neurons_sn) were read as numbers and written back as such
    for name in ("bl", "c1", "lam", "neurons_sn"):
        v = getattr(back.estimates, name)
        assert v.dtype.kind == "f", name
        np.testing.assert_allclose(v, getattr(r.estimates, name))


def test_real_caiman_3d_file_saves_back(shared_data, tmp_path):
    src = shared_data / "caiman_results" / "synthetic3d_caiman.hdf5"
    if not src.exists():
        pytest.skip("shared CaImAn results not available")
    r = load_results(src)
    assert r.estimates.bl.dtype.kind == "f" and np.isfinite(r.estimates.bl).all()
    back = load_results(save_results(tmp_path / "again.hdf5", r))
    np.testing.assert_allclose(back.estimates.bl, r.estimates.bl)
    np.testing.assert_array_equal(back.accepted(), r.accepted())


def test_caiman_layout_with_dff_and_evaluation(tmp_path):
    dims, centers = (30, 30), [(8, 8), (20, 22)]
    path = tmp_path / "evaluated.hdf5"
    dff = np.random.default_rng(3).random((2, 50))
    write_caiman_file(path, dims, centers, F_dff=dff, idx_components=[1])
    with h5py.File(path, "a") as f:
        f["estimates/SNR_comp"] = np.asarray([1.0, 5.0])
        f["estimates/r_values"] = np.asarray([0.1, 0.9])
        f["estimates/cnn_preds"] = np.zeros(0)  # CaImAn without CNN: empty
    r = load_results(path)
    np.testing.assert_allclose(r.F_dff, dff)
    assert r.metrics is not None and r.metrics.cnn_preds is None
    assert list(r.accepted()) == [1]


# --- bad files -----------------------------------------------------------------------------


def _ours(tmp_path, name="ours.hdf5"):
    """A results file written by this package."""
    from napari_caiman.engine.cnmf.estimates import Estimates

    dims, T = (30, 30), 400
    foot = _blobs(dims, [(8, 8), (20, 22)])
    A = sparse.csc_matrix(np.stack([f.ravel(order="F") for f in foot], axis=1))
    rng = np.random.default_rng(0)
    est = Estimates(
        A=A,
        C=rng.random((2, T), np.float32),
        S=np.zeros((2, T), np.float32),
        YrA=np.zeros((2, T), np.float32),
        b=np.zeros((900, 1), np.float32),
        f=np.zeros((1, T), np.float32),
        sn=np.ones(900, np.float32),
        g=np.zeros((2, 1)),
        bl=np.zeros(2),
        c1=np.zeros(2),
        neurons_sn=np.zeros(2),
        lam=np.zeros(2),
        dims=dims,
    )
    return save_results(tmp_path / name, Results(params=CaimanParams(), dims=dims, estimates=est))


def test_truncated_file_is_taken_and_explained(tmp_path, monkeypatch):
    path = _ours(tmp_path)
    data = path.read_bytes()
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.hdf5.*truncated") as info:
        load_results(cut)
    assert info.value.argument == "path"
    assert get_reader(str(cut)) is None  # not a movie either
    reader = get_results_reader(str(cut))
    assert reader is not None  # taken, so the user is told what is wrong
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    assert reader(str(cut)) == [(None,)]  # no layer, no traceback
    assert len(shown) == 1 and "truncated" in shown[0]


def test_not_hdf5_with_an_hdf5_name(tmp_path):
    fake = tmp_path / "notes.hdf5"
    fake.write_text("these are my notes, not a results file\n" * 20)
    assert get_results_reader(str(fake)) is None and get_reader(str(fake)) is None
    with pytest.raises(InputError, match=r"notes\.hdf5.* not an HDF5 file"):
        load_results(fake)
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    assert get_results_reader(str(empty)) is None
    with pytest.raises(InputError, match="not an HDF5 file"):
        load_results(empty)


def test_hdf5_of_another_tool_is_declined(tmp_path):
    other = tmp_path / "suite2p_like.h5"
    with h5py.File(other, "w") as f:
        f["ops/fs"] = 30.0
        f["stat/ypix"] = np.arange(5)
        f["F"] = np.zeros((3, 10))
    assert get_results_reader(str(other)) is None  # other readers may try
    with pytest.raises(
        InputError, match=r"suite2p_like\.h5.*not a napari-caiman/CaImAn results file"
    ) as info:
        load_results(other)
    assert "'dims'" in str(info.value) and "F, ops, stat" in str(info.value)


def test_footprints_that_do_not_fit_dims(tmp_path):
    path = tmp_path / "wrong_dims.hdf5"
    write_caiman_file(path, (30, 30), [(8, 8), (20, 22)])
    with h5py.File(path, "a") as f:
        del f["dims"]
        f["dims"] = np.asarray([32, 30])
    assert get_results_reader(str(path)) is not None  # ours, so it explains
    with pytest.raises(InputError, match=r"wrong_dims\.hdf5.*900 pixels.*960"):
        load_results(path)


@pytest.mark.parametrize(
    "damage, match",
    [
        ("indptr", "cannot read the CNMF results"),
        ("no data", "cannot read the CNMF results"),
        ("traces", "estimates/C has 3 traces for 2 footprints"),
        ("dims", "'dims' must be 2 or 3"),
    ],
)
def test_damaged_parts_are_named(tmp_path, damage, match):
    path = tmp_path / "damaged.hdf5"
    write_caiman_file(path, (30, 30), [(8, 8), (20, 22)])
    with h5py.File(path, "a") as f:
        if damage == "indptr":
            del f["estimates/A/indptr"]
            f["estimates/A/indptr"] = np.asarray([0, 5], np.int32)  # K + 1 entries expected
        elif damage == "no data":
            del f["estimates/A/data"]
        elif damage == "traces":
            del f["estimates/C"]
            f["estimates/C"] = np.zeros((3, 50))
        elif damage == "dims":
            del f["dims"]
            f["dims"] = np.asarray([30])
    with pytest.raises(InputError, match=r"damaged\.hdf5") as info:
        load_results(path)
    assert match in str(info.value)


def test_reader_notifies_the_reason(tmp_path, monkeypatch):
    """napari's own "reader failed" message hides the cause: the reader shows it."""
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    path = _ours(tmp_path)
    cut = tmp_path / "half.hdf5"
    cut.write_bytes(path.read_bytes()[:4096])
    assert read_results(str(cut)) == [(None,)]  # napari's "nothing to add": no traceback
    assert len(shown) == 1 and "half.hdf5" in shown[0] and "truncated" in shown[0]


def test_params_of_a_newer_caiman_are_dropped_not_errors(tmp_path):
    path = tmp_path / "newer.hdf5"
    write_caiman_file(path, (20, 20), [(8, 8)])
    r = load_results(path)
    assert "a_name_of_a_newer_caiman" not in r.params.to_dict()
    assert isinstance(r.params, CaimanParams)


def test_caiman_params_with_float_gsiz_and_bad_values_still_load(tmp_path):
    """CaImAn writes gSiz (7.0, 7.0, 5.0) for a fractional gSig; a value this
    version cannot use must not make the results unreadable."""
    path = tmp_path / "caiman3d.hdf5"
    write_caiman_file(path, (3, 20, 22), [(1, 5, 5)])
    with h5py.File(path, "a") as f:
        del f["params/init/gSiz"]
        f["params/init/gSiz"] = np.asarray([7.0, 7.0, 5.0])
        del f["params/init/K"]
        f["params/init/K"] = np.asarray(
            [[1.5, 2.0]]
        )  # impossible: the default is kept, with a warning
    r = load_results(path)
    assert r.params["gSiz"] == (7, 7, 5) and all(isinstance(v, int) for v in r.params["gSiz"])
    assert r.params["K"] == CaimanParams.defaults()["K"]
    assert r.estimates.A.shape[1] == 1  # the results themselves are all there


def test_backend_survives_save_and_load(tmp_path):
    path = tmp_path / "caiman.hdf5"
    write_caiman_file(path, (20, 20), [(8, 8)])
    r = load_results(path)
    r.params = r.params.copy().update({"backend": "caiman"})
    back = load_results(save_results(tmp_path / "again.hdf5", r))
    assert back.params["backend"] == "caiman"
    with h5py.File(
        tmp_path / "again.hdf5"
    ) as f:  # kept out of 'params' so CaImAn's load_CNMF reads it
        assert "napari_caiman" not in f["params"] and "napari_caiman_params" in f
