"""Backend choice and parameter presets in the three step widgets, in a real viewer."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from napari_caiman.engine.errors import InputError
from napari_caiman.engine.params import CaimanParams
from napari_caiman.plugin.widgets._backend import NO_ADAPTER
from napari_caiman.plugin.widgets._presets import PresetBar
from napari_caiman.plugin.widgets.cnmf_settings import CAIMAN_METHODS_INIT, CNMFSettings
from napari_caiman.plugin.widgets.motion_settings import MotionSettings

pytestmark = pytest.mark.gui

STEPS = {
    "motion": "Motion correction",
    "cnmf": "CNMF",
    "evaluation": "Evaluation / curation",
}


@pytest.fixture
def dock(viewer):
    """``dock(key)``: the step widget, docked the way napari's menu does it."""

    def make(key):
        _, widget = viewer.window.add_plugin_dock_widget("napari-caiman", STEPS[key])
        return widget

    return make


@pytest.fixture
def caiman(monkeypatch):
    """Set what ``caiman_status()`` answers: ``caiman(ok, message)``."""

    def answer(ok: bool, message: str) -> None:
        import napari_caiman.engine.backends as backends

        monkeypatch.setattr(backends, "caiman_status", lambda *a, **k: (ok, message))

    return answer


@pytest.fixture(autouse=True)
def _fresh_preset_folder(monkeypatch):
    monkeypatch.setattr(PresetBar, "last_dir", "")


def _movie(viewer, shape=(30, 40, 40), name="raw"):
    return viewer.add_image(np.random.default_rng(0).random(shape, np.float32), name=name)


# --- backend -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(STEPS))
def test_backend_choice_and_tooltips(viewer, dock, key, caiman):
    widget = dock(key)
    backend = widget.backend
    assert backend.value == "native" and backend.choices == ("native", "caiman")
    assert backend.message.native.isHidden()  # nothing to say about the native engine
    assert "progress" in backend.tooltip and "Cancel" in backend.tooltip
    assert "separate process" in backend.tooltip and "CNN" in backend.tooltip
    caiman(True, "CaImAn 1.12.1 at /opt/caiman (python 3.11)")
    backend.value = "caiman"
    assert not backend.message.native.isHidden() and backend.message.value.startswith(
        "CaImAn 1.12.1"
    )
    caiman(False, "CaImAn is not installed: pip install caiman")
    backend.value = "native"
    backend.value = "caiman"
    assert backend.message.value == "CaImAn is not installed: pip install caiman"


def test_no_caiman_adapter_in_this_version(viewer, dock, monkeypatch, errors):
    monkeypatch.setitem(sys.modules, "napari_caiman.engine.backends", None)  # import fails
    widget = dock("motion")
    widget.movie.value = _movie(viewer)
    widget.backend.value = "caiman"
    assert widget.backend.message.value == NO_ADAPTER
    widget.runner.run_button.native.click()
    assert not widget.runner.is_running and errors == [
        f"backend: {NO_ADAPTER} — choose backend 'native' to run this step here"
    ]


@pytest.mark.parametrize("key", list(STEPS))
def test_unavailable_caiman_stops_run_with_a_message(viewer, dock, key, caiman, errors):
    caiman(False, "CaImAn is not installed: pip install caiman")
    widget = dock(key)
    movie = _movie(viewer)
    if key == "evaluation":
        from napari_caiman.engine.cnmf import cnmf

        est = cnmf(movie.data, CaimanParams.from_dict({"K": 3, "gSig": (3, 3)}))
        widget.set_result(est, None, CaimanParams(), "raw", build_layers=True)
    widget.movie.value = movie
    widget.backend.value = "caiman"
    n_layers = len(viewer.layers)
    widget.runner.run_button.native.click()
    assert not widget.runner.is_running  # nothing started
    assert len(errors) == 1 and errors[0].startswith("backend: CaImAn is not installed")
    assert "Traceback" not in errors[0]
    assert len(viewer.layers) == n_layers


def test_backend_goes_into_the_parameters(viewer, dock, caiman, monkeypatch, errors, wait_done):
    """The engine receives params["backend"] (its dispatch is not tested here)."""
    import napari_caiman.engine.pipeline as pipeline

    caiman(True, "CaImAn 1.12.1")

    def fake_step(data, params, **kwargs):
        # runs where the step runs (a child process on Linux): it reports what it got
        raise InputError("backend", f"the engine got {params['backend']!r}")
        yield  # pragma: no cover - a generator, like the engine's

    monkeypatch.setattr(pipeline, "iter_motion_step", fake_step)
    widget = dock("motion")
    widget.movie.value = _movie(viewer)
    widget.backend.value = "caiman"
    assert widget.get_settings().backend == "caiman"
    assert widget.get_settings().to_params(2)["backend"] == "caiman"
    widget.runner.run_button.native.click()
    wait_done(widget)
    assert errors == ["backend: the engine got 'caiman'"], errors


