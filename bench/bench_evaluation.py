"""Benchmark of component evaluation, thresholds, dF/F and curation saves.

    python bench/bench_evaluation.py [--quick]

* ``compute_metrics`` (SNR + r-values) on a 2D 1500 x 256 x 256 synthetic
  movie (300 neurons) read as a ``.npy`` memmap, in a fresh process (peak
  RSS).  The estimates are built from the ground truth (unit-norm true
  footprints, true traces, residuals ``YrA`` projected from the movie) plus
  50 spurious noise components (Gaussian blobs whose traces are fitted to the
  residual), so that accuracy can be scored: accepted true neurons vs
  accepted noise components with CaImAn's default thresholds;
* ``apply_thresholds`` on 5,000 components (what a slider move costs);
* ``detrend_df_f`` on the 350 traces (exact and fast running percentile);
* ``save_curation_sidecar`` for 5,000 components (what a key press costs);
* the REFERENCE.md CNMF cases (2D 1500x256x256 with patches, 3D
  500x12x96x96) run with the native CNMF, then evaluated: F1 of all
  components vs the accepted ones, and the evaluation time next to CNMF's
  (``--no-cnmf`` skips this part).

Writes ``bench/results/evaluation.md`` (``--quick`` only prints).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FULL = dict(shape=(1500, 256, 256), n_neurons=300, n_fake=50)
QUICK = dict(shape=(500, 128, 128), n_neurons=60, n_fake=15)


def build(shape, n_neurons, n_fake, tmp: Path):
    """Movie memmap path + truth-derived estimates with spurious components."""
    from scipy import ndimage, sparse

    from napari_caiman.engine.cnmf import Estimates, frames_to_pixels, images_to_pixels
    from napari_caiman.engine.synthetic import make_movie_2d

    path = tmp / "movie.npy"
    m = make_movie_2d(shape, n_neurons=n_neurons, seed=3, return_flow=False)
    np.save(path, m.movie.astype(np.float32))
    T = shape[0]
    fp = m.footprints.astype(np.float64)
    norms = np.linalg.norm(fp.reshape(len(fp), -1), axis=1)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    fakes = []
    for _ in range(n_fake):
        cy, cx = rng.uniform(6, shape[1] - 6), rng.uniform(6, shape[2] - 6)
        s = rng.uniform(3, 5)
        g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        g[g < 0.05] = 0
        fakes.append(g / np.linalg.norm(g))
    imgs = np.concatenate([fp / norms[:, None, None], np.array(fakes)])
    A = sparse.csc_matrix(images_to_pixels(imgs))
    C_true = m.traces.astype(np.float64) * norms[:, None]
    b = images_to_pixels(m.b.astype(np.float64))
    f = m.f.astype(np.float64)
    # residual projections, chunk by chunk
    proj = np.zeros((A.shape[1], T))
    K0 = len(fp)
    for t0 in range(0, T, 250):
        Y = frames_to_pixels(m.movie[t0 : t0 + 250].astype(np.float64))
        R = Y - A[:, :K0] @ C_true[:, t0 : t0 + 250] - b @ f[:, t0 : t0 + 250]
        proj[:, t0 : t0 + 250] = A.T @ R
    sm = ndimage.gaussian_filter1d(proj[K0:], 2, axis=1)
    C_fake = np.clip(sm - np.median(sm, axis=1, keepdims=True), 0, None)
    C = np.vstack([C_true, C_fake]).astype(np.float32)
    YrA = (proj - np.vstack([np.zeros_like(C_true), C_fake])).astype(np.float32)
    K = A.shape[1]
    P = A.shape[0]
    est = Estimates(
        A=A,
        C=C,
        S=np.zeros_like(C),
        YrA=YrA,
        b=b.astype(np.float32),
        f=f.astype(np.float32),
        sn=np.ones(P, np.float32),
        g=np.zeros((K, 2)),
        bl=np.zeros(K),
        c1=np.zeros(K),
        neurons_sn=np.ones(K),
        lam=np.zeros(K),
        dims=tuple(shape[1:]),
    )
    del m
    return path, est, K0


def _child(path: str, est, q) -> None:
    from napari_caiman.engine.evaluation import compute_metrics
    from napari_caiman.engine.params import CaimanParams

    movie = np.load(path, mmap_mode="r")
    params = CaimanParams.from_dict({"use_cnn": False})
    t0, c0 = time.perf_counter(), time.process_time()
    met = compute_metrics(movie, est, params)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    # VmHWM (not ru_maxrss, which survives the exec of a spawned child on Linux)
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    rss = int(status["VmHWM"].split()[0]) / 1024**2
    q.put(dict(wall=wall, cpu=cpu, rss=rss, metrics=met))


PIPELINE = {
    "2D patches": dict(
        kind="2d",
        shape=(1500, 256, 256),
        n_neurons=120,
        gSig=4,
        params={"K": 10, "gSig": (4, 4), "rf": 25, "stride": 10, "n_processes": 2},
    ),
    "3D whole volume": dict(
        kind="3d",
        shape=(500, 12, 96, 96),
        n_neurons=40,
        gSig=(4, 4, 2),
        params={"K": 50, "gSig": (4, 4, 2)},
    ),
}


def pipeline_case(case: dict, tmp: Path) -> dict:
    from napari_caiman.engine.cnmf import cnmf, match_components
    from napari_caiman.engine.evaluation import apply_thresholds, compute_metrics
    from napari_caiman.engine.params import CaimanParams
    from napari_caiman.engine.synthetic import make_movie_2d, make_movie_3d

    make = make_movie_2d if case["kind"] == "2d" else make_movie_3d
    path = tmp / f"pipe_{case['kind']}.npy"
    truth = make(
        case["shape"],
        n_neurons=case["n_neurons"],
        gSig=case["gSig"],
        seed=0,
        out=path,
        return_flow=False,
        return_truth=False,
    )
    movie = np.load(path, mmap_mode="r")
    params = CaimanParams.from_dict({**case["params"], "use_cnn": False})
    t = time.perf_counter()
    est = cnmf(movie, params)
    t_cnmf = time.perf_counter() - t
    t = time.perf_counter()
    met = compute_metrics(movie, est, params)
    t_eval = time.perf_counter() - t
    good, _ = apply_thresholds(met)
    before = match_components(est, truth.footprints, true_traces=truth.traces)
    after = match_components(est.footprints(good), truth.footprints, est.C[good], truth.traces)
    path.unlink()
    return dict(
        t_cnmf=t_cnmf,
        t_eval=t_eval,
        before=before,
        after=after,
        K=est.n_components,
        n_acc=good.size,
        timings=met.timings,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-cnmf", action="store_true", help="skip the CNMF + evaluation cases")
    args = ap.parse_args()
    cfg = QUICK if args.quick else FULL
    from napari_caiman.engine.curation import Curation, save_curation_sidecar
    from napari_caiman.engine.dff import detrend_df_f
    from napari_caiman.engine.evaluation import Metrics, apply_thresholds

    lines = [
        f"# Evaluation benchmark{' (quick)' if args.quick else ''}",
        "",
        f"Machine: {os.cpu_count()} cores (shared). Python {sys.version.split()[0]}. "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        "",
    ]
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        t = time.perf_counter()
        path, est, K0 = build(cfg["shape"], cfg["n_neurons"], cfg["n_fake"], tmp)
        print(f"built movie + estimates in {time.perf_counter() - t:.1f} s", flush=True)
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        p = ctx.Process(target=_child, args=(str(path), est, q))
        p.start()
        res = q.get()
        p.join()
        met: Metrics = res["metrics"]
        K = est.n_components
        good, _ = apply_thresholds(met)
        acc = np.zeros(K, bool)
        acc[good] = True
        true = np.zeros(K, bool)
        true[:K0] = True
        tp = int((acc & true).sum())
        prec = tp / max(1, acc.sum())
        rec = tp / K0
        T, Y, X = cfg["shape"]
        lines += [
            f"## compute_metrics: 2D {T}x{Y}x{X} float32 memmap, {K0} true + {K - K0} noise components",
            "",
            "| wall s | CPU s | SNR s | r-values s | peak RSS GiB (child, incl. memmap pages) |",
            "|---|---|---|---|---|",
            f"| {res['wall']:.2f} | {res['cpu']:.2f} | {met.timings['snr']:.2f} | {met.timings['r_values']:.2f} "
            f"| {res['rss']:.2f} |",
            "",
            "CaImAn for reference (REFERENCE.md): the whole 2D 256x256x1500 CNMF + refit + evaluation command took "
            "89 s; its evaluation step alone is not timed there.",
            "",
            "Accuracy with CaImAn's default thresholds (min_SNR 2.5, rval_thr 0.8, SNR_lowest 0.5, rval_lowest -1):",
            "",
            "| accepted | true accepted | noise accepted | precision | recall |",
            "|---|---|---|---|---|",
            f"| {acc.sum()} | {tp} | {int((acc & ~true).sum())} | {prec:.3f} | {rec:.3f} |",
            "",
            "| metric | true neurons: median (5th pct) | noise comps: median (95th pct) |",
            "|---|---|---|",
            f"| SNR_comp | {np.median(met.SNR_comp[true]):.2f} ({np.percentile(met.SNR_comp[true], 5):.2f}) "
            f"| {np.median(met.SNR_comp[~true]):.2f} ({np.percentile(met.SNR_comp[~true], 95):.2f}) |",
            f"| r_values | {np.median(met.r_values[true]):.3f} ({np.percentile(met.r_values[true], 5):.3f}) "
            f"| {np.median(met.r_values[~true]):.3f} ({np.percentile(met.r_values[~true], 95):.3f}) |",
            "",
        ]
        print("\n".join(lines[-16:]), flush=True)

        # dF/F
        rows = [
            "## detrend_df_f",
            "",
            f"{K} traces x {T} frames, frames_window 500",
            "",
            "| variant | s |",
            "|---|---|",
        ]
        for fast in (False, True):
            t = time.perf_counter()
            detrend_df_f(est, frames_window=500, use_fast=fast)
            rows.append(f"| use_fast={fast} | {time.perf_counter() - t:.3f} |")
        lines += rows + [""]
        print("\n".join(rows), flush=True)

        # thresholds on 5,000 components
        rng = np.random.default_rng(0)
        Kb = 5000
        big = Metrics(
            SNR_comp=rng.gamma(2, 2, Kb),
            r_values=rng.uniform(-1, 1, Kb),
            size=rng.integers(10, 400, Kb),
        )
        ts = []
        for i in range(1000):
            t = time.perf_counter()
            apply_thresholds(big, min_SNR=1 + (i % 50) / 10, rval_thr=0.8)
            ts.append(time.perf_counter() - t)
        ts = np.array(ts) * 1e3
        # sidecar save for 5,000 components
        cur = Curation.empty(Kb)
        ss = []
        for i in range(100):
            cur.set(i, 1)
            t = time.perf_counter()
            save_curation_sidecar(tmp / "results.hdf5", cur)
            ss.append(time.perf_counter() - t)
        ss = np.array(ss) * 1e3
        rows = [
            "## Interaction costs (5,000 components)",
            "",
            "| operation | median ms | 99th pct ms |",
            "|---|---|---|",
            f"| apply_thresholds | {np.median(ts):.3f} | {np.percentile(ts, 99):.3f} |",
            f"| save_curation_sidecar (atomic JSON) | {np.median(ss):.2f} | {np.percentile(ss, 99):.2f} |",
            "",
        ]
        lines += rows
        print("\n".join(rows), flush=True)
        if not (args.quick or args.no_cnmf):
            rows = [
                "## CNMF + evaluation (REFERENCE.md movies, native CNMF, default thresholds)",
                "",
                "| case | CNMF s | evaluation s (SNR / r) | components | accepted | F1 all (P/R) | "
                "F1 accepted (P/R) |",
                "|---|---|---|---|---|---|---|",
            ]
            for name, case in PIPELINE.items():
                r = pipeline_case(case, tmp)
                b, a = r["before"], r["after"]
                rows.append(
                    f"| {name} {case['shape']} | {r['t_cnmf']:.1f} | {r['t_eval']:.2f} "
                    f"({r['timings']['snr']:.2f} / {r['timings']['r_values']:.2f}) | {r['K']} | "
                    f"{r['n_acc']} | {b.f1:.3f} ({b.precision:.3f}/{b.recall:.3f}) | "
                    f"{a.f1:.3f} ({a.precision:.3f}/{a.recall:.3f}) |"
                )
                print(rows[-1], flush=True)
            rows += [
                "",
                "CaImAn 1.12.1 (REFERENCE.md): 2D 89 s, F1 0.96; 3D 100 s, F1 0.88 (whole command "
                "including evaluation).",
                "",
            ]
            lines += rows
    if args.quick:
        return
    out = HERE / "results" / "evaluation.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
