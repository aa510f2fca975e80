"""The curation model without a viewer: thresholds, decisions, selection, edits, files.

One small synthetic movie is fitted and evaluated once (module fixture); each
test curates a copy of the result through
:class:`napari_caiman.app.curation_session.CurationSession`, as the
Evaluation dock does, and checks the numbers against the engine's own
functions and the ground truth.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from napari_caiman.app.curation_session import CurationSession
from napari_caiman.engine.cnmf import cnmf
from napari_caiman.engine.curation import load_curation_sidecar
from napari_caiman.engine.errors import InputError
from napari_caiman.engine.evaluation import apply_thresholds
from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.pipeline import iter_evaluate_step
from napari_caiman.engine.resolve import thresholds
from napari_caiman.engine.summary import summary_images
from napari_caiman.engine.synthetic import make_movie_2d
from napari_caiman.io.results_file import load_results
from napari_caiman.plugin.layers import evaluation as ev
from napari_caiman.plugin.layers.cnmf import closed_paths, contours


def _drain(gen):
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


@pytest.fixture(scope="module")
def evaluated():
    """(200, 48, 48) movie with 8 neurons, its CNMF estimates, summary, params, evaluation."""
    m = make_movie_2d((200, 48, 48), n_neurons=8, seed=3, return_flow=False)
    params = CaimanParams.from_dict({"K": 10, "gSig": (3, 3), "fr": 30.0})
    est = cnmf(m.movie, params)
    step = _drain(iter_evaluate_step(m.movie, est, params))
    return m, est, summary_images(m.movie), params, step


def _session(evaluated, **kw):
    m, est, summary, params, step = evaluated
    s = CurationSession(
        copy.deepcopy(est),
        summary,
        params.copy(),
        "raw",
        metrics=copy.deepcopy(step.metrics),
        F_dff=np.array(step.F_dff),
        **kw,
    )
    th = thresholds(params)  # the dock's: its sliders and the CNN terms
    s.update(
        {
            k: v
            for k, v in th.items()
            if k not in ("accept_anatomy", "min_classifier_prob", "min_size", "max_size")
        }
    )
    return s


def test_thresholds_and_decisions_make_the_accepted_set(evaluated):
    s = _session(evaluated)
    K = s.n_components
    assert K >= 4
    good, _ = apply_thresholds(s.metrics, **s.thresholds)
    np.testing.assert_array_equal(np.flatnonzero(s.accepted), good)
    # a stricter SNR threshold rejects more, never fewer
    strict = dict(s.thresholds, min_SNR=float(np.median(s.metrics.SNR_comp)), rval_thr=1.0)
    n_before = int(s.accepted.sum())
    s.update(strict)
    assert s.accepted.sum() <= n_before
    assert s.accepted.sum() == np.sum(s.threshold_accepted())
    # a decision by hand wins over the thresholds, and stays when they move
    k_rej = int(np.flatnonzero(~s.accepted)[0]) if (~s.accepted).any() else 0
    s.select(k_rej)
    assert s.decide("accept") and s.accepted[k_rej]
    s.update(dict(strict, min_SNR=1e3))
    assert s.accepted[k_rej] and s.accepted.sum() == 1
    assert s.has_unsaved_curation and "1 decision by hand" in s.unsaved_text()
    assert s.describe().startswith(f"#{k_rej}: SNR {s.metrics.SNR_comp[k_rej]:.2f}")
    assert "(by hand)" in s.describe()
    s.decide("clear")
    assert not s.accepted[k_rej] and not s.has_unsaved_curation
    assert not s.decide("accept", idx=[])  # nothing to decide


def test_selection_picks_and_steps_in_the_tables_order(evaluated):
    s = _session(evaluated)
    K = s.n_components
    s.select(1)
    s.select(2, add=True)
    s.select(1, add=True)  # picked again: moves to the end, not twice
    assert s.picked == [2, 1] and s.selected == 1
    with pytest.raises(InputError, match="component"):
        s.select(K)
    order = np.argsort(-s.metrics.SNR_comp)
    rank = np.empty(K, np.int64)
    rank[order] = np.arange(K)
    s.select(int(order[-1]))
    assert s.next_component(1, order, rank) == int(order[0])  # wraps around
    assert s.next_component(-1, order, rank) == int(order[-2])
    assert s.next_component(1) == (int(order[-1]) + 1) % K  # no table: index order
    traces = s.traces(int(order[0]))
    np.testing.assert_allclose(traces["raw"], s.estimates.C[order[0]] + s.estimates.YrA[order[0]])
    s.select(None)
    assert s.selected is None and s.picked == []


def test_merge_and_delete_keep_side_data_aligned(evaluated):
    s = _session(evaluated)
    K = s.n_components
    r_before = s.metrics.r_values.copy()
    s.select(0)
    s.select(1, add=True)
    s.select(3)
    s.decide("reject")  # component 3 by hand: it must follow the edit
    s.select(0)
    s.select(1, add=True)
    new = s.merge_picked()
    assert s.n_components == K - 1 and s.unsaved_edits
    assert np.isfinite(s.metrics.SNR_comp[new]) and np.isnan(s.metrics.r_values[new])
    assert s.selected is None and s.picked == []
    assert new == 0  # the merged component takes the lowest index; the others move up one
    np.testing.assert_allclose(s.metrics.r_values[1:], r_before[2:])
    assert s.curation.manual[2] == -1 and not s.accepted[2]  # old 3, still rejected by hand
    assert s.F_dff.shape == (K - 1, s.estimates.n_frames)
    assert len(s.accepted) == K - 1
    s.select(2)
    s.delete_picked()
    assert s.n_components == K - 2 and not np.any(s.curation.manual)
    with pytest.raises(InputError, match="pick"):
        s.delete_picked()


def test_an_edit_keeps_the_elongation_test(evaluated):
    """Component edits rebuild the shape metrics with the elongation: a streak stays rejected.

    (The rebuild once left ``elongation`` out, so ``max_elongation`` silently switched off.)
    """
    from types import SimpleNamespace

    from napari_caiman.engine.cnmf import images_to_pixels
    from napari_caiman.engine.evaluation import compute_metrics
    from napari_caiman.engine.shapes import shape_metrics

    m, est, summary, params, step = evaluated
    est = copy.deepcopy(est)
    acc = apply_thresholds(step.metrics, **thresholds(params))[0]
    k = int(acc[np.argmax(step.metrics.SNR_comp[acc])])  # the strongest accepted component
    cy, cx = np.unravel_index(np.argmax(est.footprints([k])[0]), est.dims)
    cy, cx = int(np.clip(cy, 1, est.dims[0] - 2)), int(np.clip(cx, 8, est.dims[1] - 9))
    bar = np.zeros(est.dims)
    bar[cy - 1 : cy + 2, cx - 8 : cx + 9] = 1.0  # 3 x 17 pixels through its centre: a streak
    A = est.A.tolil()
    A[:, k] = images_to_pixels(bar[None])
    est.A = A.tocsc()
    met = compute_metrics(m.movie, est, params)
    assert met.elongation[k] > 2.5 and met.solidity[k] == 1 and met.n_pieces[k] == 1
    th = thresholds(params)
    assert k not in apply_thresholds(met, **th)[0]
    assert (
        k in apply_thresholds(met, **{**th, "max_elongation": None})[0]
    )  # rejected for its length
    s = _session((m, est, summary, params, SimpleNamespace(metrics=met, F_dff=step.F_dff)))
    assert not s.accepted[k]
    other = next(j for j in range(s.n_components) if j != k)
    s.select(other)
    s.delete_picked()  # an edit: the shape metrics are rebuilt from the edited footprints
    k2 = k - (other < k)
    assert not s.accepted[k2]  # the elongation test still rejects the streak after the edit
    rebuilt = shape_metrics(s.estimates.A, s.estimates.dims, (3, 3))
    np.testing.assert_allclose(s.metrics.elongation, rebuilt.elongation)
    np.testing.assert_array_equal(s.metrics.area_px, rebuilt.area_px)


def test_save_autosave_reload_and_export(evaluated, tmp_path):
    s = _session(evaluated)
    assert s.autosave() is None  # no file yet
    path = tmp_path / "res.hdf5"
    s.select(2)
    s.decide("reject")
    out = s.save(path, s.params)
    assert out == path and s.path == path and not s.unsaved_edits
    s.select(0)
    s.decide("accept")
    side = s.autosave()
    assert side is not None and load_curation_sidecar(path).manual[0] == 1
    # the file holds the thresholds' split; the newer sidecar the later decision
    back = CurationSession.from_results(load_results(path), path)
    assert back.name == "res" and back.n_components == s.n_components
    np.testing.assert_array_equal(back.curation.manual, s.curation.manual)
    np.testing.assert_allclose(back.metrics.SNR_comp, s.metrics.SNR_comp, rtol=1e-6)
    back.update(s.thresholds)
    np.testing.assert_array_equal(back.accepted, s.accepted)
    csv = s.export("csv", tmp_path / "acc.csv")
    lines = csv.read_text().strip().splitlines()
    assert len(lines) >= int(s.accepted.sum())  # a header + one row (or column) per accepted
    with pytest.raises(InputError, match="kind"):
        s.export("xls", tmp_path / "x.xls")
    assert s.default_save_path(tmp_path / "movie.tif") == tmp_path / "raw.hdf5"


def test_refit_seeds_and_taking_the_refit(evaluated):
    s = _session(evaluated)
    s.select(int(np.flatnonzero(s.accepted)[0]))
    s.decide("reject")
    Ain = s.refit_seeds()
    assert Ain.shape == (s.estimates.A.shape[0], int(s.accepted.sum()))
    refit = copy.deepcopy(s.estimates)
    k = s.selected
    s.take_refit(refit)  # the same footprints: the decision follows its footprint
    assert s.curation.manual[k] == -1 and s.metrics is None and s.unsaved_edits
    assert s.accepted.all() or s.accepted.sum() == s.n_components - 1


def test_a_click_finds_the_component_under_it_and_the_outline_is_its_contour(evaluated):
    m, est, *_ = evaluated
    lookup = ev.footprint_lookup(est.A)
    dims = est.dims
    for k in range(est.n_components):
        col = est.A[:, k].toarray().ravel()
        y, x = np.unravel_index(int(np.argmax(col)), dims, order="F")
        # at a component's peak pixel, and within half a pixel of it, the click finds it
        assert ev.component_at_pixel(lookup, dims, (y, x)) == k
        assert ev.component_at_pixel(lookup, dims, (y + 0.4, x - 0.4)) == k
    assert ev.component_at_pixel(lookup, dims, (-1, 0)) is None
    assert ev.component_at_pixel(lookup, dims, (dims[0], 0)) is None
    empty = np.flatnonzero(np.asarray(est.A.sum(axis=1)).ravel() == 0)
    if len(empty):
        y, x = np.unravel_index(int(empty[0]), dims, order="F")
        assert ev.component_at_pixel(lookup, dims, (y, x)) is None
    polys, owner = contours(est)
    paths = closed_paths(polys)
    assert all(
        np.array_equal(p[0], p[-1]) and len(p) == len(q) + 1
        for p, q in zip(paths, polys, strict=True)
    )
    seg = ev.outline_segments(paths[:2], 2)
    assert seg.shape == (len(polys[0]) + len(polys[1]), 2, 2)
    # the segments walk the contour: start + step is the next vertex, the last returns to the first
    np.testing.assert_allclose(
        seg[: len(polys[0]), 0] + seg[: len(polys[0]), 1], np.roll(polys[0], -1, 0), atol=1e-5
    )
    assert ev.outline_segments([], 3).shape == (0, 2, 3)
