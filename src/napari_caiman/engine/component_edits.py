"""Hand edits of a CNMF result (no Qt, no napari): delete, merge, refit seeds.

Hand edits return a new :class:`~napari_caiman.engine.cnmf.estimates.Estimates`
(inputs are never modified) plus the row mapping, so per-component side data
(manual decisions, metrics, dF/F) follows with :func:`take_rows`:

* :func:`delete_components`, :func:`merge_components`;
* :func:`refit_seeds` — accepted footprints plus painted masks as ``Ain``;
* :func:`threshold_mask` — the accepted indices of ``apply_thresholds`` as a mask.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from scipy import sparse

from .cnmf.estimates import images_to_pixels
from .errors import InputError

__all__ = ["delete_components", "merge_components", "refit_seeds", "take_rows", "threshold_mask"]


def threshold_mask(good_idx: Any, n_components: int) -> np.ndarray:
    """(K,) bool mask from the accepted indices of ``apply_thresholds``."""
    mask = np.zeros(int(n_components), bool)
    mask[np.asarray(good_idx, dtype=np.int64)] = True
    return mask


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
    """Return a copy of ``est`` without components ``idx``.

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
    """Return a copy of ``est`` with components ``idx`` (two or more) merged into one.

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
