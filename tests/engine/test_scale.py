"""Recording-scale behaviour: the memory budget, the corrected movie on disk,
pre-flight refusals, a full disk and cancels leaving no partial files."""

from __future__ import annotations

import errno
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from napari_caiman.engine.errors import InputError
from napari_caiman.engine.memory import Budget, budget, format_bytes, parse_bytes
from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.progress import run

PARAMS = {
    "pw_rigid": True,
    "strides": (24, 24),
    "overlaps": (12, 12),
    "max_shifts": (4, 4),
    "K": 4,
    "gSig": (3, 3),
    "rf": 10,
    "stride": 5,
    "use_cnn": False,
    "n_processes": 2,
    "fr": 30,
}


@pytest.fixture(scope="module")
def movie_tif(tmp_path_factory):
    """A (1500, 96, 96) uint16 TIFF (55 MB as float32) with 24 neurons and motion."""
    from napari_caiman.engine.synthetic import make_movie

    d = tmp_path_factory.mktemp("scale")
    path = d / "movie.tif"
    truth = make_movie(
        (1500, 96, 96),
        n_neurons=24,
        gSig=3,
        rigid_motion=2.0,
        nonrigid_motion=0.5,
        dtype=np.uint16,
        seed=3,
        out=path,
        return_flow=False,
        return_truth=False,
        snr=3.0,
    )
    return path, truth


@pytest.fixture(scope="module")
def small_tif(tmp_path_factory):
    """A (400, 64, 64) uint16 TIFF (6.5 MB as float32: on disk under an 8 MB budget)."""
    from napari_caiman.engine.synthetic import make_movie

    path = tmp_path_factory.mktemp("scale_small") / "movie.tif"
    make_movie(
        (400, 64, 64),
        n_neurons=10,
        gSig=3,
        rigid_motion=2.0,
        dtype=np.uint16,
        seed=4,
        out=path,
        return_flow=False,
        return_truth=False,
        snr=3.0,
    )
    return path


def _pipeline(movie, out, **kw):
    from napari_caiman.app.runs import iter_pipeline

    params = CaimanParams.from_dict({**PARAMS, **kw.pop("params", {})})
    return iter_pipeline(
        [str(movie)], steps=("motion", "cnmf", "evaluate"), output=out, params=params, **kw
    )


def test_parse_bytes_and_budget():
    assert parse_bytes("4GB") == 4 * 10**9
    assert parse_bytes("512 MiB") == 512 << 20
    assert parse_bytes(2e9) == 2 * 10**9
    assert parse_bytes(None) is None and parse_bytes("auto") is None
    for bad in ("4XB", "-1GB", True, [1]):
        with pytest.raises(InputError, match="memory_limit"):
            parse_bytes(bad)
    with pytest.raises(InputError, match="too small"):
        parse_bytes("1kB")
    b = budget(CaimanParams.from_dict({"memory_limit": "80MB"}))
    assert b.limit == 80 * 10**6
    assert b.frames(10**6) == 10  # 12.5 % of 80 MB in 1 MB frames
    assert b.frames(10**6, copies=4) == 2 and b.frames(10**9) == 1
    assert b.holds(20 * 10**6) and not b.holds(21 * 10**6)
    auto = budget(CaimanParams.defaults())
    assert auto.limit > 4 * 10**6  # half of the available RAM
    assert format_bytes(4.2e9) == "4.2 GB"
    with pytest.raises(InputError, match="memory_limit"):
        CaimanParams.from_dict({"memory_limit": "lots"})