def test_settings_round_trip_the_backend(viewer, dock, caiman):
    caiman(True, "CaImAn 1.12.1")
    motion, cnmf = dock("motion"), dock("cnmf")
    motion.set_settings(MotionSettings.defaults().replace(backend="caiman", pw_rigid=True))
    assert motion.backend.value == "caiman" and motion.get_settings().backend == "caiman"
    assert motion.get_settings().to_dict(2)["backend"] == "caiman"
    s = CNMFSettings.defaults().replace(backend="caiman", method_init="corr_pnr")
    cnmf.set_settings(s)  # the backend first, so corr_pnr is a choice
    assert cnmf.get_settings() == s
    assert cnmf.get_settings().to_params((40, 40))["backend"] == "caiman"
    # reset keeps the backend (a choice of engine, not a CaImAn parameter)
    cnmf.reset_defaults()
    assert cnmf.backend.value == "caiman" and cnmf.method_init.value == "greedy_roi"


def test_cnmf_init_methods_follow_the_backend(viewer, dock, caiman):
    caiman(True, "CaImAn 1.12.1")
    widget = dock("cnmf")
    assert widget.method_init.choices == ("greedy_roi",)
    widget.backend.value = "caiman"
    assert widget.method_init.choices == CAIMAN_METHODS_INIT
    widget.method_init.value = "corr_pnr"
    widget.backend.value = "native"  # the native engine has greedy_roi only
    assert widget.method_init.choices == ("greedy_roi",)
    assert widget.method_init.value == "greedy_roi"


# --- presets -------------------------------------------------------------------------------


def _save(widget, path):
    widget.presets.ask_save_path = lambda parent, caption, start: str(path)
    widget.presets.save_button.native.click()


def _load(widget, path):
    widget.presets.ask_open_path = lambda parent, caption, start: str(path)
    widget.presets.load_button.native.click()


def test_motion_preset_round_trip(viewer, dock, tmp_path, infos, errors):
    widget = dock("motion")
    _movie(viewer, (20, 3, 30, 30), name="volume")  # 3D: the z values are saved
    widget.movie.value = viewer.layers["volume"]
    changed = widget.get_settings().replace(
        max_shifts=(4, 5, 1),
        pw_rigid=True,
        strides=(24, 24, 2),
        niter_rig=2,
        border_nan="copy",
        kwargs="{'splits_rig': 7}",
    )
    widget.set_settings(changed)
    path = tmp_path / "motion.json"
    _save(widget, path)
    assert errors == [] and infos and "motion.json" in infos[-1]
    saved = json.loads(path.read_text())
    assert saved["max_shifts"] == [4, 5, 1] and saved["border_nan"] == "copy"
    assert saved["splits_rig"] == 7 and saved["backend"] == "native"
    assert "is3D" not in saved and "output" not in saved  # per movie / not a parameter
    assert CaimanParams.from_json(str(path))["strides"] == (24, 24, 2)
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically

    widget.reset_defaults()
    assert widget.get_settings() != changed
    _load(widget, path)
    assert errors == []
    assert widget.get_settings() == changed  # splits_rig back into kwargs
    report = widget.presets.last_report
    assert report.kwargs == ["splits_rig"] and report.unused == []
    assert "motion.json" in widget.runner.status.value


def test_a_preset_applies_to_every_step(viewer, dock, tmp_path, caiman, errors):
    """Each step takes the names it has; the rest is reported, not applied."""
    caiman(True, "CaImAn 1.12.1")
    path = tmp_path / "pipeline.json"
    path.write_text(
        json.dumps(
            {
                "max_shifts": [8, 8],
                "pw_rigid": True,
                "gSig": [3, 3],
                "K": 12,
                "method_init": "corr_pnr",
                "nIter": 3,
                "min_SNR": 3.5,
                "use_cnn": True,
                "backend": "caiman",
            }
        )
    )
    motion, cnmf, evaluation = dock("motion"), dock("cnmf"), dock("evaluation")
    for widget in (motion, cnmf, evaluation):
        _load(widget, path)
    assert errors == []
    assert motion.get_settings().max_shifts[:2] == (8, 8) and motion.pw_rigid.value
    assert motion.backend.value == "caiman" and motion.kwargs.value == ""
    assert sorted(motion.presets.last_report.unused) == [
        "K",
        "gSig",
        "method_init",
        "min_SNR",
        "nIter",
        "use_cnn",
    ]
    c = cnmf.get_settings()
    assert c.gSig[:2] == (3, 3) and c.K == 12 and c.backend == "caiman"
    assert c.method_init == "corr_pnr"  # backend applied first, so it is offered
    assert cnmf.kwargs.value == "{'nIter': 3}"
    assert evaluation.min_SNR.value == 3.5 and evaluation.backend.value == "caiman"
    assert evaluation.kwargs.value == "{'use_cnn': True}"


