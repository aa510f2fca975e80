"""The demo: a synthetic movie with known motion, corrected headless or in napari."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

#: The demo movie: 2D, rigid + non-rigid motion, moderate SNR.
DEMO_SHAPE = (600, 256, 256)
DEMO_MOTION = {"rigid_motion": 5.0, "nonrigid_motion": 1.5}
DEMO_PARAMS = {
    "fr": 30,
    "decay_time": 0.4,
    "max_shifts": (8, 8),
    "pw_rigid": True,
    "strides": (48, 48),
    "overlaps": (24, 24),
    "max_deviation_rigid": 3,
    "gSig": (4, 4),
    "K": 10,
    "rf": 25,
    "stride": 10,
    "p": 2,
    "nb": 1,
    "merge_thr": 0.8,
}


def make_demo_movie(shape: tuple[int, int, int] | None = None, seed: int = 0) -> Any:
    """Return the synthetic demo movie (uint16, :data:`DEMO_SHAPE` by default) with its ground truth."""
    from ..engine.synthetic import make_movie_2d

    return make_movie_2d(
        shape or DEMO_SHAPE, n_neurons=60, dtype=np.uint16, seed=seed, **DEMO_MOTION
    )


def _crop(a: np.ndarray, margin: int) -> np.ndarray:
    return a[(slice(None),) + (slice(margin, -margin),) * (a.ndim - 1)]


def correlation_with_truth(movie: np.ndarray, truth: np.ndarray, margin: int) -> float:
    """Compute the mean over frames of each frame's Pearson correlation with the truth's frame.

    Over the central crop (``margin`` pixels cut on each side); NaN pixels are ignored.
    """
    a = _crop(np.asarray(movie, dtype=np.float64), margin).reshape(len(movie), -1)
    b = _crop(np.asarray(truth, dtype=np.float64), margin).reshape(len(truth), -1)
    ok = np.isfinite(a).all(axis=0)
    a, b = a[:, ok], b[:, ok]
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    r = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return float(np.mean(r))


def run_headless_demo(output_dir: str | Path, *, quiet: bool = False) -> str:
    """Generate the demo movie, run every available step headless, return a summary.

    The printable summary includes the accuracy against the known truth.

    Writes ``demo_movie.tif``, ``corrected.tif`` and ``results.hdf5`` in
    ``output_dir`` (created if needed).
    """
    from ..engine.params import CaimanParams
    from ..io.movie import save_movie
    from .api import run_pipeline
    from .report import ProgressPrinter, summarize

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    syn = make_demo_movie()
    movie_path = save_movie(out / "demo_movie.tif", syn.movie)
    t_gen = time.perf_counter() - t0
    params = CaimanParams.from_dict(DEMO_PARAMS)
    t1 = time.perf_counter()
    from ..engine.pipeline import STEPS

    results = run_pipeline(
        [str(movie_path)],
        steps=list(STEPS),
        output=out / "results.hdf5",
        params=params,
        save_movie=out / "corrected.tif",
        progress=ProgressPrinter(quiet=quiet),
    )
    elapsed = time.perf_counter() - t1

    from ..io.movie import open_movie

    corrected = open_movie(out / "corrected.tif")
    true_shift = -syn.shifts  # correction = minus the displacement
    est = np.asarray(results.motion["shifts_rig"])
    # a rigid template may sit a constant offset from the truth's frame of reference
    err = est - true_shift
    err -= err.mean(axis=0)
    margin = int(max(DEMO_PARAMS["max_shifts"])) + 4
    r_raw = correlation_with_truth(syn.movie, syn.clean, margin)
    r_cor = correlation_with_truth(corrected, syn.clean, margin)
    r_best = correlation_with_truth(syn.still, syn.clean, margin)
    lines = [
        f"demo movie: {syn.movie.shape} {syn.movie.dtype}, made in {t_gen:.1f} s -> {movie_path}",
        summarize(results, elapsed),
        f"rigid shift error vs truth: {np.sqrt(np.mean(err**2)):.3f} px RMS",
        f"frame correlation with the motion-free truth: raw {r_raw:.4f}, corrected {r_cor:.4f}, "
        f"perfectly corrected {r_best:.4f} (ratio {r_cor / r_best:.4f})",
        f"outputs: {out / 'results.hdf5'}, {out / 'corrected.tif'}",
    ]
    if results.estimates is not None:
        from ..engine.cnmf import match_components

        est = results.estimates
        m = match_components(est, syn.footprints, true_traces=syn.traces)
        lines.insert(
            -1,
            f"cnmf vs the {len(syn.footprints)} true neurons, all {est.n_components} components: "
            f"F1 {m.f1:.3f} (precision {m.precision:.3f}, recall {m.recall:.3f}), "
            f"median trace correlation {m.median_trace_corr:.3f}",
        )
        acc = results.accepted()
        if acc is not None:
            ma = match_components(
                est.footprints(acc), syn.footprints, found_traces=est.C[acc], true_traces=syn.traces
            )
            lines.insert(
                -1,
                f"accepted by evaluation ({len(acc)}): F1 {ma.f1:.3f} (precision {ma.precision:.3f}, "
                f"recall {ma.recall:.3f})",
            )
    return "\n".join(lines)


#: The step widgets docked by the demo, in pipeline order.
DEMO_WIDGETS = ("Motion correction", "CNMF", "Evaluation / curation")


def open_demo_viewer(shape: tuple[int, int, int] = (300, 256, 256), *, run: bool = True) -> Any:
    """Open napari with the demo movie and the plugin's step widgets docked.

    The docks are tabbed on the right; the event loop starts unless ``run`` is False.
    """
    import napari

    syn = make_demo_movie(shape)
    viewer = napari.Viewer(title="napari-caiman demo")
    viewer.add_image(
        syn.movie,
        name="demo movie",
        contrast_limits=_contrast(syn.movie),
        axis_labels=("t", "y", "x"),  # the slider says t, not -3
    )
    docks = [
        viewer.window.add_plugin_dock_widget("napari-caiman", name, tabify=True)[0]
        for name in DEMO_WIDGETS
    ]
    from qtpy.QtCore import QTimer

    QTimer.singleShot(0, docks[0].raise_)  # start on the first step, once the tabs exist
    if run:
        napari.run()
    return viewer


def _contrast(movie: np.ndarray) -> tuple[float, float]:
    sample = np.asarray(movie[:: max(1, len(movie) // 20)], dtype=np.float32)
    lo, hi = np.percentile(sample, (0.5, 99.8))
    return float(lo), float(hi if hi > lo else lo + 1)
