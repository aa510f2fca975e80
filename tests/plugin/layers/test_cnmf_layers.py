"""CNMF results -> layer data (no viewer): contours, labels, features, lazy movies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy import sparse

from napari_caiman.engine.cnmf.estimates import (
    Estimates,
    frames_to_pixels,
    images_to_pixels,
    pixels_to_images,
)
from napari_caiman.engine.errors import InputError
from napari_caiman.engine.synthetic import make_movie_2d, make_movie_3d
from napari_caiman.plugin.layers.cnmf import (
    ReconstructedMovie,
    ResidualMovie,
    cnmf_layer_data,
    component_colors,
    contours,
    features_table,
    label_colors,
    labels_image,
    labels_to_seeds,
)


@dataclass
class _Summary:
    mean: np.ndarray
    max: np.ndarray
    std: np.ndarray
    corr: np.ndarray | None


@dataclass
class _Result:
    estimates: Estimates
    summary: _Summary


def _estimates(syn, cut: float = 0.05) -> Estimates:
    """Ground truth as Estimates (footprints cut at ``cut`` of the peak, sparse)."""
    fp = np.where(syn.footprints >= cut, syn.footprints, 0).astype(np.float32)
    K, T = len(fp), syn.n_frames
    z = np.zeros((K, T), np.float32)
    return Estimates(
        A=sparse.csc_matrix(images_to_pixels(fp)),
        C=syn.traces.astype(np.float32),
        S=z,
        YrA=z,
        b=images_to_pixels(syn.b).astype(np.float32),
        f=syn.f.astype(np.float32),
        sn=np.ones(int(np.prod(syn.frame_shape)), np.float32),
        g=np.zeros((K, 2)),
        bl=np.zeros(K),
        c1=np.zeros(K),
        neurons_sn=np.ones(K),
        lam=np.zeros(K),
        dims=syn.frame_shape,
    )


def _summary(movie) -> _Summary:
    m = np.asarray(movie, np.float32)
    return _Summary(m.mean(0), m.max(0), m.std(0), m.std(0) / m.std(0).max())


@pytest.fixture(scope="module")
def syn2d():
    return make_movie_2d((60, 48, 56), n_neurons=8, seed=4, return_flow=False)


@pytest.fixture(scope="module")
def syn3d():
    return make_movie_3d((30, 5, 32, 36), n_neurons=5, seed=5, return_flow=False)


def _inside(poly: np.ndarray, point) -> bool:
    import cv2

    contour = poly[:, ::-1].astype(np.float32).reshape(-1, 1, 2)  # (x, y)
    return cv2.pointPolygonTest(contour, (float(point[1]), float(point[0])), False) >= 0


def test_contours_one_per_component_around_the_centroid(syn2d):
    est = _estimates(syn2d)
    polys, comp = contours(est)
    assert len(polys) == est.n_components
    np.testing.assert_array_equal(comp, np.arange(est.n_components))
    table = features_table(est)
    for poly, k in zip(polys, comp, strict=True):
        assert poly.ndim == 2 and poly.shape[1] == 2 and len(poly) >= 4
        centre = (table["centroid_y"][k], table["centroid_x"][k])
        assert _inside(poly, centre)
        assert np.hypot(*(np.asarray(centre) - syn2d.centers[k])) < 1.0
        # the outline is about the size of the neuron (gSig 4): not a dot, not the frame
        extent = poly.max(0) - poly.min(0)
        assert np.all(extent > 3) and np.all(extent < 30), extent


def test_contour_threshold_methods_and_pixel_edges():
    # one 3x2 block of pixels: the outline runs along the outer pixel edges
    img = np.zeros((1, 10, 12), np.float32)
    img[0, 4:7, 5:7] = 1.0
    est = Estimates.empty((10, 12), 5)
    est.A = sparse.csc_matrix(images_to_pixels(img))
    (poly,), comp = contours(est, thr=0.99)
    lo, hi = poly.min(0), poly.max(0)
    np.testing.assert_allclose(lo, [3.75, 4.75], atol=0.26)
    np.testing.assert_allclose(hi, [6.25, 6.25], atol=0.26)
    # a single pixel is a small square, not a point
    img[:] = 0
    img[0, 2, 3] = 1.0
    est.A = sparse.csc_matrix(images_to_pixels(img))
    (poly,), _ = contours(est, thr=0.5, thr_method="max")
    assert len(poly) >= 4 and np.all(poly.max(0) - poly.min(0) > 0.4)
    with pytest.raises(ValueError, match="thr_method"):
        contours(est, thr_method="median")


def test_energy_threshold_keeps_the_core():
    y, x = np.mgrid[:40, :40]
    gauss = np.exp(-((y - 20.0) ** 2 + (x - 18.0) ** 2) / (2 * 3.0**2)).astype(np.float32)
    est = Estimates.empty((40, 40), 5)
    est.A = sparse.csc_matrix(images_to_pixels(gauss[None]))
    (small,), _ = contours(est, thr=0.5)
    (large,), _ = contours(est, thr=0.95)
    r_small = np.abs(small - [20, 18]).max()
    r_large = np.abs(large - [20, 18]).max()
    # energy of a 2D Gaussian of sigma s inside radius r: 1 - exp(-r^2 / s^2)
    assert 2.0 < r_small < 4.0 and 4.0 < r_large < 7.0, (r_small, r_large)


def test_3d_contours_carry_their_plane(syn3d):
    est = _estimates(syn3d)
    polys, comp = contours(est)
    fp = syn3d.footprints
    assert set(comp.tolist()) == set(range(len(fp)))
    for poly, k in zip(polys, comp, strict=True):
        assert poly.shape[1] == 3
        z = poly[0, 0]
        assert np.all(poly[:, 0] == z) and z == int(z)
        assert fp[k, int(z)].max() > 0.05  # drawn only where the footprint is
    # the plane of the peak is always outlined
    for k in range(len(fp)):
        zpeak = np.unravel_index(fp[k].argmax(), fp[k].shape)[0]
        assert any(p[0, 0] == zpeak for p, c in zip(polys, comp, strict=True) if c == k)


def test_labels_dominant_component():
    # two overlapping squares, the second brighter in absolute value but the
    # first dominant where it is near its own peak
    img = np.zeros((2, 12, 12), np.float32)
    img[0, 2:8, 2:8] = 1.0
    img[1, 6:10, 6:10] = 5.0
    img[0, 6:8, 6:8] = 0.5  # half of comp 0's peak, all of comp 1's
    est = Estimates.empty((12, 12), 5)
    est.A = sparse.csc_matrix(images_to_pixels(img))
    lab = labels_image(est)
    assert lab.dtype == np.uint16 and lab.shape == (12, 12)  # napari draws 16-bit labels directly
    assert lab[3, 3] == 1 and lab[9, 9] == 2 and lab[6, 6] == 2 and lab[0, 0] == 0
    assert lab[7, 2] == 1


def test_labels_and_features_on_ground_truth(syn2d, syn3d):
    for syn in (syn2d, syn3d):
        est = _estimates(syn)
        lab = labels_image(est)
        assert lab.shape == syn.frame_shape
        peaks = [np.unravel_index(f.argmax(), f.shape) for f in syn.footprints]
        # every neuron's peak pixel carries its own label
        hits = sum(lab[p] == k + 1 for k, p in enumerate(peaks))
        assert hits >= len(peaks) - 1
        table = features_table(est)
        assert list(table["component"]) == list(range(est.n_components))
        assert np.all(table["size"] > 5)
        axes = ("z", "y", "x")[-len(syn.frame_shape) :]
        centre = np.stack([table[f"centroid_{a}"] for a in axes], 1)
        assert np.abs(centre - syn.centers).max() < 1.0
        assert np.all(np.isnan(table["snr"])) and table["accepted"].all()
        est.idx_components = np.array([0, 2])
        est.SNR_comp = np.arange(est.n_components, dtype=float)
        table = features_table(est)
        assert table["accepted"].tolist()[:3] == [True, False, True]
        assert table["snr"][3] == 3.0


def test_lazy_movies_equal_the_dense_computation(syn2d, syn3d):
    for syn in (syn2d, syn3d):
        est = _estimates(syn)
        dims = syn.frame_shape
        dense = pixels_to_images(est.A @ est.C + est.b @ est.f, dims)
        # pixels_to_images puts time first: (T, *dims)
        rec = ReconstructedMovie(est)
        assert rec.shape == (syn.n_frames, *dims) and rec.dtype == np.float32
        assert rec.ndim == 1 + len(dims)
        res = ResidualMovie(syn.movie, est)
        dense_res = np.asarray(syn.movie, np.float32) - dense
        keys = [
            5,
            -1,
            slice(2, 9, 3),
            (7, Ellipsis),
            (slice(None), 3),
            (np.array([4, 1, 4]),),
            (Ellipsis, slice(2, 5)),
            (3,) + (slice(1, 6),) * len(dims),
            (slice(0, 4),) + (1,) * len(dims),
        ]
        if len(dims) == 3:
            keys += [(2, 1), (slice(3, 6), -1, slice(None), slice(4, 9))]
        for key in keys:
            np.testing.assert_allclose(rec[key], dense[key], rtol=1e-4, atol=1e-3)
            np.testing.assert_allclose(res[key], dense_res[key], rtol=1e-4, atol=1e-2)
        np.testing.assert_allclose(np.asarray(rec), dense, rtol=1e-4, atol=1e-3)
        with pytest.raises(IndexError):
            rec[0, 0, 0, 0, 0]
        with pytest.raises(ValueError, match="shape"):
            ResidualMovie(syn.movie[:-1], est)


def test_layer_data_tuples(syn2d):
    est = _estimates(syn2d)
    result = _Result(est, _summary(syn2d.movie))
    tuples = cnmf_layer_data(result, "raw", scale=(1, 2, 3), translate=(0, 5, 6), movie=syn2d.movie)
    names = [meta["name"] for _, meta, _ in tuples]
    assert names == [
        "raw denoised",
        "raw residual",
        "raw correlation",
        "raw footprints",
        "raw contours",
    ]
    kinds = {meta["name"]: kind for _, meta, kind in tuples}
    assert kinds["raw footprints"] == "labels" and kinds["raw contours"] == "image"
    by_name = {meta["name"]: (data, meta) for data, meta, _ in tuples}
    data, meta = by_name["raw denoised"]
    assert isinstance(data, ReconstructedMovie) and meta["scale"] == (1, 2, 3)
    data, meta = by_name["raw contours"]
    # one RGBA image of outlines at twice the frame's resolution, over the same field
    o = meta["metadata"]["napari_caiman"]["outlines"]
    assert meta["rgb"] and data.shape == (2 * syn2d.frame_shape[0], 2 * syn2d.frame_shape[1], 4)
    assert meta["scale"] == (1.0, 1.5) and meta["translate"] == (4.5, 5.25)
    assert meta["metadata"]["napari_caiman"]["frame_scale"] == (2, 3)
    assert set(np.unique(o.component).tolist()) == set(range(est.n_components))
    # each component's outline pixels carry its palette colour (but where a later one crosses)
    own = data.reshape(-1, 4)[o.pixel]
    palette = np.round(component_colors(o.component) * 255).astype(np.uint8)
    assert np.mean(np.all(own == palette, axis=1)) > 0.9
    assert np.count_nonzero(data[..., 3]) == len(np.unique(o.pixel))
    data, meta = by_name["raw footprints"]
    assert data.shape == syn2d.frame_shape and meta["scale"] == (2, 3)
    # contour colours follow the Labels colours (label k + 1 = component k)
    colors = label_colors()
    np.testing.assert_array_equal(component_colors(np.array([0, 70])), colors[[1, 70 % 64 + 1]])


def test_empty_estimates_give_valid_empty_layers():
    est = Estimates.empty((20, 24), 12, b=np.ones((480, 1), np.float32))
    est.f = np.ones((1, 12), np.float32)
    polys, comp = contours(est)
    assert polys == [] and comp.shape == (0,)
    assert not labels_image(est).any()
    assert features_table(est)["component"].shape == (0,)
    movie = np.ones((12, 20, 24), np.float32)
    rec = ReconstructedMovie(est)
    np.testing.assert_allclose(rec[3], 1.0)
    np.testing.assert_allclose(ResidualMovie(movie, est)[2:4], 0.0)
    result = _Result(est, _summary(movie + np.random.default_rng(0).random(movie.shape)))
    tuples = cnmf_layer_data(result, "m", movie=movie)
    outlines = [t for t in tuples if t[1]["name"] == "m contours"][0]
    assert outlines[0].shape == (40, 48, 4) and not outlines[0].any()
    # napari accepts them all, without warnings
    import warnings

    from napari.layers import Layer

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for data, meta, kind in tuples:
            layer = Layer.create(data, meta, kind)
            assert layer.name == meta["name"]


def test_labels_to_seeds():
    lab = np.zeros((10, 12), np.int32)
    lab[1:3, 1:3] = 7
    lab[5:8, 6:9] = 2
    masks, values = labels_to_seeds(lab, (10, 12))
    assert masks.dtype == bool and masks.shape == (2, 10, 12)
    assert values.tolist() == [2, 7]
    assert masks[0].sum() == 9 and masks[1].sum() == 4 and masks[1, 1, 1]
    # painted on one frame of a movie-shaped Labels layer
    movie_lab = np.zeros((4, 10, 12), np.int32)
    movie_lab[2] = lab
    masks2, _ = labels_to_seeds(movie_lab, (10, 12))
    np.testing.assert_array_equal(masks, masks2)
    # seeds go to the engine as footprints in CaImAn order
    A = images_to_pixels(masks)
    np.testing.assert_array_equal(pixels_to_images(A, (10, 12)), masks)
    with pytest.raises(InputError, match="seed"):
        labels_to_seeds(np.zeros((10, 12), int), (10, 12))
    with pytest.raises(InputError, match="seed"):
        labels_to_seeds(lab, (11, 12))


def test_frames_to_pixels_agrees_with_reconstruction(syn2d):
    # the lazy reconstruction uses the CaImAn pixel order throughout
    est = _estimates(syn2d)
    Y = frames_to_pixels(np.asarray(ReconstructedMovie(est)[:5]))
    np.testing.assert_allclose(
        Y, (est.A @ est.C[:, :5] + est.b @ est.f[:, :5]), rtol=1e-4, atol=1e-3
    )
