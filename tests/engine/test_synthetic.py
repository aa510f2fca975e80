"""Ground-truth synthetic movies: shapes, determinism, motion convention."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from napari_caiman.engine.errors import InputError
from napari_caiman.engine.synthetic import make_movie_2d, make_movie_3d


def _corr(a, b):
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


@pytest.fixture(scope="module")
def mov2d():
    return make_movie_2d(
        (60, 64, 80), n_neurons=10, gSig=3, rigid_motion=3, nonrigid_motion=1.5, seed=1
    )


def test_shapes_and_dtypes_2d(mov2d):
    s = mov2d
    T, Y, X = 60, 64, 80
    assert s.movie.shape == (T, Y, X) and s.movie.dtype == np.float32
    assert s.clean.shape == s.still.shape == (T, Y, X)
    assert s.clean.dtype == s.still.dtype == np.float32
    assert s.shifts.shape == (T, 2)
    assert s.flow.shape == (T, 2, Y, X) and s.flow.dtype == np.float32
    assert s.footprints.shape == (10, Y, X)
    assert s.traces.shape == s.spikes.shape == (10, T)
    assert s.b.shape == (1, Y, X) and s.f.shape == (1, T)
    assert s.g.shape == (10, 2)
    assert s.params["seed"] == 1
    assert np.allclose(np.abs(s.shifts).max(axis=0), 3.0)
    nonrigid = s.flow - s.shifts[:, :, None, None]
    assert np.sqrt((nonrigid**2).sum(axis=1)).max() == pytest.approx(1.5, rel=0.05)
    assert s.footprints_caiman().shape == (Y * X, 10)


def test_truth_properties(mov2d):
    s = mov2d
    assert np.all(s.traces >= 0) and np.all(s.spikes >= 0)
    assert s.spikes.sum() > 0
    assert np.allclose(s.footprints.reshape(10, -1).max(axis=1), 1.0)
    assert np.all(s.footprints >= 0)
    # footprints inside the frame: nothing touches the border
    assert s.footprints[:, 0, :].max() < 0.05 and s.footprints[:, -1, :].max() < 0.05
    assert s.footprints[:, :, 0].max() < 0.05 and s.footprints[:, :, -1].max() < 0.05
    assert np.all(s.b >= 0) and np.all(s.f >= 0)
    # clean == A C + b f
    recon = np.einsum("kyx,kt->tyx", s.footprints, s.traces) + np.einsum("byx,bt->tyx", s.b, s.f)
    np.testing.assert_allclose(s.clean, recon, rtol=1e-4, atol=1e-2)
    # still = clean + noise of the stated SD
    assert np.std(s.still - s.clean) == pytest.approx(s.noise_sd, rel=0.05)


def test_deterministic():
    a = make_movie_2d((20, 40, 40), n_neurons=5, rigid_motion=2, nonrigid_motion=1, seed=3)
    b = make_movie_2d(
        (20, 40, 40), n_neurons=5, rigid_motion=2, nonrigid_motion=1, seed=3, chunk_frames=7
    )
    c = make_movie_2d((20, 40, 40), n_neurons=5, rigid_motion=2, nonrigid_motion=1, seed=4)
    np.testing.assert_array_equal(a.movie, b.movie)
    np.testing.assert_array_equal(a.traces, b.traces)
    np.testing.assert_array_equal(a.shifts, b.shifts)
    assert not np.array_equal(a.movie, c.movie)


def test_rigid_shift_convention():
    """movie[t](r) = still[t](r - shifts[t]): check with an independent estimator."""
    s = make_movie_2d((10, 96, 96), n_neurons=8, rigid_motion=4, noise=2, seed=2)
    assert s.flow.shape == (10, 2, 96, 96)
    for t in range(0, 10, 3):
        (dx, dy), _ = cv2.phaseCorrelate(
            s.still[t].astype(np.float64), s.movie[t].astype(np.float64)
        )
        np.testing.assert_allclose((dy, dx), s.shifts[t], atol=0.15)
        # undoing the shift gives back the still frame
        back = ndimage.shift(s.movie[t], -s.shifts[t], order=3, mode="reflect")
        m = 8
        assert _corr(back[m:-m, m:-m], s.still[t, m:-m, m:-m]) > 0.995


def test_flow_convention_nonrigid(mov2d):
    s = mov2d
    grid = np.mgrid[: s.movie.shape[1], : s.movie.shape[2]].astype(np.float64)
    for t in (0, 30, 59):
        expect = ndimage.map_coordinates(s.still[t], grid - s.flow[t], order=3, mode="reflect")
        m = 6
        assert _corr(expect[m:-m, m:-m], s.movie[t, m:-m, m:-m]) > 0.995
        assert _corr(s.still[t, m:-m, m:-m], s.movie[t, m:-m, m:-m]) < _corr(
            expect[m:-m, m:-m], s.movie[t, m:-m, m:-m]
        )


def test_no_motion():
    s = make_movie_2d((10, 32, 32), n_neurons=3)
    assert s.flow is None
    np.testing.assert_array_equal(s.movie, s.still)
    assert np.all(s.shifts == 0)


def test_uint16_and_out(tmp_path):
    s = make_movie_2d((15, 48, 48), n_neurons=4, rigid_motion=2, dtype=np.uint16, return_flow=False)
    f = make_movie_2d((15, 48, 48), n_neurons=4, rigid_motion=2, return_flow=False)
    assert s.movie.dtype == np.uint16 and s.flow is None
    np.testing.assert_array_equal(s.movie, np.clip(np.rint(f.movie), 0, 65535).astype(np.uint16))
    out = tmp_path / "m.npy"
    m = make_movie_2d(
        (15, 48, 48), n_neurons=4, rigid_motion=2, dtype=np.uint16, out=out, return_truth=False
    )
    assert isinstance(m.movie, np.memmap) and m.still is None and m.clean is None
    np.testing.assert_array_equal(np.load(out), s.movie)
    assert list(tmp_path.iterdir()) == [out]


def test_3d():
    s = make_movie_3d(
        (20, 8, 40, 40), n_neurons=6, gSig=(3, 3, 1.5), rigid_motion=(2, 2, 1), nonrigid_motion=1
    )
    assert s.movie.shape == (20, 8, 40, 40)
    assert s.flow.shape == (20, 3, 8, 40, 40)
    assert s.footprints.shape == (6, 8, 40, 40)
    # array order (z, y, x): z max |shift| 1, y/x 2
    np.testing.assert_allclose(np.abs(s.shifts).max(axis=0), (1, 2, 2), rtol=1e-5)
    grid = np.mgrid[:8, :40, :40].astype(np.float64)
    t = 5
    expect = ndimage.map_coordinates(s.still[t], grid - s.flow[t], order=3, mode="reflect")
    sl = (slice(2, -2), slice(5, -5), slice(5, -5))
    assert _corr(expect[sl], s.movie[t][sl]) > 0.99
    assert s.caiman_dims == (40, 40, 8)
    A = s.footprints_caiman().toarray()
    np.testing.assert_array_equal(
        A[:, 0].reshape(40, 40, 8, order="F"), s.footprints[0].transpose(1, 2, 0)
    )


def test_3d_rigid_integer_shift_exact():
    s = make_movie_3d((4, 6, 24, 24), n_neurons=2, gSig=(3, 3, 1), rigid_motion=0)
    from napari_caiman.engine.synthetic_model import _warp_3d

    base = np.stack(
        np.meshgrid(np.arange(24, dtype=np.float32), np.arange(24, dtype=np.float32), indexing="ij")
    )
    w = _warp_3d(s.still[0], (1.0, 2.0, -3.0), None, base)
    np.testing.assert_allclose(w[1:, 2:, :-3], s.still[0][:-1, :-2, 3:], atol=1e-3)


def test_bad_input():
    with pytest.raises(InputError):
        make_movie_2d((10, 32))
    with pytest.raises(InputError):
        make_movie_2d((10, 32, 32), nonrigid_motion=-1)
    with pytest.raises(InputError):
        make_movie_2d((10, 32, 32), dtype=np.complex64)


def test_reuse_opens_the_movie_an_earlier_call_wrote_and_gives_the_same_truth(tmp_path):
    from napari_caiman.engine.synthetic import make_movie

    path = tmp_path / "m.tif"
    kw = dict(
        n_neurons=5, gSig=3, rigid_motion=1.0, dtype=np.uint16, seed=4, out=path, return_flow=False
    )
    first = make_movie((40, 32, 32), **kw)
    written = path.stat().st_mtime_ns
    again = make_movie((40, 32, 32), reuse=True, **kw)
    assert path.stat().st_mtime_ns == written  # not written again
    np.testing.assert_array_equal(np.asarray(again.movie), np.asarray(first.movie))
    np.testing.assert_array_equal(again.footprints, first.footprints)
    np.testing.assert_array_equal(again.traces, first.traces)
