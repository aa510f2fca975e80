"""The fields and buttons of the Batch dock, laid out (no behaviour: :mod:`.batch` wires them)."""

from __future__ import annotations

from typing import Any

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
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QSizePolicy

from ._runner import StepRunner

#: Tooltips of the form fields.
TIPS = {
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
    "isolate": "Run each item in a process of its own: the engine does not share napari's "
    "interpreter, and an item that crashes fails alone (a second or more per item to start). "
    "Off: in a thread of napari's process",
}


def _row(*widgets: Any, label: str | None = None) -> Container:
    row = Container(widgets=list(widgets), layout="horizontal", labels=False, label=label or "")
    row.margins = (0, 0, 0, 0)
    return row


def build_form(w: Any) -> tuple[Container, Container]:
    """Make the dock's fields as attributes of ``w`` (the widget).

    Returns the parts above and below the queue table.
    """
    # batch file
    w.path = FileEdit(
        mode="w",
        filter="Batch file (*.json)",
        nullable=True,
        label="batch file",
        tooltip=TIPS["path"],
    )
    w.path.line_edit.native.setPlaceholderText("choose a .json file")
    w.open_button = PushButton(text="Open")
    w.new_button = PushButton(text="New")
    w.results_label = Label(value="no batch open", label="results")
    w.cache_label = Label(value="cache: –")
    w.clear_cache_button = PushButton(text="Clear cache")
    # new items
    w.item_name = LineEdit(value="", label="name", tooltip=TIPS["item_name"])
    w.item_name.native.setPlaceholderText("empty = the movie's name")
    w.movie = ComboBox(label="movie", choices=w._movie_choices, tooltip=TIPS["movie"])
    w.do_motion = CheckBox(value=True, text="motion")
    w.do_cnmf = CheckBox(value=True, text="cnmf")
    w.do_evaluate = CheckBox(value=True, text="evaluate")
    w.preset = FileEdit(
        mode="r",
        filter="Parameter preset (*.json)",
        nullable=True,
        label="preset",
        tooltip=TIPS["preset"],
    )
    w.preset.line_edit.native.setPlaceholderText("empty = settings of the open docks")
    w.add_button = PushButton(text="Add item")
    w.vary1 = LineEdit(value="", label="vary", tooltip=TIPS["vary"])
    w.values1 = LineEdit(value="", label="values", tooltip=TIPS["values"])
    w.vary2 = LineEdit(value="", label="and", tooltip=TIPS["vary"] + " (optional: a grid)")
    w.values2 = LineEdit(value="", label="values", tooltip=TIPS["values"])
    w.vary1.native.setPlaceholderText("gSig")
    w.values1.native.setPlaceholderText("[(3, 3), (4, 4)]")
    w.vary2.native.setPlaceholderText("optional, e.g. K")
    w.values2.native.setPlaceholderText("[10, 20]")
    w.variants_button = PushButton(text="Add variants")
    w.message = Label(value="")
    w.message.native.setWordWrap(True)
    for label in (w.message, w.results_label):  # use the row's width, text on the left
        label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        label.native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    # queue
    w.run_button = PushButton(text="Run queue")
    w.cancel_button = PushButton(text="Cancel selected")
    w.cancel_all_button = PushButton(text="Cancel all")
    w.load_button = PushButton(text="Load")
    w.compare_button = PushButton(text="Compare")
    w.rerun_button = PushButton(text="Re-run")
    w.remove_button = PushButton(text="Remove")
    w.scheduler = LineEdit(value="", label="Dask scheduler", tooltip=TIPS["scheduler"])
    w.scheduler.native.setPlaceholderText("empty = run here; 'local' or tcp://host:8786")
    w.isolate = CheckBox(value=True, text="each item in its own process", tooltip=TIPS["isolate"])
    w.runner = StepRunner("Batch", w.run_queue)
    w.runner.run_button.visible = False
    w.runner.cancel_button.visible = False
    w.details = TextEdit(value="")
    w.details.native.setReadOnly(True)
    w.details.native.setPlaceholderText(
        "double-click a finished item: its results as layers and its provenance here; "
        "select two and Compare: their contours and parameter differences"
    )
    w.details.native.setMinimumHeight(130)

    top = Container(
        widgets=[
            w.path,
            _row(w.open_button, w.new_button),
            w.results_label,
            _row(w.cache_label, w.clear_cache_button, label="motion cache"),
            w.item_name,
            w.movie,
            _row(w.do_motion, w.do_cnmf, w.do_evaluate, label="steps"),
            w.preset,
            w.add_button,
            _row(w.vary1, w.values1, label="vary"),
            _row(w.vary2, w.values2, label="and"),
            w.variants_button,
            w.message,
        ]
    )
    top.margins = (0, 0, 0, 0)
    bottom = Container(
        widgets=[
            _row(w.run_button, w.cancel_button, w.cancel_all_button),
            _row(w.load_button, w.compare_button, w.rerun_button, w.remove_button),
            w.scheduler,
            w.isolate,
            w.runner,
            w.details,
        ]
    )
    bottom.margins = (0, 0, 0, 0)
    return top, bottom
