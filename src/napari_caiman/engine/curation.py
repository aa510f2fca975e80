"""Manual curation: accept/reject decisions kept apart from threshold results.

A :class:`Curation` holds one int8 per component: ``+1`` accepted by hand,
``-1`` rejected by hand, ``0`` no decision.  The final accepted set is the
threshold result overridden by the manual decisions
(:meth:`Curation.accepted`), so moving the evaluation sliders never loses a
decision, and clearing a decision gives the component back to the thresholds.

Storage
-------
* In the results file (:func:`write_curation` / :func:`read_curation`): group
  ``curation`` with dataset ``manual`` (int8, K) and attributes ``updated``
  (ISO time), ``n_components``, ``format``; and the *final*
  ``estimates/idx_components`` / ``idx_components_bad`` (thresholds +
  manual), so that CaImAn reading the file sees the curated selection.
* Next to the results file, after each decision (:func:`save_curation_sidecar`):
  ``<results>.curation.json`` written atomically (temp file + rename), a few
  ms even for thousands of components, so a crash loses at most the decision
  being written.
* Across a refit (:func:`transfer_curation`): decisions follow the footprints
  by one-to-one matching on footprint cosine similarity.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment

from .atomic import atomic_path
from .errors import InputError

__all__ = [
    "Curation",
    "ACCEPT",
    "REJECT",
    "NONE",
    "write_curation",
    "read_curation",
    "sidecar_path",
    "save_curation_sidecar",
    "load_curation_sidecar",
    "transfer_curation",
]

ACCEPT, REJECT, NONE = 1, -1, 0
FORMAT = 1


def _as_decision(decision: Any) -> int:
    if isinstance(decision, str):
        d = decision.lower()
        if d in ("accept", "accepted", "a", "+1"):
            return ACCEPT
        if d in ("reject", "rejected", "r", "-1"):
            return REJECT
        if d in ("clear", "none", "0", ""):
            return NONE
        raise InputError(
            "decision",
            f"unknown decision {decision!r}: use 'accept', 'reject' or 'clear' (or +1/-1/0)",
        )
    if decision is None:
        return NONE
    if isinstance(decision, (bool, np.bool_)):
        return ACCEPT if decision else REJECT
    try:
        d = int(decision)  # type: ignore[assignment]
    except (TypeError, ValueError):
        raise InputError("decision", f"unknown decision {decision!r}: use +1, -1 or 0") from None
    if d not in (ACCEPT, REJECT, NONE) or d != decision:
        raise InputError("decision", f"unknown decision {decision!r}: use +1, -1 or 0")
    return d  # type: ignore[return-value]


@dataclass
class Curation:
    """Manual accept/reject decisions, one per component.

    Attributes
    ----------
    manual : (K,) int8
        +1 accepted by hand, -1 rejected by hand, 0 no decision.
    updated : str
        ISO time of the last change.
    """

    manual: np.ndarray
    updated: str = field(default_factory=lambda: _now())

    def __post_init__(self) -> None:
        """Check the decisions and store them as int8."""
        m = np.asarray(self.manual)
        if m.ndim != 1:
            raise InputError("manual", f"must be 1D (K,), got shape {m.shape}")
        if m.size and not np.isin(m, (-1, 0, 1)).all():
            raise InputError(
                "manual", "values must be +1 (accepted), -1 (rejected) or 0 (no decision)"
            )
        self.manual = m.astype(np.int8, copy=True)

    @classmethod
    def empty(cls, n_components: int) -> Curation:
        """No decisions for ``n_components`` components."""
        return cls(np.zeros(int(n_components), np.int8))

    @property
    def n_components(self) -> int:
        """Return the number of components the decisions are for."""
        return int(self.manual.size)

    def _check_idx(self, idx: Any) -> np.ndarray:
        idx = np.atleast_1d(np.asarray(idx))
        if idx.dtype == bool:
            if idx.size != self.n_components:
                raise InputError(
                    "idx", f"boolean mask of length {idx.size} for {self.n_components} components"
                )
            return np.flatnonzero(idx)
        if idx.size and (
            idx.dtype.kind not in "iu"
            or idx.min() < -self.n_components
            or idx.max() >= self.n_components
        ):
            raise InputError(
                "idx",
                f"component indices must be integers in [0, {self.n_components}), got {idx.tolist()[:10]}",
            )
        return idx.astype(np.int64)

    def set(self, idx: Any, decision: Any) -> Curation:
        """Record ``decision`` (+1/-1/0, 'accept'/'reject'/'clear', True/False) for ``idx``."""
        self.manual[self._check_idx(idx)] = _as_decision(decision)
        self.updated = _now()
        return self

    def accept(self, idx: Any) -> Curation:
        """Return a copy with the components ``idx`` accepted by hand."""
        return self.set(idx, ACCEPT)

    def reject(self, idx: Any) -> Curation:
        """Return a copy with the components ``idx`` rejected by hand."""
        return self.set(idx, REJECT)

    def clear(self, idx: Any = None) -> Curation:
        """Forget the decisions for ``idx`` (all if None)."""
        if idx is None:
            self.manual[:] = NONE
            self.updated = _now()
            return self
        return self.set(idx, NONE)

    def toggle(self, idx: Any, threshold_accepted: np.ndarray) -> Curation:
        """Flip the final state of ``idx`` (what a click on an ROI does)."""
        idx = self._check_idx(idx)
        now = self.accepted(threshold_accepted)[idx]
        self.manual[idx] = np.where(now, REJECT, ACCEPT)
        self.updated = _now()
        return self

    def accepted(self, threshold_accepted: Any) -> np.ndarray:
        """Return the final accepted mask.

        The threshold result overridden by the manual decisions.

        ``threshold_accepted`` is a (K,) boolean mask or an index array
        (e.g. ``idx_components``).
        """
        thr = np.asarray(threshold_accepted)
        if thr.dtype != bool:
            mask = np.zeros(self.n_components, bool)
            mask[thr.astype(np.int64)] = True
            thr = mask
        if thr.shape != (self.n_components,):
            raise InputError(
                "threshold_accepted",
                f"has {thr.shape[0]} components, curation has {self.n_components}",
            )
        return np.where(self.manual == NONE, thr, self.manual > 0)

    def final_indices(self, threshold_accepted: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(idx_components, idx_components_bad)`` after manual overrides."""
        acc = self.accepted(threshold_accepted)
        return np.flatnonzero(acc), np.flatnonzero(~acc)

    @property
    def n_decisions(self) -> int:
        """Return the number of components decided by hand."""
        return int(np.count_nonzero(self.manual))

    def copy(self) -> Curation:
        """Return an independent copy."""
        return Curation(self.manual.copy(), self.updated)

    def to_json(self) -> str:
        """Return the decisions as the JSON text of a sidecar file."""
        return json.dumps(
            {
                "format": FORMAT,
                "n_components": self.n_components,
                "updated": self.updated,
                "manual": self.manual.tolist(),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Curation:
        """Read decisions from a sidecar's JSON text; raise InputError when it does not fit."""
        d = json.loads(text)
        manual = np.asarray(d["manual"], dtype=np.int8)
        if "n_components" in d and int(d["n_components"]) != manual.size:
            raise InputError(
                "curation", f"sidecar says {d['n_components']} components but holds {manual.size}"
            )
        return cls(manual, str(d.get("updated", "")))


def _now() -> str:
    """Local time to the microsecond.

    Which of the file and its sidecar is newer must be decidable for a decision made in the same
    second as a save (older files hold whole seconds, which sort before any fraction of that
    second).
    """
    from datetime import datetime

    return datetime.now().astimezone().strftime("%Y-%m-%dT%H:%M:%S.%f%z")


# ----------------------------------------------------------------------------- HDF5


def write_curation(
    h5: Any,
    curation: Curation,
    *,
    idx_components: Any = None,
    idx_components_bad: Any = None,
    threshold_accepted: Any = None,
) -> None:
    """Write ``curation`` into an open HDF5 file (or group) ``h5``.

    Writes group ``curation`` (dataset ``manual`` int8 (K,), attributes
    ``updated``, ``n_components``, ``format``), replacing an existing one, and
    the final ``estimates/idx_components`` / ``idx_components_bad``: given
    directly, or computed from ``threshold_accepted`` (mask or indices) with
    the manual overrides.  ``h5`` may be an ``h5py.File``/``Group`` opened for
    writing or a path (opened in append mode).
    """
    import h5py

    if isinstance(h5, (str, os.PathLike)):
        with h5py.File(h5, "a") as f:
            write_curation(
                f,
                curation,
                idx_components=idx_components,
                idx_components_bad=idx_components_bad,
                threshold_accepted=threshold_accepted,
            )
        return
    if threshold_accepted is not None and idx_components is None:
        idx_components, idx_components_bad = curation.final_indices(threshold_accepted)
    if "curation" in h5:
        del h5["curation"]
    g = h5.create_group("curation")
    g.create_dataset("manual", data=curation.manual.astype(np.int8))
    g.attrs["updated"] = curation.updated or _now()
    g.attrs["n_components"] = curation.n_components
    g.attrs["format"] = FORMAT
    g.attrs["description"] = (
        "+1 accepted by hand, -1 rejected by hand, 0 no decision (thresholds apply)"
    )
    if idx_components is not None:
        est = h5.require_group("estimates")
        good = np.asarray(idx_components, dtype=np.int64)
        bad = (
            np.setdiff1d(np.arange(curation.n_components), good)
            if idx_components_bad is None
            else np.asarray(idx_components_bad, dtype=np.int64)
        )
        for name, val in (("idx_components", good), ("idx_components_bad", bad)):
            if name in est:
                del est[name]
            est.create_dataset(name, data=val)


def read_curation(h5: Any) -> Curation | None:
    """Read the ``curation`` group of an open HDF5 file/group or a path; None if absent."""
    import h5py

    if isinstance(h5, (str, os.PathLike)):
        path = Path(h5)
        if not path.is_file():
            return None
        with h5py.File(path, "r") as f:
            return read_curation(f)
    if "curation" not in h5 or "manual" not in h5["curation"]:
        return None
    g = h5["curation"]
    upd = g.attrs.get("updated", "")
    if isinstance(upd, bytes):
        upd = upd.decode()
    return Curation(np.asarray(g["manual"][()], dtype=np.int8), str(upd))


# ----------------------------------------------------------------------------- sidecar


def sidecar_path(results_path: str | os.PathLike) -> Path:
    """``<results>.curation.json`` next to the results file."""
    p = Path(results_path)
    return p.with_name(p.name + ".curation.json")


def save_curation_sidecar(results_path: str | os.PathLike, curation: Curation) -> Path:
    """Write the decisions next to the results file, atomically. Returns the sidecar path.

    Raises
    ------
    InputError
        The folder does not exist or is not writable.
    """
    path = sidecar_path(results_path)
    text = curation.to_json()
    try:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    except InputError as exc:
        raise InputError("curation", exc.message) from None
    except OSError as exc:
        raise InputError("curation", f"cannot write {str(path)!r}: {exc}") from None
    return path


def load_curation_sidecar(results_path: str | os.PathLike) -> Curation | None:
    """Read ``<results>.curation.json``; None if there is none.

    Raises
    ------
    InputError
        The sidecar exists but cannot be parsed.
    """
    path = sidecar_path(results_path)
    if not path.is_file():
        return None
    try:
        return Curation.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError("curation", f"cannot read {str(path)!r}: {exc}") from None


# ----------------------------------------------------------------------------- refit


def transfer_curation(
    old_A: Any, old_manual: Any, new_A: Any, dims: Any = None, min_overlap: float = 0.5
) -> np.ndarray:
    """Carry manual decisions across a refit by footprint similarity.

    Components are matched one-to-one (Hungarian algorithm) on the cosine
    similarity of their footprints; only old components with a decision take
    part.  A new component inherits the decision of its match if the
    similarity is at least ``min_overlap``; others get 0 (no decision).

    Parameters
    ----------
    old_A, new_A : (pixels, K) sparse/dense in the same pixel order (CaImAn's).
    old_manual : (K_old,) int8 or a :class:`Curation`.
    dims : frame shape (array order); only used to check the pixel count.
    min_overlap : minimum cosine similarity in [0, 1].

    Returns
    -------
    (K_new,) int8
    """
    if isinstance(old_manual, Curation):
        old_manual = old_manual.manual
    old_manual = np.asarray(old_manual, dtype=np.int8)
    old_A = sparse.csc_matrix(old_A, dtype=np.float64)
    new_A = sparse.csc_matrix(new_A, dtype=np.float64)
    if not (0.0 <= float(min_overlap) <= 1.0):
        raise InputError("min_overlap", f"must be in [0, 1], got {min_overlap!r}")
    if old_A.shape[0] != new_A.shape[0]:
        raise InputError("new_A", f"has {new_A.shape[0]} pixels, old_A {old_A.shape[0]}")
    if dims is not None and int(np.prod(dims)) != new_A.shape[0]:
        raise InputError(
            "dims", f"{tuple(dims)} gives {int(np.prod(dims))} pixels, A has {new_A.shape[0]}"
        )
    if old_manual.size != old_A.shape[1]:
        raise InputError(
            "old_manual", f"has {old_manual.size} decisions for {old_A.shape[1]} old components"
        )
    out = np.zeros(new_A.shape[1], np.int8)
    decided = np.flatnonzero(old_manual)
    if decided.size == 0 or new_A.shape[1] == 0:
        return out

    def unit(M):
        n = np.sqrt(np.asarray(M.multiply(M).sum(axis=0)).ravel())
        n[n == 0] = 1.0
        return M @ sparse.diags(1.0 / n)

    sim = (unit(old_A[:, decided]).T @ unit(new_A)).toarray()  # (n_decided, K_new)
    r, c = linear_sum_assignment(-sim)
    ok = sim[r, c] >= float(min_overlap)
    out[c[ok]] = old_manual[decided[r[ok]]]
    return out
