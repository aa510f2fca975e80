"""Issue 14: shape metrics, anatomical seeding (silent cells) and the classifier learnt from curation."""

import json

import numpy as np
import pytest
from scipy import sparse

from napari_caiman.engine.cnmf.estimates import images_to_pixels
from napari_caiman.engine.errors import InputError
from napari_caiman.engine.shapes import (
    cut_areas,
    footprint_elongation,
    footprint_shape,
    junk_mask,
    match_footprints,
    shape_metrics,
)


def _disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r**2).astype(float)


# ----------------------------------------------------------------------------- shape metrics


def test_shape_of_known_shapes():
    disc = _disc((41, 41), 20, 20, 8)
    sol, pieces, area = footprint_shape(disc)
    assert sol > 0.9 and pieces == 1 and abs(area - np.pi * 64) / (np.pi * 64) < 0.05
    # a thin ring: one piece, far from convex
    ring = disc - _disc((41, 41), 20, 20, 6)
    sol, pieces, _ = footprint_shape(ring)
    assert pieces == 1 and sol < 0.5
    # two separate blobs of equal size: two pieces
    two = _disc((41, 41), 10, 10, 4) + _disc((41, 41), 30, 30, 4)
    assert footprint_shape(two)[1] == 2
    # a tiny speck beside a big blob (< 10 % of the pixels) does not count as a piece
    speck = _disc((41, 41), 20, 20, 8)
    speck[2, 2] = 1
    assert footprint_shape(speck)[1] == 1
    # pixels below 20 % of the max are ignored
    faint = disc.copy()
    faint[:5] = 0.1
    assert footprint_shape(faint)[1] == 1


def test_shape_metrics_on_footprint_matrix_and_junk_rule():
    dims = (64, 64)
    imgs = np.stack(
        [
            _disc(dims, 20, 20, 5),  # a cell (gSig 5 -> area ratio 0.25)
            _disc(dims, 40, 40, 5) + _disc(dims, 40, 55, 5),  # two pieces
            np.pad(np.ones((60, 60)), 2)[:64, :64],  # sprawling: 3600 px > 4 * pi * 100
            _disc(dims, 45, 15, 9) - _disc(dims, 45, 15, 7),
        ]
    )  # ring: low solidity
    A = sparse.csc_matrix(images_to_pixels(imgs))
    sm = shape_metrics(A, dims, (5, 5))
    assert sm.n_pieces.tolist() == [1, 2, 1, 1]
    assert abs(sm.area_ratio[0] - 0.25) < 0.03 and sm.area_ratio[2] > 4
    assert sm.solidity[0] > 0.9 and sm.solidity[3] < 0.6
    assert junk_mask(sm).tolist() == [False, True, True, True]


