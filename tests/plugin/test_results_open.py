"""Results files opened with File > Open reach the Evaluation dock; bad files
and mismatched movies give plain messages and lose nothing."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from napari_caiman.engine.cnmf import cnmf
from napari_caiman.engine.curation import Curation, save_curation_sidecar
from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.results import Results
from napari_caiman.engine.summary import summary_images
from napari_caiman.engine.synthetic import make_movie_2d
from napari_caiman.io.results_file import load_results, save_results

pytestmark = pytest.mark.gui

WAIT_MS = 10_000


@pytest.fixture(scope="module")
def fitted():
    """(200, 48, 48) movie with 6 neurons, its CNMF estimates, summary, parameters."""
    m = make_movie_2d((200, 48, 48), n_neurons=6, seed=4, return_flow=False)
    params = CaimanParams.from_dict({"K": 8, "gSig": (4, 4), "min_SNR": 3.0})
    return m.movie, cnmf(m.movie, params), summary_images(m.movie), params


def _save(fitted, path, curation=None):
    _, est, s, params = fitted
    summary = {k: getattr(s, k) for k in ("mean", "max", "std", "corr")}
    r = Results(
        params=params,
        dims=est.dims,
        estimates=copy.deepcopy(est),
        summary=summary,
        curation=curation,
    )
    return save_results(path, r)


@pytest.fixture
def evaluation(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-caiman", "Evaluation / curation")
    widget.confirm = lambda text: True
    widget.asked = []

    def refuse(text):  # a test that expects a question sets its own answer
        widget.asked.append(text)
        return "keep"

    widget.ask_replace = refuse
    return widget


@pytest.fixture
def notified(capture):
    """Error notifications of the npe2 reader."""
    return capture("napari.utils.notifications.show_error")


def _open(qtbot, viewer, widget, path, taken=True):
    before = widget.session
    viewer.open(str(path), plugin="napari-caiman")
    if taken:
        qtbot.waitUntil(
            lambda: widget.session is not before and widget.session is not None, timeout=WAIT_MS
        )
    else:
        qtbot.wait(50)  # let the deferred pick-up run


def test_file_open_is_taken_up_without_rebuilding_layers(
    qtbot, viewer, evaluation, fitted, tmp_path, errors
):
    path = _save(fitted, tmp_path / "session1.hdf5")
    viewer.open(str(path), plugin="napari-caiman")
    added = [id(layer) for layer in viewer.layers]  # by the reader
    qtbot.waitUntil(lambda: evaluation.session is not None, timeout=WAIT_MS)
    s = evaluation.session
    assert s.path == path and s.name == "session1"
    assert s.n_components == fitted[1].n_components
    assert [id(layer) for layer in viewer.layers] == added  # used as they are, not rebuilt
    assert evaluation.contours_layer.name == "session1 contours"
    assert evaluation.min_SNR.value == 3.0  # thresholds from the file
    assert "session1.hdf5" in evaluation.source_label.value
    assert errors == []
    # the same results in another layer (e.g. a duplicated layer) are not taken again
    same = viewer.layers["session1 contours"].metadata["napari_caiman_results"]
    viewer.add_image(np.zeros((48, 48)), name="copy", metadata={"napari_caiman_results": same})
    qtbot.wait(50)
    assert evaluation.session is s
    # decisions autosave next to the opened file
    evaluation.decide("reject", [0])
    assert load_results(path).curation.n_decisions == 0  # the file itself is untouched
    from napari_caiman.engine.curation import load_curation_sidecar

    assert load_curation_sidecar(path).manual[0] == -1


def test_dock_opened_after_the_file(qtbot, make_napari_viewer, fitted, tmp_path):
    viewer = make_napari_viewer()
    path = _save(fitted, tmp_path / "earlier.hdf5")
    viewer.open(str(path), plugin="napari-caiman")
    _, widget = viewer.window.add_plugin_dock_widget("napari-caiman", "Evaluation / curation")
    qtbot.waitUntil(lambda: widget.session is not None, timeout=WAIT_MS)
    assert widget.session.path == path


def test_newer_sidecar_decisions_win(qtbot, viewer, evaluation, fitted, tmp_path):
    K = fitted[1].n_components
    path = _save(fitted, tmp_path / "curated.hdf5", curation=Curation(np.zeros(K, np.int8)))
    manual = np.zeros(K, np.int8)
    manual[[1, 2]] = [1, -1]
    save_curation_sidecar(path, Curation(manual, "2999-01-01T00:00:00"))
    _open(qtbot, viewer, evaluation, path)
    np.testing.assert_array_equal(evaluation.session.curation.manual, manual)


def _unsaved(viewer, widget, fitted):
    movie, est, summary, params = fitted
    viewer.add_image(movie, name="raw")
    widget.set_result(copy.deepcopy(est), summary, params.copy(), "raw", build_layers=True)
    widget.decide("accept", [0, 1])
    assert widget.session.has_unsaved_curation
    return widget.session


def test_unsaved_curation_is_kept_when_the_user_says_so(
    qtbot, viewer, evaluation, fitted, tmp_path, infos
):
    session = _unsaved(viewer, evaluation, fitted)
    _open(qtbot, viewer, evaluation, _save(fitted, tmp_path / "other.hdf5"), taken=False)
    qtbot.waitUntil(lambda: len(evaluation.asked) == 1, timeout=WAIT_MS)
    assert "'raw'" in evaluation.asked[0] and "2 decisions" in evaluation.asked[0]
    assert evaluation.session is session  # nothing lost
    assert list(session.curation.manual[:2]) == [1, 1]
    assert infos and "Load results" in infos[-1]
    # the opened file's layers are shown anyway
    assert "other contours" in viewer.layers


def test_unsaved_curation_discarded_on_request(qtbot, viewer, evaluation, fitted, tmp_path):
    _unsaved(viewer, evaluation, fitted)
    evaluation.ask_replace = lambda text: "discard"
    path = _save(fitted, tmp_path / "other.hdf5")
    _open(qtbot, viewer, evaluation, path)
    assert evaluation.session.path == path


def test_unsaved_curation_saved_first(qtbot, viewer, evaluation, fitted, tmp_path):
    session = _unsaved(viewer, evaluation, fitted)
    evaluation.ask_replace = lambda text: "save"
    kept = tmp_path / "raw_curated.hdf5"
    evaluation.ask_save_path = lambda start: str(kept)
    path = _save(fitted, tmp_path / "other.hdf5")
    _open(qtbot, viewer, evaluation, path)
    assert evaluation.session.path == path
    back = load_results(kept)
    np.testing.assert_array_equal(back.curation.manual, session.curation.manual)


def test_cancelled_save_keeps_the_curation(qtbot, viewer, evaluation, fitted, tmp_path):
    session = _unsaved(viewer, evaluation, fitted)
    evaluation.ask_replace = lambda text: "save"
    evaluation.ask_save_path = lambda start: ""  # the user closes the dialog
    _open(qtbot, viewer, evaluation, _save(fitted, tmp_path / "other.hdf5"), taken=False)
    qtbot.wait(100)
    assert evaluation.session is session


def test_curation_with_a_file_is_autosaved_so_no_question(
    qtbot, viewer, evaluation, fitted, tmp_path
):
    first = _save(fitted, tmp_path / "first.hdf5")
    evaluation.load(first)
    evaluation.decide("reject", [0])
    assert not evaluation.session.has_unsaved_curation  # in the sidecar
    _open(qtbot, viewer, evaluation, _save(fitted, tmp_path / "second.hdf5"))
    assert evaluation.asked == [] and evaluation.session.name == "second"
    # merged / deleted components are not in any file: that asks
    evaluation.select_component(0)
    evaluation.delete_picked()
    assert evaluation.session.has_unsaved_curation
    _open(qtbot, viewer, evaluation, _save(fitted, tmp_path / "third.hdf5"), taken=False)
    qtbot.waitUntil(lambda: len(evaluation.asked) == 1, timeout=WAIT_MS)
    assert "edited components" in evaluation.asked[0]
    assert evaluation.session.name == "second"


def test_load_button_asks_too(qtbot, viewer, evaluation, fitted, tmp_path):
    session = _unsaved(viewer, evaluation, fitted)
    evaluation.ask_open_path = lambda: str(_save(fitted, tmp_path / "other.hdf5"))
    evaluation.load_button.native.click()
    assert len(evaluation.asked) == 1 and evaluation.session is session


def test_motion_only_results_are_not_taken(qtbot, viewer, evaluation, tmp_path):
    r = Results(
        params=CaimanParams(),
        dims=(16, 16),
        motion={
            "shifts_rig": np.zeros((5, 2), np.float32),
            "template": np.ones((16, 16), np.float32),
        },
    )
    path = save_results(tmp_path / "motion_only.hdf5", r)
    _open(qtbot, viewer, evaluation, path, taken=False)
    assert evaluation.session is None and "motion_only template" in viewer.layers


# --- bad input -----------------------------------------------------------------------------


def test_truncated_file_from_load_button(qtbot, viewer, evaluation, fitted, tmp_path, errors):
    good = _save(fitted, tmp_path / "good.hdf5")
    evaluation.load(good)
    session = evaluation.session
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    evaluation.ask_open_path = lambda: str(cut)
    evaluation.load_button.native.click()
    assert len(errors) == 1 and "cut.hdf5" in errors[0] and "truncated" in errors[0], errors
    assert "Traceback" not in errors[0]
    assert evaluation.session is session  # the current result stays


def test_a_truncated_file_through_file_open_says_why_once(
    qtbot, viewer, evaluation, fitted, tmp_path, notified, file_open
):
    """File > Open (napari's file dialog, then its reader choice answered): one notification
    naming the file and what is wrong, no exception out of the menu, no layer."""
    good = _save(fitted, tmp_path / "good.hdf5")
    path = tmp_path / "bad.hdf5"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    seen = file_open(path)
    assert [s.split(":")[0] for s in seen] == ["QFileDialog", "QtReaderDialog"], seen
    assert len(notified) == 1 and "bad.hdf5" in notified[0] and "truncated" in notified[0]
    assert len(viewer.layers) == 0 and evaluation.session is None


@pytest.mark.parametrize("kind", ["not hdf5", "other tool"])
def test_foreign_files_are_declined(qtbot, viewer, evaluation, tmp_path, notified, kind):
    import h5py

    path = tmp_path / "bad.hdf5"
    if kind == "not hdf5":
        path.write_text("not a results file\n")
    else:
        with h5py.File(path, "w") as f:
            f["labels"] = np.zeros((4, 4), np.int32)
    with pytest.raises(Exception) as info:  # declined, so that other readers may try
        viewer.open(str(path), plugin="napari-caiman")
    assert notified == [] and "refused" in str(info.value.__cause__ or info.value)
    assert len(viewer.layers) == 0 and evaluation.session is None


def test_results_of_another_movie_size(qtbot, viewer, evaluation, fitted, tmp_path, errors):
    path = _save(fitted, tmp_path / "fitted48.hdf5")  # dims (48, 48)
    other = viewer.add_image(np.zeros((200, 64, 64), np.float32), name="other movie")
    evaluation.load(path)
    evaluation.movie.value = other
    evaluation.runner.run_button.native.click()
    assert not evaluation.runner.is_running
    assert len(errors) == 1, errors
    message = errors[0]
    assert message.startswith("movie: 'other movie' has frames of (64, 64)")
    assert "fitted48.hdf5" in message and "(48, 48)" in message
    # a movie of the right size but other length
    short = viewer.add_image(np.zeros((50, 48, 48), np.float32), name="short")
    evaluation.movie.value = short
    evaluation.runner.run_button.native.click()
    assert "has 50 frames" in errors[1] and "200" in errors[1]
    assert evaluation.session.path == path  # nothing lost


def test_file_open_chooses_the_movie_the_results_were_computed_on(
    qtbot, viewer, tmp_path, file_open, infos
):
    """A headless run saved its corrected movie: opened beside the raw movie (same size, and the
    raw one named like the results file), the dock chooses the corrected one by its content;
    without it open, one message names the movie to open."""
    from napari_caiman.app.api import run_pipeline
    from napari_caiman.io.movie import save_movie

    m = make_movie_2d((150, 48, 48), n_neurons=5, rigid_motion=2.0, seed=3, return_flow=False)
    raw = save_movie(tmp_path / "movie.tif", np.asarray(m.movie, np.float32))
    params = CaimanParams.from_dict({"K": 6, "gSig": (4, 4), "max_shifts": (4, 4)})
    out = tmp_path / "movie.hdf5"
    run_pipeline(
        [str(raw)],
        steps=("motion", "cnmf"),
        output=out,
        params=params,
        save_movie=tmp_path / "movie_corrected.tif",
    )
    file_open(tmp_path / "movie_corrected.tif")
    file_open(raw)  # the raw movie last: it is the active layer, and named like the results
    _, widget = viewer.window.add_plugin_dock_widget("napari-caiman", "Evaluation / curation")
    widget.movie.value = viewer.layers["movie"]
    file_open(out)
    qtbot.waitUntil(lambda: widget.session is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: widget.movie.value.name == "movie_corrected", timeout=WAIT_MS)
    assert not [t for t in infos if "not open" in t]

    # the same file with only the raw movie open: nothing matches, one message says which to open
    viewer.layers.remove("movie_corrected")
    widget.session = None
    before = len(infos)
    widget.use_results(load_results(out), out)
    notes = [t for t in infos[before:] if "not open" in t]
    assert len(notes) == 1 and "movie_corrected.tif" in notes[0], infos[before:]
    assert widget.movie.value.name == "movie"
