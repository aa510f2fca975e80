"""Screenshots of accepted contours over the real Neurofinder crop (napari canvas).

    xvfb-run -a -s "-screen 0 1920x1080x24" python bench/realdata_screenshots.py [BEFORE.hdf5] AFTER.hdf5
    xvfb-run -a -s "-screen 0 1920x1080x24" python bench/realdata_screenshots.py --mouse MOUSE.hdf5
    xvfb-run -a -s "-screen 0 1920x1080x24" python bench/realdata_screenshots.py --half2 HALF.hdf5
    xvfb-run -a -s "-screen 0 1920x1080x24" python bench/realdata_screenshots.py --binned3 BIN3.hdf5

Draws, over the mean image of ``shared/data/neurofinder_crop/movie.tif``, the
human ROIs (yellow), the accepted components' contours at 20 % of their
maxima (cyan) and those that issue 14's rule calls junk (red), and writes
``docs/screenshots/realdata_before.png`` / ``realdata_after.png``.  ``--half2``: a run on
frames 300-599 of the crop, over their mean, with the components accepted only by the high
r-value exemption from ``SNR_lowest`` in magenta (``realdata_half2.png``).  ``--mouse``: the
thunder mouse movie, with the components accepted only by the area floor's one-pixel allowance
(``small_floor_px``) in magenta (``realdata_mouse.png``).  ``--binned3``: a run on the crop binned 3x by mean
(``bench_realdata_robustness.py``), over the binned mean with the binned human ROIs
(``realdata_binned3.png``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def contours(img: np.ndarray, level: float) -> list[np.ndarray]:
    from skimage import measure

    return [c for c in measure.find_contours(np.pad(img, 1), level) if len(c) > 3]


def shot(
    results_path: str,
    out: Path,
    title: str,
    movie: str | None = None,
    gSig=(5, 5),
    frames: slice | None = None,
    only_by: tuple[str, str] | None = None,
    binned: int = 1,
) -> None:
    """Contours of the accepted components of ``results_path`` over the mean image of
    ``movie`` (default: the Neurofinder crop, with its human ROIs; ``frames`` of it).

    ``only_by`` (threshold, label): the components accepted only because of that threshold (the
    set with it off) are drawn in magenta.
    """
    import napari
    import tifffile
    from bench_realdata import regions_to_masks

    from napari_caiman.engine.shapes import junk_mask, shape_metrics
    from napari_caiman.io.results_file import load_results

    data = ROOT.parent / "shared" / "data" / "neurofinder_crop"
    mean = tifffile.imread(movie or data / "movie.tif")[frames or slice(None)]
    mean = mean.astype(np.float32).mean(0)
    truth = (
        regions_to_masks(data / "regions.json", mean.shape)
        if movie is None
        else np.zeros((0, *mean.shape))
    )
    if binned > 1:  # the movie and the human ROIs binned as bench_realdata_robustness.py does
        from bench_realdata_robustness import bin_images, bin_masks

        mean, truth = bin_images(mean, binned), bin_masks(truth, binned)
    r = load_results(results_path)
    acc = np.asarray(r.accepted(), int)
    F = r.estimates.footprints(acc)
    junk = junk_mask(shape_metrics(r.estimates.A[:, acc], r.estimates.dims, gSig))
    exempt = np.zeros(acc.size, bool)
    if only_by is not None and r.metrics is not None:  # accepted only by that threshold
        from napari_caiman.engine.evaluation import apply_thresholds
        from napari_caiman.engine.resolve import thresholds

        off = apply_thresholds(r.metrics, **{**thresholds(r.params), only_by[0]: None})[0]
        exempt = ~np.isin(acc, off)
    label = "" if only_by is None else only_by[1]
    v = napari.Viewer(title=title)
    v.add_image(
        mean,
        name="mean",
        colormap="gray",
        contrast_limits=(float(np.percentile(mean, 1)), float(np.percentile(mean, 99.5))),
    )
    for name, polys, color in (
        ("human ROIs", [c - 1 for t in truth for c in contours(t, 0.5)], "yellow"),
        (
            "accepted",
            [
                c - 1
                for f, j, e in zip(F, junk, exempt, strict=True)
                if not j and not e
                for c in contours(f, 0.2 * f.max())
            ],
            "cyan",
        ),
        (
            f"accepted by the {label}",
            [
                c - 1
                for f, e in zip(F, exempt, strict=True)
                if e
                for c in contours(f, 0.2 * f.max())
            ],
            "magenta",
        ),
        (
            "accepted, junk",
            [c - 1 for f, j in zip(F, junk, strict=True) if j for c in contours(f, 0.2 * f.max())],
            "red",
        ),
    ):
        if polys:
            v.add_shapes(
                polys,
                shape_type="polygon",
                edge_color=color,
                face_color="transparent",
                edge_width=0.4,
                name=name,
            )
    v.text_overlay.visible = True
    v.text_overlay.text = (
        f"{title}: {acc.size} accepted, {int(junk.sum())} junk (red)"
        + ("; human ROIs yellow" if len(truth) else "")
        + (f"; {int(exempt.sum())} by the {label} (magenta)" if exempt.any() else "")
    )
    v.text_overlay.color = "white"
    from qtpy.QtWidgets import QApplication

    v.window.resize(1100, 1150)
    for _ in range(20):
        QApplication.instance().processEvents()
    v.reset_view()
    for _ in range(20):
        QApplication.instance().processEvents()
    v.screenshot(str(out), canvas_only=True)
    v.close()


def main() -> None:
    d = ROOT / "docs" / "screenshots"
    if sys.argv[1] == "--mouse":  # --mouse RESULTS: the thunder mouse movie (no ROI truth)
        movie = ROOT.parent / "shared" / "data" / "thunder_mouse_2p" / "thunder_mouse_500x64x64.tif"
        shot(
            sys.argv[2],
            d / "realdata_mouse.png",
            "thunder_mouse_2p",
            str(movie),
            gSig=(2, 2),
            only_by=("small_floor_px", "area floor's one-pixel allowance"),
        )
        return
    if sys.argv[1] == "--half2":  # --half2 RESULTS: a run on frames 300-599 of the crop
        shot(
            sys.argv[2],
            d / "realdata_half2.png",
            "frames 300-599",
            frames=slice(300, 600),
            only_by=("high_rval_thr", "high r-value exemption"),
        )
        return
    if sys.argv[1] == "--binned3":  # --binned3 RESULTS: a run on the crop binned 3x
        g = 5 / 3
        shot(sys.argv[2], d / "realdata_binned3.png", "binned 3x", gSig=(g, g), binned=3)
        return
    if len(sys.argv) > 2:  # BEFORE AFTER, or AFTER alone (the before picture kept)
        shot(sys.argv[1], d / "realdata_before.png", "before (main)")
    shot(sys.argv[-1], d / "realdata_after.png", "after (issue 14)")


if __name__ == "__main__":
    main()
