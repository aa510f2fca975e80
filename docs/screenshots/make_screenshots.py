"""Make the documentation screenshots (whole napari window, docks included).

Run from the repository root, with a display or under Xvfb::

    xvfb-run -a python docs/screenshots/make_screenshots.py

    xvfb-run -a python docs/screenshots/make_screenshots.py cnmf   # only some

Writes

* ``docs/screenshots/motion.png``: the 2D sample movie after piecewise-rigid
  motion correction, with the Motion correction dock, the patch grid over the
  corrected movie and the "Motion shifts" plot;
* ``docs/screenshots/cnmf.png``: the same movie after motion correction and
  CNMF, with the CNMF dock: component contours over the correlation image
  (left) and the footprints Labels over the denoised movie (right), both made
  on request from the Evaluation dock's buttons;
* ``docs/screenshots/batch.png``: the Batch dock with a finished batch of
  three gSig variants, two of them compared (contours in cyan and orange).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 120


def wait_for(widget, timeout_s: float = TIMEOUT_S) -> None:
    """Process Qt events until the widget's run is over (bounded)."""
    app = QApplication.instance()
    end = time.monotonic() + timeout_s
    while widget.runner.is_running:
        if time.monotonic() > end:
            raise TimeoutError(f"motion correction did not finish within {timeout_s} s")
        app.processEvents()
        time.sleep(0.01)
    for _ in range(20):  # let docks and the canvas settle
        app.processEvents()
        time.sleep(0.01)


def motion_screenshot(path: Path) -> None:
    viewer = napari.Viewer(title="napari-caiman: motion correction")
    viewer.window.resize(1800, 1100)
    (raw,) = viewer.open_sample("napari-caiman", "synthetic_2d")
    _, widget = viewer.window.add_plugin_dock_widget("napari-caiman", "Motion correction")
    widget.movie.value = raw
    widget.set_settings(
        widget.get_settings().replace(
            pw_rigid=True, max_shifts=(8, 8, 2), strides=(32, 32, 4), overlaps=(16, 16, 2)
        )
    )
    widget.runner.run_button.native.click()
    wait_for(widget)
    if widget.last_result is None:
        raise RuntimeError(f"motion correction failed: {widget.runner.status.value}")
    # Side by side, two layers per grid cell (napari fills cells from the
    # bottom of the layer list): raw | corrected + patch quilt | correlation.
    # The hidden mean image only pads the first cell.
    order = ["mean", None, "corrected", "patches", "correlation"]
    for i, suffix in enumerate(order):
        name = raw.name if suffix is None else f"{raw.name} {suffix}"
        viewer.layers.move(viewer.layers.index(name), i)
    viewer.layers[f"{raw.name} correlation"].visible = True
    viewer.canvas.grid.stride = 2
    viewer.canvas.grid.shape = (1, 3)
    viewer.canvas.grid.enabled = True
    viewer.layers.selection.active = viewer.layers[f"{raw.name} corrected"]
    viewer.dims.set_current_step(0, 150)
    viewer.reset_view()
    wait_for(widget)
    viewer.screenshot(str(path), canvas_only=False)
    viewer.close()


def _motion_then_cnmf(title: str, size: tuple[int, int]) -> tuple:
    """A viewer with the 2D sample, pw-rigid motion correction and CNMF run
    through the widgets (motion and shifts docks hidden). Returns
    ``(viewer, corrected layer, CNMF dock, CNMF widget)``."""
    viewer = napari.Viewer(title=title)
    viewer.window.resize(*size)
    (raw,) = viewer.open_sample("napari-caiman", "synthetic_2d")
    motion_dock, motion = viewer.window.add_plugin_dock_widget("napari-caiman", "Motion correction")
    motion.movie.value = raw
    motion.set_settings(
        motion.get_settings().replace(
            pw_rigid=True,
            max_shifts=(8, 8, 2),
            strides=(32, 32, 4),
            overlaps=(16, 16, 2),
            border_nan="copy",  # replicated edges look calmer in a picture than NaN borders
        )
    )
    motion.runner.run_button.native.click()
    wait_for(motion)
    if motion.last_result is None:
        raise RuntimeError(f"motion correction failed: {motion.runner.status.value}")
    shifts = viewer.window.dock_widgets.get("Motion shifts")
    if shifts is not None and shifts.parent() is not None:
        shifts.parent().hide()  # these pictures are about the later steps: their docks get the column
    motion_dock.hide()
    cnmf_dock, cnmf = viewer.window.add_plugin_dock_widget("napari-caiman", "CNMF")
    corrected = viewer.layers[f"{raw.name} corrected"]
    cnmf.movie.value = corrected
    cnmf.set_settings(cnmf.get_settings().replace(K=40, gSig=(4, 4, 2), p=1))
    cnmf.runner.run_button.native.click()
    wait_for(cnmf)
    if cnmf.last_result is None:
        raise RuntimeError(f"CNMF failed: {cnmf.runner.status.value}")
    return viewer, corrected, cnmf_dock, cnmf


