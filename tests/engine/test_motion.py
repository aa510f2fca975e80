"""Tests of the motion-correction engine (engine/motion.py)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_caiman.engine.errors import InputError
from napari_caiman.engine.motion import (
    MotionResult,
    apply_shifts,
    crispness,
    iter_motion_correct,
    motion_correct,
)
from napari_caiman.engine.synthetic import make_movie_2d, make_movie_3d


@pytest.fixture(scope="module")
def rigid2d():
    return make_movie_2d((200, 64, 96), n_neurons=15, rigid_motion=4, noise=10, seed=1)


@pytest.fixture(scope="module")
def nonrigid2d():
    return make_movie_2d(
        (200, 64, 96), n_neurons=15, rigid_motion=3, nonrigid_motion=2, noise=10, seed=2
    )


@pytest.fixture(scope="module")
def rigid3d():
    return make_movie_3d((100, 8, 48, 48), n_neurons=10, rigid_motion=(3, 3, 1), noise=10, seed=3)


def _shift_rms(res: MotionResult, sm) -> np.ndarray:
    est = res.shifts_rig if sm.movie.ndim == 3 else res.shifts_rig[:, [2, 0, 1]]  # -> array order
    err = est + sm.shifts  # correction = -displacement
    err -= err.mean(axis=0)  # the template's own offset is arbitrary
    return np.sqrt((err**2).mean(axis=0))


def _corr_truth(movie, clean, margin) -> float:
    crop = (slice(None),) + tuple(
        slice(m, n - m) for m, n in zip(margin, clean.shape[1:], strict=True)
    )
    a = np.asarray(movie, np.float64)[crop].reshape(len(movie), -1)
    b = clean[crop].reshape(len(movie), -1).astype(np.float64)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    return float(np.mean((a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))))


def test_rigid_2d_shifts(rigid2d):
    res = motion_correct(rigid2d.movie, max_shifts=(6, 6))
    assert res.corrected.shape == rigid2d.movie.shape and res.corrected.dtype == np.float32
    assert res.shifts_rig.shape == (200, 2) and res.shifts_els is None
    rms = _shift_rms(res, rigid2d)
    assert np.all(rms < 0.1), rms
    assert res.metrics["crispness_corrected"] > res.metrics["crispness_raw"]
    assert np.nanmean(res.metrics["corr_corrected"]) > np.nanmean(res.metrics["corr_raw"])
    assert set(res.timings) >= {"template", "registration"}
    assert res.params["max_shifts"] == (6, 6)


def test_rigid_2d_binned_path():
    # frames >= 128 px are registered on 2x2-binned copies: same accuracy
    sm = make_movie_2d(
        (120, 128, 160), n_neurons=30, rigid_motion=5, nonrigid_motion=1.5, noise=10, seed=6
    )
    sm_r = make_movie_2d((120, 128, 160), n_neurons=30, rigid_motion=5, noise=10, seed=6)
    res = motion_correct(sm_r.movie, max_shifts=(7, 7))
    assert np.all(_shift_rms(res, sm_r) < 0.1), _shift_rms(res, sm_r)
    pw = motion_correct(
        sm.movie, max_shifts=(7, 7), pw_rigid=True, strides=(48, 48), overlaps=(24, 24)
    )
    m = (12, 12)
    assert _corr_truth(pw.corrected, sm.clean, m) >= 0.98 * _corr_truth(sm.still, sm.clean, m)


def test_rigid_3d_shifts(rigid3d):
    res = motion_correct(rigid3d.movie, max_shifts=(6, 6, 2))
    assert res.shifts_rig.shape == (100, 3)
    assert np.all(_shift_rms(res, rigid3d) < 0.1)
    assert _corr_truth(res.corrected, rigid3d.clean, (2, 7, 7)) >= 0.98 * _corr_truth(
        rigid3d.still, rigid3d.clean, (2, 7, 7)
    )
    assert res.metrics["crispness_corrected"] > res.metrics["crispness_raw"]


def test_pw_rigid_2d(nonrigid2d):
    sm = nonrigid2d
    kw = dict(max_shifts=(6, 6), strides=(24, 24), overlaps=(12, 12), max_deviation_rigid=3)
    rig = motion_correct(sm.movie, **kw)
    pw = motion_correct(sm.movie, pw_rigid=True, **kw)
    m = (11, 11)
    c_still = _corr_truth(sm.still, sm.clean, m)
    c_pw = _corr_truth(pw.corrected, sm.clean, m)
    c_rig = _corr_truth(rig.corrected, sm.clean, m)
    assert c_pw >= 0.98 * c_still, (c_pw, c_still)
    assert c_pw > c_rig
    assert pw.metrics["crispness_corrected"] > pw.metrics["crispness_raw"]
    assert rig.metrics["crispness_corrected"] > rig.metrics["crispness_raw"]
    crop = (slice(None), slice(11, -11), slice(11, -11))
    assert crispness(np.nanmean(pw.corrected[crop], 0)) > crispness(
        np.nanmean(rig.corrected[crop], 0)
    )
    n = pw.shifts_els.shape[1]
    assert pw.shifts_els.shape == (200, n, 2) and pw.patch_bounds.shape == (n, 2, 2)
    assert int(np.prod(pw.patch_grid_shape)) == n
    assert pw.patch_bounds[:, :, 1].max(axis=0).tolist() == [64, 96]  # last patch flush
    # apply_shifts reproduces the correction
    again = apply_shifts(
        sm.movie[:10],
        pw.shifts_rig[:10],
        pw.shifts_els[:10],
        patch_bounds=pw.patch_bounds,
        patch_grid_shape=pw.patch_grid_shape,
    )
    np.testing.assert_allclose(again, pw.corrected[:10], atol=1e-3)


def test_pw_rigid_3d():
    sm = make_movie_3d(
        (60, 8, 48, 48), n_neurons=10, rigid_motion=(2, 2, 1), nonrigid_motion=1.5, noise=10, seed=4
    )
    pw = motion_correct(
        sm.movie, max_shifts=(6, 6, 2), pw_rigid=True, strides=(24, 24, 4), overlaps=(12, 12, 2)
    )
    m = (2, 10, 10)
    assert _corr_truth(pw.corrected, sm.clean, m) >= 0.98 * _corr_truth(sm.still, sm.clean, m)
    assert pw.shifts_els.shape[2] == 3 and pw.patch_bounds.shape[1:] == (3, 2)


@pytest.mark.parametrize("suffix", [".npy", ".tif"])
def test_out_file_matches_memory(tmp_path, rigid2d, suffix):
    mov = rigid2d.movie[:40]
    mem = motion_correct(mov, max_shifts=(6, 6))
    path = tmp_path / f"corr{suffix}"
    disk = motion_correct(mov, max_shifts=(6, 6), out=path)
    assert isinstance(disk.corrected, np.memmap) and not disk.corrected.flags.writeable
    np.testing.assert_array_equal(np.asarray(disk.corrected), mem.corrected)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_cancel_leaves_no_file(tmp_path, rigid2d):
    gen = iter_motion_correct(rigid2d.movie, out=tmp_path / "c.npy", chunk_size=8)
    for p in gen:
        if p.stage == "registering" and p.done >= 16:
            break
    assert any(tmp_path.iterdir())  # temp file exists while running
    gen.close()
    assert not any(tmp_path.iterdir())


def test_nan_frame_error_leaves_no_file(tmp_path, rigid2d):
    mov = rigid2d.movie[:60].copy()
    mov[37, 5, 5] = np.nan
    with pytest.raises(InputError) as e:
        motion_correct(mov, out=tmp_path / "c.tif", chunk_size=8)
    assert e.value.argument == "movie" and "37" in str(e.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(max_shifts=(64, 6)), "max_shifts"),
        (dict(max_shifts=(40, 6)), "max_shifts"),  # more than half the frame
        (dict(pw_rigid=True, strides=(80, 48), overlaps=(8, 8)), "strides"),
        (dict(pw_rigid=True, strides=(48, 48), overlaps=(40, 40)), "overlaps"),
        (dict(max_deviation_rigid=-1), "max_deviation_rigid"),
        (dict(niter_rig=0), "niter_rig"),
        (dict(upsample_factor_grid=0), "upsample_factor_grid"),
        (dict(border_nan="min"), "border_nan"),
        (dict(gSig_filt=0), "gSig_filt"),
        (dict(gSig_filt=(3, -1)), "gSig_filt"),
        (dict(out="x.avi"), "out"),
        (dict(template=np.zeros((5, 5))), "template"),
    ],
)
def test_bad_parameters(kwargs, argument):
    mov = np.random.default_rng(0).random((10, 64, 96)).astype(np.float32)
    with pytest.raises(InputError) as e:
        motion_correct(mov, **kwargs)
    assert e.value.argument == argument


def test_bad_movies():
    with pytest.raises(InputError) as e:
        motion_correct(np.zeros((10, 10)))
    assert e.value.argument == "movie"
    with pytest.raises(InputError) as e:
        motion_correct(np.zeros((1, 10, 10)))
    assert e.value.argument == "movie"
    with pytest.raises(InputError) as e:
        motion_correct(np.zeros((5, 10, 10), complex))
    assert e.value.argument == "movie"
    with pytest.raises(InputError, match="no contrast") as e:
        motion_correct(np.full((20, 32, 32), 7, np.uint16))
    assert e.value.argument == "movie"
    mov = np.ones((20, 32, 32), np.float32)
    mov[3, 1, 1] = np.inf
    with pytest.raises(InputError, match="frame 3"):
        motion_correct(mov)


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.float64])
def test_dtypes_and_memmap(tmp_path, rigid2d, dtype):
    base = motion_correct(rigid2d.movie[:40], max_shifts=(6, 6))
    mov = (
        np.round(rigid2d.movie[:40]).astype(dtype)
        if dtype != np.float64
        else rigid2d.movie[:40].astype(dtype)
    )
    p = tmp_path / "m.npy"
    np.save(p, mov)
    res = motion_correct(np.load(p, mmap_mode="r"), max_shifts=(6, 6))
    assert res.corrected.dtype == np.float32
    assert np.abs(res.shifts_rig - base.shifts_rig).max() < 0.1


def test_gsig_filt_and_template_and_borders(rigid2d):
    mov = rigid2d.movie[:80]
    res = motion_correct(mov, gSig_filt=(3, 3))
    ref = motion_correct(mov)
    assert (
        np.abs(
            res.shifts_rig - ref.shifts_rig - np.median(res.shifts_rig - ref.shifts_rig, 0)
        ).max()
        < 0.5
    )
    again = motion_correct(mov, template=ref.template, border_nan="copy")
    assert np.isfinite(again.corrected).all()
    np.testing.assert_allclose(again.shifts_rig, ref.shifts_rig, atol=0.05)
    assert np.isnan(ref.corrected).any()  # border_nan=True
    assert np.isfinite(motion_correct(mov, border_nan=False).corrected).all()


def test_progress_and_ignored(rigid2d):
    stages = set()
    gen = iter_motion_correct(rigid2d.movie[:50], splits_rig=14, chunk_size=10)
    try:
        while True:
            stages.add(next(gen).stage)
    except StopIteration as stop:
        res = stop.value
    assert stages == {"template", "registering"}
    assert res.params["ignored"] == ["splits_rig"]


def test_h5py_and_dask_inputs(tmp_path, rigid2d):
    h5py = pytest.importorskip("h5py")
    da = pytest.importorskip("dask.array")
    mov = rigid2d.movie[:40]
    base = motion_correct(mov, max_shifts=(6, 6))
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["mov"] = mov
    with h5py.File(tmp_path / "m.h5", "r") as f:
        res = motion_correct(f["mov"], max_shifts=(6, 6))
    np.testing.assert_allclose(res.shifts_rig, base.shifts_rig, atol=1e-5)
    res = motion_correct(da.from_array(mov, chunks=(7, 64, 96)), max_shifts=(6, 6))
    np.testing.assert_allclose(res.shifts_rig, base.shifts_rig, atol=1e-5)


def test_max_shifts_is_a_hard_bound_per_axis():
    # 0 planes of shift allowed -> no z shift at all, however the sub-pixel peak falls
    sm = make_movie_3d((40, 4, 48, 48), n_neurons=6, rigid_motion=(2.0, 2.0, 0.6), seed=5)
    res = motion_correct(sm.movie, max_shifts=(3, 3, 0))
    assert np.all(res.shifts_rig[:, 2] == 0)
    assert np.abs(res.shifts_rig[:, :2]).max() <= 3


def test_patch_field_continues_linearly_past_the_outer_patch_centres():
    # a displacement that grows linearly across the frame must be reproduced at
    # the edges too (held constant there, the outer half-patch kept residual
    # motion that CNMF found as spurious edge components)
    from napari_caiman.engine._registration import field_weights

    centers = np.array([36.0, 84.0, 132.0, 180.0, 220.0])
    W = field_weights(256, centers, upsample=4)
    values = 0.01 * centers - 0.5
    np.testing.assert_allclose(W @ values, 0.01 * np.arange(256) - 0.5, atol=1e-5)
