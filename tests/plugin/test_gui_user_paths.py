"""The steps as a user drives them: docks from the Plugins menu (a proxy viewer),
real key presses and clicks on the canvas, one dock following another."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_caiman.engine.pipeline import iter_evaluate_step
from napari_caiman.engine.progress import run as drive

pytestmark = pytest.mark.gui

TIMEOUT_MS = 60_000


def _dock(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget("napari-caiman", name)
    return widget


def _run(qtbot, widget, runner=None):
    runner = runner or widget.runner
    runner.run_button.native.click()
    qtbot.waitUntil(lambda: not runner.is_running, timeout=TIMEOUT_MS)


@pytest.fixture
def pipeline(qtbot, viewer, movie_2d, errors):
    """Motion -> CNMF through their docks on the moving 2D movie; the docks."""
    viewer.add_image(movie_2d.movie, name="movie")
    motion = _dock(viewer, "Motion correction")
    assert motion.movie.value.name == "movie"
    motion.set_settings(
        motion.get_settings().replace(pw_rigid=True, strides=(24, 24, 4), overlaps=(12, 12, 2))
    )
    _run(qtbot, motion)
    assert "movie patches" in viewer.layers
    cnmf = _dock(viewer, "CNMF")
    assert cnmf.movie.value.name == "movie corrected"
    cnmf.set_settings(cnmf.get_settings().replace(K=12, gSig=(4, 4, 2)))
    _run(qtbot, cnmf)
    assert errors == [], errors
    return motion, cnmf


def _metrics_on(viewer, name, evaluation, motion_dock=None):
    """What Evaluate computes on the layer ``name`` (the engine, directly): the
    corrected movie read with the motion step's border (the one border rule)."""
    layer = viewer.layers[name]
    corrected = layer.metadata.get("napari_caiman", {}).get("kind") == "motion corrected"
    motion = motion_dock.last_step.motion if corrected and motion_dock is not None else None
    step = drive(
        iter_evaluate_step(
            layer.data, evaluation.session.estimates, evaluation._params(), motion=motion
        )
    )
    return step.metrics


def test_evaluation_scores_the_corrected_movie(qtbot, viewer, pipeline, errors, dialogs):
    motion_dock = pipeline[0]
    evaluation = _dock(viewer, "Evaluation / curation")
    assert evaluation.session.name == "movie corrected"
    assert evaluation.movie.value.name == "movie corrected"  # not the raw "movie"
    _run(qtbot, evaluation)
    assert errors == [], errors
    got = evaluation.session.metrics.r_values
    want = _metrics_on(viewer, "movie corrected", evaluation, motion_dock).r_values
    raw = _metrics_on(viewer, "movie", evaluation).r_values
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.nanmean(got) > np.nanmean(raw) + 0.05  # the raw movie scores worse
    # the re-evaluation after a refit uses the corrected movie too
    seeds = evaluation.new_seeds_layer()
    seeds.data[2:7, 2:7] = 1
    seeds.refresh()
    before = [layer.name for layer in viewer.layers]
    asked = dialogs.answer([dialogs.press("Yes")])  # "Replace the result with the refit?"
    _run(qtbot, evaluation, evaluation.refit_runner)
    assert asked[1::2] == ["QMessageBox: Refit with seeds"], asked
    qtbot.waitUntil(lambda: not evaluation.runner.is_running, timeout=TIMEOUT_MS)
    # the refit updates the result's layers in place: no second correlation image, no footprints
    assert [layer.name for layer in viewer.layers] == before
    assert evaluation.movie.value.name == "movie corrected"
    got = evaluation.session.metrics.r_values
    want = _metrics_on(viewer, "movie corrected", evaluation, motion_dock).r_values
    np.testing.assert_allclose(got, want, atol=1e-6)


def _component_point(widget, k):
    """A world point inside component ``k``'s footprint (its most-weighted pixel)."""
    est = widget.session.estimates
    col = est.A[:, k].toarray().ravel()
    y, x = np.unravel_index(int(np.argmax(col)), est.dims, order="F")
    return float(y), float(x)