def _correlation(viewer, base: str) -> str:
    """The correlation image's layer: CNMF's own, or the motion step's it reused."""
    name = f"{base} correlation"
    if name in viewer.layers:
        return name
    return f"{base.removesuffix(' corrected')} correlation"


def cnmf_screenshot(path: Path) -> None:
    viewer, corrected, _, widget = _motion_then_cnmf("napari-caiman: CNMF", (1800, 1000))
    base = corrected.name
    # the footprints Labels and the denoised movie come on request: the Evaluation dock's
    # "Footprints" and "Denoised" buttons
    eval_dock, evaluation = viewer.window.add_plugin_dock_widget(
        "napari-caiman", "Evaluation / curation"
    )
    app, end = QApplication.instance(), time.monotonic() + TIMEOUT_S
    while evaluation.session is None and time.monotonic() < end:
        evaluation.take_button.native.click()
        app.processEvents()
        time.sleep(0.05)
    evaluation.footprints_button.native.click()
    evaluation.denoised_button.native.click()
    eval_dock.hide()
    for name, docked in viewer.window.dock_widgets.items():  # its traces and table too
        if name in ("Traces", "Components") and docked.parent() is not None:
            docked.parent().hide()
    # Side by side, two layers per grid cell (napari fills cells from the
    # bottom of the layer list and wraps around, so the hidden layers above
    # take no cell of their own): correlation image + contours | denoised
    # movie + footprints.
    keep = [
        _correlation(viewer, base),
        f"{base} contours",
        f"{base} denoised",
        f"{base} footprints",
    ]
    for layer in list(viewer.layers):
        layer.visible = layer.name in keep
    for i, name in enumerate(keep):
        viewer.layers.move(viewer.layers.index(name), i)
    viewer.canvas.grid.stride = 2
    viewer.canvas.grid.shape = (1, 2)
    viewer.layers[f"{base} footprints"].opacity = 0.45
    viewer.canvas.grid.enabled = True
    viewer.layers.selection.active = viewer.layers[f"{base} contours"]
    viewer.dims.set_current_step(0, 150)
    viewer.reset_view()
    wait_for(widget)
    viewer.screenshot(str(path), canvas_only=False)
    viewer.close()


SCREENSHOTS = {"motion": motion_screenshot, "cnmf": cnmf_screenshot}


def _evaluate_showing_both_colours(widget) -> np.ndarray:
    """Run Evaluate in ``widget`` and set thresholds that reject about a third of
    this easy synthetic movie's components (all pass CaImAn's defaults), so both
    colours show; returns the SNRs."""
    widget.runner.run_button.native.click()
    wait_for(widget)
    if widget.session is None or widget.session.metrics is None:
        raise RuntimeError(f"evaluation failed: {widget.runner.status.value}")
    snr = widget.session.metrics.SNR_comp
    widget.rval_thr.value = 1.0
    widget.min_SNR.value = round(float(np.percentile(snr, 35)), 1)
    return snr


def evaluation_screenshot(path: Path) -> None:
    """Motion -> CNMF -> Evaluation / curation on the 2D sample: contours
    coloured by status over the correlation image, a selected ROI, its traces
    and the components table."""
    viewer, corrected, cnmf_dock, _ = _motion_then_cnmf(
        "napari-caiman: evaluation / curation", (1800, 1100)
    )
    cnmf_dock.hide()
    _, widget = viewer.window.add_plugin_dock_widget("napari-caiman", "Evaluation / curation")
    widget.movie.value = corrected
    snr = _evaluate_showing_both_colours(widget)
    base = corrected.name
    keep = [_correlation(viewer, base), f"{base} contours"]
    for layer in list(viewer.layers):
        layer.visible = layer.name in keep
    accepted = np.flatnonzero(widget.accepted)
    rejected = np.flatnonzero(~widget.accepted)
    if len(accepted):
        widget.decide("reject", [int(accepted[0])])  # one decision by hand
    k = int(rejected[np.argmax(snr[rejected])]) if len(rejected) else 0
    widget.select_component(k)  # the best of the rejected: its traces below
    viewer.layers[f"{base} selected"].visible = True
    viewer.layers.selection.active = viewer.layers[f"{base} contours"]
    viewer.dims.set_current_step(0, 150)
    viewer.reset_view()
    wait_for(widget)
    viewer.screenshot(str(path), canvas_only=False)
    viewer.close()


SCREENSHOTS["evaluation"] = evaluation_screenshot


def _wait_until(condition, what: str, timeout_s: float = TIMEOUT_S) -> None:
    """Process Qt events until ``condition()`` is true (bounded), then let the canvas settle."""
    app = QApplication.instance()
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"{what} did not finish within {timeout_s} s")
        app.processEvents()
        time.sleep(0.01)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.01)


