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
        sm = make_movie_2d(
            shape,
            n_neurons=300,
            rigid_motion=5,
            nonrigid_motion=2,
            noise=20,
            dtype=np.uint16,
            seed=0,
            return_flow=False,
            return_truth=False,
            out=p,
        )
    else:
        sm = make_movie_3d(
            shape,
            n_neurons=40,
            rigid_motion=(4, 4, 1.5),
            noise=10,
            dtype=np.uint16,
            seed=0,
            return_flow=False,
            return_truth=False,
            out=p,
        )
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
    c0 = os.times()
    t = time.perf_counter()
    r = motion_correct(movie, out=out, **kw)
    dt = time.perf_counter() - t
    c1 = os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    stop.set()
    th.join()
    nd = movie.ndim - 1
    est = r.shifts_rig if nd == 2 else r.shifts_rig[:, [2, 0, 1]]  # array order
    err = est + truth  # correction shift = -displacement
    err -= err.mean(axis=0)
    rms = np.sqrt((err**2).mean(axis=0))
    res = dict(
        seconds=dt,
        fps=len(movie) / dt,
        cpu_s=cpu,
        cpu_fps=(os.cpu_count() or 1) * len(movie) / cpu,
        frames=len(movie),
        timings=r.timings,
        peak_rss_gb=_status("VmHWM") / 2**20,  # per process image (ru_maxrss survives exec)
        peak_anon_gb=peak_anon[0] / 2**20,
        shift_rms=[round(float(v), 3) for v in rms],
        crisp_raw=r.metrics["crispness_raw"],
        crisp_cor=r.metrics["crispness_corrected"],
        corr_raw=float(np.nanmean(r.metrics["corr_raw"])),
        corr_cor=float(np.nanmean(r.metrics["corr_corrected"])),
    )
    del r
    os.remove(out)
    os.rmdir(out.parent)
    return res


