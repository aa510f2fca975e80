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

The curation itself (selection, accepted set, decisions, edits, files) is the
Qt-free :class:`~napari_caiman.app.curation_session.CurationSession`; this
widget is its form (:mod:`._evaluation_form`), its view (layers, selection,
docks: :mod:`._evaluation_view`), its actions (:mod:`._evaluation_edits`),
its files and dialogs (:mod:`._evaluation_files`), which result it takes up
(:mod:`._evaluation_source`), and the wiring below.

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

import time
import weakref
from collections.abc import Callable, Generator
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Labels, Layer
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QTableView

from ...app.curation_session import CurationSession
from ...engine.errors import InputError
from ...engine.params import parse_kwargs
from ...engine.resolve import thresholds as param_thresholds
from ..layers import evaluation as ev
from ..layers.outlines import outline_image
from ._backend import check_backend
from ._evaluation_edits import EvaluationEdits
from ._evaluation_files import RESULTS_FILTER, EvaluationFiles
from ._evaluation_form import OTHER_TERMS, STEP_NAMES, EvaluationForm
from ._evaluation_form import THRESHOLDS as _THRESHOLDS
from ._evaluation_source import RESULTS_KEY, RESULTS_PATH_KEY, EvaluationSource
from ._evaluation_view import EvaluationView
from ._keys import KeyBindings, named_key_function
from ._layers import movie_layer_choices
from ._memory import with_memory_limit
from ._process import in_process_if_available
from ._state import viewer_sessions
from ._warmup import warm_up
from .components import ComponentsDock, ComponentTableModel
from .traces import TracesPlot

if TYPE_CHECKING:
    import napari

__all__ = [
    "CURATION_KEYS",
    "RESULTS_FILTER",
    "RESULTS_KEY",
    "RESULTS_PATH_KEY",
    "STEP_NAMES",
    "CurationSession",
    "EvaluationWidget",
]

#: CNN thresholds, taken from the kwargs text (or the result's parameters).

#: Whether the use_cnn note was shown in this session.
_CNN_NOTED = False


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


