"""The headless session (app/session.py): the steps chained on one movie, against the truth."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_caiman.app.session import Session
from napari_caiman.engine.border import NanFilled, movie_for_cnmf
from napari_caiman.engine.cnmf import match_components
from napari_caiman.engine.curation import Curation
from napari_caiman.engine.errors import InputError, StateError
from napari_caiman.engine.progress import run
from napari_caiman.engine.results import MotionRecord, SummaryRecord
from napari_caiman.engine.synthetic import make_movie_2d, make_movie_3d

PARAMS = {"gSig": (3, 3), "K": 14, "max_shifts": (6, 6)}


@pytest.fixture(scope="module")
def moving():
    """(200, 64, 64): 10 neurons, ~3 px rigid motion."""
    return make_movie_2d(
        (200, 64, 64), n_neurons=10, snr=3.0, rigid_motion=3.0, seed=3, return_flow=False
    )


@pytest.fixture(scope="module")
def chained(moving):
    s = Session(moving.movie, PARAMS)
    seen: list[str] = []
    for name in ("motion", "cnmf", "evaluated", "curation", "params"):
        getattr(s.events, name).connect(lambda session, name=name: seen.append(name))
    run(s.iter_motion())
    run(s.iter_cnmf())
    run(s.iter_evaluate())
    return s, seen


def test_steps_chain_on_the_corrected_movie_with_the_border_rule_once(chained, moving):
    s, seen = chained
    assert seen == ["motion", "cnmf", "evaluated"]
    # motion recovered (the correction is minus the displacement; the template's offset is arbitrary)
    err = s.motion.shifts_rig + moving.shifts
    err -= err.mean(axis=0)
    assert np.sqrt((err**2).mean()) < 0.5
    # CNMF read the corrected movie with the motion border zeroed, as movie_for_cnmf gives it
    m = s.cnmf_movie()
    assert m is s.cnmf_movie()  # made once
    assert isinstance(m, NanFilled) and m.movie is s.motion.corrected
    assert m.border == movie_for_cnmf(s.motion.corrected, motion=s.motion).border
    # the neurons are found and the evaluation keeps them
    acc = s.accepted()
    r = match_components(s.estimates, moving.footprints, true_traces=moving.traces)
    assert r.recall >= 0.8, r
    assert len(acc) >= 0.7 * moving.footprints.shape[0]


def test_rethreshold_refit_save_and_export(chained, tmp_path):
    from napari_caiman.io.results_file import load_results

    s, _ = chained
    before = s.accepted()
    strict = s.rethreshold({"min_SNR": 50.0, "rval_thr": 1.0})
    assert len(strict) < len(before) and s.params["min_SNR"] == 50.0
    s.rethreshold({"min_SNR": 2.5, "rval_thr": 0.8})
    assert np.array_equal(s.accepted(), before)
    # a manual rejection: the refit is seeded with the other accepted footprints only
    out = run(_refit(s, before[0]))
    assert out.estimates.A.shape[1] <= len(before) - 1
    assert s.metrics is None and s.curation is not None
    assert s.curation.n_components == s.estimates.A.shape[1]
    run(s.iter_evaluate())
    path = s.save(tmp_path / "r.hdf5")
    back = load_results(path)
    assert np.array_equal(back.accepted(), s.accepted())
    assert (
        back.params["gSig"] == (3, 3)
        and back.motion["shifts_rig"].shape == s.motion.shifts_rig.shape
    )
    # typed parts (attributes), still readable by name as the file layout's dicts were
    assert isinstance(back.motion, MotionRecord) and isinstance(back.summary, SummaryRecord)
    assert np.allclose(back.motion.shifts_rig, s.motion.shifts_rig) and back.summary.corr.shape == (
        64,
        64,
    )
    assert (
        set(back.summary) == {"mean", "max", "std", "corr"} and back.motion.corrected_path is None
    )
    csv = tmp_path / "c.csv"
    s.export(csv=csv)
    assert len(csv.read_text().splitlines()[0].split(",")) == len(s.accepted()) + 1


def _refit(s, rejected):
    s.set_curation(Curation.empty(s.estimates.A.shape[1]).reject(rejected))
    return s.iter_refit()


def test_motion_again_drops_what_followed_and_bad_states_say_so(moving):
    s = Session(moving.movie[:60], PARAMS)
    with pytest.raises(StateError):
        run(s.iter_evaluate())
    run(s.iter_motion())
    run(s.iter_cnmf())
    assert s.estimates is not None
    run(s.iter_motion())
    assert s.estimates is None and s.metrics is None
    with pytest.raises(StateError):
        s.rethreshold()
    with pytest.raises(InputError) as e:
        Session(moving.movie, {"gSig": (40, 40)}).resolved()
    assert e.value.argument == "gSig"


def test_a_volume_gets_the_planes_defaults_and_a_file_session(tmp_path):
    vol = make_movie_3d((40, 6, 40, 40), n_neurons=4, seed=2, return_flow=False, return_truth=False)
    path = tmp_path / "v.tif"
    tifffile.imwrite(path, vol.movie.astype(np.float32))
    s = Session.open(path, {"gSig": (3, 3)})
    assert s.params["gSig"] == (3, 3, 2) and s.params["max_shifts"] == (6, 6, 2)
    assert s.resolved(["motion"]).motion.max_shifts == (2, 6, 6)
    run(s.iter_motion())
    assert s.motion.shifts_rig.shape == (40, 3) and np.abs(s.motion.shifts_rig[:, 2]).max() <= 2
