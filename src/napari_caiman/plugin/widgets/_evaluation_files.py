"""The Evaluation dock's files: load, save, export, and the dialogs that ask.

:class:`EvaluationFiles` is a mixin of
:class:`~napari_caiman.plugin.widgets.evaluation.EvaluationWidget`. The dialogs are
attributes the widget sets to the methods here (``ask_save_path`` ...), so
tests answer them; the writing itself is the curation session's
(:meth:`~napari_caiman.app.curation_session.CurationSession.save`, atomic).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QFileDialog, QMessageBox

from ...engine.errors import InputError

if TYPE_CHECKING:
    from ...app.curation_session import CurationSession

RESULTS_FILTER = "Results (*.hdf5 *.h5)"


def _first(source: Any) -> Any:
    if isinstance(source, (list, tuple)):
        return source[0] if source else None
    return source


class EvaluationFiles:
    """Results files and dialogs of the Evaluation widget (a mixin; see the module)."""

    session: CurationSession | None

    # -- dialogs (replaced by tests) ---------------------------------------------------------------
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

    def _ask_save_path(self, start: str) -> str:
        path, _f = QFileDialog.getSaveFileName(self.native, "Save results", start, RESULTS_FILTER)
        return path

    def _ask_open_path(self) -> str:
        path, _f = QFileDialog.getOpenFileName(self.native, "Load results", "", RESULTS_FILTER)
        return path

    def may_replace(self, new: str) -> bool:
        """Whether the current result may be replaced by ``new`` (a name for messages).

        Yes when nothing unsaved would be lost, else the user chooses to save first (yes once
        saved), discard (yes) or keep (no).
        """
        s = self.session
        if s is None or not s.has_unsaved_curation:
            return True
        answer = self.ask_replace(
            f"The curation of {s.name!r} ({s.unsaved_text()}) is not saved. Save it before "
            f"curating {new}?\n\nSave: choose a file, then switch. Discard: switch and "
            f"lose it. Cancel: keep curating {s.name!r}."
        )
        if answer == "save":
            return self._on_save() is not None
        return answer == "discard"

    # -- load ------------------------------------------------------------------------------------------
    def _on_load(self, *_: Any) -> None:
        path = self.ask_open_path()
        if path and self.may_replace(repr(Path(path).name)):
            self._guard(partial(self.load, path))()

    def load(self, path: str | Path) -> None:
        """Load a results file and show its layers.

        Decisions come from the file (or its newer autosaved sidecar).

        Raises
        ------
        InputError
            The file cannot be read, or holds no CNMF components.
        """
        from ...io.results_file import load_results

        path = Path(path)
        self.use_results(load_results(path), path, build_layers=True)

    # -- save / export -------------------------------------------------------------------------------------
    def results(self) -> Any:
        """Return the session as an engine ``Results`` (what Save writes)."""
        s = self.session
        if s is None:
            raise InputError("result", "nothing to save: take or load a result first")
        s.thresholds = self.thresholds()
        return s.results(self._params())

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
        """Return ``<folder of the movie's file>/<result name, no spaces>.hdf5``.

        The current folder when the movie has no file.
        """
        s = self.session
        assert s is not None
        layer = self.movie.value
        source = None
        if layer is not None:
            source = _first(getattr(getattr(layer, "source", None), "path", None))
            source = source or _first(layer.metadata.get("path"))
            origin = layer.metadata.get("napari_caiman", {}).get("source")
            if not source and origin and origin in self._viewer.layers:  # e.g. "<movie> corrected"
                raw = self._viewer.layers[origin]
                source = _first(getattr(raw.source, "path", None) or raw.metadata.get("path"))
        return s.default_save_path(source)

    def save(self, path: str | Path) -> Path:
        """Write results + curation atomically (and the sidecar).

        Later decisions autosave next to this file.
        """
        s = self.session
        if s is None:
            raise InputError("result", "nothing to save: take or load a result first")
        s.thresholds = self.thresholds()
        out = s.save(path, self._params(), sidecar=False)
        self.autosave()  # a sidecar that cannot be written is reported, the file stays saved
        self.runner.status.value = f"saved {out.name}"
        return out

    def export(self, kind: str, path: str | Path) -> Path:
        """Export the accepted components: ``kind`` is 'nwb', 'csv' or 'tiff'."""
        s = self.session
        if s is None:
            raise InputError("result", "nothing to export: take or load a result first")
        return s.export(kind, path)

    def _on_export(self, kind: str, *_: Any) -> None:
        filters = {"nwb": "NWB (*.nwb)", "csv": "CSV (*.csv)", "tiff": "TIFF (*.tif *.tiff)"}
        path, _f = QFileDialog.getSaveFileName(
            self.native, f"Export {kind.upper()}", "", filters[kind]
        )
        if path:
            self._guard(partial(self.export, kind, path))()