@pytest.mark.parametrize("version", [1, 2])
def test_available_memory_honours_a_cgroup_limit(tmp_path, version, monkeypatch):
    """Under a cgroup memory limit (a SLURM job, a container), the memory the
    budget and the tile store's choice start from is what the cgroup still
    allows: limit - usage + its droppable page cache, never more than the
    machine's."""
    from napari_caiman.engine import memory

    root = tmp_path / "cg"
    if version == 1:
        d = root / "memory" / "job" / "step"
        d.mkdir(parents=True)
        (d / "memory.limit_in_bytes").write_text(f"{6 << 30}\n")
        (d / "memory.usage_in_bytes").write_text(f"{3 << 30}\n")
        (d / "memory.stat").write_text(f"cache 123\ntotal_inactive_file {1 << 30}\n")
        line = "4:memory:/job/step\n"
    else:
        d = root / "job" / "step"
        d.mkdir(parents=True)
        (d / "memory.max").write_text(f"{6 << 30}\n")
        (d / "memory.current").write_text(f"{3 << 30}\n")
        (d / "memory.stat").write_text(f"anon 5\ninactive_file {1 << 30}\n")
        line = "0::/job/step\n"
    cg = tmp_path / "self_cgroup"
    cg.write_text(line)
    assert memory._cgroup_available(str(cg), str(root)) == 4 << 30
    # no limit: v2 writes "max", v1 a number near 2**63
    (d / ("memory.max" if version == 2 else "memory.limit_in_bytes")).write_text(
        "max\n" if version == 2 else "9223372036854771712\n"
    )
    assert memory._cgroup_available(str(cg), str(root)) is None
    # a limit set on the parent (the job) holds for the step
    parent = d.parent
    if version == 1:
        (parent / "memory.limit_in_bytes").write_text(f"{5 << 30}\n")
        (parent / "memory.usage_in_bytes").write_text(f"{4 << 30}\n")
        (parent / "memory.stat").write_text("total_inactive_file 0\n")
    else:
        (parent / "memory.max").write_text(f"{5 << 30}\n")
        (parent / "memory.current").write_text(f"{4 << 30}\n")
        (parent / "memory.stat").write_text("inactive_file 0\n")
    assert memory._cgroup_available(str(cg), str(root)) == 1 << 30
    assert memory._cgroup_available(str(tmp_path / "missing"), str(root)) is None
    # the smaller of the machine's and the cgroup's
    monkeypatch.setattr(memory, "_machine_available", lambda: 8 << 30)
    monkeypatch.setattr(memory, "_cgroup_available", lambda: 2 << 30)
    assert memory.available_memory() == 2 << 30
    assert memory.resolve_limit(None) == int((2 << 30) * memory.AUTO_FRACTION)
    monkeypatch.setattr(memory, "_cgroup_available", lambda: None)
    assert memory.available_memory() == 8 << 30


def test_nan_filled_reads_only_the_block_asked_for():
    from napari_caiman.engine.pipeline import NanFilled

    rng = np.random.default_rng(0)
    movie = rng.random((7, 10, 12)).astype(np.float32)
    movie[0, 0, 0] = np.nan

    class Counting:
        shape, dtype, ndim = movie.shape, movie.dtype, movie.ndim
        read = 0

        def __getitem__(self, key):
            out = movie[key]
            Counting.read += np.size(out)
            return out

    view = NanFilled(Counting(), (2, 3))
    full = np.nan_to_num(movie)
    full[:, :2] = full[:, -2:] = 0
    full[:, :, :3] = full[:, :, -3:] = 0
    for key in [
        slice(None),
        (slice(None), slice(1, 6), slice(4, 12)),
        3,
        (3, slice(0, 4)),
        (slice(None), 5),
        (slice(None), 1),
        (1, 2, 3),
        (1, 5, 5),
        (slice(None), slice(None), slice(None, None, 2)),
    ]:
        Counting.read = 0
        np.testing.assert_array_equal(view[key], full[key])
        assert Counting.read == np.size(full[key])  # a patch reads its slab, not the whole movie


