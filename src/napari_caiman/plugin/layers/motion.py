"""Motion-correction results -> napari layer data tuples (no Qt, no viewer).

Every function takes the results plus the *input* layer's name, scale and
translate (napari order, first axis = time) and returns ``(data, meta,
layer_type)`` tuples, ready for ``napari.layers.Layer.create``. Heavy data
(the corrected movie) is passed through as is, never copied.

Examples
--------
>>> tuples = motion_layers(step.motion, step.summary, "raw", scale=(1, 1, 1))  # doctest: +SKIP
>>> [meta["name"] for _, meta, _ in tuples]                                   # doctest: +SKIP
['raw corrected', 'raw correlation', 'raw mean', 'raw patches']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

LayerDataTuple = tuple[Any, dict[str, Any], str]

#: Axis names of shift columns, CaImAn order (rows, cols, planes).
SHIFT_AXES = ("y", "x", "z")

#: Edge colour of the patch rectangles (visible on gray and magma images).
PATCH_EDGE_COLOR = "#ffd400"


def layer_names(name: str) -> dict[str, str]:
    """Names of the layers made from input layer ``name``."""
    return {
        "corrected": f"{name} corrected",
        "mean": f"{name} mean",
        "correlation": f"{name} correlation",
        "patches": f"{name} patches",
    }


def robust_limits(image: np.ndarray, low: float = 0.5, high: float = 99.8) -> tuple[float, float]:
    """Contrast limits from percentiles of ``image`` (NaNs ignored).

    Returns ``(0, 1)`` for an all-NaN image and widens a flat image slightly,
    so napari always gets ``lo < hi``.
    """
    values = np.asarray(image, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(values, (low, high))
    if not hi > lo:
        hi = lo + max(abs(lo) * 1e-3, 1e-6)
    return (float(lo), float(hi))


def _frame_geometry(
    scale: Sequence[float] | None, translate: Sequence[float] | None, ndim: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Scale/translate of the movie (``ndim`` axes incl. time), defaults filled in."""
    scale = tuple(float(s) for s in scale) if scale is not None else (1.0,) * ndim
    translate = tuple(float(t) for t in translate) if translate is not None else (0.0,) * ndim
    return scale[-ndim:], translate[-ndim:]


def corrected_layer(
    motion: Any,
    summary: Any,
    name: str,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
) -> LayerDataTuple:
    """Return the corrected movie as an Image, same geometry as the input.

    Contrast limits come from percentiles of the mean image (reading the
    whole movie for them would be slow and, for a memmap, would load it).
    """
    data = motion.corrected
    scale, translate = _frame_geometry(scale, translate, data.ndim)
    meta = {
        "name": layer_names(name)["corrected"],
        "scale": scale,
        "translate": translate,
        "contrast_limits": robust_limits(summary.mean),
        "colormap": "gray",
        "metadata": {"napari_caiman": {"kind": "motion corrected", "source": name}},
    }
    return (data, meta, "image")


def summary_layers(
    summary: Any,
    name: str,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
) -> list[LayerDataTuple]:
    """Local-correlation (magma) and mean (gray) images of the corrected movie.

    The mean comes last so that it lies right under the patch quilt.

    Both are frame-shaped, so they carry the movie's spatial scale/translate
    only and napari shows them on every frame. They start hidden: the
    corrected movie stays in view; the user switches them on.
    """
    names = layer_names(name)
    frame_ndim = np.ndim(summary.mean)
    scale, translate = _frame_geometry(scale, translate, frame_ndim + 1)
    common = {
        "scale": scale[1:],
        "translate": translate[1:],
        "visible": False,
        "metadata": {"napari_caiman": {"kind": "summary", "source": name}},
    }
    out: list[LayerDataTuple] = []
    if getattr(summary, "corr", None) is not None:  # None when not computed
        corr = np.asarray(summary.corr)
        meta = {
            "name": names["correlation"],
            "contrast_limits": robust_limits(corr, 1.0, 99.9),
            "colormap": "magma",
            **common,
        }
        out.append((corr, meta, "image"))
    meta = {
        "name": names["mean"],
        "contrast_limits": robust_limits(summary.mean),
        "colormap": "gray",
        **common,
    }
    out.append((summary.mean, meta, "image"))
    return out


