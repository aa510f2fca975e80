"""The "Batch" dock widget: a queue of pipeline runs (parameter variants, many movies).

A front end for :class:`napari_caiman.batch.Batch` (the batch JSON file):

* **Batch file** — open or create one (``.json``; the suggestion is
  ``batch.json`` next to the movie). The results folder and the disk use of
  the shared motion cache are shown; *Clear cache* asks first.
* **Add** — an item is a movie (an Image layer: its file when it came from
  one, else its data is written once to ``<batch folder>/inputs/<name>.tif``),
  the steps, and the parameters of the open step docks (the motion group from
  "Motion correction", the CNMF groups from "CNMF", the quality thresholds
  from "Evaluation / curation"; CaImAn's defaults for a dock that is not
  open) or of a preset JSON file. *Add variants* adds one item per value (or
  per pair of values of two parameters). Everything is validated when added
  (duplicate names, parameters that do not fit the movie ...).
* **Queue** — a table of the items with their status, time and outcome.
  *Run queue* runs the queued items one after another, each in its own
  worker, so cancelling one lets the queue go on with the next. With a Dask
  scheduler ("local" or an address) the queue runs on the cluster instead.
* **Results** — double-click a finished item to load its results as layers
  (as File > Open does) and read its provenance; *Compare* overlays the
  accepted contours of two items and lists their parameter differences.

All file reading, running and layer-data making happens in workers; layers and
Qt are touched on the main thread only. The batch file is rewritten after
every change by the engine, so closing napari mid-run leaves it consistent.

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

import ast
import contextlib
import logging
import re
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Generator, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    LineEdit,
    PushButton,
    TextEdit,
)
from napari.layers import Layer
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QBrush, QColor, QFont
from qtpy.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHeaderView,
    QMessageBox,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
)

from ..engine.errors import InputError
from ..engine.progress import Progress
from ._dock import make_scrollable
from ._layers import movie_layer_choices, select_active_movie, upsert_layer
from ._runner import StepRunner, error_message

if TYPE_CHECKING:
    import napari

    from ..batch import Batch, BatchItem

logger = logging.getLogger(__name__)

#: Text colour of each status in the queue table.
STATUS_COLORS = {
    "queued": "#a8a8a8",
    "running": "#4aa8ff",
    "done": "#4cc26a",
    "failed": "#ff5a5a",
    "cancelled": "#ffa23a",
}

#: Edge colours of the two compared items' contours.
COMPARE_COLORS = ("cyan", "orange")

#: Columns of the queue table.
COLUMNS = ("name", "status", "elapsed", "summary / error")

#: Parameter names that describe one movie, not a way of processing it.
_PER_MOVIE = frozenset(
    {"is3D", "dims", "fnames", "var_name_hdf5", "caiman_version", "last_commit", "mmap_F", "mmap_C"}
)

_TIPS = {
    "path": "Batch file (.json): the queue, each item's status and parameters",
    "item_name": "Name of the new item (also its results file's name); empty = the movie's name",
    "movie": "Image layer with the movie; a layer without a file is written once to "
    "<batch folder>/inputs/",
    "preset": "Parameter file (JSON of CaImAn names); empty = the settings of the open "
    "Motion correction / CNMF / Evaluation docks (defaults where a dock is not open)",
    "vary": "CaImAn name of a parameter to vary, e.g. gSig",
    "values": "Python list of values, e.g. [(3, 3), (4, 4)] or [10, 20, 30]",
    "scheduler": "Empty = run here, one item at a time; 'local' = a Dask cluster on this "
    "machine; or a scheduler address such as tcp://host:8786",
}


# ----------------------------------------------------------------------------- pure helpers


def format_bytes(n: int) -> str:
    """``12_300_000`` -> ``"12.3 MB"`` (decimal units)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover


def format_elapsed(seconds: float | None) -> str:
    """Seconds -> ``"4.2 s"``, ``"3:05"`` or ``"1:02:03"``; ``""`` for None."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def parse_values(text: str, name: str) -> list:
    """The values of a variant parameter from text like ``[(3, 3), (4, 4)]``.

    Raises
    ------
    InputError
        Not a Python literal, or not a non-empty list.
    """
    text = (text or "").strip()
    if not text:
        raise InputError(name, "give the values to try as a list, e.g. [(3, 3), (4, 4)]")
    try:
        values = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise InputError(
            name, f"cannot read {text!r}: write a Python list such as [(3, 3), (4, 4)]"
        ) from None
    if not isinstance(values, list):
        raise InputError(
            name, f"{text!r} is not a list: write the values in brackets, e.g. [{text}]"
        )
    if not values:
        raise InputError(name, "the list of values is empty")
    return values


def _fmt_value(value: Any) -> str:
    if isinstance(value, list):
        value = tuple(_fmt_value(v) for v in value)
        return "(" + ", ".join(value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


def provenance_text(item: BatchItem, results: Any, results_path: str | Path) -> str:
    """What, how and when of a finished item, one fact per line."""
    prov = results.provenance if isinstance(results.provenance, dict) else {}
    lines = [f"{item.name}: {item.summary or item.status}", f"results: {results_path}"]
    inp = prov.get("input_path") or ", ".join(item.movie)
    lines.append(f"input: {inp}")
    facts = []
    if prov.get("input_size") is not None:
        facts.append(format_bytes(int(prov["input_size"])))
    if prov.get("input_shape") is not None:
        facts.append(f"shape {tuple(int(s) for s in prov['input_shape'])} {prov.get('input_dtype', '')}")
    if prov.get("input_header_sha256"):
        facts.append(f"header sha256 {str(prov['input_header_sha256'])[:16]}…")
    if facts:
        lines.append("  " + ", ".join(facts))
    lines.append(
        f"steps: {', '.join(prov.get('steps') or item.steps)}; backend: {prov.get('backend', '?')}"
    )
    if prov.get("started") or prov.get("finished"):
        took = prov.get("elapsed")
        took = f" ({format_elapsed(float(took))})" if took is not None else ""
        lines.append(f"started {prov.get('started', '?')}, finished {prov.get('finished', '?')}{took}")
    timings = prov.get("timings") or {}
    if timings:
        lines.append(
            "timings: " + ", ".join(f"{k} {float(v):.2f} s" for k, v in timings.items())
        )
    if "motion_cache" in prov:
        key = str(prov.get("motion_cache_key", ""))[:12]
        lines.append(f"motion cache: {prov['motion_cache']}" + (f" (key {key}…)" if key else ""))
    versions = prov.get("versions") or {}
    if versions:
        lines.append(
            "versions: "
            + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "platform")
        )
        if "platform" in versions:
            lines.append(f"platform: {versions['platform']}")
    if item.params:
        lines.append(
            "parameters (not default): "
            + ", ".join(f"{k}={_fmt_value(v)}" for k, v in sorted(item.params.items()))
        )
    return "\n".join(lines)


def compare_text(a: str, b: str, diff: dict[str, tuple[Any, Any]], counts: Sequence[str]) -> str:
    """The text shown for a comparison: legend and parameter differences."""
    lines = [
        f"{COMPARE_COLORS[0]}: {a} — {counts[0]}",
        f"{COMPARE_COLORS[1]}: {b} — {counts[1]}",
    ]
    if diff:
        lines.append(f"parameters that differ ({a} | {b}):")
        lines += [f"  {k}: {_fmt_value(va)} | {_fmt_value(vb)}" for k, (va, vb) in diff.items()]
    else:
        lines.append("same parameters")
    return "\n".join(lines)


def accepted_contours(results: Any) -> tuple[list[np.ndarray], str]:
    """Contours of a result's accepted components (all when never evaluated),
    and a count text such as ``"47 of 52 accepted"``."""
    from ..layers.cnmf import contours

    est = results.estimates
    if est is None:
        return [], "no components"
    K = int(est.A.shape[1])
    accepted = results.accepted()
    polygons, owner = contours(est)
    if accepted is None:
        return list(polygons), f"{K} components (not evaluated)"
    keep = np.isin(owner, np.asarray(accepted, dtype=np.int64))
    return [p for p, k in zip(polygons, keep, strict=True) if k], f"{len(accepted)} of {K} accepted"


def _file_name(name: str) -> str:
    return re.sub(r"[^\w.=-]+", "_", name).strip("._") or "movie"


def params_from_widgets(
    viewer: Any, frame_shape: Sequence[int], steps: Sequence[str]
) -> tuple[dict[str, Any], list[str]]:
    """Parameters for ``steps`` from the open step docks, each step's groups
    from its own dock; returns the flat dict and the docks used."""
    from ..engine.params import ALL_GROUPS
    from . import cnmf_settings, motion_settings
    from ._settings import step_names
    from .cnmf import CNMFWidget
    from .evaluation import EvaluationWidget
    from .motion import MotionCorrectionWidget

    frame_shape = tuple(int(s) for s in frame_shape)
    window = getattr(viewer, "window", None)
    docks = list(window.dock_widgets.values()) if window is not None else []

    def find(cls: type) -> Any:
        return next((w for w in docks if isinstance(w, cls)), None)

    quality = frozenset(ALL_GROUPS["quality"])
    plan = [
        ("motion", MotionCorrectionWidget, "Motion correction",
         getattr(motion_settings, "STEP_NAMES", None) or step_names("motion")),
        ("cnmf", CNMFWidget, "CNMF",
         getattr(cnmf_settings, "STEP_NAMES", None)
         or step_names("data", "patch", "preprocess", "init", "spatial", "temporal", "merging")),
        ("evaluate", EvaluationWidget, "Evaluation", quality),
    ]
    values: dict[str, Any] = {}
    used: list[str] = []
    for step, cls, title, names in plan:
        widget = find(cls)
        if step not in steps or widget is None:
            continue
        try:
            if cls is MotionCorrectionWidget:
                full = widget.get_settings().to_params(len(frame_shape)).to_dict()
            elif cls is CNMFWidget:
                full = widget.get_settings().to_params(frame_shape).to_dict()
            elif hasattr(widget, "get_settings"):
                settings = widget.get_settings()
                try:
                    full = settings.to_params(frame_shape).to_dict()
                except TypeError:
                    full = settings.to_params().to_dict()
            else:
                full = dict(widget.thresholds())
        except InputError as exc:
            raise InputError(f"{title} dock", str(exc)) from None
        values.update({k: v for k, v in full.items() if k in names and k not in _PER_MOVIE})
        used.append(title)
    return values, used


def preset_params(path: str | Path) -> dict[str, Any]:
    """A preset file's parameters (flat CaImAn names, those not at their default)."""
    from ..engine.params import CaimanParams

    params = CaimanParams.from_json(str(path))
    return {k: v for k, v in params.changed().items() if k not in _PER_MOVIE}