def test_elongation_tells_streaks_from_somata():
    disc = _disc((41, 41), 20, 20, 8)
    assert footprint_elongation(disc) < 1.1
    bar = np.zeros((41, 41))
    bar[18:22, 5:36] = 1  # a 4 x 31 streak (dendrite, vessel wall, dark frame edge)
    assert footprint_elongation(bar) > 5
    yy, xx = np.mgrid[:41, :41]
    ell = (((yy - 20) / 4.0) ** 2 + ((xx - 20) / 8.0) ** 2 <= 1).astype(float)
    assert footprint_elongation(ell) > 1.8
    assert footprint_elongation(ell, (2.0, 4.0)) < 1.1  # round in units of an anisotropic gSig
    # a single pixel and a diagonal line of pixels: finite, the line elongated
    speck = np.zeros((5, 5))
    speck[2, 2] = 1
    assert footprint_elongation(speck) == pytest.approx(1.0)
    assert footprint_elongation(np.eye(12)) > 5
    # in shape_metrics and in the default thresholds: the streak is rejected, the cell kept
    from napari_caiman.engine.evaluation import Metrics, apply_thresholds, thresholds_from_params
    from napari_caiman.engine.params import CaimanParams

    dims = (64, 64)
    imgs = np.zeros((2, *dims))
    imgs[0] = _disc(dims, 20, 20, 5)
    imgs[1, 40:44, 10:40] = (
        1  # 120 px: area ratio 0.38, solidity 1, one piece: only its shape is wrong
    )
    sm = shape_metrics(sparse.csc_matrix(images_to_pixels(imgs)), dims, (5, 5))
    assert sm.elongation[0] < 1.2 and sm.elongation[1] > 5
    m = Metrics(
        SNR_comp=np.array([5.0, 5.0]),
        r_values=np.array([0.9, 0.9]),
        size=np.array([80, 120]),
        solidity=sm.solidity,
        n_pieces=sm.n_pieces,
        area_ratio=sm.area_ratio,
        elongation=sm.elongation,
    )
    assert apply_thresholds(m, **thresholds_from_params(CaimanParams.from_dict({"min_SNR": 2.0})))[
        0
    ].tolist() == [0]
    assert apply_thresholds(m, **{**thresholds_from_params(None), "max_elongation": None})[
        0
    ].tolist() == [0, 1]
    assert apply_thresholds(m, min_SNR=2.0)[0].tolist() == [
        0
    ]  # on without being named (the dock's sliders)
    with pytest.raises(InputError, match="max_elongation"):
        apply_thresholds(m, max_elongation=0.5)
    # saved and reloaded with the other shape fields
    again = Metrics.from_saved(m.to_dict())
    assert np.allclose(again.elongation, sm.elongation)


def test_shape_metrics_3d_volume():
    dims = (3, 32, 32)
    vol = np.zeros((2, *dims))
    vol[0, 1] = _disc(dims[1:], 16, 16, 4)
    vol[0, 2] = _disc(dims[1:], 16, 16, 3)
    vol[1, 0] = _disc(dims[1:], 8, 8, 3)
    vol[1, 2] = _disc(dims[1:], 24, 24, 3)  # same component, apart in space
    A = sparse.csc_matrix(images_to_pixels(vol))
    sm = shape_metrics(A, dims, (2, 2, 1))
    assert sm.n_pieces.tolist() == [1, 2]
    assert sm.solidity[0] > 0.8
    # areas on the maximum projection over Z: the larger disc; two discs of radius 3
    disc4, disc3 = _disc(dims[1:], 16, 16, 4).sum(), _disc(dims[1:], 16, 16, 3).sum()
    assert sm.area_px.tolist() == [disc4, 2 * disc3]
    np.testing.assert_array_equal(cut_areas(A, dims), sm.area_px)


def test_match_footprints_overlap_rule():
    dims = (64, 64)
    truth = np.stack([_disc(dims, 16, 16, 5), _disc(dims, 40, 40, 5), _disc(dims, 16, 48, 5)])
    found = np.stack(
        [
            _disc(dims, 17, 16, 5) * 2.0,  # shifted by one pixel: a match
            _disc(dims, 40, 50, 5),  # 10 px off: no match
            _disc(dims, 16, 48, 5),
        ]
    )
    m = match_footprints(found, truth)
    assert (
        m["matched"] == 2 and abs(m["precision"] - 2 / 3) < 1e-9 and abs(m["recall"] - 2 / 3) < 1e-9
    )
    assert sorted(m["pairs"][:, 0].tolist()) == [0, 2]


