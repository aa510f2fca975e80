"""The Batch dock widget, driven the way a user drives it: add items and
variants (and see bad ones rejected), run the queue, cancel one item, load
and compare results, reopen the batch file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from napari.layers import Image, Labels, Shapes
from qtpy.QtCore import QTimer

from napari_caiman.app.batch import Batch
from napari_caiman.engine.progress import Progress
from napari_caiman.engine.synthetic import make_movie_2d
from napari_caiman.plugin.widgets.batch import (
    BatchWidget,
    format_bytes,
    format_elapsed,
    parse_values,
)

pytestmark = pytest.mark.gui

#: Small CNMF / motion settings for the tiny movie (flat CaImAn names).
PARAMS = {"K": 4, "gSig": [3, 3], "rf": [12, 12], "stride": [4, 4], "max_shifts": [3, 3]}
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def movie_file(tmp_path_factory):
    movie = make_movie_2d((150, 48, 48), n_neurons=6, rigid_motion=1.0, seed=1, return_flow=False)
    path = tmp_path_factory.mktemp("movie") / "cells.tif"
    tifffile.imwrite(path, movie.movie)
    return path


@pytest.fixture
def shown(monkeypatch):
    """Notifications of the batch widget (and its runner), captured."""
    out: dict[str, list[str]] = {"error": [], "info": [], "warning": []}
    for module, kind in (("batch", "error"), ("batch_items", "info"), ("batch_queue", "warning")):
        monkeypatch.setattr(f"napari_caiman.plugin.widgets.{module}.show_{kind}", out[kind].append)
    monkeypatch.setattr("napari_caiman.plugin.widgets._runner.show_error", out["error"].append)
    return out


@pytest.fixture
def batch_widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-caiman", "Batch")
    return widget


def _statuses(widget: BatchWidget) -> dict[str, str]:
    """Name -> status as the table shows it."""
    t = widget.table
    return {t.item(r, 0).text(): t.item(r, 1).text() for r in range(t.rowCount())}


def test_helpers():
    assert format_bytes(12_345_678) == "12.3 MB" and format_bytes(512) == "512 B"
    assert format_elapsed(4.21) == "4.2 s" and format_elapsed(185) == "3:05"
    assert format_elapsed(3723) == "1:02:03" and format_elapsed(None) == ""
    assert parse_values("[(3,3),(4,4)]", "gSig") == [(3, 3), (4, 4)]
    for bad in ("(3, 4)", "[]", "[3, 4", "__import__('os')"):
        with pytest.raises(ValueError):
            parse_values(bad, "K")


def test_add_items_variants_and_rejections(
    qtbot, viewer, batch_widget, movie_file, tmp_path, shown
):
    w = batch_widget
    (layer,) = viewer.open(movie_file, plugin="napari-caiman")
    w.movie.value = layer
    assert Path(w.path.value) == movie_file.parent / "batch.json"  # suggestion next to the movie
    # parameters come from the open step docks, each step's group from its own dock
    _, motion = viewer.window.add_plugin_dock_widget("napari-caiman", "Motion correction")
    motion.set_settings(motion.get_settings().replace(max_shifts=(3, 3, 2)))
    _, cnmf = viewer.window.add_plugin_dock_widget("napari-caiman", "CNMF")
    cnmf.set_settings(
        cnmf.get_settings().replace(K=4, gSig=(3, 3, 2), rf=(12, 12, 0), stride=(4, 4, 0))
    )
    _, evaluation = viewer.window.add_plugin_dock_widget("napari-caiman", "Evaluation / curation")
    evaluation.min_SNR.value = 3.0

    w.path.value = tmp_path / "runs.json"
    w.new_button.native.click()
    assert w.batch is not None and (tmp_path / "runs.json").is_file()
    w.item_name.value = "a"
    w.add_button.native.click()
    assert shown["error"] == []
    item = w.batch.item("a")
    assert item.movie == [str(movie_file.resolve())]
    for key in ("K", "gSig", "rf", "stride", "max_shifts"):
        assert item.params[key] == PARAMS[key], key
    assert item.params["min_SNR"] == 3.0
    assert "Motion correction + CNMF + Evaluation" in w.message.value

    # a duplicate name is rejected when adding
    w.add_button.native.click()
    assert "already in the batch" in shown["error"][-1] and "already" in w.message.value

    # variants: one parameter, then a 2 x 2 grid
    w.item_name.value = "v"
    w.vary1.value, w.values1.value = "gSig", "[(3, 3), (4, 4)]"
    w.variants_button.native.click()
    w.item_name.value = "g"
    w.vary1.value, w.values1.value = "K", "[3, 4]"
    w.vary2.value, w.values2.value = "merge_thr", "[0.8, 0.9]"
    w.variants_button.native.click()
    names = [
        "a",
        "v gSig=3x3",
        "v gSig=4x4",
        "g K=3 merge_thr=0.8",
        "g K=3 merge_thr=0.9",
        "g K=4 merge_thr=0.8",
        "g K=4 merge_thr=0.9",
    ]
    assert w.batch.names == names
    assert w.batch.item("v gSig=4x4").params["gSig"] == [4, 4]

    # invalid variants are rejected when adding, with the reason
    n_errors = len(shown["error"])
    w.vary2.value = w.values2.value = ""
    w.item_name.value = "bad"
    for vary, values, reason in (
        ("gSigg", "[(3, 3)]", "gSig"),  # unknown name: the close match is named
        ("K", "3, 4", "not a list"),
        ("max_shifts", "[(3, 3), (30, 30)]", "half the frame"),  # does not fit the 48 px frame
    ):
        w.vary1.value, w.values1.value = vary, values
        w.variants_button.native.click()
        assert reason in shown["error"][-1], (vary, shown["error"][-1])
    assert len(shown["error"]) == n_errors + 3
    assert w.batch.names == names  # nothing half-added

    # a layer without a file is written once to <batch folder>/inputs/
    mem = viewer.add_image(np.asarray(layer.data), name="in memory")
    w.movie.value = mem
    w.item_name.value = "m"
    w.add_button.native.click()
    qtbot.waitUntil(lambda: "m" in w.batch.names, timeout=TIMEOUT_MS)
    written = tmp_path / "inputs" / "m.tif"
    assert w.batch.item("m").movie == [str(written.resolve())]
    assert any("inputs" in text for text in shown["info"])
    w.item_name.value = "m2"
    w.add_button.native.click()  # same layer: the file is reused, nothing written
    assert w.batch.item("m2").movie == [str(written.resolve())]
    assert sorted(p.name for p in (tmp_path / "inputs").iterdir()) == ["m.tif"]

    assert _statuses(w) == {n: "queued" for n in w.batch.names}
    assert not w.is_busy

    w.confirm = lambda text: True
    w.select(["m2", "g K=4 merge_thr=0.9"])
    w.remove_button.native.click()
    assert "m2" not in w.batch.names and len(w.batch) == 7 and w.table.rowCount() == 7


@pytest.fixture
def slow(monkeypatch):
    """The item named "slow" waits ~12 s (yielding, so it can be cancelled)
    before it runs, while ``slow["on"]``."""
    import napari_caiman.app.runs as runs

    real = runs.iter_pipeline
    state = {"on": True}

    def iter_pipeline(movie, *, output, **kwargs):
        if state["on"] and Path(output).stem == "slow":
            for i in range(600):
                time.sleep(0.02)
                yield Progress("waiting", i, 600)
        return (yield from real(movie, output=output, **kwargs))

    monkeypatch.setattr(runs, "iter_pipeline", iter_pipeline)
    return state


def _start(viewer, w, movie_file, tmp_path):
    """A new batch with the item "slow" (parameters from a preset), run in napari's
    process (the ``slow`` patch lives here; the default, a process per item, is
    tested in test_the_queue_runs_each_item_in_its_own_process)."""
    w.isolate.value = False
    preset = tmp_path / "preset.json"
    preset.write_text(json.dumps(PARAMS))
    (layer,) = viewer.open(movie_file, plugin="napari-caiman")
    w.movie.value = layer
    w.path.value = tmp_path / "runs.json"
    w.new_button.native.click()
    w.preset.value = preset
    w.item_name.value = "slow"
    w.add_button.native.click()


def test_run_cancel_rerun_load_compare_reopen(
    qtbot, viewer, batch_widget, movie_file, tmp_path, shown, slow
):
    w = batch_widget
    _start(viewer, w, movie_file, tmp_path)
    w.item_name.value = "v"
    w.vary1.value, w.values1.value = "gSig", "[(3, 3), (4, 4)]"
    w.variants_button.native.click()
    assert "preset preset.json" in w.message.value
    batch = w.batch
    assert batch.names == ["slow", "v gSig=3x3", "v gSig=4x4"]
    assert batch.item("slow").params["K"] == 4

    # run; cancel the first item while it runs: the queue goes on with the next
    w.run_button.native.click()
    assert w.is_running
    qtbot.waitUntil(lambda: batch.item("slow").status == "running", timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: "waiting" in w.runner.status.value, timeout=TIMEOUT_MS)
    w.select(["slow"])
    w.cancel_button.native.click()
    qtbot.waitUntil(lambda: not w.is_running, timeout=TIMEOUT_MS)
    assert shown["error"] == [] and shown["warning"] == []
    expected = {"slow": "cancelled", "v gSig=3x3": "done", "v gSig=4x4": "done"}
    assert {n: batch.item(n).status for n in batch.names} == expected
    assert _statuses(w) == expected
    assert "components" in w.table.item(1, 3).text()
    assert w.table.item(1, 2).text().endswith(" s")
    # the cache's size is measured in a worker (it hashes each item's movie sample)
    qtbot.waitUntil(lambda: "MB" in w.cache_label.value, timeout=TIMEOUT_MS)
    assert w.cache_label.value.startswith("cache: ")
    assert batch.output_path("v gSig=4x4").is_file()
    assert not list(batch.results_dir.glob(".*tmp*"))  # no half-written file of the cancelled item

    # re-run the cancelled item (its motion correction now comes from the cache)
    slow["on"] = False
    w.select(["slow"])
    w.rerun_button.native.click()
    qtbot.waitUntil(lambda: not w.is_running, timeout=TIMEOUT_MS)
    assert batch.item("slow").status == "done"

    # double-click a finished item: its layers (as File > Open) and its provenance;
    # the Evaluation dock takes the result as it takes a file opened with File > Open
    _, evaluation = viewer.window.add_plugin_dock_widget("napari-caiman", "Evaluation / curation")
    row = batch.names.index("slow")
    w.table.cellDoubleClicked.emit(row, 0)
    qtbot.waitUntil(lambda: w.last_loaded == "slow" and not w.is_busy, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: evaluation.session is not None, timeout=TIMEOUT_MS)
    assert evaluation.session.name == "slow"
    assert isinstance(viewer.layers["slow contours"], Image) and viewer.layers["slow contours"].rgb
    assert isinstance(viewer.layers["slow footprints"], Labels)
    meta = viewer.layers["slow contours"].metadata
    assert meta["napari_caiman_results_path"] == str(batch.output_path("slow"))
    assert meta["napari_caiman_results"].estimates is not None
    text = w.details.value
    assert str(movie_file.resolve()) in text
    assert (
        "motion cache: hit" in text
        and "versions: " in text
        and "napari-caiman " in text
        and "timings:" in text
    )

    # compare two variants: two Shapes layers in two colours, and the parameter difference
    w.select(["v gSig=3x3", "v gSig=4x4"])
    w.compare_button.native.click()
    qtbot.waitUntil(lambda: w.last_compared is not None and not w.is_busy, timeout=TIMEOUT_MS)
    a, b = viewer.layers["v gSig=3x3 (compare)"], viewer.layers["v gSig=4x4 (compare)"]
    assert isinstance(a, Shapes) and isinstance(b, Shapes) and len(a.data) and len(b.data)
    assert np.allclose(a.edge_color, [0, 1, 1, 1]) and np.allclose(
        b.edge_color[0][:3], [1, 0.647, 0], atol=0.01
    )
    assert "gSig: (3, 3) | (4, 4)" in w.details.value
    assert "accepted" in w.details.value
    assert shown["error"] == []

    # Cancel all: the running item is cancelled, the queue stops, the rest stays queued
    slow["on"] = True
    w.select(["slow", "v gSig=3x3"])
    w.rerun_button.native.click()
    qtbot.waitUntil(lambda: "waiting" in w.runner.status.value, timeout=TIMEOUT_MS)
    w.cancel_all_button.native.click()
    qtbot.waitUntil(lambda: not w.is_running, timeout=TIMEOUT_MS)
    expected = {"slow": "cancelled", "v gSig=3x3": "queued", "v gSig=4x4": "done"}
    assert _statuses(w) == expected

    # a new widget on the same file shows the same statuses
    w2 = BatchWidget(viewer)
    w2.path.value = tmp_path / "runs.json"
    w2.open_button.native.click()
    assert _statuses(w2) == expected
    assert w2.table.item(2, 3).text() == batch.item("v gSig=4x4").summary
    w2.native.close()


def test_closing_the_dock_mid_run_requeues_the_item(
    qtbot, viewer, batch_widget, movie_file, tmp_path, shown, slow
):
    w = batch_widget
    _start(viewer, w, movie_file, tmp_path)
    w.run_button.native.click()
    qtbot.waitUntil(lambda: "waiting" in w.runner.status.value, timeout=TIMEOUT_MS)
    viewer.window.remove_dock_widget(w.native)  # napari's "x" on the dock

    # the engine stops at its next progress report; the file says "queued" again
    # (read as JSON: a Batch opened in this process would call a running item interrupted)
    def saved() -> dict:
        return json.loads((tmp_path / "runs.json").read_text())["items"][0]

    assert saved()["status"] == "running"
    qtbot.waitUntil(lambda: saved()["status"] == "queued", timeout=TIMEOUT_MS)
    assert "interrupted" in saved()["error"] and saved()["finished"] is None
    assert not w.is_running
    qtbot.waitUntil(lambda: not w.runner.is_running, timeout=TIMEOUT_MS)
    assert Batch(tmp_path / "runs.json").queued() == ["slow"]


def test_the_table_follows_another_writer(qtbot, batch_widget, movie_file, tmp_path):
    """The CLI running the same batch file in a terminal: the open widget shows its items and statuses."""
    from napari_caiman.app.batch import Batch

    path = tmp_path / "shared.json"
    other = Batch(path)
    other.add("from the terminal", movie_file, {"max_shifts": (3, 3)}, steps=("motion",))
    w = batch_widget
    w.path.value = path
    w.open_button.native.click()
    assert _statuses(w) == {"from the terminal": "queued"}
    other.add("second", movie_file, {"max_shifts": (2, 2)}, steps=("motion",))
    other.run(names=["from the terminal"])
    qtbot.waitUntil(
        lambda: _statuses(w) == {"from the terminal": "done", "second": "queued"}, timeout=5000
    )
    # and what the widget changes reaches the other writer's next save
    w.batch.cancel("second")
    other.refresh()
    assert other.item("second").status == "cancelled"


def test_the_queue_runs_each_item_in_its_own_process(qtbot, viewer, batch_widget, tmp_path, shown):
    """The default: each item in a child process; its progress shows in the dock, Cancel
    selected stops it (the queue goes on), and the window keeps answering meanwhile."""
    movie = make_movie_2d(
        (900, 64, 64), n_neurons=6, rigid_motion=1.5, seed=4, return_flow=False
    ).movie
    path = tmp_path / "long.tif"
    tifffile.imwrite(path, movie)
    w = batch_widget
    assert w.isolate.value
    w.path.value = tmp_path / "runs.json"
    w.new_button.native.click()
    motion = {"max_shifts": (3, 3), "pw_rigid": True, "strides": (24, 24), "overlaps": (12, 12)}
    for name in ("first", "second"):
        w.batch.add(name, path, motion, steps=("motion",))
    w.refresh()
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    w.run_button.native.click()
    # the child's progress, stage by stage (motion correction estimates its template first)
    qtbot.waitUntil(
        lambda: w.runner.status.value.startswith("first (1/2): template"), timeout=TIMEOUT_MS
    )
    assert w.queue.running == ["first"] and w.batch.item("first").runner["pid"] != os.getpid()
    w.select(["first"])
    w.cancel_button.native.click()
    assert "cancelling first" in w.message.value
    qtbot.waitUntil(lambda: not w.is_running, timeout=TIMEOUT_MS)
    timer.stop()
    assert shown["error"] == [] and shown["warning"] == []
    assert _statuses(w) == {"first": "cancelled", "second": "done"}
    assert w.batch.output_path("second").is_file() and not w.batch.output_path("first").exists()
    assert "queue over" in w.runner.status.value
    gaps = np.diff(ticks)
    assert (
        len(gaps) > 50 and gaps.max() < 2.0
    )  # the event loop ran all along (a loaded CI machine: loose)
