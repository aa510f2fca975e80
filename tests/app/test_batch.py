"""Batches of runs: variants, resume after a crash, motion cache, Dask."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile

from napari_caiman.app.api import run_pipeline
from napari_caiman.app.batch import Batch
from napari_caiman.app.cli import main
from napari_caiman.engine.errors import InputError
from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.synthetic import make_movie_2d

BASE = {
    "max_shifts": (4, 4),
    "gSig": (4, 4),
    "K": 6,
    "rf": 16,
    "stride": 6,
    "fr": 30,
    "use_cnn": False,
}
GRID = {"K": [4, 6, 8]}


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    syn = make_movie_2d((300, 64, 64), n_neurons=12, rigid_motion=2.0, dtype=np.uint16, seed=2)
    path = tmp_path_factory.mktemp("batch_movie") / "m.tif"
    tifffile.imwrite(path, syn.movie)
    return path


def _same_results(a, b):
    # equal up to float rounding: Dask workers run BLAS single-threaded, this process
    # multi-threaded, and the summation order of the matrix products differs (~1e-5)
    np.testing.assert_allclose(
        a.estimates.A.toarray(), b.estimates.A.toarray(), rtol=1e-3, atol=1e-4
    )
    np.testing.assert_allclose(
        np.asarray(a.estimates.C), np.asarray(b.estimates.C), rtol=1e-3, atol=1e-2
    )
    np.testing.assert_array_equal(a.accepted(), b.accepted())
    np.testing.assert_allclose(a.motion["shifts_rig"], b.motion["shifts_rig"], atol=1e-4)


def test_three_variants_run_locally_like_single_runs(movie, tmp_path):
    b = Batch(tmp_path / "b.json")
    items = b.add_variants("v", movie, BASE, GRID)
    assert [i.name for i in items] == ["v K=4", "v K=6", "v K=8"]
    assert all(i.status == "queued" for i in b)
    counts = b.run()
    assert counts == {"done": 3}
    for item in b:
        assert item.status == "done" and item.error == "" and item.elapsed > 0
        assert "components" in item.summary and "accepted" in item.summary
    # each item equals a single run with the same parameters
    for k in GRID["K"]:
        single = run_pipeline(
            [str(movie)],
            steps=("motion", "cnmf", "evaluate"),
            output=tmp_path / f"s{k}.hdf5",
            params=CaimanParams.defaults().update({**BASE, "K": k}),
        )
        _same_results(b.results(f"v K={k}"), single)
    # parameter differences between two items
    assert b.compare("v K=4", "v K=8") == {"K": (4, 8)}
    # the file on disk says the same after reopening
    again = Batch(tmp_path / "b.json")
    assert [(i.name, i.status, i.summary) for i in again] == [
        (i.name, i.status, i.summary) for i in b
    ]


def test_motion_cache_is_hit_on_the_second_run(movie, tmp_path):
    b = Batch(tmp_path / "b.json")
    b.add("first", movie, BASE)
    b.add("second", movie, {**BASE, "K": 4})
    b.add("other motion", movie, {**BASE, "max_shifts": (3, 3)})
    b.run()
    prov = {n: b.results(n).provenance for n in b.names}
    assert prov["first"]["motion_cache"] == "miss" and prov["first"]["timings"]["motion"] > 0
    assert prov["second"]["motion_cache"] == "hit" and prov["second"]["timings"]["motion"] == 0
    assert prov["other motion"]["motion_cache"] == "miss"
    assert prov["first"]["motion_cache_key"] == prov["second"]["motion_cache_key"]
    assert len(b.cache.entries()) == 2
    size = b.cache.size_bytes()
    assert size > 2 * 300 * 64 * 64 * 4  # two float32 corrected movies
    # a copy of the movie elsewhere is the same content: still a hit
    copy = tmp_path / "copy.tif"
    copy.write_bytes(movie.read_bytes())
    b.add("copy", copy, BASE)
    b.run()
    assert b.results("copy").provenance["motion_cache"] == "hit"
    # the same results with and without the cache
    _same_results(b.results("first"), b.results("copy"))
    assert b.cache.clear() == size and b.cache.size_bytes() == 0


def test_provenance_records_input_params_versions_times(movie, tmp_path):
    b = Batch(tmp_path / "b.json")
    b.add("one", movie, BASE, steps=("motion", "cnmf"))
    b.run()
    r = b.results("one")
    p = r.provenance
    assert p["input_path"] == str(movie.resolve()) and p["input_size"] == movie.stat().st_size
    assert len(p["input_header_sha256"]) == 64
    assert p["backend"] == "native" and p["steps"] == ["motion", "cnmf"]
    assert p["versions"]["napari-caiman"] and p["versions"]["numpy"]
    assert p["started"] <= p["finished"] and p["elapsed"] > 0
    assert r.params["K"] == 6 and tuple(r.params["gSig"]) == (4, 4)


def test_bad_items_are_rejected_when_added(movie, tmp_path):
    b = Batch(tmp_path / "b.json")
    b.add("a", movie, BASE)
    with pytest.raises(InputError, match="already in the batch"):
        b.add("a", movie, BASE)
    with pytest.raises(InputError, match="movie not found"):
        b.add("b", tmp_path / "missing.tif", BASE)
    with pytest.raises(InputError, match="max_shifts"):
        b.add("c", movie, {**BASE, "max_shifts": (40, 40)})
    with pytest.raises(InputError, match="min_SNR|unknown|Unknown"):
        b.add("d", movie, {**BASE, "min_snr": 2})
    with pytest.raises(InputError, match="name"):
        b.add("x/y", movie, BASE)
    from napari_caiman.engine.backends import caiman_available

    if not caiman_available():
        with pytest.raises(InputError, match="CaImAn"):
            b.add("e", movie, {**BASE, "backend": "caiman"})
    # a grid with one bad value adds nothing
    with pytest.raises(InputError, match="gSig"):
        b.add_variants("g", movie, BASE, {"gSig": [(4, 4), (40, 40)]})
    assert b.names == ["a"]
    assert Batch(tmp_path / "b.json").names == ["a"]


def test_bad_batch_files(tmp_path):
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"format": "napari-caiman-batch", "version": 99, "items": []}))
    with pytest.raises(InputError, match="newer napari-caiman"):
        Batch(newer)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"something": 1}))
    with pytest.raises(InputError, match="not a napari-caiman batch file"):
        Batch(other)
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "napari-caiman-batch", "version": 1, "items": [')
    with pytest.raises(InputError, match="cannot read batch file"):
        Batch(broken)
    with pytest.raises(InputError, match=".json"):
        Batch(tmp_path / "b.txt")


def test_a_failing_item_does_not_stop_the_others(movie, tmp_path):
    gone = tmp_path / "gone.tif"
    gone.write_bytes(movie.read_bytes())
    b = Batch(tmp_path / "b.json")
    b.add("ok1", movie, BASE, steps=("motion",))
    b.add("gone", gone, BASE, steps=("motion",))
    b.add("ok2", movie, {**BASE, "K": 4}, steps=("motion", "cnmf"))
    gone.unlink()  # the movie disappears after the item was added
    assert b.run() == {"done": 2, "failed": 1}
    assert b.item("gone").status == "failed" and "movie not found" in b.item("gone").error
    assert b.item("ok2").status == "done"
    # re-run a failed item once its movie is back
    gone.write_bytes(movie.read_bytes())
    b.requeue("gone")
    assert b.run() == {"done": 1}
    assert b.item("gone").attempts == 2
    b.remove("gone", delete_results=True)
    assert "gone" not in b.names and not (tmp_path / "b_results" / "gone.hdf5").exists()


def test_cancel_marks_the_item_and_leaves_the_rest_queued(movie, tmp_path):
    b = Batch(tmp_path / "b.json")
    b.add_variants("v", movie, BASE, {"K": [4, 6]})
    gen = b.iter_run()
    for p in gen:
        if "cnmf" in p.stage.lower() or "patch" in p.stage.lower():
            break
    gen.close()
    assert b.item("v K=4").status == "cancelled"
    assert b.item("v K=6").status == "queued"
    assert not (tmp_path / "b_results" / "v K=4.hdf5").exists()
    assert [p.name for p in (tmp_path / "b_results").iterdir()] == []
    b.cancel("v K=6")
    assert b.queued() == []


def test_resume_after_a_crash_runs_only_unfinished_items(movie, tmp_path):
    path = tmp_path / "b.json"
    b = Batch(path)
    b.add("fast", movie, BASE, steps=("motion",))
    big = make_movie_2d(
        (1500, 96, 96), n_neurons=20, rigid_motion=2.0, dtype=np.uint16, seed=5
    ).movie
    tifffile.imwrite(tmp_path / "big.tif", big)
    b.add(
        "slow",
        tmp_path / "big.tif",
        {**BASE, "pw_rigid": True, "strides": (24, 24), "overlaps": (12, 12)},
    )
    b.add("last", movie, {**BASE, "K": 4}, steps=("motion",))
    proc = subprocess.Popen(
        [sys.executable, "-m", "napari_caiman.app.cli", "batch", str(path), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            state = {i["name"]: i["status"] for i in json.loads(path.read_text())["items"]}
            if state["slow"] == "running":
                break
            assert proc.poll() is None, "the batch ended before the slow item started"
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)  # a crash: no chance to clean up
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    fast_file = tmp_path / "b_results" / "fast.hdf5"
    mtime = fast_file.stat().st_mtime_ns
    again = Batch(path)
    assert again.item("fast").status == "done"
    assert again.item("slow").status == "queued" and "interrupted" in again.item("slow").error
    assert again.item("last").status == "queued"
    assert again.queued() == ["slow", "last"]
    assert again.run() == {"done": 2}
    assert fast_file.stat().st_mtime_ns == mtime and again.item("fast").attempts == 1
    assert again.item("slow").attempts == 2 and again.item("last").attempts == 1


def test_cli_batch_add_list_run(movie, tmp_path, capsys):
    path = tmp_path / "c.json"
    args = [
        "batch",
        str(path),
        "--add",
        "base",
        "--movie",
        str(movie),
        "--set",
        "K=5",
        "--set",
        "gSig=(4,4)",
        "--set",
        "rf=16",
        "--set",
        "stride=6",
        "--set",
        "max_shifts=(4,4)",
        "--set",
        "use_cnn=False",
        "--vary",
        "merge_thr=[0.7, 0.8]",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "added 2 item(s)" in out and "queued" in out
    assert main(["batch", str(path), "-q"]) == 0
    out = capsys.readouterr().out
    assert "2 item(s)" in out and "2 done" in out and out.count("accepted") == 2
    assert main(["batch", str(path), "--add", "base merge_thr=0.7", "--movie", str(movie)]) == 2
    assert "already in the batch" in capsys.readouterr().err
    assert main(["batch", str(path), "--movie", str(movie)]) == 2
    assert main(["batch", str(path), "--add", "v", "--movie", str(movie), "--vary", "K=5"]) == 2
    assert "--vary" in capsys.readouterr().err
    assert main(["batch", str(path), "--list"]) == 0
    assert "done" in capsys.readouterr().out


distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster_client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_batch_on_a_local_dask_cluster_matches_local_runs(movie, tmp_path, cluster_client):
    local = Batch(tmp_path / "local.json", cache_dir=tmp_path / "cache_local")
    local.add_variants("v", movie, BASE, GRID)
    local.run()
    remote = Batch(tmp_path / "remote.json", cache_dir=tmp_path / "cache_remote")
    remote.add_variants("v", movie, BASE, GRID)
    counts = remote.run(client=cluster_client)
    assert counts == {"done": 3}
    for name in local.names:
        assert (
            remote.item(name).status == "done"
            and remote.item(name).summary == local.item(name).summary
        )
        _same_results(local.results(name), remote.results(name))
    # one item on two workers: its CNMF patches go to the cluster as well, same result
    one = Batch(tmp_path / "one.json", cache_dir=tmp_path / "cache_one")
    one.add("v K=6", movie, {**BASE, "K": 6})
    assert one.run(client=cluster_client) == {"done": 1}, one.item("v K=6").error
    _same_results(local.results("v K=6"), one.results("v K=6"))


def test_a_dask_worker_dying_fails_only_its_item(movie, tmp_path):
    import dask

    big = make_movie_2d(
        (2000, 96, 96), n_neurons=20, rigid_motion=2.0, dtype=np.uint16, seed=6
    ).movie
    tifffile.imwrite(tmp_path / "big.tif", big)
    b = Batch(tmp_path / "b.json")
    b.add(
        "doomed",
        tmp_path / "big.tif",
        {**BASE, "pw_rigid": True, "strides": (24, 24), "overlaps": (12, 12)},
    )
    b.add("fine", movie, BASE, steps=("motion", "cnmf"))
    from napari_caiman.app.dask_batch import iter_run_on_dask

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        gen = iter_run_on_dask(b, client=client, n_parallel=2, patches_on_cluster=False, poll=0.1)
        killed, counts = False, None
        try:
            while True:
                next(gen)
                # once the small item is done, the only busy worker is the one running 'doomed'
                if (
                    not killed
                    and b.item("fine").status == "done"
                    and b.item("doomed").status == "running"
                ):
                    pids = client.run(os.getpid)
                    busy = [addr for addr, keys in client.processing().items() if keys]
                    assert len(busy) == 1
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed = True
        except StopIteration as stop:
            counts = stop.value
    assert killed
    assert counts == {"failed": 1, "done": 1}
    assert b.item("doomed").status == "failed" and "died" in b.item("doomed").error
    assert b.item("fine").status == "done"


def test_two_writers_of_one_batch_file_lose_nothing(movie, tmp_path):
    """E.g. `napari-caiman batch` running in a terminal while the Batch widget adds items."""
    path = tmp_path / "b.json"
    a = Batch(path)
    a.add("one", movie, BASE, steps=("motion",))
    b = Batch(path)  # a second writer, opened after 'one' was added
    a.add("two", movie, {**BASE, "K": 4}, steps=("motion",))
    b.add("three", movie, {**BASE, "K": 8}, steps=("motion",))  # b did not know 'two': kept
    with pytest.raises(InputError, match="already in the batch"):
        b.add("two", movie, BASE)  # b sees a's item when adding
    a.run(names=["one"])  # a finishes 'one' ...
    b.cancel("three")  # ... while b changes another item
    final = Batch(path)
    assert final.names == ["one", "two", "three"]
    assert final.item("one").status == "done" and final.item("three").status == "cancelled"
    b.refresh()  # b takes over a's result, keeping its own object for 'one'
    one = b.item("one")
    assert one.status == "done" and "max shift" in one.summary
    b.remove("two")
    a.requeue("three")
    assert Batch(path).names == ["one", "three"] and Batch(path).item("three").status == "queued"
    assert a.names == ["one", "three"]  # a's save merged b's removal


def test_stopping_a_queue_on_dask_cancels_its_items_and_leaves_the_rest_queued(
    movie, tmp_path, cluster_client
):
    """The Dask runner behind the one queue interface (QueueRunner.stop from another thread)."""
    import threading

    from napari_caiman.app.queue import QueueRunner

    b = Batch(tmp_path / "b.json")
    b.add_variants("v", movie, BASE, {"K": [4, 5, 6]})
    runner = QueueRunner(b, client=cluster_client, n_parallel=1, poll=0.05)
    assert runner.on_dask and not runner.cancel_item("v K=4")  # one task cannot be stopped alone
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("counts", runner.run()))
    t.start()
    deadline = time.time() + 60
    while runner.running != ["v K=4"]:
        assert time.time() < deadline
        time.sleep(0.02)
    runner.stop()
    t.join(60)
    assert out["counts"] == {}
    assert [i.status for i in Batch(tmp_path / "b.json")] == ["cancelled", "queued", "queued"]
    assert cluster_client.status == "running"  # a client given by the caller stays open


def test_a_viewers_refresh_never_waits_for_another_writers_lock(movie, tmp_path):
    """The Batch dock looks at the file every second on the main thread: while the item's
    process (or the CLI) holds the lock it returns at once, and reads the file next time."""
    import fcntl
    import time

    path = tmp_path / "lock.json"
    a = Batch(path)
    a.add("one", movie, BASE, steps=("motion",))
    b = Batch(path)
    a.cancel("one")  # another writer's change, on disk
    lock = path.with_name(f".{path.name}.lock")
    with open(lock, "a") as held:  # held the way a writer holds it (its own open file)
        fcntl.flock(held, fcntl.LOCK_EX)
        t0 = time.perf_counter()
        assert b.refresh(blocking=False) is False
        assert time.perf_counter() - t0 < 0.1
        assert b.item("one").status == "queued"  # nothing read meanwhile
        fcntl.flock(held, fcntl.LOCK_UN)
    assert b.refresh(blocking=False) is True
    assert b.item("one").status == "cancelled"  # taken over once the lock is free
