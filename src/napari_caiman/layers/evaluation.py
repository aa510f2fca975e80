"""Evaluation and curation -> layer data, and hand edits of a CNMF result (no Qt).

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

Hand edits return a new :class:`~napari_caiman.engine.cnmf.estimates.Estimates`
(inputs are never modified) plus the row mapping, so per-component side data
(manual decisions, metrics, dF/F) follows with :func:`take_rows`:

* :func:`delete_components`, :func:`merge_components`;
* :func:`refit_seeds` — accepted footprints plus painted masks as ``Ain``.

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

from ..engine.cnmf.estimates import images_to_pixels
from ..engine.errors import InputError

__all__ = [
    "ACCEPTED_COLOR",
    "REJECTED_COLOR",
    "SHOW_MODES",
    "component_at_pixel",
    "component_table",
    "count_text",
    "footprint_lookup",
    "outline_segments",
    "delete_components",
    "evaluation_features",
    "manual_column",
    "merge_components",
    "refit_seeds",
    "status_colors",
    "status_column",
    "take_rows",
    "threshold_mask",
]

#: Edge colour of accepted components (cyan) and rejected ones (light magenta:
#: bright enough to stand out on the dark parts of a magma correlation image,
#: where rejected components mostly sit; pure magenta was faint there).
ACCEPTED_COLOR = np.array([0.0, 1.0, 1.0, 1.0], np.float32)
REJECTED_COLOR = np.array([1.0, 0.55, 0.85, 1.0], np.float32)

#: Choices of the "show" filter.
SHOW_MODES = ("all", "accepted", "rejected")

_MANUAL_NAMES = np.array(["rejected", "", "accepted"], dtype=object)  # index manual + 1


def threshold_mask(good_idx: Any, n_components: int) -> np.ndarray:
    """(K,) bool mask from the accepted indices of ``apply_thresholds``."""
    mask = np.zeros(int(n_components), bool)
    mask[np.asarray(good_idx, dtype=np.int64)] = True
    return mask


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
    """``"accepted"`` / ``"rejected"`` per component (object array)."""
    return np.where(np.asarray(accepted, bool), "accepted", "rejected").astype(object)


def manual_column(manual: np.ndarray) -> np.ndarray:
    """``"accepted"`` / ``"rejected"`` / ``""`` (no decision) per component."""
    return _MANUAL_NAMES[np.asarray(manual, dtype=np.int64) + 1]


def _metric(metrics: Any, name: str, K: int) -> np.ndarray:
    value = None if metrics is None else getattr(metrics, name, None)
    if value is None:
        return np.full(K, np.nan)
    return np.asarray(value, dtype=np.float64).reshape(K)


def evaluation_features(
    features: Any, owner: np.ndarray, metrics: Any, accepted: np.ndarray, manual: np.ndarray
) -> pd.DataFrame:
    """The contours' features table plus ``SNR``, ``r_value``, ``status``, ``manual``.

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
    """One row per component: ``id``, ``SNR``, ``r_value``, ``size``, ``solidity``,
    ``pieces``, ``area_ratio`` (shape, NaN when not computed), ``status``, ``manual``."""
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
    """Every other per-component number of ``metrics`` (a Metrics dataclass) as
    a column, by field name: metrics added to Metrics appear in the table and
    the scatter plot without changes elsewhere. ``cnn`` when CNN predictions exist."""
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


# ----------------------------------------------------------------------------- hand edits


def take_rows(values: Any, rows: np.ndarray, fill: np.ndarray | None = None) -> Any:
    """``values[rows]`` for per-component side data; rows of -1 take ``fill``.

    ``values`` may be None (returned as is), a (K,) or (K, T) array.
    """
    if values is None:
        return None
    values = np.asarray(values)
    rows = np.asarray(rows, dtype=np.int64)
    out = values[np.maximum(rows, 0)].copy()
    new = rows < 0
    if new.any():
        out[new] = np.nan if fill is None else fill
    return out


