"""Component outlines as pixels of one RGBA image (plugin/layers/outlines.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import sparse

from napari_caiman.engine.cnmf.estimates import images_to_pixels
from napari_caiman.plugin.layers.cnmf import closed_paths, contours
from napari_caiman.plugin.layers.outlines import (
    component_paths,
    frame_position,
    image_geometry,
    outline_image,
    outlines,
)


def _est(masks: np.ndarray) -> SimpleNamespace:
    """Estimates of flat (equal-valued) footprints: every pixel holds the same energy, so
    the 90 % energy contour keeps the whole mask."""
    A = sparse.csc_matrix(images_to_pixels(masks.astype(np.float32)))
    return SimpleNamespace(A=A, dims=masks.shape[1:])


def _square(dims, top, left, size):
    m = np.zeros(dims, bool)
    m[..., top : top + size, left : left + size] = True
    return m


def test_square_outline_rings_at_both_resolutions():
    est = _est(_square((12, 16), 3, 5, 3)[None])
    o1 = outlines(est, factor=1)
    img = np.zeros((12, 16), bool)
    img.ravel()[o1.pixel] = True
    ring = _square((12, 16), 3, 5, 3)
    ring[4, 6] = False  # the centre pixel has all 4 neighbours inside
    np.testing.assert_array_equal(img, ring)
    o2 = outlines(est, factor=2)
    assert o2.shape == (24, 32)
    fine = np.zeros(o2.shape, bool)
    fine.ravel()[o2.pixel] = True
    expected = _square((24, 32), 6, 10, 6)
    expected[7:11, 11:15] = False  # a 1-fine-pixel (half a movie pixel) ring of the 6x6 block
    np.testing.assert_array_equal(fine, expected)
    assert set(o2.component.tolist()) == {0}


def test_overlapping_components_both_keep_their_outline_and_colours():
    masks = np.stack([_square((20, 20), 2, 2, 8), _square((20, 20), 6, 6, 8)])
    o = outlines(_est(masks), factor=2)
    colors = np.array([[1, 0, 0, 1], [0, 0, 1, 1]], np.float32)
    rgba = outline_image(o, colors)
    assert rgba.shape == (40, 40, 4) and rgba.dtype == np.uint8
    flat = rgba.reshape(-1, 4)
    # component 0's left edge (outside component 1) is red, component 1's right edge blue
    assert tuple(rgba[10, 4]) == (255, 0, 0, 255)
    assert tuple(rgba[20, 27]) == (0, 0, 255, 255)
    # component 0's bottom edge (movie row 9) crosses the inside of component 1: still drawn
    assert tuple(rgba[19, 14]) == (255, 0, 0, 255)
    assert tuple(rgba[17, 14]) == (0, 0, 0, 0)  # inside both: no outline
    # hiding component 0 (alpha 0) leaves only component 1's pixels
    hidden = outline_image(o, np.array([[1, 0, 0, 0], [0, 0, 1, 1]], np.float32))
    shown = hidden.reshape(-1, 4)[:, 3] > 0
    np.testing.assert_array_equal(np.flatnonzero(shown), np.unique(o.pixel[o.component == 1]))
    assert np.count_nonzero(flat[:, 3]) > np.count_nonzero(shown)
    with pytest.raises(ValueError, match="3 colours for 2 components"):
        outline_image(o, np.ones((3, 4)))


def test_volume_outlines_per_plane_and_frame_edges():
    masks = np.zeros((1, 3, 10, 10), bool)
    masks[0, 1, 0:4, 0:4] = True  # touches the frame's top-left corner
    o = outlines(_est(masks), factor=2)
    assert o.shape == (3, 20, 20)
    fine = np.zeros(o.shape, bool)
    fine.ravel()[o.pixel] = True
    assert not fine[0].any() and not fine[2].any()
    assert fine[1, 0, :8].all() and fine[1, :8, 0].all()  # the frame edge counts as outside
    assert not fine[1, 1:7, 1:7].any()


def test_geometry_round_trip_to_frame_pixels():
    scale, translate = (2.0, 0.5, 0.25), (10.0, -3.0, 4.0)
    s, t = image_geometry(scale, translate, 2)
    assert s == (2.0, 0.25, 0.125)
    # image pixels 2u and 2u + 1 lie a quarter frame pixel either side of frame pixel u's centre
    for i in (0, 1, 6, 7):
        world = np.asarray(t) + np.array([1, i, i]) * np.asarray(s)
        frame = (world - np.asarray(translate)) / np.asarray(scale)
        np.testing.assert_allclose(frame, [1, i / 2 - 0.25, i / 2 - 0.25])
        np.testing.assert_allclose(frame_position([1, i, i], 2), frame)


def test_component_paths_trace_only_the_asked_components():
    masks = np.stack([_square((20, 20), 2, 2, 4), _square((20, 20), 10, 10, 5)])
    est = _est(masks)
    polys, owner = contours(est)
    one = component_paths(est, [1])
    assert len(one) == 1
    np.testing.assert_allclose(one[0], closed_paths([polys[int(np.flatnonzero(owner == 1)[0])]])[0])
    assert component_paths(est, []) == []
