"""How the napari window responds while the steps run, measured as the user meets it.

    xvfb-run -a -s "-screen 0 1920x1080x24" python bench/bench_gui.py          # 1000x256x256
    xvfb-run -a -s "-screen 0 1920x1080x24" python bench/bench_gui.py --quick  # 300x256x256

A real napari window (1920x1080 under Xvfb, PyQt6, software OpenGL) with the
docks opened as the Plugins menu opens them; every step is started with its
Run button and waited for while Qt's event loop runs. A 10 ms QTimer notes
when it fires: the longest gap between two firings (minus the 10 ms) is the
longest time the window could not respond (a redraw, a click, a key). Per step:
wall time, longest gap, gaps over 100 ms, progress restarts (the bar moving
back), and how long Cancel takes in the middle of the step.

Then the interaction latencies on the evaluated result: selecting a
component (traces, outline, table row, redraw) and moving a threshold slider
(recolour + redraw), median and worst of 20; and 5,000 random ROIs of a
512x512 field (bench_layers.random_estimates) becoming layers, from the
layer data to the first redraw (napari's Shapes work included).

Writes ``bench/results/gui.md``. The machine's 2 cores are shared with other
jobs: gaps and times vary between runs.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gapstacks import StackSampler  # noqa: E402

SAMPLE = False
PROFILE = False


class GapMonitor:
    """A 10 ms QTimer; the longest interval between its firings while active."""

    def __init__(self, interval_ms: int = 10) -> None:
        from qtpy.QtCore import QTimer

        self.interval = interval_ms / 1000
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self.cpu: list[float] = []  # main-thread CPU time spent in each interval
        self.gc: list[float] = []  # of which in Python's cyclic garbage collector
        self._last = self._last_cpu = 0.0
        self._gc = self._gc_start = 0.0

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        self.gaps.append(now - self._last - self.interval)
        self.cpu.append(cpu - self._last_cpu)
        self.gc.append(self._gc)
        self._last, self._last_cpu, self._gc = now, cpu, 0.0

    def _on_gc(self, phase: str, info: dict) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if phase == "start":
            self._gc_start = time.thread_time()
        else:
            self._gc += time.thread_time() - self._gc_start

    def __enter__(self) -> GapMonitor:
        self.gaps, self.cpu, self.gc = [], [], []
        self._last, self._last_cpu = time.perf_counter(), time.thread_time()
        self._gc = 0.0
        gc.callbacks.append(self._on_gc)
        self.timer.start()
        return self

    @property
    def worst_gc(self) -> float:
        """Garbage-collector time in the interval of :attr:`worst_cpu`."""
        if not self.cpu:
            return 0.0
        return self.gc[int(np.argmax(self.cpu))]

    @property
    def worst_cpu(self) -> float:
        """The most main-thread CPU time in one interval: the work of the longest turn,
        without the waiting for a core that a loaded machine adds to the gaps."""
        return max(self.cpu, default=0.0)

    def __exit__(self, *exc) -> None:
        self.timer.stop()
        self._tick()
        gc.callbacks.remove(self._on_gc)

    @property
    def worst(self) -> float:
        return max(self.gaps, default=0.0)

    def over(self, limit: float = 0.1) -> int:
        return int(sum(g > limit for g in self.gaps))


#: Set by ``--profile``: the costliest event-loop turns, (main-thread CPU s, cProfile stats text).
TURNS: list[tuple[float, str]] = []


def process_events(app) -> None:
    """One event-loop pass; with ``--profile``, profiled and kept when among the costliest."""
    if not PROFILE:
        app.processEvents()
        return
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    c0 = time.thread_time()
    prof.enable()
    app.processEvents()
    prof.disable()
    cpu = time.thread_time() - c0
    if cpu > 0.1:
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(35)
        TURNS.append((cpu, text.getvalue()))


def wait_until(app, condition, timeout: float = 600.0) -> None:
    t0 = time.perf_counter()
    while not condition():
        process_events(app)
        time.sleep(0.002)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("step did not finish")


#: Per step: garbage-collector time in its costliest turn, and in all its turns (s).
GC_TIME: dict[str, tuple[float, float]] = {}


#: Set by ``--stacks``: the stacks sampled while the window was late, per step.
STACKS: list[str] = []


def run_step(app, runner, name: str, rows: list, *, wait_more=None) -> None:
    values: list[int] = []
    runner.progress.changed.connect(values.append)
    with GapMonitor() as gaps:
        sampler = StackSampler(gaps).start() if SAMPLE else None
        t0 = time.perf_counter()
        runner.run_button.native.click()
        wait_until(app, lambda: not runner.is_running)
        if wait_more is not None:
            wait_until(app, wait_more)
        wall = time.perf_counter() - t0
        for _ in range(20):  # the layers' first redraw
            process_events(app)
            time.sleep(0.005)
        if sampler is not None:
            sampler.stop()
            STACKS.extend(sampler.report(name))
    runner.progress.changed.disconnect(values.append)
    if PROFILE:
        print(f"=== {name}: {len(TURNS)} turns over 100 ms CPU")
        for cpu, text in sorted(TURNS, reverse=True)[:3]:
            print(f"--- turn {cpu * 1000:.0f} ms CPU\n{text}")
        TURNS.clear()
    restarts = int(np.sum(np.diff(values) < 0)) if len(values) > 1 else 0
    rows.append((name, wall, gaps.worst, gaps.over(), restarts, gaps.worst_cpu))
    GC_TIME[name] = (gaps.worst_gc, float(np.sum(gaps.gc)))


def cancel_time(app, runner, after: float) -> float:
    runner.run_button.native.click()
    t0 = time.perf_counter()
    wait_until(app, lambda: time.perf_counter() - t0 > after or not runner.is_running)
    if not runner.is_running:
        return float("nan")
    t1 = time.perf_counter()
    runner.cancel_button.native.click()
    wait_until(app, lambda: not runner.is_running)
    return time.perf_counter() - t1


def latency(app, action, values) -> tuple[float, float, float]:
    """Median and worst wall time, and median CPU time of the main thread, of ``action``
    plus the redraw it asks for (the CPU time does not count waiting for a core, so it
    varies less with the machine's load; software OpenGL renders in its own threads
    unless ``LP_NUM_THREADS=0``)."""
    times, cpu = [], []
    for v in values:
        t0, c0 = time.perf_counter(), time.thread_time()
        action(v)
        app.processEvents()  # the redraw it asked for
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        time.sleep(0.01)
    return float(np.median(times)), float(np.max(times)), float(np.median(cpu))


def interactions(app, viewer, evaluation) -> tuple:
    """(selection, slider step, canvas floor, label floor) latencies: see :func:`latency`."""
    K = evaluation.session.n_components
    rng = np.random.default_rng(0)
    picks = [int(k) for k in rng.integers(0, K, 20)]
    for _ in range(5):
        app.processEvents()
    sel = latency(app, evaluation.select_component, picks)
    slider = latency(
        app, lambda v: setattr(evaluation.min_SNR, "value", v), np.linspace(1.0, 6.0, 20)
    )
    # what any change costs here: software OpenGL recomposes the whole 1920x1080 window
    canvas = viewer.window._qt_viewer.canvas.native
    floor_canvas = latency(app, lambda v: canvas.update(), range(20))
    floor_label = latency(
        app, lambda v: setattr(evaluation.component_label, "value", f"floor {v}"), range(20)
    )
    return sel, slider, floor_canvas, floor_label


def selection_parts(app, evaluation) -> dict[str, float]:
    """Main-thread CPU (median ms) of each part of a selection, done alone with its repaint.

    The parts :meth:`EvaluationView.select_component` runs: the yellow outline layer, the
    component label, the traces, the table row (and the scatter ring); each is timed with the
    repaint it asks for, one at a time, so each figure is that part's whole cost.
    """
    s = evaluation.session
    rng = np.random.default_rng(1)
    parts = {
        "outline": lambda: evaluation._show_selection(False),
        "label": evaluation._update_component_label,
        "traces": evaluation._show_traces,
        "table + scatter ring": evaluation._select_table_rows,
    }
    out = {}
    for name, part in parts.items():
        cpu = []
        for k in rng.integers(0, s.n_components, 12):
            s.select(int(k))
            c0 = time.thread_time()
            part()
            app.processEvents()
            cpu.append(time.thread_time() - c0)
            time.sleep(0.01)
        out[name] = float(np.median(cpu)) * 1000
    return out


def batch_step(app, viewer, movie, rows: list) -> None:
    """The Batch dock runs one item (motion + CNMF + evaluation) of ``movie`` from a TIFF
    file: the window's gaps while its queue runs and the dock shows the progress."""
    import tempfile

    import tifffile

    tmp = Path(tempfile.mkdtemp(prefix="bench_gui_batch_"))
    path = tmp / "movie.tif"
    tifffile.imwrite(path, movie)
    _, batch = viewer.window.add_plugin_dock_widget("napari-caiman", "Batch")
    (layer,) = viewer.open(path, plugin="napari-caiman")
    batch.movie.value = layer
    batch.path.value = tmp / "batch.json"
    batch.new_button.native.click()
    batch.item_name.value = "bench"
    batch.add_button.native.click()
    wait_until(app, lambda: batch._add_worker is None)

    class _Runner:  # run_step's view of the dock: a Run button, running, a progress bar
        run_button = batch.run_button
        progress = batch.runner.progress

        @property
        def is_running(self) -> bool:
            return batch.is_running

    run_step(app, _Runner(), "Batch queue (1 item: motion + CNMF + evaluation)", rows)


