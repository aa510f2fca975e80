import pytest

pytestmark = pytest.mark.gui


def test_demo_viewer_docks_every_step(qtbot):
    from napari_caiman.app.demo import DEMO_WIDGETS, open_demo_viewer

    viewer = open_demo_viewer((30, 64, 64), run=False)
    try:
        assert "demo movie" in viewer.layers
        assert tuple(viewer.dims.axis_labels) == ("t", "y", "x")  # not "-3"
        docked = " ".join(viewer.window.dock_widgets)
        for name in DEMO_WIDGETS:
            assert name in docked, (name, docked)
    finally:
        viewer.close()
