"""The Evaluation / curation dock widget, driven the way a user drives it."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from napari.layers import Image, Labels
from napari.utils.key_bindings import coerce_keybinding

from napari_caiman.engine.cnmf import cnmf
from napari_caiman.engine.curation import load_curation_sidecar, sidecar_path
from napari_caiman.engine.evaluation import apply_thresholds
from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.summary import summary_images
from napari_caiman.engine.synthetic import make_movie_2d, make_movie_3d
from napari_caiman.io.results_file import load_results
from napari_caiman.plugin.layers.cnmf import ReconstructedMovie, labels_image
from napari_caiman.plugin.layers.evaluation import ACCEPTED_COLOR, REJECTED_COLOR
from napari_caiman.plugin.widgets.evaluation import EvaluationWidget
from napari_caiman.plugin.widgets.traces import TracesPlot

pytestmark = pytest.mark.gui

EVAL_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def fitted_2d():
    """(300, 64, 64) movie, 12 neurons, its CNMF estimates, summary and parameters."""
    m = make_movie_2d((300, 64, 64), n_neurons=12, seed=1, return_flow=False)
    params = CaimanParams.from_dict({"K": 15, "gSig": (4, 4)})
    est = cnmf(m.movie, params)
    return m.movie, est, summary_images(m.movie), params


@pytest.fixture(scope="module")
def fitted_3d():
    movie = make_movie_3d((100, 6, 40, 40), n_neurons=5, snr=3.0, seed=2, return_flow=False).movie
    params = CaimanParams.from_dict({"K": 6, "gSig": (3, 3, 1)})
    est = cnmf(movie, params)
    return movie, est, summary_images(movie), params


@pytest.fixture
def widget(viewer):
    _, w = viewer.window.add_plugin_dock_widget("napari-caiman", "Evaluation / curation")
    w.confirm = lambda text: True
    return w


def _show(viewer, widget, fitted, name="raw"):
    movie, est, summary, params = fitted
    viewer.add_image(movie, name=name)
    widget.set_result(copy.deepcopy(est), summary, params.copy(), name, build_layers=True)
    widget.movie.value = viewer.layers[name]
    return widget.session.estimates


def _evaluate(qtbot, widget):
    widget.runner.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.runner.is_running, timeout=EVAL_TIMEOUT_MS)
    assert widget.session.metrics is not None, widget.runner.status.value


def _expected_colors(widget):
    return np.where(widget.accepted[:, None], ACCEPTED_COLOR, REJECTED_COLOR)


def _assert_colors(rgba, widget, expected=None):
    """Every component's outline (where no other crosses it) in its status colour."""
    expected = _expected_colors(widget) if expected is None else expected
    drawn = np.isfinite(rgba[:, 0])
    assert drawn.sum() >= 0.9 * len(drawn)
    np.testing.assert_allclose(rgba[drawn], expected[drawn], atol=1 / 255)


def test_dock_widget_from_manifest(viewer, widget):
    assert isinstance(widget, EvaluationWidget)
    assert widget.session is None
    assert widget.min_SNR.value == 2.5 and widget.rval_thr.value == 0.8


