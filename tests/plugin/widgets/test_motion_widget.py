"""The Motion correction dock widget, driven the way a user drives it."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Shapes

from napari_caiman.plugin.widgets.motion import MotionCorrectionWidget
from napari_caiman.plugin.widgets.shifts_plot import DOCK_NAME, ShiftsPlot

pytestmark = pytest.mark.gui


def _configure(widget, layer, **changes):
    widget.movie.value = layer
    widget.set_settings(widget.get_settings().replace(**changes))


def _centered(a):
    return a - a.mean(axis=0)


def test_dock_widget_from_manifest(viewer, motion_widget):
    assert isinstance(motion_widget, MotionCorrectionWidget)
    assert any(w is motion_widget for w in viewer.window.dock_widgets.values())
    assert motion_widget.movie.choices == ()
    assert not motion_widget.runner.is_running


def test_layer_choices_follow_the_viewer(viewer, motion_widget, movie_2d, movie_3d):
    raw = viewer.add_image(movie_2d.movie, name="raw")
    viewer.add_image(np.zeros((8, 8)), name="flat")  # 2D: not a movie
    assert motion_widget.movie.choices == (raw,)
    raw.name = "renamed"
    assert motion_widget.movie.choices == (raw,)
    vol = viewer.add_image(movie_3d.movie, name="vol")
    assert motion_widget.movie.choices == (raw, vol)
    viewer.layers.remove("renamed")
    assert motion_widget.movie.choices == (vol,)


def test_rigid_run_adds_layers_and_recovers_shifts(
    qtbot, viewer, motion_widget, movie_2d, wait_done, errors
):
    raw = viewer.add_image(movie_2d.movie, name="raw", scale=(1, 2, 2), translate=(0, 10, 20))
    _configure(motion_widget, raw, pw_rigid=False, max_shifts=(6, 6, 2))
    motion_widget.runner.run_button.native.click()
    assert motion_widget.runner.is_running
    wait_done(motion_widget)
    assert errors == []

    corrected = viewer.layers["raw corrected"]
    assert isinstance(corrected, Image)
    assert corrected.data.shape == raw.data.shape
    assert tuple(corrected.scale) == (1, 2, 2) and tuple(corrected.translate) == (0, 10, 20)
    lo, hi = corrected.contrast_limits
    assert lo < hi
    for suffix in ("mean", "correlation"):
        layer = viewer.layers[f"raw {suffix}"]
        assert layer.data.shape == raw.data.shape[1:]
        assert tuple(layer.scale) == (2, 2)
    assert "raw patches" not in viewer.layers
    assert raw.visible  # raw stays in view

    # CaImAn's correction shifts are minus the true displacement (up to the template's offset)
    result = motion_widget.last_result
    err = np.abs(_centered(result.shifts_rig) + _centered(movie_2d.shifts))
    assert err.max() < 1.0, err.max()
    assert isinstance(viewer.window.dock_widgets[DOCK_NAME], ShiftsPlot)
    assert motion_widget.runner.status.value == "done"
    assert motion_widget.result_label.value.startswith("crispness")


def test_pw_rigid_quilt_and_rerun_replaces_layers(
    qtbot, viewer, motion_widget, movie_2d, wait_done, errors
):
    raw = viewer.add_image(movie_2d.movie, name="raw")
    _configure(motion_widget, raw, pw_rigid=True, strides=(24, 24, 4), overlaps=(8, 8, 2))
    motion_widget.runner.run_button.native.click()
    wait_done(motion_widget)
    assert errors == []

    result = motion_widget.last_result
    assert result.shifts_els is not None
    patches = viewer.layers["raw patches"]
    assert isinstance(patches, Shapes)
    assert len(patches.data) == int(np.prod(result.patch_grid_shape)) == len(result.patch_bounds)
    assert set(patches.features.columns) >= {"patch", "median_shift_y", "shift_spread_x"}
    plot = viewer.window.dock_widgets[DOCK_NAME]
    assert plot.series["spread"]  # pw-rigid band drawn

    # re-run (rigid): the same layers are updated, the stale quilt goes, one shifts dock
    n_layers = len(viewer.layers)
    _configure(motion_widget, raw, pw_rigid=False)
    motion_widget.runner.run_button.native.click()
    wait_done(motion_widget)
    assert errors == []
    assert [layer.name for layer in viewer.layers] == [
        "raw",
        "raw corrected",
        "raw correlation",
        "raw mean",
    ]
    assert len(viewer.layers) == n_layers - 1
    assert sum(name == DOCK_NAME for name in viewer.window.dock_widgets) == 1
    assert motion_widget.last_result.shifts_els is None


def test_cancel_stops_quickly_and_leaves_nothing(
    qtbot, viewer, motion_widget, movie_2d, wait_done, errors, tmp_path
):
    reps = 40  # 3200 frames of 64 x 64, pw-rigid: several seconds of work
    big = np.ascontiguousarray(np.tile(movie_2d.movie, (reps, 1, 1)))
    raw = viewer.add_image(big, name="big")
    out = tmp_path / "corrected.npy"
    _configure(
        motion_widget, raw, pw_rigid=True, strides=(24, 24, 4), overlaps=(8, 8, 2), output=str(out)
    )
    motion_widget.runner.run_button.native.click()
    # wait for registration to start (first progress shown), then cancel
    qtbot.waitUntil(
        lambda: (
            motion_widget.runner.progress.value > 0
            or motion_widget.runner.status.value.startswith("registering")
        ),
        timeout=20_000,
    )
    assert motion_widget.runner.is_running
    motion_widget.runner.cancel_button.native.click()
    wait_done(motion_widget, timeout=2_500)  # ~2 s, with slack for a busy machine

    assert motion_widget.runner.status.value == "cancelled"
    assert motion_widget.runner.progress.value == 0
    assert motion_widget.runner.run_button.enabled
    assert [layer.name for layer in viewer.layers] == ["big"]
    assert motion_widget.last_result is None
    assert DOCK_NAME not in viewer.window.dock_widgets
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temporary file
    assert errors == []


def test_bad_input_shows_plain_error_and_adds_nothing(
    qtbot, viewer, motion_widget, movie_2d, wait_done, errors
):
    raw = viewer.add_image(movie_2d.movie[:, :20, :20].copy(), name="small")
    # caught by the engine, in the worker
    _configure(motion_widget, raw, max_shifts=(30, 30, 2))
    motion_widget.runner.run_button.native.click()
    wait_done(motion_widget)
    assert len(errors) == 1 and errors[0].startswith("max_shifts: "), errors
    assert "Traceback" not in errors[0]
    # caught on the main thread, before any worker starts
    _configure(motion_widget, raw, max_shifts=(6, 6, 2), kwargs="{'max_shift': 3}")
    motion_widget.runner.run_button.native.click()
    assert not motion_widget.runner.is_running
    assert errors[1].startswith("max_shift: unknown parameter") and "max_shifts" in errors[1], (
        errors
    )
    _configure(motion_widget, raw, kwargs="niter_rig=2")
    motion_widget.runner.run_button.native.click()
    assert errors[2].startswith("kwargs: "), errors

    assert [layer.name for layer in viewer.layers] == ["small"]
    assert motion_widget.last_result is None
    assert motion_widget.runner.run_button.enabled


def test_no_movie_selected(viewer, motion_widget, errors):
    motion_widget.runner.run_button.native.click()
    assert errors and errors[0].startswith("movie: ")


def test_3d_movie_shows_z_fields_and_runs(
    qtbot, viewer, motion_widget, movie_2d, movie_3d, wait_done, errors
):
    raw2d = viewer.add_image(movie_2d.movie, name="flat movie")
    vol = viewer.add_image(movie_3d.movie, name="vol")
    motion_widget.movie.value = raw2d
    assert motion_widget.n_spatial == 2
    assert motion_widget.max_shifts.label == "max_shifts (y, x)"
    motion_widget.movie.value = vol
    assert motion_widget.n_spatial == 3
    assert motion_widget.max_shifts.label == "max_shifts (y, x, z)"
    assert motion_widget.gSig_filt.label == "gSig_filt (y, x, z; 0 = off)"
    assert not motion_widget.max_shifts.boxes[2].native.isHidden()

    _configure(motion_widget, vol, max_shifts=(4, 4, 1), pw_rigid=False)
    motion_widget.runner.run_button.native.click()
    wait_done(motion_widget)
    assert errors == []
    assert viewer.layers["vol corrected"].data.shape == movie_3d.movie.shape
    assert viewer.layers["vol mean"].data.shape == movie_3d.movie.shape[1:]
    assert motion_widget.last_result.shifts_rig.shape == (len(movie_3d.movie), 3)
    assert motion_widget.last_params["is3D"] is True
    # 3D summary images are not offered as movies
    assert "vol mean" not in [layer.name for layer in motion_widget.movie.choices]


def test_reset_to_defaults(viewer, motion_widget):
    default = motion_widget.get_settings()
    motion_widget.set_settings(
        default.replace(max_shifts=(9, 9, 3), pw_rigid=True, kwargs="{'niter_rig': 2}")
    )
    assert motion_widget.strides.enabled
    motion_widget.reset_button.native.click()
    assert motion_widget.get_settings() == default
    assert not motion_widget.strides.enabled


def test_file_opened_by_reader_to_output_file(
    qtbot, viewer, motion_widget, movie_2d, wait_done, errors, tmp_path
):
    src = tmp_path / "recording.npy"
    np.save(src, movie_2d.movie)
    (raw,) = viewer.open(src, plugin="napari-caiman")
    assert motion_widget.movie.value is raw
    out = tmp_path / "corrected.npy"
    _configure(motion_widget, raw, output=str(out))
    motion_widget.runner.run_button.native.click()
    wait_done(motion_widget)
    assert errors == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrected.npy", "recording.npy"]
    corrected = viewer.layers["recording corrected"].data
    assert corrected.shape == movie_2d.movie.shape
    np.testing.assert_array_equal(np.load(out, mmap_mode="r")[5], np.asarray(corrected[5]))


def test_memory_limit_puts_the_corrected_movie_on_disk(
    qtbot, viewer, motion_widget, movie_2d, wait_done, errors
):
    """With a budget the corrected movie does not fit, the corrected layer is a
    lazy view of a temporary file; a bad budget or one nothing fits is refused
    with one message before anything runs."""
    raw = viewer.add_image(np.tile(movie_2d.movie, (4, 1, 1)), name="raw")  # 5.2 MB as float32
    _configure(motion_widget, raw, pw_rigid=False)
    motion_widget.memory_limit.value = "lots"
    motion_widget.runner.run_button.native.click()
    assert not motion_widget.runner.is_running
    assert errors and "memory_limit" in errors[-1] and "'lots'" in errors[-1]
    motion_widget.memory_limit.value = "5MB"
    motion_widget.runner.run_button.native.click()
    wait_done(motion_widget)
    assert errors[1:] == []
    data = viewer.layers["raw corrected"].data
    assert isinstance(data, np.memmap) and data.shape == raw.data.shape
    assert str(data.filename).endswith(".npy") and "napari_caiman" in str(data.filename)
    assert motion_widget.last_params["memory_limit"] == "5MB"
