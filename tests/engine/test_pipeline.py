from types import SimpleNamespace

import numpy as np

from napari_caiman.engine.pipeline import NanFilled, motion_border


def test_nan_filled_zeroes_a_fixed_border_and_nans():
    movie = np.ones((5, 6, 20, 30), np.float32)
    movie[2, 3, 10, 10] = np.nan
    view = NanFilled(movie, border=(1, 2, 3))
    frames = view[0:5]
    assert frames.shape == movie.shape and frames.dtype == np.float32
    assert frames[2, 3, 10, 10] == 0
    inner = frames[:, 1:-1, 2:-2, 3:-3]
    assert np.all(inner[~np.isnan(movie[:, 1:-1, 2:-2, 3:-3])] == 1)
    assert (
        frames[:, 0].sum() == 0 and frames[:, :, :2].sum() == 0 and frames[:, :, :, -3:].sum() == 0
    )
    one = view[4]
    assert one.shape == (6, 20, 30) and one[0].sum() == 0 and one[1:-1, 2:-2, 3:-3].min() == 1
    np.testing.assert_array_equal(view[1:3, 2], frames[1:3, 2])
    assert np.isnan(movie[2, 3, 10, 10])  # input untouched


def test_motion_border_covers_rigid_and_patch_shifts():
    rig = np.array([[0.5, -2.2], [1.0, 0.1]])  # CaImAn order (y, x)
    assert motion_border(SimpleNamespace(shifts_rig=rig, shifts_els=None)) == (1, 3)
    els = np.zeros((2, 4, 2))
    els[1, 2] = (-3.5, 0.0)
    assert motion_border(SimpleNamespace(shifts_rig=rig, shifts_els=els)) == (4, 3)
    rig3 = np.array([[1.2, 0.0, 0.4]])  # (y, x, z) -> array order (z, y, x)
    assert motion_border(SimpleNamespace(shifts_rig=rig3, shifts_els=None)) == (1, 2, 0)
