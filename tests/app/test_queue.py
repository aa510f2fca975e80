"""The one queue runner: order, cancel one item, stop, items queued meanwhile, busy."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_caiman.app.batch import Batch
from napari_caiman.app.queue import QueueRunner
from napari_caiman.engine.errors import StateError
from napari_caiman.engine.progress import Progress
from napari_caiman.engine.synthetic import make_movie_2d

MOTION = {"max_shifts": (3, 3)}


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    syn = make_movie_2d((60, 40, 40), n_neurons=4, rigid_motion=1.5, dtype=np.uint16, seed=3)
    path = tmp_path_factory.mktemp("queue_movie") / "m.tif"
    tifffile.imwrite(path, syn.movie)
    return path


@pytest.fixture
def slow(monkeypatch):
    """An item named "slow*" waits (yielding, so it can be stopped) up to 30 s before it runs."""
    import napari_caiman.app.runs as runs

    real = runs.iter_pipeline

    def iter_pipeline(movie, *, output, **kwargs):
        if Path(output).stem.startswith("slow"):
            for i in range(3000):
                time.sleep(0.01)
                yield Progress("waiting", i, 3000)
        return (yield from real(movie, output=output, **kwargs))

    monkeypatch.setattr(runs, "iter_pipeline", iter_pipeline)


def _batch(tmp_path, movie, names):
    b = Batch(tmp_path / "b.json")
    for n in names:
        b.add(n, movie, MOTION, steps=("motion",))
    return b


def _in_thread(runner, **kw):
    out: dict = {}

    def go():
        try:
            out["counts"] = runner.run(**kw)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=go)
    t.start()
    return t, out


def _wait(cond, timeout=60.0):
    t0 = time.time()
    while not cond():
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.02)


def test_cancel_item_stops_that_item_and_the_queue_goes_on(movie, tmp_path, slow):
    b = _batch(tmp_path, movie, ["slow", "b", "c"])
    runner = QueueRunner(b)
    seen: list[str] = []
    t, out = _in_thread(runner, progress=lambda p: seen.append(p.stage))
    _wait(lambda: runner.running == ["slow"])
    assert not runner.cancel_item("b")  # not running: nothing to cancel
    t0 = time.time()
    assert runner.cancel_item("slow")
    t.join(60)
    assert "error" not in out, out.get("error")
    assert out["counts"] == {"cancelled": 1, "done": 2}
    assert {i.name: i.status for i in Batch(tmp_path / "b.json")} == {
        "slow": "cancelled",
        "b": "done",
        "c": "done",
    }
    assert time.time() - t0 < 30  # the wait was cut short: cancelled at its next progress report
    assert any(s.startswith("slow (1/3): waiting") for s in seen)
    assert any(s.startswith("c (3/3): ") for s in seen)
    assert runner.running == []
    assert not b.output_path("slow").exists() and b.output_path("c").is_file()


def test_stop_cancels_the_running_item_and_leaves_the_rest_queued(movie, tmp_path, slow):
    b = _batch(tmp_path, movie, ["a", "slow", "c"])
    runner = QueueRunner(b)
    t, out = _in_thread(runner)
    _wait(lambda: runner.running == ["slow"])
    runner.stop()
    t.join(60)
    assert out["counts"] == {"done": 1, "cancelled": 1}
    assert [i.status for i in Batch(tmp_path / "b.json")] == ["done", "cancelled", "queued"]


def test_follow_runs_items_queued_meanwhile(movie, tmp_path, slow):
    for follow, late_status in ((True, "done"), (False, "queued")):
        folder = tmp_path / str(follow)
        folder.mkdir()
        b = _batch(folder, movie, ["slow"])
        runner = QueueRunner(b, follow=follow)
        t, out = _in_thread(runner)
        _wait(lambda runner=runner: runner.running == ["slow"])
        other = Batch(folder / "b.json")  # another writer (the CLI, a second dock) adds an item
        other.add("late", movie, MOTION, steps=("motion",))
        runner.cancel_item("slow")
        t.join(60)
        assert Batch(folder / "b.json").item("late").status == late_status, follow
        assert out["counts"] == ({"cancelled": 1, "done": 1} if follow else {"cancelled": 1})


def test_a_running_queue_is_busy_and_an_unknown_name_fails_first(movie, tmp_path, slow):
    b = _batch(tmp_path, movie, ["slow"])
    runner = QueueRunner(b)
    gen = runner.iter_run()
    next(gen)
    with pytest.raises(StateError, match="already running"):
        next(runner.iter_run())
    gen.close()
    assert b.item("slow").status == "cancelled"
    with pytest.raises(ValueError, match="no item"):
        runner.run(["nope"])
    assert not runner.on_dask and QueueRunner(b, scheduler="local").on_dask


def test_isolated_items_run_in_child_processes_cancel_and_a_dead_child(movie, tmp_path):
    """isolate=True (the Batch dock's default): each item in a child process; a cancel
    reaches it through the pipe, a child that dies fails only its item."""
    import os
    import signal

    path = tmp_path / "b.json"
    b = _batch(tmp_path, movie, ["doomed", "stopped", "fine"])
    runner = QueueRunner(b, isolate=True)
    seen: list[str] = []
    t, out = _in_thread(runner, progress=lambda p: seen.append(p.stage))

    def running_in_child(name):
        item = Batch(path).item(name)
        return item.status == "running" and item.runner.get("pid") not in (None, os.getpid())

    _wait(lambda: running_in_child("doomed"))
    os.kill(Batch(path).item("doomed").runner["pid"], signal.SIGKILL)
    _wait(lambda: running_in_child("stopped"))
    assert runner.cancel_item("stopped")
    t.join(120)
    assert "error" not in out, out.get("error")
    assert out["counts"] == {"failed": 1, "cancelled": 1, "done": 1}
    items = {i.name: i for i in Batch(path)}
    assert items["doomed"].status == "failed" and "died (exit code -9)" in items["doomed"].error
    assert items["stopped"].status == "cancelled" and items["fine"].status == "done"
    assert b.output_path("fine").is_file() and not b.output_path("stopped").exists()
    assert any(
        s.startswith("fine (3/3): ") and "starting" not in s for s in seen
    )  # the child's own stages
    assert b.item("fine").status == "done"  # the parent's Batch took over what the children wrote


def test_follow_takes_up_an_item_queued_again_while_the_queue_runs(movie, tmp_path, slow):
    b = _batch(tmp_path, movie, ["a", "slow"])
    runner = QueueRunner(b, follow=True)
    t, out = _in_thread(runner)
    _wait(lambda: runner.running == ["slow"])
    Batch(tmp_path / "b.json").requeue("a")  # "Re-run" of a finished item while the queue runs
    runner.cancel_item("slow")
    t.join(60)
    a = Batch(tmp_path / "b.json").item("a")
    assert a.status == "done" and a.attempts == 2
    assert out["counts"] == {"done": 2, "cancelled": 1}


def test_an_isolated_item_does_not_run_the_users_script_again(movie, tmp_path):
    """A user's script without an ``if __name__ == "__main__":`` guard (as scripts that open
    napari often are) runs once: the spawned child of the item does not import it."""
    import subprocess
    import sys

    runs = tmp_path / "runs.txt"
    script = tmp_path / "my_analysis.py"
    script.write_text(
        "from napari_caiman.app.batch import Batch\n"
        "from napari_caiman.app.queue import QueueRunner\n"
        f"open({str(runs)!r}, 'a').write('ran\\n')\n"
        f"b = Batch({str(tmp_path / 'b.json')!r})\n"
        f"b.add('a', {str(movie)!r}, {{'max_shifts': (3, 3)}}, steps=('motion',))\n"
        "print(QueueRunner(b, isolate=True).run())\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert runs.read_text() == "ran\n", done.stderr[-2000:]  # once, not again in the child
    assert "'done': 1" in done.stdout and Batch(tmp_path / "b.json").item("a").status == "done"
