"""Real two-photon data: the Neurofinder crop against its human ROIs and CaImAn.

    python bench/bench_realdata.py [--data ../shared/data]

Runs the headless pipeline (rigid motion correction + CNMF with patches, the
parameters CaImAn used for ``caiman_results/neurofinder_crop_caiman.hdf5``)
on ``neurofinder_crop/movie.tif`` (600 x 256 x 256, ~7 Hz), then scores, with
Neurofinder's rule (centroids closer than 5 px, one-to-one), against the
106 human ROIs:

- our components (all, and the accepted ones when evaluation is available);
- CaImAn 1.12.1's components from its own results file (all, and accepted).

Writes a markdown table to ``bench/results/realdata.md``. 600 frames leave
many annotated cells silent, so absolute F1 is low for every method
(REFERENCE.md: about 0.2 for CaImAn); compare the rows with each other.
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

PARAMS = {"fr": 7, "decay_time": 1.0, "gSig": (5, 5), "K": 10, "rf": 25, "stride": 10, "p": 1, "nb": 2,
          "merge_thr": 0.85, "min_SNR": 2.0, "rval_thr": 0.8, "use_cnn": False, "max_shifts": (6, 6),
          "pw_rigid": False}


def centroids_from_regions(path: Path) -> np.ndarray:
    regions = json.loads(path.read_text())
    return np.array([np.mean(np.asarray(r["coordinates"], float), axis=0) for r in regions])


def centroids_from_footprints(images: np.ndarray) -> np.ndarray:
    """Intensity-weighted centroids (row, col) of (K, Y, X) footprints."""
    if len(images) == 0:
        return np.zeros((0, 2))
    k, h, w = images.shape
    yy, xx = np.mgrid[:h, :w]
    mass = images.reshape(k, -1).sum(1)
    mass[mass == 0] = 1
    cy = (images * yy).reshape(k, -1).sum(1) / mass
    cx = (images * xx).reshape(k, -1).sum(1) / mass
    return np.stack([cy, cx], 1)


def score(found: np.ndarray, truth: np.ndarray, max_dist: float = 5.0) -> dict[str, float]:
    """Neurofinder-style one-to-one centroid matching."""
    if len(found) == 0 or len(truth) == 0:
        return {"n": len(found), "matched": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    d = np.linalg.norm(truth[:, None, :] - found[None, :, :], axis=2)
    r, c = linear_sum_assignment(d)
    m = int((d[r, c] < max_dist).sum())
    p, rc = m / len(found), m / len(truth)
    return {"n": len(found), "matched": m, "precision": p, "recall": rc,
            "f1": 0.0 if m == 0 else 2 * p * rc / (p + rc)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    args = ap.parse_args()
    data = Path(args.data)
    from napari_caiman.cli import run_pipeline
    from napari_caiman.engine.params import CaimanParams
    from napari_caiman.engine.results import load_results

    truth = centroids_from_regions(data / "neurofinder_crop" / "regions.json")
    params = CaimanParams.from_dict(PARAMS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        steps = ["motion", "cnmf"]
        from napari_caiman.engine import pipeline

        if "evaluate" in pipeline.STEPS:
            steps.append("evaluate")
        res = run_pipeline([str(data / "neurofinder_crop" / "movie.tif")], steps=steps,
                           output=Path(tmp) / "r.hdf5", params=params)
        elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    est = res.estimates
    ours = centroids_from_footprints(est.footprints())
    rows.append(("napari-caiman, all components", score(ours, truth), f"{elapsed:.1f} s, peak RSS {peak:.2f} GB"))
    if est.idx_components is not None:
        acc = np.asarray(est.idx_components, int)
        rows.append(("napari-caiman, accepted", score(ours[acc], truth), ""))
    cm = load_results(data / "caiman_results" / "neurofinder_crop_caiman.hdf5").estimates
    theirs = centroids_from_footprints(cm.footprints())
    rows.append(("CaImAn 1.12.1, all components", score(theirs, truth), "from its own results file"))
    rows.append(("CaImAn 1.12.1, accepted", score(theirs[np.asarray(cm.idx_components, int)], truth), ""))
    agree = score(ours, theirs)
    lines = [
        "# Real data: Neurofinder crop (600 x 256 x 256) vs 106 human ROIs",
        "",
        f"Parameters: `{json.dumps(PARAMS)}`. Matching: centroids < 5 px, one-to-one (Hungarian).",
        "",
        "| method | components | matched | precision | recall | F1 | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s, note in rows:
        lines.append(f"| {name} | {s['n']} | {s['matched']} | {s['precision']:.3f} | {s['recall']:.3f} | "
                     f"{s['f1']:.3f} | {note} |")
    lines += ["", f"Our components matched to CaImAn's (all vs all, < 5 px): {agree['matched']} of "
              f"{agree['n']} ours / {len(theirs)} CaImAn's."]
    text = "\n".join(lines) + "\n"
    out = ROOT / "bench" / "results" / "realdata.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
