"""The step docks of one viewer meet on its analysis sessions (app.session.Session):
Motion -> CNMF -> Evaluation through the Plugins menu, the Evaluation dock
following each session's CNMF results (docked before any run)."""

from __future__ import annotations

import pytest

from napari_caiman.plugin.widgets._state import viewer_sessions

pytestmark = pytest.mark.gui

TIMEOUT_MS = 60_000


def _dock(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget("napari-caiman", name)
    return widget


def _run(qtbot, widget):
    widget.runner.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.runner.is_running, timeout=TIMEOUT_MS)


def test_motion_cnmf_evaluation_follow_the_newest_result_of_the_sessions(
    qtbot, viewer, movie_2d, errors
):
    raw = viewer.add_image(movie_2d.movie, name="movie")
    motion, cnmf, evaluation = (
        _dock(viewer, n) for n in ("Motion correction", "CNMF", "Evaluation / curation")
    )
    assert evaluation.session is None
    sessions = viewer_sessions(viewer)

    _run(qtbot, motion)
    assert errors == [], errors
    corrected = sessions.get("movie corrected")
    # the motion dock's result is in the session of its corrected layer; the movie is the raw one
    assert corrected.motion is motion.last_step.motion and corrected.movie is raw.data
    assert corrected.corrected.shape == viewer.layers["movie corrected"].data.shape
    assert sessions.input_layer("movie corrected") == "movie"
    assert corrected.estimates is None and evaluation.session is None

    assert cnmf.movie.value.name == "movie corrected"  # the new corrected movie is chosen
    cnmf.set_settings(cnmf.get_settings().replace(K=12, gSig=(4, 4, 2)))
    _run(qtbot, cnmf)
    assert errors == [], errors
    first = cnmf.last_result.estimates
    assert corrected.estimates is first and sessions.newest is corrected
    # the params the dock ran with, in the session (what the Evaluation dock thresholds with)
    assert corrected.params["K"] == 12 and tuple(corrected.params["gSig"])[:2] == (4, 4)
    # the Evaluation dock, docked before any result, follows the session's CNMF result
    qtbot.waitUntil(lambda: evaluation.session is not None, timeout=TIMEOUT_MS)
    assert evaluation.session.estimates is first and evaluation.session.name == "movie corrected"
    assert evaluation.contours_layer.name == "movie corrected contours"  # (proxies: by name)

    # CNMF again on the corrected movie: the same session, the Evaluation dock switches
    cnmf.set_settings(cnmf.get_settings().replace(K=8))
    _run(qtbot, cnmf)
    second = cnmf.last_result.estimates
    assert second is not first and corrected.estimates is second
    qtbot.waitUntil(lambda: evaluation.session.estimates is second, timeout=TIMEOUT_MS)
    assert evaluation.session.n_components == second.n_components

    # CNMF on the raw movie: a session of its own (no motion, no border), and the newest result
    cnmf.movie.value = raw
    _run(qtbot, cnmf)
    assert errors == [], errors
    own = sessions.get("movie")
    assert own is not corrected and own.motion is None and own.movie is raw.data
    assert own.estimates is cnmf.last_result.estimates and sessions.newest is own
    qtbot.waitUntil(lambda: evaluation.session.name == "movie", timeout=TIMEOUT_MS)
    assert evaluation.session.estimates is own.estimates
    assert corrected.estimates is second  # the corrected movie's analysis is kept as it was

    # motion again on the same movie: the same session; what followed the old correction is dropped
    _run(qtbot, motion)
    assert errors == [], errors
    assert sessions.get("movie corrected") is corrected
    assert corrected.motion is motion.last_step.motion and corrected.estimates is None
    assert evaluation.session.estimates is own.estimates  # no new CNMF result: the dock stays
    # a removed layer's session goes with it (its movie is no longer held)
    viewer.layers.remove("movie")
    assert sessions.get("movie") is None and sessions.get("movie corrected") is corrected