def test_tiny_budget_gives_the_same_result_within_the_bound(movie_tif, tmp_path):
    """32 MB budget on a movie of 55 MB (float32): same components as without a
    budget, the corrected movie went to a temporary file (removed), and numpy's
    allocations (tracemalloc) stayed under 32 MB."""
    from napari_caiman.engine.cnmf import match_components

    movie, truth = movie_tif
    ref = run(_pipeline(movie, tmp_path / "ref.hdf5", params={"memory_limit": "8GB"}))
    limit = 32 << 20
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        small = run(_pipeline(movie, tmp_path / "small.hdf5", params={"memory_limit": limit}))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit, f"numpy allocations peaked at {format_bytes(peak)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ref.hdf5",
        "small.hdf5",
    ]  # temporary movie removed
    assert small.params["memory_limit"] == limit
    assert small.estimates.info["memory_limit"] == limit
    np.testing.assert_allclose(small.motion["shifts_rig"], ref.motion["shifts_rig"], atol=1e-4)
    e0, e1 = ref.estimates, small.estimates
    assert e1.A.shape == e0.A.shape
    m = match_components(e1.footprints(), e0.footprints(), e1.C, e0.C, thr=0.99)
    assert m.f1 == 1.0 and m.median_trace_corr > 0.999
    # SNR within 1 %, or within 0.05 for the components below SNR 1 (noise-dominated traces,
    # where the streamed and in-memory sums' rounding moves the event statistics most)
    np.testing.assert_allclose(
        small.metrics.SNR_comp[m.pairs[:, 1]],
        ref.metrics.SNR_comp[m.pairs[:, 0]],
        rtol=1e-2,
        atol=0.05,
    )
    # r-values use the frames around each trace's 5 highest peaks: where float rounding
    # (streamed vs in-memory sums) swaps two near-equal peaks the frame set, and so the
    # r-value, changes; everywhere else they agree
    from napari_caiman.engine.evaluation import find_active_frames

    same = np.array(
        [
            (a != b).nnz == 0
            for a, b in zip(
                find_active_frames(e1.C[m.pairs[:, 1]]),
                find_active_frames(e0.C[m.pairs[:, 0]]),
                strict=True,
            )
        ]
    )
    assert same.mean() >= 0.9, same
    np.testing.assert_allclose(
        small.metrics.r_values[m.pairs[same, 1]], ref.metrics.r_values[m.pairs[same, 0]], atol=1e-2
    )
    assert np.array_equal(np.sort(small.accepted()), np.sort(ref.accepted()))
    # and the result is right
    acc = np.sort(
        small.accepted()
    )  # what the user keeps (the rest are rejected duplicates and specks)
    assert (
        match_components(e1.footprints()[acc], truth.footprints, e1.C[acc], truth.traces).f1 >= 0.9
    )


def test_preflight_refuses_what_cannot_fit(small_tif, tmp_path, monkeypatch):
    from napari_caiman.engine import preflight

    movie = small_tif
    with pytest.raises(
        InputError, match=r"memory_limit: this run needs about .* raise --memory-limit"
    ):
        run(_pipeline(movie, tmp_path / "r.hdf5", params={"memory_limit": "16MB", "K": 400}))
    monkeypatch.setattr(preflight, "free_disk", lambda path: 10 << 20)
    with pytest.raises(InputError, match=r"disk: the motion-corrected movie needs .* 10.5 MB free"):
        run(_pipeline(movie, tmp_path / "r.hdf5", params={"memory_limit": "8MB"}))
    from napari_caiman.engine.cnmf import tiles

    monkeypatch.setattr(
        tiles, "POLICY", "always"
    )  # a movie larger than the page cache: CNMF copies it
    with pytest.raises(
        InputError,
        match=r"disk: the motion-corrected movie and CNMF's temporary copy of it need "
        r"\d+.\d MB on the disk .* 10.5 MB free",
    ):
        run(_pipeline(movie, tmp_path / "r.hdf5", params={"memory_limit": "8MB"}))
    assert list(tmp_path.iterdir()) == []


def test_preflight_counts_sparse_footprints_so_a_volume_of_thousand_cells_fits_4gb():
    """The refit keeps footprints sparse: its estimate grows with components x
    search region, not pixels x components (which refused this volume at 9.9 GB)."""
    from napari_caiman.engine.preflight import check_run, estimate

    params = CaimanParams.from_dict(
        {"K": 30, "gSig": (4, 4, 2), "rf": (25, 25, 12), "stride": (10, 10, 4)}
    )
    shape = (2000, 24, 256, 256)
    refit = estimate(shape, ["motion", "cnmf", "evaluate"], params)["cnmf refit"]
    assert refit["footprints"] < 0.5e9
    check_run(shape, ["motion", "cnmf", "evaluate"], params, Budget(parse_bytes("4GB")))
    # a budget that cannot hold it is still refused, naming the part
    with pytest.raises(InputError, match="memory_limit: this run needs about"):
        check_run(shape, ["motion", "cnmf", "evaluate"], params, Budget(parse_bytes("300MB")))


