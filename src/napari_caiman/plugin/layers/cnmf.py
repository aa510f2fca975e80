"""CNMF results -> napari layer data tuples (no Qt, no viewer).

Everything here works on the sparse footprint matrix ``A`` (pixels x K,
CaImAn pixel order) directly: no dense K x pixels array is ever made, so the
layer data of 5,000 2D components takes ~0.5 s (``bench/bench_layers.py``), made
in the step's worker.

* :func:`labels_image` — each pixel labelled with its dominant component;
* :func:`features_table` — one row per component (size, centroid, metrics);
* :class:`ReconstructedMovie` / :class:`ResidualMovie` — lazy ``A C + b f``
  and ``Y - A C - b f`` computing only the frames napari asks for;
* :func:`cnmf_layer_data` — all of the above, and the contours as one RGBA
  image of outlines (:mod:`.outlines`), as layer data tuples;
* :func:`labels_to_seeds` — a painted Labels image -> seed footprints ``Ain``.

Examples
--------
>>> tuples = cnmf_layer_data(step, "raw corrected", movie=movie)   # doctest: +SKIP
>>> [meta["name"] for _, meta, _ in tuples]                        # doctest: +SKIP
['raw corrected denoised', 'raw corrected residual', 'raw corrected correlation',
 'raw corrected footprints', 'raw corrected contours']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from ...engine.errors import InputError
from .cnmf_movies import ReconstructedMovie, ResidualMovie
from .contours import _entries, _support, closed_paths, contours
from .motion import LayerDataTuple, _frame_geometry, robust_limits
from .outlines import image_geometry, outline_image, outlines

__all__ = [
    "ReconstructedMovie",
    "ResidualMovie",
    "cnmf_layer_data",
    "closed_paths",
    "component_colors",
    "contours",
    "features_table",
    "footprints_layer_data",
    "label_colors",
    "labels_image",
    "labels_to_seeds",
    "layer_names",
    "movie_layers_data",
]

#: A pixel belongs to a component's support where its footprint value is
#: above this fraction of the component's peak (CaImAn's ``maxthr``).
SUPPORT_FRACTION = 0.1

#: Number of distinct colours; component ``k`` (label ``k + 1``) gets colour
#: ``k % N_COLORS`` in both the outlines and the Labels image.
N_COLORS = 64


def layer_names(name: str) -> dict[str, str]:
    """Names of the layers made from input layer ``name``."""
    return {
        "denoised": f"{name} denoised",
        "residual": f"{name} residual",
        "correlation": f"{name} correlation",
        "footprints": f"{name} footprints",
        "contours": f"{name} contours",
    }


# ----------------------------------------------------------------------------- labels


def labels_image(estimates: Any, fraction: float = SUPPORT_FRACTION) -> np.ndarray:
    """Each pixel labelled with its dominant component (1-based), 0 = none.

    The dominant component of a pixel is the one whose footprint there is
    largest *relative to that footprint's own peak*: CNMF footprints have an
    arbitrary scale (``C`` carries the amplitude), so raw values of two
    components are not comparable. Pixels below ``fraction`` of every
    covering footprint's peak stay 0. Built from the sparse ``A`` directly.

    Parameters
    ----------
    estimates : Estimates
    fraction : float
        Support threshold, a fraction of each component's peak.

    Returns
    -------
    (*dims) uint16 image (int32 from 65,535 components), array order; label
    ``k + 1`` = component ``k``.
    """
    dims = tuple(int(d) for d in estimates.dims)
    comp, pix, values, K = _entries(estimates)
    # uint16 where it can hold every label: napari draws 8/16-bit labels directly, while
    # 32-bit ones are remapped on the CPU (and the first time compiled by numba, ~0.5 s)
    labels = np.zeros(int(np.prod(dims)), np.uint16 if K < 2**16 - 1 else np.int32)
    if K == 0 or len(values) == 0:
        return labels.reshape(dims)
    inside, rel = _support(comp, values, K, fraction)
    comp, pix, rel = comp[inside], pix[inside], rel[inside]
    best = np.zeros(labels.shape, np.float32)
    np.maximum.at(best, pix, rel)
    win = rel == best[pix]  # ties: the later component wins, either is fine
    labels[pix[win]] = comp[win] + 1
    return labels.reshape(dims)


def labels_to_seeds(labels: Any, frame_shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Painted labels -> seed footprints for a seeded CNMF fit (``Ain``).

    Parameters
    ----------
    labels : array-like of int
        A Labels layer's data: frame-shaped ((Z,) Y, X), or movie-shaped
        (T, (Z,) Y, X), in which case a pixel painted in any frame counts.
    frame_shape : sequence of int
        The movie's frame shape, array order.

    Returns
    -------
    masks : (K, *frame_shape) bool
        One footprint per distinct non-zero label, in increasing label order.
    values : (K,) int
        The label of each footprint.

    Raises
    ------
    InputError
        (argument ``"seed"``) Shape mismatch, or no label painted.
    """
    frame_shape = tuple(int(s) for s in frame_shape)
    data = np.asarray(labels)
    if data.shape[-len(frame_shape) :] != frame_shape or data.ndim not in (
        len(frame_shape),
        len(frame_shape) + 1,
    ):
        raise InputError(
            "seed",
            f"the Labels layer has shape {data.shape}; expected the frame shape "
            f"{frame_shape} (or the movie's shape)",
        )
    if data.ndim == len(frame_shape) + 1:
        data = data.max(axis=0)
    values, inverse = np.unique(data, return_inverse=True)
    nonzero = values != 0
    if not nonzero.any():
        raise InputError("seed", "the Labels layer has no painted label to use as a seed")
    masks = np.zeros((int(nonzero.sum()),) + frame_shape, bool)
    index = np.cumsum(nonzero) - 1  # value position -> mask index
    flat_inv = inverse.reshape(-1)
    painted = nonzero[flat_inv]
    masks.reshape(len(masks), -1)[index[flat_inv[painted]], np.flatnonzero(painted)] = True
    return masks, values[nonzero].astype(np.int64)


