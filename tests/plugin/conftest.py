"""Fixtures for the napari front-end tests.

``make_napari_viewer`` comes from napari's own pytest plugin
(``napari.utils._testsupport``, registered through napari's ``pytest11``
entry point), so it needs no ``pytest_plugins`` line here.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_caiman.engine.synthetic import make_movie_2d, make_movie_3d

#: Longest wait for a small motion-correction run, ms (they take ~1 s).
RUN_TIMEOUT_MS = 30_000


@pytest.fixture(scope="session")
def movie_2d():
    """(80, 64, 64) float32 with ~3 px rigid and ~1.5 px non-rigid motion, and its truth."""
    return make_movie_2d(
        (80, 64, 64), n_neurons=12, rigid_motion=3.0, nonrigid_motion=1.5, seed=1, return_flow=False
    )


@pytest.fixture(scope="session")
def movie_3d():
    """(40, 6, 40, 40) float32 with ~2 px rigid motion in y/x, 1 plane in z."""
    return make_movie_3d(
        (40, 6, 40, 40),
        n_neurons=6,
        rigid_motion=(2.0, 2.0, 1.0),
        seed=2,
        return_flow=False,
        return_truth=False,
    )


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def motion_widget(viewer):
    """The Motion correction dock widget, docked the way napari's menu does it."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-caiman", "Motion correction")
    return widget


@pytest.fixture
def capture(monkeypatch):
    """``capture(*targets)``: replace the notification functions ``targets``
    (dotted names) by one list's ``append``; returns the list."""

    def replace(*targets: str) -> list[str]:
        shown: list[str] = []
        for target in targets:
            monkeypatch.setattr(target, shown.append)
        return shown

    return replace


@pytest.fixture
def errors(capture):
    """Messages the runner shows with napari's ``show_error`` (captured, not shown)."""
    return capture("napari_caiman.plugin.widgets._runner.show_error")


@pytest.fixture
def infos(capture):
    """Information notes of the step widgets (presets, evaluation), captured."""
    return capture(
        "napari_caiman.plugin.widgets._presets.show_info",
        "napari_caiman.plugin.widgets.evaluation.show_info",
        "napari_caiman.plugin.widgets._evaluation_source.show_info",
    )


@pytest.fixture
def wait_done(qtbot):
    """``wait_done(widget, timeout_ms)``: wait (bounded) until its runner is idle."""

    def wait(widget, timeout: int = RUN_TIMEOUT_MS) -> None:
        qtbot.waitUntil(lambda: not widget.runner.is_running, timeout=timeout)

    return wait


# --- the user's keys and clicks, as Qt events on the canvas ---------------------------------


class User:
    """Keys and clicks sent as Qt events to the viewer's canvas, as a user makes them."""

    def __init__(self, qtbot, viewer) -> None:
        self.qtbot, self.viewer = qtbot, viewer

    @property
    def canvas(self):
        """The vispy canvas' Qt widget (what receives the user's keys and clicks)."""
        return self.viewer.window._qt_viewer.canvas.native

    def press(self, key, modifier=None) -> None:
        """Press and release ``key`` (a ``Qt.Key``) with the canvas focused."""
        from qtpy.QtCore import Qt

        widget = self.canvas
        widget.setFocus()
        self.qtbot.keyClick(widget, key, modifier or Qt.KeyboardModifier.NoModifier)
        self.qtbot.wait(10)

    def point(self, world_yx):
        """Canvas pixel (x, y) showing the world position ``world_yx`` (last two axes)."""
        from qtpy.QtCore import QPoint

        view = self.viewer.window._qt_viewer.canvas.view
        x, y = (view.transform * view.scene.transform).map([world_yx[-1], world_yx[-2]])[:2]
        return QPoint(int(round(x)), int(round(y)))

    def click(self, world_yx, modifier=None) -> None:
        """A left click (press + release, no drag) on the canvas at ``world_yx``."""
        from qtpy.QtCore import Qt

        widget, point = self.canvas, self.point(world_yx)
        mod = modifier or Qt.KeyboardModifier.NoModifier
        self.qtbot.mouseMove(widget, point)
        self.qtbot.mousePress(widget, Qt.MouseButton.LeftButton, mod, point)
        self.qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, mod, point)
        self.qtbot.wait(10)


