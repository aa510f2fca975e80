"""Once-per-process costs of napari's first layers, paid in idle turns when a step dock opens.

The first result layers a step adds pay, inside the step's result turns, costs that napari and
vispy pay only once per process (or once per canvas) and that do not depend on the layer:

* ``pandas``, imported by napari the first time a layer is given ``features`` (the motion
  quilt, the footprints): 0.4-0.65 s of CPU here;
* vispy's dash patterns (``DashAtlas``), built in a Python loop for the polygon-drawing
  overlay every Labels layer gets: ~0.2 s; vispy keeps them in an ``lru_cache``, so building
  one atlas fills it for every later Labels layer;
* the canvas's glyph atlas: the first text a canvas draws renders the font's metric probe
  glyphs (``" gjpqyÅÉÑŐ"``) with Qt: ~0.13 s. The canvas's text overlay (public API) draws
  one space for one turn at opacity 0 and without its box, then is put back as it was:
  nothing shows.

:func:`warm_up` runs each in its own idle turn (``QTimer``) after a step dock opens, before any
step can run, once per process (the glyphs once per viewer). Nothing is added to the viewer
and nothing is removed (a layer removal costs napari a ``gc.collect``).
What cannot be moved this way: each new layer's visuals, controls and shader programs are
per layer (``bench/results/gui.md``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

from qtpy.QtCore import QTimer

from ._layers import unwrap

#: Process-wide warm-ups already started (by name).
_DONE: set[str] = set()
#: Viewers whose canvas already drew its first text.
_GLYPHS: weakref.WeakSet[Any] = weakref.WeakSet()
#: The running timers (kept alive until their last turn).
_TIMERS: list[QTimer] = []


def _import_pandas() -> None:
    import pandas  # noqa: F401  (napari's layer features)


def _dash_patterns() -> None:
    from vispy.visuals.line.dash_atlas import DashAtlas

    DashAtlas()  # fills vispy's lru_cache of the patterns every agg Line / Polygon border uses


def _process_steps() -> Iterator[Callable[[], int | None]]:
    for name, step in (("pandas", _import_pandas), ("dash", _dash_patterns)):
        if name not in _DONE:
            _DONE.add(name)
            yield step


def _glyph_steps(viewer: Any) -> Iterator[Callable[[], int | None]]:
    """Draw one space in the text overlay for one turn, then restore it."""
    model = unwrap(viewer)
    window = getattr(model, "window", None)
    overlays = getattr(getattr(model, "canvas", None), "overlays", None)
    overlay = overlays.get("text") if overlays is not None else None
    if window is None or overlay is None or model in _GLYPHS:
        return
    _GLYPHS.add(model)
    if overlay.visible or overlay.text:  # the user's own text is (or will be) drawn anyway
        return
    state: dict[str, Any] = {}

    def show() -> int:
        if overlay.visible or overlay.text:
            return 0
        state.update(shown=True, opacity=overlay.opacity, box=overlay.box)
        overlay.opacity = 0.0  # drawn, so its glyphs are made, but not seen (nor its box)
        overlay.box = False
        overlay.text = " "
        overlay.visible = True
        return 100  # ms: the canvas draws it before the next turn

    def restore() -> None:
        if state.get("shown") and overlay.text == " ":
            overlay.visible = False
            overlay.text = ""
            overlay.opacity = state["opacity"]
            overlay.box = state["box"]

    yield show
    yield restore


def warm_up(viewer: Any) -> None:
    """Pay napari's first-layer costs in idle turns, one per turn (see the module notes)."""
    steps = [*_process_steps(), *_glyph_steps(viewer)]
    if not steps:
        return
    todo = iter(steps)
    timer = QTimer()
    timer.setSingleShot(True)

    def turn() -> None:
        step = next(todo, None)
        if step is None:
            _TIMERS.remove(timer)
            return
        try:
            delay = step() or 0
        except RuntimeError:  # the window closed meanwhile (its Qt objects are gone)
            delay = 0
        timer.start(delay)

    timer.timeout.connect(turn)
    _TIMERS.append(timer)
    timer.start(0)