def accuracy(quick: bool) -> list[str]:
    """Accuracy against ground truth on movies held in memory (truth needed)."""
    from napari_caiman.engine.motion import crispness, motion_correct
    from napari_caiman.engine.synthetic import make_movie_2d, make_movie_3d

    T = 150 if quick else 500
    lines = [
        "",
        "Accuracy against the truth (in-memory movies, noise SD 10 counts on a ~100-count baseline). "
        "corr = mean over frames of the Pearson correlation of each corrected frame with the motion-free, "
        "noise-free frame (`clean`), over the interior (border of max_shifts + 6 px left out); "
        "`still` = the noisy movie without motion (perfect correction); crispness over the same interior.",
        "",
        "| movie | method | shift RMS err px (array order) | corr with truth | corr of `still` | crispness corrected "
        "(raw, still) |",
        "|---|---|---|---|---|---|",
    ]

    def corr(mov, clean, m):
        crop = (slice(None),) + tuple(
            slice(a, n - a) for a, n in zip(m, clean.shape[1:], strict=True)
        )
        a = np.asarray(mov, np.float64)[crop].reshape(len(mov), -1)
        b = clean[crop].reshape(len(mov), -1).astype(np.float64)
        a = a - np.nanmean(a, 1, keepdims=True)
        b = b - b.mean(1, keepdims=True)
        return float(
            np.nanmean(np.nansum(a * b, 1) / np.sqrt(np.nansum(a * a, 1) * (b * b).sum(1)))
        )

    def crisp(mov, m):
        crop = (slice(None),) + tuple(
            slice(a, n - a) for a, n in zip(m, mov.shape[1:], strict=True)
        )
        return crispness(np.nanmean(np.asarray(mov, np.float32)[crop], axis=0))

    cases = [
        (
            "2D 512x512 rigid 5 px",
            make_movie_2d((T // 2, 512, 512), n_neurons=300, rigid_motion=5, noise=10, seed=1),
            (12, 12),
            [("rigid", dict(max_shifts=(6, 6)))],
        ),
        (
            "2D 256x256 rigid 5 + non-rigid 2 px",
            make_movie_2d(
                (T, 256, 256), n_neurons=80, rigid_motion=5, nonrigid_motion=2, noise=10, seed=2
            ),
            (12, 12),
            [
                ("rigid", dict(max_shifts=(6, 6))),
                (
                    "pw-rigid 48/24",
                    dict(max_shifts=(6, 6), pw_rigid=True, strides=(48, 48), overlaps=(24, 24)),
                ),
            ],
        ),
        (
            "3D 8x96x96 rigid (4, 4, 1.5) px",
            make_movie_3d(
                (T // 2, 8, 96, 96), n_neurons=40, rigid_motion=(4, 4, 1.5), noise=10, seed=3
            ),
            (2, 10, 10),
            [("rigid", dict(max_shifts=(6, 6, 2)))],
        ),
    ]
    for name, sm, m, methods in cases:
        c_still = corr(sm.still, sm.clean, m)
        for meth, kw in methods:
            r = motion_correct(sm.movie, **kw)
            est = r.shifts_rig if sm.movie.ndim == 3 else r.shifts_rig[:, [2, 0, 1]]
            err = est + sm.shifts
            err -= err.mean(axis=0)
            rms = [round(float(v), 3) for v in np.sqrt((err**2).mean(axis=0))]
            if (
                sm.flow is not None
                and np.ptp(
                    sm.flow - sm.shifts.reshape(*sm.shifts.shape, *([1] * (sm.flow.ndim - 2)))
                )
                > 0
            ):
                rms = "n/a (non-rigid)"
            lines.append(
                f"| {name} | {meth} | {rms} | {corr(r.corrected, sm.clean, m):.4f} | {c_still:.4f} | "
                f"{crisp(r.corrected, m):.0f} ({crisp(sm.movie, m):.0f}, {crisp(sm.still, m):.0f}) |"
            )
            print(lines[-1], file=sys.stderr)
    return lines


def _warm(path: Path) -> None:
    """Read the movie file once so every case starts with it in the page cache
    (the first case would otherwise also measure the disk)."""
    with open(path, "rb") as f:
        while f.read(64 << 20):
            pass


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
    pw = dict(
        pw_rigid=True, strides=[48, 48], overlaps=[24, 24], max_shifts=[6, 6], max_deviation_rigid=3
    )
    cases = [
        ("rigid 2D", m2, T2, dict(max_shifts=[6, 6])),
        ("rigid 2D (half T)", m2, T2 // 2, dict(max_shifts=[6, 6])),
        ("pw-rigid 2D", m2, T2, pw),
        ("pw-rigid 2D (half T)", m2, T2 // 2, pw),
        ("rigid 3D", m3, shape3[0], dict(max_shifts=[6, 6, 2])),
        (
            "pw-rigid 3D",
            m3,
            shape3[0],
            dict(
                max_shifts=[6, 6, 2],
                pw_rigid=True,
                strides=[48, 48, 4],
                overlaps=[24, 24, 2],
                max_deviation_rigid=2,
            ),
        ),
    ]
    rows = []
    for name, path, T, kw in cases:
        _warm(path)
        cmd = [
            sys.executable,
            __file__,
            "--case",
            name,
            "--movie",
            str(path),
            "--frames",
            str(T),
            "--kwargs",
            json.dumps(kw),
        ]
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
        "| case | movie (T x frame) | total s | template s | frames/s | frames/s by CPU time* "
        "| peak RSS GB (anon) | shift RMS err px (array order) "
        "| crispness raw -> corrected | mean corr with template raw -> corrected |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, shp, r in rows:
        lines.append(
            f"| {name} | {shp} | {r['seconds']:.1f} | {r['timings'].get('template', 0):.1f} | "
            f"{r['fps']:.1f} | {r['cpu_fps']:.1f} | "
            f"{r['peak_rss_gb']:.2f} ({r['peak_anon_gb']:.2f}) | {r['shift_rms']} | "
            f"{r['crisp_raw']:.0f} -> {r['crisp_cor']:.0f} | "
            f"{r['corr_raw']:.3f} -> {r['corr_cor']:.3f} |"
        )
    lines += [
        "",
        f"*frames / (CPU seconds / {os.cpu_count()} cores): the rate with all cores free for this job "
        "(the machine is shared; wall-clock rates vary with other jobs' load). Input file pre-read into the "
        "page cache before each case.",
    ]
    lines += accuracy(args.quick)
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(__file__).parent / "results" / ("motion_quick.md" if args.quick else "motion.md")
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
