"""How fast CNMF results become napari layers.

    python bench/bench_layers.py              # 5,000 components, 512x512 and 3D 16x256x256
    xvfb-run -a python bench/bench_layers.py  # also times adding them to a real viewer
    python bench/bench_layers.py --no-viewer  # no viewer

Estimates are built directly from random Gaussian footprints (no CNMF run):
``A`` holds each footprint cut at 10 % of its peak, as CNMF's spatial
update does (CaImAn's ``maxthr=0.1``): ~200 pixels per component in 2D
(gSig 4), ~1,000 over ~9 planes in 3D (gSig 4, 4, 2), ``C`` is random. Columns:

- data: :func:`napari_caiman.plugin.layers.cnmf.cnmf_layer_data` (contours,
  labels image, features table, lazy movies), and its parts;
- napari Shapes / others: ``Layer.create`` of the contours and of the other
  layers (napari's own cost; the contours' triangulation dominates it and is
  ~7x faster with a compiled backend, ``pip install bermuda``);
- add to viewer: ``viewer.add_layer`` for every tuple, plus one redraw
  (``processEvents``), i.e. what the user waits for after a run.

Writes ``bench/results/layers.md`` (its bermuda section comes from a second
run, with bermuda installed, using ``--out``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from napari_caiman.engine.cnmf.estimates import Estimates, caiman_permutation
from napari_caiman.plugin.layers.cnmf import (
    cnmf_layer_data,
    contours,
    features_table,
    label_colors,
    labels_image,
)

HERE = Path(__file__).resolve().parent


@dataclass
class _Summary:
    mean: np.ndarray
    max: np.ndarray
    std: np.ndarray
    corr: np.ndarray


@dataclass
class _Result:
    estimates: Estimates
    summary: _Summary


def random_estimates(
    dims: tuple[int, ...],
    K: int,
    T: int = 1000,
    sig=(4.0, 4.0),
    seed: int = 0,
    cut: float = 0.1,
) -> Estimates:
    """``K`` random Gaussian footprints (sparse, cut at ``cut`` of the peak) on a
    ``dims`` (array order) field of view, as Estimates."""
    rng = np.random.default_rng(seed)
    nd = len(dims)
    sig = np.asarray(sig, float)[-nd:]
    radius = np.ceil(3 * sig).astype(int)
    offsets = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in radius], indexing="ij"), -1)
    offsets = offsets.reshape(-1, nd)
    rows, cols, vals = [], [], []
    centres = rng.uniform(0, 1, (K, nd)) * (np.asarray(dims) - 1)
    perm_inv = np.argsort(caiman_permutation(dims))  # C-order pixel -> CaImAn pixel
    for k in range(K):
        scale = sig * rng.uniform(0.8, 1.25, nd)
        pts = np.round(centres[k]).astype(int) + offsets
        ok = np.all((pts >= 0) & (pts < np.asarray(dims)), axis=1)
        pts = pts[ok]
        v = np.exp(-0.5 * (((pts - centres[k]) / scale) ** 2).sum(1))
        keep = v > cut
        c_index = np.ravel_multi_index(tuple(pts[keep].T), dims)
        rows.append(perm_inv[c_index])
        cols.append(np.full(keep.sum(), k))
        vals.append(v[keep])
    P = int(np.prod(dims))
    A = sparse.csc_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(P, K),
    )
    C = rng.exponential(1.0, (K, T)).astype(np.float32)
    z = np.zeros((K, T), np.float32)
    return Estimates(
        A=A,
        C=C,
        S=z,
        YrA=z,
        b=np.ones((P, 1), np.float32),
        f=np.ones((1, T), np.float32),
        sn=np.ones(P, np.float32),
        g=np.zeros((K, 2)),
        bl=np.zeros(K),
        c1=np.zeros(K),
        neurons_sn=np.ones(K),
        lam=np.zeros(K),
        dims=tuple(dims),
    )


def _time(fn, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _backend() -> str:
    """napari's Shapes triangulation backend in use (compiled ones are ~10x faster)."""
    import importlib.util

    for module in ("bermuda", "PartSegCore_compiled_backend"):
        if importlib.util.find_spec(module) is not None:
            return module
    return "python (vispy)"


