"""Results in the Batch dock: load a finished item as layers (with its provenance), compare two.

Reading the files and making the layer data run in a worker; the layers are
added on the main thread.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from napari.qt.threading import create_worker

from ...engine.errors import InputError, StateError
from ._layers import upsert_layer
from .batch_text import COMPARE_COLORS, accepted_contours, compare_text, provenance_text

if TYPE_CHECKING:
    from ...app.batch import Batch


def _load_item(batch: Batch, name: str) -> tuple[Any, list, str]:
    """Results of an item and their layer data (worker thread)."""
    from ..results_reader import results_layer_data

    item = batch.item(name)
    path = batch.folder / item.output
    results = batch.results(name)
    return (
        results,
        results_layer_data(results, name, str(path)),
        provenance_text(item, results, path),
    )


def _compare_items(batch: Batch, a: str, b: str) -> tuple[list, list, str]:
    """Return the accepted contours of two items and the comparison text (worker thread)."""
    polys, counts = [], []
    for name in (a, b):
        p, c = accepted_contours(batch.results(name))
        polys.append(p)
        counts.append(c)
    return polys[0], polys[1], compare_text(a, b, batch.compare(a, b), counts)


class ResultsView:
    """The Load / Compare part of :class:`~.batch.BatchWidget` (a mixin).

    Uses the widget's ``details`` text, ``_require_batch()``, ``selected_names()``,
    ``_say()``, ``report_error()`` and ``_update_buttons()``.
    """

    _viewer: Any
    _io_worker: Any
    _closed: bool

    def _done_item(self, name: str) -> None:
        item = self._require_batch().item(name)
        if item.status != "done":
            raise StateError("item", f"{name!r} has no results yet (status: {item.status})")

    def _start_io(
        self, func: Callable[[], Any], on_result: Callable[[Any], Any], text: str
    ) -> None:
        if self._io_worker is not None:
            raise StateError("results", "still loading the previous results; wait a moment")
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
            _connect={
                "returned": returned,
                "errored": self.report_error,
                "finished": self._io_done,
            },
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
        """Load a finished item's results as layers (as File > Open does) and show its provenance.

        Reading and layer making run in a worker.
        """
        batch = self._require_batch()
        self._done_item(name)
        self._start_io(
            partial(_load_item, batch, name), partial(self._show_loaded, name), f"loading {name} …"
        )

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
        """Overlay the accepted contours of two finished items (cyan, orange) and list their parameter differences."""
        batch = self._require_batch()
        if a == b:
            raise InputError("selection", "select two different items")
        self._done_item(a)
        self._done_item(b)
        self._start_io(
            partial(_compare_items, batch, a, b),
            partial(self._show_compared, a, b),
            f"comparing {a} and {b} …",
        )

    def _show_compared(self, a: str, b: str, output: tuple[list, list, str]) -> None:
        polys_a, polys_b, text = output
        for name, polys, color in (
            (a, polys_a, COMPARE_COLORS[0]),
            (b, polys_b, COMPARE_COLORS[1]),
        ):
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