# ----------------------------------------------------------------------------- features


def features_table(estimates: Any, fraction: float = SUPPORT_FRACTION) -> dict[str, np.ndarray]:
    """One row per component: id, label, size, centroid and metrics.

    Columns
    -------
    component : int, 0-based column of ``A``; ``label`` = component + 1;
    size : pixels above ``fraction`` of the component's peak;
    centroid_z (3D), centroid_y, centroid_x : footprint-weighted centre over
    those pixels, array-order pixel coordinates;
    snr, r_value : from ``SNR_comp`` / ``r_values`` when present, else NaN;
    accepted : from ``idx_components`` when present, else True.
    """
    dims = tuple(int(d) for d in estimates.dims)
    comp, pix, values, K = _entries(estimates)
    inside, _ = _support(comp, values, K, fraction)
    comp, pix, w = comp[inside], pix[inside], values[inside].astype(np.float64)
    coords = np.unravel_index(pix, dims)
    size = np.bincount(comp, minlength=K)
    wsum = np.maximum(np.bincount(comp, weights=w, minlength=K), np.finfo(np.float64).tiny)
    table: dict[str, np.ndarray] = {
        "component": np.arange(K, dtype=np.int64),
        "label": np.arange(1, K + 1, dtype=np.int64),
        "size": size.astype(np.int64),
    }
    for axis, c in zip(("z", "y", "x")[-len(dims) :], coords, strict=True):
        centre = np.bincount(comp, weights=w * c, minlength=K) / wsum
        table[f"centroid_{axis}"] = np.where(size > 0, centre, np.nan)
    for column, attr in (("snr", "SNR_comp"), ("r_value", "r_values")):
        value = getattr(estimates, attr, None)
        table[column] = (
            np.full(K, np.nan) if value is None else np.asarray(value, np.float64).reshape(K)
        )
    accepted = np.ones(K, bool)
    idx = getattr(estimates, "idx_components", None)
    if idx is not None:
        accepted[:] = False
        accepted[np.asarray(idx, dtype=np.int64)] = True
    table["accepted"] = accepted
    return table


# ----------------------------------------------------------------------------- colours


def _palette(n: int = N_COLORS) -> np.ndarray:
    """``n`` well-separated bright RGBA colours (golden-ratio hues)."""
    hues = (np.arange(n) * 0.618033988749895) % 1.0
    sat = np.where(np.arange(n) % 2, 0.65, 0.95)
    val = np.where(np.arange(n) % 3 == 1, 0.85, 1.0)
    hsv = np.stack([hues * 180, sat * 255, val * 255], axis=1).astype(np.uint8)[None]
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0].astype(np.float32) / 255
    return np.concatenate([rgb, np.ones((n, 1), np.float32)], axis=1)


def component_colors(component: np.ndarray) -> np.ndarray:
    """RGBA colour of each component index (same as its label's colour)."""
    component = np.asarray(component, dtype=np.int64)
    return _palette()[component % N_COLORS] if component.size else np.zeros((0, 4), np.float32)


def label_colors() -> np.ndarray:
    """Colours for a cyclic Labels colormap.

    Transparent 0, then the palette, so label ``k + 1`` has :func:`component_colors` ``(k)``.
    """
    return np.concatenate([np.zeros((1, 4), np.float32), _palette()], axis=0)


# ----------------------------------------------------------------------------- layers


def footprints_layer_data(
    estimates: Any,
    name: str,
    frame_scale: Sequence[float],
    frame_translate: Sequence[float],
    *,
    visible: bool = False,
) -> LayerDataTuple:
    """``"<name> footprints"``: Labels of each pixel's dominant component, with the features table.

    ``frame_scale`` / ``frame_translate`` are the frame's ((Z,) Y, X) geometry. Hidden unless
    ``visible``: its random colours would drown the contours' accepted/rejected colours.
    """
    return (
        labels_image(estimates),
        {
            "name": layer_names(name)["footprints"],
            "opacity": 0.35,
            "visible": visible,
            "features": features_table(estimates),
            "colormap": label_colors(),
            "metadata": {"napari_caiman": {"kind": "cnmf footprints", "source": name}},
            "scale": tuple(frame_scale),
            "translate": tuple(frame_translate),
        },
        "labels",
    )


