"""Adding items to the Batch dock's queue: one, or one per value of one or two parameters.

The movie is the chosen Image layer's file, or its data written once (in a
worker) to ``<batch folder>/inputs/<name>.tif``; the parameters come from a
preset file or from the open step docks (:mod:`.batch_params`). The batch
validates every item when it is added (:meth:`~napari_caiman.app.batch.Batch.add`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.layers import Layer
from napari.qt.threading import create_worker
from napari.utils.notifications import show_info

from ...engine.errors import InputError, StateError
from .batch_params import params_from_widgets
from .batch_text import file_name, parse_values, preset_params, short_path

if TYPE_CHECKING:
    from ...app.batch import Batch, BatchItem


class ItemForm:
    """The Add item / Add variants part of :class:`~.batch.BatchWidget` (a mixin).

    Uses the widget's form fields (``movie``, ``item_name``, ``do_*``,
    ``preset``, ``vary*``, ``values*``), ``_ensure_batch()``, ``refresh()``,
    ``_say()``, ``report_error()`` and ``_update_buttons()``.
    """

    _viewer: Any
    _add_worker: Any
    _written: dict

    def _steps(self) -> list[str]:
        steps = [
            s
            for s, box in (
                ("motion", self.do_motion),
                ("cnmf", self.do_cnmf),
                ("evaluate", self.do_evaluate),
            )
            if box.value
        ]
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
            raise InputError(
                "movie", "choose an Image layer holding a (T, Y, X) or (T, Z, Y, X) movie"
            )
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
            batch,
            layer,
            name,
            lambda path: self._added([batch.add(name, path, params, steps)], source),
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
            raise InputError(
                "vary", "give a parameter and its values, e.g. gSig and [(3, 3), (4, 4)]"
            )
        self._with_movie_file(
            batch,
            layer,
            name,
            lambda path: self._added(batch.add_variants(name, path, params, grid, steps), source),
        )

    def _added(self, items: list[BatchItem], source: str) -> None:
        self.refresh()
        what = items[0].name if len(items) == 1 else f"{len(items)} items ({items[0].name} …)"
        self._say(f"added {what} with the {source}")

    def _with_movie_file(
        self, batch: Batch, layer: Layer, name: str, then: Callable[[Path], Any]
    ) -> None:
        """Call ``then`` with the movie's file.

        The layer's own file, or its data written once to ``<batch folder>/inputs/`` (in a worker).
        """
        path = self._movie_file(layer)
        if path is None:
            known = self._written.get(id(layer))
            if known is not None and known[0]() is layer and known[1].exists():
                path = known[1]
        if path is not None:
            then(path)
            return
        if self._add_worker is not None:
            raise StateError("movie", "a movie is being written; wait a moment")
        from ...io.movie import save_movie

        target = batch.folder / "inputs" / f"{file_name(name)}.tif"
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

        self._say(f"writing '{layer.name}' to {short_path(target)} …")
        self._add_worker = create_worker(
            write,
            _connect={
                "returned": written,
                "errored": self.report_error,
                "finished": self._add_done,
            },
        )
        self._update_buttons()

    def _add_done(self) -> None:
        self._add_worker = None
        self._update_buttons()