def roi_layers(app, viewer) -> tuple[float, float, float]:
    """5,000 random ROIs of a 512x512 field: layer data time, add + first redraw time, longest gap."""
    from bench_layers import random_estimates

    from napari_caiman.plugin.layers.cnmf import cnmf_layer_data
    from napari_caiman.plugin.widgets._layers import upsert_layer

    est = random_estimates((512, 512), 5000, T=500)
    summary = type(
        "S",
        (),
        {
            "mean": np.zeros((512, 512), np.float32),
            "max": None,
            "std": None,
            "corr": np.zeros((512, 512), np.float32),
        },
    )()
    step = type("R", (), {"estimates": est, "summary": summary})()
    t0 = time.perf_counter()
    tuples = cnmf_layer_data(step, "rois", None, None)
    t_data = time.perf_counter() - t0
    with GapMonitor() as gaps:
        t0 = time.perf_counter()
        for data, meta, layer_type in tuples:
            upsert_layer(viewer, data, meta, layer_type)
        app.processEvents()
        t_add = time.perf_counter() - t0
    return t_data, t_add, gaps.worst, gaps.worst_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="300 frames instead of 1000")
    ap.add_argument("--out", default=str(HERE / "results" / "gui.md"))
    ap.add_argument(
        "--stacks",
        action="store_true",
        help="sample the threads' stacks while the window is late (printed, not written)",
    )
    ap.add_argument(
        "--interactions-only",
        action="store_true",
        help="only the selection / slider / floor latencies, on 90 random ROIs evaluated on the "
        "movie (seconds: for an A/B of two checkouts in the same minute; printed, not written)",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="cProfile every event-loop turn while a step runs; print the costliest turns",
    )
    ap.add_argument(
        "--steps-only",
        action="store_true",
        help="only motion, CNMF, Evaluate and the refit, no cancels (printed, not written)",
    )
    ap.add_argument(
        "--batch-only",
        action="store_true",
        help="only the Batch dock's queue run (printed, not written)",
    )
    ap.add_argument(
        "--idle",
        type=float,
        default=5.0,
        help="seconds of idle event loop after the docks open, before the first step",
    )
    args = ap.parse_args()
    global SAMPLE, PROFILE
    SAMPLE = args.stacks
    PROFILE = args.profile

    import napari
    from bench_layers import random_estimates
    from qtpy.QtWidgets import QApplication

    from napari_caiman.engine.synthetic import make_movie_2d
    from napari_caiman.plugin.widgets._process import process_available

    load_start = os.getloadavg()[0]
    T = 300 if args.quick else 1000
    movie = make_movie_2d(
        (T, 256, 256),
        n_neurons=80,
        rigid_motion=3.0,
        nonrigid_motion=1.0,
        seed=0,
        return_flow=False,
    ).movie
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1920, 1080)
    app = QApplication.instance()
    viewer.add_image(movie, name="movie")
    dock = viewer.window.add_plugin_dock_widget
    _, motion = dock("napari-caiman", "Motion correction")
    _, cnmf = dock("napari-caiman", "CNMF")
    _, evaluation = dock("napari-caiman", "Evaluation / curation")
    # the user reads the docks before the first Run: their idle turns (widgets built ahead,
    # napari's first-layer costs paid, widgets._warmup) run now, not inside a step
    t_idle = time.perf_counter()
    while time.perf_counter() - t_idle < args.idle:
        app.processEvents()
        time.sleep(0.005)
    rows: list = []
    cancels: list = []
    if args.interactions_only:
        from types import SimpleNamespace

        from napari_caiman.engine.params import CaimanParams

        est = random_estimates((256, 256), 90, T=T)
        summary = SimpleNamespace(mean=movie.mean(0), corr=None, std=None, max=None)
        evaluation.set_result(est, summary, CaimanParams(), "movie", build_layers=True)
        evaluation.movie.value = viewer.layers["movie"]
        evaluation.runner.run_button.native.click()
        wait_until(app, lambda: not evaluation.runner.is_running)
        for _ in range(20):
            app.processEvents()
        names = ("select", "slider", "floor canvas", "floor label")
        for name, values in zip(names, interactions(app, viewer, evaluation), strict=True):
            print(
                f"{name}: median {values[0] * 1000:.0f} ms, worst {values[1] * 1000:.0f} ms, "
                f"main-thread CPU {values[2] * 1000:.0f} ms"
            )
        parts = selection_parts(app, evaluation)
        print(
            "selection parts, each alone with its repaint (main-thread CPU, median ms): "
            + ", ".join(f"{k} {v:.0f}" for k, v in parts.items())
        )
        t_data, t_add, roi_gap, roi_cpu = roi_layers(app, viewer)
        print(
            f"5,000 ROIs: layer data {t_data:.2f} s, add + first redraw {t_add:.2f} s, "
            f"longest gap {roi_gap * 1000:.0f} ms ({roi_cpu * 1000:.0f} ms main-thread CPU)"
        )
        print(f"load average {load_start:.1f} -> {os.getloadavg()[0]:.1f}")
        viewer.close()
        return

    motion.set_settings(motion.get_settings().replace(pw_rigid=True))
    if args.batch_only:
        cnmf.set_settings(
            cnmf.get_settings().replace(K=6, gSig=(4, 4, 2), rf=(20, 20, 0), stride=(8, 8, 0))
        )
        batch_step(app, viewer, movie, rows)
        for name, wall, worst, over, restarts, worst_cpu in rows:
            print(
                f"{name}: wall {wall:.1f} s, longest gap {worst * 1000:.0f} ms, {over} gaps, {restarts} bar restarts "
                f"> 100 ms, most main-thread CPU in one turn {worst_cpu * 1000:.0f} ms"
            )
        print(f"load average {load_start:.1f} -> {os.getloadavg()[0]:.1f}")
        print("\n".join(STACKS))
        viewer.close()
        return
    if not args.steps_only:
        cancels.append(("Motion correction", cancel_time(app, motion.runner, 1.5)))
    run_step(app, motion.runner, "Motion correction (pw-rigid)", rows)
    cnmf.set_settings(
        cnmf.get_settings().replace(K=6, gSig=(4, 4, 2), rf=(20, 20, 0), stride=(8, 8, 0))
    )
    if not args.steps_only:
        cancels.append(("CNMF (patches)", cancel_time(app, cnmf.runner, 3.0)))
    run_step(app, cnmf.runner, "CNMF (patches 40x40)", rows)
    run_step(app, evaluation.runner, "Evaluate", rows)
    seeds = evaluation.new_seeds_layer()
    seeds.data[5:12, 5:12] = 1
    seeds.refresh()
    t_paint = time.perf_counter()  # the user paints the seeds: the new layer is drawn by then
    while time.perf_counter() - t_paint < 1.0:
        app.processEvents()
        time.sleep(0.005)
    evaluation.confirm = lambda text: True
    run_step(
        app,
        evaluation.refit_runner,
        "Refit with seeds (+ re-evaluate)",
        rows,
        wait_more=lambda: not evaluation.runner.is_running,
    )
    if args.steps_only:
        for name, wall, worst, over, _, worst_cpu in rows:
            in_turn, total = GC_TIME[name]
            print(
                f"{name}: wall {wall:.1f} s, longest gap {worst * 1000:.0f} ms, {over} gaps "
                f"> 100 ms, most main-thread CPU in one turn {worst_cpu * 1000:.0f} ms "
                f"(of which GC {in_turn * 1000:.0f} ms; GC in the step {total * 1000:.0f} ms)"
            )
        print(f"load average {load_start:.1f} -> {os.getloadavg()[0]:.1f}")
        viewer.close()
        return
    batch_step(app, viewer, movie, rows)
    g = cnmf.get_settings()
    cnmf.set_settings(g.replace(rf=(0, 0, 0), K=60))
    cancels.append(("CNMF (greedy init, whole FOV)", cancel_time(app, cnmf.runner, 4.0)))
    cnmf.set_settings(g)

    # interaction latencies on the evaluated result
    K = evaluation.session.n_components
    sel, slider, floor_canvas, floor_label = interactions(app, viewer, evaluation)
    parts = selection_parts(app, evaluation)

    t_data, t_add, roi_gap, roi_cpu = roi_layers(app, viewer)

    lines = [
        "# GUI responsiveness (bench/bench_gui.py)",
        "",
        f"napari {napari.__version__}, {platform.python_implementation()} {platform.python_version()}, "
        f"Xvfb 1920x1080 (software OpenGL); movie {T}x256x256 float32, 80 neurons, "
        "3 px rigid + 1 px non-rigid motion. Shared 2-core machine: numbers vary between runs.",
        f"Load average (1 min) {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. "
        f"Steps run in a child process: {process_available()}.",
        "",
        "## Event-loop gaps while a step runs (10 ms QTimer)",
        "",
        "| step | wall s | longest gap ms | gaps > 100 ms | bar restarts "
        "| most main-thread CPU in one turn, ms | of which GC, ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, wall, worst, over, restarts, worst_cpu in rows:
        lines.append(
            f"| {name} | {wall:.1f} | {worst * 1000:.0f} | {over} | {restarts} "
            f"| {worst_cpu * 1000:.0f} | {GC_TIME[name][0] * 1000:.0f} |"
        )
    lines += ["", "## Cancel (click to idle)", "", "| step | s |", "|---|---:|"]
    for name, s in cancels:
        lines.append(f"| {name} | {s:.2f} |")
    lines += [
        "",
        "## Interaction",
        "",
        f"Wall time, and CPU time of the main thread (LP_NUM_THREADS={os.environ.get('LP_NUM_THREADS', 'unset')}: "
        "with it unset, llvmpipe rasterizes in its own threads, not counted in the CPU column).",
        "",
        "| action | median ms | worst ms | main-thread CPU, median ms |",
        "|---|---:|---:|---:|",
        f"| select a component ({K} components) | {sel[0] * 1000:.0f} | {sel[1] * 1000:.0f} | "
        f"{sel[2] * 1000:.0f} |",
        f"| move the min_SNR slider one step | {slider[0] * 1000:.0f} | {slider[1] * 1000:.0f} | "
        f"{slider[2] * 1000:.0f} |",
        f"| floor: redraw the canvas, nothing changed | {floor_canvas[0] * 1000:.0f} | "
        f"{floor_canvas[1] * 1000:.0f} | {floor_canvas[2] * 1000:.0f} |",
        f"| floor: change one dock label (window repaint) | {floor_label[0] * 1000:.0f} | "
        f"{floor_label[1] * 1000:.0f} | {floor_label[2] * 1000:.0f} |",
        "",
        "A selection's parts, each alone with its repaint (main-thread CPU, median ms): "
        + ", ".join(f"{k} {v:.0f}" for k, v in parts.items())
        + ".",
        "",
        "## 5,000 ROIs (512x512) become layers",
        "",
        f"- layer data (in the CNMF worker): {t_data:.2f} s",
        f"- adding the layers + first redraw (main thread): {t_add:.2f} s; "
        f"longest gap {roi_gap * 1000:.0f} ms ({roi_cpu * 1000:.0f} ms of main-thread CPU)",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    if SAMPLE:
        print("\n".join(STACKS))
    viewer.close()


if __name__ == "__main__":
    main()