class EvaluationWidget(
    EvaluationSource, EvaluationView, EvaluationEdits, EvaluationFiles, EvaluationForm
):
    """Evaluate CNMF components, threshold them live, curate by hand, save, export.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari when opened from the Plugins menu.

    Attributes
    ----------
    session : CurationSession or None
        The result being curated (the Qt-free model).
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
        super().__init__(
            self._movie_choices, self._seed_choices, self.run, self.refit, self._preset_values
        )
        self.session: CurationSession | None = None
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
        self._colors: np.ndarray | None = None
        self._hooked: list[Layer] = []
        self._lookup: Any = None  # footprints by pixel (what a click on the contours hits)
        self._features_key: tuple | None = None  # what the footprints' features were made from
        self._syncing_table = False
        self._spare_traces: TracesPlot | None = None
        self._spare_table: ComponentsDock | None = None
        self._wire(viewer)
        self._prebuild_docks()
        warm_up(viewer)  # napari's first-layer costs, in idle turns before any step runs

    def _wire(self, viewer: napari.viewer.Viewer) -> None:
        for widget in (
            *self.sliders,
            *self._other_terms(),
            self.min_size,
            self.max_size,
            self.show_filter,
        ):
            widget.changed.connect(self.apply)
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
        self.footprints_button.changed.connect(self._guard(self.show_footprints))
        for kind in ("denoised", "residual"):
            button = getattr(self, f"{kind}_button")
            button.changed.connect(self._guard(partial(self.show_result_layer, kind)))
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
        # the viewer's analysis sessions: follow each one's CNMF results (app.session events)
        self._sessions = viewer_sessions(viewer)
        self._sessions.added.connect(self._follow)
        for session in self._sessions:
            self._follow(session)
        if self._find_cnmf() is not None:
            self._guard(self.take_cnmf_result)()
        else:  # results opened with File > Open before this dock was
            self._opened = [layer for layer in viewer.layers if RESULTS_KEY in layer.metadata]
            self._take_opened()

    def _other_terms(self) -> tuple[Any, ...]:
        """Return the form's threshold terms besides the sliders (accept_anatomy, min_classifier_prob)."""
        return tuple(getattr(self, name) for name in OTHER_TERMS)

    # -- the session's state, as the widget's ------------------------------------------------------------
    @property
    def accepted(self) -> np.ndarray:
        """(K,) bool: the final status of each component (thresholds + manual)."""
        return np.zeros(0, bool) if self.session is None else self.session.accepted

    @property
    def selected(self) -> int | None:
        """The selected component (None: none)."""
        return None if self.session is None else self.session.selected

    @property
    def picked(self) -> list[int]:
        """The components picked for merge/delete (the selected one last)."""
        return [] if self.session is None else list(self.session.picked)

    # -- helpers ----------------------------------------------------------------------------------------
    def _guard(self, func: Callable[..., Any]) -> Callable[..., None]:
        """Run ``func`` from a button; errors become notifications."""

        def call(*_: Any) -> None:
            try:
                func()
            except Exception as exc:
                self.runner.report_error(exc)

        return call

    def _movie_choices(self, *_: Any) -> list[tuple[str, Layer]]:
        return movie_layer_choices(self._viewer)

    def _seed_choices(self, *_: Any) -> list[tuple[str, Any]]:
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Labels)
            and layer.metadata.get("napari_caiman", {}).get("kind") != "cnmf footprints"
        ]

    # -- thresholds -------------------------------------------------------------------------------------
    def thresholds(self) -> dict[str, Any]:
        """Keyword arguments of ``apply_thresholds`` from the form.

        The terms the form has no field for (the CNN, the joint activity test, duplicates) from the
        kwargs text, else the result's parameters, as a headless run reads them.
        """
        base = param_thresholds(None if self.session is None else self.session.params)
        out: dict[str, Any] = dict(base)
        out.update({name: float(getattr(self, name).value) for name in _THRESHOLDS})
        out["accept_anatomy"] = bool(self.accept_anatomy.value)
        out["min_classifier_prob"] = float(self.min_classifier_prob.value)
        out["min_size"] = self.min_size.value or None
        out["max_size"] = self.max_size.value or None
        try:
            extra = parse_kwargs(self.kwargs.value)
        except InputError:  # reported when the parameters are used (Evaluate, Save)
            extra = {}
        fields = {*_THRESHOLDS, "accept_anatomy", "min_classifier_prob", "min_size", "max_size"}
        out.update({k: extra[k] for k in base if k in extra and k not in fields})
        return out

    def threshold_accepted(self) -> np.ndarray:
        """(K,) bool: the thresholds alone (all True before evaluation)."""
        s = self.session
        return np.zeros(0, bool) if s is None else s.threshold_accepted(self.thresholds())

    def apply(self, *_: Any, full: bool = False) -> None:
        """Re-apply thresholds + manual decisions: colours, features, counts, table."""
        for _step in self._apply_steps(full):
            pass

    def _apply_steps(self, full: bool = False) -> Generator[None, None, None]:
        """Apply in pieces, as :meth:`apply` does in one go (a generator).

        A yield between the contours' colours, their features and the table + scatter: the runner
        shows a new evaluation one piece per event-loop turn.
        """
        s = self.session
        if s is None:
            return
        t0 = time.perf_counter()
        accepted = s.update(self.thresholds())
        t1 = time.perf_counter()
        layer, o = self.contours_layer, self.outlines
        t2 = t1
        if layer is not None and o is not None and o.n_components == len(accepted):
            colors = ev.status_colors(accepted, np.arange(len(accepted)), self.show_filter.value)
            if self._colors is None or not np.array_equal(colors, self._colors):
                layer.data = outline_image(o, colors)  # one vectorized assignment, one upload
                self._colors = colors
            t2 = time.perf_counter()
        footprints = self._layer("footprints")
        if footprints is not None and len(footprints.features) == len(accepted):
            key = (id(footprints), id(s.metrics), accepted.tobytes(), s.curation.manual.tobytes())
            if full or key != self._features_key:  # a slider step mostly changes no status
                yield
                footprints.features = ev.evaluation_features(
                    footprints.features,
                    np.arange(len(accepted)),
                    s.metrics,
                    accepted,
                    s.curation.manual,
                )
                self._features_key = key
        t3 = time.perf_counter()
        self.counts.value = ev.count_text(accepted, s.curation.manual)
        if full:
            yield
        self._update_table(full)
        self._update_component_label()
        self.timings = {
            "thresholds": t1 - t0,
            "colors": t2 - t1,
            "features": t3 - t2,
            "total": time.perf_counter() - t0,
        }

    # -- evaluate ---------------------------------------------------------------------------------------
    def _params(self) -> Any:
        """Return the result's parameters with the form's thresholds, kwargs and backend.

        Raises
        ------
        InputError
            The kwargs text is not a dict of known parameters, or sets a
            threshold that has a slider.
        """
        s = self.session
        assert s is not None
        extra = parse_kwargs(self.kwargs.value)
        sliders = [k for k in extra if k in _THRESHOLDS or k in OTHER_TERMS]
        if sliders:
            raise InputError("kwargs", f"set {', '.join(sliders)} with the form, not in kwargs")
        th = self.thresholds()
        return (
            s.params.copy()
            .update(extra)
            .update({k: th[k] for k in (*_THRESHOLDS, *OTHER_TERMS)})
            .update({"backend": self.backend.value})
        )

    def _preset_values(self) -> dict[str, Any]:
        """Return the form's quality parameters as flat CaImAn names (what "Save preset…" writes)."""
        values: dict[str, Any] = {k: float(getattr(self, k).value) for k in _THRESHOLDS}
        values["accept_anatomy"] = bool(self.accept_anatomy.value)
        values["min_classifier_prob"] = float(self.min_classifier_prob.value)
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
        from ...engine.pipeline import iter_evaluate_step

        if self.session is None:
            if self._find_cnmf() is None:
                raise InputError("result", "no CNMF result: run CNMF first, or load a results file")
            self.take_cnmf_result()
        s = self.session
        assert s is not None
        layer = self._check_movie()
        motion = self._motion_of(layer)
        data, est, params = (
            layer.data,
            s.estimates,
            with_memory_limit(self._params(), self.memory_limit),
        )
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

    def _on_evaluated(self, step: Any, *, session: CurationSession) -> Generator[None, None, None]:
        if session is not self.session:  # the result was replaced meanwhile
            return
        session.metrics, session.F_dff = step.metrics, step.F_dff
        # one piece per event-loop turn (the runner drives this generator): colours,
        # features, table, traces, each with its redraw, not all in one frozen turn
        yield from self._apply_steps(full=True)
        yield
        self._show_traces()
