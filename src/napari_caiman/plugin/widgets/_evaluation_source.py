"""Which result the Evaluation dock curates.

The CNMF dock's newest, a loaded file, or one opened with File > Open.

:class:`EvaluationSource` is a mixin of
:class:`~napari_caiman.plugin.widgets.evaluation.EvaluationWidget`. A new result
replaces the current one only when nothing unsaved would be lost, or the user
says so (``may_replace``); the docks then follow the new result's layers.
It also publishes the dock's thresholds on the viewer's shared state while the
dock is open (:mod:`._publish`; the Batch dock's evaluate step reads them there).
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from pathlib import Path
from typing import Any

from napari.layers import Image, Layer
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer

from ...app.curation_session import CurationSession
from ...app.session import Session
from ...engine.curation import Curation
from ...engine.errors import InputError
from ._evaluation_form import THRESHOLDS
from ._layers import choose_by_name, unwrap
from ._presets import set_field
from ._publish import publish_while_docked
from ._state import ViewerSessions

#: Layer metadata keys the npe2 results reader sets (see plugin/results_reader.py).
RESULTS_KEY = "napari_caiman_results"
RESULTS_PATH_KEY = "napari_caiman_results_path"


class EvaluationSource:
    """Taking up results in the Evaluation widget (a mixin; see the module)."""

    session: CurationSession | None
    _sessions: ViewerSessions
    _viewer: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Build the form (the next classes of the widget), then publish it for the Batch dock."""
        super().__init__(*args, **kwargs)
        publish_while_docked(self._viewer, self, "evaluate", self._form_params)

    def _form_params(self, frame_shape: tuple[int, ...]) -> dict[str, Any]:
        """Return the form's thresholds as flat CaImAn names (what a batch item evaluates with)."""
        return dict(self.thresholds())

    # -- choosing the result ---------------------------------------------------------------------------
    def _on_layers_changed(self, event: Any = None) -> None:
        self.movie.reset_choices()
        self.seeds.reset_choices()
        layer = getattr(event, "value", None)
        if (
            event is not None
            and event.type == "inserted"
            and isinstance(layer, Layer)
            and (RESULTS_KEY in layer.metadata)
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
            results = unwrap(layer.metadata.get(RESULTS_KEY))
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
        built = contours in self._viewer.layers and isinstance(self._viewer.layers[contours], Image)
        self._guard(partial(self.use_results, results, path, name=name, build_layers=not built))()

    def _follow(self, session: Session) -> None:
        """Follow the CNMF results of ``session`` (one of this viewer's analyses)."""
        session.events.cnmf.connect(self._on_cnmf_done)

    def _find_cnmf(self) -> Session | None:
        """Return the viewer's session with the newest CNMF result (its CNMF dock's run)."""
        newest = self._sessions.newest
        return newest if newest is not None and newest.estimates is not None else None

    def _on_cnmf_done(self, analysis: Session) -> None:
        """Take up a session's new CNMF result.

        Curate it (asking first when unsaved curation would be lost).
        """
        if self._closed:
            return
        s = self.session
        if s is not None and s.estimates is analysis.estimates:
            return
        if not self.may_replace(f"the new CNMF result of {analysis.name!r}"):
            self.runner.status.value = f"kept {s.name!r}; the new CNMF result not taken"
            show_info(
                f"The Evaluation dock keeps {s.name!r} (unsaved curation); "
                "use 'Use CNMF result' to curate the new result."
            )
            return
        # called in the CNMF dock's last turn of adding layers: the rest comes in later turns
        self._guard(partial(self.take_cnmf_result, in_turns=True))()

    def _on_take(self, *_: Any) -> None:
        if self.may_replace("the CNMF result"):
            self._guard(self.take_cnmf_result)()

    def take_cnmf_result(self, *, in_turns: bool = False) -> None:
        """Curate the CNMF dock's last result (its layers are already shown).

        ``in_turns``: the session and its clicks at once, the docks, colours and table in later
        turns.

        Raises
        ------
        InputError
            No CNMF dock or no result yet.
        """
        newest = self._find_cnmf()
        if newest is None:
            raise InputError("result", "no CNMF result: run CNMF first, or load a results file")
        if not in_turns:
            self.set_result(newest.estimates, newest.summary, newest.params, newest.name or "cnmf")
            return
        session = CurationSession(
            estimates=newest.estimates,
            summary=newest.summary,
            params=newest.params,
            name=newest.name or "cnmf",
        )
        self._in_turns(self._show_session_steps(session, build_layers=False))

    def use_results(
        self,
        results: Any,
        path: str | Path | None = None,
        *,
        name: str | None = None,
        build_layers: bool = True,
    ) -> None:
        """Curate an engine ``Results`` (e.g. read by the npe2 reader).

        As :meth:`load` without reading the file. ``build_layers=False`` uses the layers ``"<name>
        contours"`` ... already in the viewer.

        Raises
        ------
        InputError
            The results hold no CNMF components.
        """
        results = unwrap(results)
        session = CurationSession.from_results(results, path, name)
        self._seen_results[id(results)] = results
        evaluation = session.provenance.get("evaluation")
        self._drop_outline()
        self.session = None  # no re-thresholding of the old result while the form fills
        for key in THRESHOLDS:  # the sliders
            value = results.params.get(key)
            if value is not None:
                set_field(getattr(self, key), float(value))  # a slider widens to the file's value
        if isinstance(evaluation, dict):
            self.min_size.value = int(evaluation.get("min_size", 0) or 0)
            self.max_size.value = int(evaluation.get("max_size", 0) or 0)
        self._show_session(session, build_layers=build_layers)
        # the open movie whose content the file's provenance recorded, not one of the same name
        self._choose_recorded_movie(session)

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
        """Curate this result.

        ``build_layers`` adds its layers (contours ...) as the CNMF widget does; otherwise ``"<name>
        contours"`` must exist.
        """
        session = CurationSession(
            estimates=estimates,
            summary=summary,
            params=params,
            name=name,
            metrics=metrics,
            F_dff=F_dff,
            curation=curation,
            path=path,
            motion=motion,
            provenance=provenance or {},
        )
        self._show_session(session, build_layers=build_layers, movie=movie)

    def _show_session(
        self, session: CurationSession, *, build_layers: bool, movie: Any = None
    ) -> None:
        for _step in self._show_session_steps(session, build_layers=build_layers, movie=movie):
            pass

    def _show_session_steps(
        self, session: CurationSession, *, build_layers: bool, movie: Any = None
    ) -> Generator[None, None, None]:
        """Curate ``session``.

        At once its layers' clicks and keys and the accepted set, then (a yield before each) the
        docks, the contours' colours and features, the table, the traces; it stops when another
        session came meanwhile.
        """
        self._drop_outline()
        self.session = session
        if build_layers:
            self._rebuild_layers(movie)
        self._hook_layers()
        # the movie the result was computed on, by name (proxies are never identical)
        choose_by_name(self.movie, session.name)
        where = f" from {session.path.name}" if session.path else ""
        self.source_label.value = f"{session.name}: {session.n_components} components{where}"
        session.update(self.thresholds())
        yield
        if self.session is not session:
            return
        for _step in self._dock_steps():
            yield
            if self.session is not session:
                return
        self._colors = None
        for _step in self._apply_steps(full=True):
            yield
            if self.session is not session:
                return
        self._show_traces()

    def _choose_recorded_movie(self, session: CurationSession) -> bool:
        """Choose the open movie the results file says it was computed on; False when none is.

        The file's provenance holds content hashes of that movie (:func:`.recorded_movie`); an
        open movie layer read from a file with those hashes is chosen (a layer's name says
        nothing: the raw movie and the results file may share it). With hashes and no such
        layer, one message names the movie to open.
        """
        from ...io.provenance import content_matches, recorded_movie

        which, recorded = recorded_movie(session.provenance)
        want = [r.get("content_sha256") for r in recorded]
        if not want:
            return False
        for choice in self.movie.choices:
            path = getattr(getattr(choice, "source", None), "path", None)
            try:
                if path and content_matches(path, want):
                    self.movie.value = choice
                    return True
            except OSError:
                continue
        names = ", ".join(Path(r.get("path", "?")).name for r in recorded)
        show_info(
            f"{session.path.name if session.path else 'These results'} were computed on the "
            f"{which} {names}, which is not open: open it and choose it in 'movie' before "
            "evaluating again."
        )
        return False

    def _in_turns(self, steps: Generator[None, None, None]) -> None:
        """Run ``steps`` one piece per event-loop turn (the window redraws in between)."""

        def turn() -> None:
            try:
                next(steps)
            except StopIteration:
                return
            except Exception as exc:
                self.runner.report_error(exc)
                return
            QTimer.singleShot(0, turn)

        turn()