def test_evaluate_then_sliders_recolour_without_recompute(
    qtbot, viewer, widget, fitted_2d, errors, outlines_rgba
):
    est = _show(viewer, widget, fitted_2d)
    K = est.n_components
    contours = widget.contours_layer
    assert isinstance(contours, Image) and contours.rgb
    assert widget.counts.value == f"{K} accepted / 0 rejected / 0 manual"  # not evaluated yet
    _evaluate(qtbot, widget)
    assert errors == []
    metrics = widget.session.metrics
    good, _ = apply_thresholds(
        metrics,
        min_SNR=2.5,
        SNR_lowest=0.5,
        rval_thr=0.8,
        rval_lowest=-1.0,
        min_solidity=0.6,
        max_pieces=1,
        min_area_ratio=0.075,
        max_area_ratio=4.0,
    )
    assert np.array_equal(np.flatnonzero(widget.accepted), good)
    assert metrics.solidity is not None and metrics.solidity.shape == (K,)
    _assert_colors(outlines_rgba(contours), widget)
    # the footprints Labels is made when the user asks for it, with the evaluation's features,
    # in the frame's geometry (the contours are twice as fine)
    assert "raw footprints" not in viewer.layers
    widget.footprints_button.native.click()
    footprints = viewer.layers["raw footprints"]
    assert isinstance(footprints, Labels) and footprints.visible
    np.testing.assert_array_equal(footprints.data, labels_image(widget.session.estimates))
    assert tuple(footprints.scale) == pytest.approx(tuple(2 * np.asarray(contours.scale)))
    for column in ("SNR", "r_value", "status", "manual"):
        assert column in footprints.features
    widget.footprints_button.native.click()  # a second click shows the same layer
    assert [layer.name for layer in viewer.layers].count("raw footprints") == 1
    # a shape slider re-thresholds at once: no footprint is that convex
    widget.min_solidity.value = 1.0
    assert not widget.accepted[metrics.solidity < 1.0].any()
    widget.min_solidity.value = 0.6
    # stricter thresholds: fewer accepted, at once, same metrics object
    widget.min_SNR.value = 6.0
    widget.rval_thr.value = 0.99
    good, _ = apply_thresholds(
        metrics,
        min_SNR=6.0,
        SNR_lowest=0.5,
        rval_thr=0.99,
        rval_lowest=-1.0,
        min_solidity=0.6,
        max_pieces=1,
        min_area_ratio=0.075,
        max_area_ratio=4.0,
    )
    assert np.array_equal(np.flatnonzero(widget.accepted), good)
    _assert_colors(outlines_rgba(contours), widget)
    assert widget.session.metrics is metrics and not widget.runner.is_running
    widget.rval_lowest.value = 1.0  # r > 1 never holds: all rejected
    assert not widget.accepted.any()
    assert widget.counts.value == f"0 accepted / {K} rejected / 0 manual"
    _assert_colors(outlines_rgba(contours), widget, np.tile(REJECTED_COLOR, (K, 1)))
    assert set(footprints.features["status"]) == {"rejected"}
    assert widget.timings["total"] < 0.5
    # show filter: hidden = alpha 0
    widget.show_filter.value = "accepted"
    assert not np.asarray(contours.data)[..., 3].any()
    widget.show_filter.value = "all"
    widget.rval_lowest.value = -1.0
    widget.min_solidity.value = 0.0
    widget.min_area_ratio.value = 0.0
    widget.max_pieces.value = 10.0
    widget.max_area_ratio.value = 20.0
    widget.min_SNR.value = 0.0
    assert widget.accepted.all()
    # the components table follows
    assert widget.table_model.rowCount() == K
    assert set(widget.table_model.columns["status"]) == {"accepted"}
    np.testing.assert_allclose(widget.table_model.columns["solidity"], metrics.solidity)


def test_residual_needs_the_movie(qtbot, viewer, widget, fitted_2d, errors):
    movie, est, summary, params = fitted_2d
    widget.set_result(copy.deepcopy(est), summary, params.copy(), "gone", build_layers=True)
    widget.residual_button.native.click()  # the movie CNMF ran on is not in the viewer
    assert "gone residual" not in viewer.layers
    assert len(errors) == 1 and "the residual needs the movie CNMF ran on" in errors[0], errors
    widget.denoised_button.native.click()  # the model alone needs no movie
    assert len(errors) == 1
    denoised = viewer.layers["gone denoised"]
    assert denoised.visible and denoised.data.shape == movie.shape
    viewer.add_image(movie[:, :32], name="cropped")  # another movie: not the result's shape
    widget.residual_button.native.click()
    assert len(errors) == 2 and "gone residual" not in viewer.layers
    viewer.add_image(movie, name="gone")  # the movie, opened: the residual comes
    widget.residual_button.native.click()
    assert len(errors) == 2
    np.testing.assert_allclose(
        viewer.layers["gone residual"].data[7], movie[7] - denoised.data[7], rtol=1e-4, atol=1e-2
    )