def _warm_up() -> None:
    """Pay napari's one-time costs (unit registry, numba colormap compile,
    first triangulation) before timing, as a session that opened a movie has."""
    from napari.layers import Image, Labels, Shapes

    Image(np.zeros((4, 8, 8), np.float32))
    Labels(np.arange(64, dtype=np.int32).reshape(8, 8), colormap=label_colors())
    Shapes([np.array([[0, 0], [0, 3], [3, 3], [1, 1], [3, 0.0]])], shape_type="polygon")


def _create_times(tuples) -> dict[str, float]:
    """Seconds to build each napari layer (no viewer), by layer type."""
    from napari.layers import Layer

    out: dict[str, float] = {}
    for data, meta, kind in tuples:
        t0 = time.perf_counter()
        Layer.create(data, meta, kind)
        out[kind] = out.get(kind, 0.0) + time.perf_counter() - t0
    return out


def _viewer_time(tuples) -> float | None:
    """Seconds to add all layers to a shown viewer and draw once."""
    try:
        import napari
        from napari.layers import Layer
        from qtpy.QtWidgets import QApplication
    except ImportError:
        return None
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    app.processEvents()
    t0 = time.perf_counter()
    for data, meta, kind in tuples:
        viewer.add_layer(Layer.create(data, meta, kind))
    app.processEvents()
    elapsed = time.perf_counter() - t0
    viewer.close()
    app.processEvents()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-K", type=int, default=5000, help="components (default 5000)")
    ap.add_argument("--no-viewer", action="store_true", help="skip the napari viewer timing")
    ap.add_argument("--out", default=str(HERE / "results" / "layers.md"), help="result table")
    args = ap.parse_args(argv)
    use_viewer = not args.no_viewer and bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    _warm_up()
    cases = [
        ("2D 512x512", (512, 512), (4.0, 4.0)),
        ("3D 16x256x256", (16, 256, 256), (4.0, 4.0, 2.0)),
    ]
    rows = []
    for label, dims, sig in cases:
        est = random_estimates(dims, args.K, T=500, sig=sig)
        summary = _Summary(*(np.random.default_rng(1).random(dims, np.float32) for _ in range(4)))
        result = _Result(est, summary)
        t_contours = _time(lambda est=est: contours(est))
        t_labels = _time(lambda est=est: labels_image(est))
        t_features = _time(lambda est=est: features_table(est))
        t_all = _time(lambda result=result: cnmf_layer_data(result, "movie"))
        tuples = cnmf_layer_data(result, "movie")
        frame = (250,) if len(dims) == 2 else (250, dims[0] // 2)  # what napari asks for
        t_frame = _time(lambda t=tuples, f=frame: np.asarray(t[0][0][f]), repeat=5)
        created = _create_times(tuples)
        t_viewer = _viewer_time(tuples) if use_viewer else None
        rows.append(
            {
                "label": label,
                "nnz": est.A.nnz,
                "polygons": len(tuples[-1][0]),
                "contours": t_contours,
                "labels": t_labels,
                "features": t_features,
                "all": t_all,
                "frame": t_frame,
                "create_shapes": created.get("shapes", 0.0),
                "create_other": sum(v for k, v in created.items() if k != "shapes"),
                "viewer": t_viewer,
            }
        )
        print(rows[-1], flush=True)

    head = (
        "| field of view | nnz(A) | polygons | contours | labels | features "
        "| **cnmf_layer_data** | one denoised frame | napari Shapes | napari others "
        "| **add to viewer + draw** |"
    )
    lines = [
        "# Layers from CNMF results (`bench/bench_layers.py`)",
        "",
        f"{args.K:,} components; {platform.machine()}, {os.cpu_count()} cores (shared with "
        f"other jobs), python {platform.python_version()}, numpy {np.__version__}, napari "
        f"Shapes triangulation: {_backend()}.",
        "Seconds, best of 3 (denoised frame: ms, best of 5, one plane for 3D); napari "
        "columns: `Layer.create` after a warm-up; 'add to viewer' is one run including the "
        "first redraw (n/a without a display).",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    for r in rows:
        viewer = "n/a" if r["viewer"] is None else f"{r['viewer']:.2f}"
        lines.append(
            f"| {r['label']} | {r['nnz']:,} | {r['polygons']:,} | {r['contours']:.3f} "
            f"| {r['labels']:.3f} | {r['features']:.3f} | **{r['all']:.3f}** "
            f"| {r['frame'] * 1e3:.1f} ms | {r['create_shapes']:.2f} | {r['create_other']:.2f} "
            f"| **{viewer}** |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
