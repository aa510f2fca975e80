"""Steps run in a forked child process (widgets._process): same progress, result
and errors as in a thread; cancel stops the child and its temporary files go."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from napari_caiman.engine.errors import InputError
from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.pipeline import iter_motion_step
from napari_caiman.engine.progress import Progress
from napari_caiman.engine.progress import run as drive
from napari_caiman.engine.synthetic import make_movie_2d
from napari_caiman.plugin.widgets._process import (
    STOP_TIMEOUT_S,
    iter_in_process,
    process_available,
)

pytestmark = pytest.mark.skipif(
    not process_available(), reason="steps run in a process on Linux only"
)


@pytest.fixture(scope="module")
def moving():
    return make_movie_2d((80, 64, 64), n_neurons=8, rigid_motion=3.0, seed=3, return_flow=False)


def wait_gone(pid: int, timeout: float = STOP_TIMEOUT_S + 1.0) -> float:
    """Seconds until process ``pid`` is gone and reaped (fails after ``timeout``)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return time.perf_counter() - t0
        time.sleep(0.02)
    raise AssertionError(f"process {pid} still there {timeout:.0f} s after Cancel")


def _collect(gen):
    reports = []
    try:
        while True:
            reports.append(next(gen))
    except StopIteration as stop:
        return reports, stop.value


def test_motion_in_a_child_streams_progress_and_returns_the_same_shifts(moving):
    params = CaimanParams.from_dict({"max_shifts": (6, 6)})
    reports, step = _collect(iter_in_process(lambda: iter_motion_step(moving.movie, params)))
    here = drive(iter_motion_step(moving.movie, params))
    stages = {r.stage for r in reports if isinstance(r, Progress)}
    assert len(stages) >= 2, stages  # the engine's reports, as in a thread
    np.testing.assert_allclose(step.motion.shifts_rig, here.motion.shifts_rig, atol=1e-4)
    np.testing.assert_allclose(step.motion.corrected, here.motion.corrected, atol=1e-4)
    # and it registered the known motion (the truth of the synthetic movie)
    err = step.motion.shifts_rig + moving.shifts  # correction = -displacement
    err -= err.mean(axis=0)  # the template's own offset is arbitrary
    assert np.sqrt((err**2).mean()) < 0.5


def test_a_file_backed_result_comes_back_as_the_same_file(tmp_path, moving):
    out = tmp_path / "corrected.tif"
    params = CaimanParams.from_dict({"max_shifts": (6, 6)})
    _, step = _collect(iter_in_process(lambda: iter_motion_step(moving.movie, params, out=out)))
    corrected = step.motion.corrected
    assert isinstance(corrected, np.memmap) and os.path.samefile(corrected.filename, out)
    here = drive(iter_motion_step(moving.movie, params))
    np.testing.assert_allclose(np.asarray(corrected), here.motion.corrected, atol=1e-4)


def test_errors_come_back_as_the_same_exception():
    def bad():
        yield Progress("checking", 0, 1)
        raise InputError("gSig", "must be positive, got -1")

    def broken():
        yield Progress("working", 0, 1)
        return 1 / 0

    with pytest.raises(InputError) as info:
        _collect(iter_in_process(bad))
    assert info.value.argument == "gSig" and info.value.message == "must be positive, got -1"
    with pytest.raises(ZeroDivisionError):
        _collect(iter_in_process(broken))


def test_closing_stops_the_child_and_its_finally_runs(tmp_path):
    marker = tmp_path / "partial.tmp"

    def slow():
        marker.write_text("x")
        try:
            for i in range(10_000):
                time.sleep(0.01)
                yield Progress("working", i, 10_000)
        finally:
            marker.unlink()  # what atomic_path does with a temporary file

    gen = iter_in_process(slow)
    next(gen)
    while not marker.exists():
        next(gen)
    import multiprocessing as mp

    (child,) = mp.active_children()
    pid = child.pid
    t0 = time.perf_counter()
    gen.close()
    took = time.perf_counter() - t0
    wait_gone(pid)
    assert took < 1.0, took
    assert not marker.exists()


def test_cancel_stops_a_child_between_two_yields(tmp_path, caplog):
    """A step that computes for long without yielding (CNMF's initialization) stops at
    once: the SIGTERM raises inside it, its finally runs, the child exits by itself."""
    marker = tmp_path / "partial.tmp"
    started = tmp_path / "started"

    def long_stretch():
        marker.write_text("x")
        try:
            yield Progress("initialization", 0, 1)
            started.write_text("x")
            t = time.perf_counter()
            while time.perf_counter() - t < 60:  # pure Python, no yield for a minute
                pass
            yield Progress("initialization", 1, 1)
        finally:
            marker.unlink()

    gen = iter_in_process(long_stretch)
    while not started.exists():
        next(gen)
    import multiprocessing as mp

    (child,) = mp.active_children()
    pid = child.pid
    t0 = time.perf_counter()
    gen.close()
    took = time.perf_counter() - t0
    gone = wait_gone(pid)
    assert took < 1.0, took  # the parent (the window) is free at once
    assert "did not stop" not in caplog.text  # it stopped by itself, not killed
    assert took + gone < STOP_TIMEOUT_S, (took, gone)
    assert not marker.exists()  # the step's cleanup ran


def test_a_child_that_dies_is_reported():
    def dies():
        yield Progress("working", 0, 1)
        os.kill(os.getpid(), signal.SIGKILL)
        yield Progress("working", 1, 1)

    with pytest.raises(RuntimeError, match="signal 9"):
        _collect(iter_in_process(dies))


@pytest.mark.gui
def test_the_motion_dock_runs_its_step_in_a_child_and_cancel_stops_it(qtbot, viewer, errors):
    import multiprocessing as mp

    m = make_movie_2d((400, 128, 128), n_neurons=20, rigid_motion=3.0, seed=5, return_flow=False)
    viewer.add_image(m.movie, name="movie")
    _, motion = viewer.window.add_plugin_dock_widget("napari-caiman", "Motion correction")
    motion.set_settings(motion.get_settings().replace(pw_rigid=True))
    motion.runner.run_button.native.click()
    qtbot.waitUntil(lambda: len(mp.active_children()) == 1, timeout=20_000)
    (child,) = mp.active_children()
    assert child.pid != os.getpid()
    qtbot.waitUntil(lambda: motion.runner.progress.value > 0, timeout=30_000)
    pid = child.pid
    t0 = time.perf_counter()
    motion.runner.cancel_button.native.click()
    qtbot.waitUntil(lambda: not motion.runner.is_running, timeout=10_000)
    assert time.perf_counter() - t0 < 3.0
    assert motion.runner.status.value == "cancelled" and errors == []
    wait_gone(pid)
    # run again to the end: the result comes back from the child as layers
    motion.runner.run_button.native.click()
    qtbot.waitUntil(lambda: not motion.runner.is_running, timeout=120_000)
    assert errors == [] and "movie corrected" in viewer.layers
    err = motion.last_result.shifts_rig + m.shifts
    err -= err.mean(axis=0)
    assert np.sqrt((err**2).mean()) < 0.5
