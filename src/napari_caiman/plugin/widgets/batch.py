"""The "Batch" dock widget: a queue of pipeline runs (parameter variants, many movies).

A front end for :class:`napari_caiman.app.batch.Batch` (the batch JSON file),
run by the one queue runner :class:`napari_caiman.app.queue.QueueRunner`:

* **Batch file** — open or create one (``.json``; the suggestion is
  ``batch.json`` next to the movie). The results folder and the disk use of
  the shared motion cache are shown (measured in a worker); *Clear cache* asks first.
* **Add** (:mod:`.batch_items`) — an item is a movie (an Image layer: its
  file when it came from one, else its data is written once to
  ``<batch folder>/inputs/<name>.tif``), the steps, and the parameters of the
  open step docks or of a preset JSON file. *Add variants* adds one item per
  value (or per pair of values of two parameters). Everything is validated
  when added (duplicate names, parameters that do not fit the movie ...).
* **Queue** (:mod:`.batch_queue`, :mod:`.batch_table`) — a table of the items
  with their status, time and outcome. *Run queue* runs the queued items one
  after another (items queued meanwhile join), each in a process of its own
  unless *each item in its own process* is off (then in a thread of napari's
  process); cancelling one lets the queue go on with the next. With a Dask
  scheduler ("local" or an address) the queue runs on the cluster instead.
* **Results** (:mod:`.batch_results`) — double-click a finished item to load
  its results as layers (as File > Open does) and read its provenance;
  *Compare* overlays the accepted contours of two items and lists their
  parameter differences.

All file reading, running and layer-data making happens in workers; layers and
Qt are touched on the main thread only. The batch file is rewritten after
every change by the batch, so closing napari mid-run leaves it consistent.

Driving it from a test::

    widget = BatchWidget(viewer)
    widget.path.value = tmp_path / "runs.json"; widget.new_batch()
    widget.movie.value = viewer.layers["movie"]; widget.item_name.value = "a"
    widget.add_item()                       # raises InputError when rejected
    widget.run_queue()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    widget.load_item("a"); widget.compare_items("a", "b")
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    Container,
)
from napari.layers import Layer
from napari.utils.notifications import show_error
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication, QMessageBox

from ...engine.errors import InputError, StateError
from ._dock import make_scrollable
from ._layers import movie_layer_choices, select_active_movie
from ._runner import error_message
from .batch_file import BatchFileControls
from .batch_form import build_form
from .batch_items import ItemForm
from .batch_queue import QueueControls
from .batch_results import ResultsView
from .batch_table import QueueTable
from .batch_text import STATUS_COLORS, format_bytes, format_elapsed, parse_values

if TYPE_CHECKING:
    import napari

    from ...app.batch import Batch

__all__ = ["BatchWidget", "format_bytes", "format_elapsed", "parse_values"]

logger = logging.getLogger(__name__)


class BatchWidget(BatchFileControls, ItemForm, ResultsView, QueueControls, Container):
    """Queue pipeline runs in a batch file, run them, load and compare results.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari when opened from the Plugins menu.

    Attributes
    ----------
    batch : Batch or None
        The open batch file.
    runner : StepRunner
        Progress and status of the running item (its own buttons are hidden;
        the queue buttons drive it).
    table : QTableWidget
        The queue (name, status, elapsed, summary / error).
    details : TextEdit
        Provenance of the loaded item, or the comparison.
    confirm : callable(str) -> bool
        Asks before clearing the cache or removing items (tests replace it).
    last_loaded, last_compared :
        Name / names shown last (for tests and scripts).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.batch: Batch | None = None
        top, bottom = build_form(self)
        super().__init__(widgets=[top, bottom], labels=False)
        self.table = QueueTable()
        self.native.layout().insertWidget(1, self.table)
        make_scrollable(self)

        self.confirm: Callable[[str], bool] = self._ask
        self.last_loaded: str | None = None
        self.last_compared: tuple[str, str] | None = None
        self._io_worker: Any = None
        self._add_worker: Any = None
        self._cache_worker: Any = None
        self._cache_again = False
        self._written: dict[int, tuple[Any, Path]] = {}
        self._closed = False
        self._docked = False
        self._timer = QTimer(self.native)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._on_tick)
        self._init_queue()

        self.open_button.changed.connect(self._guard(self.open_batch))
        self.new_button.changed.connect(self._guard(self.new_batch))
        self.clear_cache_button.changed.connect(self._guard(self.clear_cache))
        self.add_button.changed.connect(self._guard(self.add_item))
        self.variants_button.changed.connect(self._guard(self.add_variants))
        self.run_button.changed.connect(self._guard(self.run_queue))
        self.cancel_button.changed.connect(self._guard(self.cancel_selected))
        self.cancel_all_button.changed.connect(self._guard(self.cancel_all))
        self.load_button.changed.connect(self._guard(self._load_selected))
        self.compare_button.changed.connect(self._guard(self._compare_selected))
        self.rerun_button.changed.connect(self._guard(self.rerun_selected))
        self.remove_button.changed.connect(self._guard(self.remove_selected))
        self.movie.changed.connect(self._suggest_path)
        self.table.cellDoubleClicked.connect(self._on_double_click)
        viewer.layers.events.inserted.connect(self._on_layers_changed)
        viewer.layers.events.removed.connect(self._on_layers_changed)
        self.native.destroyed.connect(self._on_destroyed)
        app = QApplication.instance()
        if app is not None:  # quitting napari may end the process before the widget is deleted
            app.aboutToQuit.connect(self._on_destroyed)
        self._select_active_movie()
        self._suggest_path()
        self._update_buttons()

    # -- helpers --------------------------------------------------------------------
    def _guard(self, func: Callable[[], Any]) -> Callable[..., None]:
        """Run ``func`` from a button; errors go to the message line and a notification."""

        def call(*_: Any) -> None:
            try:
                func()
            except Exception as exc:
                self.report_error(exc)

        return call

    def report_error(self, exc: BaseException) -> None:
        """Show ``exc`` in the message line and as a notification."""
        if not isinstance(exc, (InputError, StateError)):
            logger.error(
                "Batch: %s", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            )
        message = error_message(exc, "Batch")
        self._say(message, error=True)
        show_error(message)

    def _say(self, text: str, *, error: bool = False) -> None:
        if self._closed:
            return
        short = text if len(text) <= 120 else text[:117] + "…"
        self.message.value = short
        self.message.tooltip = text
        self.message.native.setStyleSheet(f"color: {STATUS_COLORS['failed']};" if error else "")

    def _ask(self, text: str) -> bool:
        answer = QMessageBox.question(self.native, "Batch", text)
        return answer == QMessageBox.StandardButton.Yes

    @property
    def is_busy(self) -> bool:
        """True while results load, a comparison is made or a movie is written."""
        return self._io_worker is not None or self._add_worker is not None

    def _require_batch(self) -> Batch:
        if self.batch is None:
            raise StateError("batch file", "open a batch file or make a new one first")
        return self.batch

    # -- queue table ---------------------------------------------------------------------
    def _refresh_table(self) -> None:
        self.table.show_items(list(self.batch) if self.batch is not None else [], self.live_text())

    def selected_names(self) -> list[str]:
        """Names of the selected rows, in table order."""
        return self.table.selected_names()

    def select(self, names: Iterable[str]) -> None:
        """Select these items' rows (and only these)."""
        self.table.select(names)

    def _update_buttons(self) -> None:
        if self._closed:
            return
        has = self.batch is not None and len(self.batch) > 0
        running = self.is_running
        self.run_button.enabled = has and not running
        self.cancel_button.enabled = has
        self.cancel_all_button.enabled = running
        self.clear_cache_button.enabled = self.batch is not None and not running
        self.open_button.enabled = self.new_button.enabled = not running
        self.path.enabled = not running
        busy = self.is_busy
        self.add_button.enabled = self.variants_button.enabled = self._add_worker is None
        self.load_button.enabled = self.compare_button.enabled = has and not busy
        self.rerun_button.enabled = self.remove_button.enabled = has

    def _on_tick(self) -> None:
        if not self._closed and self._dock_closed():
            self._shutdown(wait=False)
            return
        if not self._closed and self.batch is not None:
            with contextlib.suppress(OSError):
                # items run or added by another writer (e.g. the CLI, the item's process);
                # never waiting for its lock on the main thread: a busy file is read next tick
                self.batch.refresh(blocking=False)
            self._refresh_table()
            if self.is_running:
                self._warn_failed()
                if self.queue is not None and self.queue.on_dask:
                    self._refresh_cache()

    # -- layer choices ------------------------------------------------------------------------
    def _movie_choices(self, *_: Any) -> list[tuple[str, Layer]]:
        return movie_layer_choices(self._viewer)

    def _select_active_movie(self) -> None:
        select_active_movie(self._viewer, self.movie)

    def _on_layers_changed(self, event: Any = None) -> None:
        if self._closed:
            return
        self.movie.reset_choices()

    # -- items ----------------------------------------------------------------------------------
    def remove_selected(self) -> None:
        """Remove the selected items from the batch (their results files are kept)."""
        batch = self._require_batch()
        names = self.selected_names()
        if not names:
            raise InputError("selection", "select the items to remove in the table")
        running = [n for n in names if batch.item(n).status == "running"]
        if running:
            raise StateError("selection", f"{running[0]!r} is running: cancel it first")
        what = repr(names[0]) if len(names) == 1 else f"{len(names)} items"
        if not self.confirm(f"Remove {what} from the batch? Results files are kept."):
            return
        for name in names:
            batch.remove(name)
        self.refresh()
        self._say(f"removed {what}")

    def _on_double_click(self, row: int, _col: int) -> None:
        if 0 <= row < len(self.table.row_names):
            self._guard(partial(self.load_item, self.table.row_names[row]))()

    # -- closing -----------------------------------------------------------------------------------
    def _dock_closed(self) -> bool:
        """Return True once the dock that held this widget was closed.

        Napari's "x" takes the widget out of ``viewer.window.dock_widgets``.
        """
        try:
            docked = any(w is self for w in self._viewer.window.dock_widgets.values())
        except Exception:  # the window is gone
            return self._docked
        self._docked = self._docked or docked
        return self._docked and not docked

    def _on_destroyed(self, *_: Any) -> None:
        app = QApplication.instance()
        if app is not None:
            with contextlib.suppress(TypeError, RuntimeError):
                app.aboutToQuit.disconnect(self._on_destroyed)
        self._shutdown(wait=True)