def _per_component(est: Any) -> dict[str, np.ndarray]:
    """Per-component arrays of ``est`` (rows = components), by field name."""
    K = est.n_components
    out = {}
    for name in ("C", "S", "YrA", "g", "bl", "c1", "neurons_sn", "lam"):
        value = getattr(est, name, None)
        if value is not None and np.ndim(value) >= 1 and np.shape(value)[0] == K:
            out[name] = np.asarray(value)
    return out


def _remap_idx(idx: Any, rows: np.ndarray) -> np.ndarray | None:
    """Old component indices -> new ones (dropping components no longer there)."""
    if idx is None:
        return None
    old_to_new = {int(old): new for new, old in enumerate(rows.tolist()) if old >= 0}
    return np.array(
        sorted(old_to_new[int(i)] for i in np.asarray(idx).tolist() if int(i) in old_to_new),
        dtype=np.int64,
    )


def delete_components(est: Any, idx: Any) -> tuple[Any, np.ndarray]:
    """A copy of ``est`` without components ``idx``.

    Returns
    -------
    estimates : Estimates
    rows : (K_new,) int
        Old index of each new component (for :func:`take_rows`).

    Raises
    ------
    InputError
        An index out of range.
    """
    K = est.n_components
    idx = np.unique(np.asarray(idx, dtype=np.int64).ravel())
    if idx.size and (idx.min() < 0 or idx.max() >= K):
        raise InputError("idx", f"component indices must be in [0, {K}), got {idx.tolist()}")
    rows = np.setdiff1d(np.arange(K), idx)
    A = sparse.csc_matrix(est.A)[:, rows]
    changes: dict[str, Any] = {k: v[rows] for k, v in _per_component(est).items()}
    changes["A"] = sparse.csc_matrix(A)
    changes["idx_components"] = _remap_idx(est.idx_components, rows)
    changes["idx_components_bad"] = _remap_idx(est.idx_components_bad, rows)
    return dataclasses.replace(est, **changes), rows


def merge_components(est: Any, idx: Any) -> tuple[Any, np.ndarray]:
    """A copy of ``est`` with components ``idx`` (two or more) merged into one.

    The merged footprint is the sum of the footprints weighted by their
    traces' L2 norms, normalised to unit L2 norm (CaImAn's convention for
    ``A``). Its raw trace is the least-squares fit of ``a F`` to
    ``sum_i a_i F_i`` (``F = C + YrA``): with ``|a| = 1`` that is
    ``F = sum_i (a . a_i) F_i``; ``C`` and ``S`` are combined with the same
    weights (still >= 0), so ``YrA = F - C``. The merged component takes the
    place of the lowest index; AR coefficients and the L1 penalty are those
    of the component with the largest trace.

    Returns
    -------
    estimates : Estimates
    rows : (K_new,) int
        Old index of each new component; -1 for the merged one.

    Raises
    ------
    InputError
        Fewer than two distinct components or an index out of range.
    """
    K = est.n_components
    idx = np.unique(np.asarray(idx, dtype=np.int64).ravel())
    if idx.size < 2:
        raise InputError("idx", "select two or more components to merge")
    if idx.min() < 0 or idx.max() >= K:
        raise InputError("idx", f"component indices must be in [0, {K}), got {idx.tolist()}")
    A = sparse.csc_matrix(est.A, dtype=np.float64)
    C = np.asarray(est.C, dtype=np.float64)
    Ai = A[:, idx]
    weight = np.linalg.norm(C[idx], axis=1)
    weight = np.where(weight > 0, weight, 1.0)
    a = np.asarray(Ai @ weight).ravel()
    norm = np.linalg.norm(a)
    if norm == 0:
        raise InputError("idx", f"components {idx.tolist()} have empty footprints")
    a /= norm
    w = np.asarray(Ai.T @ a).ravel()  # a . a_i
    per = _per_component(est)
    raw = C + np.asarray(est.YrA, dtype=np.float64)
    F = w @ raw[idx]
    merged = {"C": w @ C[idx]}
    merged["YrA"] = F - merged["C"]
    if "S" in per:
        merged["S"] = w @ np.asarray(per["S"], np.float64)[idx]
    if "bl" in per:
        merged["bl"] = float(w @ np.asarray(per["bl"], np.float64)[idx])
    if "neurons_sn" in per:
        merged["neurons_sn"] = float(
            np.sqrt(w**2 @ np.asarray(per["neurons_sn"], np.float64)[idx] ** 2)
        )
    main = idx[int(np.argmax(np.linalg.norm(C[idx], axis=1)))]
    keep = np.setdiff1d(np.arange(K), idx[1:])  # the merged one sits at idx[0]
    pos = int(np.searchsorted(keep, idx[0]))
    changes: dict[str, Any] = {}
    for name, value in per.items():
        new = value[keep].copy()
        new[pos] = merged[name] if name in merged else value[main]
        changes[name] = new
    A_new = A[:, keep].tolil()
    A_new[:, pos] = a[:, None]
    changes["A"] = sparse.csc_matrix(A_new.tocsc(), dtype=np.asarray(est.A.data).dtype)
    rows = keep.copy()
    rows[pos] = -1
    changes["idx_components"] = _remap_idx(est.idx_components, rows)
    changes["idx_components_bad"] = _remap_idx(est.idx_components_bad, rows)
    return dataclasses.replace(est, **changes), rows