def test_cli_memory_limit_and_full_disk(small_tif, tmp_path, monkeypatch, capsys):
    """A disk that fills up while the corrected movie is written: one clear
    error, exit code 2, nothing left behind."""
    from napari_caiman.app import cli
    from napari_caiman.engine import _output

    movie = small_tif
    calls = {"n": 0}
    real = _output._NpyWriter._write

    def full(self, t0, block):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, t0, block)

    monkeypatch.setattr(_output._NpyWriter, "_write", full)
    argv = [
        "run",
        str(movie),
        "--steps",
        "motion,cnmf,evaluate",
        "-o",
        str(tmp_path / "r.hdf5"),
        "-q",
    ]
    for k, v in PARAMS.items():
        argv += ["--set", f"{k}={v!r}"]
    assert cli.main(argv + ["--memory-limit", "8MB"]) == 2
    err = capsys.readouterr().err
    assert (
        "napari-caiman: error: disk: no space left on the disk holding" in err
        and "partial file was removed" in err
    )
    assert calls["n"] > 5
    assert list(tmp_path.iterdir()) == []
    assert cli.main(argv + ["--memory-limit", "4XB"]) == 2
    assert "--memory-limit: expected a size such as '4GB'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "stage",
    [
        "template",
        "registering",  # the summary images are made meanwhile
        "cnmf: noise",
        "cnmf: patches",
        "cnmf: refine",
        "r-values",
        "saving results",
    ],
)
def test_cancel_at_each_stage_leaves_no_files(small_tif, tmp_path, stage):
    gen = _pipeline(small_tif, tmp_path / "r.hdf5", params={"memory_limit": "8MB"})
    seen = []
    for p in gen:
        seen.append(p.stage)
        if p.stage == stage and p.done > 0 or (stage == "saving results" and p.stage == stage):
            during = list(tmp_path.iterdir())
            gen.close()  # what a widget's cancel and Ctrl-C do
            break
    assert stage in seen
    if stage != "template":
        assert during  # the corrected movie (or its temporary) was on disk then
    assert list(tmp_path.iterdir()) == []


def test_budget_chunks_motion_and_cnmf():
    from napari_caiman.engine.cnmf.data import MovieData, pixel_blocks

    b = Budget(32 << 20)
    # a frame of 512 x 512 float32 = 1 MiB: 4 frames per 12.5 % chunk
    assert b.frames(1 << 20) == 4
    # pixel blocks are contiguous in C order and cover every pixel once
    for dims, m in [((10, 12), 25), ((10, 12), 5), ((3, 4, 5), 7), ((3, 4, 5), 2)]:
        a = np.arange(np.prod(dims)).reshape(dims)
        seen = []
        for key, p0, p1 in pixel_blocks(dims, m):
            v = a[key].ravel()
            np.testing.assert_array_equal(v, np.arange(p0, p1))
            assert v.size <= m
            seen += list(v)
        assert seen == list(range(a.size))
    data = MovieData(np.zeros((100, 8, 8), np.float32), max_bytes=0, chunk_bytes=4 * 100 * 10)
    assert not data.in_memory


def test_synthetic_movie_streams_to_tiff(tmp_path):
    import tifffile

    from napari_caiman.engine.synthetic import make_movie

    ref = make_movie((40, 32, 32), n_neurons=3, gSig=2, dtype=np.uint16, seed=1)
    got = make_movie(
        (40, 32, 32),
        n_neurons=3,
        gSig=2,
        dtype=np.uint16,
        seed=1,
        out=tmp_path / "m.tif",
        return_truth=False,
        return_flow=False,
        chunk_frames=7,
    )
    np.testing.assert_array_equal(np.asarray(got.movie), ref.movie)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "m.tif"), ref.movie)
    assert [p.name for p in Path(tmp_path).iterdir()] == ["m.tif"]


