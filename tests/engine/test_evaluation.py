"""Component evaluation (SNR, r-values, thresholds) on synthetic ground truth."""

from __future__ import annotations

import copy
import logging
import time

import numpy as np
import pytest
from scipy import ndimage, sparse

from napari_caiman.engine.cnmf import cnmf, images_to_pixels, match_components
from napari_caiman.engine.errors import InputError
from napari_caiman.engine.evaluation import (
    Metrics,
    apply_thresholds,
    compute_metrics,
    evaluate_components,
    event_exceptionality,
    iter_compute_metrics,
)
from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.progress import Progress
from napari_caiman.engine.synthetic import make_movie_2d

N_TRUE = 15
N_FAKE = 12


def _add_spurious(est, movie, n, seed=0):
    """Append ``n`` noise components (Gaussian blobs, traces fitted to the residual).

    Their traces are what CNMF would give a blob of pure noise: the projection
    of the residual movie onto the blob, split into a smoothed non-negative
    part (C) and the rest (YrA).
    """
    rng = np.random.default_rng(seed)
    Y, X = est.dims
    yy, xx = np.mgrid[:Y, :X]
    blobs = []
    for _ in range(n):
        cy, cx = rng.uniform(6, Y - 6), rng.uniform(6, X - 6)
        s = rng.uniform(3, 5)
        g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        g[g < 0.05] = 0
        blobs.append(g / np.linalg.norm(g))
    Anew = images_to_pixels(np.array(blobs))  # (P, n) CaImAn order
    T = movie.shape[0]
    Yr = movie.reshape(T, -1).swapaxes(0, 0)
    frames = np.asarray(movie, np.float64).swapaxes(-1, -2).reshape(T, -1).T  # (P, T) CaImAn order
    resid = frames - est.A @ est.C - est.b @ est.f
    proj = Anew.T @ resid  # (n, T)
    del Yr
    sm = ndimage.gaussian_filter1d(proj, 2, axis=1)
    Cn = np.clip(sm - np.median(sm, axis=1, keepdims=True), 0, None)
    est.A = sparse.hstack([est.A, sparse.csc_matrix(Anew)]).tocsc()
    est.C = np.vstack([est.C, Cn]).astype(np.float32)
    est.YrA = np.vstack([est.YrA, proj - Cn]).astype(np.float32)
    est.S = np.vstack([est.S, np.zeros_like(Cn)]).astype(np.float32)
    return est


@pytest.fixture(scope="module")
def evaluated():
    m = make_movie_2d((500, 64, 64), n_neurons=N_TRUE, seed=1)
    params = CaimanParams.from_dict({"K": 25, "gSig": (4, 4)})
    est = cnmf(m.movie, params)
    K_cnmf = est.n_components
    est = _add_spurious(est, m.movie, N_FAKE)
    metrics = compute_metrics(m.movie, est, params)
    match = match_components(est, m.footprints, true_traces=m.traces)
    matched = np.zeros(est.n_components, bool)
    matched[match.pairs[:, 1]] = True
    fake = np.zeros(est.n_components, bool)
    fake[K_cnmf:] = True
    return m, est, params, metrics, matched, fake


def test_true_neurons_score_higher(evaluated):
    m, est, params, met, matched, fake = evaluated
    assert met.SNR_comp.shape == met.r_values.shape == met.size.shape == (est.n_components,)
    assert met.cnn_preds is None and not met.cnn_available
    # every true neuron beats every injected noise component on SNR, and on r-value on average
    assert met.SNR_comp[matched].min() > met.SNR_comp[fake].max()
    assert np.median(met.r_values[matched]) > 0.9 and met.r_values[matched].min() > 0.8
    assert np.median(met.r_values[matched]) > np.median(met.r_values[fake]) + 0.3
    unmatched = ~matched
    assert np.median(met.SNR_comp[matched]) > np.median(met.SNR_comp[unmatched])


