"""Unit tests of the CNMF engine pieces: pixel order, noise, OASIS, merging, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal, sparse

from napari_caiman.engine.cnmf import (
    Estimates,
    cnmf,
    deconvolve,
    footprint_to_image,
    frames_to_pixels,
    images_to_pixels,
    iter_cnmf,
    oasis,
    pixels_to_images,
    psd_noise,
)
from napari_caiman.engine.cnmf.merging import merge_components
from napari_caiman.engine.cnmf.patches import patch_slices
from napari_caiman.engine.errors import InputError
from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.progress import Progress
from napari_caiman.engine.synthetic import ar2_coefficients, make_movie_2d, make_movie_3d

# ----------------------------------------------------------------------------- pixel order


def test_pixel_order_2d_is_fortran():
    img = np.arange(12).reshape(3, 4)
    assert np.array_equal(frames_to_pixels(img[None])[:, 0], img.ravel(order="F"))
    assert np.array_equal(footprint_to_image(img.ravel(order="F"), (3, 4)), img)


def test_pixel_order_3d_is_caiman():
    vol = np.arange(2 * 3 * 4).reshape(2, 3, 4)  # (Z, Y, X)
    caiman = vol.transpose(1, 2, 0).ravel(order="F")  # CaImAn dims (Y, X, Z), Fortran
    assert np.array_equal(images_to_pixels(vol[None])[:, 0], caiman)
    assert np.array_equal(pixels_to_images(sparse.csc_matrix(caiman[:, None]), (2, 3, 4))[0], vol)


def test_synthetic_footprints_caiman_agree():
    m = make_movie_3d((20, 4, 16, 16), n_neurons=3, gSig=(2, 2, 1), seed=0)
    assert np.allclose(m.footprints_caiman().toarray(), images_to_pixels(m.footprints))


# ----------------------------------------------------------------------------- noise


def test_psd_noise_within_10_percent():
    rng = np.random.default_rng(0)
    T = 2000
    g = ar2_coefficients(30, 0.4, 0.05)
    spikes = (rng.random((50, T)) < 0.02) * 5.0
    calcium = signal.lfilter([1], [1, -g[0], -g[1]], spikes, axis=1)
    sd = rng.uniform(1.0, 3, 50)
    y = calcium + 100 + sd[:, None] * rng.standard_normal((50, T))
    est = psd_noise(y)
    assert np.all(np.abs(est / sd - 1) < 0.10), np.max(np.abs(est / sd - 1))


def test_cnmf_sn_matches_movie_noise():
    m = make_movie_2d((300, 32, 32), n_neurons=3, noise=7.0, seed=5)
    est = cnmf(m.movie, CaimanParams.from_dict({"K": 3, "gSig": (3, 3)}))
    assert abs(np.median(est.sn) / 7.0 - 1) < 0.10


# ----------------------------------------------------------------------------- OASIS


def _ar_trace(rng, g, T=3000, rate=0.03):
    s = (rng.random(T) < rate) * rng.uniform(0.5, 1.5, T)
    c = signal.lfilter([1], np.r_[1, -np.asarray(g)], s)
    return c, s


@pytest.mark.parametrize("p,g", [(1, (0.95,)), (2, ar2_coefficients(30, 0.4, 0.05))])
def test_oasis_recovers_calcium(p, g):
    rng = np.random.default_rng(1)
    c, s = _ar_trace(rng, g)
    sd = 0.3 * c.std() * 2  # moderate noise
    y = c + 2.0 + sd * rng.standard_normal(c.size)
    ch, sh, b, gh, lam, sn = deconvolve(y, p=p)
    assert np.corrcoef(ch, c)[0, 1] >= 0.9
    assert np.corrcoef(y, c)[0, 1] < np.corrcoef(ch, c)[0, 1]
    assert sh.min() >= 0 and ch.min() >= 0
    assert abs(sn / sd - 1) < 0.2
    assert len(gh) == p


def test_oasis_exact_noise_free_ar1():
    rng = np.random.default_rng(2)
    c, s = _ar_trace(rng, (0.9,), T=500)
    ch, sh = oasis(c, (0.9,))
    assert np.allclose(ch, c, atol=1e-8)
    assert np.allclose(sh, s, atol=1e-8)


# ----------------------------------------------------------------------------- merging / patches


def test_merge_components_joins_correlated_overlapping():
    rng = np.random.default_rng(3)
    a = np.zeros((100, 3))
    a[10:30, 0] = 1
    a[25:45, 1] = 1  # overlaps 0, same activity -> merge
    a[60:80, 2] = 1  # separate
    c = rng.random((1, 200))
    C = np.vstack([c, c * 2 + 0.01 * rng.random((1, 200)), rng.random((1, 200))])
    A2, C2, groups, kept = merge_components(a, C, 0.8)
    assert A2.shape[1] == 2 and len(groups) == 1
    assert (A2[10:45, 0] > 0).all()


def test_patch_slices_cover():
    sl = patch_slices((64, 70), (16, 16), (6, 6))
    cover = np.zeros((64, 70), int)
    for s in sl:
        cover[s] += 1
        assert s[0].stop - s[0].start == 32
    assert cover.min() >= 1


# ----------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def small():
    return make_movie_2d((60, 32, 32), n_neurons=3, gSig=3, seed=2).movie


@pytest.mark.parametrize(
    "movie,argument",
    [
        (np.zeros((5, 32, 32), np.float32), "movie"),  # too few frames
        (np.zeros((60, 32), np.float32), "movie"),  # not a movie
        (np.zeros((60, 32, 32), np.float32), "movie"),  # all zero
        (np.full((60, 32, 32), 7, np.uint16), "movie"),  # constant
    ],
)
def test_bad_movies(movie, argument):
    with pytest.raises(InputError) as e:
        cnmf(movie, CaimanParams.from_dict({"K": 3, "gSig": (3, 3)}))
    assert e.value.argument == argument


def test_nan_movie(small):
    bad = small.copy()
    bad[17, 3, 4] = np.nan
    with pytest.raises(InputError) as e:
        cnmf(bad, CaimanParams.from_dict({"K": 3, "gSig": (3, 3)}))
    assert e.value.argument == "movie" and "frame 17" in str(e.value)


@pytest.mark.parametrize(
    "params,argument",
    [
        ({"K": 3, "gSig": (20, 20)}, "gSig"),
        ({"K": 3, "gSig": (3, 3), "rf": 2}, "rf"),
        ({"K": 3, "gSig": (3, 3), "rf": 8, "stride": 16}, "stride"),
        ({"K": 3, "gSig": (3, 3), "method_init": "sparse_nmf"}, "method_init"),
    ],
)
def test_bad_params(small, params, argument):
    with pytest.raises(InputError) as e:
        cnmf(small, CaimanParams.from_dict(params))
    assert e.value.argument == argument


def test_k_zero_rejected():
    with pytest.raises(InputError) as e:
        CaimanParams.from_dict({"K": 0})
    assert e.value.argument == "K"


def test_bad_ain(small):
    with pytest.raises(InputError) as e:
        cnmf(small, CaimanParams.from_dict({"K": 3, "gSig": (3, 3)}), Ain=np.ones((2, 5, 5)))
    assert e.value.argument == "Ain"


def test_empty_seed_gives_empty_result(small):
    est = cnmf(
        small, CaimanParams.from_dict({"K": 3, "gSig": (3, 3)}), Ain=np.zeros((1, 32, 32), bool)
    )
    assert isinstance(est, Estimates) and est.n_components == 0
    assert est.A.shape == (32 * 32, 0) and est.C.shape == (0, 60)
    assert est.b.shape == (32 * 32, 1) and est.f.shape == (1, 60)


def test_progress_and_dims(small):
    gen = iter_cnmf(small, CaimanParams.from_dict({"K": 3, "gSig": (3, 3), "p": 1}))
    seen = []
    try:
        while True:
            seen.append(next(gen))
    except StopIteration as stop:
        est = stop.value
    assert all(isinstance(p, Progress) for p in seen) and len(seen) > 5
    assert est.dims == (32, 32) and est.caiman_dims == (32, 32)
    assert est.g.shape == (est.n_components, 1)
    assert np.allclose(sparse.linalg.norm(est.A, axis=0), 1, atol=1e-5)


def test_upsample_of_zero_components_keeps_the_pixel_count():
    # a patch with no neuron (real data: empty corners) must not crash the fit
    from napari_caiman.engine.cnmf._shapes import upsample_images

    out = upsample_images(np.zeros((8 * 9, 0), np.float32), (8, 9), (16, 17), 2)
    assert out.shape == (16 * 17, 0)


@pytest.mark.parametrize(
    "shape, ssub, tsub", [((101, 51, 50), 2, 2), ((30, 3, 17, 20), 3, 4), ((9, 8, 8), 1, 3)]
)
def test_downsample_averages_blocks_of_frames_and_pixels(shape, ssub, tsub):
    from napari_caiman.engine.cnmf._shapes import downsample

    Y = np.random.default_rng(0).random(shape, dtype=np.float32)
    got = downsample(Y, ssub, tsub)
    # reference: the mean of each block in float64, an incomplete last block of
    # frames averaged on its own, incomplete blocks of pixels padded by the edge
    T = shape[0]
    frames = [Y[t : t + tsub].astype(np.float64).mean(axis=0) for t in range(0, T, tsub)]
    Yt = np.stack(frames)
    pads = [(0, 0)] * (Yt.ndim - 2) + [(0, (-s) % ssub) for s in Yt.shape[-2:]]
    Yp = np.pad(Yt, pads, mode="edge")
    ny, nx = Yp.shape[-2] // ssub, Yp.shape[-1] // ssub
    ref = Yp.reshape(*Yp.shape[:-2], ny, ssub, nx, ssub).mean(axis=(-3, -1))
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- greedy init stop


def _weak_cells_movie(seed=0, weak=0.8):
    """Two strong cells and four weak ones (peak ~1.3 noise SDs per spike) in 48 x 48."""
    rng = np.random.default_rng(seed)
    T, dims, g = 400, (48, 48), 3.0
    centres = [(10, 10), (10, 36), (24, 22), (38, 10), (38, 38), (24, 40)]
    yy, xx = np.mgrid[: dims[0], : dims[1]]
    A = np.stack([np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * g**2)) for cy, cx in centres])
    C = np.zeros((len(centres), T))
    for k, amp in enumerate([8.0, 8.0] + [weak] * 4):
        s = (rng.random(T) < 0.04) * amp
        for t in range(T):
            C[k, t] = (0.85 * C[k, t - 1] if t else 0) + s[t]
    Y = np.einsum("kyx,kt->tyx", A, C) + 10 + rng.normal(0, 1, (T, *dims))
    return Y.astype(np.float32), A


def test_greedy_init_does_not_stop_before_weak_cells():
    """The early stop (energy left vs white noise) must not drop weak but real cells: the
    evaluation, not the initialization, tells them from noise (real patches stopped at ~3 of K)."""
    from napari_caiman.engine.cnmf.initialization import greedy_roi
    from napari_caiman.engine.shapes import match_footprints

    Y, truth = _weak_cells_movie()
    dims = Y.shape[1:]
    A, C, b, f = greedy_roi(Y, 10, (3.0, 3.0), (7, 7), nb=1)
    found = match_footprints(A.T.reshape(-1, *dims), truth, cut=0.2)
    assert found["matched"] == 6 and A.shape[1] <= 8  # all six, and no flood of noise components
    A3, *_ = greedy_roi(Y, 10, (3.0, 3.0), (7, 7), nb=1, stop_ratio=3.0)  # the old, stricter stop
    assert match_footprints(A3.T.reshape(-1, *dims), truth, cut=0.2)["matched"] < 6


@pytest.mark.parametrize(
    "sizes, gsig, K, p_ssub, density, expected",
    [
        ((50, 50), (5.0, 5.0), 10, 2, 0.5, (10, 2)),  # 8 somata discs per patch: K rules
        ((50, 50), (4.0, 4.0), 10, 2, 0.5, (10, 2)),  # 12.4 discs: still K
        ((50, 50), (2.5, 2.5), 10, 2, 0.5, (15, 2)),  # a movie binned 2x: 32 discs
        ((50, 50), (5 / 3, 5 / 3), 10, 2, 0.5, (35, 1)),  # binned 3x: gSig / 2 < 1 px
        ((50, 50), (2.5, 2.5), 10, 2, 0.0, (10, 2)),  # density 0: K as given
        ((50, 50), (1.5, 3.0), 10, 3, 0.5, (22, 1)),  # the smaller axis sets the downsampling
        ((6, 50, 50), (1.0, 2.0, 2.0), 10, 2, 1.0, (111, 2)),  # a volume: ellipsoid of radii 2 gSig
    ],
)
def test_patch_init_budget_scales_with_the_cell_size(sizes, gsig, K, p_ssub, density, expected):
    from napari_caiman.engine.cnmf.patches import patch_init_budget

    assert patch_init_budget(sizes, gsig, K, p_ssub, density) == expected


def test_patches_of_small_cells_get_a_component_budget_for_the_cells_they_hold():
    """With K = 3 per patch and 40 cells of gSig 2 in nine 32 x 32 patches, K caps the init
    before the cells run out; patch_K_density 0.5 (10 per patch here) finds them."""
    from napari_caiman.engine.cnmf.compare import match_components

    syn = make_movie_2d((300, 64, 64), n_neurons=40, gSig=2, snr=4.0, seed=1, return_flow=False)
    base = {"gSig": (2, 2), "K": 3, "rf": 16, "stride": 4, "p": 1, "nb": 1}
    found = {}
    for density in (0.0, 0.5):
        est = cnmf(syn.movie, CaimanParams.from_dict({**base, "patch_K_density": density}))
        found[density] = match_components(est, syn.footprints).recall
        assert est.info["patch_K"] == (3 if density == 0 else 10)
    assert found[0.5] >= found[0.0] + 0.15, found
    assert found[0.5] >= 0.8, found
