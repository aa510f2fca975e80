"""Benchmark of the native CNMF engine on synthetic movies with ground truth.

    python bench/bench_cnmf.py [--quick]

Cases (as in REFERENCE.md, where CaImAn 1.12.1 took 89 s / F1 0.96 / trace
corr 0.99 for the 2D command with patches + refit + evaluation, and 100 s /
F1 0.88 for whole-volume 3D CNMF + evaluation, on 2 cores):

* 2D 1500 x 256 x 256, 120 neurons, gSig 4, K 10 per patch, rf 25, stride 10,
  2 worker threads;
* 3D 500 x 12 x 96 x 96, 40 neurons, gSig (4, 4, 2), K 50, whole volume.

``--quick`` shrinks both (for a smoke run).  Each case runs in a fresh
process on a ``.npy`` memmap of the movie so that the peak RSS is that of
CNMF alone.  Writes ``bench/results/cnmf.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

CASES = {
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
    "2D patches 3000 frames": dict(
        kind="2d",
        shape=(3000, 256, 256),
        n_neurons=120,
        gSig=4,
        params={"K": 10, "gSig": (4, 4), "rf": 25, "stride": 10, "n_processes": 2},
    ),
    "2D patches 512x512": dict(
        kind="2d",
        shape=(3000, 512, 512),
        n_neurons=480,
        gSig=4,
        params={"K": 10, "gSig": (4, 4), "rf": 25, "stride": 10, "n_processes": 2},
    ),
}
QUICK = {
    "2D patches": dict(shape=(500, 128, 128), n_neurons=30),
    "2D patches 3000 frames": dict(shape=(1000, 128, 128), n_neurons=30),
    "2D patches 512x512": dict(shape=(500, 256, 256), n_neurons=120),
    "3D whole volume": dict(
        shape=(200, 8, 64, 64), n_neurons=15, params={"K": 18, "gSig": (4, 4, 2)}
    ),
}


def _child(path: str, params: dict, q) -> None:
    from napari_caiman.engine.cnmf import cnmf
    from napari_caiman.engine.evaluation import evaluate_components
    from napari_caiman.engine.params import CaimanParams

    movie = np.load(path, mmap_mode="r")
    params = CaimanParams.from_dict({**params, "use_cnn": False})
    t0 = time.perf_counter()
    est = cnmf(movie, params)
    wall = time.perf_counter() - t0
    evaluate_components(movie, est, params)
    t_eval = time.perf_counter() - t0 - wall
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # GiB (ru_maxrss in KiB)
    q.put(
        dict(
            wall=wall,
            t_eval=t_eval,
            rss=rss,
            timings=est.timings,
            info=est.info,
            A=est.footprints(),
            C=est.C,
            accepted=np.asarray(est.idx_components),
        )
    )


def run_case(name: str, case: dict, tmp: Path) -> dict:
    from napari_caiman.engine.cnmf import match_components
    from napari_caiman.engine.synthetic import make_movie_2d, make_movie_3d

    make = make_movie_2d if case["kind"] == "2d" else make_movie_3d
    path = tmp / f"{case['kind']}.npy"
    t0 = time.perf_counter()
    truth = make(
        case["shape"],
        n_neurons=case["n_neurons"],
        gSig=case["gSig"],
        seed=0,
        out=path,
        return_flow=False,
        return_truth=False,
    )
    gen = time.perf_counter() - t0
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(str(path), case["params"], q))
    p.start()
    res = q.get()
    p.join()
    m = match_components(res["A"], truth.footprints, res["C"], truth.traces)
    acc = res["accepted"]
    m_acc = match_components(res["A"][acc], truth.footprints, res["C"][acc], truth.traces)
    return dict(
        name=name,
        shape=case["shape"],
        n_neurons=case["n_neurons"],
        gen=gen,
        match=m,
        match_acc=m_acc,
        **res,
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--cases", nargs="+", choices=list(CASES), default=list(CASES), help="cases to run"
    )
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in args.cases:
            case = CASES[name]
            case = dict(case)
            if args.quick:
                case.update(QUICK[name])
            r = run_case(name, case, Path(d))
            m = r["match"]
            print(
                f"{name} {r['shape']}: {r['wall']:.1f} s, peak RSS {r['rss']:.2f} GiB, {m}",
                flush=True,
            )
            print(
                "   stages:",
                {k: round(v, 2) for k, v in r["timings"].items()},
                r["info"],
                flush=True,
            )
            rows.append(r)
    lines = [
        "# Native CNMF benchmark",
        "",
        f"`python bench/bench_cnmf.py{' --quick' if args.quick else ''}`; synthetic movies "
        "(`engine.synthetic`, seed 0, default SNR), memmapped `.npy` input, 2 cores. "
        "F1 and trace correlation against the true neurons (Hungarian matching on footprint "
        "cosine >= 0.5), on **all** components (no evaluation/quality filtering).",
        "",
        "| case | movie (T, [Z,] Y, X) | neurons | found | CNMF s | stages s | "
        "evaluation s | peak RSS GiB | F1 | P | R | median trace corr | accepted | F1 accepted |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["match"]
        st = ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items())
        lines.append(
            f"| {r['name']} | {r['shape']} | {r['n_neurons']} | {m.n_found} | {r['wall']:.1f} | {st} | "
            f"{r['t_eval']:.1f} | {r['rss']:.2f} | {m.f1:.3f} | {m.precision:.3f} | {m.recall:.3f} | "
            f"{m.median_trace_corr:.3f} | {len(r['accepted'])} | {r['match_acc'].f1:.3f} |"
        )
    lines += [
        "",
        "CaImAn 1.12.1 (REFERENCE.md, same kind of machine, includes evaluation): "
        "2D 89 s, F1 0.96, trace corr 0.99; 3D 100 s, F1 0.88.",
        "",
    ]
    out = HERE / "results" / ("cnmf_quick.md" if args.quick else "cnmf.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