def test_keys_clicks_traces_and_sidecar(qtbot, viewer, widget, fitted_2d, tmp_path, outlines_rgba):
    est = _show(viewer, widget, fitted_2d)
    _evaluate(qtbot, widget)
    path = widget.save(tmp_path / "res.hdf5")
    contours = widget.contours_layer
    # a click on the footprints Labels at a component's peak selects it
    assert "raw footprints" not in viewer.layers  # made when the user asks for it
    widget.footprints_button.native.click()
    footprints = viewer.layers["raw footprints"]
    assert isinstance(footprints, Labels) and footprints.visible
    k = int(np.argmax(np.bincount(footprints.data.ravel())[1:]))  # largest labelled component
    y, x = np.argwhere(footprints.data == k + 1).mean(axis=0).round().astype(int)
    if footprints.data[y, x] != k + 1:
        y, x = np.argwhere(footprints.data == k + 1)[0]
    assert widget.component_at(footprints, (y, x)) == k
    widget.select_component(k)
    # key bindings on the contours layer (what a key press with it active calls)
    contours.keymap[coerce_keybinding("r")](contours)
    assert widget.session.curation.manual[k] == -1 and not widget.accepted[k]
    np.testing.assert_allclose(outlines_rgba(contours)[k], REJECTED_COLOR, atol=1 / 255)
    assert footprints.features["manual"][k] == "rejected"
    assert widget.counts.value.endswith("/ 1 manual")
    side = load_curation_sidecar(path)
    assert side is not None and side.manual[k] == -1  # autosaved after the decision
    contours.keymap[coerce_keybinding("a")](contours)
    assert widget.session.curation.manual[k] == 1 and widget.accepted[k]
    contours.keymap[coerce_keybinding("u")](contours)
    assert widget.session.curation.manual[k] == 0
    # viewer-level binding too (another layer active)
    viewer.keymap[coerce_keybinding("n")](viewer)
    assert widget.selected is not None and widget.selected != k
    # traces dock shows the selected component's data
    traces = viewer.window.dock_widgets["Traces"]
    assert isinstance(traces, TracesPlot)
    j = widget.selected
    np.testing.assert_allclose(traces.ydata("C"), est.C[j], rtol=1e-5)
    np.testing.assert_allclose(traces.ydata("raw"), est.C[j] + est.YrA[j], rtol=1e-5)
    np.testing.assert_allclose(traces.ydata("dff"), widget.session.F_dff[j], rtol=1e-5)
    viewer.dims.set_current_step(0, 42)
    assert traces.frame() == 42
    traces.frame_clicked.emit(17)
    assert viewer.dims.current_step[0] == 17
    assert sidecar_path(path).is_file()


def test_save_load_restores_decisions_and_export(qtbot, viewer, widget, fitted_2d, tmp_path):
    pynwb = pytest.importorskip("pynwb")
    est = _show(viewer, widget, fitted_2d)
    _evaluate(qtbot, widget)
    widget.min_SNR.value = 3.0
    widget.decide("reject", [0, 1])
    widget.decide("accept", [2])
    final = widget.accepted.copy()
    path = widget.save(tmp_path / "res.hdf5")
    res = load_results(path)
    np.testing.assert_array_equal(res.curation.manual, widget.session.curation.manual)
    np.testing.assert_array_equal(res.accepted(), np.flatnonzero(final))
    # a fresh widget loading the file shows the same state
    other = EvaluationWidget(viewer)
    other.load(path)
    assert other.min_SNR.value == 3.0
    np.testing.assert_array_equal(other.accepted, final)
    np.testing.assert_array_equal(other.session.curation.manual, widget.session.curation.manual)
    # exports of the accepted components
    nwb = widget.export("nwb", tmp_path / "out.nwb")
    with pynwb.NWBHDF5IO(str(nwb), "r") as io:
        f = io.read()
        rrs = f.processing["ophys"]["Fluorescence"].roi_response_series
        series = next(iter(rrs.values()))
        assert series.data.shape[1] == final.sum() or series.data.shape[0] == final.sum()
    csv = widget.export("csv", tmp_path / "out.csv")
    assert len(Path(csv).read_text().splitlines()[0].split(",")) == final.sum() + 1
    assert widget.export("tiff", tmp_path / "out.tif").is_file()
    assert est.n_components == len(final)