def test_default_thresholds_precision_recall(evaluated):
    m, est, params, met, matched, fake = evaluated
    good, bad = apply_thresholds(met)  # CaImAn defaults: min_SNR 2.5, rval_thr 0.8
    assert np.union1d(good, bad).size == est.n_components and np.intersect1d(good, bad).size == 0
    acc = np.zeros(est.n_components, bool)
    acc[good] = True
    tp = int((acc & matched).sum())
    precision = tp / max(1, acc.sum())
    recall = tp / N_TRUE
    print(
        f"accepted {acc.sum()} of {est.n_components}: precision {precision:.3f} recall {recall:.3f}"
    )
    assert precision >= 0.9 and recall >= 0.9
    assert not (acc & fake).any()


def test_evaluate_components_sets_indices(evaluated, caplog, monkeypatch):
    import napari_caiman.engine.evaluation as evaluation

    m, est, params, met, matched, fake = evaluated
    monkeypatch.setattr(evaluation, "_CNN_WARNED", False)
    with caplog.at_level(logging.WARNING):
        evaluate_components(
            m.movie, est, params
        )  # use_cnn unset: the native default, no CNN, no warning
    assert "CNN" not in caplog.text
    with caplog.at_level(logging.WARNING):
        met2 = evaluate_components(
            m.movie, est, params.copy().update({"use_cnn": True})
        )  # asked for
    assert "CNN" in caplog.text and not met2.cnn_available
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        evaluate_components(m.movie, est, params)
    assert "CNN" not in caplog.text  # said once per process, not for every item of a batch
    np.testing.assert_array_equal(met2.SNR_comp, met.SNR_comp)
    good, bad = apply_thresholds(met)
    np.testing.assert_array_equal(est.idx_components, good)
    np.testing.assert_array_equal(est.idx_components_bad, bad)


def test_metrics_from_saved(evaluated):
    m, est, params, met, matched, fake = evaluated
    back = Metrics.from_saved(met.to_dict(), est)
    np.testing.assert_array_equal(back.size, met.size)
    np.testing.assert_array_equal(apply_thresholds(back)[0], apply_thresholds(met)[0])
    assert not back.cnn_available
    assert Metrics.from_saved({"SNR_comp": met.SNR_comp}) is None


def test_chunked_and_memmap_match(evaluated, tmp_path):
    m, est, params, met, matched, fake = evaluated
    path = tmp_path / "m.npy"
    np.save(path, m.movie)
    mm = np.load(path, mmap_mode="r")
    gen = iter_compute_metrics(mm, est, params, chunk_size=37)
    reports = []
    try:
        while True:
            reports.append(next(gen))
    except StopIteration as stop:
        met2 = stop.value
    assert all(isinstance(p, Progress) for p in reports) and len(reports) > 5
    np.testing.assert_allclose(met2.r_values, met.r_values, atol=1e-6)
    np.testing.assert_allclose(met2.SNR_comp, met.SNR_comp)


def test_thresholds_do_not_recompute(evaluated, monkeypatch):
    m, est, params, met, matched, fake = evaluated
    import napari_caiman.engine.evaluation as ev

    calls = {"n": 0}
    orig = ev.event_exceptionality

    def counting(*a, **k):
        calls["n"] += 1
        return orig(*a, **k)

    monkeypatch.setattr(ev, "event_exceptionality", counting)
    n_prev = None
    for thr in np.linspace(0, 10, 21):
        good, _ = apply_thresholds(met, min_SNR=thr, rval_thr=1.0)
        if n_prev is not None:
            assert good.size <= n_prev  # monotone in the threshold
        n_prev = good.size
    assert calls["n"] == 0
    # stricter lowest-bounds reject even what the disjunction accepts (without the high-r exemption
    # from SNR_lowest, which test_high_rval_exemption_* cover)
    good, _ = apply_thresholds(met, min_SNR=0, SNR_lowest=1e9, high_rval_thr=None)
    assert good.size == 0
    # size limits
    good, _ = apply_thresholds(met, min_SNR=0, min_size=10**9)
    assert good.size == 0


def test_apply_thresholds_speed_5000():
    rng = np.random.default_rng(0)
    K = 5000
    met = Metrics(
        SNR_comp=rng.gamma(2, 2, K), r_values=rng.uniform(-1, 1, K), size=rng.integers(10, 400, K)
    )
    apply_thresholds(met)
    t = time.perf_counter()
    for _ in range(100):
        apply_thresholds(met, min_SNR=2.0, rval_thr=0.7, min_size=20, max_size=300)
    dt = (time.perf_counter() - t) / 100
    assert dt < 1e-3, dt


