"""The shared step runner: progress, result on the main thread, cancel, errors."""

from __future__ import annotations

import threading
import time

import pytest

from napari_caiman.engine.errors import InputError
from napari_caiman.engine.progress import Progress
from napari_caiman.plugin.widgets._runner import StepRunner

pytestmark = pytest.mark.gui


def _steps(n, *, fail=None, closed=None, delay=0.0):
    try:
        for i in range(n):
            time.sleep(delay)
            yield Progress("work", i + 1, n)
            if fail is not None and i == 1:
                raise fail
        return "result"
    finally:
        if closed is not None:
            closed.append(threading.current_thread() is threading.main_thread())


@pytest.fixture
def runner(qtbot, errors):
    r = StepRunner("Test step", on_run=lambda: None)
    outcomes = []
    r.finished.connect(outcomes.append)
    r.outcomes = outcomes
    yield r
    if r.is_running:
        r.cancel()
        qtbot.waitUntil(lambda: not r.is_running, timeout=5_000)


def test_result_reaches_the_main_thread(qtbot, runner, errors):
    got = []
    runner.start(
        lambda: _steps(3),
        lambda res: got.append((res, threading.current_thread() is threading.main_thread())),
    )
    assert not runner.run_button.enabled and runner.cancel_button.enabled
    qtbot.waitUntil(lambda: not runner.is_running, timeout=5_000)
    assert got == [("result", True)]
    assert runner.outcomes == ["done"] and runner.status.value == "done"
    assert runner.progress.value == runner.progress.max
    assert runner.run_button.enabled and not runner.cancel_button.enabled
    assert errors == []


def test_cancel_closes_the_generator_in_the_worker(qtbot, runner, errors):
    closed, got = [], []
    runner.start(lambda: _steps(10_000, closed=closed, delay=0.01), got.append)
    qtbot.waitUntil(lambda: runner.progress.value > 0, timeout=5_000)
    runner.cancel_button.native.click()
    qtbot.waitUntil(lambda: not runner.is_running, timeout=2_000)
    assert closed == [False]  # finally ran, off the main thread
    assert got == [] and runner.outcomes == ["cancelled"]
    assert runner.status.value == "cancelled" and runner.progress.value == 0
    assert errors == []


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (InputError("gSig", "expected numbers"), "gSig: expected numbers"),
        (
            ZeroDivisionError("boom"),
            "Test step failed: boom (ZeroDivisionError; details in the log)",
        ),
    ],
)
def test_errors_become_plain_notifications(qtbot, runner, errors, exc, expected):
    got = []
    runner.start(lambda: _steps(5, fail=exc), got.append)
    qtbot.waitUntil(lambda: not runner.is_running, timeout=5_000)
    assert errors == [expected]
    assert got == [] and runner.outcomes == ["error"]
    assert runner.run_button.enabled
