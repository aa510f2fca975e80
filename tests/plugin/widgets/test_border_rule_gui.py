"""The motion-border rule on the widget path: motion correction (NaN borders),
CNMF, then the Evaluation dock's Evaluate and Refit read the corrected movie
as the engine does (engine.pipeline.movie_for_cnmf with the motion step)."""

from __future__ import annotations

import numpy as np
import pytest

import napari_caiman.engine.pipeline as pipeline
from napari_caiman.engine.pipeline import iter_evaluate_step, movie_for_cnmf
from napari_caiman.engine.progress import run

pytestmark = pytest.mark.gui


def test_evaluate_and_refit_use_the_motion_border(
    qtbot, viewer, motion_widget, movie_2d, wait_done, errors, monkeypatch, tmp_path
):
    raw = viewer.add_image(movie_2d.movie, name="raw")
    motion_widget.movie.value = raw
    motion_widget.runner.run_button.native.click()
    wait_done(motion_widget)
    corrected = viewer.layers["raw corrected"]
    assert np.isnan(np.asarray(corrected.data)).any()  # border_nan=True
    step = motion_widget.last_step
    _, cnmf_w = viewer.window.add_plugin_dock_widget("napari-caiman", "CNMF")
    cnmf_w.movie.value = corrected
    cnmf_w.set_settings(cnmf_w.get_settings().replace(K=12, gSig=(4, 4, 2)))
    cnmf_w.runner.run_button.native.click()
    wait_done(cnmf_w)
    _, ev = viewer.window.add_plugin_dock_widget("napari-caiman", "Evaluation / curation")
    ev.confirm = lambda text: True
    ev.take_cnmf_result()
    ev.movie.value = viewer.layers["raw corrected"]
    real = pipeline.movie_for_cnmf
    log = tmp_path / "borders.txt"  # the step may run in a child process: the spy writes a file

    def spy(movie, **kw):
        out = real(movie, **kw)
        border = getattr(out, "border", None)
        with open(log, "a") as f:
            f.write(f"{None if border is None else tuple(int(b) for b in border)!r}\n")
        return out

    def seen():
        import ast

        return (
            [ast.literal_eval(line) for line in log.read_text().splitlines()]
            if log.exists()
            else []
        )

    monkeypatch.setattr(pipeline, "movie_for_cnmf", spy)
    ev.runner.run_button.native.click()
    qtbot.waitUntil(lambda: not ev.runner.is_running, timeout=60_000)
    assert ev.session.metrics is not None, ev.runner.status.value
    # the same numbers as the engine's own path with the motion step's border
    want_border = movie_for_cnmf(corrected.data, motion=step.motion).border
    assert seen() and seen()[0] == tuple(want_border) and max(want_border) > 0
    params = ev._params()
    expect = run(
        iter_evaluate_step(
            corrected.data,
            cnmf_w.last_result.estimates.__class__(**cnmf_w.last_result.estimates.__dict__),
            params,
            motion=step.motion,
        )
    )
    np.testing.assert_allclose(ev.session.metrics.r_values, expect.metrics.r_values, atol=1e-6)
    np.testing.assert_allclose(ev.session.metrics.SNR_comp, expect.metrics.SNR_comp, rtol=1e-6)
    # Refit with seeds goes through the same rule
    log.unlink()
    ev.refit()
    qtbot.waitUntil(lambda: not ev.refit_runner.is_running, timeout=60_000)
    qtbot.waitUntil(
        lambda: not ev.runner.is_running, timeout=60_000
    )  # the refit result is evaluated next
    assert seen() and all(b == tuple(want_border) for b in seen())
    assert errors == []
