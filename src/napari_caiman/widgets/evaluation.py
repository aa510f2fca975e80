"""The "Evaluation / curation" dock widget.

Takes a CNMF result (from the CNMF dock's ``last_result``, or a results
file), computes the quality metrics in a worker (Evaluate), and lets the user
curate: the SNR / r-value sliders re-apply the thresholds to the stored
metrics (no recompute) and recolour the contours at once (accepted cyan,
rejected magenta); clicks and keys (``a`` accept, ``r`` reject, ``u``
clear, ``n`` / ``p`` next / previous) make manual decisions, kept apart from
the thresholds (:class:`~napari_caiman.engine.curation.Curation`) and
autosaved next to the results file. Two docks come with it: "Traces" (the
selected component's traces) and "Components" (a sortable table).

A results file opened with File > Open (the npe2 results reader) is taken up
as if loaded with "Load results…", unless the widget holds curation that is
not saved anywhere: then it asks (save / discard / keep the current one).

Driving it from a test::

    widget = EvaluationWidget(viewer)
    widget.set_result(estimates, summary, params, "raw", build_layers=True)
    widget.movie.value = viewer.layers["raw"]
    widget.runner.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.runner.is_running, timeout=30_000)
    widget.min_SNR.value = 4.0              # recolours at once
    widget.select_component(3); widget.decide("accept")
    widget.save(path)                        # results + curation (atomic)
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FloatSlider,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.layers import Labels, Layer, Shapes
from napari.utils.notifications import show_info
from qtpy.QtCore import QItemSelectionModel, QTimer
from qtpy.QtWidgets import QFileDialog, QMessageBox, QTableView

from ..engine.curation import Curation, save_curation_sidecar
from ..engine.errors import InputError
from ..engine.evaluation import apply_thresholds, thresholds_from_params
from ..engine.params import parse_kwargs
from ..engine.progress import Progress
from ..layers import evaluation as ev
from ..layers.cnmf import cnmf_layer_data, labels_to_seeds, layer_names
from ._backend import BackendEdit, check_backend
from ._dock import StatusLabel, make_scrollable
from ._keys import KeyBindings, named_key_function
from ._layers import choose_by_name, movie_layer_choices, same_layer, unwrap, upsert_layer
from ._memory import memory_limit_edit, with_memory_limit
from ._presets import PresetBar, set_field
from ._process import in_process_if_available
from ._runner import StepRunner
from ._settings import step_names
from ._state import CnmfRun, viewer_state
from .components import DOCK_NAME as TABLE_DOCK
from .components import ComponentsDock, ComponentTableModel
from .traces import DOCK_NAME as TRACES_DOCK
from .traces import TracesPlot

if TYPE_CHECKING:
    import napari

#: Threshold sliders: name -> (min, max, step, tooltip).
_THRESHOLDS = {
    "min_SNR": (0.0, 20.0, 0.05, "Accept when the trace's SNR is at least this (or r >= rval_thr)"),
    "SNR_lowest": (0.0, 5.0, 0.05, "Reject below this SNR whatever the r-value"),
    "rval_thr": (
        -1.0,
        1.0,
        0.01,
        "Accept when the spatial r-value is at least this (or SNR >= min_SNR)",
    ),
    "rval_lowest": (-1.0, 1.0, 0.01, "Reject below this r-value whatever the SNR"),
    # shape (engine.shapes; our own parameter group): junk fragments are rejected whatever their SNR
    "min_solidity": (0.0, 1.0, 0.01, "Reject footprints less convex than this (area / convex-hull area)"),
    "max_pieces": (1.0, 10.0, 1.0, "Reject footprints in more pieces than this (each >= 10 % of the pixels)"),
    "min_area_ratio": (0.0, 2.0, 0.01, "Reject footprints smaller than this x a disc of radius 2 gSig"),
    "max_area_ratio": (0.5, 20.0, 0.1, "Reject footprints larger than this x a disc of radius 2 gSig"),
    "max_duplicate": (0.0, 1.0, 0.01, "Reject a weak copy of a stronger accepted component: min(fraction of its "
                      "footprint inside it, trace correlation) above this (1 = off)"),
}

RESULTS_FILTER = "Results (*.hdf5 *.h5)"

#: Parameters the evaluation step uses (what it takes from a preset).
STEP_NAMES = step_names("quality")

#: CNN thresholds, taken from the kwargs text (or the result's parameters).
_CNN_THRESHOLDS = ("use_cnn", "min_cnn_thr", "cnn_lowest")

#: Whether the use_cnn note was shown in this session.
_CNN_NOTED = False

#: Layer metadata keys the npe2 results reader sets (see io/results_reader.py).
RESULTS_KEY = "napari_caiman_results"
RESULTS_PATH_KEY = "napari_caiman_results_path"


_unwrap = unwrap  # napari wraps what plugins get from objects of ``napari*`` modules


def _decide_accept(w: EvaluationWidget) -> None:
    w.decide("accept")


def _decide_reject(w: EvaluationWidget) -> None:
    w.decide("reject")


def _decide_clear(w: EvaluationWidget) -> None:
    w.decide("clear")


def _step_next(w: EvaluationWidget) -> None:
    w.step(1)


def _step_previous(w: EvaluationWidget) -> None:
    w.step(-1)


#: Curation keys: key -> (name of the bound function, what it does).
CURATION_KEYS: dict[str, tuple[str, Callable[[Any], None]]] = {
    "a": ("napari_caiman_accept", _decide_accept),
    "r": ("napari_caiman_reject", _decide_reject),
    "u": ("napari_caiman_clear", _decide_clear),
    "n": ("napari_caiman_next", _step_next),
    "p": ("napari_caiman_previous", _step_previous),
}


def _report_key_error(w: EvaluationWidget, exc: Exception) -> None:
    w.runner.report_error(exc)


@dataclass
class CurationSession:
    """Everything the widget curates: one CNMF result and its evaluation.

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

    def __post_init__(self) -> None:
        if self.curation is None:
            self.curation = Curation.empty(self.estimates.n_components)

    @property
    def n_components(self) -> int:
        return int(self.estimates.n_components)

    @property
    def has_unsaved_curation(self) -> bool:
        """True when closing this session would lose work: edits, or manual
        decisions of a result that has no file (with a file they are autosaved)."""
        if self.unsaved_edits:
            return True
        return self.path is None and bool(np.any(self.curation.manual != 0))