def batch_screenshot(path: Path) -> None:
    """A finished batch of three gSig variants of the 2D sample in the Batch
    dock (parameters from a preset file; the sample has no file, so it is
    written to the batch's inputs folder), two of them compared: their
    accepted contours (cyan, orange) over the middle variant's correlation
    image, and their parameter difference in the text box."""
    import json
    import tempfile

    import napari_caiman.plugin.widgets.batch as batch_widget

    batch_widget.show_info = print  # no toast over the canvas ("written to inputs/")
    viewer = napari.Viewer(title="napari-caiman: batch")
    viewer.window.resize(1800, 1100)
    (raw,) = viewer.open_sample("napari-caiman", "synthetic_2d")
    dock, widget = viewer.window.add_plugin_dock_widget("napari-caiman", "Batch")
    dock.setMinimumWidth(560)
    folder = Path(tempfile.mkdtemp(prefix="napari-caiman-batch-"))
    preset = folder / "preset.json"
    preset.write_text(
        json.dumps(
            {
                "K": 40,
                "p": 1,
                "pw_rigid": True,
                "max_shifts": [8, 8],
                "strides": [32, 32],
                "overlaps": [16, 16],
                "border_nan": "copy",
            }
        )
    )
    widget.path.value = folder / "experiment.json"
    widget.new_batch()
    widget.movie.value = raw
    widget.preset.value = preset
    widget.item_name.value = "sample"
    widget.vary1.value, widget.values1.value = "gSig", "[(3, 3), (4, 4), (5, 5)]"
    widget.variants_button.native.click()
    _wait_until(lambda: not widget.is_busy and len(widget.batch) == 3, "adding the variants")
    widget.run_button.native.click()
    _wait_until(lambda: not widget.is_running, "the batch")
    names = widget.batch.names
    if any(widget.batch.item(n).status != "done" for n in names):
        raise RuntimeError(f"batch failed: {[(i.name, i.status, i.error) for i in widget.batch]}")
    widget.load_item(names[1])
    _wait_until(lambda: widget.last_loaded == names[1] and not widget.is_busy, "loading")
    widget.select([names[0], names[2]])
    widget.compare_button.native.click()
    _wait_until(lambda: widget.last_compared is not None and not widget.is_busy, "comparing")
    widget.select([])  # the status colours show best without a selection
    keep = [f"{names[1]} correlation", f"{names[0]} (compare)", f"{names[2]} (compare)"]
    for layer in list(viewer.layers):
        layer.visible = layer.name in keep
    for name in keep[1:]:
        viewer.layers[name].edge_width = 0.6
    viewer.layers.selection.active = viewer.layers[keep[-1]]
    viewer.reset_view()
    _wait_until(lambda: True, "settling")
    viewer.screenshot(str(path), canvas_only=False)
    viewer.close()


SCREENSHOTS["batch"] = batch_screenshot


def window_screenshot(path: Path) -> None:
    """The whole window at 1920x1080 with every dock open, as a user ends up
    after Motion -> CNMF -> Evaluate from the Plugins menu: Motion, CNMF,
    Evaluation and Batch as tabs of one dock on the right (Evaluation in front); Motion shifts, Traces and
    Components (table + scatter) at the bottom; a selected component."""
    viewer = napari.Viewer(title="napari-caiman")
    viewer.window._qt_window.showNormal()
    viewer.window.resize(1920, 1080)
    (raw,) = viewer.open_sample("napari-caiman", "synthetic_2d")
    dock = viewer.window.add_plugin_dock_widget
    _, motion = dock("napari-caiman", "Motion correction")
    motion.set_settings(
        motion.get_settings().replace(
            pw_rigid=True, max_shifts=(8, 8, 2), strides=(32, 32, 4), overlaps=(16, 16, 2)
        )
    )
    motion.runner.run_button.native.click()
    wait_for(motion)
    _, cnmf = dock("napari-caiman", "CNMF")
    cnmf.set_settings(cnmf.get_settings().replace(gSig=(4, 4, 2), p=1))
    cnmf.apply_suggestion()
    cnmf.runner.run_button.native.click()
    wait_for(cnmf)
    _, evaluation = dock("napari-caiman", "Evaluation / curation")
    dock("napari-caiman", "Batch")
    snr = _evaluate_showing_both_colours(evaluation)
    rejected = np.flatnonzero(~evaluation.accepted)
    k = int(rejected[np.argmax(snr[rejected])]) if len(rejected) else 0
    evaluation.select_component(k)
    viewer.layers.selection.active = evaluation.contours_layer
    evaluation.native.parent().raise_()  # the step docks share tabs: the one in use in front
    viewer.dims.set_current_step(0, 150)
    viewer.reset_view()
    wait_for(evaluation)
    need = viewer.window._qt_window.minimumSizeHint()
    print(f"window needs {need.width()} x {need.height()} px with all docks open")
    viewer.screenshot(str(path), canvas_only=False)
    viewer.close()


SCREENSHOTS["window"] = window_screenshot


def main(argv: list[str] | None = None) -> int:
    names = (sys.argv[1:] if argv is None else argv) or list(SCREENSHOTS)
    for name in names:
        path = HERE / f"{name}.png"
        SCREENSHOTS[name](path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
