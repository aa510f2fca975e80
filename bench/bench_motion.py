"""Motion-correction benchmark: speed, peak memory and accuracy.

    python bench/bench_motion.py            # full: 512x512x2000 uint16 + 3D 400x8x96x96
    python bench/bench_motion.py --quick    # small version (< 1 min)

Each case runs in a fresh subprocess (so peak RSS, ru_maxrss, is its own),
reading a cached uint16 .npy memmap movie with known motion and writing the
corrected movie to a .npy file.  Accuracy: RMS error of the rigid shifts
against the true rigid displacement (after removing the constant offset a
template always has), and crispness of the mean image before/after
(CaImAn's measure).  The table is printed and written to
bench/results/motion.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CACHE = Path(tempfile.gettempdir()) / "napari_caiman_bench"


def movie_path(kind: str, shape) -> Path:
    return CACHE / f"motion_{kind}_{'x'.join(map(str, shape))}.npy"


def make(kind: str, shape) -> Path:
    """Create (or reuse) a cached movie and its true rigid shifts."""
    from napari_caiman.engine.synthetic import make_movie_2d, make_movie_3d

    CACHE.mkdir(exist_ok=True)
    p = movie_path(kind, shape)
    sp = p.with_suffix(".shifts.npy")
    if p.exists() and sp.exists():
        return p
    t = time.perf_counter()
    if kind == "2d":
        sm = make_movie_2d(shape, n_neurons=300, rigid_motion=5, nonrigid_motion=2, noise=20, dtype=np.uint16,
                           seed=0, return_flow=False, return_truth=False, out=p)
    else:
        sm = make_movie_3d(shape, n_neurons=40, rigid_motion=(4, 4, 1.5), noise=10, dtype=np.uint16, seed=0,
                           return_flow=False, return_truth=False, out=p)
    np.save(sp, sm.shifts)
    print(f"generated {p.name} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return p


def _status(key: str) -> int:
    """A kB value from /proc/self/status (0 where unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_case(args) -> dict:
    """Runs inside the child process."""
    from napari_caiman.engine.motion import motion_correct

    movie = np.load(args.movie, mmap_mode="r")
    truth = np.load(Path(args.movie).with_suffix(".shifts.npy"))
    if args.frames:
        movie = movie[: args.frames]
        truth = truth[: args.frames]
    kw = json.loads(args.kwargs)
    import threading

    peak_anon = [0]
    stop = threading.Event()

    def sample():  # anonymous (non file-backed) resident memory, sampled every 20 ms
        while not stop.is_set():
            peak_anon[0] = max(peak_anon[0], _status("RssAnon"))
            stop.wait(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out = Path(tempfile.mkdtemp(dir=CACHE)) / "corrected.npy"
    t = time.perf_counter()
    r = motion_correct(movie, out=out, **kw)
    dt = time.perf_counter() - t
    stop.set()
    th.join()
    nd = movie.ndim - 1
    est = r.shifts_rig if nd == 2 else r.shifts_rig[:, [2, 0, 1]]  # array order
    err = est + truth  # correction shift = -displacement
    err -= err.mean(axis=0)
    rms = np.sqrt((err ** 2).mean(axis=0))
    res = dict(
        seconds=dt, fps=len(movie) / dt, frames=len(movie), timings=r.timings,
        peak_rss_gb=_status("VmHWM") / 2**20,  # per process image (ru_maxrss survives exec)
        peak_anon_gb=peak_anon[0] / 2**20,
        shift_rms=[round(float(v), 3) for v in rms],
        crisp_raw=r.metrics["crispness_raw"], crisp_cor=r.metrics["crispness_corrected"],
        corr_raw=float(np.nanmean(r.metrics["corr_raw"])), corr_cor=float(np.nanmean(r.metrics["corr_corrected"])),
    )
    del r
    os.remove(out)
    os.rmdir(out.parent)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--movie", help=argparse.SUPPRESS)
    ap.add_argument("--frames", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args)))
        return

    if args.quick:
        shape2, shape3 = (200, 512, 512), (100, 8, 96, 96)
    else:
        shape2, shape3 = (2000, 512, 512), (400, 8, 96, 96)
    m2 = make("2d", shape2)
    m3 = make("3d", shape3)
    T2 = shape2[0]
    pw = dict(pw_rigid=True, strides=[48, 48], overlaps=[24, 24], max_shifts=[6, 6], max_deviation_rigid=3)
    cases = [
        ("rigid 2D", m2, T2, dict(max_shifts=[6, 6])),
        ("rigid 2D (half T)", m2, T2 // 2, dict(max_shifts=[6, 6])),
        ("pw-rigid 2D", m2, T2, pw),
        ("pw-rigid 2D (half T)", m2, T2 // 2, pw),
        ("rigid 3D", m3, shape3[0], dict(max_shifts=[6, 6, 2])),
        ("pw-rigid 3D", m3, shape3[0], dict(max_shifts=[6, 6, 2], pw_rigid=True, strides=[48, 48, 4],
                                            overlaps=[24, 24, 2], max_deviation_rigid=2)),
    ]
    rows = []
    for name, path, T, kw in cases:
        cmd = [sys.executable, __file__, "--case", name, "--movie", str(path), "--frames", str(T),
               "--kwargs", json.dumps(kw)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode:
            print(p.stderr, file=sys.stderr)
            raise SystemExit(f"case {name} failed")
        r = json.loads(p.stdout.strip().splitlines()[-1])
        shape = np.load(path, mmap_mode="r").shape[1:]
        rows.append((name, f"{T}x{'x'.join(map(str, shape))}", r))
        print(f"{name}: {r['fps']:.1f} frames/s, {r['peak_rss_gb']:.2f} GB", file=sys.stderr)

    lines = [
        f"Motion correction benchmark ({'quick' if args.quick else 'full'}), {os.cpu_count()} cores, "
        f"uint16 .npy memmap in, .npy out; {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "| case | movie (T x frame) | total s | template s | frames/s | peak RSS GB (anon) | shift RMS err px (array order) "
        "| crispness raw -> corrected | mean corr with template raw -> corrected |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, shp, r in rows:
        lines.append(
            f"| {name} | {shp} | {r['seconds']:.1f} | {r['timings'].get('template', 0):.1f} | {r['fps']:.1f} | "
            f"{r['peak_rss_gb']:.2f} ({r['peak_anon_gb']:.2f}) | {r['shift_rms']} | {r['crisp_raw']:.0f} -> {r['crisp_cor']:.0f} | "
            f"{r['corr_raw']:.3f} -> {r['corr_cor']:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(__file__).parent / "results" / ("motion_quick.md" if args.quick else "motion.md")
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