def patch_rectangles(patch_bounds: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Rectangles (y/x corners) of the pw-rigid patches.

    Parameters
    ----------
    patch_bounds : (n_patches, n_axes, 2) int array
        ``[start, stop)`` per axis, array order ((z,) y, x).

    Returns
    -------
    rectangles : list of (4, 2) float arrays
        Corners in (y, x) pixel coordinates; a patch covering pixels
        ``start..stop-1`` spans ``start - 0.5`` to ``stop - 0.5``. For 3D
        patches each distinct y/x footprint appears once (it is drawn on
        every plane).
    patch_index : (n_rectangles,) int array
        Index into ``patch_bounds`` of the first patch with that footprint.
    """
    bounds = np.asarray(patch_bounds)
    if bounds.ndim != 3 or bounds.shape[2] != 2 or bounds.shape[1] < 2:
        raise ValueError(f"patch_bounds must be (n_patches, n_axes, 2), got shape {bounds.shape}")
    yx = bounds[:, -2:, :].reshape(len(bounds), 4)
    _, first = np.unique(yx, axis=0, return_index=True)
    first = np.sort(first)
    rects = []
    for i in first:
        (y0, y1), (x0, x1) = bounds[i, -2:, :].astype(float) - 0.5
        rects.append(np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]]))
    return rects, first.astype(int)


def patch_layer(
    motion: Any,
    name: str,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
) -> LayerDataTuple | None:
    """Return the pw-rigid patch grid ("quilt") as a Shapes layer, or None for rigid.

    One rectangle per patch (per distinct y/x footprint for 3D), yellow edges,
    transparent faces. Features: ``patch`` (index into ``motion.patch_bounds``)
    and the patch's median shift and its spread over time (pixels, y and x).
    """
    if getattr(motion, "patch_bounds", None) is None:
        return None
    rects, index = patch_rectangles(motion.patch_bounds)
    frame_ndim = np.asarray(motion.patch_bounds).shape[1]
    scale, translate = _frame_geometry(scale, translate, frame_ndim + 1)
    features: dict[str, Any] = {"patch": index}
    els = getattr(motion, "shifts_els", None)
    if els is not None:
        els = np.asarray(els)[:, index, :]  # (T, n_rect, n_axes) CaImAn order
        for k, axis in enumerate(SHIFT_AXES[: els.shape[2]]):
            features[f"median_shift_{axis}"] = np.median(els[:, :, k], axis=0)
            features[f"shift_spread_{axis}"] = np.ptp(els[:, :, k], axis=0)
    meta = {
        "name": layer_names(name)["patches"],
        "shape_type": "rectangle",
        "edge_color": PATCH_EDGE_COLOR,
        "face_color": "transparent",
        "edge_width": 1.0,
        "scale": scale[-2:],
        "translate": translate[-2:],
        "features": features,
        "opacity": 0.8,
    }
    return (rects, meta, "shapes")


def motion_layers(
    motion: Any,
    summary: Any,
    name: str,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
) -> list[LayerDataTuple]:
    """All layers for one motion-correction result, bottom to top.

    Corrected movie, correlation, mean and (pw-rigid only) patches.
    """
    out = [corrected_layer(motion, summary, name, scale, translate)]
    out += summary_layers(summary, name, scale, translate)
    patches = patch_layer(motion, name, scale, translate)
    if patches is not None:
        out.append(patches)
    return out


def shift_series(motion: Any) -> dict[str, Any]:
    """Return what the shifts plot shows, as plain arrays.

    Returns
    -------
    dict with
        ``rigid``: {axis: (T,) shifts in pixels} (CaImAn order y, x[, z]);
        ``spread``: {axis: ((T,) min, (T,) max) over patches} (pw-rigid only);
        ``corr_raw`` / ``corr_corrected``: (T,) correlation with the template
        (absent when not computed); ``crispness_raw`` /
        ``crispness_corrected``: floats or None.
    """
    rig = np.asarray(motion.shifts_rig)
    axes = SHIFT_AXES[: rig.shape[1]]
    series: dict[str, Any] = {"rigid": {a: rig[:, k] for k, a in enumerate(axes)}, "spread": {}}
    els = getattr(motion, "shifts_els", None)
    if els is not None:
        els = np.asarray(els)
        series["spread"] = {
            a: (els[:, :, k].min(axis=1), els[:, :, k].max(axis=1)) for k, a in enumerate(axes)
        }
    metrics = getattr(motion, "metrics", None) or {}
    for key in ("corr_raw", "corr_corrected"):
        if metrics.get(key) is not None:
            series[key] = np.asarray(metrics[key])
    for key in ("crispness_raw", "crispness_corrected"):
        value = metrics.get(key)
        series[key] = None if value is None else float(value)
    return series