@pytest.mark.parametrize("limit", ["1GB", "8MB"])
def test_one_movie_on_a_local_cluster_matches_the_local_run(
    small_tif, tmp_path, limit, monkeypatch
):
    """Motion chunks, CNMF patches and evaluation chunks of one movie on a
    LocalCluster of worker processes: they ran on the workers (their process
    ids), the workers wrote the corrected movie, and the result equals the local run.
    Under 8 MB the movie is streamed and its patches read from CNMF's tile-major
    copy (as for a movie larger than the page cache), which the workers open by path."""
    import json
    import os

    distributed = pytest.importorskip("distributed")
    from napari_caiman.engine.cnmf import match_components, tiles

    if limit == "8MB":
        monkeypatch.setattr(tiles, "POLICY", "always")
    local = run(_pipeline(small_tif, tmp_path / "local.hdf5", params={"memory_limit": limit}))
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        worker_pids = set(client.run(os.getpid).values())
        remote = run(
            _pipeline(
                small_tif,
                tmp_path / "dask.hdf5",
                params={"memory_limit": limit},
                executor=client,
                save_movie=tmp_path / "corrected.npy",
            )
        )
        # a worker the nanny restarted during the run (a missed heartbeat on a loaded machine) has a new pid
        worker_pids |= set(client.run(os.getpid).values())
    ran_on = json.loads(remote.provenance["workers"])
    assert ("tile_store_s" in remote.estimates.info) == (limit == "8MB")
    assert not [f for f in tmp_path.iterdir() if f.name.startswith("napari-caiman-tiles-")]
    for step in ("motion", "cnmf", "evaluate"):
        assert ran_on[step] and set(ran_on[step]) <= worker_pids, step
        assert os.getpid() not in ran_on[step]
    corrected = np.load(tmp_path / "corrected.npy")
    assert corrected.shape == (400, 64, 64) and np.isfinite(corrected[:, 8:-8, 8:-8]).all()
    np.testing.assert_allclose(remote.motion["shifts_rig"], local.motion["shifts_rig"], atol=1e-4)
    e0, e1 = local.estimates, remote.estimates
    m = match_components(e1.footprints(), e0.footprints(), e1.C, e0.C, thr=0.99)
    assert e1.A.shape == e0.A.shape and m.f1 == 1.0 and m.median_trace_corr > 0.999
    np.testing.assert_allclose(
        remote.metrics.r_values[m.pairs[:, 1]], local.metrics.r_values[m.pairs[:, 0]], atol=1e-3
    )
    np.testing.assert_array_equal(np.sort(remote.accepted()), np.sort(local.accepted()))


def test_reader_contrast_limits_from_a_sample_of_frames(tmp_path):
    from napari_caiman.plugin.readers import read_movie, sample_contrast_limits

    movie = np.lib.format.open_memmap(
        tmp_path / "m.npy", mode="w+", dtype=np.uint16, shape=(1000, 32, 32)
    )
    movie[:] = 100
    movie[::100] = 50  # frames 0, 100, ... are the only ones sampled below 100
    movie[1::100] = 60000  # never sampled: a full scan would see it
    del movie
    ((data, meta, kind),) = read_movie(tmp_path / "m.npy")
    assert kind == "image" and isinstance(data, np.memmap)
    lo, hi = meta["contrast_limits"]
    assert 50 <= lo < hi <= 101
    assert sample_contrast_limits(np.full((3, 4, 4), np.nan, np.float32)) is None


def test_volume_under_a_tiny_budget_matches_the_unbudgeted_run(tmp_path):
    """3D (T, Z, Y, X): the same bound and the same result."""
    from napari_caiman.app.api import run_pipeline
    from napari_caiman.engine.cnmf import match_components
    from napari_caiman.engine.synthetic import make_movie

    path = tmp_path / "vol.tif"
    make_movie(
        (400, 4, 40, 40),
        n_neurons=6,
        gSig=(3, 3, 1),
        rigid_motion=(1.0, 1.0, 0.0),
        dtype=np.uint16,
        seed=5,
        out=path,
        return_flow=False,
        return_truth=False,
        snr=3.0,
    )  # 10.2 MB as float32
    p = CaimanParams.from_dict(
        {
            "max_shifts": (3, 3, 1),
            "K": 3,
            "gSig": (3, 3, 1),
            "rf": (10, 10, 2),
            "stride": (5, 5, 1),
            "use_cnn": False,
            "fr": 30,
        }
    )
    steps = ("motion", "cnmf", "evaluate")
    ref = run_pipeline(
        [str(path)], steps=steps, output=tmp_path / "ref.hdf5", params=p, memory_limit="2GB"
    )
    tracemalloc.start()
    try:
        small = run_pipeline(
            [str(path)], steps=steps, output=tmp_path / "small.hdf5", params=p, memory_limit="24MB"
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["ref.hdf5", "small.hdf5", "vol.tif"]
    assert peak < 24 * 10**6, format_bytes(peak)
    assert small.estimates.info["memory_limit"] == 24 * 10**6
    e0, e1 = ref.estimates, small.estimates
    m = match_components(e1.footprints(), e0.footprints(), e1.C, e0.C, thr=0.99)
    assert e0.A.shape[1] > 0 and e1.A.shape == e0.A.shape and m.f1 == 1.0
