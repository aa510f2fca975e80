"""Napari's once-per-process first-layer costs are paid in idle turns when a step dock opens."""

from __future__ import annotations

import weakref

import numpy as np
import pytest
from vispy.visuals.line import dash_atlas

from napari_caiman.plugin.widgets import _warmup

pytestmark = pytest.mark.gui


@pytest.fixture
def fresh_process(monkeypatch):
    """As in a new napari process: nothing warmed up yet."""
    monkeypatch.setattr(_warmup, "_DONE", set())
    monkeypatch.setattr(_warmup, "_GLYPHS", weakref.WeakSet())
    dash_atlas._make_pattern.cache_clear()


def _glyphs(viewer) -> str:
    fonts = viewer.window._qt_viewer.canvas._font_info.font_manager._fonts
    return "".join(sorted("".join(f._glyphs) for f in fonts.values()))


def test_opening_the_cnmf_dock_warms_up_without_leaving_a_trace(
    make_napari_viewer, qtbot, fresh_process
):
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((5, 32, 32), np.float32), name="movie")
    qtbot.wait(50)
    assert dash_atlas._make_pattern.cache_info().currsize == 0
    assert _glyphs(viewer) == ""
    viewer.window.add_plugin_dock_widget("napari-caiman", "CNMF")
    qtbot.waitUntil(lambda: not _warmup._TIMERS, timeout=30_000)
    # vispy's dash patterns (every Labels layer's polygon overlay) are cached
    assert dash_atlas._make_pattern.cache_info().currsize >= 13
    # the canvas has drawn text once: its font's probe glyphs are in the atlas
    assert len(_glyphs(viewer)) >= 5
    # and nothing shows: the text overlay is back as it was, no layer was added
    assert not viewer.canvas.overlays["text"].visible and viewer.canvas.overlays["text"].text == ""
    assert viewer.canvas.overlays["text"].opacity == 1 and viewer.canvas.overlays["text"].box
    assert [layer.name for layer in viewer.layers] == ["movie"]
    # a later Labels layer takes the cached patterns (no new pattern built)
    misses = dash_atlas._make_pattern.cache_info().misses
    viewer.add_labels(np.zeros((32, 32), np.uint16), name="labels")
    qtbot.wait(50)
    assert dash_atlas._make_pattern.cache_info().misses == misses


def test_the_users_own_text_overlay_is_left_alone(make_napari_viewer, qtbot, fresh_process):
    viewer = make_napari_viewer(show=True)
    viewer.canvas.overlays["text"].text = "session 3"
    viewer.window.add_plugin_dock_widget("napari-caiman", "Motion correction")
    qtbot.waitUntil(lambda: not _warmup._TIMERS, timeout=30_000)
    assert (
        viewer.canvas.overlays["text"].text == "session 3"
        and not viewer.canvas.overlays["text"].visible
    )
    # the process-wide part still ran
    assert dash_atlas._make_pattern.cache_info().currsize >= 13
