"""Interactive curation speed in a real viewer (needs a display or Xvfb).

    xvfb-run -a python bench/bench_curation.py

Measures, with the Evaluation / curation widget:

- ROI layers for K components (random footprints as in ``bench_layers.py``,
  512x512): ``cnmf_layer_data`` + adding the layers + the widget taking the
  result (first colouring, features, table);
- a threshold change (``min_SNR`` slider moved so that about a third of the
  components change status): the widget's own time (thresholds, one
  ``edge_color`` assignment, features reassigned, counts, table) and the same
  plus the redraw (``processEvents``);
- the longest gap between ticks of a 10 ms ``QTimer`` while the evaluation
  (SNR, r-values, dF/F) of a real CNMF result runs in the worker.

Writes ``bench/results/curation.md``.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_layers import random_estimates  # noqa: E402


def _process(app, n: int = 3) -> None:
    for _ in range(n):
        app.processEvents()


def bench_recolour(K: int, repeat: int = 5) -> dict[str, float]:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_caiman.engine.evaluation import Metrics
    from napari_caiman.engine.params import CaimanParams
    from napari_caiman.plugin.layers.cnmf import cnmf_layer_data
    from napari_caiman.plugin.widgets._layers import upsert_layer
    from napari_caiman.plugin.widgets.evaluation import EvaluationWidget

    app = QApplication.instance() or QApplication([])
    dims = (512, 512)
    est = random_estimates(dims, K, T=500)
    rng = np.random.default_rng(1)
    viewer = napari.Viewer(show=True)
    widget = EvaluationWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Evaluation / curation")
    _process(app)
    summary = SimpleNamespace(
        mean=np.ones(dims, np.float32), corr=np.ones(dims, np.float32), std=None, max=None
    )
    t0 = time.perf_counter()
    tuples = cnmf_layer_data(SimpleNamespace(estimates=est, summary=summary), "bench")
    t1 = time.perf_counter()
    for data, meta, kind in tuples:
        upsert_layer(viewer, data, meta, kind)
    t2 = time.perf_counter()
    widget.set_result(est, summary, CaimanParams.defaults(), "bench")
    widget.session.metrics = Metrics(
        SNR_comp=rng.uniform(0, 6, K), r_values=rng.uniform(-0.2, 1, K), size=np.full(K, 200)
    )
    widget.apply(full=True)
    _process(app)
    t3 = time.perf_counter()
    own, drawn, colours, features = [], [], [], []
    for i in range(repeat):
        value = 2.0 if i % 2 == 0 else 4.0  # about a third of the components flip each move
        start = time.perf_counter()
        widget.min_SNR.value = value
        own.append(time.perf_counter() - start)
        colours.append(widget.timings["colors"])
        features.append(widget.timings["features"])
        _process(app)
        drawn.append(time.perf_counter() - start)
    n_polygons = widget.outlines.n_components  # contours are one image of outlines now
    decide = []
    for k in range(repeat):
        widget.select_component(k)
        start = time.perf_counter()
        widget.decide("reject")
        decide.append(time.perf_counter() - start)
    viewer.close()
    return {
        "K": K,
        "layer data": t1 - t0,
        "add layers": t2 - t1,
        "take result": t3 - t2,
        "slider (widget)": float(np.median(own)),
        "slider + redraw": float(np.median(drawn)),
        "decision": float(np.median(decide)),
        "colours part": float(np.median(colours)),
        "features part": float(np.median(features)),
        "polygons": n_polygons,
    }


def bench_stall(shape=(2000, 256, 256), n_neurons=150) -> dict[str, float]:
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_caiman.engine.cnmf import cnmf
    from napari_caiman.engine.params import CaimanParams
    from napari_caiman.engine.summary import summary_images
    from napari_caiman.engine.synthetic import make_movie_2d
    from napari_caiman.plugin.widgets.evaluation import EvaluationWidget

    app = QApplication.instance() or QApplication([])
    movie = make_movie_2d(shape, n_neurons=n_neurons, seed=4, return_flow=False).movie
    params = CaimanParams.from_dict(
        {"K": n_neurons, "gSig": (4, 4), "rf": (40, 40), "stride": (10, 10)}
    )
    est = cnmf(movie, params)
    viewer = napari.Viewer(show=True)
    widget = EvaluationWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Evaluation / curation")
    viewer.add_image(movie, name="movie")
    widget.set_result(est, summary_images(movie), params, "movie", build_layers=True)
    widget.movie.value = viewer.layers["movie"]
    _process(app, 10)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    start = time.perf_counter()
    widget.runner.run_button.native.click()
    while widget.runner.is_running:
        app.processEvents()
        time.sleep(0.002)
    took = time.perf_counter() - start
    timer.stop()
    gaps = np.diff(ticks) if len(ticks) > 1 else np.array([np.nan])
    viewer.close()
    return {
        "movie": "x".join(map(str, shape)),
        "K": est.n_components,
        "evaluation s": took,
        "max gap ms": 1000 * float(gaps.max()),
        "p99 gap ms": 1000 * float(np.percentile(gaps, 99)),
        "ticks": len(ticks),
    }


def main() -> int:
    rows = [bench_recolour(K) for K in (2000, 5000)]
    stall = bench_stall()
    lines = [
        "# Curation speed (`bench/bench_curation.py`)",
        "",
        f"{platform.machine()}, 2 cores (shared with other jobs), python {platform.python_version()}, "
        "Xvfb (software OpenGL). Seconds unless noted; slider/decision: median of 5 moves.",
        "",
        "| K | layer data | add layers | take result | slider (widget) | of which edge_color | "
        "of which features | slider + redraw | a/r decision |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['K']:,} | {r['layer data']:.2f} | {r['add layers']:.2f} | {r['take result']:.2f} | "
            f"**{1000 * r['slider (widget)']:.0f} ms** | {1000 * r['colours part']:.0f} ms | "
            f"{1000 * r['features part']:.0f} ms | {1000 * r['slider + redraw']:.0f} ms | "
            f"{1000 * r['decision']:.0f} ms |"
        )
    lines += [
        "",
        "Event loop while the evaluation runs in the worker (QTimer every 10 ms):",
        "",
        "| movie | K | evaluation | longest gap | 99th percentile gap | ticks |",
        "|---|---|---|---|---|---|",
        f"| {stall['movie']} | {stall['K']} | {stall['evaluation s']:.1f} s | "
        f"**{stall['max gap ms']:.0f} ms** | {stall['p99 gap ms']:.0f} ms | {stall['ticks']} |",
        "",
    ]
    out = HERE / "results" / "curation.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