def test_keys_and_clicks_curate_and_napari_keys_still_work(
    qtbot, viewer, user, pipeline, errors, monkeypatch
):
    import napari_caiman.plugin.widgets.evaluation as evaluation_module

    raised = []
    monkeypatch.setattr("sys.excepthook", lambda *exc: raised.append(exc))
    evaluation = _dock(viewer, "Evaluation / curation")
    _run(qtbot, evaluation)
    viewer.reset_view()
    qtbot.wait(50)
    contours = evaluation.contours_layer
    viewer.layers.selection.active = contours
    k = int(np.argmax(evaluation.session.metrics.SNR_comp))
    y, x = _component_point(evaluation, k)
    user.click((y, x))
    assert evaluation.selected == k
    user.press(Qt.Key.Key_R)
    assert evaluation.session.curation.manual[k] == -1 and not evaluation.accepted[k]
    user.press(Qt.Key.Key_A)
    assert evaluation.session.curation.manual[k] == 1 and evaluation.accepted[k]
    user.press(Qt.Key.Key_U)
    assert evaluation.session.curation.manual[k] == 0
    order = evaluation.table_model.order
    user.press(Qt.Key.Key_N)
    row = int(evaluation.table_model.rank[k])
    assert evaluation.selected == int(order[(row + 1) % len(order)])
    user.press(Qt.Key.Key_P)
    assert evaluation.selected == k
    # the keys work with the movie layer active too (viewer-level bindings)
    viewer.layers.selection.active = viewer.layers["movie"]
    user.press(Qt.Key.Key_R)
    assert evaluation.session.curation.manual[k] == -1
    # napari's own keys: the arrows step through frames
    viewer.dims.set_current_step(0, 5)
    user.press(Qt.Key.Key_Right)
    assert viewer.dims.current_step[0] == 6
    user.press(Qt.Key.Key_Left)
    assert viewer.dims.current_step[0] == 5
    # Return in a dock field (napari reads the bound functions' names then)
    evaluation.kwargs.native.setFocus()
    qtbot.keyClick(evaluation.kwargs.native, Qt.Key.Key_Return)
    assert raised == [] and errors == []
    assert "functools.partial" not in repr(dict(viewer.keymap))
    # closing the dock (its title bar's x) removes the bindings and clicks
    evaluation.native.parent().titleBarWidget().close_button.click()
    qtbot.wait(10)
    assert "Evaluation / curation (napari-caiman)" not in viewer.window.dock_widgets
    before = evaluation.session.curation.manual.copy()
    viewer.layers.selection.active = viewer.layers["movie"]
    user.press(Qt.Key.Key_A)
    np.testing.assert_array_equal(evaluation.session.curation.manual, before)
    assert not any(
        f.__name__.startswith("napari_caiman_") for f in viewer.keymap.values() if callable(f)
    )
    assert evaluation._on_click not in contours.mouse_drag_callbacks
    assert evaluation_module  # the module's key functions are named, not partials
    # opened again from the Plugins menu: it takes the result up, and keys and clicks work
    again = _dock(viewer, "Evaluation / curation")
    assert again.session is not None and again.session.name == "movie corrected"
    viewer.layers.selection.active = again.contours_layer
    user.click(_component_point(again, k))
    assert again.selected == k
    user.press(Qt.Key.Key_R)
    assert again.session.curation.manual[k] == -1
    assert raised == []


