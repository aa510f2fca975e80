"""The "CNMF" dock widget: source extraction on a (motion-corrected) movie.

The form holds CaImAn's key CNMF parameters (see :mod:`.cnmf_settings`); Run
starts :func:`napari_caiman.engine.pipeline.iter_cnmf_step` in a worker
(:class:`~._runner.StepRunner`); the result becomes layers through the pure
functions of :mod:`napari_caiman.plugin.layers.cnmf`: footprints (Labels with a
features table), contours (one RGBA image of outlines), the correlation image and
the lazy denoised and residual movies, made in the worker and added one per
event-loop turn. Running again on the same input updates those layers in place.

A Labels layer chosen as "seed" turns every painted label into one seed
footprint (``Ain``): initialization is skipped and CNMF refines exactly those
neurons.

Driving it from a test::

    widget = CNMFWidget(viewer)
    widget.movie.value = viewer.layers["raw corrected"]
    widget.set_settings(widget.get_settings().replace(K=10, gSig=(4, 4, 2)))
    widget.runner.run_button.native.click()   # errors -> notifications
    qtbot.waitUntil(lambda: not widget.runner.is_running, timeout=30_000)
    widget.last_result                # engine CnmfStepResult
"""

from __future__ import annotations

import time
from collections.abc import Generator
from functools import partial
from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, Container, LineEdit, PushButton
from napari.layers import Image, Labels

from ...engine.errors import InputError
from ...engine.memory import budget
from ...engine.preflight import check_run
from ...engine.progress import Progress
from ..layers.cnmf import cnmf_layer_data, labels_to_seeds
from ..layers.motion import layer_names
from ._backend import BackendEdit, check_backend
from ._dock import StatusLabel, make_scrollable
from ._fields import AxesEdit, choice, spin
from ._layers import select_active_movie, upsert_layer, with_shown_footprints
from ._memory import memory_limit_edit, with_memory_limit
from ._presets import PresetBar
from ._process import in_process_if_available
from ._runner import StepRunner
from ._state import viewer_sessions
from ._step_form import StepForm
from .cnmf_settings import PATCH_ONLY, PER_AXIS, STEP_NAMES, CNMFSettings, methods_init

if TYPE_CHECKING:
    import napari

#: Tooltips of the fields that are not parameters (the others come from the schema).
_TIPS = {
    "kwargs": "Other CaImAn parameters as a dict, e.g. {'nIter': 3}; they override the form",
    "seed": "Labels layer whose labels become seed footprints (initialization is skipped)",
}

#: Text of the "no seed" choice.
NO_SEED = "none (initialize)"