# ----------------------------------------------------------------------------- worker bodies


def _run_item(
    batch: Batch, name: str, prefix: str, over: threading.Event
) -> Generator[Progress, None, Any]:
    """``batch.iter_run_item(name)`` with the item in the progress text.

    Closing this generator (cancel) closes the engine's, which marks the item
    cancelled in the batch file. ``over`` is set when it is over, whichever way.
    """
    try:
        gen = batch.iter_run_item(name)
        try:
            while True:
                try:
                    p = next(gen)
                except StopIteration as stop:
                    return stop.value
                yield Progress(f"{prefix}: {p.stage}", p.done, p.total, p.message)
        finally:
            gen.close()
    finally:
        over.set()


def _run_on_dask(
    batch: Batch, names: list[str], scheduler: str, over: threading.Event
) -> Generator[Progress, None, Any]:
    """The queue on a Dask cluster (connects in the worker thread, closes what
    it opened); ``over`` is set when it is over."""
    from ..dask_batch import connect, iter_run_on_dask

    try:
        yield Progress(f"connecting to Dask ({scheduler})", 0, 1)
        client, cluster = connect(scheduler)
        try:
            return (yield from iter_run_on_dask(batch, names, client=client))
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    finally:
        over.set()


def _load_item(batch: Batch, name: str) -> tuple[Any, list, str]:
    """Results of an item and their layer data (worker thread)."""
    from ..io.results_reader import results_layer_data

    item = batch.item(name)
    path = batch.folder / item.output
    results = batch.results(name)
    return results, results_layer_data(results, name, str(path)), provenance_text(item, results, path)


def _compare_items(batch: Batch, a: str, b: str) -> tuple[list, list, str]:
    """Accepted contours of two items and the comparison text (worker thread)."""
    polys, counts = [], []
    for name in (a, b):
        p, c = accepted_contours(batch.results(name))
        polys.append(p)
        counts.append(c)
    return polys[0], polys[1], compare_text(a, b, batch.compare(a, b), counts)


# ----------------------------------------------------------------------------- widget


def _row(*widgets: Any, label: str | None = None) -> Container:
    row = Container(widgets=list(widgets), layout="horizontal", labels=False, label=label or "")
    row.margins = (0, 0, 0, 0)
    return row