def test_merge_and_delete_keep_other_decisions(qtbot, viewer, widget, fitted_2d):
    est = _show(viewer, widget, fitted_2d)
    _evaluate(qtbot, widget)
    widget.footprints_button.native.click()  # a shown footprints layer follows the edits
    widget.residual_button.native.click()  # and so does a shown residual movie
    assert viewer.layers["raw residual"].data.estimates is widget.session.estimates
    K = est.n_components
    widget.decide("reject", [K - 1])
    widget.decide("accept", [3])
    widget.select_component(0)
    widget.select_component(1, add=True)
    assert widget.picked == [0, 1]
    widget.merge_button.native.click()
    s = widget.session
    assert s.n_components == K - 1
    assert s.curation.manual[0] == 0  # the merged one: the thresholds decide, not a forced accept
    assert np.isfinite(s.metrics.SNR_comp[0])  # its SNR at once
    qtbot.waitUntil(lambda: not widget.runner.is_running, timeout=EVAL_TIMEOUT_MS)
    assert np.isfinite(s.metrics.r_values[0]) and s.F_dff.shape[0] == K - 1  # re-evaluated
    good, _ = apply_thresholds(
        s.metrics,
        min_SNR=2.5,
        SNR_lowest=0.5,
        rval_thr=0.8,
        rval_lowest=-1.0,
        min_solidity=0.6,
        max_pieces=1,
        min_area_ratio=0.075,
        max_area_ratio=4.0,
    )
    assert widget.accepted[0] == (0 in good)
    assert s.curation.manual[2] == 1 and s.curation.manual[K - 2] == -1  # shifted by one
    assert widget.outlines.n_components == K - 1
    assert len(viewer.layers["raw footprints"].features) == K - 1
    residual = viewer.layers["raw residual"].data
    assert residual.estimates is s.estimates and residual.estimates.A.shape[1] == K - 1
    movie = fitted_2d[0]
    np.testing.assert_allclose(
        residual[5], movie[5] - ReconstructedMovie(s.estimates)[5], rtol=1e-4, atol=1e-2
    )
    assert widget.table_model.rowCount() == K - 1
    widget.select_component(2)  # old component 3
    widget.delete_button.native.click()
    assert s.n_components == K - 2
    assert s.curation.manual[-1] == -1 and s.curation.manual[0] == 0
    assert s.metrics.SNR_comp.shape == (K - 2,)


def test_seeded_refit_replaces_result_and_keeps_decisions(qtbot, viewer, widget, fitted_2d):
    est = _show(viewer, widget, fitted_2d)
    _evaluate(qtbot, widget)
    widget.denoised_button.native.click()  # a shown denoised movie follows the refit
    keep = int(np.flatnonzero(widget.accepted)[0])
    widget.decide("accept", [keep])
    seeds = widget.new_seeds_layer()
    names = [layer.name for layer in viewer.layers]
    seeds.data[2:7, 2:7] = 1  # a "missed neuron" in a corner
    seeds.refresh()
    widget.refit_runner.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.refit_runner.is_running, timeout=EVAL_TIMEOUT_MS)
    qtbot.waitUntil(lambda: not widget.runner.is_running, timeout=EVAL_TIMEOUT_MS)
    s = widget.session
    assert s.estimates is not est
    assert s.n_components >= 1
    assert (s.curation.manual == 1).sum() == 1  # the decision followed its footprint
    assert s.metrics is not None  # re-evaluated after the refit
    denoised = viewer.layers["raw denoised"]
    assert denoised.data.estimates is s.estimates and denoised.visible
    assert [layer.name for layer in viewer.layers] == names  # updated in place


def test_3d_result_has_per_plane_contours(qtbot, viewer, widget, fitted_3d, outlines_rgba):
    est = _show(viewer, widget, fitted_3d)
    contours = widget.contours_layer
    assert contours.ndim == 3 and contours.rgb
    planes = np.flatnonzero(np.asarray(contours.data)[..., 3].any(axis=(1, 2)))
    assert len(planes) > 1
    _evaluate(qtbot, widget)
    widget.rval_lowest.value = 0.5
    _assert_colors(outlines_rgba(contours), widget)
    widget.select_component(0, center=True)
    assert viewer.layers["raw selected"].ndim == 3
    widget.decide("accept")
    assert widget.accepted[0] and est.n_components == widget.session.n_components


def test_train_classifier_button_learns_decisions_and_applies_to_undecided(
    qtbot, viewer, widget, fitted_2d, tmp_path
):
    from napari_caiman.engine.classifier import Classifier

    _show(viewer, widget, fitted_2d)
    _evaluate(qtbot, widget)
    metrics = widget.session.metrics
    K = widget.session.n_components
    order = np.argsort(metrics.SNR_comp)
    widget.decide("reject", list(order[:3]))  # the weakest by hand
    widget.decide("accept", list(order[-3:]))
    out = tmp_path / "mine.json"
    widget.ask_classifier_path = lambda start: str(out)
    widget.classifier_button.native.click()
    assert out.exists() and Classifier.load(out).info["n_train"] == 6
    prob = widget.session.metrics.classifier_prob
    assert prob is not None and prob.shape == (K,)
    manual = widget.session.curation.manual
    undecided = manual == 0
    shape_ok = (metrics.solidity >= 0.6) & (metrics.n_pieces <= 1) & (metrics.area_ratio >= 0.075)
    np.testing.assert_array_equal(widget.accepted[undecided], ((prob >= 0.5) & shape_ok)[undecided])
    assert not widget.accepted[order[:3]].any() and widget.accepted[order[-3:]].all()


