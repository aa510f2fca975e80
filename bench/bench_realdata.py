"""Real two-photon data: the Neurofinder crop against its human ROIs and CaImAn.

    python bench/bench_realdata.py [--data ../shared/data] [--set name=value ...]
                                   [--save out.hdf5] [--no-write]

Runs the headless pipeline (rigid motion correction + CNMF with patches +
evaluation, the parameters CaImAn used for
``caiman_results/neurofinder_crop_caiman.hdf5``) on
``neurofinder_crop/movie.tif`` (600 x 256 x 256, ~7 Hz) and scores against
the 106 human ROIs, the way issue 14 measures it:

- matching by footprint overlap: each footprint cut at 10 % of its max,
  cosine similarity >= 0.5, one-to-one (Hungarian), precision / recall / F1
  (:func:`napari_caiman.engine.shapes.match_footprints`);
- junk: the footprint cut at 20 % of its max has more than one piece holding
  >= 10 % of its pixels, or solidity < 0.6, or area > 4 discs of radius
  2 gSig (:func:`napari_caiman.engine.shapes.junk_mask`);
- Neurofinder's centroid rule (< 5 px, one-to-one) as a second opinion.

CaImAn 1.12.1's own results file is scored the same way.  Then the two other
movies of ``shared/data`` (thunder_mouse_2p, thunder_fish_3d: no ROI truth)
are run for the junk fraction.  Writes ``bench/results/realdata.md``.
600 frames leave many annotated cells silent, so absolute F1 is low for every
method; compare the rows with each other.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PARAMS = {
    "fr": 7,
    "decay_time": 1.0,
    "gSig": (5, 5),
    "K": 10,
    "rf": 25,
    "stride": 10,
    "p": 1,
    "nb": 2,
    "merge_thr": 0.85,
    "min_SNR": 2.0,
    "rval_thr": 0.8,
    "use_cnn": False,
    "max_shifts": (6, 6),
    "pw_rigid": False,
}
MOUSE = {"fr": 15, "max_shifts": (4, 4), "gSig": (2, 2), "K": 15, "use_cnn": False}
FISH = {
    "fr": 2,
    "decay_time": 1.5,
    "max_shifts": (4, 4, 0),
    "gSig": (2, 2, 0.5),
    "K": 30,
    "p": 1,
    "use_cnn": False,
}


def regions_to_masks(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Neurofinder regions.json -> (N, Y, X) binary masks."""
    regions = json.loads(path.read_text())
    masks = np.zeros((len(regions), *shape), np.float32)
    for i, r in enumerate(regions):
        c = np.asarray(r["coordinates"], int)
        ok = (c[:, 0] >= 0) & (c[:, 0] < shape[0]) & (c[:, 1] >= 0) & (c[:, 1] < shape[1])
        masks[i, c[ok, 0], c[ok, 1]] = 1
    return masks


def centroids(images: np.ndarray) -> np.ndarray:
    """Intensity-weighted centroids (row, col) of (K, Y, X) images."""
    if len(images) == 0:
        return np.zeros((0, 2))
    k, h, w = images.shape
    yy, xx = np.mgrid[:h, :w]
    mass = images.reshape(k, -1).sum(1)
    mass[mass == 0] = 1
    return np.stack(
        [(images * yy).reshape(k, -1).sum(1) / mass, (images * xx).reshape(k, -1).sum(1) / mass], 1
    )


def centroid_f1(found: np.ndarray, truth: np.ndarray, max_dist: float = 5.0) -> float:
    if len(found) == 0 or len(truth) == 0:
        return 0.0
    d = np.linalg.norm(truth[:, None, :] - found[None, :, :], axis=2)
    r, c = linear_sum_assignment(d)
    m = int((d[r, c] < max_dist).sum())
    return 0.0 if m == 0 else 2 * m / (len(found) + len(truth))


def score_set(images: np.ndarray, A, dims, gSig, truth_masks: np.ndarray | None) -> dict:
    from napari_caiman.engine.shapes import junk_mask, match_footprints, shape_metrics

    sm = shape_metrics(A, dims, gSig)
    junk = junk_mask(sm)
    out = {
        "n": int(junk.size),
        "junk": int(junk.sum()),
        "junk_frac": float(junk.mean()) if junk.size else 0.0,
        "median_solidity": float(np.median(sm.solidity)) if junk.size else float("nan"),
    }
    if truth_masks is not None:
        m = match_footprints(images, truth_masks)
        out.update({k: m[k] for k in ("matched", "precision", "recall", "f1")})
        out["centroid_f1"] = centroid_f1(centroids(images), centroids(truth_masks))
    return out


def run_movie(path: Path, params_dict: dict, save: Path | None = None):
    from napari_caiman.app.api import run_pipeline
    from napari_caiman.engine.params import CaimanParams

    params = CaimanParams.from_dict(params_dict)
    with tempfile.TemporaryDirectory() as tmp:
        out = save if save is not None else Path(tmp) / "r.hdf5"
        t0 = time.perf_counter()
        res = run_pipeline(
            [str(path)], steps=["motion", "cnmf", "evaluate"], output=out, params=params
        )
        elapsed = time.perf_counter() - t0
    return res, elapsed


