"""How the napari window responds while the Batch dock runs a queue, measured as the user meets it.

    xvfb-run -a -s "-screen 0 1920x1080x24" python bench/bench_batch_gui.py
    xvfb-run -a -s "-screen 0 1920x1080x24" python bench/bench_batch_gui.py --items 6 --frames 400

A real napari window (1920x1080 under Xvfb) with the Batch dock opened as the
Plugins menu opens it; a batch file of N items (CNMF variants of one movie,
motion + cnmf + evaluate each) is opened in the dock and *Run queue* is
clicked; the queue is waited for while Qt's event loop runs. The gap timer of
``bench_gui.py`` (a 10 ms QTimer) gives the longest time the window could not
respond. Also timed: each main-thread handler of the dock while it runs
(the once-a-second table refresh, the cache-size update, a progress report).

``--external``: the same queue run by ``napari-caiman batch`` in another
process while the dock only follows the batch file (what the window costs
when the engine does not share its process).

Prints a Markdown table; ``--out FILE`` appends it. The machine's cores are
shared with other jobs: gaps and times vary between runs.
"""

from __future__ import annotations

import argparse
import functools
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _timed(obj, name: str, log: list) -> None:
    """Wrap ``obj.name`` so that each call's duration goes to ``log``."""
    real = getattr(obj, name)

    @functools.wraps(real)
    def call(*a, **k):
        t0 = time.perf_counter()
        try:
            return real(*a, **k)
        finally:
            log.append((name, time.perf_counter() - t0))

    setattr(obj, name, call)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=4)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument(
        "--external",
        action="store_true",
        help="run the queue with the CLI in another process; the dock follows the file",
    )
    ap.add_argument(
        "--thread",
        action="store_true",
        help="untick 'each item in its own process': the items run in a thread of this process",
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import subprocess

    import napari
    import numpy as np
    import tifffile
    from bench_gui import GapMonitor, wait_until
    from qtpy.QtWidgets import QApplication

    import napari_caiman
    from napari_caiman import Batch
    from napari_caiman.engine.synthetic import make_movie_2d

    folder = Path(tempfile.mkdtemp(prefix="bench_batch_gui_"))
    movie = make_movie_2d(
        (args.frames, 128, 128), n_neurons=30, rigid_motion=2.0, seed=0, return_flow=False
    ).movie
    movie_file = folder / "movie.tif"
    tifffile.imwrite(movie_file, movie)
    batch = Batch(folder / "runs.json")
    base = {"gSig": (4, 4), "rf": (20, 20), "stride": (8, 8), "max_shifts": (4, 4)}
    batch.add_variants("v", movie_file, base, {"K": [3 + i for i in range(args.items)]})

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1920, 1080)
    app = QApplication.instance()
    viewer.add_image(movie, name="movie")
    _, w = viewer.window.add_plugin_dock_widget("napari-caiman", "Batch")
    handlers: list = []
    for name in ("_on_tick", "_refresh_cache", "_refresh_table", "refresh"):
        if hasattr(w, name):
            _timed(w, name, handlers)
    _timed(w.runner, "_on_yielded", handlers)  # progress: bar + status line (a repaint)
    w._timer.timeout.disconnect()
    w._timer.timeout.connect(w._on_tick)  # the timed one
    for _ in range(20):
        app.processEvents()
    w.path.value = folder / "runs.json"
    w.open_button.native.click()
    if args.thread:
        w.isolate.value = False
    with GapMonitor() as gaps:
        t0 = time.perf_counter()
        if args.external:
            from napari_caiman.app import cli

            proc = subprocess.Popen(
                [sys.executable, "-m", cli.__name__, "batch", str(folder / "runs.json"), "-q"]
            )
            wait_until(app, lambda: proc.poll() is not None, timeout=1800)
            for _ in range(150):  # the dock's next ticks see the file's final state
                app.processEvents()
                time.sleep(0.01)
        else:
            w.run_button.native.click()
            wait_until(app, lambda: not w.is_running, timeout=1800)
        wall = time.perf_counter() - t0
        for _ in range(20):
            app.processEvents()
            time.sleep(0.005)
    statuses = {i.name: i.status for i in Batch(folder / "runs.json")}
    assert set(statuses.values()) == {"done"}, statuses
    by: dict[str, list[float]] = {}
    for name, dt in handlers:
        by.setdefault(name, []).append(dt)
    rows = [
        f"| {napari_caiman.__file__.split('/src/')[0]} | {args.items} x {args.frames}x128x128"
        f"{' (CLI in another process)' if args.external else ''}"
        f"{' (thread)' if args.thread and not args.external else ''} | "
        f"{wall:.1f} | {gaps.worst * 1000:.0f} | {gaps.over()} | "
        + ", ".join(
            f"{k} {1000 * max(v):.0f} (n={len(v)}, median {1000 * float(np.median(v)):.0f})"
            for k, v in sorted(by.items())
        )
        + " |"
    ]
    table = "\n".join(
        [
            f"Batch dock, {platform.node()}, {time.strftime('%Y-%m-%d %H:%M')} (shared CPUs: timings vary)",
            "",
            "| code | queue | wall s | longest gap ms | gaps > 100 ms | main-thread handlers: longest ms |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    print(table)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(table + "\n")
    viewer.close()


if __name__ == "__main__":
    main()