@pytest.fixture
def user(qtbot, viewer):
    """:class:`User` of the test's viewer."""
    return User(qtbot, viewer)


def outline_colors(layer) -> np.ndarray:
    """(K, 4) float: the RGBA colour of each component's outline in a contours image
    (``plugin.layers.outlines``), from the pixels no other outline shares; NaN for a
    component without such pixels."""
    o = layer.metadata["napari_caiman"]["outlines"]
    flat = np.asarray(layer.data).reshape(-1, 4).astype(np.float64) / 255
    own = np.bincount(o.pixel, minlength=len(flat))[o.pixel] == 1
    n = np.bincount(o.component[own], minlength=o.n_components).astype(np.float64)
    out = np.stack(
        [np.bincount(o.component[own], flat[o.pixel[own], c], o.n_components) for c in range(4)],
        axis=1,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return out / n[:, None]


@pytest.fixture
def outlines_rgba():
    """:func:`outline_colors`: each component's outline colour in a contours image."""
    return outline_colors


# --- the user's dialogs, answered as they appear -----------------------------------------


def answer_dialogs(qtbot, answers, timeout_ms: int = 10_000) -> list[str]:
    """Answer the next modal dialogs, in order, as a user does.

    ``answers`` are functions called with each dialog once it is the active modal
    widget (a ``QTimer`` polls for it, so a call that blocks in ``exec`` can be made
    after this one). Returns a list that collects each dialog's ``type: title``.
    """
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    seen: list[str] = []
    pending = list(answers)
    waited = [0]

    def poll() -> None:
        widget = QApplication.activeModalWidget()
        if widget is None or (seen and seen[-1] == f"{id(widget)}"):
            waited[0] += 20
            if waited[0] < timeout_ms:
                QTimer.singleShot(20, poll)
            return
        seen.append(f"{id(widget)}")
        seen.append(f"{type(widget).__name__}: {widget.windowTitle()}")
        pending.pop(0)(widget)
        if pending:
            waited[0] = 0
            QTimer.singleShot(20, poll)

    QTimer.singleShot(0, poll)
    return seen


def type_file_name(dialog, path) -> None:
    """In a Qt file dialog: type ``path`` into its file name box and press Return."""
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QLineEdit

    edit = dialog.findChild(QLineEdit, "fileNameEdit")
    edit.setText(str(path))
    QTest.keyClick(edit, Qt.Key.Key_Return)


def choose_napari_caiman(dialog) -> None:
    """In napari's "Choose reader" dialog: pick napari-caiman and press OK."""
    from qtpy.QtWidgets import QDialogButtonBox, QRadioButton

    (button,) = [b for b in dialog.findChildren(QRadioButton) if b.text() == "napari-caiman"]
    button.setChecked(True)
    dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok).click()


def press_button(text: str):
    """An answer for :func:`answer_dialogs`: click the dialog's button labelled ``text``."""

    def answer(dialog) -> None:
        from qtpy.QtWidgets import QAbstractButton

        (button,) = [
            b for b in dialog.findChildren(QAbstractButton) if b.text().replace("&", "") == text
        ]
        button.click()

    return answer


@pytest.fixture
def file_open(qtbot, viewer):
    """``file_open(path)``: File > Open as a user does it: napari's file dialog answered with
    ``path``, then its "Choose reader" dialog (napari's builtins also take .tif / .hdf5)
    answered with napari-caiman. Returns the dialogs seen; an exception napari lets out of
    the menu action reaches the test."""

    def open_file(path) -> list[str]:
        seen = answer_dialogs(qtbot, [lambda d: type_file_name(d, path), choose_napari_caiman])
        viewer.window._qt_viewer._open_files_dialog()
        qtbot.wait(20)
        return [s for s in seen if ":" in s]

    return open_file


@pytest.fixture
def dialogs(qtbot):
    """The dialog answers: ``dialogs.answer([...])`` (:func:`answer_dialogs`),
    ``dialogs.type_file_name``, ``dialogs.press(text)``."""
    from types import SimpleNamespace

    return SimpleNamespace(
        answer=lambda answers: answer_dialogs(qtbot, answers),
        type_file_name=type_file_name,
        press=press_button,
    )
