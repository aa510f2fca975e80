"""The analysis sessions the step docks of one viewer share (see docs/architecture.md).

Each movie a step reads has one :class:`~napari_caiman.app.session.Session`,
found by the name of its layer:

- the Motion dock's run on the layer ``R`` makes (or, run again on the same
  data, reuses) the session of its corrected layer ``"R corrected"``: its
  movie is ``R``'s data, it holds the motion result and the corrected movie;
- the CNMF dock reads the session of the layer it runs on (the motion
  session of a corrected layer, else one made for that layer on first use)
  and hands its result to it (:meth:`Session.take_cnmf`);
- the Evaluation dock follows every session's ``events.cnmf`` and curates
  the newest result; the border rule of its metrics comes from the session
  of the movie layer it reads.

The registry also holds the step docks' forms, for the Batch dock: each open
Motion / CNMF / Evaluation dock publishes how to read its form's current
values (:meth:`ViewerSessions.publish_form`, withdrawn when its dock is
closed), and a new batch item reads them with :meth:`ViewerSessions.form_values`.

No dock reads another dock's attributes or looks another dock up in
``viewer.window.dock_widgets`` (the Motion and Evaluation docks look up only
the companion plots they make): they meet here. Qt-free (psygnal only), one
per viewer.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from psygnal import Signal

from ...app.session import Session

#: The steps whose docks publish their forms (:meth:`ViewerSessions.publish_form`), in order.
FORM_STEPS = ("motion", "cnmf", "evaluate")

#: A published form: frame shape (array order) -> the form's values as flat CaImAn names.
FormValues = Callable[[tuple[int, ...]], Mapping[str, Any]]


class ViewerSessions:
    """The sessions of one viewer's docks, by the name of the layer a step reads.

    Attributes
    ----------
    added : Signal(Session)
        A new session (connect to its ``events`` to follow it).
    newest : Session or None
        The session whose CNMF result came last (set before the session's
        other ``events.cnmf`` listeners run: this registry listens first).
    """

    added = Signal(object)

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._inputs: dict[str, str] = {}
        self._forms: dict[str, Callable[[], FormValues | None]] = {}
        self.newest: Session | None = None

    def __iter__(self) -> Any:
        return iter(list(self._sessions.values()))

    def get(self, name: str) -> Session | None:
        """Return the session of the layer called ``name``, if any."""
        return self._sessions.get(name)

    def input_layer(self, name: str) -> str | None:
        """Return the layer the Motion dock corrected into the layer ``name``.

        None: no motion run.
        """
        return self._inputs.get(name)

    def for_motion(self, movie_layer: str, corrected_layer: str, data: Any, params: Any) -> Session:
        """Return the session a motion correction of ``data`` (the layer ``movie_layer``) goes into.

        The one of ``corrected_layer`` when it holds the same data, else a new one (registered under
        ``corrected_layer``).
        """
        s = self._sessions.get(corrected_layer)
        if s is None or s.movie is not data:
            s = self._add(Session(data, params, name=corrected_layer))
        self._inputs[corrected_layer] = movie_layer
        return s

    def for_layer(self, name: str, data: Any, params: Any = None) -> Session:
        """Return the session of the layer ``name`` holding ``data``.

        Its motion session when ``data`` is that session's corrected movie (same shape), the session
        made for it before when that holds ``data``, else a new one.
        """
        s = self._sessions.get(name)
        if s is not None and s.motion is not None and _same_shape(s.corrected, data):
            return s
        if s is not None and s.motion is None and s.movie is data:
            return s
        self._inputs.pop(name, None)
        return self._add(Session(data, params, name=name))

    def motion_of(self, name: str, data: Any) -> Any:
        """Return the motion result whose corrected movie is the layer ``name`` (holding ``data``).

        Else None (for the border rule of a step reading that layer).
        """
        s = self._sessions.get(name)
        if s is None or s.motion is None or not _same_shape(s.corrected, data):
            return None
        return s.motion

    def forget(self, name: str) -> None:
        """Drop the session of the layer ``name``: the layer was removed.

        Its movie is no longer held for it.
        """
        self._sessions.pop(name, None)
        self._inputs.pop(name, None)

    # -- the step docks' forms (what the Batch dock queues) -------------------------------------
    def publish_form(self, step: str, values: FormValues) -> None:
        """Offer the form of the ``step`` dock (one of :data:`FORM_STEPS`).

        ``values(frame_shape)`` returns the form's current values as flat CaImAn
        names for a movie with frames of ``frame_shape`` (array order), or raises
        ``InputError`` naming a bad field. A bound method is held weakly (a
        dropped dock's form goes with it); a newer form of the step replaces it.
        """
        if step not in FORM_STEPS:
            raise ValueError(f"step must be one of {FORM_STEPS}, not {step!r}")
        if inspect.ismethod(values):
            self._forms[step] = weakref.WeakMethod(values)
        else:
            self._forms[step] = lambda: values

    def withdraw_form(self, step: str, values: FormValues | None = None) -> None:
        """Take the ``step`` dock's form back (its dock was closed).

        With ``values``, only when that is the form published.
        """
        get = self._forms.get(step)
        if get is not None and (values is None or get() == values):
            del self._forms[step]

    def form_steps(self) -> list[str]:
        """Return the steps whose docks' forms are published now, in pipeline order."""
        return [step for step in FORM_STEPS if self._form(step) is not None]

    def form_values(self, step: str, frame_shape: Sequence[int]) -> dict[str, Any] | None:
        """Return the current values of the ``step`` dock's form for frames of ``frame_shape``.

        Flat CaImAn names; None when no such dock is open.

        Raises
        ------
        InputError
            A field of that form holds a bad value (the error names it).
        """
        values = self._form(step)
        if values is None:
            return None
        return dict(values(tuple(int(s) for s in frame_shape)))

    def _form(self, step: str) -> FormValues | None:
        get = self._forms.get(step)
        values = None if get is None else get()
        if get is not None and values is None:  # the dock's widget is gone
            del self._forms[step]
        return values

    def _add(self, session: Session) -> Session:
        assert session.name is not None
        self._sessions[session.name] = session
        session.events.cnmf.connect(self._on_cnmf)
        self.added.emit(session)
        return session

    def _on_cnmf(self, session: Session) -> None:
        self.newest = session


def _same_shape(a: Any, b: Any) -> bool:
    shape = getattr(a, "shape", None)
    return shape is not None and tuple(shape) == tuple(getattr(b, "shape", ()))


# one per viewer; keyed by the viewer behind napari's proxy, held weakly
_SESSIONS: dict[int, tuple[weakref.ref, ViewerSessions]] = {}


def viewer_sessions(viewer: Any) -> ViewerSessions:
    """Return the :class:`ViewerSessions` of ``viewer`` (a napari viewer or a plugin's proxy of it)."""
    real = getattr(viewer, "__wrapped__", viewer)
    for key, (ref, _) in list(_SESSIONS.items()):  # forget closed viewers
        if ref() is None:
            del _SESSIONS[key]
    entry = _SESSIONS.get(id(real))
    if entry is not None and entry[0]() is real:
        return entry[1]
    sessions = ViewerSessions()
    _SESSIONS[id(real)] = (weakref.ref(real), sessions)
    layers = getattr(real, "layers", None)
    if layers is not None:  # a removed layer's session goes with it

        def forget(event: Any) -> None:
            sessions.forget(event.value.name)

        layers.events.removed.connect(forget)
    return sessions