def test_anatomy_and_classifier_terms_match_a_headless_run(qtbot, viewer, widget, fitted_2d):
    """The dock accepts the same anatomy-seeded components as a headless evaluation with
    the same parameters (it used to leave accept_anatomy out, i.e. off)."""
    from napari_caiman.engine.evaluation import evaluate_components

    movie, est, summary, params = fitted_2d
    seeded = copy.deepcopy(est)
    anatomy = np.zeros(est.n_components, bool)
    anatomy[: est.n_components // 2] = True  # as if these came from anatomical seeds
    seeded.from_anatomy = anatomy
    viewer.add_image(movie, name="raw")
    widget.set_result(copy.deepcopy(seeded), summary, params.copy(), "raw", build_layers=True)
    widget.movie.value = viewer.layers["raw"]
    assert widget.accept_anatomy.value is True  # the headless default
    widget.min_SNR.value = 20.0  # strict: no trace passes the SNR / r-value test
    widget.rval_thr.value = 1.0
    _evaluate(qtbot, widget)
    strict = params.copy().update({"min_SNR": 20.0, "rval_thr": 1.0})
    headless = copy.deepcopy(seeded)
    evaluate_components(movie, headless, strict)
    assert 0 < len(headless.idx_components) <= anatomy.sum()
    np.testing.assert_array_equal(np.flatnonzero(widget.accepted), headless.idx_components)
    # unticked, as headless with accept_anatomy=False: the silent-by-threshold ones go
    widget.accept_anatomy.native.click()
    assert widget.accept_anatomy.value is False
    off = copy.deepcopy(seeded)
    evaluate_components(movie, off, strict.copy().update({"accept_anatomy": False}))
    np.testing.assert_array_equal(np.flatnonzero(widget.accepted), off.idx_components)
    assert len(off.idx_components) < len(headless.idx_components)
    # a classifier's probabilities replace the SNR / r-value test at min_classifier_prob
    from napari_caiman.engine.evaluation import thresholds_from_params

    widget.accept_anatomy.native.click()
    metrics = widget.session.metrics
    metrics.classifier_prob = np.linspace(0.0, 1.0, est.n_components)
    widget.min_classifier_prob.value = 0.7
    th = dict(thresholds_from_params(strict), min_classifier_prob=0.7)
    good, _ = apply_thresholds(metrics, **th)
    np.testing.assert_array_equal(np.flatnonzero(widget.accepted), good)
    assert not np.array_equal(
        good, apply_thresholds(metrics, **dict(th, min_classifier_prob=0.2))[0]
    )
    assert widget._params()["min_classifier_prob"] == 0.7


def test_terms_without_a_field_follow_the_results_parameters(qtbot, viewer, widget, fitted_2d):
    """The joint activity test has no field in the dock: like a headless run, the dock
    reads it from the result's parameters (it used to apply the function's defaults)."""
    from napari_caiman.engine.evaluation import evaluate_components

    movie, est, summary, params = fitted_2d
    strict = {"min_SNR": 4.0, "rval_thr": 0.95}
    off = params.copy().update({**strict, "joint_SNR_frac": None, "joint_rval_frac": None})
    viewer.add_image(movie, name="raw")
    widget.set_result(copy.deepcopy(est), summary, off.copy(), "raw", build_layers=True)
    widget.movie.value = viewer.layers["raw"]
    widget.min_SNR.value, widget.rval_thr.value = strict["min_SNR"], strict["rval_thr"]
    _evaluate(qtbot, widget)
    headless_off, headless_on = copy.deepcopy(est), copy.deepcopy(est)
    evaluate_components(movie, headless_off, off)
    evaluate_components(
        movie, headless_on, params.copy().update(strict)
    )  # the joint test on (default)
    assert len(headless_on.idx_components) > len(headless_off.idx_components)  # it matters here
    np.testing.assert_array_equal(np.flatnonzero(widget.accepted), headless_off.idx_components)


def test_hovering_a_contour_shows_its_component_in_the_status_bar(
    qtbot, viewer, widget, fitted_2d, user
):
    _show(viewer, widget, fitted_2d)
    _evaluate(qtbot, widget)
    contours = widget.contours_layer
    viewer.layers.selection.active = contours
    footprints = labels_image(widget.session.estimates)
    k = int(np.argmax(np.bincount(footprints.ravel())[1:]))  # the largest component
    y, x = np.argwhere(footprints == k + 1).mean(axis=0)
    assert widget.component_at(contours, (y, x)) == k  # what a click there would pick
    snr = f"SNR {float(widget.session.metrics.SNR_comp[k]):.2f}"
    status = "accepted" if widget.accepted[k] else "rejected"
    viewer.window.show()  # a user's window is on screen: Qt delivers the moves to it
    qtbot.waitExposed(viewer.window._qt_window)
    qtbot.wait(200)  # the window's final layout (the canvas' size fixes the mapping)
    status_thread = viewer.window._qt_window.status_thread

    def hover(world_yx) -> str:
        """A Qt mouse-move to ``world_yx``, then the status napari's status thread computes
        for the cursor (its loop runs only inside napari.run's event loop)."""
        from qtpy.QtCore import QPointF, Qt
        from qtpy.QtGui import QMouseEvent
        from qtpy.QtWidgets import QApplication

        point = QPointF(user.point(world_yx))
        for _ in range(4):  # correct the pixel by where napari puts the cursor
            move = QMouseEvent(
                QMouseEvent.Type.MouseMove,
                point,
                QPointF(user.canvas.mapToGlobal(point.toPoint())),
                Qt.MouseButton.NoButton,
                Qt.MouseButton.NoButton,
                Qt.KeyboardModifier.NoModifier,
            )
            QApplication.sendEvent(user.canvas, move)
            qtbot.wait(20)
            error = np.asarray(world_yx) - np.asarray(viewer.cursor.position[-2:])
            if np.abs(error).max() < 0.5:
                break
            dy, dx = error * viewer.scene.camera.zoom
            point = QPointF(point.x() + dx, point.y() + dy)
        assert np.abs(error).max() < 0.5, (viewer.cursor.position, world_yx)
        status_thread.calculate_status()
        qtbot.wait(20)  # its signal reaches the main thread
        text = viewer.status
        return text.get("coordinates", "") if isinstance(text, dict) else str(text)

    text = hover((y, x))
    assert f"component #{k}:" in text and snr in text and status in text, text
    # off every component: napari's plain status again
    empty = np.argwhere(footprints == 0)[0].astype(float)
    assert "component #" not in hover(tuple(empty))


def test_the_yellow_selection_outline_follows_each_selection_on_the_canvas(
    qtbot, viewer, widget, fitted_2d, user
):
    """The selection's Vectors data changes without napari's viewer-wide dims update: the
    canvas still draws the new outline (and only it), and the dims are the same."""
    _show(viewer, widget, fitted_2d)
    _evaluate(qtbot, widget)
    footprints = labels_image(widget.session.estimates)
    sizes = np.bincount(footprints.ravel(), minlength=widget.session.n_components + 1)[1:]
    centres = {k: np.argwhere(footprints == k + 1).mean(axis=0) for k in np.flatnonzero(sizes > 20)}
    # two components far apart
    a, b = max(
        ((i, j) for i in centres for j in centres if i < j),
        key=lambda ij: np.abs(centres[ij[0]] - centres[ij[1]]).sum(),
    )
    viewer.window.show()
    qtbot.waitExposed(viewer.window._qt_window)
    ranges = viewer.dims.range

    def yellow_near(k) -> int:
        shot = viewer.screenshot(canvas_only=True, flash=False)
        p = user.point(centres[k])
        y0, x0 = p.y(), p.x()
        box = shot[max(0, y0 - 40) : y0 + 40, max(0, x0 - 40) : x0 + 40].astype(int)
        r, g, bl = box[..., 0], box[..., 1], box[..., 2]
        return int(((r > 200) & (g > 200) & (bl < 80)).sum())

    widget.select_component(int(a))
    qtbot.wait(50)
    assert yellow_near(a) > 10 and yellow_near(b) == 0
    widget.select_component(int(b))
    qtbot.wait(50)
    assert yellow_near(b) > 10 and yellow_near(a) == 0
    assert viewer.dims.range == ranges
    starts = viewer.layers["raw selected"].data[:, 0, -2:]  # b's outline, nothing of a's
    assert len(starts) and np.abs(starts - centres[b]).max() < 15
