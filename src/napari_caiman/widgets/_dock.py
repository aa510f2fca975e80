"""Docks that fit a screen: scrolling step forms and status lines that never widen a dock.

napari docks a magicgui widget's ``.native`` (the widget holding its layout),
so magicgui's ``scrollable=True`` (a scroll area *around* ``.native``) is lost
in a dock, and the docks' minimum heights add up past the screen.
:func:`make_scrollable` moves a Container's rows into a scroll area *inside*
``.native`` instead: the dock may then be as short as the user likes.
:class:`StatusLabel` is a Label that elides its text to the dock's width
and shows the whole text as its tooltip.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Container, Label
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

#: Shortest a scrolling dock gets (px): a few rows stay visible.
MIN_SCROLL_HEIGHT = 120


def make_scrollable(container: Container, min_height: int = MIN_SCROLL_HEIGHT) -> QScrollArea:
    """Put the rows of ``container`` into a vertical scroll area inside its ``.native``.

    Call it once the container holds all its widgets. The widgets stay the
    container's (values, signals, visibility work as before); only their Qt
    parent changes. Returns the scroll area.
    """
    native = container.native
    layout = native.layout()
    inner = QWidget()
    inner.setObjectName("napari_caiman_form")
    inner_layout = QVBoxLayout(inner)
    margins = layout.contentsMargins()
    inner_layout.setContentsMargins(margins)
    inner_layout.setSpacing(layout.spacing())
    while layout.count():
        item = layout.takeAt(0)
        widget = item.widget()
        if widget is not None:
            inner_layout.addWidget(widget)
        else:
            inner_layout.addItem(item)
    inner_layout.addStretch(1)
    area = QScrollArea()
    area.setObjectName("napari_caiman_scroll")
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(inner)
    # as wide as the form (no horizontal scrolling), as short as the user wants; the
    # form's width is known once napari's style sheet applies, so it follows its changes
    area._fit_width = _FitWidth(area, inner)  # type: ignore[attr-defined]
    inner.installEventFilter(area._fit_width)  # type: ignore[attr-defined]
    area._fit_width.fit()  # type: ignore[attr-defined]
    area.setMinimumHeight(min_height)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(area)
    return area


class _FitWidth(QObject):
    """Keeps a scroll area as wide as its form's minimum width."""

    _EVENTS = (QEvent.Type.LayoutRequest, QEvent.Type.StyleChange, QEvent.Type.Polish,
               QEvent.Type.Show, QEvent.Type.FontChange)

    def __init__(self, area: QScrollArea, inner: QWidget) -> None:
        super().__init__(area)
        self._area, self._inner = area, inner

    def fit(self) -> None:
        bar = self._area.verticalScrollBar().sizeHint().width()
        width = self._inner.minimumSizeHint().width() + bar + 4
        if width != self._area.minimumWidth():
            self._area.setMinimumWidth(width)

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802
        if event.type() in self._EVENTS:
            self.fit()
        return False


class _ResizeFilter(QObject):
    def __init__(self, label: StatusLabel) -> None:
        super().__init__(label.native)
        self._label = label

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Resize:
            self._label._elide()
        return False


class StatusLabel(Label):
    """A Label whose ``value`` is the whole text; the shown text is elided to
    the width it has ("…"), the tooltip holds the whole text, and it never
    asks for more width than a few characters."""

    def __init__(self, **kwargs: Any) -> None:
        self._full = ""
        super().__init__(**kwargs)
        q = self.native
        q.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        q.setMinimumWidth(40)
        q.setWordWrap(False)
        self._filter = _ResizeFilter(self)
        q.installEventFilter(self._filter)
        self._elide()

    @property
    def value(self) -> str:  # type: ignore[override]
        """The whole text (what was set), not the elided one shown."""
        return self._full

    @value.setter
    def value(self, text: Any) -> None:
        text = "" if text is None else str(text)
        changed = text != self._full
        self._full = text
        if getattr(self, "_widget", None) is None:  # during Label.__init__
            return
        self.native.setToolTip(text if len(text) > 0 else "")
        self._elide()
        if changed:
            self.changed.emit(text)

    def _elide(self) -> None:
        q = self.native
        width = max(q.width() - 4, 10)
        q.setText(q.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, width))