def parse_sets(items: list[str]) -> dict:
    import ast

    out = {}
    for it in items:
        k, _, v = it.partition("=")
        try:
            out[k.strip()] = ast.literal_eval(v.strip())
        except (ValueError, SyntaxError):
            out[k.strip()] = v.strip()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument(
        "--set", action="append", default=[], help="extra parameter name=value (all movies)"
    )
    ap.add_argument("--save", default=None, help="keep the Neurofinder results file here")
    ap.add_argument(
        "--no-write", action="store_true", help="print only, do not write bench/results"
    )
    ap.add_argument("--crop-only", action="store_true", help="skip the thunder movies")
    args = ap.parse_args()
    data = Path(args.data)
    from napari_caiman.io.results_file import load_results

    extra = parse_sets(args.set)
    truth = regions_to_masks(data / "neurofinder_crop" / "regions.json", (256, 256))
    params = {**PARAMS, **extra}
    res, elapsed = run_movie(
        data / "neurofinder_crop" / "movie.tif", params, Path(args.save) if args.save else None
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    est = res.estimates
    gsig = params["gSig"]
    imgs = est.footprints()
    acc = np.asarray(res.accepted(), int)
    rows = [
        (
            "napari-caiman, all components",
            score_set(imgs, est.A, est.dims, gsig, truth),
            f"{elapsed:.1f} s whole command, peak RSS {peak:.2f} GB",
        ),
        ("napari-caiman, accepted", score_set(imgs[acc], est.A[:, acc], est.dims, gsig, truth), ""),
    ]
    cm = load_results(data / "caiman_results" / "neurofinder_crop_caiman.hdf5").estimates
    cimgs = cm.footprints()
    cacc = np.asarray(cm.idx_components, int)
    rows.append(
        (
            "CaImAn 1.12.1, all components",
            score_set(cimgs, cm.A, cm.dims, gsig, truth),
            "from its own results file",
        )
    )
    rows.append(
        ("CaImAn 1.12.1, accepted", score_set(cimgs[cacc], cm.A[:, cacc], cm.dims, gsig, truth), "")
    )
    ratio = rows[1][1]["f1"] / max(rows[3][1]["f1"], 1e-9)
    lines = [
        "# Real data: Neurofinder crop (600 x 256 x 256) vs 106 human ROIs",
        "",
        f"Parameters: `{json.dumps(params)}`.",
        "Matching (issue 14): footprints cut at 10 % of their max, cosine similarity >= 0.5, one-to-one "
        "(Hungarian). Junk: cut at 20 % of max, more than one piece holding >= 10 % of its pixels, or "
        "solidity < 0.6, or area > 4 discs of radius 2 gSig. `centroid F1`: Neurofinder's rule "
        "(centroids < 5 px). Produced by `python bench/bench_realdata.py`; timings on a shared 2-core "
        "machine (noisy).",
        "",
        "| method | components | matched | precision | recall | F1 | centroid F1 | junk | median solidity | notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s, note in rows:
        lines.append(
            f"| {name} | {s['n']} | {s['matched']} | {s['precision']:.3f} | {s['recall']:.3f} | "
            f"{s['f1']:.3f} | {s['centroid_f1']:.3f} | {s['junk']} ({100 * s['junk_frac']:.0f} %) | "
            f"{s['median_solidity']:.2f} | {note} |"
        )
    lines += ["", f"Accepted-set F1 ratio ours / CaImAn: **{ratio:.2f}x**."]
    anat = getattr(est, "info", {}) or {}
    if "n_anatomy" in anat:
        lines.append(f"Components from anatomical seeds: {anat['n_anatomy']} of {est.A.shape[1]}.")
    if not args.crop_only:
        lines += [
            "",
            "## Other movies (no ROI truth): junk fraction of the accepted components",
            "",
            "| movie | parameters | components | accepted | junk (accepted) | median solidity | time |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, path, p in (
            (
                "thunder_mouse_2p 500x64x64",
                data / "thunder_mouse_2p" / "thunder_mouse_500x64x64.tif",
                MOUSE,
            ),
            (
                "thunder_fish_3d 240x2x76x87",
                data / "thunder_fish_3d" / "thunder_fish_240x2x76x87.tif",
                FISH,
            ),
        ):
            p = {**p, **extra}
            r, el = run_movie(path, p)
            e = r.estimates
            a = np.asarray(r.accepted(), int)
            s = score_set(e.footprints(a), e.A[:, a], e.dims, p["gSig"], None)
            lines.append(
                f"| {name} | `{json.dumps(p)}` | {e.A.shape[1]} | {a.size} | {s['junk']} "
                f"({100 * s['junk_frac']:.0f} %) | {s['median_solidity']:.2f} | {el:.1f} s |"
            )
    text = "\n".join(lines) + "\n"
    if not args.no_write:
        out = ROOT / "bench" / "results" / "realdata.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        old = out.read_text() if out.exists() else ""
        cut = old.find("\n## Variants")
        out.write_text(text + (old[cut:] if cut >= 0 else ""))  # the hand-kept variants table stays
    print(text)


if __name__ == "__main__":
    main()