class CNMFWidget(StepForm):
    """CNMF source extraction of a (T, Y, X) or (T, Z, Y, X) Image layer (a :class:`~._step_form.StepForm`).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari when opened from the Plugins menu.

    Attributes
    ----------
    runner : StepRunner
        Run / Cancel / progress; ``runner.is_running`` and ``runner.finished``
        are what tests wait on.
    backend : BackendEdit
        native | caiman; Run refuses (with a message) when CaImAn is not available.
    presets : PresetBar
        Save / Load preset (JSON of CaImAn names); its ``ask_save_path`` /
        ``ask_open_path`` are the file dialogs.
    last_result : CnmfStepResult or None
        The last successful result (``.estimates``, ``.summary``), for saving
        and evaluation.
    last_params : CaimanParams or None
        The parameters of the last successful run.
    last_seeds : ndarray or None
        Label values of the seeds of the last run (None when not seeded).
    """

    SETTINGS = CNMFSettings
    PER_AXIS = PER_AXIS

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        d = CNMFSettings.defaults()
        self.movie = ComboBox(
            label="movie",
            choices=self._movie_choices,
            tooltip="Image layer with a (T, Y, X) or (T, Z, Y, X) movie, ideally motion corrected",
        )
        self.backend = BackendEdit(d.backend)
        # fields, tooltips and ranges from the parameter schema (engine.schema)
        self.fr = spin("fr", d.fr)
        self.decay_time = spin("decay_time", d.decay_time)
        self.p = choice("p", d.p)
        self.nb = spin("nb", d.nb)
        self.gSig = AxesEdit("gSig", d.gSig)
        self.gSiz = AxesEdit("gSiz", d.gSiz, note="0 = auto")
        self.K = spin("K", d.K)
        self.rf = AxesEdit("rf", d.rf, note="0 = whole FOV")
        self.stride = AxesEdit("stride", d.stride, note="0 = auto")
        self.merge_thr = spin("merge_thr", d.merge_thr)
        self.method_init = choice("method_init", d.method_init, methods_init(d.backend))
        self.ssub = spin("ssub", d.ssub)
        self.tsub = spin("tsub", d.tsub)
        self.kwargs = LineEdit(value=d.kwargs, label="kwargs", tooltip=_TIPS["kwargs"])
        self.memory_limit = memory_limit_edit()
        self.kwargs.native.setPlaceholderText("other parameters, e.g. {'nIter': 3}")
        self.seed = ComboBox(label="seed from", choices=self._seed_choices, tooltip=_TIPS["seed"])
        self.reset_button = PushButton(text="Reset to defaults")
        self.suggest_button = PushButton(
            text="Suggest rf, stride, K",
            tooltip="Choose a movie first: patches and K from its size",
        )
        reset_row = Container(
            widgets=[self.reset_button, self.suggest_button], layout="horizontal", labels=False
        )
        reset_row.margins = (0, 0, 0, 0)
        self.runner = StepRunner("CNMF", self.run)
        self.presets = PresetBar(
            "CNMF",
            self,
            form_names=[n for n in CNMFSettings.field_names() if n != "kwargs"],
            step_names=STEP_NAMES,
            get_values=self._preset_values,
            report_error=self.runner.report_error,
        )
        self.result_label = StatusLabel(value="", label="result")
        super().__init__(
            widgets=[
                self.movie,
                self.backend,
                self.backend.message,
                self.fr,
                self.decay_time,
                self.p,
                self.nb,
                self.gSig,
                self.gSiz,
                self.K,
                self.rf,
                self.stride,
                self.merge_thr,
                self.method_init,
                self.ssub,
                self.tsub,
                self.kwargs,
                self.memory_limit,
                self.seed,
                reset_row,
                self.presets,
                self.runner,
                self.result_label,
            ],
        )
        make_scrollable(self, pinned=(self.runner, self.result_label))  # Run + progress on screen
        self.last_result: Any = None
        self.last_params: Any = None
        self.last_seeds: Any = None

        self.backend.changed.connect(self._on_backend_changed)
        self.rf.changed.connect(self._on_rf_changed)
        for box in self.rf.boxes:
            box.changed.connect(self._on_rf_changed)
        self.suggest_button.changed.connect(lambda *_: self.apply_suggestion())
        for box in self.gSig.boxes:
            box.changed.connect(self._update_suggestion)
        self._start(viewer)
        self._select_default_movie()
        self._on_movie_changed(self.movie.value)
        self._on_rf_changed()

    # -- form <-> settings (the rest: StepForm) ------------------------------------
    def set_settings(self, settings: CNMFSettings) -> None:
        """Fill the form from ``settings``."""
        self.backend.value = settings.backend  # first: it sets the method_init choices
        super().set_settings(settings)
        self._on_rf_changed()

    def _defaults(self) -> CNMFSettings:
        """CaImAn's defaults; the backend (and the movie and seed choices) are kept."""
        return CNMFSettings.defaults().replace(backend=self.backend.value)

    def _frame_shape(self) -> tuple[int, ...] | None:
        layer = self.movie.value
        return None if layer is None else tuple(int(s) for s in layer.data.shape[1:])

    def _preset_values(self) -> dict[str, Any]:
        """Return the form's parameters as flat CaImAn names (what "Save preset…" writes)."""
        settings = self.get_settings()
        shape = self._frame_shape()
        if shape is None:
            rf = settings.rf[: self.n_spatial]
            if any(rf) and not all(rf):
                raise InputError(
                    "rf",
                    "0 means the whole field of view: choose the movie first, "
                    "or give every axis a patch size",
                )
            shape = (1,) * self.n_spatial  # the size is used only for rf = 0 on some axes
        return settings.to_dict(shape)

    # -- layer choices ----------------------------------------------------------
    def _seed_choices(self, *_: Any) -> list[tuple[str, Any]]:
        labels = [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Labels)]
        return [(NO_SEED, None), *labels]

    def _select_default_movie(self) -> None:
        """Choose the newest motion-corrected movie, else the selected movie, else the first."""
        choices = [layer for _, layer in self._movie_choices()]
        corrected = [
            layer
            for layer in choices
            if layer.metadata.get("napari_caiman", {}).get("kind") == "motion corrected"
        ]
        if corrected:
            self.movie.value = corrected[-1]
        else:
            select_active_movie(self._viewer, self.movie)

    def _reset_choices(self) -> None:
        self.movie.reset_choices()
        self.seed.reset_choices()

    def _on_layers_changed(self, event: Any = None) -> None:
        super()._on_layers_changed(event)
        layer = getattr(event, "value", None)
        if (
            event is not None
            and event.type == "inserted"
            and isinstance(layer, Image)
            and layer.metadata.get("napari_caiman", {}).get("kind") == "motion corrected"
            and not self.runner.is_running
        ):
            self.movie.value = layer  # a new motion-corrected movie is what CNMF wants

    def _on_movie_changed(self, layer: Any) -> None:
        super()._on_movie_changed(layer)  # z values the planes allow (gSig 0.5 for 2 planes ...)
        self._on_rf_changed()
        self._update_suggestion()

    def suggestion(self) -> Any:
        """Patches and K for the chosen movie and gSig (None without a movie)."""
        from ...engine.defaults import suggest_patches

        shape = self._frame_shape()
        if shape is None:
            return None
        return suggest_patches(shape, self.gSig.value[:2])

    def _update_suggestion(self, *_: Any) -> None:
        s = self.suggestion()
        self.suggest_button.enabled = s is not None
        self.suggest_button.tooltip = (
            "Choose a movie first: patches and K from its size" if s is None else s.reason
        )

    def apply_suggestion(self) -> None:
        """Put the suggested rf, stride and K into the form (the tooltip says why)."""
        s = self.suggestion()
        if s is None:
            return
        z = (0,) if self.n_spatial == 3 else ()
        rf = (0, 0, 0) if s.rf is None else (*s.rf[:2], *z, 0)[:3]
        stride = (0, 0, 0) if s.stride is None else (*s.stride[:2], *z, 0)[:3]
        self.rf.value = rf
        self.stride.value = stride
        self.K.value = s.K
        self._on_rf_changed()

    def _on_backend_changed(self, *_: Any) -> None:
        """Offer the initialization methods of the chosen backend."""
        current = self.method_init.value
        choices = list(methods_init(self.backend.value))
        self.method_init.choices = choices
        self.method_init.value = current if current in choices else choices[0]

    def _on_rf_changed(self, *_: Any) -> None:
        patches = any(self.rf.value[: self.n_spatial])
        for name in PATCH_ONLY:
            getattr(self, name).enabled = patches

    # -- run ------------------------------------------------------------------------
    def run(self) -> None:
        """Validate the form and start CNMF in a worker.

        Raises
        ------
        InputError
            No movie chosen, a bad parameter or a bad seed layer (the Run
            button shows these as notifications instead).
        """
        from ...engine.pipeline import iter_cnmf_step

        layer = self.movie.value
        if layer is None:
            raise InputError(
                "movie", "choose an Image layer holding a (T, Y, X) or (T, Z, Y, X) movie"
            )
        data = layer.data
        frame_shape = tuple(int(s) for s in data.shape[1:])
        params = with_memory_limit(self.get_settings().to_params(frame_shape), self.memory_limit)
        check_backend(params["backend"])
        check_run(tuple(data.shape), ("cnmf",), params, budget(params))  # refuse what cannot fit
        Ain = seeds = None
        if self.seed.value is not None:
            Ain, seeds = labels_to_seeds(self.seed.value.data, frame_shape)
        # the session of this layer: the Motion dock's when it is a corrected movie
        session = viewer_sessions(self._viewer).for_layer(layer.name, data, params)
        summary = None if session.motion is None else session.summary
        # the motion-border rule (engine.pipeline.movie_for_cnmf) is applied by the step
        motion = session.motion
        name, scale, translate = layer.name, tuple(layer.scale), tuple(layer.translate)

        def steps() -> Generator[Progress, None, tuple[Any, list]]:
            # in a child process where possible: the window keeps the GIL (widgets._process)
            result = yield from in_process_if_available(
                lambda: iter_cnmf_step(data, params, Ain=Ain, summary=summary, motion=motion)
            )
            if summary is not None:  # the motion step's own images (a copy came back)
                result.summary = summary
            # layer data (contours, labels image ...) is plain numpy: made here,
            # in the worker, so the main thread only adds the layers
            yield Progress("making layers", 0, 1)
            return result, cnmf_layer_data(result, name, scale, translate, movie=data)

        on_result = partial(
            self._show_result,
            params=params,
            seeds=seeds,
            started=time.perf_counter(),
            name=name,
            session=session,
        )
        self.result_label.value = ""
        self.runner.start(steps, on_result)

    # -- results (main thread) ------------------------------------------------------
    def _show_result(
        self,
        output: tuple[Any, list],
        *,
        params: Any,
        seeds: Any,
        started: float,
        name: str,
        session: Any,
    ) -> Generator[None, None, None]:
        """Add the result's layers one per event-loop turn (a generator the runner drives)."""
        result, tuples = output
        # the layer the Motion dock corrected into this one, if any
        raw = (
            viewer_sessions(self._viewer).input_layer(name) if session.motion is not None else None
        )
        if raw is not None and result.summary is session.summary:
            # the motion step's correlation image (same summary) is already a layer: show
            # that one instead of a second copy
            corr = layer_names(raw)["correlation"]
            if corr in self._viewer.layers:
                tuples = [
                    t for t in tuples if t[1]["metadata"]["napari_caiman"]["kind"] != "summary"
                ]
                self._viewer.layers[corr].visible = True
        self.last_result = result
        self.last_params = params
        self.last_seeds = seeds
        for data, meta, layer_type in with_shown_footprints(self._viewer, tuples):
            upsert_layer(self._viewer, data, meta, layer_type)
            yield
        n = result.estimates.n_components
        seeded = f" from {len(seeds)} seeds" if seeds is not None else ""
        self.result_label.value = (
            f"{n} component{'s' if n != 1 else ''}{seeded} in {time.perf_counter() - started:.1f} s"
        )
        if raw is not None:  # the motion quilt would hide the contours
            quilt = layer_names(raw)["patches"]
            if quilt in self._viewer.layers:
                self._viewer.layers[quilt].visible = False
        # the session takes the result: the Evaluation dock follows its events.cnmf
        session.take_cnmf(result, params=params)
