"""NWB / CSV / TIFF export."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
from scipy import sparse

from napari_caiman.engine.cnmf import Estimates, images_to_pixels
from napari_caiman.engine.errors import InputError
from napari_caiman.io.export import export_csv, export_masks_tiff, export_nwb

pynwb = pytest.importorskip("pynwb")


def _estimates(dims=(20, 30), K=6, T=50, seed=0):
    rng = np.random.default_rng(seed)
    imgs = np.zeros((K, *dims), np.float32)
    for k in range(K):
        box = tuple(min(4, d - 1) for d in dims)
        sl = tuple(
            slice(int(o), int(o) + s)
            for o, s in zip(
                (rng.integers(0, d - s + 1) for d, s in zip(dims, box, strict=False)),
                box,
                strict=False,
            )
        )
        imgs[k][sl] = rng.uniform(0.1, 1, box)
        imgs[k] /= np.linalg.norm(imgs[k])
    A = sparse.csc_matrix(images_to_pixels(imgs))
    C = rng.gamma(1, 1, (K, T)).astype(np.float32)
    P = int(np.prod(dims))
    est = Estimates(
        A=A,
        C=C,
        S=C * 0.1,
        YrA=rng.normal(0, 0.1, (K, T)).astype(np.float32),
        b=np.ones((P, 1), np.float32),
        f=np.ones((1, T), np.float32),
        sn=np.ones(P, np.float32),
        g=np.zeros((K, 1)),
        bl=np.zeros(K),
        c1=np.zeros(K),
        neurons_sn=np.ones(K),
        lam=np.zeros(K),
        dims=dims,
    )
    est.idx_components = np.array([k for k in (0, 2, 3, 5) if k < K])
    est.idx_components_bad = np.setdiff1d(np.arange(K), est.idx_components)
    return est, imgs


@pytest.mark.parametrize("mask_type", ["image", "pixel"])
def test_nwb_2d_round_trip(tmp_path, mask_type):
    est, imgs = _estimates()
    dff = np.random.default_rng(1).normal(size=est.C.shape).astype(np.float32)
    path = export_nwb(
        tmp_path / "out.nwb",
        est,
        fr=15.0,
        F_dff=dff,
        grid_spacing=(1.5, 1.5),
        movie_path=tmp_path / "movie.tif",
        mask_type=mask_type,
        include_deconvolved=True,
    )
    assert path.is_file() and [p.name for p in tmp_path.iterdir()] == ["out.nwb"]
    sel = est.idx_components
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        ps = nwb.processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]
        assert len(ps) == sel.size
        assert list(ps.id[:]) == sel.tolist()
        for j, k in enumerate(sel):
            if mask_type == "image":
                m = ps["image_mask"][j]
                assert m.shape == (20, 30)
            else:
                m = np.zeros((20, 30))
                for x, y, w in ps["pixel_mask"][j]:
                    m[int(y), int(x)] = w
            np.testing.assert_allclose(m, imgs[k], atol=1e-6)
        rrs = nwb.processing["ophys"]["Fluorescence"]["RoiResponseSeries"]
        assert rrs.rate == 15.0
        np.testing.assert_allclose(rrs.data[:], est.C[sel].T, rtol=1e-6)
        np.testing.assert_allclose(
            nwb.processing["ophys"]["DfOverF"]["dff"].data[:], dff[sel].T, rtol=1e-6
        )
        assert nwb.processing["ophys"]["Fluorescence"]["Deconvolved"].data.shape == (50, 4)
        plane = nwb.imaging_planes["ImagingPlane"]
        np.testing.assert_allclose(plane.grid_spacing[:], [1.5, 1.5])
        assert nwb.acquisition["TwoPhotonSeries"].external_file[0] == str(tmp_path / "movie.tif")


def test_nwb_3d_all_components(tmp_path):
    est, imgs = _estimates(dims=(4, 12, 10), K=3, T=20)
    path = export_nwb(tmp_path / "v.nwb", est, fr=5.0, accepted_only=False, mask_type="image")
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        ps = io.read().processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]
        assert len(ps) == 3
        for k in range(3):
            m = ps["image_mask"][k]
            assert m.shape == (12, 10, 4)  # (Y, X, Z): CaImAn's dims order
            np.testing.assert_allclose(np.moveaxis(m, -1, 0), imgs[k], atol=1e-6)
    path = export_nwb(tmp_path / "v2.nwb", est, fr=5.0, accepted_only=False, mask_type="pixel")
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        ps = io.read().processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]
        m = np.zeros((4, 12, 10))
        for x, y, z, w in ps["voxel_mask"][1]:
            m[int(z), int(y), int(x)] = w
        np.testing.assert_allclose(m, imgs[1], atol=1e-6)


def test_nwb_errors(tmp_path):
    est, _ = _estimates()
    with pytest.raises(InputError) as e:
        export_nwb(tmp_path / "missing" / "x.nwb", est, fr=30)
    assert e.value.argument == "nwb"
    with pytest.raises(InputError, match="fr"):
        export_nwb(tmp_path / "x.nwb", est, fr=0)
    with pytest.raises(InputError):
        export_nwb(tmp_path / "x.nwb", est, fr=30, F_dff=np.zeros((2, 3)))
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(InputError) as e:
                export_nwb(ro / "x.nwb", est, fr=30)
            assert e.value.argument == "nwb"
        finally:
            ro.chmod(0o700)
    assert not list(tmp_path.glob("*.nwb"))


def test_csv_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    tr = rng.normal(size=(3, 40))
    p = export_csv(tmp_path / "t.csv", tr, ids=[4, 7, 9], fr=20.0)
    header = p.read_text().splitlines()[0]
    assert header == "time_s,4,7,9"
    data = np.loadtxt(p, delimiter=",", skiprows=1)
    np.testing.assert_allclose(data[:, 0], np.arange(40) / 20.0)
    np.testing.assert_allclose(data[:, 1:].T, tr, rtol=1e-5, atol=1e-9)
    with pytest.raises(InputError) as e:
        export_csv(tmp_path / "nope" / "t.csv", tr, fr=20.0)
    assert e.value.argument == "csv"
    with pytest.raises(InputError):
        export_csv(tmp_path / "t2.csv", tr, ids=[1], fr=20.0)


def test_tiff_round_trip(tmp_path):
    est, imgs = _estimates()
    p = export_masks_tiff(tmp_path / "m.tif", est)
    with tifffile.TiffFile(p) as tf:
        data = tf.asarray()
        assert tf.shaped_metadata[0]["ids"] == [0, 2, 3, 5]
    assert data.dtype == np.float32 and data.shape == (4, 20, 30)
    np.testing.assert_allclose(data, imgs[est.idx_components], atol=1e-7)
    p = export_masks_tiff(tmp_path / "lab.tif", est, labels=True)
    lab = tifffile.imread(p)
    assert lab.shape == (20, 30) and set(np.unique(lab)) <= set(range(5))
    est3, imgs3 = _estimates(dims=(4, 12, 10), K=3, T=20)
    p = export_masks_tiff(tmp_path / "m3.tif", est3, accepted_only=False)
    np.testing.assert_allclose(tifffile.imread(p), imgs3, atol=1e-7)
    with pytest.raises(InputError) as e:
        export_masks_tiff(tmp_path / "nope" / "m.tif", est)
    assert e.value.argument == "tiff"
