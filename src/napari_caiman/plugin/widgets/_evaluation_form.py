"""The Evaluation dock's form: its fields and their layout, nothing wired.

:class:`EvaluationForm` builds the fields the user sees (result source, movie,
backend, kwargs, Evaluate, the threshold sliders, the show filter, the
decision and edit buttons, seeds and Refit, save and export) in one scrolling
column; :class:`~napari_caiman.plugin.widgets.evaluation.EvaluationWidget` connects
them to the curation model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSlider,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)

from ...engine.resolve import THRESHOLD_NAMES, thresholds
from ...engine.schema import SPEC_BY_NAME
from ..layers import evaluation as ev
from ._backend import BackendEdit
from ._dock import StatusLabel, make_scrollable
from ._fields import check, tooltip
from ._memory import memory_limit_edit
from ._presets import PresetBar
from ._runner import StepRunner
from ._settings import step_names

#: Slider ranges (min, max, step) of the thresholds the schema gives no form range; every other
#: slider takes its range from the schema's ``form``, and every slider its tooltip from the
#: schema (:func:`slider_spec`).
SLIDER_RANGES: dict[str, tuple[float, float, float]] = {
    # shape (engine.shapes; our own parameter group): junk fragments are rejected whatever their SNR
    "min_solidity": (0.0, 1.0, 0.01),
    "max_pieces": (1.0, 10.0, 1.0),
    "min_area_ratio": (0.0, 2.0, 0.01),
    "max_area_ratio": (0.5, 20.0, 0.1),
    "max_elongation": (1.0, 10.0, 0.1),
    "max_duplicate": (0.0, 1.0, 0.01),
}

#: The threshold sliders, in the form's order.
THRESHOLDS = (
    "min_SNR",
    "SNR_lowest",
    "rval_thr",
    "rval_lowest",
    *SLIDER_RANGES,
)


def slider_spec(name: str) -> tuple[float, float, float, str]:
    """(min, max, step, tooltip) of threshold slider ``name``: the schema's, where it has them."""
    spec = SPEC_BY_NAME[name]
    lo, hi, step = spec.form if spec.form is not None else SLIDER_RANGES[name]
    return float(lo), float(hi), float(step), spec.tooltip


assert set(THRESHOLDS) <= set(THRESHOLD_NAMES)  # each slider is a threshold of engine.resolve

#: Terms of the thresholds besides the sliders, fields of the form as in a headless run's
#: parameters (a dock that left them out accepted fewer anatomy-seeded components).
OTHER_TERMS = ("accept_anatomy", "min_classifier_prob")

#: Parameters the evaluation step uses (what it takes from a preset).
STEP_NAMES = step_names("quality")


def _row(*widgets: Any, label: str | None = None) -> Container:
    kw = {} if label is None else {"label": label}
    row = Container(widgets=list(widgets), layout="horizontal", labels=False, **kw)
    row.margins = (0, 0, 0, 0)
    return row


