"""Opening a recording-scale movie in napari: how long until its first frame shows.

    xvfb-run -s "-screen 0 1920x1080x24" python bench/bench_open.py MOVIE.tif [--out bench/results/open.md]

Opens ``MOVIE`` the way a user does (``viewer.open(path, plugin="napari-caiman")``,
what File > Open and drag-and-drop call), then forces the canvas to draw
(``viewer.screenshot``), and reports: the time to the first drawn frame, the
time to draw the last frame after moving the time slider there (napari's
own one-time cost of a session's first layer, its unit registry and layer
controls, is measured apart on a tiny image first), the layer's
data type (lazy or not), the contrast limits (from a sample of frames), and
how much the process's anonymous memory grew (RssAnon from /proc: what it
holds, not the file pages it maps).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def _anon() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("movie")
    ap.add_argument("--out", default=None, help="append a row to this markdown file")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    import napari

    path = Path(args.movie)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1920, 1080)
    viewer.screenshot(
        canvas_only=True
    )  # the empty canvas drawn once: GL set up before the clock starts
    # napari's one-time cost of a session's first layer (its unit registry, the layer
    # controls' modules), whatever the file: measured apart, on a tiny image
    import numpy as np

    t0 = time.perf_counter()
    viewer.add_image(np.zeros((2, 2), np.float32), name="warm-up")
    viewer.screenshot(canvas_only=True)
    t_napari = time.perf_counter() - t0
    viewer.layers.clear()
    a0 = _anon()
    t0 = time.perf_counter()
    layers = viewer.open(str(path), plugin="napari-caiman")
    t_open = time.perf_counter() - t0
    viewer.screenshot(canvas_only=True)
    t_first = time.perf_counter() - t0
    layer = layers[0]
    T = int(layer.data.shape[0])
    t1 = time.perf_counter()
    viewer.dims.set_current_step(0, T - 1)
    viewer.screenshot(canvas_only=True)
    t_last = time.perf_counter() - t1
    grown = _anon() - a0
    size = os.path.getsize(path)
    row = (
        f"| {path.name} | {tuple(layer.data.shape)} | {size / 1e9:.1f} GB | {type(layer.data).__name__} | "
        f"{t_open:.2f} | {t_first:.2f} | {t_last:.2f} | {grown / 1e6:.0f} MB | "
        f"{[round(float(c), 1) for c in layer.contrast_limits]} | {t_napari:.2f} | {args.note} |"
    )
    print(row)
    if args.out:
        out = Path(args.out)
        if not out.exists():
            out.write_text(
                "# Opening a long movie in napari (bench/bench_open.py)\n\n"
                '`viewer.open(path, plugin="napari-caiman")` under Xvfb 1920x1080 (software OpenGL), then a forced '
                "draw. Anonymous memory: growth of the process's RssAnon (file pages it maps not counted).\n\n"
                "| file | shape | size | layer data | open s | first frame drawn s | last frame drawn s "
                "| anon memory grown | contrast limits | napari's first layer of a session s | conditions |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|\n"
            )
        with out.open("a") as fh:
            fh.write(row + "\n")
    viewer.close()


if __name__ == "__main__":
    main()