def test_evaluation_follows_a_new_cnmf_run(qtbot, viewer, user, pipeline, errors, dialogs):
    _, cnmf = pipeline
    evaluation = _dock(viewer, "Evaluation / curation")
    first = evaluation.session.estimates
    assert first is cnmf.last_result.estimates
    evaluation.select_component(0)
    assert "movie corrected selected" in viewer.layers
    # a re-run with other parameters: the dock curates the new result, the old outline goes
    cnmf.set_settings(cnmf.get_settings().replace(K=8))
    _run(qtbot, cnmf)
    assert errors == [], errors
    assert evaluation.session.estimates is cnmf.last_result.estimates is not first
    assert evaluation.session.n_components == cnmf.last_result.estimates.n_components
    assert "movie corrected selected" not in viewer.layers
    assert evaluation.selected is None
    # clicks on the new contours select the new components
    viewer.reset_view()
    qtbot.wait(50)
    viewer.layers.selection.active = evaluation.contours_layer
    user.click(_component_point(evaluation, 1))
    assert evaluation.selected == 1
    # with decisions by hand that have no file, it asks; Cancel keeps the curated result
    evaluation.decide("reject", [1])
    texts = []

    def keep(box):
        texts.append(box.text())
        dialogs.press("Cancel")(box)

    asked = dialogs.answer([keep])
    kept = evaluation.session.estimates
    cnmf.set_settings(cnmf.get_settings().replace(K=10))
    _run(qtbot, cnmf)
    qtbot.waitUntil(lambda: len(asked) == 2, timeout=TIMEOUT_MS)
    assert asked[1] == "QMessageBox: Unsaved curation" and "not saved" in texts[0], texts
    assert evaluation.session.estimates is kept
    assert evaluation.session.curation.manual[1] == -1
    # the next run: Discard curates the new result
    asked = dialogs.answer([dialogs.press("Discard")])
    cnmf.set_settings(cnmf.get_settings().replace(K=9))
    _run(qtbot, cnmf)
    qtbot.waitUntil(
        lambda: evaluation.session.estimates is cnmf.last_result.estimates, timeout=TIMEOUT_MS
    )
    assert asked[1::2] == ["QMessageBox: Unsaved curation"]
    assert not (evaluation.session.curation.manual != 0).any()


def test_all_docks_fit_a_1920x1080_screen(qtbot, viewer, movie_2d):
    from qtpy.QtWidgets import QScrollArea

    from napari_caiman.plugin.widgets.shifts_plot import ShiftsPlot

    viewer.add_image(movie_2d.movie, name="movie")
    window = viewer.window._qt_window
    docks = [
        _dock(viewer, name)
        for name in ("Motion correction", "CNMF", "Evaluation / curation", "Batch")
    ]
    evaluation = docks[2]
    evaluation._ensure_docks()  # Traces + Components (they come with a result)
    viewer.window.add_dock_widget(ShiftsPlot(), name="Motion shifts", area="bottom")
    qtbot.wait(50)
    need = window.minimumSizeHint()
    assert need.height() <= 1080 - 60, need.height()  # a title bar and a panel left over
    assert need.width() <= 1920, need.width()
    for widget in docks:  # the forms scroll inside their docks
        assert widget.native.findChild(QScrollArea) is not None
    # the step docks share one tab group (stacked, each got ~110 px of 1080): each shows
    # most of its form when its tab is chosen, and the time slider stays on screen
    viewer.window.show()
    window.resize(1920, 1080)
    qtbot.wait(50)
    step_docks = [w.native.parent() for w in docks]
    assert set(window.tabifiedDockWidgets(step_docks[0])) == set(step_docks[1:])
    # their tab titles are whole, short and all on screen (napari's were cut to "CNMF (...")
    from qtpy.QtWidgets import QTabBar

    bar = next(b for b in window.findChildren(QTabBar) if b.count() == 4 and b.isVisible())
    titles = [bar.tabText(i) for i in range(bar.count())]
    assert sorted(titles) == ["Batch", "CNMF", "Evaluation", "Motion"], titles
    for i, title in enumerate(titles):
        assert bar.tabRect(i).width() >= bar.fontMetrics().horizontalAdvance(title), title
        assert bar.rect().contains(bar.tabRect(i)), (title, bar.tabRect(i), bar.rect())
    assert {d.toolTip() for d in step_docks} == {
        f"{name} (napari-caiman)"
        for name in ("Motion correction", "CNMF", "Evaluation / curation", "Batch")
    }
    for dock in step_docks:
        dock.raise_()
        qtbot.wait(20)
        assert dock.isVisible() and dock.height() > 500, (dock.windowTitle(), dock.height())
    # Run, Cancel, the progress bar and the status of Motion and CNMF stay on screen below
    # their scrolling forms (they were at the forms' ends, scrolled off while a step ran)
    for widget, dock in zip(docks[:2], step_docks[:2], strict=True):
        dock.raise_()
        qtbot.wait(20)
        area = widget.native.findChild(QScrollArea)
        for part in (widget.runner.run_button, widget.runner.progress, widget.runner.status):
            assert part.native.isVisible() and not area.isAncestorOf(part.native)
            rect = part.native.rect().translated(
                part.native.mapTo(dock, part.native.rect().topLeft())
            )
            assert dock.rect().contains(rect), (dock.windowTitle(), rect, dock.rect())
    slider = viewer.window._qt_viewer.dims
    assert slider.isVisible() and slider.height() > 10
    bottom = slider.mapTo(window, slider.rect().bottomLeft()).y()
    assert bottom < window.height(), bottom
    # a long status line neither widens the dock nor loses its text
    width = evaluation.native.parent().width()
    long = "result: " + "a very long message naming /some/deep/folder/and/file.hdf5 " * 4
    evaluation.runner.status.value = long
    qtbot.wait(20)
    assert evaluation.native.parent().width() == width
    assert evaluation.runner.status.value == long
    assert evaluation.runner.status.native.toolTip() == long
    assert evaluation.runner.status.native.text().endswith("…")
    assert window.minimumSizeHint().width() == need.width()


