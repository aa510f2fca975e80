"""Docks that fit a screen: scrolling step forms and status lines that never widen a dock.

napari docks a magicgui widget's ``.native`` (the widget holding its layout),
so magicgui's ``scrollable=True`` (a scroll area *around* ``.native``) is lost
in a dock, and the docks' minimum heights add up past the screen.
:func:`make_scrollable` moves a Container's rows into a scroll area *inside*
``.native`` instead: the dock may then be as short as the user likes. The step
docks (Motion, CNMF, Evaluation, Batch) also join one tab group when docked
next to each other: stacked, each would get ~110 px of a 1080 px screen.
:class:`StatusLabel` is a Label that elides its text to the dock's width
and shows the whole text as its tooltip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from magicgui.widgets import Container, Label
from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtWidgets import (
    QDockWidget,
    QFrame,
    QMainWindow,
    QScrollArea,
    QSizePolicy,
    QTabBar,
    QVBoxLayout,
    QWidget,
)

#: Object name of the scroll area of a step form: marks the docks that share tabs.
SCROLL_NAME = "napari_caiman_scroll"

#: Shortest a scrolling dock gets (px): a few rows stay visible.
MIN_SCROLL_HEIGHT = 120
#: Shortest the scrolling part of a form with pinned rows gets (px): two rows.
MIN_PINNED_SCROLL_HEIGHT = 48

#: Tab titles of the step docks in their tab group: napari's titles ("Motion correction
#: (napari-caiman)" ...) were cut to "Motion correction (..." in a 450 px wide dock.
TAB_TITLES = {"Motion correction": "Motion", "Evaluation / curation": "Evaluation"}


def tab_title(title: str) -> str:
    """Return the short tab title of a step dock titled ``title`` (napari's "<name> (<plugin>)")."""
    name = title.split(" (", 1)[0]
    return TAB_TITLES.get(name, name)


def make_scrollable(
    container: Container, min_height: int = MIN_SCROLL_HEIGHT, pinned: Sequence[Any] = ()
) -> QScrollArea:
    """Put the rows of ``container`` into a vertical scroll area inside its ``.native``.

    Call it once the container holds all its widgets. The widgets stay the
    container's (values, signals, visibility work as before); only their Qt
    parent changes. The rows of ``pinned`` (widgets of the container: a step's Run /
    Cancel, progress bar and status) stay below the scroll area, in their order, so they
    are on screen however far the form is scrolled. Returns the scroll area.
    """
    native = container.native
    layout = native.layout()
    pinned_natives = [w.native for w in pinned]
    inner = QWidget()
    inner.setObjectName("napari_caiman_form")
    inner_layout = QVBoxLayout(inner)
    margins = layout.contentsMargins()
    inner_layout.setContentsMargins(margins)
    inner_layout.setSpacing(layout.spacing())
    kept: list[QWidget] = []
    while layout.count():
        item = layout.takeAt(0)
        widget = item.widget()
        if widget is not None and _row_of(widget, pinned_natives):
            kept.append(widget)
        elif widget is not None:
            inner_layout.addWidget(widget)
        else:
            inner_layout.addItem(item)
    inner_layout.addStretch(1)
    area = QScrollArea()
    area.setObjectName(SCROLL_NAME)
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
    if kept:
        footer = QWidget()
        footer.setObjectName("napari_caiman_pinned")
        footer_layout = QVBoxLayout(footer)
        footer_layout.setContentsMargins(margins.left(), 2, margins.right(), 2)
        footer_layout.setSpacing(2)
        for widget in kept:
            footer_layout.addWidget(widget)
        layout.addWidget(footer)
        # the form gives up room to the footer, down to two rows (Motion / CNMF: 174 px, was 140)
        area.setMinimumHeight(
            max(MIN_PINNED_SCROLL_HEIGHT, min_height - footer.sizeHint().height())
        )
    native._tabs = _JoinTabs(native)  # type: ignore[attr-defined]
    native.installEventFilter(native._tabs)  # type: ignore[attr-defined]
    return area


def _row_of(row: QWidget, natives: list[QWidget]) -> bool:
    """Whether the form row ``row`` is (or holds, as its labelled row) one of ``natives``."""
    return any(n is row or row.isAncestorOf(n) for n in natives)


def _step_dock(widget: QWidget | None) -> QDockWidget | None:
    """Return the dock holding ``widget`` if it is a step form (it has our scroll area)."""
    while widget is not None and not isinstance(widget, QDockWidget):
        widget = widget.parentWidget()
    if widget is None:
        return None
    inner = widget.widget()
    if inner is None or inner.findChild(QScrollArea, SCROLL_NAME) is None:
        return None
    return widget


def join_step_tabs(dock: QDockWidget) -> bool:
    """Tab ``dock`` with the other step docks in its area of the main window and bring it to the front.

    One tab group holds all of them. Returns True if there were others to join.
    """
    main = dock.parentWidget()
    if not isinstance(main, QMainWindow) or dock.isFloating():
        return False
    area = main.dockWidgetArea(dock)
    if area == Qt.DockWidgetArea.NoDockWidgetArea:
        return False
    group = [
        other
        for other in main.findChildren(QDockWidget)
        if not other.isFloating()
        and (other is dock or not other.isHidden())  # not closed by the user
        and main.dockWidgetArea(other) == area
        and _step_dock(other.widget()) is other
    ]
    if dock not in group or len(group) < 2:
        return False
    anchor = group[0]
    for other in group[1:]:
        if other not in main.tabifiedDockWidgets(anchor):
            main.tabifyDockWidget(anchor, other)
    for other in group:  # short, whole tab titles; the full title as the tab's tooltip
        if not other.toolTip():
            other.setToolTip(other.windowTitle())
            other.setWindowTitle(tab_title(other.windowTitle()))
    dock.show()
    dock.raise_()
    QTimer.singleShot(0, lambda: _unelide_tabs(main, {tab_title(d.toolTip()) for d in group}))
    return True


def _unelide_tabs(main: QMainWindow, titles: set[str]) -> None:
    """Never elide the step docks' tab titles (Qt's tab bar of a dock group elides them)."""
    try:
        bars = main.findChildren(QTabBar)
    except RuntimeError:  # the window went away meanwhile
        return
    for bar in bars:
        if any(bar.tabText(i) in titles for i in range(bar.count())):
            bar.setElideMode(Qt.TextElideMode.ElideNone)
            bar.setExpanding(False)


class _JoinTabs(QObject):
    """Joins the step tab group when the form is first shown in a dock of the main window."""

    def __init__(self, native: QWidget) -> None:
        super().__init__(native)
        self._native = native
        self._done = False

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802
        if not self._done and event.type() == QEvent.Type.Show:
            # after napari has finished placing the dock (it resizes the area's docks)
            QTimer.singleShot(0, self._join)
        return False

    def _join(self) -> None:
        if self._done:
            return
        try:
            dock = _step_dock(self._native)
        except RuntimeError:  # closed before the event loop came round
            return
        main = None if dock is None else dock.parentWidget()
        if not isinstance(main, QMainWindow):
            return
        if main.dockWidgetArea(dock) == Qt.DockWidgetArea.NoDockWidgetArea:
            return  # not placed yet: the next Show tries again
        self._done = True
        join_step_tabs(dock)


class _FitWidth(QObject):
    """Keeps a scroll area as wide as its form's minimum width."""

    _EVENTS = (
        QEvent.Type.LayoutRequest,
        QEvent.Type.StyleChange,
        QEvent.Type.Polish,
        QEvent.Type.Show,
        QEvent.Type.FontChange,
    )

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
    """A Label whose ``value`` is the whole text.

    The shown text is elided to the width it has ("…"), the tooltip holds the whole text, and it
    never asks for more width than a few characters.
    """

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
