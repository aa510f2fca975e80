"""Evaluation variants on cached CNMF results: every robustness piece, the synthetic cases, the demo.

    python bench/bench_realdata_variants.py --cache DIR build      # run the pipelines once (minutes)
    python bench/bench_realdata_variants.py --cache DIR score [--set name=value ...] [--compute name=value ...]

``build`` runs motion + CNMF + evaluation on each piece of
``bench_realdata_robustness.py`` (whole crop, four quadrants, two halves in
time, gSig 4 / 6), the synthetic 2D case of ``bench_cnmf.py`` (seed 0), the
3D case and the demo movie, and keeps the estimates and the corrected movie in
``DIR``.  ``score`` recomputes the metrics (``--compute``: keyword arguments of
:func:`napari_caiman.engine.evaluation.compute_metrics`) and thresholds
(``--set``: parameters, e.g. ``rval_thr=0.7``) on every cached piece and prints
one line per piece: accepted, matched, F1 and the ratio to CaImAn (real
pieces), accepted F1 against the ground truth (synthetic).  Evaluation
changes are measured in seconds instead of re-running CNMF.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_realdata import PARAMS, centroids, parse_sets, regions_to_masks  # noqa: E402
from bench_realdata_robustness import _caiman, _inside, _score, _score_images  # noqa: E402


def _real_pieces(data: Path):
    import tifffile

    movie = tifffile.imread(data / "neurofinder_crop" / "movie.tif")
    truth = regions_to_masks(data / "neurofinder_crop" / "regions.json", movie.shape[1:])
    cm = _caiman(data)
    tc, cc = centroids(truth), centroids(cm)
    yield "crop", movie, truth, cm, PARAMS
    for qy in (0, 1):
        for qx in (0, 1):
            sy, sx = slice(128 * qy, 128 * qy + 128), slice(128 * qx, 128 * qx + 128)
            yield (
                f"q{qy}{qx}",
                movie[:, sy, sx],
                truth[_inside(tc, sy, sx)][:, sy, sx],
                cm[_inside(cc, sy, sx)][:, sy, sx],
                PARAMS,
            )
    for lo, hi in ((0, 300), (300, 600)):
        yield f"t{lo}", movie[lo:hi], truth, cm, PARAMS
    for g in (4, 6):
        yield f"g{g}", movie, truth, cm, {**PARAMS, "gSig": (g, g)}


def build(cache: Path, data: Path, only: set[str] | None) -> None:
    import tifffile

    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, movie, truth, cm, params in _real_pieces(data):
            if only and name not in only:
                continue
            path = tmp / f"{name}.tif"
            tifffile.imwrite(path, movie)
            t0 = time.perf_counter()
            from napari_caiman.app.api import run_pipeline
            from napari_caiman.engine.params import CaimanParams

            res = run_pipeline(
                [str(path)],
                steps=["motion", "cnmf", "evaluate"],
                output=tmp / "r.hdf5",
                params=CaimanParams.from_dict(params),
                save_movie=cache / f"{name}.npy",
            )
            el = time.perf_counter() - t0
            with open(cache / f"{name}.pkl", "wb") as f:
                pickle.dump(
                    {
                        "est": res.estimates,
                        "params": params,
                        "truth": truth,
                        "ref": cm,
                        "real": True,
                        "accepted": np.asarray(res.accepted(), int),
                        "time": el,
                    },
                    f,
                )
            print(name, f"{el:.0f} s", flush=True)
        from bench_realdata import FISH, MOUSE

        for name, sub, params in (
            ("mouse", "thunder_mouse_2p/thunder_mouse_500x64x64.tif", MOUSE),
            ("fish", "thunder_fish_3d/thunder_fish_240x2x76x87.tif", FISH),
        ):
            if only and name not in only:
                continue
            from napari_caiman.app.api import run_pipeline
            from napari_caiman.engine.params import CaimanParams

            res = run_pipeline(
                [str(data / sub)],
                steps=["motion", "cnmf", "evaluate"],
                output=tmp / "r.hdf5",
                params=CaimanParams.from_dict(params),
                save_movie=cache / f"{name}.npy",
            )
            with open(cache / f"{name}.pkl", "wb") as f:
                pickle.dump(
                    {
                        "est": res.estimates,
                        "params": params,
                        "truth": None,
                        "real": True,
                        "accepted": np.asarray(res.accepted(), int),
                        "time": 0.0,
                    },
                    f,
                )
            print(name, flush=True)
        for name in ("syn2d", "syn3d", "demo"):
            if only and name not in only:
                continue
            t0 = time.perf_counter()
            if name == "demo":
                from napari_caiman.app.demo import DEMO_PARAMS, make_demo_movie

                syn = make_demo_movie()
                p = tmp / "demo.tif"
                tifffile.imwrite(p, syn.movie)
                from napari_caiman.app.api import run_pipeline
                from napari_caiman.engine.params import CaimanParams
                from napari_caiman.engine.pipeline import STEPS

                res = run_pipeline(
                    [str(p)],
                    steps=list(STEPS),
                    output=tmp / "r.hdf5",
                    params=CaimanParams.from_dict(DEMO_PARAMS),
                    save_movie=cache / "demo.npy",
                )
                est, params, acc = res.estimates, DEMO_PARAMS, np.asarray(res.accepted(), int)
                fp, tr = syn.footprints, syn.traces
            else:
                from bench_cnmf import CASES

                from napari_caiman.engine.cnmf import cnmf
                from napari_caiman.engine.evaluation import evaluate_components
                from napari_caiman.engine.params import CaimanParams
                from napari_caiman.engine.synthetic import make_movie_2d, make_movie_3d

                case = CASES["2D patches" if name == "syn2d" else "3D whole volume"]
                make = make_movie_2d if case["kind"] == "2d" else make_movie_3d
                truth = make(
                    case["shape"],
                    n_neurons=case["n_neurons"],
                    gSig=case["gSig"],
                    seed=0,
                    out=cache / f"{name}.npy",
                    return_flow=False,
                    return_truth=False,
                )
                movie = np.load(cache / f"{name}.npy", mmap_mode="r")
                params = {**case["params"], "use_cnn": False}
                est = cnmf(movie, CaimanParams.from_dict(params))
                evaluate_components(movie, est, CaimanParams.from_dict(params))
                acc = np.asarray(est.idx_components, int)
                fp, tr = truth.footprints, truth.traces
            el = time.perf_counter() - t0
            with open(cache / f"{name}.pkl", "wb") as f:
                pickle.dump(
                    {
                        "est": est,
                        "params": params,
                        "truth": fp,
                        "traces": tr,
                        "real": False,
                        "accepted": acc,
                        "time": el,
                    },
                    f,
                )
            print(name, f"{el:.0f} s", flush=True)


def score(
    cache: Path,
    sets: dict,
    compute: dict,
    only: set[str] | None,
    quiet: bool = False,
    thr: dict | None = None,
) -> dict:
    from napari_caiman.engine.border import movie_for_cnmf
    from napari_caiman.engine.cnmf import match_components
    from napari_caiman.engine.evaluation import (
        apply_thresholds,
        compute_metrics,
        thresholds_from_params,
    )
    from napari_caiman.engine.params import CaimanParams

    out = {}
    for pkl in sorted(cache.glob("*.pkl")):
        name = pkl.stem
        if only and name not in only:
            continue
        d = pickle.loads(pkl.read_bytes())
        est = d["est"]
        params = CaimanParams.from_dict({**d["params"], "use_cnn": False, **sets})
        movie = movie_for_cnmf(np.load(cache / f"{name}.npy", mmap_mode="r"))
        m = compute_metrics(movie, est, params, **compute)
        acc, _ = apply_thresholds(m, **{**thresholds_from_params(params), **(thr or {})})
        if d["real"] and d["truth"] is None:  # no ROI truth: accepted and junk only
            from bench_realdata import score_set

            o = score_set(est.footprints(acc), est.A[:, acc], est.dims, d["params"]["gSig"], None)
            out[name] = float(acc.size)
            line = (
                f"{name:6s} acc {acc.size:4d} of {est.A.shape[1]} junk {o['junk']} "
                f"(cached run: {d['accepted'].size})"
            )
        elif d["real"]:
            o = _score(est, acc, d["truth"], d["params"]["gSig"])
            r = _score_images(d["ref"], d["truth"], d["params"]["gSig"])
            ratio = o["f1"] / r["f1"] if r["f1"] else float("inf")
            out[name] = ratio
            line = (
                f"{name:6s} acc {o['n']:4d} matched {o['matched']:3d} F1 {o['f1']:.3f} junk {o['junk']} "
                f"ratio {ratio:.2f}x (cached run: {d['accepted'].size} accepted)"
            )
        else:
            ma = match_components(est.footprints(acc), d["truth"], est.C[acc], d["traces"])
            out[name] = ma.f1
            line = (
                f"{name:6s} acc {acc.size:4d} of {est.A.shape[1]} F1 {ma.f1:.3f} P {ma.precision:.3f} "
                f"R {ma.recall:.3f} (cached run: {d['accepted'].size} accepted)"
            )
        if not quiet:
            print(line, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--cache", required=True)
    ap.add_argument("--only", action="append")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--compute", action="append", default=[])
    ap.add_argument(
        "--thr", action="append", default=[], help="apply_thresholds keyword name=value"
    )
    ap.add_argument("what", choices=("build", "score"))
    a = ap.parse_args()
    only = set(a.only) if a.only else None
    if a.what == "build":
        build(Path(a.cache), Path(a.data), only)
    else:
        out = score(
            Path(a.cache), parse_sets(a.set), parse_sets(a.compute), only, thr=parse_sets(a.thr)
        )
        print("summary", " ".join(f"{k} {v:.3f}" for k, v in out.items()))


if __name__ == "__main__":
    main()