@pytest.fixture(scope="module")
def fitted():
    from napari_caiman.engine.cnmf import cnmf
    from napari_caiman.engine.params import CaimanParams
    from napari_caiman.engine.summary import summary_images
    from napari_caiman.engine.synthetic import make_movie_2d

    m = make_movie_2d((300, 64, 64), n_neurons=12, seed=1, return_flow=False)
    params = CaimanParams.from_dict({"K": 15, "gSig": (4, 4)})
    return m.movie, cnmf(m.movie, params), summary_images(m.movie), params


@pytest.fixture
def curated(qtbot, viewer, fitted, tmp_path, file_open):
    """An Evaluation dock holding an evaluated result of a still movie, as a user gets one:
    the movie and its results file opened with File > Open, the movie chosen, Evaluate."""
    import copy

    import tifffile

    from napari_caiman.engine.results import Results
    from napari_caiman.io.results_file import save_results

    movie, est, summary, params = fitted
    tifffile.imwrite(tmp_path / "movie.tif", movie)
    images = {k: getattr(summary, k) for k in ("mean", "max", "std", "corr")}
    results = Results(
        params=params.copy(), dims=est.dims, estimates=copy.deepcopy(est), summary=images
    )
    path = save_results(tmp_path / "movie_cnmf.hdf5", results)
    file_open(tmp_path / "movie.tif")
    evaluation = _dock(viewer, "Evaluation / curation")
    file_open(path)
    qtbot.waitUntil(lambda: evaluation.session is not None, timeout=TIMEOUT_MS)
    assert evaluation.session.n_components == est.n_components
    scatter = viewer.window.dock_widgets["Components"].scatter
    qtbot.waitUntil(lambda: scatter.x_axis.count() > 0, timeout=TIMEOUT_MS)
    # not evaluated yet: no plot of a column against itself, a hint instead
    assert not scatter.hint.isHidden() and len(scatter.points.getData()[0]) == 0
    evaluation.movie.value = viewer.layers["movie"]
    _run(qtbot, evaluation)
    assert evaluation.session.metrics is not None
    qtbot.waitUntil(lambda: scatter.hint.isHidden(), timeout=TIMEOUT_MS)
    return evaluation


def _header_click(qtbot, table, column):
    header = table.horizontalHeader()
    x = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
    from qtpy.QtCore import QPoint

    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))


