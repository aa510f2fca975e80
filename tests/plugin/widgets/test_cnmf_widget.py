"""The CNMF dock widget, driven the way a user drives it."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_caiman.engine.synthetic import make_movie_2d, make_movie_3d
from napari_caiman.plugin.layers.cnmf import (
    ReconstructedMovie,
    ResidualMovie,
    features_table,
    labels_image,
)
from napari_caiman.plugin.widgets.cnmf import CNMFWidget
from napari_caiman.plugin.widgets.cnmf_settings import CNMFSettings

pytestmark = pytest.mark.gui

#: The layers a run adds; the footprints Labels and the denoised and residual movies only when
#: asked for (the Evaluation dock's Footprints / Denoised / Residual buttons)
SUFFIXES = ("correlation", "contours")


@pytest.fixture(scope="module")
def still_2d():
    """(200, 64, 64), 10 neurons, no motion (CNMF's input after correction)."""
    return make_movie_2d((200, 64, 64), n_neurons=10, snr=3.0, seed=3, return_flow=False)


@pytest.fixture(scope="module")
def still_3d():
    return make_movie_3d(
        (100, 6, 40, 40), n_neurons=5, snr=3.0, seed=2, return_flow=False, return_truth=False
    )


@pytest.fixture
def cnmf_widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-caiman", "CNMF")
    return widget


def _show_on_request(viewer, *kinds):
    """Dock the Evaluation dock (it takes the CNMF result) and click its layer buttons."""
    _, evaluation = viewer.window.add_plugin_dock_widget("napari-caiman", "Evaluation / curation")
    assert evaluation.session is not None
    for kind in kinds:
        getattr(evaluation, f"{kind}_button").native.click()
    return evaluation


def _run(widget, layer, wait_done, **changes):
    widget.movie.value = layer
    widget.set_settings(widget.get_settings().replace(**changes))
    widget.runner.run_button.native.click()
    wait_done(widget)


def _recovered(labels: np.ndarray, centers: np.ndarray) -> int:
    """How many true neuron centres carry a label."""
    idx = tuple(np.round(centers).astype(int).T)
    return int(np.count_nonzero(labels[idx]))


def test_dock_widget_from_manifest(viewer, cnmf_widget):
    assert isinstance(cnmf_widget, CNMFWidget)
    assert any(w is cnmf_widget for w in viewer.window.dock_widgets.values())
    assert cnmf_widget.movie.choices == ()
    assert cnmf_widget.seed.value is None
    assert cnmf_widget.get_settings() == CNMFSettings.defaults()
    assert not cnmf_widget.stride.enabled  # no patches by default


def test_2d_run_adds_layers_and_finds_the_neurons(
    qtbot, viewer, cnmf_widget, still_2d, wait_done, errors
):
    from qtpy.QtCore import QTimer

    raw = viewer.add_image(still_2d.movie, name="raw", scale=(1, 2, 2), translate=(0, 4, 6))
    assert cnmf_widget.movie.value is raw
    # the window keeps turning while the result arrives: a 0 ms timer fires between
    # every two layer adds (one layer per event-loop turn, none built on the main thread)
    ticks, added = [0], []
    timer = QTimer()
    timer.setInterval(0)
    timer.timeout.connect(lambda: ticks.__setitem__(0, ticks[0] + 1))
    viewer.layers.events.inserted.connect(lambda e: added.append(ticks[0]))
    timer.start()
    _run(cnmf_widget, raw, wait_done, K=12, gSig=(4, 4, 2), rf=(0, 0, 0))
    timer.stop()
    assert errors == []
    assert len(added) == len(SUFFIXES) and len(set(added)) == len(added), added

    est = cnmf_widget.last_result.estimates
    K = est.n_components
    assert 7 <= K <= 12, K
    assert cnmf_widget.last_params["K"] == 12
    assert cnmf_widget.result_label.value.startswith(f"{K} components in ")
    names = [layer.name for layer in viewer.layers]
    assert names == ["raw"] + [f"raw {s}" for s in SUFFIXES]

    assert not any(isinstance(layer, Labels) for layer in viewer.layers)  # no footprints layer
    labels = labels_image(est)  # what the footprints layer shows when the user asks for it
    assert labels.shape == (64, 64)
    assert set(np.unique(labels)) <= set(range(K + 1))
    assert _recovered(labels, still_2d.centers) >= 8

    contours = viewer.layers["raw contours"]  # one RGBA image of outlines, twice as fine
    assert isinstance(contours, Image) and contours.rgb
    assert contours.data.shape == (128, 128, 4) and tuple(contours.scale) == (1, 1)
    assert tuple(contours.translate) == (3.5, 5.5)  # pixel (0, 0) a quarter movie pixel up-left
    o = contours.metadata["napari_caiman"]["outlines"]
    assert sorted(set(o.component.tolist())) == list(range(K))
    # each found neuron is outlined around its centre: its outline's mean near a true centre
    ys, xs = np.unravel_index(o.pixel, (128, 128))
    centres = np.stack(
        [
            np.bincount(o.component, ys / 2 - 0.25) / np.bincount(o.component),
            np.bincount(o.component, xs / 2 - 0.25) / np.bincount(o.component),
        ],
        1,
    )
    true = np.asarray(still_2d.centers)[:, -2:]
    near = np.min(np.linalg.norm(centres[:, None] - true[None], axis=2), axis=1)
    assert np.sum(near < 2.0) >= 8
    assert {"size", "centroid_y", "centroid_x", "accepted"} <= set(features_table(est))

    assert viewer.layers["raw correlation"].data.shape == (64, 64)

    # the denoised and residual movies come on request (the Evaluation dock's buttons)
    assert "raw denoised" not in viewer.layers and "raw residual" not in viewer.layers
    _show_on_request(viewer, "denoised", "residual")
    assert errors == []
    names += ["raw denoised", "raw residual"]
    assert [layer.name for layer in viewer.layers] == names
    denoised = viewer.layers["raw denoised"]
    assert isinstance(denoised, Image) and isinstance(denoised.data, ReconstructedMovie)
    assert denoised.data.shape == still_2d.movie.shape and denoised.visible
    assert tuple(denoised.scale) == (1, 2, 2) and tuple(denoised.translate) == (0, 4, 6)
    # the model: footprints times traces plus the background, at a frame napari shows
    frame = (est.A @ est.C[:, 50] + est.b @ est.f[:, 50]).reshape(64, 64, order="F")
    np.testing.assert_allclose(denoised.data[50], frame, rtol=1e-4, atol=1e-3)
    residual = viewer.layers["raw residual"]
    assert isinstance(residual.data, ResidualMovie) and residual.visible
    # what napari shows at a frame: the movie minus the model
    np.testing.assert_allclose(
        residual.data[50], still_2d.movie[50] - denoised.data[50], rtol=1e-4, atol=1e-2
    )

    # running again updates the layers in place (no duplicates), the shown movies too
    _run(cnmf_widget, raw, wait_done, K=6)
    assert errors == []
    assert [layer.name for layer in viewer.layers] == names
    est = cnmf_widget.last_result.estimates
    o = viewer.layers["raw contours"].metadata["napari_caiman"]["outlines"]
    assert o.n_components == est.n_components
    assert viewer.layers["raw denoised"].data.estimates is est
    assert viewer.layers["raw residual"].data.estimates is est


def test_3d_movie_shows_z_fields_and_runs(
    qtbot, viewer, cnmf_widget, still_2d, still_3d, wait_done, errors
):
    flat = viewer.add_image(still_2d.movie, name="flat")
    vol = viewer.add_image(still_3d.movie, name="vol")
    cnmf_widget.movie.value = flat
    assert cnmf_widget.gSig.label == "gSig (y, x)"
    cnmf_widget.movie.value = vol
    assert cnmf_widget.n_spatial == 3
    assert cnmf_widget.gSig.label == "gSig (y, x, z)"
    assert cnmf_widget.rf.label == "rf (y, x, z; 0 = whole FOV)"
    assert not cnmf_widget.gSig.boxes[2].native.isHidden()

    _run(cnmf_widget, vol, wait_done, K=8, gSig=(4, 4, 2))
    assert errors == []
    est = cnmf_widget.last_result.estimates
    assert est.dims == (6, 40, 40) and est.n_components >= 1
    assert cnmf_widget.last_params["is3D"] is True
    assert "vol footprints" not in viewer.layers
    assert labels_image(est).shape == (6, 40, 40)
    assert _recovered(labels_image(est), still_3d.centers) >= 4
    contours = viewer.layers["vol contours"]
    assert contours.ndim == 3 and contours.data.shape == (6, 80, 80, 4)
    planes = np.flatnonzero(contours.data[..., 3].any(axis=(1, 2)))
    assert len(planes) >= 2  # outlined per plane
    _show_on_request(viewer, "denoised")
    assert errors == []
    assert viewer.layers["vol denoised"].data.shape == still_3d.movie.shape
    # the 4-D denoised movie renders one plane of one frame
    assert np.asarray(viewer.layers["vol denoised"].data[3, 2]).shape == (40, 40)


def test_seeded_run_from_painted_labels(qtbot, viewer, cnmf_widget, still_2d, wait_done, errors):
    raw = viewer.add_image(still_2d.movie, name="raw")
    painted = np.zeros((64, 64), np.int32)
    yy, xx = np.mgrid[:64, :64]
    chosen = [0, 3, 5]
    for value, k in zip((4, 9, 11), chosen, strict=True):
        cy, cx = still_2d.centers[k]
        painted[(yy - cy) ** 2 + (xx - cx) ** 2 <= 9] = value
    seeds = viewer.add_labels(painted, name="painted")
    cnmf_widget.movie.value = raw
    cnmf_widget.seed.value = seeds
    _run(cnmf_widget, raw, wait_done, gSig=(4, 4, 2))
    assert errors == []
    est = cnmf_widget.last_result.estimates
    assert est.n_components == 3
    assert cnmf_widget.last_seeds.tolist() == [4, 9, 11]
    assert cnmf_widget.result_label.value.startswith("3 components from 3 seeds")
    # each component is its seed's neuron: peak near the true centre
    for k, image in zip(chosen, est.footprints(), strict=True):
        peak = np.unravel_index(np.argmax(image), image.shape)
        assert np.hypot(*(np.asarray(peak) - still_2d.centers[k])) < 3
    assert seeds.data is painted  # the painted layer is left as it was


def test_bad_parameters_show_errors_and_add_nothing(
    qtbot, viewer, cnmf_widget, still_2d, wait_done, errors
):
    small = viewer.add_image(still_2d.movie[:, :20, :20].copy(), name="small")
    # caught by the engine, in the worker
    _run(cnmf_widget, small, wait_done, gSig=(15, 15, 2))
    assert len(errors) == 1 and errors[0].startswith("gSig: "), errors
    assert "Traceback" not in errors[0]
    # caught on the main thread, before any worker starts
    cnmf_widget.set_settings(cnmf_widget.get_settings().replace(gSig=(3, 3, 2), kwargs="{'K': 0}"))
    cnmf_widget.runner.run_button.native.click()
    assert not cnmf_widget.runner.is_running
    assert errors[1].startswith("K: "), errors
    # a seed layer that does not fit the movie
    cnmf_widget.set_settings(cnmf_widget.get_settings().replace(kwargs=""))
    cnmf_widget.seed.value = viewer.add_labels(np.ones((30, 30), np.int32), name="wrong")
    cnmf_widget.runner.run_button.native.click()
    assert errors[2].startswith("seed: "), errors

    assert [layer.name for layer in viewer.layers] == ["small", "wrong"]
    assert cnmf_widget.last_result is None
    assert cnmf_widget.runner.run_button.enabled


def test_cancel_stops_and_leaves_nothing(qtbot, viewer, cnmf_widget, still_2d, wait_done, errors):
    big = np.ascontiguousarray(np.tile(still_2d.movie, (15, 1, 1)))  # 3000 frames
    raw = viewer.add_image(big, name="big")
    cnmf_widget.movie.value = raw
    cnmf_widget.set_settings(cnmf_widget.get_settings().replace(K=12, gSig=(4, 4, 2)))
    cnmf_widget.runner.run_button.native.click()
    qtbot.waitUntil(lambda: cnmf_widget.runner.status.value != "starting…", timeout=20_000)
    assert cnmf_widget.runner.is_running
    cnmf_widget.runner.cancel_button.native.click()
    wait_done(cnmf_widget, timeout=5_000)
    assert cnmf_widget.runner.status.value == "cancelled"
    assert [layer.name for layer in viewer.layers] == ["big"]
    assert cnmf_widget.last_result is None
    assert errors == []


def test_reset_to_defaults_and_patch_fields(viewer, cnmf_widget):
    default = cnmf_widget.get_settings()
    cnmf_widget.set_settings(default.replace(K=7, rf=(20, 20, 0), kwargs="{'nIter': 3}"))
    assert cnmf_widget.stride.enabled
    params = cnmf_widget.get_settings().to_params((64, 80))
    assert params["rf"] == (20, 20) and params["stride"] is None and params["nIter"] == 3
    # 0 along one axis = the whole field of view along it
    params = cnmf_widget.get_settings().replace(rf=(20, 0, 0)).to_params((5, 64, 80))
    assert params["rf"] == (20, 80, 5)
    cnmf_widget.reset_button.native.click()
    assert cnmf_widget.get_settings() == default
    assert not cnmf_widget.stride.enabled


def test_motion_corrected_movie_is_the_default_and_reuses_its_summary(
    qtbot, viewer, cnmf_widget, motion_widget, movie_2d, wait_done, errors, monkeypatch
):
    raw = viewer.add_image(movie_2d.movie, name="raw")
    motion_widget.movie.value = raw
    motion_widget.runner.run_button.native.click()
    wait_done(motion_widget)
    corrected = viewer.layers["raw corrected"]
    assert cnmf_widget.movie.value is corrected
    from napari_caiman.plugin.widgets._state import viewer_sessions

    session = viewer_sessions(viewer).get(corrected.name)  # what the CNMF dock reads
    assert session.summary is motion_widget.last_step.summary

    import napari_caiman.engine.summary as summary_module

    def no_summary(*args, **kwargs):  # the motion step's summary is reused
        raise AssertionError("summary images recomputed")

    monkeypatch.setattr(summary_module, "iter_summary_images", no_summary)
    _run(cnmf_widget, corrected, wait_done, K=12, gSig=(4, 4, 2))
    assert errors == []
    assert cnmf_widget.last_result.summary is motion_widget.last_step.summary
    assert "raw corrected contours" in viewer.layers
    # the NaN border left by border_nan=True must not turn into components
    from napari_caiman.engine.cnmf import match_components

    m = match_components(cnmf_widget.last_result.estimates, movie_2d.footprints)
    assert m.recall >= 0.6, str(
        m
    )  # 80 frames: the motion-free movie itself gives 0.75 (was 0 before)