class BatchWidget(Container):
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
        # batch file
        self.path = FileEdit(
            mode="w", filter="Batch file (*.json)", nullable=True, label="batch file",
            tooltip=_TIPS["path"],
        )
        self.path.line_edit.native.setPlaceholderText("choose a .json file")
        self.open_button = PushButton(text="Open")
        self.new_button = PushButton(text="New")
        self.results_label = Label(value="no batch open", label="results")
        self.cache_label = Label(value="cache: –")
        self.clear_cache_button = PushButton(text="Clear cache")
        # new items
        self.item_name = LineEdit(value="", label="name", tooltip=_TIPS["item_name"])
        self.item_name.native.setPlaceholderText("empty = the movie's name")
        self.movie = ComboBox(label="movie", choices=self._movie_choices, tooltip=_TIPS["movie"])
        self.do_motion = CheckBox(value=True, text="motion")
        self.do_cnmf = CheckBox(value=True, text="cnmf")
        self.do_evaluate = CheckBox(value=True, text="evaluate")
        self.preset = FileEdit(
            mode="r", filter="Parameter preset (*.json)", nullable=True, label="preset",
            tooltip=_TIPS["preset"],
        )
        self.preset.line_edit.native.setPlaceholderText("empty = settings of the open docks")
        self.add_button = PushButton(text="Add item")
        self.vary1 = LineEdit(value="", label="vary", tooltip=_TIPS["vary"])
        self.values1 = LineEdit(value="", label="values", tooltip=_TIPS["values"])
        self.vary2 = LineEdit(value="", label="and", tooltip=_TIPS["vary"] + " (optional: a grid)")
        self.values2 = LineEdit(value="", label="values", tooltip=_TIPS["values"])
        self.vary1.native.setPlaceholderText("gSig")
        self.values1.native.setPlaceholderText("[(3, 3), (4, 4)]")
        self.vary2.native.setPlaceholderText("optional, e.g. K")
        self.values2.native.setPlaceholderText("[10, 20]")
        self.variants_button = PushButton(text="Add variants")
        self.message = Label(value="")
        self.message.native.setWordWrap(True)
        for label in (self.message, self.results_label):  # use the row's width, text on the left
            label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
            label.native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        # queue
        self.run_button = PushButton(text="Run queue")
        self.cancel_button = PushButton(text="Cancel selected")
        self.cancel_all_button = PushButton(text="Cancel all")
        self.load_button = PushButton(text="Load")
        self.compare_button = PushButton(text="Compare")
        self.rerun_button = PushButton(text="Re-run")
        self.remove_button = PushButton(text="Remove")
        self.scheduler = LineEdit(value="", label="Dask scheduler", tooltip=_TIPS["scheduler"])
        self.scheduler.native.setPlaceholderText("empty = run here; 'local' or tcp://host:8786")
        self.runner = StepRunner("Batch", self.run_queue)
        self.runner.run_button.visible = False
        self.runner.cancel_button.visible = False
        self.details = TextEdit(value="")
        self.details.native.setReadOnly(True)
        self.details.native.setPlaceholderText(
            "double-click a finished item: its results as layers and its provenance here; "
            "select two and Compare: their contours and parameter differences"
        )
        self.details.native.setMinimumHeight(130)

        top = Container(
            widgets=[
                self.path,
                _row(self.open_button, self.new_button),
                self.results_label,
                _row(self.cache_label, self.clear_cache_button, label="motion cache"),
                self.item_name,
                self.movie,
                _row(self.do_motion, self.do_cnmf, self.do_evaluate, label="steps"),
                self.preset,
                self.add_button,
                _row(self.vary1, self.values1, label="vary"),
                _row(self.vary2, self.values2, label="and"),
                self.variants_button,
                self.message,
            ]
        )
        top.margins = (0, 0, 0, 0)
        bottom = Container(
            widgets=[
                _row(self.run_button, self.cancel_button, self.cancel_all_button),
                _row(self.load_button, self.compare_button, self.rerun_button, self.remove_button),
                self.scheduler,
                self.runner,
                self.details,
            ]
        )
        bottom.margins = (0, 0, 0, 0)
        super().__init__(widgets=[top, bottom], labels=False)
        self.table = self._make_table()
        self.native.layout().insertWidget(1, self.table)
        make_scrollable(self)

        self.confirm: Callable[[str], bool] = self._ask
        self.last_loaded: str | None = None
        self.last_compared: tuple[str, str] | None = None
        self._queue_active = False
        self._stop = False
        self._mode = "local"
        self._current: str | None = None
        self._n_started = 0
        self._io_worker: Any = None
        self._add_worker: Any = None
        self._written: dict[int, tuple[Any, Path]] = {}
        self._row_names: list[str] = []
        self._statuses: tuple = ()
        self._closed = False
        self._docked = False
        self._over = threading.Event()
        self._timer = QTimer(self.native)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._on_tick)

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
        self.runner.finished.connect(self._on_item_finished)
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
    def _make_table(self) -> QTableWidget:
        table = QTableWidget(0, len(COLUMNS))
        table.setHorizontalHeaderLabels(list(COLUMNS))
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.verticalHeader().setVisible(False)
        table.verticalHeader().setDefaultSectionSize(22)
        table.setWordWrap(False)
        header = table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        table.setMinimumHeight(150)
        table.setToolTip("Double-click a finished item to load it; select two to compare")
        return table

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
        if not isinstance(exc, InputError):
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
    def is_running(self) -> bool:
        """True while the queue runs (from Run queue until the last item is over)."""
        return self._queue_active

    @property
    def is_busy(self) -> bool:
        """True while results load, a comparison is made or a movie is written."""
        return self._io_worker is not None or self._add_worker is not None

    def _require_batch(self) -> Batch:
        if self.batch is None:
            raise InputError("batch file", "open a batch file or make a new one first")
        return self.batch

    # -- batch file -------------------------------------------------------------------
    def _movie_file(self, layer: Layer | None) -> Path | None:
        src = getattr(getattr(layer, "source", None), "path", None)
        return Path(src) if src else None

    def _suggest_path(self, *_: Any) -> None:
        """``batch.json`` next to the movie's file when no batch file is chosen yet."""
        if self.batch is not None or self.path.value:
            return
        movie = self._movie_file(self.movie.value)
        if movie is not None:
            folder = movie if movie.is_dir() else movie.parent
            self.path.value = folder / "batch.json"

    def _path(self) -> Path:
        value = self.path.value
        if not value or not str(value).strip():
            raise InputError("batch file", "choose a batch file (.json)")
        return Path(value).expanduser()

    def open_batch(self) -> None:
        """Open the batch file in the path field (it must exist)."""
        from ..batch import Batch

        path = self._path()
        if not path.is_file():
            raise InputError("batch file", f"{str(path)!r} does not exist (use New to make it)")
        self._set_batch(Batch(path))
        b = self.batch
        self._say(f"opened {path.name}: {len(b)} items, {len(b.queued())} queued")

    def new_batch(self) -> None:
        """Make a new, empty batch file at the path field."""
        from ..batch import Batch

        path = self._path()
        if path.exists():
            raise InputError("batch file", f"{str(path)!r} exists: Open it, or choose a new name")
        batch = Batch(path)
        batch.save()
        self._set_batch(batch)
        self._say(f"new batch {path.name}")

    def _set_batch(self, batch: Batch) -> None:
        if self.is_running:
            raise InputError("batch file", "the queue is running: cancel it first")
        self.batch = batch
        self._written.clear()
        self._row_names = []
        self.results_label.value = _short_path(batch.results_dir)
        self.results_label.tooltip = str(batch.results_dir)
        self.refresh()
        self._timer.start()  # once a second: run times, and what other writers (the CLI) did

    def _ensure_batch(self) -> Batch:
        """The open batch, else the one at the path field (opened or created)."""
        if self.batch is not None:
            return self.batch
        path = self._path()
        if path.is_file():
            self.open_batch()
        else:
            self.new_batch()
        assert self.batch is not None
        return self.batch

    def refresh(self) -> None:
        """Update the queue table, the cache size and the buttons."""
        if self._closed:
            return
        self._refresh_table()
        self._refresh_cache()
        self._update_buttons()

    def _refresh_cache(self) -> None:
        if self.batch is None:
            self.cache_label.value = "cache: –"
            return
        cache = self.batch.cache
        self.cache_label.value = f"cache: {format_bytes(cache.size_bytes())}"
        self.cache_label.tooltip = str(cache.root)

    def clear_cache(self) -> None:
        """Delete the motion cache's entries (asks first; not while running)."""
        batch = self._require_batch()
        if self.is_running:
            raise InputError("cache", "the queue is running: wait or cancel it first")
        cache = batch.cache
        size = cache.size_bytes()
        if size == 0:
            self._say("the motion cache is empty")
            return
        if not self.confirm(
            f"Delete the motion cache ({format_bytes(size)} in {cache.root})?\n"
            "Motion correction will be recomputed for the next runs."
        ):
            return
        freed = cache.clear()
        self._refresh_cache()
        self._say(f"cache cleared ({format_bytes(freed)} freed)")

    # -- queue table ---------------------------------------------------------------------
    def _cell(self, row: int, col: int, text: str, *, color: str | None = None,
              tip: str | None = None, bold: bool = False) -> None:
        cell = self.table.item(row, col)
        if cell is None:
            cell = QTableWidgetItem()
            self.table.setItem(row, col, cell)
        if cell.text() != text:
            cell.setText(text)
        cell.setToolTip(tip if tip is not None else text)
        if color is not None:
            cell.setForeground(QBrush(QColor(color)))
            font = QFont(cell.font())
            font.setBold(bold)
            cell.setFont(font)

    def _refresh_table(self) -> None:
        items = list(self.batch) if self.batch is not None else []
        names = [i.name for i in items]
        if names != self._row_names:
            selected = set(self.selected_names())
            self.table.setRowCount(len(items))
            for r, name in enumerate(names):
                self._cell(r, 0, name)
            self._row_names = names
            self.select(n for n in names if n in selected)
            self.table.resizeColumnToContents(0)
            if self.table.columnWidth(0) > 220:
                self.table.setColumnWidth(0, 220)
        for r, item in enumerate(items):
            self._cell(r, 1, item.status, color=STATUS_COLORS.get(item.status),
                       bold=item.status == "running")
            self._cell(r, 2, format_elapsed(item.elapsed))
            text = item.error if item.status in ("failed", "cancelled") or (
                item.status == "queued" and item.error) else item.summary
            if item.status == "running" and item.name == self._current and self.runner.is_running:
                text = self.runner.status.value
            tip = "\n".join(
                t for t in (
                    text, "movie: " + ", ".join(item.movie), "steps: " + ", ".join(item.steps),
                    "parameters: " + ", ".join(f"{k}={_fmt_value(v)}" for k, v in sorted(item.params.items())),
                ) if t
            )
            self._cell(r, 3, text, tip=tip)
        self._statuses = tuple(i.status for i in items)

    def selected_names(self) -> list[str]:
        """Names of the selected rows, in table order."""
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self._row_names[r] for r in rows if r < len(self._row_names)]

    def select(self, names: Iterable[str]) -> None:
        """Select these items' rows (and only these)."""
        from qtpy.QtCore import QItemSelection, QItemSelectionModel

        wanted = set(names)
        model = self.table.selectionModel()
        selection = QItemSelection()
        for r, name in enumerate(self._row_names):
            if name in wanted:
                left = self.table.model().index(r, 0)
                right = self.table.model().index(r, len(COLUMNS) - 1)
                selection.select(left, right)
        model.select(
            selection,
            QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
        )

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

    # -- layer choices ------------------------------------------------------------------------
    def _movie_choices(self, *_: Any) -> list[tuple[str, Layer]]:
        return movie_layer_choices(self._viewer)

    def _select_active_movie(self) -> None:
        select_active_movie(self._viewer, self.movie)

    def _on_layers_changed(self, event: Any = None) -> None:
        if self._closed:
            return
        self.movie.reset_choices()

    # -- adding items ------------------------------------------------------------------------
    def _steps(self) -> list[str]:
        steps = [s for s, box in (("motion", self.do_motion), ("cnmf", self.do_cnmf),
                                  ("evaluate", self.do_evaluate)) if box.value]
        if not steps:
            raise InputError("steps", "tick at least one step")
        return steps

    def _params(self, layer: Layer, steps: Sequence[str]) -> tuple[dict[str, Any], str]:
        """Parameters for a new item and a note saying where they came from."""
        frame_shape = tuple(int(s) for s in layer.data.shape[1:])
        preset = self.preset.value
        if preset is not None and str(preset).strip() not in ("", "."):
            values = preset_params(preset)
            source = f"preset {Path(preset).name}"
        else:
            values, used = params_from_widgets(self._viewer, frame_shape, steps)
            source = "settings of " + " + ".join(used) if used else "default parameters"
        values["is3D"] = len(frame_shape) == 3
        return values, source

    def _item_inputs(self) -> tuple[Batch, Layer, list[str], dict[str, Any], str, str]:
        batch = self._ensure_batch()
        layer = self.movie.value
        if layer is None:
            raise InputError("movie", "choose an Image layer holding a (T, Y, X) or (T, Z, Y, X) movie")
        steps = self._steps()
        params, source = self._params(layer, steps)
        name = self.item_name.value.strip() or layer.name
        return batch, layer, steps, params, source, name

    def add_item(self) -> None:
        """Add one item from the form (validated now; a rejected item raises InputError)."""
        batch, layer, steps, params, source, name = self._item_inputs()
        if name in batch.names:
            raise InputError("name", f"an item named {name!r} is already in the batch")
        self._with_movie_file(
            batch, layer, name, lambda path: self._added([batch.add(name, path, params, steps)], source)
        )

    def add_variants(self) -> None:
        """Add one item per value of the varied parameter(s) (a grid for two)."""
        batch, layer, steps, params, source, name = self._item_inputs()
        grid: dict[str, list] = {}
        for vary, values in ((self.vary1, self.values1), (self.vary2, self.values2)):
            pname, text = vary.value.strip(), values.value.strip()
            if not pname and not text:
                continue
            if not pname:
                raise InputError("vary", f"name the parameter to give the values {text} to")
            if pname in grid:
                raise InputError("vary", f"{pname!r} is given twice")
            grid[pname] = parse_values(text, pname)
        if not grid:
            raise InputError("vary", "give a parameter and its values, e.g. gSig and [(3, 3), (4, 4)]")
        self._with_movie_file(
            batch, layer, name,
            lambda path: self._added(batch.add_variants(name, path, params, grid, steps), source),
        )

    def _added(self, items: list[BatchItem], source: str) -> None:
        self.refresh()
        what = items[0].name if len(items) == 1 else f"{len(items)} items ({items[0].name} …)"
        self._say(f"added {what} with the {source}")

    def _with_movie_file(self, batch: Batch, layer: Layer, name: str,
                         then: Callable[[Path], Any]) -> None:
        """Call ``then(movie file)``: the layer's own file, or its data written
        once to ``<batch folder>/inputs/`` (in a worker)."""
        path = self._movie_file(layer)
        if path is None:
            known = self._written.get(id(layer))
            if known is not None and known[0]() is layer and known[1].exists():
                path = known[1]
        if path is not None:
            then(path)
            return
        if self._add_worker is not None:
            raise InputError("movie", "a movie is being written; wait a moment")
        from ..io.movie import save_movie

        target = batch.folder / "inputs" / f"{_file_name(name)}.tif"
        data = layer.data
        ref = weakref.ref(layer)

        def write() -> Path:
            target.parent.mkdir(exist_ok=True)
            return save_movie(target, data)

        layer_name = layer.name

        def written(p: Path) -> None:
            current = ref()
            if current is not None:
                self._written[id(current)] = (ref, p)
            show_info(f"'{layer_name}' has no file: its data was written to {p} for the batch")
            try:
                then(p)
            except Exception as exc:
                self.report_error(exc)

        self._say(f"writing '{layer.name}' to {_short_path(target)} …")
        self._add_worker = create_worker(
            write,
            _connect={"returned": written, "errored": self.report_error, "finished": self._add_done},
        )
        self._update_buttons()

    def _add_done(self) -> None:
        self._add_worker = None
        self._update_buttons()

    # -- running ---------------------------------------------------------------------------------
    def run_queue(self) -> None:
        """Run the queued items: one after another here, or on a Dask cluster."""
        batch = self._require_batch()
        if self.is_running:
            return
        queued = batch.queued()
        if not queued:
            raise InputError("queue", "nothing is queued (select items and Re-run them)")
        scheduler = self.scheduler.value.strip()
        self._dock_closed()  # notes whether the widget is docked (a later "x" stops the queue)
        self._stop = False
        self._n_started = 0
        self._queue_active = True
        self._timer.start()
        if scheduler:
            self._mode = "dask"
            self._current = None
            self._over = threading.Event()
            self.runner.start(
                partial(_run_on_dask, batch, queued, scheduler, self._over), self._on_dask_result
            )
        else:
            self._mode = "local"
            self._start_next()
        self.refresh()

    def _start_next(self) -> None:
        batch = self.batch
        queued = batch.queued() if batch is not None else []
        if self._closed or self._stop or not queued:
            self._queue_over()
            return
        name = queued[0]
        self._n_started += 1
        prefix = f"[{self._n_started}/{self._n_started + len(queued) - 1}] {name}"
        self._current = name
        self._over = threading.Event()
        self.runner.start(
            partial(_run_item, batch, name, prefix, self._over), partial(self._on_item_result, name)
        )
        self.refresh()

    def _on_item_result(self, name: str, results: Any) -> None:
        if results is None and self.batch is not None and name in self.batch.names:
            item = self.batch.item(name)
            if item.status == "failed":
                show_warning(f"batch item {name!r} failed: {item.error}")

    def _on_dask_result(self, counts: Any) -> None:
        if isinstance(counts, dict) and counts.get("failed"):
            show_warning(f"{counts['failed']} batch item(s) failed on the Dask cluster")

    def _on_item_finished(self, outcome: str) -> None:
        if self._closed:
            return
        name = self._current
        if self._mode == "local" and name is not None and self.batch is not None and name in self.batch.names:
            item = self.batch.item(name)
            self.runner.status.value = f"{name}: {item.status}" + (
                f" ({item.error})" if item.status == "failed" else ""
            )
        self._current = None
        self.refresh()
        if self._mode == "local" and not self._stop:
            QTimer.singleShot(0, self._start_next)
        else:
            self._queue_over()

    def _queue_over(self) -> None:
        was = self._queue_active
        self._queue_active = False
        self._current = None
        if self._closed:
            return
        self.refresh()
        if was and self.batch is not None:
            counts: dict[str, int] = {}
            for i in self.batch:
                counts[i.status] = counts.get(i.status, 0) + 1
            text = ", ".join(f"{n} {s}" for s, n in counts.items())
            self.runner.status.value = ("stopped: " if self._stop else "queue over: ") + text

    def _on_tick(self) -> None:
        if not self._closed and self._dock_closed():
            self._shutdown(wait=False)
            return
        if not self._closed and self.batch is not None:
            with contextlib.suppress(OSError):
                self.batch.refresh()  # items run or added by another writer (e.g. the CLI)
            self._refresh_table()
            if self._mode == "dask":
                self._refresh_cache()

    def cancel_selected(self) -> None:
        """Cancel the selected items: the running one stops (the queue goes on),
        queued ones leave the queue."""
        batch = self._require_batch()
        names = self.selected_names()
        if not names:
            raise InputError("selection", "select the items to cancel in the table")
        notes = []
        for name in names:
            item = batch.item(name)
            if item.status == "running":
                if self._mode == "local" and name == self._current and self.runner.is_running:
                    self.runner.cancel()
                    notes.append(f"cancelling {name}")
                else:
                    notes.append(f"{name} runs on the cluster: Cancel all stops it")
            elif item.status == "queued":
                batch.cancel(name)
                notes.append(f"{name} cancelled")
        self.refresh()
        if notes:
            self._say("; ".join(notes))

    def cancel_all(self) -> None:
        """Cancel the running item(s) and stop the queue (queued items stay queued)."""
        if not self.is_running:
            return
        self._stop = True
        self.runner.cancel()
        self._say("stopping the queue …")

    def rerun_selected(self) -> None:
        """Queue the selected items again (done, failed or cancelled) and run."""
        batch = self._require_batch()
        names = self.selected_names()
        if not names:
            raise InputError("selection", "select the items to run again in the table")
        running = [n for n in names if batch.item(n).status == "running"]
        if running:
            raise InputError("selection", f"{running[0]!r} is running")
        for name in names:
            batch.requeue(name)
        self.refresh()
        if not self.is_running:
            self.run_queue()

    def remove_selected(self) -> None:
        """Remove the selected items from the batch (their results files are kept)."""
        batch = self._require_batch()
        names = self.selected_names()
        if not names:
            raise InputError("selection", "select the items to remove in the table")
        running = [n for n in names if batch.item(n).status == "running"]
        if running:
            raise InputError("selection", f"{running[0]!r} is running: cancel it first")
        what = repr(names[0]) if len(names) == 1 else f"{len(names)} items"
        if not self.confirm(f"Remove {what} from the batch? Results files are kept."):
            return
        for name in names:
            batch.remove(name)
        self.refresh()
        self._say(f"removed {what}")

    # -- results ---------------------------------------------------------------------------------
    def _done_item(self, name: str) -> None:
        item = self._require_batch().item(name)
        if item.status != "done":
            raise InputError("item", f"{name!r} has no results yet (status: {item.status})")

    def _start_io(self, func: Callable[[], Any], on_result: Callable[[Any], Any], text: str) -> None:
        if self._io_worker is not None:
            raise InputError("results", "still loading the previous results; wait a moment")
        self._say(text)

        def returned(value: Any) -> None:
            if self._closed:
                return
            try:
                on_result(value)
            except Exception as exc:
                self.report_error(exc)

        self._io_worker = create_worker(
            func,
            _connect={"returned": returned, "errored": self.report_error, "finished": self._io_done},
        )
        self._update_buttons()

    def _io_done(self) -> None:
        self._io_worker = None
        self._update_buttons()

    def _on_double_click(self, row: int, _col: int) -> None:
        if 0 <= row < len(self._row_names):
            self._guard(partial(self.load_item, self._row_names[row]))()

    def _load_selected(self) -> None:
        names = self.selected_names()
        if len(names) != 1:
            raise InputError("selection", "select one finished item to load")
        self.load_item(names[0])

    def load_item(self, name: str) -> None:
        """Load a finished item's results as layers (as File > Open does) and
        show its provenance (reading and layer making run in a worker)."""
        batch = self._require_batch()
        self._done_item(name)
        self._start_io(partial(_load_item, batch, name), partial(self._show_loaded, name),
                       f"loading {name} …")

    def _show_loaded(self, name: str, output: tuple[Any, list, str]) -> None:
        _results, tuples, text = output
        for data, meta, layer_type in tuples:
            upsert_layer(self._viewer, data, meta, layer_type)
        self.details.value = text
        self.last_loaded = name
        self._say(f"loaded {name}: {len(tuples)} layers")

    def _compare_selected(self) -> None:
        names = self.selected_names()
        if len(names) != 2:
            raise InputError("selection", "select two finished items to compare")
        self.compare_items(*names)

    def compare_items(self, a: str, b: str) -> None:
        """Overlay the accepted contours of two finished items (cyan, orange) and
        list their parameter differences."""
        batch = self._require_batch()
        if a == b:
            raise InputError("selection", "select two different items")
        self._done_item(a)
        self._done_item(b)
        self._start_io(partial(_compare_items, batch, a, b), partial(self._show_compared, a, b),
                       f"comparing {a} and {b} …")

    def _show_compared(self, a: str, b: str, output: tuple[list, list, str]) -> None:
        polys_a, polys_b, text = output
        for name, polys, color in ((a, polys_a, COMPARE_COLORS[0]), (b, polys_b, COMPARE_COLORS[1])):
            meta = {
                "name": f"{name} (compare)",
                "ndim": int(polys[0].shape[1]) if polys else 2,
                "shape_type": "polygon",
                "edge_color": color,
                "face_color": "transparent",
                "edge_width": 0.5,
                "metadata": {"napari_caiman": {"kind": "batch compare", "source": name}},
            }
            upsert_layer(self._viewer, polys, meta, "shapes")
        self.details.value = text
        self.last_compared = (a, b)
        self._say(f"compared {a} (cyan) and {b} (orange)")

    # -- closing -----------------------------------------------------------------------------------
    def _dock_closed(self) -> bool:
        """True once the dock that held this widget was closed (napari's "x"
        takes the widget out of ``viewer.window.dock_widgets``)."""
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

    def _shutdown(self, *, wait: bool) -> None:
        """The dock or napari was closed mid-run: stop the queue, cancel the
        running item(s) and put them back in the queue ("interrupted"), so the
        batch file reads as if the run had not started them.

        With ``wait`` (napari closing: the widgets are gone) this waits, at
        most a few seconds, for the engine to stop at its next progress report
        so that the file is final before the process ends.
        """
        if self._closed:
            return
        self._closed = True
        self._stop = True
        self._queue_active = False
        if not self.runner.is_running:
            return
        batch, since = self.batch, time.time()
        # napari closing: the runner's widgets are deleted, its slots must not run
        worker = self.runner.detach() if wait else self.runner.worker
        worker.quit()
        if wait:
            self._over.wait(SHUTDOWN_WAIT_S)
            _requeue_interrupted(batch, since)
        else:
            worker.finished.connect(partial(_requeue_interrupted, batch, since))


#: Longest wait, when napari closes mid-run, for the running item to stop.
SHUTDOWN_WAIT_S = 10.0


def _requeue_interrupted(batch: Batch | None, since: float) -> None:
    """Put items cancelled by closing the widget (after ``since``) back in the queue."""
    if batch is None:
        return
    for item in batch:
        if item.status == "cancelled" and (item.finished or 0) >= since:
            batch.requeue(item.name)
            item.error = "interrupted (the Batch dock or napari was closed)"
    batch.save()


def _short_path(path: Path, parts: int = 3) -> str:
    """The last ``parts`` components of a path, prefixed by "…/" when cut."""
    p = Path(path)
    if len(p.parts) <= parts + 1:
        return str(p)
    return str(Path("…", *p.parts[-parts:]))
