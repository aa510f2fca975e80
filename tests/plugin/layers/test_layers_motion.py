"""Pure result -> layer-data functions (no viewer, no Qt)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_caiman.engine.errors import InputError
from napari_caiman.plugin.layers.motion import (
    motion_layers,
    patch_rectangles,
    robust_limits,
    shift_series,
)
from napari_caiman.plugin.widgets.motion_settings import MotionSettings


def _fake(pw_rigid: bool, frame=(40, 50), n_frames=5):
    rng = np.random.default_rng(0)
    corrected = rng.random((n_frames, *frame), dtype=np.float32)
    bounds = grid = els = None
    if pw_rigid:
        bounds = np.array(
            [[[0, 24], [0, 30]], [[0, 24], [20, 50]], [[16, 40], [0, 30]], [[16, 40], [20, 50]]]
        )
        grid = (2, 2)
        els = rng.normal(size=(n_frames, 4, 2)).astype(np.float32)
    motion = SimpleNamespace(
        corrected=corrected,
        shifts_rig=rng.normal(size=(n_frames, 2)),
        shifts_els=els,
        patch_bounds=bounds,
        patch_grid_shape=grid,
        metrics={
            "corr_raw": np.zeros(n_frames),
            "corr_corrected": np.ones(n_frames),
            "crispness_raw": 1.0,
            "crispness_corrected": 2.0,
        },
    )
    summary = SimpleNamespace(
        mean=corrected.mean(0), corr=corrected.std(0), max=corrected.max(0), std=corrected.std(0)
    )
    return motion, summary


def test_motion_layers_pass_data_through_with_geometry():
    motion, summary = _fake(pw_rigid=True)
    tuples = motion_layers(motion, summary, "raw", scale=(1, 2, 3), translate=(5, 6, 7))
    names = [meta["name"] for _, meta, _ in tuples]
    assert names == ["raw corrected", "raw correlation", "raw mean", "raw patches"]
    data, meta, kind = tuples[0]
    assert kind == "image" and data is motion.corrected  # not copied
    assert meta["scale"] == (1, 2, 3) and meta["translate"] == (5, 6, 7)
    assert meta["contrast_limits"] == robust_limits(summary.mean)
    assert tuples[1][1]["scale"] == (2, 3) and tuples[3][1]["translate"] == (6, 7)
    rects, meta, kind = tuples[3]
    assert kind == "shapes" and len(rects) == 4 and meta["face_color"] == "transparent"
    np.testing.assert_array_equal(
        rects[1], [[-0.5, 19.5], [-0.5, 49.5], [23.5, 49.5], [23.5, 19.5]]
    )
    assert len(motion_layers(*_fake(pw_rigid=False), "raw")) == 3


def test_3d_patches_become_one_rectangle_per_yx_footprint():
    bounds = np.array([[[z0, z0 + 4], [y0, y0 + 10], [0, 10]] for z0 in (0, 3) for y0 in (0, 8)])
    rects, index = patch_rectangles(bounds)
    assert len(rects) == 2 and list(index) == [0, 1]


def test_robust_limits_never_flat():
    assert robust_limits(np.full((4, 4), 3.0))[1] > 3.0
    assert robust_limits(np.full((4, 4), np.nan)) == (0.0, 1.0)


def test_shift_series():
    motion, _ = _fake(pw_rigid=True)
    s = shift_series(motion)
    assert list(s["rigid"]) == ["y", "x"] and list(s["spread"]) == ["y", "x"]
    lo, hi = s["spread"]["x"]
    assert np.all(lo <= hi)
    assert s["crispness_corrected"] == 2.0


def test_settings_map_to_caiman_params():
    s = MotionSettings.defaults()
    assert s.max_shifts[:2] == (6, 6) and s.gSig_filt == (0, 0, 0)
    flat = s.to_dict(2)
    assert flat["max_shifts"] == (6, 6) and flat["gSig_filt"] is None and flat["is3D"] is False
    flat3 = s.replace(
        gSig_filt=(3, 3, 1), kwargs="{'niter_rig': 2, 'max_shifts': (5, 5, 1)}"
    ).to_dict(3)
    assert (
        flat3["gSig_filt"] == (3, 3, 1)
        and flat3["niter_rig"] == 2
        and flat3["max_shifts"] == (5, 5, 1)
    )
    assert s.to_params(2)["pw_rigid"] is False
    assert s.output_path is None and s.replace(output=" a.tif ").output_path == "a.tif"
    with pytest.raises(InputError, match="^kwargs: "):
        s.replace(kwargs="{oops").to_dict(2)