class EvaluationForm(Container):
    """The fields of the Evaluation dock (see the widget for what each does).

    Parameters
    ----------
    movie_choices, seed_choices : callable
        Choices of the ``movie`` and ``seeds`` combo boxes.
    run, refit : callable
        Started by the Evaluate and Refit buttons (their StepRunners).
    preset_values : callable
        The form's parameters for "Save preset…".
    """

    def __init__(
        self,
        movie_choices: Callable[..., Any],
        seed_choices: Callable[..., Any],
        run: Callable[[], None],
        refit: Callable[[], None],
        preset_values: Callable[[], dict[str, Any]],
    ) -> None:
        q = thresholds(None)
        self.source_label = StatusLabel(
            value="no result: run CNMF or load a results file", label="result"
        )
        self.take_button = PushButton(text="Use CNMF result")
        self.load_button = PushButton(text="Load results…")
        self.movie = ComboBox(
            label="movie",
            choices=movie_choices,
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
        self.runner = StepRunner("Evaluation", run)
        self.runner.run_button.text = "Evaluate"
        self.sliders = []
        for name in THRESHOLDS:
            lo, hi, step, tip = slider_spec(name)
            slider = FloatSlider(
                value=float(q[name]), min=lo, max=hi, step=step, label=name, name=name, tooltip=tip
            )
            setattr(self, name, slider)
            self.sliders.append(slider)
        self.accept_anatomy: CheckBox = check("accept_anatomy", bool(q["accept_anatomy"]))
        self.min_classifier_prob = FloatSlider(
            value=float(q["min_classifier_prob"]),
            min=0.0,
            max=1.0,
            step=0.01,
            label="min_classifier_prob",
            name="min_classifier_prob",
            tooltip=tooltip("min_classifier_prob") + " (when a classifier gave probabilities)",
        )
        self.min_size = SpinBox(
            value=0, min=0, max=1_000_000, label="min_size", tooltip="Pixels; 0 = no limit"
        )
        self.max_size = SpinBox(
            value=0, min=0, max=10_000_000, label="max_size", tooltip="Pixels; 0 = no limit"
        )
        self.show_filter = ComboBox(value="all", choices=list(ev.SHOW_MODES), label="show")
        self.footprints_button = PushButton(
            text="Footprints",
            tooltip="Show the footprints as a Labels layer (each pixel labelled with its "
            "strongest component); made on request, not with every result",
        )
        self.denoised_button = PushButton(
            text="Denoised",
            tooltip="Show the denoised movie A·C + b·f (computed frame by frame); made on "
            "request, then updated by re-runs and refits",
        )
        self.residual_button = PushButton(
            text="Residual",
            tooltip="Show the residual movie Y - A·C - b·f (what the model misses: missed "
            "neurons stand out); made on request, then updated by re-runs and refits",
        )
        self.counts = Label(value="", label="counts")
        self.component_label = StatusLabel(
            value="click an ROI (keys a/r/u, n/p)", label="component"
        )
        self.accept_button = PushButton(text="Accept (a)")
        self.reject_button = PushButton(text="Reject (r)")
        self.clear_button = PushButton(text="Clear (u)")
        self.prev_button = PushButton(text="◀ (p)")
        self.next_button = PushButton(text="▶ (n)")
        self.merge_button = PushButton(
            text="Merge picked", tooltip="Shift+click ROIs (or table rows) to pick 2+"
        )
        self.delete_button = PushButton(text="Delete picked")
        self.classifier_button = PushButton(
            text="Train classifier",
            tooltip="Learn accept/reject from your decisions, apply it to the undecided "
            "components and save the model (.json) for other sessions",
        )
        self.seeds = ComboBox(
            label="seeds",
            choices=seed_choices,
            tooltip="Labels layer with painted missed neurons",
        )
        self.new_seeds_button = PushButton(text="New seeds layer")
        self.refit_runner = StepRunner("Refit", refit)
        self.refit_runner.run_button.text = "Refit with seeds"
        self.save_button = PushButton(text="Save results…")
        self.nwb_button = PushButton(text="NWB…")
        self.csv_button = PushButton(text="CSV…")
        self.tiff_button = PushButton(text="Masks TIFF…")
        self.presets = PresetBar(
            "Evaluation",
            self,
            form_names=("backend", *THRESHOLDS, *OTHER_TERMS),
            step_names=STEP_NAMES,
            get_values=preset_values,
            report_error=self.runner.report_error,
        )
        super().__init__(
            widgets=[
                self.source_label,
                _row(self.take_button, self.load_button),
                self.movie,
                self.backend,
                self.backend.message,
                self.kwargs,
                self.memory_limit,
                self.runner,
                *self.sliders,
                self.min_classifier_prob,
                self.accept_anatomy,
                self.min_size,
                self.max_size,
                self.presets,
                self.show_filter,
                _row(
                    self.footprints_button,
                    self.denoised_button,
                    self.residual_button,
                    label="layers",
                ),
                self.counts,
                self.component_label,
                _row(
                    self.accept_button,
                    self.reject_button,
                    self.clear_button,
                    self.prev_button,
                    self.next_button,
                ),
                _row(self.merge_button, self.delete_button, self.classifier_button),
                self.seeds,
                self.new_seeds_button,
                self.refit_runner,
                self.save_button,
                _row(self.nwb_button, self.csv_button, self.tiff_button, label="export accepted"),
            ]
        )
        make_scrollable(self)