class EvaluationWidget(Container):
    """Evaluate CNMF components, threshold them live, curate by hand, save, export.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari when opened from the Plugins menu.

    Attributes
    ----------
    session : CurationSession or None
        The result being curated.
    runner : StepRunner
        Evaluate (metrics in a worker); ``runner.is_running``.
    refit_runner : StepRunner
        Refit with seeds (CNMF in a worker).
    backend : BackendEdit
        native | caiman for Evaluate and Refit (caiman: CaImAn's CNN too).
    kwargs : LineEdit
        Other quality parameters (``use_cnn``, ``min_cnn_thr`` ...).
    presets : PresetBar
        Save / Load preset (JSON of CaImAn names).
    accepted : (K,) bool
        Final status (thresholds + manual), updated by :meth:`apply`.
    selected : int or None
        The selected component; ``picked`` the components for merge/delete.
    confirm : callable(str) -> bool
        Asks before replacing the result after a refit (tests replace it).
    ask_replace : callable(str) -> str
        Asks what to do with unsaved curation before another result replaces
        it: ``"save"``, ``"discard"`` or ``"keep"`` (tests replace it).
    ask_save_path : callable(str) -> str
        The "Save results" file dialog: start path -> chosen path (``""`` =
        cancelled; tests replace it).
    ask_open_path : callable() -> str
        The "Load results" file dialog (``""`` = cancelled; tests replace it).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        q = thresholds_from_params(None)
        self.source_label = StatusLabel(
            value="no result: run CNMF or load a results file", label="result"
        )
        self.take_button = PushButton(text="Use CNMF result")
        self.load_button = PushButton(text="Load results…")
        self.movie = ComboBox(
            label="movie",
            choices=self._movie_choices,
            tooltip="The (motion-corrected) movie CNMF ran on, for the metrics",
        )
        self.backend = BackendEdit()
        self.kwargs = LineEdit(
            value="",
            label="kwargs",
            tooltip="Other quality parameters as a dict, e.g. {'use_cnn': True, 'min_cnn_thr': 0.9}",
        )
        self.memory_limit = memory_limit_edit()
        self.kwargs.native.setPlaceholderText("e.g. {'use_cnn': True, 'min_cnn_thr': 0.9}")
        self.runner = StepRunner("Evaluation", self.run)
        self.runner.run_button.text = "Evaluate"
        sliders = []
        for name, (lo, hi, step, tip) in _THRESHOLDS.items():
            slider = FloatSlider(
                value=float(q[name]), min=lo, max=hi, step=step, label=name, name=name, tooltip=tip
            )
            setattr(self, name, slider)
            sliders.append(slider)
        self.min_size = SpinBox(
            value=0, min=0, max=1_000_000, label="min_size", tooltip="Pixels; 0 = no limit"
        )
        self.max_size = SpinBox(
            value=0, min=0, max=10_000_000, label="max_size", tooltip="Pixels; 0 = no limit"
        )
        self.show_filter = ComboBox(value="all", choices=list(ev.SHOW_MODES), label="show")
        self.counts = Label(value="", label="counts")
        self.component_label = StatusLabel(value="click an ROI (keys a/r/u, n/p)", label="component")
        self.accept_button = PushButton(text="Accept (a)")
        self.reject_button = PushButton(text="Reject (r)")
        self.clear_button = PushButton(text="Clear (u)")
        self.prev_button = PushButton(text="◀ (p)")
        self.next_button = PushButton(text="▶ (n)")
        decide_row = Container(
            widgets=[
                self.accept_button,
                self.reject_button,
                self.clear_button,
                self.prev_button,
                self.next_button,
            ],
            layout="horizontal",
            labels=False,
        )
        decide_row.margins = (0, 0, 0, 0)
        self.merge_button = PushButton(
            text="Merge picked", tooltip="Shift+click ROIs (or table rows) to pick 2+"
        )
        self.delete_button = PushButton(text="Delete picked")
        self.classifier_button = PushButton(
            text="Train classifier",
            tooltip="Learn accept/reject from your decisions, apply it to the undecided "
            "components and save the model (.json) for other sessions",
        )
        edit_row = Container(
            widgets=[self.merge_button, self.delete_button, self.classifier_button],
            layout="horizontal",
            labels=False,
        )
        edit_row.margins = (0, 0, 0, 0)
        self.seeds = ComboBox(
            label="seeds",
            choices=self._seed_choices,
            tooltip="Labels layer with painted missed neurons",
        )
        self.new_seeds_button = PushButton(text="New seeds layer")
        self.refit_runner = StepRunner("Refit", self.refit)
        self.refit_runner.run_button.text = "Refit with seeds"
        self.save_button = PushButton(text="Save results…")
        self.nwb_button = PushButton(text="NWB…")
        self.csv_button = PushButton(text="CSV…")
        self.tiff_button = PushButton(text="Masks TIFF…")
        export_row = Container(
            widgets=[self.nwb_button, self.csv_button, self.tiff_button],
            layout="horizontal",
            labels=False,
            label="export accepted",
        )
        export_row.margins = (0, 0, 0, 0)
        source_row = Container(
            widgets=[self.take_button, self.load_button], layout="horizontal", labels=False
        )
        source_row.margins = (0, 0, 0, 0)
        self.presets = PresetBar(
            "Evaluation",
            self,
            form_names=("backend", *_THRESHOLDS),
            step_names=STEP_NAMES,
            get_values=self._preset_values,
            report_error=self.runner.report_error,
        )
        super().__init__(
            widgets=[
                self.source_label,
                source_row,
                self.movie,
                self.backend,
                self.backend.message,
                self.kwargs,
                self.memory_limit,
                self.runner,
                *sliders,
                self.min_size,
                self.max_size,
                self.presets,
                self.show_filter,
                self.counts,
                self.component_label,
                decide_row,
                edit_row,
                self.seeds,
                self.new_seeds_button,
                self.refit_runner,
                self.save_button,
                export_row,
            ]
        )
        make_scrollable(self)
        self.session: CurationSession | None = None
        self.accepted = np.zeros(0, bool)
        self.selected: int | None = None
        self.picked: list[int] = []
        self.confirm: Callable[[str], bool] = self._ask
        self.ask_replace: Callable[[str], str] = self._ask_replace
        self.ask_save_path: Callable[[str], str] = self._ask_save_path
        self.ask_open_path: Callable[[], str] = self._ask_open_path
        self.ask_classifier_path: Callable[[str], str] = self._ask_classifier_path
        # results objects already taken up (by id; Results is not hashable)
        self._seen_results: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._opened: list[Layer] = []
        self.traces: TracesPlot | None = None
        self.table_view: QTableView | None = None
        self.components_dock: ComponentsDock | None = None
        self.table_model = ComponentTableModel()
        self.timings: dict[str, float] = {}
        self._owner = np.zeros(0, np.int64)
        self._colors: np.ndarray | None = None
        self._hooked: list[Layer] = []
        self._contour_data: tuple[Any, list] | None = None  # (contours layer, its data)
        self._syncing_table = False

        for slider in sliders:
            slider.changed.connect(self.apply)
        self.min_size.changed.connect(self.apply)
        self.max_size.changed.connect(self.apply)
        self.show_filter.changed.connect(self.apply)
        self.take_button.changed.connect(self._on_take)
        self.load_button.changed.connect(self._on_load)
        self.accept_button.changed.connect(lambda *_: self.decide("accept"))
        self.reject_button.changed.connect(lambda *_: self.decide("reject"))
        self.clear_button.changed.connect(lambda *_: self.decide("clear"))
        self.next_button.changed.connect(lambda *_: self.step(1))
        self.prev_button.changed.connect(lambda *_: self.step(-1))
        self.merge_button.changed.connect(self._guard(self.merge_picked))
        self.delete_button.changed.connect(self._guard(self.delete_picked))
        self.classifier_button.changed.connect(self._guard(self._on_train_classifier))
        self.new_seeds_button.changed.connect(self._guard(self.new_seeds_layer))
        self.save_button.changed.connect(self._on_save)
        for kind, button in (
            ("nwb", self.nwb_button),
            ("csv", self.csv_button),
            ("tiff", self.tiff_button),
        ):
            button.changed.connect(partial(self._on_export, kind))
        viewer.layers.events.inserted.connect(self._on_layers_changed)
        viewer.layers.events.removed.connect(self._on_layers_changed)
        viewer.dims.events.current_step.connect(self._on_step)
        self._keys = KeyBindings()
        self._key_functions = {
            key: named_key_function(self, name, action, _report_key_error)
            for key, (name, action) in CURATION_KEYS.items()
        }
        self._bind_keys(viewer)
        self._closed = False
        self._watch_close()
        self._state = viewer_state(viewer)
        self._state.cnmf_done.connect(self._on_cnmf_done)
        if self._find_cnmf() is not None:
            self._guard(self.take_cnmf_result)()
        else:  # results opened with File > Open before this dock was
            self._opened = [layer for layer in viewer.layers if RESULTS_KEY in layer.metadata]
            self._take_opened()

    # -- helpers ----------------------------------------------------------------------
    def _guard(self, func: Callable[..., Any]) -> Callable[..., None]:
        """Run ``func`` from a button; errors become notifications."""

        def call(*_: Any) -> None:
            try:
                func()
            except Exception as exc:
                self.runner.report_error(exc)

        return call

    def _bind_keys(self, provider: Any) -> None:
        """a / r / u / n / p on ``provider`` (the viewer, or a result layer)."""
        for key, func in self._key_functions.items():
            self._keys.bind(provider, key, func)

    def _watch_close(self) -> None:
        """Unbind the keys and clicks when the dock is closed (napari's "x"
        takes the widget out of its dock) or the widget is deleted."""
        from qtpy.QtCore import QEvent, QObject

        widget = self

        class _CloseFilter(QObject):
            def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802
                if event.type() == QEvent.Type.ParentChange and obj.parent() is None:
                    widget.close_bindings()
                return False

        self._close_filter = _CloseFilter(self.native)
        self.native.installEventFilter(self._close_filter)
        self.native.destroyed.connect(lambda *_: self._keys.clear())

    def close_bindings(self) -> None:
        """Remove this widget's keys and mouse callbacks from the viewer and layers."""
        self._closed = True
        self._keys.clear()
        for layer in self._hooked:
            with contextlib.suppress(ValueError):
                layer.mouse_drag_callbacks.remove(self._on_click)
        self._hooked = []

    def _ask(self, text: str) -> bool:
        answer = QMessageBox.question(self.native, "Refit with seeds", text)
        return answer == QMessageBox.StandardButton.Yes

    def _ask_replace(self, text: str) -> str:
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self.native,
            "Unsaved curation",
            text,
            buttons.Save | buttons.Discard | buttons.Cancel,
            buttons.Cancel,
        )
        return {buttons.Save: "save", buttons.Discard: "discard"}.get(answer, "keep")

    def _ask_classifier_path(self, start: str) -> str:
        path, _f = QFileDialog.getSaveFileName(
            self.native, "Save classifier", start, "Classifier (*.json)"
        )
        return path

    def train_classifier(self, path: str | Path | None = None) -> Any:
        """Train a classifier on the manual decisions (engine.classifier), apply it to
        the undecided components (manual decisions still win) and save it to ``path``."""
        from ..engine.classifier import train_classifier

        s = self.session
        if s is None or s.metrics is None:
            raise InputError("result", "evaluate first: the classifier learns from the metrics")
        model = train_classifier(
            [(s.metrics, s.estimates, s.curation.manual)], info={"trained_on": s.name}
        )
        gsig = s.params.get("gSig") if s.params is not None else None
        s.metrics.classifier_prob = model.predict(s.metrics, s.estimates, gsig or (4, 4))
        self.apply(full=True)
        if path:
            model.save(path)
        self.runner.status.value = (
            f"classifier: {model.info['n_accepted']} accepted / {model.info['n_rejected']} rejected "
            f"decisions learnt" + (f", saved {Path(path).name}" if path else "")
        )
        return model

    def _on_train_classifier(self) -> None:
        s = self.session
        start = str(s.path.with_suffix(".classifier.json")) if s is not None and s.path else "classifier.json"
        path = self.ask_classifier_path(start)
        if path:
            self.train_classifier(path)

    def _ask_save_path(self, start: str) -> str:
        path, _f = QFileDialog.getSaveFileName(self.native, "Save results", start, RESULTS_FILTER)
        return path

    def may_replace(self, new: str) -> bool:
        """Whether the current result may be replaced by ``new`` (a name for
        messages): yes when nothing unsaved would be lost, else the user
        chooses to save first (yes once saved), discard (yes) or keep (no)."""
        s = self.session
        if s is None or not s.has_unsaved_curation:
            return True
        n = int(np.count_nonzero(s.curation.manual))
        what = f"{n} decision{'s' if n != 1 else ''} by hand"
        if s.unsaved_edits:
            what += " and edited components"
        answer = self.ask_replace(
            f"The curation of {s.name!r} ({what}) is not saved. Save it before "
            f"curating {new}?\n\nSave: choose a file, then switch. Discard: switch and "
            f"lose it. Cancel: keep curating {s.name!r}."
        )
        if answer == "save":
            return self._on_save() is not None
        return answer == "discard"

    def _movie_choices(self, *_: Any) -> list[tuple[str, Layer]]:
        return movie_layer_choices(self._viewer)

    def _seed_choices(self, *_: Any) -> list[tuple[str, Any]]:
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Labels)
            and layer.metadata.get("napari_caiman", {}).get("kind") != "cnmf footprints"
        ]

    def _on_layers_changed(self, event: Any = None) -> None:
        self.movie.reset_choices()
        self.seeds.reset_choices()
        layer = getattr(event, "value", None)
        if (
            event is not None
            and event.type == "inserted"
            and isinstance(layer, Layer)
            and RESULTS_KEY in layer.metadata
        ):
            # a reader adds its layers one by one: take the result once all are in
            if not self._opened:
                QTimer.singleShot(0, self._take_opened)
            self._opened.append(layer)

    def _take_opened(self) -> None:
        """Curate the results that File > Open just added (newest first wins)."""
        layers, self._opened = self._opened, []
        fresh: dict[int, tuple[Any, Layer]] = {}
        for layer in layers:
            results = _unwrap(layer.metadata.get(RESULTS_KEY))
            if results is None or self._seen_results.get(id(results)) is results:
                continue
            self._seen_results[id(results)] = results
            if getattr(results, "estimates", None) is not None:
                fresh[id(results)] = (results, layer)
        if not fresh:
            return
        results, layer = list(fresh.values())[-1]
        raw_path = layer.metadata.get(RESULTS_PATH_KEY)
        path = Path(raw_path) if raw_path else None
        name = path.stem if path is not None else layer.name.rsplit(" ", 1)[0]
        if not self.may_replace(repr(name)):
            self.runner.status.value = f"kept {self.session.name!r}; {name!r} not taken"
            show_info(
                f"The Evaluation dock keeps {self.session.name!r} (unsaved curation). "
                f"Save it, then use Load results… to curate {name!r}."
            )
            return
        contours = f"{name} contours"
        built = contours in self._viewer.layers and isinstance(
            self._viewer.layers[contours], Shapes
        )
        self._guard(partial(self.use_results, results, path, name=name, build_layers=not built))()

    def _layer(self, kind: str) -> Layer | None:
        if self.session is None:
            return None
        name = layer_names(self.session.name)[kind]
        return self._viewer.layers[name] if name in self._viewer.layers else None

    @property
    def contours_layer(self) -> Shapes | None:
        """The result's contours Shapes layer (None if removed)."""
        layer = self._layer("contours")
        return layer if isinstance(layer, Shapes) else None

    # -- choosing the result -------------------------------------------------------------
    def _find_cnmf(self) -> CnmfRun | None:
        """The newest CNMF result of this viewer (published by its CNMF dock)."""
        run = self._state.cnmf
        return run if run is not None and getattr(run.result, "estimates", None) is not None else None

    def _on_cnmf_done(self, run: CnmfRun) -> None:
        """A new CNMF result: curate it (asking first when unsaved curation would be lost)."""
        if self._closed:
            return
        s = self.session
        if s is not None and s.estimates is run.result.estimates:
            return
        if not self.may_replace(f"the new CNMF result of {run.movie!r}"):
            self.runner.status.value = f"kept {s.name!r}; the new CNMF result not taken"
            show_info(
                f"The Evaluation dock keeps {s.name!r} (unsaved curation); "
                "use 'Use CNMF result' to curate the new result."
            )
            return
        self._guard(self.take_cnmf_result)()

    def _on_take(self, *_: Any) -> None:
        if self.may_replace("the CNMF result"):
            self._guard(self.take_cnmf_result)()

    def take_cnmf_result(self) -> None:
        """Curate the CNMF dock's last result (its layers are already shown).

        Raises
        ------
        InputError
            No CNMF dock or no result yet.
        """
        run = self._find_cnmf()
        if run is None:
            raise InputError("result", "no CNMF result: run CNMF first, or load a results file")
        self.set_result(run.result.estimates, run.result.summary, run.params, run.movie or "cnmf")

    def _ask_open_path(self) -> str:
        path, _f = QFileDialog.getOpenFileName(self.native, "Load results", "", RESULTS_FILTER)
        return path

    def _on_load(self, *_: Any) -> None:
        path = self.ask_open_path()
        if path and self.may_replace(repr(Path(path).name)):
            self._guard(partial(self.load, path))()

    def load(self, path: str | Path) -> None:
        """Load a results file and show its layers; decisions come from the file
        (or its newer autosaved sidecar).

        Raises
        ------
        InputError
            The file cannot be read, or holds no CNMF components.
        """
        from ..io.results_file import load_results

        path = Path(path)
        self.use_results(load_results(path), path, build_layers=True)

    def use_results(
        self,
        results: Any,
        path: str | Path | None = None,
        *,
        name: str | None = None,
        build_layers: bool = True,
    ) -> None:
        """Curate an engine ``Results`` (e.g. read by the npe2 reader): as
        :meth:`load` without reading the file. ``build_layers=False`` uses the
        layers ``"<name> contours"`` ... already in the viewer.

        Raises
        ------
        InputError
            The results hold no CNMF components.
        """
        from ..engine.curation import load_curation_sidecar

        results = _unwrap(results)
        path = None if path is None else Path(path)
        name = name or (path.stem if path is not None else "results")
        if results.estimates is None:
            where = repr(str(path)) if path is not None else repr(name)
            raise InputError("path", f"{where} holds no CNMF components")
        self._seen_results[id(results)] = results
        curation = results.curation
        side = load_curation_sidecar(path) if path is not None else None
        if side is not None and side.n_components == results.estimates.n_components:
            if curation is None or side.updated > curation.updated:
                curation = side
        summary = SimpleNamespace(**results.summary) if results.summary else None
        quality = {k: results.params.get(k) for k in _THRESHOLDS}
        evaluation = (
            results.provenance.get("evaluation") if isinstance(results.provenance, dict) else None
        )
        self._drop_outline()
        self.session = None  # no re-thresholding of the old result while the form fills
        for key, value in quality.items():
            if value is not None:
                set_field(getattr(self, key), float(value))  # a slider widens to the file's value
        if isinstance(evaluation, dict):
            self.min_size.value = int(evaluation.get("min_size", 0) or 0)
            self.max_size.value = int(evaluation.get("max_size", 0) or 0)
        self.set_result(
            results.estimates,
            summary,
            results.params,
            name,
            metrics=results.metrics,
            F_dff=results.F_dff,
            curation=curation,
            path=path,
            motion=results.motion,
            provenance=results.provenance,
            build_layers=build_layers,
        )

    def set_result(
        self,
        estimates: Any,
        summary: Any,
        params: Any,
        name: str,
        *,
        metrics: Any = None,
        F_dff: Any = None,
        curation: Curation | None = None,
        path: str | Path | None = None,
        motion: Any = None,
        provenance: dict[str, Any] | None = None,
        build_layers: bool = False,
        movie: Any = None,
    ) -> None:
        """Curate this result. ``build_layers`` adds its layers (contours ...)
        as the CNMF widget does; otherwise ``"<name> contours"`` must exist."""
        self._drop_outline()
        self.session = CurationSession(
            estimates=estimates,
            summary=summary,
            params=params,
            name=name,
            metrics=metrics,
            F_dff=F_dff,
            curation=curation,
            path=None if path is None else Path(path),
            motion=motion,
            provenance=dict(provenance or {}),
        )
        if build_layers:
            self._rebuild_layers(movie)
        self.selected = None
        self.picked = []
        self._hook_layers()
        # the movie the result was computed on, by name (proxies are never identical)
        choose_by_name(self.movie, name)
        n = estimates.n_components
        where = f" from {self.session.path.name}" if self.session.path else ""
        self.source_label.value = f"{name}: {n} components{where}"
        self._ensure_docks()
        self._colors = None
        self.apply(full=True)
        self._show_traces()

    def _drop_outline(self) -> None:
        """Remove the current result's selection outline (another result comes)."""
        if self.session is not None:
            outline = f"{self.session.name} selected"
            if outline in self._viewer.layers:
                self._viewer.layers.remove(outline)

    def _rebuild_layers(self, movie: Any = None) -> None:
        """(Re)make the result's layers (after loading or a hand edit)."""
        s = self.session
        assert s is not None
        step, scale, translate, movie = self._layer_inputs(s.estimates, movie)
        for data, meta, layer_type in cnmf_layer_data(step, s.name, scale, translate, movie=movie):
            upsert_layer(self._viewer, data, meta, layer_type)
        self._hook_layers()

    def _layer_inputs(self, estimates: Any, movie: Any = None) -> tuple[Any, Any, Any, Any]:
        """What :func:`cnmf_layer_data` needs for ``estimates`` of this session: the step
        (estimates + summary images), scale, translate of the result's layers, the movie."""
        s = self.session
        assert s is not None
        summary = (
            s.summary if s.summary is not None else SimpleNamespace(mean=None, corr=None, std=None)
        )
        if getattr(summary, "mean", None) is None:
            summary = SimpleNamespace(
                mean=np.zeros(s.estimates.dims, np.float32), corr=getattr(summary, "corr", None)
            )
        geom_layer = self._layer("contours") or self._layer("footprints")
        scale = translate = None
        if geom_layer is not None:
            scale = (1.0, *geom_layer.scale)
            translate = (0.0, *geom_layer.translate)
        if (
            movie is None
            and self.movie.value is not None
            and tuple(self.movie.value.data.shape[1:]) == tuple(s.estimates.dims)
        ):
            movie = self.movie.value.data
        return SimpleNamespace(estimates=estimates, summary=summary), scale, translate, movie

    def _hook_layers(self) -> None:
        """Mouse and key bindings on the result's contours and footprints layers."""
        self._contour_data = None
        if self._closed:
            return
        for kind in ("contours", "footprints"):
            layer = self._layer(kind)
            if layer is None or any(same_layer(layer, h) for h in self._hooked):
                continue
            layer = unwrap(layer)
            layer.mouse_drag_callbacks.append(self._on_click)
            self._bind_keys(layer)  # before the layer's own keys (Shapes: r, p ...)
            self._hooked.append(layer)
        contours = self.contours_layer
        if contours is not None and "component" in contours.features:
            self._owner = np.asarray(contours.features["component"], dtype=np.int64)
        else:
            self._owner = np.zeros(0, np.int64)

    # -- thresholds -------------------------------------------------------------------------
    def thresholds(self) -> dict[str, Any]:
        """Keyword arguments of ``apply_thresholds`` from the form (the CNN
        terms from the kwargs text, else the result's parameters)."""
        out: dict[str, Any] = {name: float(getattr(self, name).value) for name in _THRESHOLDS}
        out["min_size"] = self.min_size.value or None
        out["max_size"] = self.max_size.value or None
        params = None if self.session is None else self.session.params
        cnn = thresholds_from_params(params)
        try:
            extra = parse_kwargs(self.kwargs.value)
        except InputError:  # reported when the parameters are used (Evaluate, Save)
            extra = {}
        out.update({k: extra.get(k, cnn[k]) for k in _CNN_THRESHOLDS})
        return out

    def threshold_accepted(self) -> np.ndarray:
        """(K,) bool: the thresholds alone (all True before evaluation)."""
        s = self.session
        if s is None:
            return np.zeros(0, bool)
        K = s.n_components
        if s.metrics is None:
            idx = s.estimates.idx_components
            return np.ones(K, bool) if idx is None else ev.threshold_mask(idx, K)
        good, _ = apply_thresholds(s.metrics, **self.thresholds())
        return ev.threshold_mask(good, K)

    def apply(self, *_: Any, full: bool = False) -> None:
        """Re-apply thresholds + manual decisions: colours, features, counts, table."""
        s = self.session
        if s is None:
            return
        t0 = time.perf_counter()
        self.accepted = s.curation.accepted(self.threshold_accepted())
        t1 = time.perf_counter()
        layer = self.contours_layer
        if layer is not None and len(self._owner) == len(layer.data):
            colors = ev.status_colors(self.accepted, self._owner, self.show_filter.value)
            if self._colors is None or not np.array_equal(colors, self._colors):
                layer.edge_color = colors  # one vectorized assignment
                self._colors = colors
            t2 = time.perf_counter()
            layer.features = ev.evaluation_features(
                layer.features, self._owner, s.metrics, self.accepted, s.curation.manual
            )
        else:
            t2 = time.perf_counter()
        t3 = time.perf_counter()
        self.counts.value = ev.count_text(self.accepted, s.curation.manual)
        self._update_table(full)
        self._update_component_label()
        self.timings = {
            "thresholds": t1 - t0,
            "colors": t2 - t1,
            "features": t3 - t2,
            "total": time.perf_counter() - t0,
        }

    # -- evaluate -------------------------------------------------------------------------------
    def _params(self) -> Any:
        """The result's parameters with the form's thresholds, kwargs and backend.

        Raises
        ------
        InputError
            The kwargs text is not a dict of known parameters, or sets a
            threshold that has a slider.
        """
        s = self.session
        assert s is not None
        extra = parse_kwargs(self.kwargs.value)
        sliders = [k for k in extra if k in _THRESHOLDS]
        if sliders:
            raise InputError("kwargs", f"set {', '.join(sliders)} with the slider, not in kwargs")
        th = self.thresholds()
        return (
            s.params.copy()
            .update(extra)
            .update({k: th[k] for k in _THRESHOLDS})
            .update({"backend": self.backend.value})
        )

    def _preset_values(self) -> dict[str, Any]:
        """The form's quality parameters as flat CaImAn names (what "Save preset…" writes)."""
        values: dict[str, Any] = {k: float(getattr(self, k).value) for k in _THRESHOLDS}
        values.update(parse_kwargs(self.kwargs.value))
        values["backend"] = self.backend.value
        return values

    def run(self) -> None:
        """Start the metrics computation (SNR, r-values, dF/F) in a worker.

        Raises
        ------
        InputError
            No result or no movie of the result's frame shape.
        """
        from ..engine.pipeline import iter_evaluate_step

        if self.session is None:
            if self._find_cnmf() is None:
                raise InputError("result", "no CNMF result: run CNMF first, or load a results file")
            self.take_cnmf_result()
        s = self.session
        assert s is not None
        layer = self._check_movie()
        motion = self._motion_of(layer)
        data, est, params = layer.data, s.estimates, with_memory_limit(self._params(), self.memory_limit)
        check_backend(params["backend"])
        global _CNN_NOTED
        if params["use_cnn"] and params["backend"] == "native" and not _CNN_NOTED:
            _CNN_NOTED = True  # once per session, as a notification (it only reached the terminal)
            show_info(
                "use_cnn=True (CaImAn's default): the native backend has no CNN classifier, so "
                "components are judged by SNR and r-value only. Put {'use_cnn': False} in kwargs "
                "to silence this, or choose the caiman backend."
            )
        def steps() -> Generator[Any, None, Any]:
            def evaluate() -> Generator[Any, None, Any]:
                step = yield from iter_evaluate_step(data, est, params, motion=motion)
                return step, est.idx_components, est.idx_components_bad

            # in a child process where possible: the window keeps the GIL (widgets._process);
            # the thresholds' split is set on these estimates as the engine sets it there
            step, est.idx_components, est.idx_components_bad = yield from in_process_if_available(
                evaluate
            )
            return step

        self.runner.start(steps, partial(self._on_evaluated, session=s))

    def _motion_of(self, layer: Layer) -> Any:
        """The result's motion correction when ``layer`` is the motion-corrected
        movie (for the border rule, engine.pipeline.movie_for_cnmf), else None."""
        # the motion step the CNMF dock used for this movie (published by the Motion dock), if any
        run = self._state.motion_for(layer.name)
        corrected = None if run is None else getattr(run.step.motion, "corrected", None)
        if corrected is not None and tuple(corrected.shape) == tuple(layer.data.shape):
            return run.step.motion
        s = self.session
        if s is None or layer.metadata.get("napari_caiman", {}).get("kind") != "motion corrected":
            return None
        return s.motion

    def _check_movie(self) -> Layer:
        s = self.session
        assert s is not None
        layer = self.movie.value
        if layer is None:
            raise InputError("movie", "choose the (motion-corrected) movie CNMF ran on")
        shape, dims = tuple(layer.data.shape), tuple(s.estimates.dims)
        source = f"{s.name!r}" + (f" (from {s.path.name})" if s.path is not None else "")
        if shape[1:] != dims:
            axes = "Z, Y, X" if len(dims) == 3 else "Y, X"
            raise InputError(
                "movie",
                f"{layer.name!r} has frames of {shape[1:]} but the result {source} has "
                f"frames of {dims} ({axes}): choose the movie CNMF ran on",
            )
        if shape[0] != s.estimates.n_frames:
            raise InputError(
                "movie",
                f"{layer.name!r} has {shape[0]} frames but the traces of the result {source} "
                f"have {s.estimates.n_frames}: choose the movie CNMF ran on",
            )
        return layer

    def _on_evaluated(self, step: Any, *, session: CurationSession) -> None:
        if session is not self.session:  # the result was replaced meanwhile
            return
        session.metrics, session.F_dff = step.metrics, step.F_dff
        self.apply(full=True)
        self._show_traces()

    # -- selection ----------------------------------------------------------------------------------
    def component_at(self, layer: Layer, position: Any, event: Any = None) -> int | None:
        """Component under ``position`` (world coordinates) of the contours or footprints layer."""
        kw = {}
        if event is not None:
            kw = {
                "view_direction": event.view_direction,
                "dims_displayed": list(event.dims_displayed),
            }
        value = layer.get_value(position, world=True, **kw)
        if isinstance(layer, Shapes):
            shape = value[0] if isinstance(value, tuple) else value
            if shape is None or shape >= len(self._owner):
                return None
            return int(self._owner[int(shape)])
        if value is None or int(value) <= 0:
            return None
        k = int(value) - 1  # label k + 1 is component k
        return k if self.session is not None and k < self.session.n_components else None

    def _on_click(self, layer: Layer, event: Any) -> Any:
        if event.button != 1:
            return
        start = np.asarray(event.position)
        yield
        dragged = False
        while event.type == "mouse_move":
            dragged = dragged or bool(np.abs(np.asarray(event.position) - start).max() > 0.5)
            yield
        if dragged:
            return
        k = self.component_at(layer, start, event)
        if k is not None:
            self.select_component(k, add="Shift" in event.modifiers)

    def select_component(self, k: int | None, *, add: bool = False, center: bool = False) -> None:
        """Select component ``k`` (traces, table row, highlight); ``add`` picks it
        too (for merge/delete) instead of replacing the picked set."""
        s = self.session
        if s is None:
            return
        if k is not None and not 0 <= k < s.n_components:
            raise InputError("component", f"must be in [0, {s.n_components}), got {k}")
        self.selected = k
        if k is None:
            self.picked = []
        elif add:
            self.picked = [*[p for p in self.picked if p != k], k]
        else:
            self.picked = [k]
        self._show_selection(center)
        self._update_component_label()
        self._show_traces()
        self._select_table_rows()

    def step(self, delta: int) -> None:
        """Select the next (``delta=1``) or previous component, in the table's order."""
        s = self.session
        if s is None or s.n_components == 0:
            return
        rank = self.table_model.rank
        if len(rank) != s.n_components or len(self.table_model.order) == 0:
            order = np.arange(s.n_components)
            rank = order
        else:  # the table's rows: its order and filter
            order = self.table_model.order
        row = -1 if self.selected is None else int(rank[self.selected])
        if row < 0 and self.selected is not None and delta < 0:
            row = 0  # the selection is filtered out: "previous" starts from the end
        row = (row + delta) % len(order)
        self.select_component(int(order[row]), center=True)

    def _show_selection(self, center: bool) -> None:
        """Outline the picked components in a thick yellow "<name> selected" layer."""
        s = self.session
        contours = self.contours_layer
        if s is None or contours is None:
            return
        name = f"{s.name} selected"
        contours = unwrap(contours)
        if self._contour_data is None or self._contour_data[0] is not contours:
            self._contour_data = (contours, contours.data)  # .data rebuilds the list each time
        data = self._contour_data[1]
        polys = [data[i] for i in np.flatnonzero(np.isin(self._owner, self.picked))]
        if name in self._viewer.layers:
            layer = unwrap(self._viewer.layers[name])
            if len(polys) != len(layer.data) or any(
                a.shape != b.shape or not np.array_equal(a, b)
                for a, b in zip(polys, layer.data, strict=False)
            ):
                layer.current_edge_color = "yellow"
                layer.data = polys  # new shapes take the current (yellow) edge colour
        elif polys:
            layer = self._viewer.add_shapes(
                polys,
                shape_type="polygon",
                name=name,
                edge_color="yellow",
                face_color="transparent",
                edge_width=2.0,
                ndim=contours.ndim,
                scale=contours.scale,
                translate=contours.translate,
                metadata={"napari_caiman": {"kind": "selected component", "source": s.name}},
            )
            self._viewer.layers.selection.active = (
                contours  # keys and clicks stay with the contours
            )
        if center and self.selected is not None and polys:
            own = [data[i] for i in np.flatnonzero(self._owner == self.selected)]
            mid = np.concatenate(own).mean(axis=0)
            world = mid * np.asarray(contours.scale) + np.asarray(contours.translate)
            if len(world) == 3:
                self._viewer.dims.set_point(self._viewer.dims.ndim - 3, world[0])
            # napari >= 0.9 moved the camera to viewer.scene; older versions have viewer.camera
            scene = getattr(self._viewer, "scene", None)
            camera = scene.camera if scene is not None else self._viewer.camera
            camera.center = tuple(world[-2:])

    def _update_component_label(self) -> None:
        s = self.session
        k = self.selected
        if s is None or k is None or k >= s.n_components:
            self.component_label.value = "click an ROI (keys a/r/u, n/p)"
            return
        snr = r = "–"
        if s.metrics is not None:
            snr = f"{float(s.metrics.SNR_comp[k]):.2f}"
            r = f"{float(s.metrics.r_values[k]):.2f}"
        status = "accepted" if self.accepted[k] else "rejected"
        manual = {1: " (by hand)", -1: " (by hand)", 0: ""}[int(s.curation.manual[k])]
        picked = f"; picked {self.picked}" if len(self.picked) > 1 else ""
        self.component_label.value = f"#{k}: SNR {snr}, r {r}, {status}{manual}{picked}"

    # -- decisions -------------------------------------------------------------------------------------
    def decide(self, decision: str, idx: Any = None) -> None:
        """Accept / reject / clear the picked components (or ``idx``) by hand,
        recolour, and autosave the decisions next to the results file."""
        s = self.session
        if s is None:
            return
        idx = self.picked if idx is None else idx
        if idx is None or len(np.atleast_1d(idx)) == 0:
            return
        s.curation.set(np.atleast_1d(np.asarray(idx, dtype=np.int64)), decision)
        self.apply()
        self.autosave()

    def autosave(self) -> Path | None:
        """Write the decisions sidecar if the result has a file."""
        s = self.session
        if s is None or s.path is None:
            return None
        try:
            return save_curation_sidecar(s.path, s.curation)
        except InputError as exc:
            s.unsaved_edits = True  # the decisions are in memory only
            self.runner.report_error(exc)
            return None

    # -- traces ---------------------------------------------------------------------------------------
    def _ensure_docks(self) -> None:
        window = getattr(self._viewer, "window", None)
        if window is None:
            return
        docks = window.dock_widgets
        traces = docks.get(TRACES_DOCK)
        if not isinstance(traces, TracesPlot):
            traces = TracesPlot()
            window.add_dock_widget(traces, name=TRACES_DOCK, area="bottom")
            traces.frame_clicked.connect(self._jump_to_frame)
        self.traces = traces
        dock = docks.get(TABLE_DOCK)
        if not isinstance(dock, ComponentsDock):
            dock = ComponentsDock(self.table_model)
            dock.table.selectionModel().selectionChanged.connect(self._on_table_selection)
            dock.scatter.component_clicked.connect(self._on_point_clicked)
            dock.filter.currentTextChanged.connect(lambda *_: self._select_table_rows())
            window.add_dock_widget(dock, name=TABLE_DOCK, area="bottom")
        self.components_dock = dock
        self.table_view = dock.table

    def _show_traces(self) -> None:
        s = self.session
        if self.traces is None or s is None:
            return
        k = self.selected
        if k is None or k >= s.n_components:
            self.traces.show_component(None)
            return
        est = s.estimates
        C = np.asarray(est.C[k])
        dff = None if s.F_dff is None else np.asarray(s.F_dff[k])
        status = "accepted" if self.accepted[k] else "rejected"
        self.traces.show_component(
            k,
            raw=C + np.asarray(est.YrA[k]),
            C=C,
            S=np.asarray(est.S[k]),
            dff=dff,
            title=f"{s.name} — component {k} ({status})",
        )
        self.traces.set_frame(int(self._viewer.dims.current_step[0]))

    def _on_step(self, event: Any = None) -> None:
        if self.traces is not None and self.session is not None:
            self.traces.set_frame(int(self._viewer.dims.current_step[0]))

    def _jump_to_frame(self, t: int) -> None:
        self._viewer.dims.set_current_step(0, int(t))

    # -- table --------------------------------------------------------------------------------------------
    def _update_table(self, full: bool) -> None:
        s = self.session
        assert s is not None
        size = (
            s.metrics.size if s.metrics is not None else np.diff((s.estimates.A > 0).tocsc().indptr)
        )
        columns = ev.component_table(s.metrics, self.accepted, s.curation.manual, size)
        if full or len(self.table_model.rank) != s.n_components:
            self.table_model.set_columns(columns)
        else:
            self.table_model.update_columns(columns)
        self._select_table_rows()
        if self.components_dock is not None:
            th = {k: v for k, v in self.thresholds().items() if isinstance(v, float)}
            self.components_dock.scatter.set_data(columns, self.accepted, th, self.picked)
            self.components_dock.count.setText(f"{self.table_model.rowCount()} shown")

    def _on_point_clicked(self, k: int, shift: bool) -> None:
        self._guard(lambda: self.select_component(k, add=shift))()

    def _select_table_rows(self) -> None:
        view = self.table_view
        if (
            view is None
            or self.session is None
            or len(self.table_model.rank) != self.session.n_components
        ):
            return
        self._syncing_table = True
        try:
            sel = view.selectionModel()
            sel.clearSelection()
            flags = (
                QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
            )
            rank = self.table_model.rank
            for k in self.picked:
                if rank[k] >= 0:  # not filtered out
                    sel.select(self.table_model.index(int(rank[k]), 0), flags)
            if self.selected is not None and rank[self.selected] >= 0:
                view.scrollTo(self.table_model.index(int(rank[self.selected]), 0))
        finally:
            self._syncing_table = False
        if self.components_dock is not None:
            self.components_dock.scatter.set_selected(self.picked)

    def _on_table_selection(self, *_: Any) -> None:
        if self._syncing_table or self.table_view is None:
            return
        rows = sorted({i.row() for i in self.table_view.selectionModel().selectedRows()})
        comps = [int(self.table_model.order[r]) for r in rows]
        if not comps:
            return
        self.selected = comps[-1]
        self.picked = comps
        self._show_selection(False)
        self._update_component_label()
        self._show_traces()

    # -- hand edits --------------------------------------------------------------------------------------
    def _replace_estimates(
        self, est: Any, rows: np.ndarray, *, manual_new: int = 0, snr_new: Any = None
    ) -> None:
        """Swap in edited estimates; side data follows ``rows`` (old index per new
        component, -1 = new component)."""
        from ..engine.evaluation import Metrics

        s = self.session
        assert s is not None
        manual = ev.take_rows(s.curation.manual, rows, fill=np.int8(manual_new)).astype(np.int8)
        if s.metrics is not None:
            m = s.metrics
            size = np.diff((est.A > 0).tocsc().indptr).astype(np.int64)
            snr = ev.take_rows(m.SNR_comp, rows, fill=np.nan if snr_new is None else snr_new)
            from ..engine.shapes import shape_metrics

            gsig = s.params.get("gSig") if s.params is not None else None
            shape = shape_metrics(est.A, est.dims, gsig or (4,) * len(est.dims))  # edited footprints
            from ..engine.duplicates import duplicate_scores

            dup = duplicate_scores(est.A, est.C, snr) if m.dup_score is not None else (None, None)
            s.metrics = Metrics(
                SNR_comp=snr,
                r_values=ev.take_rows(m.r_values, rows),
                size=size,
                cnn_preds=ev.take_rows(m.cnn_preds, rows),
                cnn_available=m.cnn_available,
                n_samples=m.n_samples,
                solidity=shape.solidity if m.solidity is not None else None,
                n_pieces=shape.n_pieces if m.n_pieces is not None else None,
                area_ratio=shape.area_ratio if m.area_ratio is not None else None,
                anatomy=ev.take_rows(m.anatomy, rows, fill=np.bool_(False)),
                dup_score=dup[0],
                dup_of=dup[1],
            )
        s.F_dff = ev.take_rows(s.F_dff, rows)
        s.estimates = est
        s.curation = Curation(manual)
        s.unsaved_edits = True  # the file (if any) still holds the old components
        self._rebuild_layers()
        self._colors = None
        self.selected = None
        self.picked = []
        self._show_selection(False)
        self.source_label.value = f"{s.name}: {est.n_components} components (edited)"
        self.apply(full=True)
        self._show_traces()
        self.autosave()

    def merge_picked(self) -> None:
        """Merge the picked components (2+) into one; its SNR is computed at
        once and, with a movie chosen, the metrics (r-value, dF/F) of all
        components are recomputed in the worker: the merged one is accepted
        or rejected by the thresholds like any other (not by hand)."""
        from ..engine.evaluation import event_exceptionality

        s = self.session
        if s is None:
            raise InputError("result", "no result to edit")
        est, rows = ev.merge_components(s.estimates, self.picked)
        new = int(np.flatnonzero(rows < 0)[0])
        snr = None
        if s.metrics is not None:
            raw = np.asarray(est.C[new] + est.YrA[new])[None]
            snr = float(event_exceptionality(raw, N=max(int(s.metrics.n_samples), 1))[0][0])
        self._replace_estimates(est, rows, manual_new=0, snr_new=snr)
        self.select_component(new)
        if s.metrics is not None and self._movie_fits():
            self.runner.run_button.native.click()  # r-values and dF/F of the merged component

    def _movie_fits(self) -> bool:
        """Whether the chosen movie is one the result's metrics can be computed on."""
        try:
            self._check_movie()
        except (InputError, AssertionError):
            return False
        return True

    def delete_picked(self) -> None:
        """Remove the picked components from the result."""
        s = self.session
        if s is None or not self.picked:
            raise InputError("component", "pick components to delete first")
        est, rows = ev.delete_components(s.estimates, self.picked)
        self._replace_estimates(est, rows)

    # -- seeded refit ----------------------------------------------------------------------------------
    def new_seeds_layer(self) -> Labels:
        """An empty Labels layer of the frame shape to paint missed neurons in."""
        s = self.session
        if s is None:
            raise InputError("result", "no result: take or load one first")
        contours = self.contours_layer
        geom = (
            {} if contours is None else {"scale": contours.scale, "translate": contours.translate}
        )
        layer = self._viewer.add_labels(
            np.zeros(s.estimates.dims, np.int32), name=f"{s.name} seeds", **geom
        )
        layer.mode = "paint"
        layer.brush_size = 6
        self.seeds.reset_choices()
        self.seeds.value = layer
        return layer

    def refit(self) -> None:
        """Seeded CNMF: accepted footprints + the painted masks as ``Ain``, in a worker.

        Raises
        ------
        InputError
            No result, no movie, or no seeds.
        """
        from ..engine.pipeline import iter_cnmf_step

        s = self.session
        if s is None:
            raise InputError("result", "no result: take or load one first")
        layer = self._check_movie()
        painted = None
        if self.seeds.value is not None and np.any(np.asarray(self.seeds.value.data)):
            painted, _ = labels_to_seeds(self.seeds.value.data, s.estimates.dims)
        Ain = ev.refit_seeds(s.estimates, np.flatnonzero(self.accepted), painted)
        motion = self._motion_of(layer)
        data, params, summary = layer.data, self._params(), s.summary
        check_backend(params["backend"])
        if summary is not None and not hasattr(summary, "std"):
            summary = None
        current, scale, translate, _ = self._layer_inputs(s.estimates)
        layer_summary = current.summary
        name = s.name

        def steps() -> Generator[Any, None, Any]:
            # in a child process where possible: the window keeps the GIL (widgets._process)
            result = yield from in_process_if_available(
                lambda: iter_cnmf_step(data, params, Ain=Ain, summary=summary, motion=motion)
            )
            # the new layers' data is made here, in the worker; the main thread only adds them
            yield Progress("making layers", 0, 1)
            step = SimpleNamespace(estimates=result.estimates, summary=layer_summary)
            return result, cnmf_layer_data(step, name, scale, translate, movie=data)

        self.refit_runner.start(steps, partial(self._on_refit, session=s, n_seeds=Ain.shape[1]))

    def _on_refit(
        self, output: tuple[Any, list], *, session: CurationSession, n_seeds: int
    ) -> Generator[None, None, None]:
        """Replace the result with the refit's (if confirmed): one layer per event-loop
        turn (a generator the runner drives), then re-evaluate."""
        from ..engine.curation import transfer_curation

        result, tuples = output
        if session is not self.session:
            return
        s = session
        new = result.estimates
        text = (
            f"The refit from {n_seeds} seeds found {new.n_components} components "
            f"(now {s.n_components}). Replace the result? Manual decisions follow "
            "the footprints; the metrics are recomputed."
        )
        if not self.confirm(text):
            self.refit_runner.status.value = "refit discarded"
            return
        manual = transfer_curation(s.estimates.A, s.curation.manual, new.A, new.dims)
        s.estimates = new
        s.curation = Curation(manual)
        s.unsaved_edits = True
        s.metrics = s.F_dff = None
        for data, meta, layer_type in tuples:
            upsert_layer(self._viewer, data, meta, layer_type)
            yield
        self._hook_layers()
        self._colors = None
        self.selected = None
        self.picked = []
        self._show_selection(False)
        self.source_label.value = f"{s.name}: {new.n_components} components (refit)"
        yield
        self.apply(full=True)
        yield
        self._show_traces()
        self.autosave()
        if self.seeds.value is not None:
            self.seeds.value.data = np.zeros_like(self.seeds.value.data)
        if self.movie.value is not None:
            self.runner.run_button.native.click()  # re-evaluate the new components

    # -- save / export ------------------------------------------------------------------------------------
    def results(self) -> Any:
        """The session as an engine ``Results`` (what Save writes)."""
        from ..engine.results import Results, summary_to_dict
        from ..io.provenance import make_provenance

        s = self.session
        if s is None:
            raise InputError("result", "nothing to save: take or load a result first")
        summary = None
        if s.summary is not None:
            summary = (
                summary_to_dict(s.summary)
                if hasattr(s.summary, "std") and s.summary.std is not None
                else {k: np.asarray(v) for k, v in vars(s.summary).items() if v is not None}
            )
        prov = dict(s.provenance) or make_provenance()
        th = self.thresholds()
        # the engine's thresholds know no size limits: kept here for reloading
        prov["evaluation"] = {"min_size": th["min_size"] or 0, "max_size": th["max_size"] or 0}
        s.estimates.idx_components = np.flatnonzero(self.threshold_accepted())
        return Results(
            params=self._params(),
            dims=tuple(s.estimates.dims),
            motion=s.motion,
            summary=summary,
            provenance=prov,
            estimates=s.estimates,
            metrics=s.metrics,
            F_dff=s.F_dff,
            curation=s.curation.copy(),
        )

    def _on_save(self, *_: Any) -> Path | None:
        """Ask for a file and save there; the file, or None (cancelled or failed)."""
        s = self.session
        start = str(s.path) if s is not None and s.path else ""
        if not start and s is not None:
            start = str(self._default_save_path())
        path = self.ask_save_path(start)
        if not path:
            return None
        try:
            return self.save(path)
        except Exception as exc:
            self.runner.report_error(exc)
            return None

    def _default_save_path(self) -> Path:
        """``<folder of the movie's file>/<result name, no spaces>.hdf5`` (the
        current folder when the movie has no file)."""
        s = self.session
        assert s is not None
        folder = Path.cwd()
        layer = self.movie.value
        source = None
        if layer is not None:
            source = getattr(getattr(layer, "source", None), "path", None)
            source = source or layer.metadata.get("path")
            if isinstance(source, (list, tuple)):
                source = source[0] if source else None
            origin = layer.metadata.get("napari_caiman", {}).get("source")
            if not source and origin and origin in self._viewer.layers:  # e.g. "<movie> corrected"
                raw = self._viewer.layers[origin]
                source = getattr(raw.source, "path", None) or raw.metadata.get("path")
                if isinstance(source, (list, tuple)):
                    source = source[0] if source else None
        if source:
            p = Path(source)
            folder = p if p.is_dir() else p.parent
        stem = "_".join(s.name.split()) or "results"
        return folder / f"{stem}.hdf5"

    def save(self, path: str | Path) -> Path:
        """Write results + curation atomically (and the sidecar); later
        decisions autosave next to this file."""
        from ..io.results_file import save_results

        out = save_results(path, self.results())
        assert self.session is not None
        self.session.path = Path(out)
        self.session.unsaved_edits = False
        self.autosave()
        self.runner.status.value = f"saved {Path(out).name}"
        return Path(out)

    def export(self, kind: str, path: str | Path) -> Path:
        """Export the accepted components: ``kind`` is 'nwb', 'csv' or 'tiff'."""
        from ..io import export

        s = self.session
        if s is None:
            raise InputError("result", "nothing to export: take or load a result first")
        idx = np.flatnonzero(self.accepted)
        est, fr = s.estimates, float(s.params["fr"])
        if kind == "nwb":
            return export.export_nwb(path, est, fr=fr, idx=idx, F_dff=s.F_dff, metrics=s.metrics)
        if kind == "csv":
            return export.export_csv(path, np.asarray(est.C)[idx], ids=idx, fr=fr)
        if kind == "tiff":
            return export.export_masks_tiff(path, est, idx=idx)
        raise InputError("kind", f"must be 'nwb', 'csv' or 'tiff', got {kind!r}")

    def _on_export(self, kind: str, *_: Any) -> None:
        filters = {"nwb": "NWB (*.nwb)", "csv": "CSV (*.csv)", "tiff": "TIFF (*.tif *.tiff)"}
        path, _f = QFileDialog.getSaveFileName(
            self.native, f"Export {kind.upper()}", "", filters[kind]
        )
        if path:
            self._guard(partial(self.export, kind, path))()
