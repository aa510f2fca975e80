"""The "Motion correction" dock widget.

The form holds CaImAn's motion parameters (see :mod:`.motion_settings`); Run
starts :func:`napari_caiman.engine.pipeline.iter_motion_step` in a worker
(:class:`~._runner.StepRunner`); the result becomes layers (via the pure
functions of :mod:`napari_caiman.plugin.layers.motion`) and a "Motion shifts" plot
dock. Running again on the same input replaces those layers.

Driving it from a test::

    widget = MotionCorrectionWidget(viewer)
    widget.movie.value = viewer.layers["raw"]
    widget.set_settings(widget.get_settings().replace(pw_rigid=True))
    widget.runner.run_button.native.click()   # errors -> notifications
    qtbot.waitUntil(lambda: not widget.runner.is_running, timeout=20_000)
    widget.last_result                # engine MotionResult
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    ComboBox,
    FileEdit,
    LineEdit,
    PushButton,
)

from ...engine.errors import InputError
from ..layers.motion import layer_names, motion_layers
from ._backend import BackendEdit, check_backend
from ._dock import StatusLabel, make_scrollable
from ._fields import AxesEdit, check, choice, spin
from ._layers import select_active_movie, upsert_layer
from ._memory import corrected_movie_path, memory_limit_edit, with_memory_limit
from ._presets import PresetBar
from ._process import in_process_if_available
from ._runner import StepRunner
from ._state import viewer_sessions
from ._step_form import StepForm
from .motion_settings import PER_AXIS, PW_RIGID_ONLY, STEP_NAMES, MotionSettings
from .shifts_plot import DOCK_NAME, ShiftsPlot

if TYPE_CHECKING:
    import napari

#: Output formats the engine can write the corrected movie to.
OUTPUT_FILTER = "Movie (*.tif *.tiff *.npy)"

#: Tooltips of the fields that are not parameters (the others come from the schema).
_TIPS = {
    "kwargs": "Other CaImAn parameters as a dict, e.g. {'niter_rig': 2}; they override the form",
    "output": "File for the corrected movie (.tif or .npy); empty = keep it in memory",
}


class MotionCorrectionWidget(StepForm):
    """Rigid / piecewise-rigid motion correction of an Image layer, with CaImAn's parameters.

    The layer holds a (T, Y, X) or (T, Z, Y, X) movie; the widget is a
    :class:`~._step_form.StepForm`.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari when opened from the Plugins menu.

    Attributes
    ----------
    runner : StepRunner
        Run / Cancel / progress; ``runner.is_running``, ``runner.worker`` and
        ``runner.finished`` are what tests wait on.
    backend : BackendEdit
        native | caiman; Run refuses (with a message) when CaImAn is not available.
    presets : PresetBar
        Save / Load preset (JSON of CaImAn names); its ``ask_save_path`` /
        ``ask_open_path`` are the file dialogs.
    last_result : MotionResult or None
        The last successful result (used by later steps and saving).
    last_step : MotionStepResult or None
        ``last_result`` plus the summary images.
    last_params : CaimanParams or None
        The parameters of the last successful run.
    """

    SETTINGS = MotionSettings
    PER_AXIS = PER_AXIS

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        d = MotionSettings.defaults()
        self.movie = ComboBox(
            label="movie",
            choices=self._movie_choices,
            tooltip="Image layer with a (T, Y, X) or (T, Z, Y, X) movie",
        )
        self.backend = BackendEdit(d.backend)
        # fields, tooltips and ranges from the parameter schema (engine.schema)
        self.max_shifts = AxesEdit("max_shifts", d.max_shifts)
        self.pw_rigid = check("pw_rigid", d.pw_rigid)
        self.strides = AxesEdit("strides", d.strides)
        self.overlaps = AxesEdit("overlaps", d.overlaps)
        self.max_deviation_rigid = spin("max_deviation_rigid", d.max_deviation_rigid)
        self.upsample_factor_grid = spin("upsample_factor_grid", d.upsample_factor_grid)
        self.niter_rig = spin("niter_rig", d.niter_rig)
        self.border_nan = choice("border_nan", d.border_nan)
        self.shifts_opencv = check("shifts_opencv", d.shifts_opencv)
        self.gSig_filt = AxesEdit("gSig_filt", d.gSig_filt, note="0 = off")
        self.kwargs = LineEdit(value=d.kwargs, label="kwargs", tooltip=_TIPS["kwargs"])
        self.kwargs.native.setPlaceholderText("other parameters, e.g. {'niter_rig': 2}")
        self.memory_limit = memory_limit_edit()
        self.output = FileEdit(
            mode="w",
            filter=OUTPUT_FILTER,
            nullable=True,
            label="output file",
            tooltip=_TIPS["output"],
        )
        self.output.line_edit.native.setPlaceholderText("empty = in memory")
        self.reset_button = PushButton(text="Reset to defaults")
        self.runner = StepRunner("Motion correction", self.run)
        self.presets = PresetBar(
            "Motion correction",
            self,
            form_names=[n for n in MotionSettings.field_names() if n not in ("kwargs", "output")],
            step_names=STEP_NAMES,
            get_values=lambda: self.get_settings().to_dict(self.n_spatial),
            report_error=self.runner.report_error,
        )
        self.result_label = StatusLabel(
            value="",
            label="result",
            tooltip="Crispness of the mean image before -> after (higher = sharper)",
        )
        super().__init__(
            widgets=[
                self.movie,
                self.backend,
                self.backend.message,
                self.max_shifts,
                self.pw_rigid,
                self.strides,
                self.overlaps,
                self.max_deviation_rigid,
                self.upsample_factor_grid,
                self.niter_rig,
                self.border_nan,
                self.shifts_opencv,
                self.gSig_filt,
                self.kwargs,
                self.memory_limit,
                self.output,
                self.reset_button,
                self.presets,
                self.runner,
                self.result_label,
            ],
        )
        make_scrollable(self, pinned=(self.runner, self.result_label))  # Run + progress on screen
        self.last_result: Any = None
        self.last_step: Any = None
        self.last_params: Any = None

        self.pw_rigid.changed.connect(self._on_pw_rigid_changed)
        self._start(viewer)
        self._select_active_layer()
        self._on_pw_rigid_changed(self.pw_rigid.value)
        self._on_movie_changed(self.movie.value)

    # -- form <-> settings (the rest: StepForm) ------------------------------------
    def _field_value(self, name: str) -> Any:
        if name == "output":
            out = self.output.value
            return "" if out is None else str(out)
        return super()._field_value(name)

    def _set_field(self, name: str, value: Any) -> None:
        if name == "output":
            self.output.value = value or None
        else:
            super()._set_field(name, value)

    def _defaults(self) -> MotionSettings:
        """CaImAn's defaults; the output file and the backend are kept."""
        s = self.get_settings()
        return MotionSettings.defaults().replace(output=s.output, backend=s.backend)

    def _select_active_layer(self) -> None:
        select_active_movie(self._viewer, self.movie)

    def _on_pw_rigid_changed(self, value: bool) -> None:
        for name in PW_RIGID_ONLY:
            getattr(self, name).enabled = bool(value)

    # -- run ------------------------------------------------------------------------
    def run(self) -> None:
        """Validate the form and start motion correction in a worker.

        Raises
        ------
        InputError
            No movie chosen or a bad parameter (the Run button shows these as
            notifications instead).
        """
        from ...engine.pipeline import iter_motion_step

        layer = self.movie.value
        if layer is None:
            raise InputError(
                "movie", "choose an Image layer holding a (T, Y, X) or (T, Z, Y, X) movie"
            )
        settings = self.get_settings()
        params = with_memory_limit(settings.to_params(layer.ndim - 1), self.memory_limit)
        check_backend(params["backend"])
        data = layer.data
        # a corrected movie that does not fit the budget goes to a temporary file
        # (the layer is a lazy view of it); refused here if it cannot fit at all
        out = corrected_movie_path(tuple(data.shape), params, settings.output_path)
        on_result = partial(
            self._show_result,
            name=layer.name,
            scale=tuple(layer.scale),
            translate=tuple(layer.translate),
            params=params,
            movie=data,
            out=out,
        )
        self.result_label.value = ""
        # in a child process where possible: the window keeps the GIL (widgets._process)
        self.runner.start(
            lambda: in_process_if_available(lambda: iter_motion_step(data, params, out=out)),
            on_result,
        )

    # -- results (main thread) ------------------------------------------------------
    def _show_result(
        self,
        step: Any,
        *,
        name: str,
        scale: tuple,
        translate: tuple,
        params: Any,
        movie: Any,
        out: Any,
    ) -> Generator[None, None, None]:
        """Add the result's layers one per event-loop turn (a generator the runner drives)."""
        self.last_step = step
        self.last_result = step.motion
        self.last_params = params
        tuples = motion_layers(step.motion, step.summary, name, scale, translate)
        for data, meta, layer_type in tuples:
            upsert_layer(self._viewer, data, meta, layer_type)
            yield
        # a rigid re-run leaves no stale quilt from an earlier pw-rigid run
        patches = layer_names(name)["patches"]
        if step.motion.patch_bounds is None and patches in self._viewer.layers:
            self._viewer.layers.remove(patches)
        yield
        self._show_shifts(step.motion, name)
        # the session of the corrected layer takes the result (the CNMF dock reads it there)
        corrected = layer_names(name)["corrected"]
        session = viewer_sessions(self._viewer).for_motion(name, corrected, movie, params)
        session.take_motion(step, params=params, path=out)
        metrics = getattr(step.motion, "metrics", None) or {}
        raw, cor = metrics.get("crispness_raw"), metrics.get("crispness_corrected")
        if raw is not None and cor is not None:
            self.result_label.value = f"crispness {raw:.4g} → {cor:.4g}"

    def _show_shifts(self, motion: Any, name: str) -> ShiftsPlot | None:
        window = getattr(self._viewer, "window", None)
        if window is None:  # a viewer model without a window
            return None
        plot = window.dock_widgets.get(DOCK_NAME)
        if isinstance(plot, ShiftsPlot):
            dock = plot.parent()
            if dock is not None:
                dock.show()
        else:
            plot = ShiftsPlot()
            window.add_dock_widget(plot, name=DOCK_NAME, area="bottom")
        plot.plot(motion, title=name)
        return plot