def test_shape_thresholds_in_apply_thresholds_and_params():
    from napari_caiman.engine.evaluation import Metrics, apply_thresholds, thresholds_from_params
    from napari_caiman.engine.params import CaimanParams

    m = Metrics(
        SNR_comp=np.array([5.0, 5.0, 5.0, 5.0, 0.1]),
        r_values=np.array([0.9] * 4 + [0.1]),
        size=np.full(5, 50),
        solidity=np.array([0.9, 0.4, 0.9, 0.9, 0.9]),
        n_pieces=np.array([1, 1, 3, 1, 1]),
        area_ratio=np.array([0.3, 0.3, 0.3, 6.0, 0.3]),
        anatomy=np.array([False, False, False, False, True]),
    )
    p = CaimanParams.from_dict({"min_SNR": 2.0})
    good, _ = apply_thresholds(m, **thresholds_from_params(p))
    assert good.tolist() == [0, 4]  # junk shapes rejected; the silent anatomical cell accepted
    p.update({"min_solidity": 0.3, "max_pieces": 5, "max_area_ratio": 10, "accept_anatomy": False})
    assert apply_thresholds(m, **thresholds_from_params(p))[0].tolist() == [0, 1, 2, 3]
    with pytest.raises(InputError, match="min_solidity"):
        CaimanParams.from_dict({"min_solidity": 1.5})
    # metrics without shape (a CaImAn file): the shape terms are ignored
    plain = Metrics(SNR_comp=m.SNR_comp, r_values=m.r_values, size=m.size)
    assert apply_thresholds(plain, **thresholds_from_params(p))[0].tolist() == [0, 1, 2, 3]


