"""The sessions a viewer's docks share (plugin/widgets/_state.py), without a viewer:
which session a layer reads, what a motion re-run reuses, which CNMF result is newest."""

from __future__ import annotations

import numpy as np
import pytest

from napari_caiman.engine.progress import run
from napari_caiman.engine.synthetic import make_movie_2d
from napari_caiman.plugin.widgets._state import ViewerSessions

PARAMS = {"gSig": (3, 3), "K": 6, "max_shifts": (4, 4)}


@pytest.fixture(scope="module")
def movie():
    return make_movie_2d(
        (80, 40, 40), n_neurons=5, snr=3.0, rigid_motion=2.0, seed=5, return_flow=False
    ).movie


def test_layers_find_their_sessions_and_the_newest_cnmf_result(movie):
    reg = ViewerSessions()
    added, cnmf_seen = [], []
    reg.added.connect(added.append)
    s = reg.for_motion("m", "m corrected", movie, PARAMS)
    assert added == [s] and s.name == "m corrected" and s.movie is movie
    s.events.cnmf.connect(lambda session: cnmf_seen.append(reg.newest))
    run(s.iter_motion())
    # the corrected layer (same shape as the corrected movie) reads the motion session
    layer_data = np.asarray(s.corrected)  # what a layer may hold: not the same object
    assert reg.for_layer("m corrected", layer_data) is s
    assert reg.motion_of("m corrected", layer_data) is s.motion
    assert reg.input_layer("m corrected") == "m"
    # ... but not a layer of that name holding something else, nor the raw layer
    assert (
        reg.motion_of("m corrected", layer_data[:10]) is None and reg.motion_of("m", movie) is None
    )
    raw = reg.for_layer("m", movie, PARAMS)
    assert raw is not s and raw.motion is None and reg.for_layer("m", movie) is raw
    assert reg.input_layer("m") is None and added == [s, raw]
    # the newest CNMF result, set before the session's other listeners hear of it
    run(s.iter_cnmf())
    assert reg.newest is s and cnmf_seen == [s]
    run(raw.iter_cnmf())
    assert reg.newest is raw and sorted(x.name for x in reg) == ["m", "m corrected"]
    # motion again on the same data reuses the session (what followed is dropped); other data: a new one
    assert reg.for_motion("m", "m corrected", movie, PARAMS) is s
    run(s.iter_motion())
    assert s.estimates is None and reg.get("m corrected") is s
    other = reg.for_motion("m", "m corrected", movie[:60], PARAMS)
    assert other is not s and reg.get("m corrected") is other and other.motion is None
    # a removed layer's session goes
    reg.forget("m corrected")
    assert (
        reg.get("m corrected") is None
        and reg.input_layer("m corrected") is None
        and reg.get("m") is raw
    )


def test_the_step_docks_forms_are_published_read_and_withdrawn():
    from napari_caiman.engine.errors import InputError

    reg = ViewerSessions()

    class Form:  # what a dock publishes: a bound method of its widget
        def __init__(self, K):
            self.K = K

        def values(self, frame_shape):
            if self.K < 1:
                raise InputError("K", "must be at least 1")
            return {"K": self.K, "dims": frame_shape}

    assert reg.form_steps() == [] and reg.form_values("cnmf", (8, 8)) is None
    form = Form(4)
    reg.publish_form("cnmf", form.values)
    reg.publish_form("motion", lambda shape: {"max_shifts": (3, 3)})
    assert reg.form_steps() == ["motion", "cnmf"]
    assert reg.form_values("cnmf", [40, 48]) == {"K": 4, "dims": (40, 48)}
    form.K = 7  # read when asked, not copied when published
    assert reg.form_values("cnmf", (8, 8))["K"] == 7
    form.K = 0
    with pytest.raises(InputError, match="K"):
        reg.form_values("cnmf", (8, 8))
    # withdrawing another form of the step leaves this one; withdrawing it removes it
    reg.withdraw_form("cnmf", Form(4).values)
    assert reg.form_steps() == ["motion", "cnmf"]
    reg.withdraw_form("cnmf", form.values)
    assert reg.form_steps() == ["motion"] and reg.form_values("cnmf", (8, 8)) is None
    # a dock's widget that is gone takes its form with it (held weakly)
    reg.publish_form("evaluate", Form(2).values)
    assert reg.form_steps() == ["motion"]
    with pytest.raises(ValueError, match="step"):
        reg.publish_form("curate", form.values)
