"""A step dock's form on the viewer's shared state while the dock is open.

:func:`publish_while_docked` publishes the form
(:meth:`~._state.ViewerSessions.publish_form`) when the widget goes into a dock
and withdraws it when napari's "x" takes the widget out of its dock, so that
the Batch dock reads the forms of the docks that are open and nothing else.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QEvent, QObject

from ._state import FormValues, ViewerSessions, viewer_sessions


class _DockedFilter(QObject):
    """Publishes or withdraws a form as its widget's Qt parent comes and goes."""

    def __init__(self, parent: Any, sessions: ViewerSessions, step: str, values: Any) -> None:
        super().__init__(parent)
        self._sessions, self._step, self._values = sessions, step, values

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 (Qt's name)
        """Follow the widget into and out of its dock; never consume the event."""
        if event.type() == QEvent.Type.ParentChange:
            if obj.parent() is None:
                self._sessions.withdraw_form(self._step, self._values)
            else:
                self._sessions.publish_form(self._step, self._values)
        return False


def publish_while_docked(viewer: Any, widget: Any, step: str, values: FormValues) -> None:
    """Publish ``values`` as the ``step`` dock's form of ``viewer`` while ``widget`` is docked.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer (or napari's proxy of it) whose docks share the form.
    widget : magicgui.widgets.Widget
        The dock's widget; its ``native`` going into / out of a dock publishes /
        withdraws the form.
    step : str
        ``"motion"``, ``"cnmf"`` or ``"evaluate"``.
    values : callable
        ``values(frame_shape)`` -> the form's values as flat CaImAn names.
    """
    sessions = viewer_sessions(viewer)
    native = widget.native
    widget._published_form = _DockedFilter(native, sessions, step, values)
    native.installEventFilter(widget._published_form)
    if native.parent() is not None:
        sessions.publish_form(step, values)
