"""The curation model of one CNMF result, without Qt or a viewer.

:class:`CurationSession` is what the Evaluation dock curates: the estimates,
their metrics and dF/F, the manual decisions
(:class:`~napari_caiman.engine.curation.Curation`), the selection, the
accepted set (thresholds overridden by the decisions), hand edits (merge,
delete, refit), the decisions sidecar (autosave) and the results file
(save, export). The widget holds one, fills the thresholds from its sliders
and shows what the session says; everything here runs (and is tested)
headless::

    s = CurationSession(estimates, summary, params, "raw")
    s.metrics, s.F_dff = step.metrics, step.F_dff        # after Evaluate
    s.update({"min_SNR": 2.5, "rval_thr": 0.85, ...})     # -> s.accepted
    s.select(3); s.decide("reject")                        # -> autosaved when s.path is set
    s.select(4, add=True); new = s.merge_picked()
    s.save("results.hdf5", params)                         # results + curation, atomic
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..engine import component_edits as edits
from ..engine.curation import (
    Curation,
    load_curation_sidecar,
    save_curation_sidecar,
    transfer_curation,
)
from ..engine.errors import InputError
from ..engine.evaluation import apply_thresholds
from ..engine.params import CaimanParams

__all__ = ["CurationSession"]


@dataclass
class CurationSession:
    """Everything the Evaluation dock curates: one CNMF result and its evaluation.

    Attributes
    ----------
    estimates : Estimates
    summary : SummaryImages-like or None
        ``.mean``, ``.corr`` ... (for saving and the layers).
    params : CaimanParams
    name : str
        Prefix of the result's layers (``"<name> contours"`` ...).
    metrics : Metrics or None
        None until evaluated.
    F_dff : (K, T) array or None
    curation : Curation
    path : Path or None
        Results file: decisions are autosaved next to it.
    motion, provenance : dict or None
        Carried into saved files.
    unsaved_edits : bool
        The components were edited (merge, delete, refit) or decisions could
        not be autosaved since the result was last saved or loaded.
    thresholds : dict
        Keyword arguments of ``apply_thresholds`` last given to :meth:`update`.
    accepted : (K,) bool
        Final status (thresholds + manual), set by :meth:`update`.
    selected : int or None
        The selected component; ``picked`` the components for merge/delete.
    """

    estimates: Any
    summary: Any
    params: Any
    name: str
    metrics: Any = None
    F_dff: Any = None
    curation: Curation = None  # type: ignore[assignment]
    path: Path | None = None
    motion: Any = None
    provenance: dict[str, Any] = field(default_factory=dict)
    unsaved_edits: bool = False
    thresholds: dict[str, Any] = field(default_factory=dict)
    accepted: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    selected: int | None = None
    picked: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Start with no manual decisions when none are given."""
        if self.curation is None:
            self.curation = Curation.empty(self.estimates.n_components)
        if self.path is not None:
            self.path = Path(self.path)
        self.provenance = dict(self.provenance or {})

    @classmethod
    def from_results(
        cls, results: Any, path: str | Path | None = None, name: str | None = None
    ) -> CurationSession:
        """Return a session of an engine ``Results`` (a loaded file).

        The decisions come from the file, or from its sidecar when that is newer and has as many
        components.

        Raises
        ------
        InputError
            The results hold no CNMF components.
        """
        path = None if path is None else Path(path)
        name = name or (path.stem if path is not None else "results")
        if results.estimates is None:
            where = repr(str(path)) if path is not None else repr(name)
            raise InputError("path", f"{where} holds no CNMF components")
        curation = results.curation
        side = load_curation_sidecar(path) if path is not None else None
        if side is not None and side.n_components == results.estimates.n_components:
            if curation is None or side.updated > curation.updated:
                curation = side
        return cls(
            estimates=results.estimates,
            summary=SimpleNamespace(**results.summary) if results.summary else None,
            params=results.params,
            name=name,
            metrics=results.metrics,
            F_dff=results.F_dff,
            curation=curation,
            path=path,
            motion=results.motion,
            provenance=results.provenance if isinstance(results.provenance, dict) else {},
        )

    # -- state ---------------------------------------------------------------------------------
    @property
    def n_components(self) -> int:
        """Return the number of components of the curated result."""
        return int(self.estimates.n_components)

    @property
    def has_unsaved_curation(self) -> bool:
        """True when closing this session would lose work.

        Edits, or manual decisions of a result that has no file (with a file they are autosaved).
        """
        if self.unsaved_edits:
            return True
        return self.path is None and bool(np.any(self.curation.manual != 0))

    def unsaved_text(self) -> str:
        """Return what would be lost, e.g. ``"3 decisions by hand and edited components"``."""
        n = int(np.count_nonzero(self.curation.manual))
        what = f"{n} decision{'s' if n != 1 else ''} by hand"
        return what + (" and edited components" if self.unsaved_edits else "")

    def sizes(self) -> np.ndarray:
        """(K,) pixels in each footprint."""
        if self.metrics is not None:
            return np.asarray(self.metrics.size)
        return np.diff((self.estimates.A > 0).tocsc().indptr)

    # -- thresholds ------------------------------------------------------------------------------
    def threshold_accepted(self, thresholds: dict[str, Any] | None = None) -> np.ndarray:
        """(K,) bool: the thresholds alone (the CNMF split, or all True, before evaluation)."""
        th = self.thresholds if thresholds is None else thresholds
        K = self.n_components
        if self.metrics is None:
            idx = self.estimates.idx_components
            return np.ones(K, bool) if idx is None else edits.threshold_mask(idx, K)
        good, _ = apply_thresholds(self.metrics, **th)
        return edits.threshold_mask(good, K)

    def update(self, thresholds: dict[str, Any] | None = None) -> np.ndarray:
        """Re-apply ``thresholds`` (kept for later calls) and the manual decisions.

        The final accepted set, also in :attr:`accepted`.
        """
        if thresholds is not None:
            self.thresholds = dict(thresholds)
        self.accepted = self.curation.accepted(self.threshold_accepted())
        return self.accepted

    # -- selection -------------------------------------------------------------------------------
    def select(self, k: int | None, *, add: bool = False) -> None:
        """Select component ``k``.

        ``add`` picks it too (for merge/delete) instead of replacing the picked set; None clears
        both.

        Raises
        ------
        InputError
            ``k`` is not a component.
        """
        if k is not None and not 0 <= k < self.n_components:
            raise InputError("component", f"must be in [0, {self.n_components}), got {k}")
        self.selected = k
        if k is None:
            self.picked = []
        elif add:
            self.picked = [*[p for p in self.picked if p != k], k]
        else:
            self.picked = [k]

    def select_many(self, components: list[int]) -> None:
        """Pick ``components`` (e.g. table rows); the last one is the selected one."""
        if components:
            self.picked = [int(c) for c in components]
            self.selected = self.picked[-1]

    def next_component(self, delta: int, order: Any = None, rank: Any = None) -> int | None:
        """Return the component ``delta`` rows after the selected one in ``order``, wrapping around.

        ``order`` is the table's rows: component per row, ``rank`` row per component, -1 = filtered
        out; all components in index order when not given.
        """
        K = self.n_components
        if K == 0:
            return None
        if order is None or rank is None or len(rank) != K or len(order) == 0:
            order = rank = np.arange(K)
        row = -1 if self.selected is None else int(rank[self.selected])
        if row < 0 and self.selected is not None and delta < 0:
            row = 0  # the selection is filtered out: "previous" starts from the end
        return int(order[(row + delta) % len(order)])

    def describe(self, k: int | None = None) -> str:
        """One line about component ``k`` (default: the selected one)."""
        k = self.selected if k is None else k
        if k is None or k >= self.n_components:
            return "click an ROI (keys a/r/u, n/p)"
        snr = r = "–"
        if self.metrics is not None:
            snr = f"{float(self.metrics.SNR_comp[k]):.2f}"
            r = f"{float(self.metrics.r_values[k]):.2f}"
        status = "accepted" if k < len(self.accepted) and self.accepted[k] else "rejected"
        manual = " (by hand)" if int(self.curation.manual[k]) else ""
        picked = f"; picked {self.picked}" if len(self.picked) > 1 else ""
        return f"#{k}: SNR {snr}, r {r}, {status}{manual}{picked}"

    def traces(self, k: int) -> dict[str, Any]:
        """Return what the traces view shows of component ``k``.

        Raw, C, S, dF/F (or None), title.
        """
        est = self.estimates
        C = np.asarray(est.C[k])
        status = "accepted" if self.accepted[k] else "rejected"
        return {
            "raw": C + np.asarray(est.YrA[k]),
            "C": C,
            "S": np.asarray(est.S[k]),
            "dff": None if self.F_dff is None else np.asarray(self.F_dff[k]),
            "title": f"{self.name} — component {k} ({status})",
        }

    # -- decisions -------------------------------------------------------------------------------
    def decide(self, decision: str, idx: Any = None) -> bool:
        """Accept / reject / clear the picked components (or ``idx``) by hand.

        The thresholds are re-applied; False when there was nothing to decide. Call :meth:`autosave`
        after.
        """
        idx = self.picked if idx is None else idx
        if idx is None or len(np.atleast_1d(idx)) == 0:
            return False
        self.curation.set(np.atleast_1d(np.asarray(idx, dtype=np.int64)), decision)
        self.update()
        return True

    def autosave(self) -> Path | None:
        """Write the decisions sidecar next to the results file (None: no file).

        Raises
        ------
        InputError
            The sidecar cannot be written (the session then counts as unsaved).
        """
        if self.path is None:
            return None
        try:
            return save_curation_sidecar(self.path, self.curation)
        except InputError:
            self.unsaved_edits = True  # the decisions are in memory only
            raise

    # -- hand edits ------------------------------------------------------------------------------
    def replace_estimates(
        self, est: Any, rows: np.ndarray, *, manual_new: int = 0, snr_new: Any = None
    ) -> None:
        """Swap in edited estimates.

        Side data follows ``rows`` (old index per new component, -1 = new component): decisions,
        SNR, r-values, dF/F; the shape and duplicate metrics are recomputed on the edited
        footprints.
        """
        from ..engine.duplicates import duplicate_scores
        from ..engine.evaluation import Metrics
        from ..engine.shapes import shape_metrics

        manual = edits.take_rows(self.curation.manual, rows, fill=np.int8(manual_new)).astype(
            np.int8
        )
        if self.metrics is not None:
            m = self.metrics
            size = np.diff((est.A > 0).tocsc().indptr).astype(np.int64)
            snr = edits.take_rows(m.SNR_comp, rows, fill=np.nan if snr_new is None else snr_new)
            gsig = self.params.get("gSig") if self.params is not None else None
            shape = shape_metrics(est.A, est.dims, gsig or (4,) * len(est.dims))
            dup = duplicate_scores(est.A, est.C, snr) if m.dup_score is not None else (None, None)
            self.metrics = Metrics(
                SNR_comp=snr,
                r_values=edits.take_rows(m.r_values, rows),
                size=size,
                cnn_preds=edits.take_rows(m.cnn_preds, rows),
                cnn_available=m.cnn_available,
                n_samples=m.n_samples,
                solidity=shape.solidity if m.solidity is not None else None,
                n_pieces=shape.n_pieces if m.n_pieces is not None else None,
                area_ratio=shape.area_ratio if m.area_ratio is not None else None,
                elongation=shape.elongation if m.elongation is not None else None,
                area_px=shape.area_px if m.area_ratio is not None else None,
                anatomy=edits.take_rows(m.anatomy, rows, fill=np.bool_(False)),
                dup_score=dup[0],
                dup_of=dup[1],
            )
        self.F_dff = edits.take_rows(self.F_dff, rows)
        self.estimates = est
        self.curation = Curation(manual)
        self.unsaved_edits = True  # the file (if any) still holds the old components
        self.selected, self.picked = None, []
        self.update()

    def merge_picked(self) -> int:
        """Merge the picked components (2+) into one; return the merged component's index.

        Its SNR is computed at once; its r-value and dF/F need a re-evaluation.
        """
        from ..engine.evaluation import event_exceptionality

        est, rows = edits.merge_components(self.estimates, self.picked)
        new = int(np.flatnonzero(rows < 0)[0])
        snr = None
        if self.metrics is not None:
            raw = np.asarray(est.C[new] + est.YrA[new])[None]
            snr = float(event_exceptionality(raw, N=max(int(self.metrics.n_samples), 1))[0][0])
        self.replace_estimates(est, rows, manual_new=0, snr_new=snr)
        return new

    def delete_picked(self) -> None:
        """Remove the picked components.

        Raises
        ------
        InputError
            Nothing is picked.
        """
        if not self.picked:
            raise InputError("component", "pick components to delete first")
        est, rows = edits.delete_components(self.estimates, self.picked)
        self.replace_estimates(est, rows)

    def refit_seeds(self, painted: Any = None) -> Any:
        """``Ain`` of a seeded refit: the accepted footprints plus the ``painted`` ones."""
        return edits.refit_seeds(self.estimates, np.flatnonzero(self.accepted), painted)

    def take_refit(self, estimates: Any) -> None:
        """Curate the refit's ``estimates``.

        Decisions follow the footprints, the metrics are dropped (re-evaluate), the selection is
        cleared.
        """
        manual = transfer_curation(
            self.estimates.A, self.curation.manual, estimates.A, estimates.dims
        )
        self.estimates = estimates
        self.curation = Curation(manual)
        self.unsaved_edits = True
        self.metrics = self.F_dff = None
        self.selected, self.picked = None, []
        self.update()

    def train_classifier(self, path: str | Path | None = None) -> Any:
        """Train a classifier on the manual decisions and apply it to the undecided components.

        The classifier (engine.classifier) leaves manual decisions as they are (they still win) and
        is saved to ``path``.

        Raises
        ------
        InputError
            Not evaluated yet.
        """
        from ..engine.classifier import train_classifier

        if self.metrics is None:
            raise InputError("result", "evaluate first: the classifier learns from the metrics")
        model = train_classifier(
            [(self.metrics, self.estimates, self.curation.manual)], info={"trained_on": self.name}
        )
        gsig = self.params.get("gSig") if self.params is not None else None
        self.metrics.classifier_prob = model.predict(self.metrics, self.estimates, gsig or (4, 4))
        self.update()
        if path:
            model.save(path)
        return model

    # -- files -----------------------------------------------------------------------------------
    def results(self, params: Any) -> Any:
        """Return the session as an engine ``Results`` (what :meth:`save` writes) with ``params``."""
        from ..engine.results import Results, summary_to_dict
        from ..io.provenance import make_provenance

        summary = None
        if self.summary is not None:
            summary = (
                summary_to_dict(self.summary)
                if hasattr(self.summary, "std") and self.summary.std is not None
                else {k: np.asarray(v) for k, v in vars(self.summary).items() if v is not None}
            )
        prov = dict(self.provenance) or make_provenance()
        th = self.thresholds
        limits = {k: th.get(k) or None for k in ("min_size", "max_size")}
        if params is not None and any(k in th for k in limits):
            # the size limits curated with are the file's parameters, as a headless run's
            own = isinstance(params, CaimanParams)
            params = (params.copy() if own else CaimanParams.from_dict(params)).update(limits)
        # ... and, as files saved before they were parameters, in the provenance
        prov["evaluation"] = {k: v or 0 for k, v in limits.items()}
        self.estimates.idx_components = np.flatnonzero(self.threshold_accepted())
        return Results(
            params=params,
            dims=tuple(self.estimates.dims),
            motion=self.motion,
            summary=summary,
            provenance=prov,
            estimates=self.estimates,
            metrics=self.metrics,
            F_dff=self.F_dff,
            curation=self.curation.copy(),
        )

    def save(self, path: str | Path, params: Any, *, sidecar: bool = True) -> Path:
        """Write results + curation atomically; later decisions autosave next to this file.

        With ``sidecar``, the decisions sidecar too (:meth:`autosave`).
        """
        from ..io.results_file import save_results

        out = Path(save_results(path, self.results(params)))
        self.path = out
        self.unsaved_edits = False
        if sidecar:
            self.autosave()
        return out

    def export(self, kind: str, path: str | Path) -> Path:
        """Export the accepted components: ``kind`` is 'nwb', 'csv' or 'tiff'."""
        from ..io import export

        idx = np.flatnonzero(self.accepted)
        est, fr = self.estimates, float(self.params["fr"])
        if kind == "nwb":
            return export.export_nwb(
                path, est, fr=fr, idx=idx, F_dff=self.F_dff, metrics=self.metrics
            )
        if kind == "csv":
            return export.export_csv(path, np.asarray(est.C)[idx], ids=idx, fr=fr)
        if kind == "tiff":
            return export.export_masks_tiff(path, est, idx=idx)
        raise InputError("kind", f"must be 'nwb', 'csv' or 'tiff', got {kind!r}")

    def default_save_path(self, source: str | Path | None = None) -> Path:
        """``<folder of source>/<name, no spaces>.hdf5`` (the current folder without a source)."""
        folder = Path.cwd()
        if source:
            p = Path(source)
            folder = p if p.is_dir() else p.parent
        stem = "_".join(self.name.split()) or "results"
        return folder / f"{stem}.hdf5"