def test_cnn_terms_used_when_available():
    met = Metrics(
        SNR_comp=np.array([0.1, 3.0, 3.0, 1.0]),
        r_values=np.array([0.0, 0.0, 0.0, 0.0]),
        size=np.array([10, 10, 10, 10]),
        cnn_preds=np.array([0.95, 0.5, 0.05, 0.5]),
        cnn_available=True,
    )
    good, _ = apply_thresholds(met, use_cnn=True, SNR_lowest=0.5)
    assert good.tolist() == [1]  # 0: SNR below lowest; 2: CNN below lowest; 3: nothing good
    good, _ = apply_thresholds(met, use_cnn=True, SNR_lowest=0.0)
    assert good.tolist() == [0, 1]
    # without predictions use_cnn is ignored
    met.cnn_preds = None
    good, _ = apply_thresholds(met, use_cnn=True, SNR_lowest=0.0)
    assert good.tolist() == [1, 2]


def test_snr_scale_matches_definition():
    """A flat noisy trace has SNR ~ 0; a long transient at 7.5 noise SD gives SNR ~ 2.5."""
    rng = np.random.default_rng(0)
    T, N = 3000, 12
    noise = rng.standard_normal((2, T))
    tr = noise.copy()
    tr[1, 1000 : 1000 + N] += 7.5  # 7.5 sd = 3 * 2.5: the exceptionality z is in units of 3 sd
    snr, fit, sd, md = event_exceptionality(tr, N)
    assert snr[0] < 1.5
    assert 2.0 < snr[1] < 3.2
    np.testing.assert_allclose(sd, 1.0, atol=0.15)


def test_bad_input(evaluated):
    m, est, params, met, matched, fake = evaluated
    with pytest.raises(InputError) as e:
        compute_metrics(m.movie[:, :32], est, params)
    assert (
        e.value.argument == "movie"
        and "(500, 32, 64)" in str(e.value)
        and "(64, 64)" in str(e.value)
    )
    with pytest.raises(InputError, match="frames"):
        compute_metrics(m.movie[:100], est, params)
    with pytest.raises(InputError) as e:
        apply_thresholds(met, rval_thr=1.5)
    assert e.value.argument == "rval_thr"
    with pytest.raises(InputError):
        apply_thresholds(met, min_SNR=float("nan"))
    with pytest.raises(InputError):
        apply_thresholds(met, min_SNR=-1)
    bad = m.movie.copy()
    bad[250, 10, 10] = np.nan
    bad_est = type(est)(**{**est.__dict__})
    bad_est.YrA = est.YrA.copy()
    bad_est.YrA[3, 7] = np.nan
    with pytest.raises(InputError, match="NaN"):
        compute_metrics(m.movie, bad_est, params)
    # NaN in the movie is reported when it falls in frames that are read
    movie_nan = m.movie.copy()
    movie_nan[:] = np.nan
    with pytest.raises(InputError, match="NaN"):
        compute_metrics(movie_nan, est, params)


# ----------------------------------------------------------------------------- dF/F


def _dff_case(T=3000, seed=0):
    from napari_caiman.engine.cnmf import Estimates

    rng = np.random.default_rng(seed)
    dims = (16, 16)
    P = 256
    img = np.zeros(dims)
    img[4:10, 5:11] = 1.0
    a = images_to_pixels(img[None])[:, 0]
    a /= np.linalg.norm(a)
    t = np.arange(T)
    F0 = 100 + 30 * np.sin(2 * np.pi * t / T)  # slow drift of the neuron's baseline
    beta = 50.0  # background under the footprint, trace units
    spikes = (rng.random(T) < 0.003) * rng.uniform(0.5, 1.0, T)  # ~15 % of frames active
    d = np.zeros(T)
    for i in range(T):  # true dF/F: exponential transients
        d[i] = (d[i - 1] * np.exp(-1 / 12) if i else 0) + spikes[i]
    F = F0 + (F0 + beta) * d
    noise = rng.normal(0, 1.0, T)
    b = (a * beta)[:, None]  # a^T b = beta (|a| = 1), f = 1
    est = Estimates(
        A=sparse.csc_matrix(a[:, None]),
        C=F[None].astype(np.float32),
        S=np.zeros((1, T), np.float32),
        YrA=noise[None].astype(np.float32),
        b=b,
        f=np.ones((1, T)),
        sn=np.ones(P),
        g=np.zeros((1, 2)),
        bl=np.zeros(1),
        c1=np.zeros(1),
        neurons_sn=np.ones(1),
        lam=np.zeros(1),
        dims=dims,
    )
    return est, d, F0, beta, noise


