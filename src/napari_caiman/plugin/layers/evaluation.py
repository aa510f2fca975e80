"""Evaluation and curation -> layer data (no Qt).

The evaluation widget keeps the threshold result and the manual decisions
apart (:class:`~napari_caiman.engine.curation.Curation`) and turns their
combination into what napari shows:

* :func:`status_colors` — one RGBA edge colour per contour polygon: accepted
  cyan, rejected magenta, hidden ones fully transparent (so the show filter
  and the recolouring are one ``edge_color`` assignment);
* :func:`evaluation_features` — the contours' features table with ``SNR``,
  ``r_value``, ``status`` and ``manual`` columns (a new table: reassign it);
* :func:`component_table` — one row per component for the table view;
* :func:`count_text` — ``"120 accepted / 30 rejected / 5 manual"``;
* :func:`footprint_lookup` / :func:`component_at_pixel` — the component under
  a clicked pixel, from the footprints (the contours are paths: napari's hit
  test finds nothing inside them);
* :func:`outline_segments` — contour paths as one Vectors array (the
  selection outline, updated in place at a fraction of a Shapes layer's cost).

The hand edits of a result (delete, merge, refit seeds) are in
:mod:`napari_caiman.engine.component_edits`.

Examples
--------
>>> colors = status_colors(accepted, owner, show="all")        # doctest: +SKIP
>>> layer.edge_color = colors                                    # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from ...engine.errors import InputError

__all__ = [
    "ACCEPTED_COLOR",
    "REJECTED_COLOR",
    "SHOW_MODES",
    "component_at_pixel",
    "component_table",
    "count_text",
    "footprint_lookup",
    "outline_segments",
    "evaluation_features",
    "manual_column",
    "status_colors",
    "status_column",
]

#: Edge colour of accepted components (cyan) and rejected ones (light magenta:
#: bright enough to stand out on the dark parts of a magma correlation image,
#: where rejected components mostly sit; pure magenta was faint there).
ACCEPTED_COLOR = np.array([0.0, 1.0, 1.0, 1.0], np.float32)
REJECTED_COLOR = np.array([1.0, 0.55, 0.85, 1.0], np.float32)

#: Choices of the "show" filter.
SHOW_MODES = ("all", "accepted", "rejected")

_MANUAL_NAMES = np.array(["rejected", "", "accepted"], dtype=object)  # index manual + 1


def status_colors(accepted: np.ndarray, owner: np.ndarray, show: str = "all") -> np.ndarray:
    """RGBA edge colour of every polygon, from its component's final status.

    Parameters
    ----------
    accepted : (K,) bool
        Final status per component (thresholds + manual decisions).
    owner : (n_polygons,) int
        Component of each polygon (the contours' ``component`` column).
    show : {'all', 'accepted', 'rejected'}
        Polygons of the other status get alpha 0 (hidden).

    Returns
    -------
    (n_polygons, 4) float32
    """
    if show not in SHOW_MODES:
        raise InputError("show", f"must be one of {SHOW_MODES}, got {show!r}")
    acc = np.asarray(accepted, bool)[np.asarray(owner, dtype=np.int64)]
    colors = np.where(acc[:, None], ACCEPTED_COLOR, REJECTED_COLOR).astype(np.float32)
    if show == "accepted":
        colors[~acc, 3] = 0.0
    elif show == "rejected":
        colors[acc, 3] = 0.0
    return colors


def status_column(accepted: np.ndarray) -> np.ndarray:
    """Return ``"accepted"`` / ``"rejected"`` per component (object array)."""
    return np.where(np.asarray(accepted, bool), "accepted", "rejected").astype(object)


def manual_column(manual: np.ndarray) -> np.ndarray:
    """Return ``"accepted"`` / ``"rejected"`` / ``""`` (no decision) per component."""
    return _MANUAL_NAMES[np.asarray(manual, dtype=np.int64) + 1]


def _metric(metrics: Any, name: str, K: int) -> np.ndarray:
    value = None if metrics is None else getattr(metrics, name, None)
    if value is None:
        return np.full(K, np.nan)
    return np.asarray(value, dtype=np.float64).reshape(K)


def evaluation_features(
    features: Any, owner: np.ndarray, metrics: Any, accepted: np.ndarray, manual: np.ndarray
) -> pd.DataFrame:
    """Return the contours' features table plus ``SNR``, ``r_value``, ``status``, ``manual``.

    Parameters
    ----------
    features : DataFrame or dict of columns
        The current table (one row per polygon); not modified.
    owner : (n_polygons,) int
        Component of each polygon.
    metrics : Metrics or None
        ``SNR_comp`` and ``r_values`` (NaN when None: not evaluated).
    accepted : (K,) bool
        Final status per component.
    manual : (K,) int8
        Manual decisions (+1, -1, 0).

    Returns
    -------
    A new DataFrame (assign it to ``layer.features``).
    """
    owner = np.asarray(owner, dtype=np.int64)
    K = len(accepted)
    table = pd.DataFrame(features).copy()
    table["SNR"] = _metric(metrics, "SNR_comp", K)[owner]
    table["r_value"] = _metric(metrics, "r_values", K)[owner]
    table["status"] = status_column(accepted)[owner]
    table["manual"] = manual_column(manual)[owner]
    return table


def component_table(
    metrics: Any, accepted: np.ndarray, manual: np.ndarray, size: np.ndarray
) -> dict[str, np.ndarray]:
    """Return the components table, one row per component.

    Columns ``id``, ``SNR``, ``r_value``, ``size``, ``solidity``, ``pieces``, ``area_ratio`` (shape, NaN
    when not computed), ``status``, ``manual``.
    """
    K = len(accepted)
    return {
        "id": np.arange(K, dtype=np.int64),
        "SNR": _metric(metrics, "SNR_comp", K),
        "r_value": _metric(metrics, "r_values", K),
        "size": np.asarray(size, dtype=np.int64).reshape(K),
        **metric_columns(metrics, K),
        "status": status_column(accepted),
        "manual": manual_column(manual),
    }


#: Metrics fields that are not shown as columns: the first three are already
#: (SNR, r_value, size), the others are intermediate values of the SNR test.
_OWN_COLUMNS = frozenset({"SNR_comp", "r_values", "size", "cnn_preds"})
HIDDEN_METRICS = frozenset({"fitness", "noise_sd", "mode", "n_frames_used"})


def metric_columns(metrics: Any, K: int) -> dict[str, np.ndarray]:
    """Return every other per-component number of ``metrics`` (a Metrics dataclass) as a column.

    By field name: metrics added to Metrics appear in the table and the scatter plot without changes
    elsewhere. ``cnn`` when CNN predictions exist.
    """
    out: dict[str, np.ndarray] = {}
    if metrics is None or not dataclasses.is_dataclass(metrics):
        return out
    if getattr(metrics, "cnn_available", False) and getattr(metrics, "cnn_preds", None) is not None:
        out["cnn"] = np.asarray(metrics.cnn_preds, np.float64).reshape(K)
    for f in dataclasses.fields(metrics):
        if f.name in _OWN_COLUMNS or f.name in HIDDEN_METRICS:
            continue
        value = getattr(metrics, f.name, None)
        if isinstance(value, np.ndarray) and value.shape == (K,) and value.dtype.kind in "biuf":
            out[f.name] = value.astype(np.float64) if value.dtype.kind == "b" else value
    return out


def count_text(accepted: np.ndarray, manual: np.ndarray) -> str:
    """``"120 accepted / 30 rejected / 5 manual"``."""
    n_acc = int(np.count_nonzero(accepted))
    return (
        f"{n_acc} accepted / {len(accepted) - n_acc} rejected / "
        f"{int(np.count_nonzero(manual))} manual"
    )


def footprint_lookup(A: Any) -> sparse.csr_matrix:
    """(pixels, K) footprints, each scaled to a peak of 1, by rows (for :func:`component_at_pixel`)."""
    A = sparse.csc_matrix(A)
    peak = np.asarray(abs(A).max(axis=0).todense()).ravel().astype(np.float64)
    scale = np.divide(1.0, peak, out=np.zeros_like(peak), where=peak > 0)
    return sparse.csr_matrix(A @ sparse.diags(scale))


def component_at_pixel(lookup: sparse.csr_matrix, dims: Any, position: Any) -> int | None:
    """Return the component strongest (relative to its own peak) at ``position``.

    Parameters
    ----------
    lookup : csr_matrix
        :func:`footprint_lookup` of the footprints.
    dims : tuple of int
        Frame shape, array order (rows of ``lookup`` are pixels in Fortran order over it).
    position : sequence of float
        Data coordinates ((z,) y, x); pixel centres are integers.

    Returns
    -------
    int or None
        None outside the field of view or where no footprint is.
    """
    dims = tuple(int(d) for d in dims)
    idx = tuple(int(np.floor(float(v) + 0.5)) for v in position)
    if len(idx) != len(dims) or any(not 0 <= i < d for i, d in zip(idx, dims, strict=True)):
        return None
    row = int(np.ravel_multi_index(idx, dims, order="F"))
    start, stop = int(lookup.indptr[row]), int(lookup.indptr[row + 1])
    if start == stop:
        return None
    values = lookup.data[start:stop]
    best = int(np.argmax(values))
    return int(lookup.indices[start + best]) if values[best] > 0 else None


def outline_segments(paths: list[np.ndarray], ndim: int) -> np.ndarray:
    """Return the closed contour paths as napari Vectors data.

    (n_segments, 2, ndim), [start, step].
    """
    if not paths:
        return np.zeros((0, 2, ndim), np.float32)
    starts = np.concatenate([p[:-1] for p in paths])
    steps = np.concatenate([np.diff(p, axis=0) for p in paths])
    return np.stack([starts, steps], axis=1).astype(np.float32)
