"""The Evaluation dock's curation actions: decisions, merge/delete, seeds, refit, classifier.

:class:`EvaluationEdits` is a mixin of
:class:`~napari_caiman.plugin.widgets.evaluation.EvaluationWidget`: each action asks
the curation session (:mod:`napari_caiman.app.curation_session`) to change
and then redraws what changed (layers, colours, table, traces). The seeded
refit runs CNMF in a worker (a child process where possible) and replaces
the layers one per event-loop turn.
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Labels, Layer

from ...engine.errors import InputError
from ...engine.progress import Progress
from ..layers.cnmf import cnmf_layer_data, labels_to_seeds
from ._backend import check_backend
from ._layers import ON_REQUEST, upsert_layer, with_shown_footprints
from ._process import in_process_if_available

if TYPE_CHECKING:
    from ...app.curation_session import CurationSession


class EvaluationEdits:
    """Decisions and hand edits of the Evaluation widget (a mixin; see the module)."""

    session: CurationSession | None

    # -- decisions -----------------------------------------------------------------------------------
    def decide(self, decision: str, idx: Any = None) -> None:
        """Accept / reject / clear the picked components (or ``idx``) by hand.

        Then recolour, and autosave the decisions next to the results file.
        """
        s = self.session
        if s is None or not s.decide(decision, idx):
            return
        self.apply()
        self.autosave()

    def autosave(self) -> Path | None:
        """Write the decisions sidecar if the result has a file."""
        if self.session is None:
            return None
        try:
            return self.session.autosave()
        except InputError as exc:
            self.runner.report_error(exc)
            return None

    # -- hand edits ------------------------------------------------------------------------------------
    def _after_edit(self, label: str) -> None:
        """Show the session's edited components: layers, colours, table, traces; autosave."""
        s = self.session
        assert s is not None
        self._rebuild_layers(edit=True)
        self._colors = None
        self._show_selection(False)
        self.source_label.value = f"{s.name}: {s.n_components} components ({label})"
        self.apply(full=True)
        self._show_traces()
        self.autosave()

    def merge_picked(self) -> None:
        """Merge the picked components (2+) into one.

        Its SNR is computed at once and, with a movie chosen, the metrics (r-value, dF/F) of all
        components are recomputed in the worker: the merged one is accepted or rejected by the
        thresholds like any other (not by hand).
        """
        s = self.session
        if s is None:
            raise InputError("result", "no result to edit")
        s.update(self.thresholds())
        new = s.merge_picked()
        self._after_edit("edited")
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
        if s is None or not s.picked:
            raise InputError("component", "pick components to delete first")
        s.update(self.thresholds())
        s.delete_picked()
        self._after_edit("edited")

    def train_classifier(self, path: str | Path | None = None) -> Any:
        """Train a classifier on the manual decisions and apply it to the undecided components.

        The classifier (engine.classifier) leaves manual decisions as they are (they still win) and
        is saved to ``path``.
        """
        s = self.session
        if s is None or s.metrics is None:
            raise InputError("result", "evaluate first: the classifier learns from the metrics")
        model = s.train_classifier(path)
        self.apply(full=True)
        self.runner.status.value = (
            f"classifier: {model.info['n_accepted']} accepted / {model.info['n_rejected']} rejected "
            f"decisions learnt" + (f", saved {Path(path).name}" if path else "")
        )
        return model

    def _on_train_classifier(self) -> None:
        s = self.session
        start = (
            str(s.path.with_suffix(".classifier.json"))
            if s is not None and s.path
            else "classifier.json"
        )
        path = self.ask_classifier_path(start)
        if path:
            self.train_classifier(path)

    # -- the movie of the metrics --------------------------------------------------------------------------
    def _motion_of(self, layer: Layer) -> Any:
        """Return the result's motion correction when ``layer`` is the motion-corrected movie, else None.

        For the border rule (engine.pipeline.movie_for_cnmf).
        """
        # the motion of this movie's session (the Motion dock's run that made it), if any
        motion = self._sessions.motion_of(layer.name, layer.data)
        if motion is not None:
            return motion
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

    # -- seeded refit ------------------------------------------------------------------------------------
    def new_seeds_layer(self) -> Labels:
        """Return an empty Labels layer of the frame shape to paint missed neurons in."""
        s = self.session
        if s is None:
            raise InputError("result", "no result: take or load one first")
        frame = self.frame_geometry()
        geom = {} if frame is None else {"scale": frame[0], "translate": frame[1]}
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
        from ...engine.pipeline import iter_cnmf_step

        s = self.session
        if s is None:
            raise InputError("result", "no result: take or load one first")
        layer = self._check_movie()
        painted = None
        if self.seeds.value is not None and np.any(np.asarray(self.seeds.value.data)):
            painted, _ = labels_to_seeds(self.seeds.value.data, s.estimates.dims)
        Ain = s.refit_seeds(painted)
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
        """Replace the result with the refit's (if confirmed).

        One layer per event-loop turn (a generator the runner drives), then re-evaluate.
        """
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
        s.thresholds = self.thresholds()
        s.take_refit(new)
        # the refit ran on the same movie: its correlation image is the one shown (no second one)
        kinds = (*ON_REQUEST, "summary")
        for data, meta, layer_type in with_shown_footprints(self._viewer, tuples, kinds):
            upsert_layer(self._viewer, data, meta, layer_type)
            yield
        self._hook_layers()
        self._colors = None
        self._show_selection(False)
        self.source_label.value = f"{s.name}: {new.n_components} components (refit)"
        yield
        yield from self._apply_steps(full=True)
        yield
        self._show_traces()
        self.autosave()
        if self.seeds.value is not None:
            self.seeds.value.data = np.zeros_like(self.seeds.value.data)
        if self.movie.value is not None:
            self.runner.run_button.native.click()  # re-evaluate the new components
