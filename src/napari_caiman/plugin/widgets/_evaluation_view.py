"""What the Evaluation dock shows of its curation session: layers, selection, docks.

:class:`EvaluationView` is a mixin of
:class:`~napari_caiman.plugin.widgets.evaluation.EvaluationWidget`: the result's
layers (rebuilt after edits, clicks and keys hooked on them), the selection
(a click on a contour, a table row or a scatter point; the yellow outline,
the traces, the table row and the scatter ring follow it), and the "Traces"
and "Components" docks. The model (what is selected, accepted ...) is the
widget's :class:`~napari_caiman.app.curation_session.CurationSession`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Layer
from qtpy.QtCore import QItemSelectionModel, QTimer

from ...engine.errors import InputError
from ..layers import evaluation as ev
from ..layers import outlines as ol
from ..layers.cnmf import cnmf_layer_data, footprints_layer_data, layer_names, movie_layers_data
from ._layers import ON_REQUEST, same_layer, unwrap, upsert_layer, with_shown_footprints
from .components import DOCK_NAME as TABLE_DOCK
from .components import ComponentsDock
from .traces import DOCK_NAME as TRACES_DOCK
from .traces import TracesPlot

if TYPE_CHECKING:
    from ...app.curation_session import CurationSession


class EvaluationView:
    """Layers, selection and docks of the Evaluation widget (a mixin; see the module)."""

    session: CurationSession | None
    _spare_traces: TracesPlot | None  # built in idle turns, docked when a result comes
    _spare_table: ComponentsDock | None

    # -- the result's layers -----------------------------------------------------------------------
    def _layer(self, kind: str) -> Layer | None:
        if self.session is None:
            return None
        name = layer_names(self.session.name)[kind]
        return self._viewer.layers[name] if name in self._viewer.layers else None

    @property
    def contours_layer(self) -> Image | None:
        """The result's contours: an RGBA Image of outlines (None if removed)."""
        layer = self._layer("contours")
        if not isinstance(layer, Image):
            return None
        return layer if isinstance(self._outlines_of(layer), ol.Outlines) else None

    @staticmethod
    def _outlines_of(layer: Layer) -> Any:
        return layer.metadata.get("napari_caiman", {}).get("outlines")

    @property
    def outlines(self) -> ol.Outlines | None:
        """Which image pixels outline which component (the contours layer's metadata)."""
        layer = self.contours_layer
        return None if layer is None else self._outlines_of(layer)

    def frame_geometry(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """(scale, translate) of the result's frames (the footprints' geometry)."""
        contours = self.contours_layer
        if contours is not None:
            meta = contours.metadata["napari_caiman"]
            return tuple(meta["frame_scale"]), tuple(meta["frame_translate"])
        footprints = self._layer("footprints")
        if footprints is not None:
            return tuple(footprints.scale), tuple(footprints.translate)
        return None

    def _drop_outline(self) -> None:
        """Remove the current result's selection outline (another result comes)."""
        if self.session is not None:
            outline = f"{self.session.name} selected"
            if outline in self._viewer.layers:
                self._viewer.layers.remove(outline)

    def _rebuild_layers(self, movie: Any = None, *, edit: bool = False) -> None:
        """(Re)make the result's layers (after loading, or a hand edit: ``edit``)."""
        s = self.session
        assert s is not None
        step, scale, translate, movie = self._layer_inputs(s.estimates, movie)
        tuples = cnmf_layer_data(step, s.name, scale, translate, movie=movie)
        kinds = (*ON_REQUEST, "summary") if edit else ON_REQUEST  # an edit: same summary images
        for data, meta, layer_type in with_shown_footprints(self._viewer, tuples, kinds):
            upsert_layer(self._viewer, data, meta, layer_type)
        self._hook_layers()

    def show_footprints(self) -> Layer | None:
        """Show the result's footprints as a Labels layer, made now if it is not there.

        Not made with the result (see :func:`._layers.with_shown_footprints`); once made, a
        refit or hand edit updates it, and a click on it selects a component as on the contours.
        """
        return self.show_result_layer("footprints")

    def show_result_layer(self, kind: str) -> Layer | None:
        """Show the result's ``"footprints"``, ``"denoised"`` or ``"residual"`` layer.

        Made now if it is not there (these come on request: :data:`._layers.ON_REQUEST`), then
        made visible; a re-run, refit or hand edit updates it in place from then on.

        Raises
        ------
        InputError
            ``"residual"`` without the movie CNMF ran on in the viewer.
        """
        s = self.session
        if s is None:
            self.component_label.value = "no result: run CNMF or load a results file"
            return None
        layer = self._layer(kind)
        if layer is None:
            if kind == "footprints":
                geom = self.frame_geometry()
                ndim = len(s.estimates.dims)
                scale, translate = geom if geom is not None else ((1.0,) * ndim, (0.0,) * ndim)
                data, meta, layer_type = footprints_layer_data(
                    s.estimates, s.name, scale, translate, visible=True
                )
            else:
                data, meta, layer_type = self._movie_layer_tuple(kind)
            layer = upsert_layer(self._viewer, data, meta, layer_type)
            if kind == "footprints":
                self._hook_layers()
                self._features_key = None
                self.apply()  # its features: the metrics and decisions
        layer.visible = True
        return layer

    def _movie_layer_tuple(self, kind: str) -> tuple:
        """Return the ``"denoised"`` or ``"residual"`` layer tuple of the result (visible)."""
        s = self.session
        assert s is not None
        movie = self._cnmf_movie()
        step, scale, translate, _ = self._layer_inputs(s.estimates, movie)
        if kind == "residual" and movie is None:
            raise InputError(
                "movie",
                f"the residual needs the movie CNMF ran on ({s.name!r}, frames "
                f"{tuple(s.estimates.dims)}): open it, or choose it as the movie",
            )
        source = self._viewer.layers[s.name] if s.name in self._viewer.layers else None
        if source is not None and source.ndim == len(s.estimates.dims) + 1:
            scale, translate = tuple(source.scale), tuple(source.translate)
        tuples = movie_layers_data(step, s.name, scale, translate, movie=movie, visible=True)
        return next(t for t in tuples if t[1]["name"] == layer_names(s.name)[kind])

    def _cnmf_movie(self) -> Any:
        """Return the data of the movie CNMF ran on.

        The layer of the result's name, else the movie chosen; None when neither has the
        result's (T, *dims) shape.
        """
        s = self.session
        assert s is not None
        est = s.estimates
        T = int(est.C.shape[1]) if est.n_components else int(est.f.shape[1])
        shape = (T, *(int(d) for d in est.dims))
        for layer in (
            self._viewer.layers[s.name] if s.name in self._viewer.layers else None,
            self.movie.value,
        ):
            if isinstance(layer, Image) and tuple(layer.data.shape) == shape:
                return layer.data
        return None

    def _layer_inputs(self, estimates: Any, movie: Any = None) -> tuple[Any, Any, Any, Any]:
        """Return what :func:`cnmf_layer_data` needs for ``estimates`` of this session.

        The step (estimates + summary images), scale, translate of the result's layers, the movie.
        """
        s = self.session
        assert s is not None
        summary = (
            s.summary if s.summary is not None else SimpleNamespace(mean=None, corr=None, std=None)
        )
        if getattr(summary, "mean", None) is None:
            summary = SimpleNamespace(
                mean=np.zeros(s.estimates.dims, np.float32), corr=getattr(summary, "corr", None)
            )
        geom = self.frame_geometry()
        scale = translate = None
        if geom is not None:
            scale, translate = (1.0, *geom[0]), (0.0, *geom[1])
        if (
            movie is None
            and self.movie.value is not None
            and tuple(self.movie.value.data.shape[1:]) == tuple(s.estimates.dims)
        ):
            movie = self.movie.value.data
        return SimpleNamespace(estimates=estimates, summary=summary), scale, translate, movie

    def _hook_layers(self) -> None:
        """Mouse and key bindings on the result's contours and footprints layers."""
        self._lookup = None
        if self._closed:
            return
        for kind in ("contours", "footprints"):
            layer = self._layer(kind)
            if layer is None or any(same_layer(layer, h) for h in self._hooked):
                continue
            layer = unwrap(layer)
            layer.mouse_drag_callbacks.append(self._on_click)
            self._bind_keys(layer)  # before the layer's own keys (Shapes: r, p ...)
            if kind == "contours":
                self._hook_status(layer)
            self._hooked.append(layer)

    def _hook_status(self, layer: Layer) -> None:
        """Name the component under the cursor and its features in the status bar.

        As the Shapes contours' features did: the outline image's own ``get_status``
        (napari calls it from its status thread on every cursor move) is wrapped for
        this layer object.
        """
        own = type(layer).get_status.__get__(layer)

        def get_status(position: Any = None, **kwargs: Any) -> Any:
            status = own(position, **kwargs)
            if position is None or not isinstance(status, dict) or not kwargs.get("world"):
                return status
            with contextlib.suppress(Exception):  # a status must never raise
                k = self.component_at(layer, position)
                if k is not None and self.session is not None:
                    status["coordinates"] = (
                        f"{status.get('coordinates', '')}  {self._hover_text(k)}"
                    )
            return status

        layer.get_status = get_status  # type: ignore[method-assign]

    def _hover_text(self, k: int) -> str:
        """``#k: SNR …, r …, accepted`` for the status bar (what the picked set is not)."""
        s = self.session
        assert s is not None
        snr = r = "–"
        if s.metrics is not None:
            snr = f"{float(s.metrics.SNR_comp[k]):.2f}"
            r = f"{float(s.metrics.r_values[k]):.2f}"
        status = "accepted" if k < len(s.accepted) and s.accepted[k] else "rejected"
        manual = " (by hand)" if int(s.curation.manual[k]) else ""
        return f"component #{k}: SNR {snr}, r {r}, {status}{manual}"

    # -- keys and clicks --------------------------------------------------------------------------------
    def _bind_keys(self, provider: Any) -> None:
        """Bind a / r / u / n / p on ``provider`` (the viewer, or a result layer)."""
        for key, func in self._key_functions.items():
            self._keys.bind(provider, key, func)

    def _watch_close(self) -> None:
        """Unbind the keys and clicks when the dock is closed or the widget is deleted.

        Napari's "x" takes the widget out of its dock.
        """
        from qtpy.QtCore import QEvent, QObject

        widget = self

        class _CloseFilter(QObject):
            def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802
                if event.type() == QEvent.Type.ParentChange and obj.parent() is None:
                    widget.close_bindings()
                return False

        self._close_filter = _CloseFilter(self.native)
        self.native.installEventFilter(self._close_filter)
        self.native.destroyed.connect(lambda *_: self._keys.clear())

    def close_bindings(self) -> None:
        """Remove this widget's keys and mouse callbacks from the viewer and layers."""
        self._closed = True
        self._keys.clear()
        for layer in self._hooked:
            with contextlib.suppress(ValueError):
                layer.mouse_drag_callbacks.remove(self._on_click)
            layer.__dict__.pop("get_status", None)  # napari's own status again
        self._hooked = []

    # -- selection ------------------------------------------------------------------------------------
    def component_at(self, layer: Layer, position: Any, event: Any = None) -> int | None:
        """Component under ``position`` (world coordinates) of the contours or footprints layer."""
        s = self.session
        if s is None:
            return None
        o = self._outlines_of(layer) if isinstance(layer, Image) else None
        if o is not None:  # the outlines image: the strongest footprint under the pixel
            if self._lookup is None:
                self._lookup = ev.footprint_lookup(s.estimates.A)
            data = np.asarray(layer.world_to_data(position))[-len(s.estimates.dims) :]
            return ev.component_at_pixel(
                self._lookup, s.estimates.dims, ol.frame_position(data, o.factor)
            )
        kw = {}
        if event is not None:
            kw = {
                "view_direction": event.view_direction,
                "dims_displayed": list(event.dims_displayed),
            }
        value = layer.get_value(position, world=True, **kw)
        if value is None or int(value) <= 0:
            return None
        k = int(value) - 1  # label k + 1 is component k
        return k if k < s.n_components else None

    def _on_click(self, layer: Layer, event: Any) -> Any:
        if event.button != 1:
            return
        start = np.asarray(event.position)
        yield
        dragged = False
        while event.type == "mouse_move":
            dragged = dragged or bool(np.abs(np.asarray(event.position) - start).max() > 0.5)
            yield
        if dragged:
            return
        k = self.component_at(layer, start, event)
        if k is not None:
            self.select_component(k, add="Shift" in event.modifiers)

    def select_component(self, k: int | None, *, add: bool = False, center: bool = False) -> None:
        """Select component ``k`` (traces, table row, highlight).

        ``add`` picks it too (for merge/delete) instead of replacing the picked set.
        """
        if self.session is None:
            return
        self.session.select(k, add=add)
        self._show_selection(center)
        self._update_component_label()
        self._show_traces()
        self._select_table_rows()

    def step(self, delta: int) -> None:
        """Select the next (``delta=1``) or previous component, in the table's order."""
        s = self.session
        if s is None:
            return
        k = s.next_component(delta, self.table_model.order, self.table_model.rank)
        if k is not None:
            self.select_component(k, center=True)

    def _show_selection(self, center: bool) -> None:
        """Outline the picked components in a thick yellow "<name> selected" layer.

        One Vectors layer whose segments are replaced (a Shapes layer cost ~3x more per change); the
        picked components' contour paths are traced when asked for (~1 ms each).
        """
        s = self.session
        contours = self.contours_layer
        geom = self.frame_geometry()
        if s is None or contours is None or geom is None:
            return
        name = f"{s.name} selected"
        scale, translate = geom
        ndim = len(s.estimates.dims)
        polys = ol.component_paths(s.estimates, s.picked)
        segments = ev.outline_segments(polys, ndim)
        if name in self._viewer.layers:
            layer = unwrap(self._viewer.layers[name])
            if layer.data.shape != segments.shape or not np.array_equal(layer.data, segments):
                # napari answers a layer's data event by recomputing the whole viewer's
                # dims (~15-25 ms of each selection here); the outline lies inside the frame,
                # so the ranges it would find are the ones it has. The layer still redraws.
                with layer.events.data.blocker():
                    layer.data = segments
        elif polys:
            self._viewer.add_vectors(
                segments,
                name=name,
                edge_color="yellow",
                edge_width=2.0,
                length=1.0,
                vector_style="line",
                ndim=ndim,
                scale=scale,
                translate=translate,
                metadata={"napari_caiman": {"kind": "selected component", "source": s.name}},
            )
            self._viewer.layers.selection.active = (
                contours  # keys and clicks stay with the contours
            )
        if center and s.selected is not None and polys:
            own = ol.component_paths(s.estimates, [s.selected])
            if not own:
                return
            mid = np.concatenate(own).mean(axis=0)
            world = mid * np.asarray(scale) + np.asarray(translate)
            if len(world) == 3:
                self._viewer.dims.set_point(self._viewer.dims.ndim - 3, world[0])
            # napari >= 0.9 moved the camera to viewer.scene; older versions have viewer.camera
            scene = getattr(self._viewer, "scene", None)
            camera = scene.camera if scene is not None else self._viewer.camera
            camera.center = tuple(world[-2:])

    def _update_component_label(self) -> None:
        s = self.session
        self.component_label.value = "click an ROI (keys a/r/u, n/p)" if s is None else s.describe()

    # -- docks: traces, table, scatter ------------------------------------------------------------------
    def _ensure_docks(self) -> None:
        for _step in self._dock_steps():
            pass

    def _prebuild_docks(self) -> None:
        """Build the traces and table widgets in idle turns after the dock opened.

        pyqtgraph's plots cost ~0.4-0.7 s of CPU here, so a result arriving while a
        step runs only docks them, one per turn, instead of freezing the window for
        their construction.
        """
        steps = iter((self._spare_traces_widget, self._spare_table_widget))

        def turn() -> None:
            if self.session is not None:  # a result came first: it builds what it needs
                return
            build = next(steps, None)
            if build is not None:
                build()
                self._prebuild_timer.start(0)

        self._prebuild_timer = QTimer(self.native)
        self._prebuild_timer.setSingleShot(True)
        self._prebuild_timer.timeout.connect(turn)
        self._prebuild_timer.start(0)

    def _spare_traces_widget(self) -> TracesPlot:
        if self._spare_traces is None:
            self._spare_traces = TracesPlot()
        return self._spare_traces

    def _spare_table_widget(self) -> ComponentsDock:
        if self._spare_table is None:
            self._spare_table = ComponentsDock(self.table_model)
        return self._spare_table

    def _dock_steps(self) -> Generator[None, None, None]:
        """Dock the traces and the components table, a yield after each.

        They were built beforehand where the idle turns allowed; adding a dock
        re-lays out the window and saves napari's settings (~0.1-0.3 s).
        """
        window = getattr(self._viewer, "window", None)
        if window is None:
            return
        docks = window.dock_widgets
        traces = docks.get(TRACES_DOCK)
        if not isinstance(traces, TracesPlot):
            traces = self._spare_traces_widget()
            self._spare_traces = None
            window.add_dock_widget(traces, name=TRACES_DOCK, area="bottom")
            traces.frame_clicked.connect(self._jump_to_frame)
            self.traces = traces
            yield
        self.traces = traces
        dock = docks.get(TABLE_DOCK)
        if not isinstance(dock, ComponentsDock):
            dock = self._spare_table_widget()
            self._spare_table = None
            dock.table.selectionModel().selectionChanged.connect(self._on_table_selection)
            dock.scatter.component_clicked.connect(self._on_point_clicked)
            dock.filter.currentTextChanged.connect(lambda *_: self._select_table_rows())
            window.add_dock_widget(dock, name=TABLE_DOCK, area="bottom")
            self.components_dock = dock
            self.table_view = dock.table
            yield
        self.components_dock = dock
        self.table_view = dock.table

    def _show_traces(self) -> None:
        s = self.session
        if self.traces is None or s is None:
            return
        k = s.selected
        if k is None or k >= s.n_components:
            self.traces.show_component(None)
            return
        self.traces.show_component(k, **s.traces(k))
        self.traces.set_frame(int(self._viewer.dims.current_step[0]))

    def _on_step(self, event: Any = None) -> None:
        if self.traces is not None and self.session is not None:
            self.traces.set_frame(int(self._viewer.dims.current_step[0]))

    def _jump_to_frame(self, t: int) -> None:
        self._viewer.dims.set_current_step(0, int(t))

    def _update_table(self, full: bool) -> None:
        s = self.session
        assert s is not None
        columns = ev.component_table(s.metrics, s.accepted, s.curation.manual, s.sizes())
        if full or len(self.table_model.rank) != s.n_components:
            self.table_model.set_columns(columns)
        else:
            self.table_model.update_columns(columns)
        self._select_table_rows()
        if self.components_dock is not None:
            th = {k: v for k, v in self.thresholds().items() if isinstance(v, float)}
            self.components_dock.scatter.set_data(columns, s.accepted, th, s.picked)
            self.components_dock.count.setText(f"{self.table_model.rowCount()} shown")

    def _on_point_clicked(self, k: int, shift: bool) -> None:
        self._guard(lambda: self.select_component(k, add=shift))()

    def _select_table_rows(self) -> None:
        view, s = self.table_view, self.session
        if view is None or s is None or len(self.table_model.rank) != s.n_components:
            return
        self._syncing_table = True
        try:
            sel = view.selectionModel()
            sel.clearSelection()
            flags = (
                QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
            )
            rank = self.table_model.rank
            for k in s.picked:
                if rank[k] >= 0:  # not filtered out
                    sel.select(self.table_model.index(int(rank[k]), 0), flags)
            if s.selected is not None and rank[s.selected] >= 0:
                view.scrollTo(self.table_model.index(int(rank[s.selected]), 0))
        finally:
            self._syncing_table = False
        if self.components_dock is not None:
            self.components_dock.scatter.set_selected(s.picked)

    def _on_table_selection(self, *_: Any) -> None:
        if self._syncing_table or self.table_view is None or self.session is None:
            return
        rows = sorted({i.row() for i in self.table_view.selectionModel().selectedRows()})
        comps = [int(self.table_model.order[r]) for r in rows]
        if not comps:
            return
        self.session.select_many(comps)
        self._show_selection(False)
        self._update_component_label()
        self._show_traces()