@pytest.mark.parametrize("use_fast", [False, True])
def test_detrend_df_f_known_baseline(use_fast):
    from napari_caiman.engine.dff import detrend_df_f

    est, d, F0, beta, noise = _dff_case()
    dff = detrend_df_f(est, frames_window=500, use_fast=use_fast)
    assert dff.shape == (1, d.size) and dff.dtype == np.float32
    expected = d + noise / (F0 + beta)
    err = np.abs(dff[0] - expected)
    print(
        f"fast={use_fast}: median |err| {np.median(err):.4f}, 99th pct {np.percentile(err, 99):.4f}"
    )
    # transients are 0.5-1 dF/F: typical error < 1 %, worst frames (dense activity in a window) < 8 %
    assert np.median(err) < 0.01 and np.percentile(err, 99) < 0.08
    assert np.corrcoef(dff[0], d)[0, 1] > 0.98
    # detrend only: F - F0 in trace units
    det = detrend_df_f(est, frames_window=500, use_fast=use_fast, detrend_only=True)[0]
    assert np.median(np.abs(det - (F0 + beta) * d - noise)) < 1.5
    # a fixed low percentile sits below the baseline (noise and drift within the
    # window) but still follows the drift; the automatic percentile does better
    low = detrend_df_f(est, frames_window=500, flag_auto=False, quantileMin=8, use_fast=use_fast)[0]
    assert np.median(np.abs(low - expected)) < 0.08 and np.corrcoef(low, d)[0, 1] > 0.93
    assert np.median(np.abs(low - expected)) > np.median(err)