def _row_click(qtbot, table, row, modifier=Qt.KeyboardModifier.NoModifier):
    rect = table.visualRect(table.model().index(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, modifier, rect.center())


def test_components_table_sorts_filters_and_stays_in_sync(qtbot, viewer, curated):
    w = curated
    dock = viewer.window.dock_widgets["Components"]
    table, model = dock.table, w.table_model
    assert model.COLUMNS[:4] == ("id", "SNR", "r_value", "size")
    snr_col = model.COLUMNS.index("SNR")
    _row_click(qtbot, table, 2)
    assert w.selected == 2
    _header_click(qtbot, table, snr_col)  # sort by SNR: the highlighted row follows component 2
    rows = {i.row() for i in table.selectionModel().selectedRows()}
    assert [int(model.order[r]) for r in rows] == [2]
    shown = [float(model.data(model.index(r, snr_col))) for r in range(model.rowCount())]
    assert shown == sorted(shown) or shown == sorted(shown, reverse=True)
    # a click on a row of the sorted table selects that row's component
    _row_click(qtbot, table, 0)
    k = int(model.order[0])
    assert w.selected == k
    assert float(model.data(model.index(0, snr_col))) == pytest.approx(
        w.session.metrics.SNR_comp[k], abs=0.006
    )
    # decisions recolour and keep the selection on the same component
    w.decide("reject")
    rows = {i.row() for i in table.selectionModel().selectedRows()}
    assert [int(model.order[r]) for r in rows] == [k]
    # filter: only the rejected ones
    dock.filter.setCurrentText("rejected")
    rejected = np.flatnonzero(~w.accepted)
    assert sorted(int(c) for c in model.order) == sorted(int(c) for c in rejected)
    assert set(model.columns["status"][model.order]) == {"rejected"}
    dock.filter.setCurrentText("all")
    assert model.rowCount() == w.session.n_components


def test_components_headers_are_short_enough_to_read(qtbot, viewer, curated):
    dock = viewer.window.dock_widgets["Components"]
    table, model = dock.table, dock.table.model()
    viewer.window._qt_window.resize(1920, 1080)
    qtbot.wait(50)
    header = table.horizontalHeader()
    metrics = header.fontMetrics()
    assert {"solidity", "n_pieces", "area_ratio", "status", "manual"} <= set(model.COLUMNS)
    for i, name in enumerate(model.COLUMNS):
        text = model.headerData(i, Qt.Orientation.Horizontal, Qt.ItemDataRole.DisplayRole)
        tip = model.headerData(i, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
        assert tip.startswith(name), (name, tip)  # the whole name is in the tooltip
        # the shown header is not cut: its text fits its column (a few px of padding)
        assert metrics.horizontalAdvance(text) + 6 <= header.sectionSize(i), (name, text)
    # and the values too ("accepted" / "rejected")
    col = model.COLUMNS.index("status")
    width = max(table.fontMetrics().horizontalAdvance(w) for w in ("accepted", "rejected"))
    assert width + 6 <= header.sectionSize(col)


def test_scatter_shows_thresholds_and_selects_by_click(qtbot, viewer, curated):
    w = curated
    scatter = viewer.window.dock_widgets["Components"].scatter
    assert scatter.x_axis.currentText() == "r_value" and scatter.y_axis.currentText() == "SNR"
    x, y = scatter.points.getData()
    m = w.session.metrics
    finite = np.isfinite(m.r_values) & np.isfinite(m.SNR_comp)
    np.testing.assert_allclose(np.sort(x), np.sort(m.r_values[finite]))
    lines = {name.split(":")[0]: line.value() for name, line in scatter.lines.items()}
    assert lines["min_SNR"] == pytest.approx(w.min_SNR.value)
    assert lines["rval_thr"] == pytest.approx(w.rval_thr.value)
    w.min_SNR.value = 4.0  # the line follows the slider
    lines = {name.split(":")[0]: line.value() for name, line in scatter.lines.items()}
    assert lines["min_SNR"] == pytest.approx(4.0)
    # a click on a point selects its component
    k = int(np.flatnonzero(finite)[3])
    qtbot.wait(100)  # pyqtgraph sets the view range on its next paint
    vb = scatter.plot.getPlotItem().vb
    scene = vb.mapViewToScene(pg_point(m.r_values[k], m.SNR_comp[k]))
    pos = scatter.plot.mapFromScene(scene)
    qtbot.mouseMove(scatter.plot.viewport(), pos)
    qtbot.mouseClick(scatter.plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert w.selected == k
    hx, hy = scatter.highlight.getData()
    assert hx[0] == pytest.approx(m.r_values[k])


def pg_point(x, y):
    from qtpy.QtCore import QPointF

    return QPointF(float(x), float(y))


def test_selecting_components_is_fast_enough(qtbot, viewer, curated):
    import time

    w = curated
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    times = []
    for k in range(w.session.n_components):
        t0 = time.perf_counter()
        w.select_component(k)
        app.processEvents()
        times.append(time.perf_counter() - t0)
    traces = viewer.window.dock_widgets["Traces"]
    np.testing.assert_allclose(traces.ydata("C"), w.session.estimates.C[k], rtol=1e-5)
    # < 50 ms is the target (bench/bench_gui.py); the test leaves room for a busy machine
    assert np.median(times) < 0.25, times


def test_layers_after_motion_and_cnmf_show_the_curation_colours(viewer, pipeline):
    from napari_caiman.plugin.layers.evaluation import REJECTED_COLOR

    # no footprints Labels (random colours; 0.3-1 s of napari's time): made on request only
    assert "movie corrected footprints" not in viewer.layers
    assert not viewer.layers["movie patches"].visible  # the quilt would cover the contours
    assert viewer.layers["movie correlation"].visible
    assert "movie corrected correlation" not in viewer.layers  # one correlation image, not two
    contours = viewer.layers["movie corrected contours"]  # outlines half a movie pixel wide
    names = [layer.name for layer in viewer.layers]
    assert contours.visible and names.index(contours.name) > names.index("movie correlation")
    alpha = np.asarray(contours.data)[..., 3]
    assert set(np.unique(alpha).tolist()) == {0, 255}  # opaque lines, nothing between
    assert contours.scale[-1] == viewer.layers["movie corrected"].scale[-1] / 2
    # rejected contours stand out on magma's dark end (where rejected components sit)
    from napari.utils.colormaps import ensure_colormap

    dark = ensure_colormap("magma").map(np.array([0.1]))[0][:3]
    luminance = lambda c: float(np.dot(c[:3], [0.2126, 0.7152, 0.0722]))  # noqa: E731
    assert luminance(REJECTED_COLOR) - luminance(dark) > 0.5


def test_two_plane_movie_runs_with_the_defaults(qtbot, viewer, errors):
    from napari_caiman.engine.synthetic import make_movie_3d

    movie = make_movie_3d(
        (60, 2, 40, 40),
        n_neurons=4,
        rigid_motion=(1.0, 1.0, 0.0),
        seed=3,
        return_flow=False,
        return_truth=False,
    ).movie
    viewer.add_image(movie, name="stack")
    motion = _dock(viewer, "Motion correction")
    assert motion.max_shifts.value[2] == 0  # 2 * shift < 2 planes
    _run(qtbot, motion)
    assert errors == [], errors
    cnmf = _dock(viewer, "CNMF")
    assert cnmf.movie.value.name == "stack corrected"
    assert cnmf.gSig.value[2] == 0.5  # the box holds a fraction: 2 * gSig < 2 planes
    cnmf.K.value = 4
    _run(qtbot, cnmf)
    assert errors == [], errors
    assert cnmf.last_result.estimates.n_components >= 1
    assert cnmf.last_params["gSig"][2] == 0.5


def test_cnmf_suggests_patches_and_K_from_the_movie(viewer):
    viewer.add_image(np.zeros((20, 256, 256), np.float32), name="big")
    cnmf = _dock(viewer, "CNMF")
    assert cnmf.get_settings().rf == (0, 0, 0)  # CaImAn's defaults until asked
    assert "256x256" in cnmf.suggest_button.tooltip and "K" in cnmf.suggest_button.tooltip
    cnmf.suggest_button.native.click()
    s = cnmf.get_settings()
    assert s.rf[:2] == (20, 20) and s.stride[:2] == (10, 10)  # 4 gSig, 2 gSig (gSig 5)
    assert 2 <= s.K <= 8  # about a patch's area over a neuron's
    assert cnmf.stride.enabled
    cnmf.gSig.value = (3, 3, 2)
    assert "gSig 3" in cnmf.suggest_button.tooltip
    viewer.add_image(np.zeros((20, 60, 60), np.float32), name="small")
    cnmf.movie.value = viewer.layers["small"]
    cnmf.suggest_button.native.click()
    s = cnmf.get_settings()
    assert s.rf == (12, 12, 0)  # 60 px >= 2 patches of 24 px
    cnmf.gSig.value = (8, 8, 2)
    cnmf.suggest_button.native.click()
    assert cnmf.get_settings().rf == (0, 0, 0)  # whole field of view
    assert "whole field of view" in cnmf.suggest_button.tooltip


def test_opened_file_axes_and_save_dialog_next_to_the_data(
    qtbot, viewer, fitted, tmp_path, file_open, dialogs
):
    import copy

    import tifffile

    from napari_caiman.io.results_file import load_results

    movie, est, summary, params = fitted
    path = tmp_path / "my movie.tif"
    tifffile.imwrite(path, movie)
    file_open(path)
    (layer,) = viewer.layers
    assert tuple(viewer.dims.axis_labels) == ("t", "y", "x")
    evaluation = _dock(viewer, "Evaluation / curation")
    evaluation.set_result(copy.deepcopy(est), summary, params.copy(), layer.name, build_layers=True)
    evaluation.decide("reject", [2])
    proposed = []

    def save_as_proposed(dialog):
        proposed.extend(dialog.selectedFiles())
        dialogs.type_file_name(dialog, proposed[0])  # the user keeps the proposed name

    seen = dialogs.answer([save_as_proposed])
    evaluation.save_button.native.click()
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=TIMEOUT_MS)
    assert seen[1] == "QFileDialog: Save results"
    assert proposed == [str(tmp_path / "my_movie.hdf5")]  # next to the data, no space
    saved = load_results(tmp_path / "my_movie.hdf5")
    assert saved.estimates.n_components == est.n_components
    assert saved.curation.manual[2] == -1 and int(np.abs(saved.curation.manual).sum()) == 1


@pytest.mark.parametrize("kind", ["not a tiff", "one image"])
def test_file_open_of_a_non_movie_says_why_once(qtbot, viewer, tmp_path, capture, file_open, kind):
    """File > Open through napari's dialogs: one notification naming the file and the
    problem, nothing raised out of the menu action (no traceback), no layer."""
    import tifffile

    shown = capture("napari.utils.notifications.show_error")
    path = tmp_path / "cells.tif"
    if kind == "not a tiff":
        path.write_bytes(b"these are notes, not an image\n" * 8)
    else:
        tifffile.imwrite(path, np.zeros((32, 32), np.float32))
    seen = file_open(path)
    assert [s.split(":")[0] for s in seen] == ["QFileDialog", "QtReaderDialog"], seen
    assert len(shown) == 1 and shown[0].startswith("Cannot open cells.tif: "), shown
    assert ("not a TIFF" if kind == "not a tiff" else "single image") in shown[0]
    assert "Traceback" not in shown[0] and len(viewer.layers) == 0


def test_reset_clears_an_old_error(viewer, errors):
    motion = _dock(viewer, "Motion correction")
    motion.runner.run_button.native.click()  # no movie: an error
    assert errors and motion.runner.status.value.startswith("movie")
    motion.reset_button.native.click()
    assert motion.runner.status.value == "ready"


def test_use_cnn_is_noted_in_the_window_and_the_empty_traces_have_plain_axes(
    qtbot, viewer, fitted, infos, errors, monkeypatch
):
    import copy

    import napari_caiman.plugin.widgets.evaluation as evaluation_module

    monkeypatch.setattr(evaluation_module, "_CNN_NOTED", False)
    movie, est, summary, params = fitted
    viewer.add_image(movie, name="movie")
    evaluation = _dock(viewer, "Evaluation / curation")
    evaluation.set_result(copy.deepcopy(est), summary, params.copy(), "movie", build_layers=True)
    evaluation.kwargs.value = "{'use_cnn': True}"  # typed in the dock, as a user would
    _run(qtbot, evaluation)
    assert errors == [], errors
    assert evaluation.session.metrics is not None
    assert any("use_cnn" in text and "no CNN classifier" in text for text in infos), infos
    # nothing selected: the trace plots show plain 0..1 axes, not a "1e-17" offset
    evaluation.select_component(None)
    qtbot.wait(20)
    traces = viewer.window.dock_widgets["Traces"]
    for plot in traces.plots.values():
        (x0, x1), (y0, y1) = plot.viewRange()
        assert (x0, x1, y0, y1) == pytest.approx((0, 1, 0, 1), abs=1e-6)
        assert not plot.getAxis("left").autoSIPrefix


def test_a_3d_error_names_one_axis_order(qtbot, viewer, errors):
    """Item 5: a 2-plane movie whose gSig z cannot pass, Run through the CNMF dock: the
    message states the values in one order and says which (not CaImAn's and the array's
    mixed in one sentence)."""
    from napari_caiman.engine.synthetic import make_movie_3d

    movie = make_movie_3d(
        (40, 2, 40, 40), n_neurons=3, seed=4, return_flow=False, return_truth=False
    ).movie
    viewer.add_image(movie, name="stack")
    cnmf = _dock(viewer, "CNMF")
    cnmf.K.value = 3
    cnmf.gSig.boxes[2].value = 1  # typed into the z box: 2 * 1 is not < 2 planes
    assert cnmf.gSig.value[2] == 1
    cnmf.runner.run_button.native.click()
    qtbot.waitUntil(lambda: not cnmf.runner.is_running, timeout=60_000)
    assert len(errors) == 1, errors
    (message,) = errors
    assert message.startswith("gSig") and "2 * gSig" in message
    # one order, named once: CaImAn's (rows, cols, planes), the frame (2, 40, 40) of the
    # array written in it; no array-order tuple or label beside it
    orders = ("(rows, cols, planes)", "array order", "(planes, rows, cols)", "(z, y, x)")
    assert [o for o in orders if o in message] == ["(rows, cols, planes)"], message
    assert "(40, 40, 2)" in message and "(2, 40, 40)" not in message, message
    assert cnmf.runner.status.value != "ready" and cnmf.last_result is None


def test_cancel_then_run_again(qtbot, viewer, movie_2d, errors):
    """Cancel a running motion correction, then Run again: the second run completes, and
    nothing of the cancelled one is left (no layer, no old progress)."""
    big = np.ascontiguousarray(np.tile(movie_2d.movie, (30, 1, 1)))  # 2400 frames
    viewer.add_image(big, name="long")
    motion = _dock(viewer, "Motion correction")
    motion.movie.value = viewer.layers["long"]
    runner = motion.runner
    runner.run_button.native.click()
    qtbot.waitUntil(lambda: runner.status.value.startswith("registering"), timeout=TIMEOUT_MS)
    runner.cancel_button.native.click()
    qtbot.waitUntil(lambda: not runner.is_running, timeout=5_000)
    assert runner.status.value == "cancelled" and [ly.name for ly in viewer.layers] == ["long"]
    viewer.add_image(movie_2d.movie, name="short")
    motion.movie.value = viewer.layers["short"]
    _run(qtbot, motion)
    assert errors == [], errors
    assert runner.status.value == "done" and runner.progress.value == runner.progress.max
    assert "short corrected" in viewer.layers and "long corrected" not in viewer.layers
    assert viewer.layers["short corrected"].data.shape == movie_2d.movie.shape
    assert len(motion.last_result.shifts_rig) == len(movie_2d.movie)  # the short movie's run