def refit_seeds(
    est: Any, accepted_idx: Any, painted: np.ndarray | None = None
) -> sparse.csc_matrix:
    """Seed footprints ``Ain`` (pixels, K) for a seeded refit, CaImAn pixel order.

    Parameters
    ----------
    est : Estimates
    accepted_idx : int array
        Components kept as seeds: their support (``A > 0``) becomes a binary mask.
    painted : (n, *dims) bool, optional
        New masks painted by the user (e.g. from ``labels_to_seeds``).

    Raises
    ------
    InputError
        No seed at all, or painted masks of the wrong shape.
    """
    dims = tuple(int(d) for d in est.dims)
    kept = (sparse.csc_matrix(est.A)[:, np.asarray(accepted_idx, dtype=np.int64)] > 0).astype(
        np.float32
    )
    parts = [sparse.csc_matrix(kept)]
    if painted is not None and len(painted):
        painted = np.asarray(painted)
        if painted.shape[1:] != dims:
            raise InputError(
                "seed", f"painted masks have shape {painted.shape[1:]}, frames are {dims}"
            )
        parts.append(sparse.csc_matrix(images_to_pixels(painted.astype(np.float32))))
    Ain = sparse.hstack(parts).tocsc()
    if Ain.shape[1] == 0:
        raise InputError("seed", "no seeds: accept some components or paint new ones")
    return Ain


def footprint_lookup(A: Any) -> sparse.csr_matrix:
    """(pixels, K) footprints, each scaled to a peak of 1, by rows (for :func:`component_at_pixel`)."""
    A = sparse.csc_matrix(A)
    peak = np.asarray(abs(A).max(axis=0).todense()).ravel().astype(np.float64)
    scale = np.divide(1.0, peak, out=np.zeros_like(peak), where=peak > 0)
    return sparse.csr_matrix(A @ sparse.diags(scale))


def component_at_pixel(lookup: sparse.csr_matrix, dims: Any, position: Any) -> int | None:
    """The component strongest (relative to its own peak) at ``position``.

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
    """Closed contour paths as napari Vectors data: (n_segments, 2, ndim), [start, step]."""
    if not paths:
        return np.zeros((0, 2, ndim), np.float32)
    starts = np.concatenate([p[:-1] for p in paths])
    steps = np.concatenate([np.diff(p, axis=0) for p in paths])
    return np.stack([starts, steps], axis=1).astype(np.float32)