def _blob(shape, cy, cx, n):
    """The ``n`` pixels nearest to (cy, cx), value 1: a compact footprint of exactly n pixels."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d = ((yy - cy) ** 2 + (xx - cx) ** 2).ravel()
    img = np.zeros(shape[0] * shape[1])
    img[np.argsort(d, kind="stable")[:n]] = 1.0
    return img.reshape(shape)


@pytest.mark.parametrize(
    "gsig, pixels, passes, passes_off",
    [
        (2, 4, True, False),  # floor 0.095 x 50.3 = 4.78 px: a 2 x 2 soma one pixel short passes
        (2, 5, True, True),
        (2, 3, False, False),  # two pixels short: a speck
        (5 / 3, 3, False, False),  # floor 3.3 px (a movie binned 3x): 3 pixels, not a 2 x 2 blob
        (5 / 3, 4, True, True),
        (4, 19, False, False),  # floor 19.1 px: not a few pixels, no allowance
        (4, 20, True, True),
    ],
)
def test_area_floor_allows_one_pixel_where_it_is_a_few_pixels(gsig, pixels, passes, passes_off):
    from napari_caiman.engine.evaluation import Metrics, apply_thresholds, thresholds_from_params
    from napari_caiman.engine.params import CaimanParams

    dims = (32, 32)
    A = sparse.csc_matrix(images_to_pixels(_blob(dims, 15.5, 15.5, pixels)[None]))
    sm = shape_metrics(A, dims, (gsig, gsig))
    assert sm.area_px.tolist() == [pixels] and sm.area_ratio[0] == pytest.approx(
        pixels / (np.pi * 4 * gsig**2)
    )
    m = Metrics(
        SNR_comp=np.array([6.0]),
        r_values=np.array([0.99]),
        size=np.array([pixels]),
        solidity=sm.solidity,
        n_pieces=sm.n_pieces,
        area_ratio=sm.area_ratio,
        elongation=sm.elongation,
        area_px=sm.area_px,
    )
    th = thresholds_from_params(CaimanParams.from_dict({"gSig": (gsig, gsig)}))
    assert th["small_floor_px"] == 10 and th["min_area_ratio"] == 0.095
    assert apply_thresholds(m, **th)[0].size == int(passes)
    assert apply_thresholds(m, **{**th, "small_floor_px": None})[0].size == int(passes_off)
    assert apply_thresholds(m, **{**th, "small_floor_px": 0})[0].size == int(passes_off)
    # a file saved without area_px (or a CaImAn file with shape fields): the pixels from A
    saved = {k: v for k, v in m.to_dict().items() if k != "area_px"}

    class Est:
        pass

    est = Est()
    est.A, est.dims = A, dims
    back = Metrics.from_saved(saved, est)
    assert back.area_px.tolist() == [pixels]
    assert footprint_shape(_blob(dims, 15.5, 15.5, pixels))[2] == pixels  # the same definition
    assert apply_thresholds(back, **th)[0].size == int(passes)
    with pytest.raises(InputError, match="small_floor_px"):
        apply_thresholds(m, min_area_ratio=0.095, small_floor_px=-1)


# ----------------------------------------------------------------------------- anatomical seeding


def _movie_with_silent_cells(seed=0):
    """Cells with a resting brightness (visible in the mean image); half never fire."""
    rng = np.random.default_rng(seed)
    T, dims, g = 300, (64, 64), 3.0
    centres = [(12, 12), (12, 40), (30, 26), (48, 12), (50, 46), (28, 54), (46, 30), (14, 26)]
    yy, xx = np.mgrid[: dims[0], : dims[1]]
    A = np.stack([np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * g**2)) for cy, cx in centres])
    A[A < 0.05] = 0
    active = np.array([True, False] * 4)
    C = np.full((len(centres), T), 30.0)  # resting fluorescence of every cell
    for k in np.flatnonzero(active):
        s = (rng.random(T) < 0.03) * rng.uniform(100, 200, T)
        c = np.zeros(T)
        for t in range(T):
            c[t] = (0.9 * c[t - 1] if t else 0) + s[t]
        C[k] += c
    Y = np.einsum("kyx,kt->tyx", A, C) + 50 + rng.normal(0, 4, (T, *dims))
    return Y.astype(np.float32), A, active


def test_seeding_recovers_silent_cells_with_flat_traces():
    from napari_caiman.engine.cnmf import cnmf, match_components
    from napari_caiman.engine.params import CaimanParams

    Y, A_true, active = _movie_with_silent_cells()
    base = {"K": 8, "gSig": (3, 3), "p": 1, "nb": 1, "fr": 10, "decay_time": 0.5}
    plain = cnmf(Y, CaimanParams.from_dict(base))
    m0 = match_components(plain, A_true)
    found0 = set(m0.pairs[:, 0].tolist())
    assert found0 >= set(np.flatnonzero(active).tolist())  # activity finds the firing cells
    # silent cells are dim next to firing ones: a lower detection threshold than the default
    est = cnmf(Y, CaimanParams.from_dict({**base, "seed_anatomy": True, "anatomy_thr": 0.5}))
    assert est.from_anatomy is not None and est.from_anatomy.shape == (est.A.shape[1],)
    m = match_components(est, A_true)
    found = dict(m.pairs.tolist())  # true -> found
    silent = np.flatnonzero(~active)
    assert set(silent.tolist()) <= set(found), (found, silent)
    for k in silent:
        j = found[k]
        assert est.from_anatomy[j]
        c = est.C[j]
        assert c.std() <= 0.1 * max(
            float(np.abs(est.C[~est.from_anatomy]).max()), 1e-9
        )  # flat trace
    # every active cell still comes from the activity-based init
    assert not est.from_anatomy[[found[k] for k in np.flatnonzero(active)]].any()


def test_seed_anatomy_only_and_detector():
    from napari_caiman.engine.cnmf import cnmf, match_components
    from napari_caiman.engine.cnmf.anatomy import detect_somata
    from napari_caiman.engine.params import CaimanParams

    Y, A_true, _ = _movie_with_silent_cells(1)
    masks, scores = detect_somata(Y.mean(0), (3, 3), thr=0.5)
    m = match_footprints(masks.astype(float), A_true)
    assert m["recall"] == 1.0 and m["precision"] >= 0.8, m
    assert np.all(np.diff(scores) <= 0)
    est = cnmf(
        Y,
        CaimanParams.from_dict(
            {"K": 8, "gSig": (3, 3), "seed_anatomy": "only", "anatomy_thr": 0.5, "fr": 10}
        ),
    )
    assert est.from_anatomy.all()
    assert match_components(est, A_true).recall == 1.0


# ----------------------------------------------------------------------------- classifier


def _with_junk(est, n, rng):
    """The estimates plus ``n`` junk components: scattered pixels with noise traces."""
    from dataclasses import replace

    P, T = est.A.shape[0], est.C.shape[1]
    J = np.zeros((P, n))
    for j in range(n):
        J[rng.choice(P, 40, replace=False), j] = rng.random(40)
    J /= np.linalg.norm(J, axis=0)
    noise = rng.normal(0, float(np.std(est.YrA)), (n, T))
    cat = lambda a, b: np.concatenate([np.asarray(a), b])  # noqa: E731
    return replace(
        est,
        A=sparse.csc_matrix(sparse.hstack([est.A, sparse.csc_matrix(J)])),
        C=cat(est.C, np.abs(noise) * 0.1),
        S=cat(est.S, np.zeros((n, T))),
        YrA=cat(est.YrA, noise),
        g=cat(est.g, np.zeros((n, np.shape(est.g)[1]))),
        bl=cat(est.bl, np.zeros(n)),
        c1=cat(est.c1, np.zeros(n)),
        neurons_sn=cat(est.neurons_sn, np.ones(n)),
        lam=cat(est.lam, np.zeros(n)),
    )


def _session(seed):
    from napari_caiman.engine.cnmf import cnmf, match_components
    from napari_caiman.engine.evaluation import compute_metrics
    from napari_caiman.engine.params import CaimanParams
    from napari_caiman.engine.synthetic import make_movie_2d

    mv = make_movie_2d((300, 96, 96), n_neurons=20, gSig=3, snr=1.0, seed=seed, return_flow=False)
    params = CaimanParams.from_dict({"K": 30, "gSig": (3, 3), "use_cnn": False, "fr": 30})
    est = _with_junk(cnmf(mv.movie, params), 10, np.random.default_rng(seed))
    met = compute_metrics(mv.movie, est, params)
    res = match_components(est, mv.footprints)
    lab = -np.ones(est.A.shape[1], np.int8)
    lab[res.pairs[:, 1]] = 1
    return met, est, lab


def test_classifier_learns_curation_round_trip_and_applies(tmp_path):
    from napari_caiman.engine.classifier import Classifier, train_classifier

    train, test = _session(3), _session(4)
    assert (train[2] == 1).sum() >= 5 and (
        train[2] == -1
    ).sum() >= 3  # over-generous K: false components
    model = train_classifier([train])
    path = model.save(tmp_path / "m.json")
    d = json.loads(path.read_text())
    assert d["format"] == "napari-caiman-classifier" and len(d["coef"]) == 8
    back = Classifier.load(path)
    met, est, lab = test
    p1, p2 = model.predict(met, est), back.predict(met, est)
    np.testing.assert_allclose(p1, p2, rtol=1e-12)
    acc = ((p1 >= 0.5) == (lab > 0)).mean()
    assert acc >= 0.85, acc  # held-out movie
    # undecided components only: half the labels as curation, the classifier fills in the rest
    manual = train[2].copy()
    manual[::2] = 0
    half = train_classifier([(train[0], train[1], manual)])
    assert ((half.predict(met, est) >= 0.5) == (lab > 0)).mean() >= 0.8


def test_classifier_errors(tmp_path):
    from napari_caiman.engine.classifier import Classifier, train_classifier
    from napari_caiman.engine.evaluation import Metrics

    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(InputError, match="not a napari-caiman classifier"):
        Classifier.load(bad)
    with pytest.raises(InputError, match="no classifier file"):
        Classifier.load(tmp_path / "missing.json")
    m = Metrics(
        SNR_comp=np.ones(3),
        r_values=np.ones(3),
        size=np.ones(3),
        solidity=np.ones(3),
        n_pieces=np.ones(3),
        area_ratio=np.ones(3),
    )
    est = type("E", (), {"C": np.ones((3, 10)), "YrA": np.zeros((3, 10)), "S": np.ones((3, 10))})()
    with pytest.raises(InputError, match="at least 2 accepted and 2 rejected"):
        train_classifier([(m, est, np.array([1, 1, -1]))])


def test_default_classifier_file_loads():
    from napari_caiman.engine.classifier import Classifier, default_model_path

    model = Classifier.load(default_model_path())
    assert model.info["n_train"] > 100


def test_noise_threshold_keeps_weak_synthetic_cells_cell_shaped():
    """Footprint pixels below 2 standard errors are noise: without that cut, weak neurons grow ragged
    halos (solidity < 0.6) and the shape thresholds would reject true cells."""
    from napari_caiman.engine.cnmf import cnmf, match_components
    from napari_caiman.engine.evaluation import evaluate_components
    from napari_caiman.engine.params import CaimanParams
    from napari_caiman.engine.synthetic import make_movie_2d

    m = make_movie_2d((300, 64, 64), n_neurons=12, seed=2, return_flow=False)
    sol = {}
    for thr in (0.0, 2.0):
        params = CaimanParams.from_dict(
            {"K": 15, "gSig": (4, 4), "use_cnn": False, "footprint_noise_thr": thr}
        )
        est = cnmf(m.movie, params)
        met = evaluate_components(m.movie, est, params)
        sol[thr] = met.solidity.min()
        acc = est.idx_components
        res = match_components(est.footprints(acc), m.footprints, est.C[acc], m.traces)
        if thr:
            assert res.f1 == 1.0 and res.median_trace_corr >= 0.98, res
    assert sol[0.0] < 0.6 <= sol[2.0], sol


def test_cellpose_detector_without_cellpose_is_a_clear_error():
    pytest.importorskip("skimage")
    try:
        import cellpose  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("cellpose is installed")
    from napari_caiman.engine.cnmf import cnmf
    from napari_caiman.engine.params import CaimanParams

    Y, _, _ = _movie_with_silent_cells(2)
    with pytest.raises(InputError, match="cellpose"):
        cnmf(
            Y,
            CaimanParams.from_dict(
                {"K": 4, "gSig": (3, 3), "seed_anatomy": True, "anatomy_detector": "cellpose"}
            ),
        )
    with pytest.raises(InputError, match="seed_anatomy"):
        CaimanParams.from_dict({"seed_anatomy": "yes"})


def test_clean_footprint_honours_caiman_spatial_options():
    from napari_caiman.engine.cnmf._shapes import clean_footprint

    dims = (40, 40)
    img = _disc(dims, 15, 15, 6)
    img[15, 21:36] = 0.8  # a one-pixel-wide strand leaving the cell
    img += 0.6 * _disc(dims, 33, 8, 3)  # a separate, weaker blob
    a = img.ravel()
    kept = clean_footprint(a, dims, 0.1, 0.9999, True).reshape(dims)
    assert kept[33, 8] == 0 and kept[15, 15] == 1  # the largest piece only (extract_cc)
    assert kept[15, 30] == 0  # the median filter (medw 3x3) removes the strand from the mask
    assert np.array_equal(kept[kept > 0], img[kept > 0])  # kept pixels keep their values
    no_med = clean_footprint(a, dims, 0.1, 0.9999, True, medw=(1, 1)).reshape(dims)
    assert no_med[15, 30] == 0.8  # without the median filter the strand stays
    both = clean_footprint(a, dims, 0.1, 0.9999, False).reshape(dims)
    assert both[33, 8] > 0  # extract_cc=False keeps every piece
    strict = clean_footprint(a, dims, 0.7, 1.0, True, thr_method="max").reshape(dims)
    assert strict[33, 8] == 0 and strict[15, 15] == 1 and (strict > 0).sum() <= (kept > 0).sum()