def movie_layers_data(
    result: Any,
    name: str,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    *,
    movie: Any = None,
    visible: bool = False,
) -> list[LayerDataTuple]:
    """``"<name> denoised"`` (lazy ``A C + b f``) and ``"<name> residual"`` (lazy ``Y - A C - b f``).

    The residual only when ``movie`` (the movie CNMF ran on) is given. ``scale`` /
    ``translate`` are the movie's (T, (Z,) Y, X) geometry. Hidden unless ``visible``. Nothing
    is computed here but the contrast limits (from the summary's mean and std images).
    """
    est = result.estimates
    summary = result.summary
    names = layer_names(name)
    scale, translate = _frame_geometry(scale, translate, len(est.dims) + 1)
    source = {"source": name}
    denoised = ReconstructedMovie(est)
    mean = getattr(summary, "mean", None)
    if mean is not None:
        limits = robust_limits(mean)
    else:  # pragma: no cover - summaries always carry a mean
        limits = robust_limits(denoised[denoised.shape[0] // 2])
    movie_common = {
        "scale": scale,
        "translate": translate,
        "visible": visible,
        "colormap": "gray",
    }
    out: list[LayerDataTuple] = [
        (
            denoised,
            {
                "name": names["denoised"],
                "contrast_limits": limits,
                "metadata": {"napari_caiman": {"kind": "cnmf denoised", **source}},
                **movie_common,
            },
            "image",
        )
    ]
    if movie is not None:
        residual = ResidualMovie(movie, est)
        spread = (
            float(np.nanpercentile(np.asarray(summary.std), 99))
            if getattr(summary, "std", None) is not None
            else 1.0
        )
        spread = spread if spread > 0 else 1.0
        out.append(
            (
                residual,
                {
                    "name": names["residual"],
                    "contrast_limits": (-spread, spread),
                    "metadata": {"napari_caiman": {"kind": "cnmf residual", **source}},
                    **movie_common,
                },
                "image",
            )
        )
    return out


def cnmf_layer_data(
    result: Any,
    name: str,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    *,
    movie: Any = None,
    thr: float = 0.9,
) -> list[LayerDataTuple]:
    """All layers for one CNMF result, bottom to top.

    ``"<name> denoised"`` (lazy ``A C + b f``, hidden), ``"<name> residual"``
    (lazy ``Y - A C - b f``, hidden; only when ``movie`` is given),
    ``"<name> correlation"`` (``summary.corr``), ``"<name> footprints"``
    (Labels of the dominant component, hidden, with the features table) and
    ``"<name> contours"`` (an RGBA Image of every component's outline, per
    plane, in its palette colour; its metadata holds the :class:`.outlines.Outlines`
    and the frame's scale and translate).

    Parameters
    ----------
    result : CnmfStepResult
        ``.estimates`` and ``.summary``.
    name : str
        Name of the input layer (prefix of the new layers).
    scale, translate : sequence of float, optional
        The input movie layer's (T, (Z,) Y, X) geometry; frame-shaped layers
        take its spatial part.
    movie : array-like, optional
        The movie CNMF ran on, for the residual.
    thr : float
        Energy fraction inside each contour (see :func:`contours`).

    Returns
    -------
    list of ``(data, meta, layer_type)``
    """
    est = result.estimates
    summary = result.summary
    names = layer_names(name)
    dims = tuple(int(d) for d in est.dims)
    frame_ndim = len(dims)
    scale, translate = _frame_geometry(scale, translate, frame_ndim + 1)
    source = {"source": name}
    out = movie_layers_data(result, name, scale, translate, movie=movie)
    frame_geom = {"scale": scale[1:], "translate": translate[1:]}
    corr = getattr(summary, "corr", None)
    if corr is not None:
        corr = np.asarray(corr)
        out.append(
            (
                corr,
                {
                    "name": names["correlation"],
                    "contrast_limits": robust_limits(corr, 1.0, 99.9),
                    "colormap": "gray",
                    "metadata": {"napari_caiman": {"kind": "summary", **source}},
                    **frame_geom,
                },
                "image",
            )
        )
    out.append(footprints_layer_data(est, name, frame_geom["scale"], frame_geom["translate"]))
    o = outlines(est, thr=thr)
    image_scale, image_translate = image_geometry(scale[1:], translate[1:], o.factor)
    out.append(
        (
            # one RGBA image of outlines, not one Shapes path per component: 5,000 paths cost
            # napari ~1.2 s of CPU to build and more to draw, an image one texture upload;
            # clicks find their component from the footprints (widgets), the selection
            # outline traces the picked components' paths (outlines.component_paths)
            outline_image(o, component_colors(np.arange(o.n_components))),
            {
                "name": names["contours"],
                "rgb": True,
                "blending": "translucent",
                "interpolation2d": "nearest",
                "metadata": {
                    "napari_caiman": {
                        "kind": "cnmf contours",
                        **source,
                        "outlines": o,
                        "frame_scale": scale[1:],
                        "frame_translate": translate[1:],
                    }
                },
                "scale": image_scale,
                "translate": image_translate,
            },
            "image",
        )
    )
    return out
