"""Make the documentation screenshots (whole napari window, docks included).

Run from the repository root, with a display or under Xvfb::

    xvfb-run -a python docs/screenshots/make_screenshots.py

Writes ``docs/screenshots/motion.png``: the 2D sample movie after
piecewise-rigid motion correction, with the Motion correction dock, the patch
grid over the corrected movie and the "Motion shifts" plot.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
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


def main() -> int:
    motion_screenshot(HERE / "motion.png")
    print(f"wrote {HERE / 'motion.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