def test_cnmf_preset_fields_kwargs_and_3d_values(viewer, dock, tmp_path, errors):
    widget = dock("cnmf")
    _movie(viewer, (20, 4, 30, 30), name="volume")
    widget.movie.value = viewer.layers["volume"]
    widget.kwargs.value = "{'nIter': 4, 'K': 99, 'ssub_B': 3}"
    path = tmp_path / "cnmf.json"
    path.write_text(
        json.dumps(
            {
                "gSig": [4, 4, 2],
                "rf": None,  # no patches
                "gSiz": [11, 11],  # a 2D value: z stays
                "merge_thr": 0.7,
                "K": 7,  # the form's field wins over the old kwargs entry
                "decay_time": 5000.0,  # outside the field's range: kwargs keeps it exact
                "gSig_filt": [3, 3],  # a motion name: not used by CNMF
                "is3D": False,  # per movie: never taken from a preset
                "method_init": "sparse_nmf",  # not offered by the native backend: kwargs
            }
        )
    )
    before_z = widget.gSiz.value[2]
    _load(widget, path)
    assert errors == []
    s = widget.get_settings()
    assert s.gSig == (4, 4, 2) and s.rf == (0, 0, 0) and s.gSiz == (11, 11, before_z)
    assert s.merge_thr == 0.7 and s.K == 7 and s.method_init == "greedy_roi"
    kwargs = eval(widget.kwargs.value)  # noqa: S307 - the test reads its own literal
    assert kwargs == {"nIter": 4, "ssub_B": 3, "decay_time": 5000.0, "method_init": "sparse_nmf"}
    report = widget.presets.last_report
    assert sorted(report.unused) == ["gSig_filt", "is3D"]
    params = s.to_params((4, 30, 30))
    assert params["decay_time"] == 5000.0 and params["method_init"] == "sparse_nmf"


def test_evaluation_preset_and_slider_range(viewer, dock, tmp_path, errors):
    widget = dock("evaluation")
    path = tmp_path / "quality.json"
    path.write_text(json.dumps({"min_SNR": 30.0, "rval_thr": 0.6, "min_cnn_thr": 0.8}))
    _load(widget, path)
    assert errors == []
    assert widget.min_SNR.value == 30.0 and widget.min_SNR.max >= 30.0  # the slider widened
    assert widget.rval_thr.value == 0.6 and widget.kwargs.value == "{'min_cnn_thr': 0.8}"
    out = tmp_path / "quality_out"
    _save(widget, out)
    saved = json.loads((tmp_path / "quality_out.json").read_text())  # .json added
    assert saved["min_SNR"] == 30.0 and saved["min_cnn_thr"] == 0.8 and saved["backend"] == "native"


def test_bad_presets_are_explained_and_change_nothing(viewer, dock, tmp_path, errors):
    widget = dock("cnmf")
    before = widget.get_settings()
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"gsig": [4, 4], "K": 3}))
    _load(widget, typo)
    assert len(errors) == 1 and "typo.json" in errors[0] and "'gSig'" in errors[0], errors
    bad_value = tmp_path / "bad_value.json"
    bad_value.write_text(json.dumps({"merge_thr": 3.0}))
    _load(widget, bad_value)
    assert "bad_value.json" in errors[1] and "merge_thr" in errors[1], errors
    not_json = tmp_path / "notes.json"
    not_json.write_text("gSig = 4")
    _load(widget, not_json)
    assert "notes.json" in errors[2] and "JSON" in errors[2], errors
    a_list = tmp_path / "list.json"
    a_list.write_text("[1, 2]")
    _load(widget, a_list)
    assert "list.json" in errors[3], errors
    widget.kwargs.value = "{oops"
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"K": 3}))
    _load(widget, good)
    assert errors[4].startswith("kwargs: "), errors
    assert widget.get_settings() == before.replace(kwargs="{oops")  # nothing applied
    assert all("Traceback" not in e for e in errors)


def test_cancelled_dialogs_do_nothing(viewer, dock, tmp_path, errors, infos):
    widget = dock("motion")
    before = widget.get_settings()
    widget.presets.ask_open_path = lambda *a: ""
    widget.presets.ask_save_path = lambda *a: ""
    widget.presets.load_button.native.click()
    widget.presets.save_button.native.click()
    assert widget.get_settings() == before and errors == [] and infos == []
    assert list(tmp_path.iterdir()) == []


def test_save_preset_reports_bad_form_input(viewer, dock, tmp_path, errors):
    widget = dock("motion")
    widget.kwargs.value = "{'max_shift': 3}"
    _save(widget, tmp_path / "p.json")
    assert len(errors) == 1 and "max_shifts" in errors[0]
    assert not (tmp_path / "p.json").exists()


def test_cnmf_preset_without_a_movie(viewer, dock, tmp_path, errors):
    widget = dock("cnmf")
    widget.set_settings(widget.get_settings().replace(rf=(20, 20, 0), stride=(6, 6, 0), K=5))
    _save(widget, tmp_path / "patches.json")
    saved = json.loads((tmp_path / "patches.json").read_text())
    assert saved["rf"] == [20, 20] and saved["stride"] == [6, 6] and saved["K"] == 5
    assert saved["gSiz"] is None  # automatic stays automatic
    # rf 0 = "whole field of view" needs the movie's size
    widget.set_settings(widget.get_settings().replace(rf=(20, 0, 0)))
    _save(widget, tmp_path / "partial.json")
    assert len(errors) == 1 and errors[0].startswith("rf: ") and "movie" in errors[0]
    assert not (tmp_path / "partial.json").exists()