def test_detrend_df_f_bad_input():
    from napari_caiman.engine.dff import detrend_df_f

    est, *_ = _dff_case(T=200)
    with pytest.raises(InputError):
        detrend_df_f(est, quantileMin=150)
    with pytest.raises(InputError):
        detrend_df_f(est, frames_window=0)
    est.YrA[0, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        detrend_df_f(est)
    # window longer than the movie: one baseline per trace
    est.YrA[0, 5] = 0
    assert np.isfinite(detrend_df_f(est, frames_window=10_000)).all()


# ----------------------------------------------------------------------------- more cases


def test_exclude_mode_and_background_options(evaluated):
    m, est, params, met, matched, fake = evaluated
    ex = compute_metrics(m.movie, est, params, overlap="exclude")  # CaImAn's frame exclusion
    assert np.median(ex.r_values[matched]) > np.median(ex.r_values[fake]) + 0.3
    raw = compute_metrics(m.movie, est, params, subtract_background=False)
    # the default (dominant frames, overlaps and background subtracted) separates better
    gap = np.median(met.r_values[matched]) - np.median(met.r_values[fake])
    assert gap >= np.median(ex.r_values[matched]) - np.median(ex.r_values[fake])
    assert gap >= np.median(raw.r_values[matched]) - np.median(raw.r_values[fake])
    for mode in ("dominant", "subtract"):
        other = compute_metrics(m.movie, est, params, overlap=mode)
        assert np.median(other.r_values[matched]) > np.median(other.r_values[fake]) + 0.3
    with pytest.raises(InputError):
        compute_metrics(m.movie, est, params, overlap="nope")


def _truth_estimates(truth):
    from napari_caiman.engine.cnmf import Estimates, frames_to_pixels

    fp = truth.footprints.astype(np.float64)
    K = len(fp)
    norms = np.linalg.norm(fp.reshape(K, -1), axis=1)
    A = sparse.csc_matrix(images_to_pixels(fp / norms.reshape((K,) + (1,) * (fp.ndim - 1))))
    C = truth.traces * norms[:, None]
    b = images_to_pixels(truth.b.astype(np.float64))
    Y = frames_to_pixels(truth.movie.astype(np.float64))
    YrA = A.T @ (Y - A @ C - b @ truth.f)
    P = A.shape[0]
    return Estimates(
        A=A,
        C=C.astype(np.float32),
        S=np.zeros_like(C),
        YrA=YrA.astype(np.float32),
        b=b,
        f=truth.f,
        sn=np.ones(P),
        g=np.zeros((K, 2)),
        bl=np.zeros(K),
        c1=np.zeros(K),
        neurons_sn=np.ones(K),
        lam=np.zeros(K),
        dims=truth.frame_shape,
    )


def test_3d_truth_components_pass():
    from napari_caiman.engine.synthetic import make_movie_3d

    truth = make_movie_3d((200, 6, 40, 40), n_neurons=8, seed=2)
    est = _truth_estimates(truth)
    met = compute_metrics(truth.movie, est, {"fr": 30, "decay_time": 0.4})
    assert met.size.shape == (8,) and (met.size > 0).all()
    # neuron 4 fires once, in the last frame (the end of the movie counts as a
    # peak, but 1 frame of signal in 4 gives a weak r); all others are consistent
    assert np.sort(met.r_values)[1] > 0.8, met.r_values
    assert met.n_frames_used[4] > 0
    good, _ = apply_thresholds(met)
    assert good.size >= 7
    # wrong axis order: dims mismatch is reported with both shapes
    with pytest.raises(InputError, match="movie"):
        compute_metrics(np.moveaxis(truth.movie, 1, -1), est)


def test_empty_and_silent_components():
    from napari_caiman.engine.cnmf import Estimates

    T, dims = 100, (10, 10)
    rng = np.random.default_rng(0)
    movie = rng.normal(100, 1, (T, *dims)).astype(np.float32)
    empty = Estimates.empty(dims, T)
    met = compute_metrics(movie, empty)
    assert met.SNR_comp.shape == (0,)
    assert [x.size for x in apply_thresholds(met)] == [0, 0]
    # one silent component (C = 0): SNR from its residual only, r = 0, no error
    a = np.zeros((100, 2))
    a[:12, 0] = 1
    a[50:60, 1] = 1  # second column: empty footprint at the end is fine too
    a[:, 1] = 0
    est = Estimates(
        A=sparse.csc_matrix(a),
        C=np.zeros((2, T), np.float32),
        S=np.zeros((2, T), np.float32),
        YrA=rng.normal(0, 1, (2, T)).astype(np.float32),
        b=np.zeros((100, 0)),
        f=np.zeros((0, T)),
        sn=np.ones(100),
        g=np.zeros((2, 1)),
        bl=np.zeros(2),
        c1=np.zeros(2),
        neurons_sn=np.ones(2),
        lam=np.zeros(2),
        dims=dims,
    )
    met = compute_metrics(movie, est)
    assert met.r_values.tolist() == [0.0, 0.0] and met.size.tolist() == [12, 0]
    assert (met.SNR_comp < 2.5).all()


def test_thresholds_match_caimans_rule_on_random_metrics():
    """CaImAn's select_components_from_metrics, restated as set operations."""
    rng = np.random.default_rng(5)
    K = 400
    snr = rng.gamma(1.5, 2, K)
    r = rng.uniform(-1, 1, K)
    cnn = rng.uniform(0, 1, K)
    met = Metrics(SNR_comp=snr, r_values=r, size=np.full(K, 30), cnn_preds=cnn, cnn_available=True)
    for kw in (
        dict(),
        dict(min_SNR=4, rval_thr=0.5, SNR_lowest=1, rval_lowest=0),
        dict(use_cnn=True, min_cnn_thr=0.7, cnn_lowest=0.2),
    ):
        good, bad = apply_thresholds(met, **kw, joint_SNR_frac=None)  # CaImAn's rule: no joint test
        p = (
            dict(
                min_SNR=2.5,
                SNR_lowest=0.5,
                rval_thr=0.8,
                rval_lowest=-1.0,
                use_cnn=False,
                min_cnn_thr=0.9,
                cnn_lowest=0.1,
            )
            | kw
        )
        accepted = np.union1d(np.where(r >= p["rval_thr"])[0], np.where(snr >= p["min_SNR"])[0])
        rejected = np.where((r <= p["rval_lowest"]) | (snr <= p["SNR_lowest"]))[0]
        if p["use_cnn"]:
            accepted = np.union1d(accepted, np.where(cnn >= p["min_cnn_thr"])[0])
            rejected = np.union1d(rejected, np.where(cnn <= p["cnn_lowest"])[0])
        expected = np.setdiff1d(accepted, rejected)
        np.testing.assert_array_equal(good, expected)
        np.testing.assert_array_equal(bad, np.setdiff1d(np.arange(K), expected))


def test_joint_test_accepts_both_weaker_tests_together_and_follows_the_thresholds():
    """SNR >= joint_SNR_frac x min_SNR and r >= joint_rval_frac x rval_thr together also pass; neither
    alone does, the hard floors still hold, and stricter main thresholds make the joint test stricter."""
    rng = np.random.default_rng(3)
    K = 2000
    snr, r = rng.uniform(0, 4, K), rng.uniform(-1, 1, K)
    ones = np.ones(K)
    met = Metrics(
        SNR_comp=snr,
        r_values=r,
        size=np.full(K, 30),
        solidity=ones,
        n_pieces=ones.astype(int),
        area_ratio=ones / 4,
        elongation=ones,
    )
    kw = dict(min_SNR=2.0, rval_thr=0.8, SNR_lowest=0.5, rval_lowest=-1.0, high_rval_thr=None)
    good, _ = apply_thresholds(met, **kw)  # defaults: 0.625 and 0.875 -> SNR >= 1.25 and r >= 0.7
    caiman = (snr >= 2.0) | (r >= 0.8)
    joint = (snr >= 1.25) & (r >= 0.7)
    np.testing.assert_array_equal(good, np.flatnonzero((caiman | joint) & (snr > 0.5)))
    assert (
        (snr < 2.0) & (r < 0.8) & joint
    ).sum() > 5  # the test did accept components CaImAn's rule rejects
    off, _ = apply_thresholds(met, **kw, joint_SNR_frac=None)
    np.testing.assert_array_equal(off, np.flatnonzero(caiman & (snr > 0.5)))
    # the fractions follow the main thresholds (the dock's sliders): an unreachable min_SNR leaves r alone
    strict, _ = apply_thresholds(met, **dict(kw, min_SNR=1e3, rval_thr=0.9))
    np.testing.assert_array_equal(strict, np.flatnonzero((r >= 0.9) & (snr > 0.5)))
    with pytest.raises(InputError, match="joint_rval_frac"):
        apply_thresholds(met, joint_rval_frac=1.5)
    # metrics without shape (a CaImAn file): CaImAn's rule alone, CaImAn's accepted set
    caiman_file = Metrics(SNR_comp=snr, r_values=r, size=np.full(K, 30))
    np.testing.assert_array_equal(apply_thresholds(caiman_file, **kw)[0], off)


def test_high_rval_exemption_lifts_only_the_snr_floor():
    """r >= high_rval_thr (0.9) exempts a component from SNR_lowest (SNR > 0 still needed); it must
    still pass min_SNR or rval_thr, the shape tests still hold, and metrics without shape (a CaImAn
    file) keep CaImAn's rule."""
    rng = np.random.default_rng(11)
    K = 3000
    snr, r = rng.uniform(-0.5, 3, K), rng.uniform(-1, 1, K)
    ones = np.ones(K)
    sol = np.where(rng.uniform(size=K) < 0.2, 0.4, 1.0)  # a fifth not cell-shaped
    met = Metrics(
        SNR_comp=snr,
        r_values=r,
        size=np.full(K, 30),
        solidity=sol,
        n_pieces=ones.astype(int),
        area_ratio=ones / 4,
        elongation=ones,
    )
    kw = dict(min_SNR=2.0, rval_thr=0.8, SNR_lowest=0.5, joint_SNR_frac=None, min_solidity=0.6)
    good, _ = apply_thresholds(met, **kw)
    passes = (snr >= 2.0) | (r >= 0.8)
    floor = (snr > 0.5) | ((r >= 0.9) & (snr > 0))
    np.testing.assert_array_equal(good, np.flatnonzero(passes & floor & (sol >= 0.6)))
    exempt = passes & (snr <= 0.5) & (snr > 0) & (r >= 0.9) & (sol >= 0.6)
    assert exempt.sum() > 10  # the exemption did accept components CaImAn's floor rejects
    off, _ = apply_thresholds(met, **kw, high_rval_thr=None)
    np.testing.assert_array_equal(off, np.flatnonzero(passes & (snr > 0.5) & (sol >= 0.6)))
    np.testing.assert_array_equal(np.setdiff1d(good, off), np.flatnonzero(exempt))
    caiman_file = Metrics(SNR_comp=snr, r_values=r, size=np.full(K, 30))
    np.testing.assert_array_equal(
        apply_thresholds(caiman_file, **kw)[0], np.flatnonzero(passes & (snr > 0.5))
    )
    with pytest.raises(InputError, match="high_rval_thr"):
        apply_thresholds(met, high_rval_thr=1.5)


def test_high_rval_exemption_accepts_true_neurons_only(evaluated):
    """With an SNR floor nothing passes, the exemption alone accepts every true neuron (r >= 0.9)
    and no injected noise component (r <= 0.4 on this movie)."""
    m, est, params, met, matched, fake = evaluated
    good, _ = apply_thresholds(met, SNR_lowest=1e3)
    assert apply_thresholds(met, SNR_lowest=1e3, high_rval_thr=None)[0].size == 0
    assert matched[good].sum() == N_TRUE and not fake[good].any()
    # measured: one more, a CNMF component that is no whole true neuron (r 0.95, SNR 3.3), which the
    # default thresholds accept as well
    extra = good[~matched[good]]
    assert extra.size <= 1 and np.isin(extra, apply_thresholds(met)[0]).all()


def test_joint_test_accepts_no_noise_component(evaluated):
    """The injected noise components fail the joint test too (r <= 0.4 on this movie), whatever their SNR."""
    m, est, params, met, matched, fake = evaluated
    for kw in (dict(), dict(min_SNR=2.0), dict(min_SNR=1.0, rval_thr=0.6)):
        good, _ = apply_thresholds(met, **kw)
        assert not fake[good].any(), kw
        assert matched[good].sum() >= int(0.9 * N_TRUE)


def test_cancel_and_uint16_movie(evaluated, tmp_path):
    m, est, params, met, matched, fake = evaluated
    gen = iter_compute_metrics(m.movie, est, params, chunk_size=50)
    next(gen), next(gen), next(gen)
    gen.close()  # what a cancelled worker does: nothing left behind, no error
    path = tmp_path / "u16.npy"
    np.save(path, np.clip(np.rint(m.movie), 0, 65535).astype(np.uint16))
    met16 = compute_metrics(np.load(path, mmap_mode="r"), est, params)
    np.testing.assert_allclose(met16.r_values, met.r_values, atol=0.02)


def test_unsorted_footprint_indices_are_read_not_changed(evaluated):
    """Footprints whose CSC row indices are unsorted (CaImAn files may hold them; a
    row-permuted matrix has them) give the same metrics and are left untouched:
    sorting the shared index array of a dtype conversion once scrambled them."""
    m, est, params, met, matched, fake = evaluated
    A = sparse.csc_matrix(est.A)
    rng = np.random.default_rng(0)
    indices, data = A.indices.copy(), A.data.copy()
    for k in range(A.shape[1]):  # shuffle the entries within each column
        sl = slice(A.indptr[k], A.indptr[k + 1])
        order = rng.permutation(sl.stop - sl.start)
        indices[sl], data[sl] = indices[sl][order], data[sl][order]
    shuffled = sparse.csc_matrix((data.astype(np.float32), indices, A.indptr.copy()), shape=A.shape)
    assert not shuffled.has_sorted_indices
    est2 = copy.copy(est)
    est2.A = shuffled
    before = shuffled.toarray()
    met2 = compute_metrics(m.movie, est2, params)
    np.testing.assert_array_equal(est2.A.toarray(), before)
    np.testing.assert_allclose(met2.r_values, met.r_values, atol=1e-6)
    np.testing.assert_allclose(met2.SNR_comp, met.SNR_comp)
