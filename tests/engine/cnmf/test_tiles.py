"""The tile-major copy of a streamed movie (engine/cnmf/tiles.py): exact reads,
the same CNMF result as reading the movie itself, no file left behind."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from napari_caiman.engine.cnmf import tiles
from napari_caiman.engine.cnmf._shapes import downsample
from napari_caiman.engine.cnmf.tiles import TileStore, tile_shape
from napari_caiman.engine.memory import DiskFullError
from napari_caiman.engine.progress import run


def _build(movie, tile, **kw):
    gen = TileStore.build(lambda a, b: movie[a:b], movie.shape[0], movie.shape[1:], tile, **kw)
    seen = []
    try:
        while True:
            seen.append(next(gen))
    except StopIteration as stop:
        return stop.value, seen


@pytest.mark.parametrize("dims", [(37, 53), (5, 23, 31)])
def test_tile_store_reads_boxes_exactly_and_bins_like_the_patches(dims, tmp_path):
    rng = np.random.default_rng(1)
    T = 103
    movie = rng.standard_normal((T, *dims)).astype(np.float32)
    tile = tile_shape(dims, default=8)
    chunk = 4 * int(np.prod(dims)) * 10  # 10 frames a chunk: the tiles are written in pieces
    store, seen = _build(movie, tile, chunk_bytes=chunk, folder=str(tmp_path))
    assert seen[-1] == (T, T) and len(seen) == 11
    assert os.path.getsize(store.path) == store.nbytes and os.path.dirname(store.path) == str(
        tmp_path
    )
    for _ in range(5):  # boxes that cut tiles, and one flush with the far border
        lo = [int(rng.integers(0, d - 2)) for d in dims]
        sl = tuple(slice(a, int(rng.integers(a + 1, d + 1))) for a, d in zip(lo, dims, strict=True))
        np.testing.assert_array_equal(store.read(sl), movie[(slice(None), *sl)])
    whole = tuple(slice(0, d) for d in dims)
    np.testing.assert_array_equal(store.read(whole), movie)
    assert store.vmin == movie.min() and store.vmax == movie.max()  # the padding is not data
    # groups of whole tiles: every pixel once
    acc = np.zeros(int(np.prod(dims)))
    for idx, blk in store.pixel_groups(150):
        assert blk.shape == (T, idx.size)
        acc[idx] += 1
        np.testing.assert_array_equal(blk, movie.reshape(T, -1)[:, idx])
    assert (acc == 1).all()
    # binned in time: the means of 4 frames, the last sample over the 3 left
    binned, _ = _build(movie, tile, tbin=4, chunk_bytes=chunk)
    assert binned.n == 26
    np.testing.assert_allclose(binned.read(whole), downsample(movie, 1, 4), rtol=0, atol=1e-6)
    # frame-major reads of whole frames (the spatial updates' view), any range
    for s0, s1 in ((0, 26), (3, 11), (25, 26), (7, 7)):
        np.testing.assert_array_equal(binned.read_frames(s0, s1), binned.read(whole)[s0:s1])
    # only some frame ranges (the noise's samples)
    part, _ = _build(movie, tile, ranges=[(0, 10), (50, 60), (93, 103)], chunk_bytes=chunk)
    np.testing.assert_array_equal(
        part.read(whole), np.concatenate([movie[0:10], movie[50:60], movie[93:103]])
    )
    for s in (store, binned, part):
        path = s.path
        s.close()
        assert not os.path.exists(path)


def test_tiles_fit_the_patch_grid():
    from napari_caiman.engine.cnmf.patches import patch_slices, patch_tiles

    dims = (128, 100)
    tile = patch_tiles(dims, (25, 25), (10, 10))  # patches of 50 every 40 pixels
    assert tile == (10, 10)
    for sl in patch_slices(
        dims, (25, 25), (10, 10)
    ):  # all but the patches flush with the far border
        assert all(s.start % t == 0 for s, t, d in zip(sl, tile, dims, strict=True) if s.stop < d)
    # one patch over all 24 planes: whole-depth tiles; gcd(48, 38) = 2: about 16, no padding of 256
    assert tile_shape((24, 256, 256), (24, 48, 48), (14, 38, 38)) == (24, 16, 16)
    assert tile_shape((20, 100)) == (
        10,
        15,
    )  # 20 in 2 tiles of 10; 100 in 7 of 15 (5 pixels of padding)


@pytest.fixture(scope="module")
def movie_npy(tmp_path_factory):
    from napari_caiman.engine.synthetic import make_movie

    d = tmp_path_factory.mktemp("tiles")
    path = d / "movie.npy"
    truth = make_movie(
        (300, 64, 64),
        n_neurons=12,
        gSig=3,
        seed=5,
        out=path,
        return_flow=False,
        return_truth=False,
        snr=3.0,
    )
    return path, truth


PARAMS = {"K": 4, "gSig": (3, 3), "rf": 10, "stride": 5, "n_processes": 1, "memory_limit": "1GB"}


def test_cnmf_through_the_tile_store_equals_reading_the_movie(movie_npy, tmp_path, monkeypatch):
    """The patches' slabs and the noise read from the store are the movie's own
    values: the same components and traces as reading the memory map, and the
    store lived next to the movie only while it was needed."""
    from napari_caiman.engine.cnmf import iter_cnmf, match_components
    from napari_caiman.engine.params import CaimanParams

    path, truth = movie_npy
    movie = np.load(path, mmap_mode="r")
    params = CaimanParams.from_dict(PARAMS)
    monkeypatch.setattr(tiles, "POLICY", "never")
    ref = run(iter_cnmf(movie, params, max_in_memory=0))
    monkeypatch.setattr(tiles, "POLICY", "always")
    gen = iter_cnmf(movie, params, max_in_memory=0)
    stages, files = set(), set()
    try:
        while True:
            p = next(gen)
            stages.add(p.stage)
            files |= {
                f.name for f in path.parent.iterdir() if f.name.startswith("napari-caiman-tiles-")
            }
    except StopIteration as stop:
        est = stop.value
    assert {"cnmf: reordering frames (noise)", "cnmf: noise", "cnmf: patches"} <= stages
    # T <= max_num_samples_fft: the noise's store (all frames) is reused by the patches
    assert "cnmf: reordering frames (patches)" not in stages and len(files) == 1
    assert not [f for f in path.parent.iterdir() if f.name.startswith("napari-caiman-tiles-")]
    np.testing.assert_array_equal(est.sn, ref.sn)
    assert est.A.shape == ref.A.shape
    np.testing.assert_allclose(est.A.toarray(), ref.A.toarray(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(est.C, ref.C, rtol=1e-4, atol=1e-4 * float(np.abs(ref.C).max()))
    assert (
        match_components(est.footprints(), truth.footprints, est.C, truth.traces).recall == 1.0
    )  # before evaluation


def test_tile_store_cancel_and_full_disk_leave_no_file(movie_npy, monkeypatch):
    from napari_caiman.engine.cnmf import iter_cnmf
    from napari_caiman.engine.params import CaimanParams

    path, _ = movie_npy
    movie = np.load(path, mmap_mode="r")
    params = CaimanParams.from_dict(PARAMS)
    monkeypatch.setattr(tiles, "POLICY", "always")

    def stores():
        return [f for f in path.parent.iterdir() if f.name.startswith("napari-caiman-tiles-")]

    gen = iter_cnmf(movie, params, max_in_memory=0)
    for p in gen:
        if p.stage == "cnmf: patches" and p.done > 0:
            assert len(stores()) == 1
            gen.close()  # a widget's cancel, Ctrl-C
            break
    assert stores() == []

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(
        DiskFullError, match=r"CNMF needs .* of temporary space in .* to reorder the movie's frames"
    ):
        run(iter_cnmf(movie, params, max_in_memory=0))
    assert stores() == []


def test_spatial_updates_of_a_long_movie_read_it_binned_from_the_store(
    movie_npy, tmp_path, monkeypatch
):
    """Past PATCH_MAX_FRAMES frames the spatial updates, and the temporal updates but
    the last, regress the frames binned in time as the patches read them: from the
    patches' tile store when there is one, else binned as the movie is read, with the same result either way (a rule of
    the movie's length, not of the memory).  With the store, these updates and the
    background's mean image read nothing of the full-rate movie (the store's pass
    made the mean), and the components and their traces stay right."""
    from napari_caiman.engine.cnmf import data as cnmf_data
    from napari_caiman.engine.cnmf import iter_cnmf, match_components, patches, sparse_steps
    from napari_caiman.engine.params import CaimanParams

    path, truth = movie_npy
    base = np.load(path, mmap_mode="r")
    T = base.shape[0]

    class Counting:
        """The memory map, counting the full-rate frames read."""

        def __init__(self):
            self.shape, self.dtype, self.filename, self.frames = base.shape, base.dtype, path, 0

        def __getitem__(self, key):
            out = base[key]
            self.frames += out.shape[0] if isinstance(key, slice) else 1
            return out

    reads: dict[str, list[int]] = {}

    def counted(name, fn):
        def wrapper(*a, **kw):
            before = movie.frames
            out = fn(*a, **kw)
            reads.setdefault(name, []).append(movie.frames - before)
            return out

        return wrapper

    monkeypatch.setattr(sparse_steps, "spatial_step", counted("spatial", sparse_steps.spatial_step))
    for name in ("mean_image", "AtY_sparse"):
        monkeypatch.setattr(
            cnmf_data.MovieData, name, counted(name, getattr(cnmf_data.MovieData, name))
        )
    params = CaimanParams.from_dict(PARAMS)
    monkeypatch.setattr(tiles, "POLICY", "always")
    movie = Counting()
    unbinned = run(iter_cnmf(movie, params, max_in_memory=0))
    # full-rate spatial passes; the mean from the noise's store of every frame
    assert reads == {
        "spatial": [T, T],
        "mean_image": [0],
        "AtY_sparse": [T] * len(reads["AtY_sparse"]),
    }
    reads.clear()
    monkeypatch.setattr(patches, "PATCH_MAX_FRAMES", 100)  # 3 frames a sample
    got = {}
    for policy in ("always", "never"):
        monkeypatch.setattr(tiles, "POLICY", policy)
        movie = Counting()
        got[policy] = run(iter_cnmf(movie, params, max_in_memory=0))
        got[policy + " reads"] = dict(reads)
        reads.clear()
    est, ref = got["always"], got["never"]
    # all but the last temporal update binned too: only the last (and one after a final
    # merge) reads the full-rate movie
    n_last = len(got["always reads"]["AtY_sparse"]) - 1
    assert got["always reads"] == {
        "spatial": [0, 0],
        "mean_image": [0],
        "AtY_sparse": [0] + [T] * n_last,
    }
    assert got["never reads"]["spatial"] == [T, T] and got["never reads"]["mean_image"] == [T]
    assert got["never reads"]["AtY_sparse"][0] == T  # binned as read
    assert est.A.shape == ref.A.shape
    np.testing.assert_allclose(est.A.toarray(), ref.A.toarray(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(est.C, ref.C, rtol=1e-3, atol=1e-3 * float(np.abs(ref.C).max()))
    for e in (est, unbinned):
        m = match_components(e.footprints(), truth.footprints, e.C, truth.traces)
        assert m.recall == 1.0 and m.median_trace_corr > 0.9
    assert not [f for f in path.parent.iterdir() if f.name.startswith("napari-caiman-tiles-")]


@pytest.mark.parametrize("dims", [(37, 53), (5, 23, 31)])
def test_a_tile_writer_fed_uneven_chunks_writes_what_build_writes(dims, tmp_path):
    """The motion step hands its corrected frames to a TileWriter in chunks of its own
    size: the samples (binned across chunk edges), the sampled ranges and the mean image
    are bit for bit those of a store built by reading the movie, frames out of order are
    refused, and a writer that did not get every frame leaves no file."""
    from napari_caiman.engine.cnmf.tiles import TileWriter

    rng = np.random.default_rng(3)
    T = 61
    movie = rng.standard_normal((T, *dims)).astype(np.float32)
    tile = tile_shape(dims, default=8)
    for tbin, ranges in [(1, None), (3, None), (1, [(0, 10), (25, 41)]), (2, [(5, 18), (40, 61)])]:
        ref, _ = _build(movie, tile, tbin=tbin, ranges=ranges, chunk_bytes=4 * movie[0].size * 8)
        w = TileWriter(
            dims,
            T,
            tile,
            tbin=tbin,
            folder=str(tmp_path),
            ranges=ranges,
            buffer_bytes=4 * movie[0].nbytes,
        )  # runs of 4 samples written on the writer's thread as the next fill
        assert not w.complete
        for t0, t1 in [(0, 7), (7, 9), (9, 23), (23, 24), (24, 50), (50, T)]:
            w.add(t0, movie[t0:t1])
        assert w.complete
        got = w.finish()
        assert (got.n, got.tile) == (ref.n, ref.tile)
        np.testing.assert_array_equal(got.read_frames(0, got.n), ref.read_frames(0, ref.n))
        if ranges is None:
            np.testing.assert_array_equal(got.mean, ref.mean)
        else:
            assert got.mean is None and ref.mean is None
        got.close(), ref.close()
    w = TileWriter(dims, T, tile, tbin=3, folder=str(tmp_path), buffer_bytes=movie[0].nbytes)
    w.add(0, movie[:10])
    with pytest.raises(ValueError, match="frame 12 given where frame 10"):
        w.add(12, movie[12:20])
    with pytest.raises(ValueError, match="never given"):
        w.finish()
    assert os.listdir(tmp_path) == []


def test_a_store_written_before_the_border_was_known_reads_as_the_border_view(tmp_path):
    """Frames written before motion correction ended (its border, the largest shift,
    not known yet) read, once the border is set, exactly as the NanFilled view CNMF
    reads: the border pixels 0 in boxes, frames and the mean image."""
    from napari_caiman.engine.border import NanFilled
    from napari_caiman.engine.cnmf.tiles import TileWriter

    rng = np.random.default_rng(4)
    dims, T, border = (40, 45), 30, (3, 2)
    movie = rng.random((T, *dims)).astype(np.float32) + 1
    tile = tile_shape(dims, default=16)
    view = NanFilled(movie, border)
    ref, _ = _build(view, tile, tbin=2)
    w = TileWriter(dims, T, tile, tbin=2, folder=str(tmp_path))
    w.add(0, movie)
    got = w.finish()
    got.set_border(border)
    np.testing.assert_array_equal(got.read_frames(0, got.n), ref.read_frames(0, ref.n))
    for sl in [(slice(0, 20), slice(30, 45)), (slice(10, 40), slice(0, 17))]:
        np.testing.assert_array_equal(got.read(sl), ref.read(sl))
    np.testing.assert_allclose(got.mean, ref.mean, rtol=1e-6)
    assert got.mean[:3].max() == 0 and got.mean[:, -2:].max() == 0 and got.mean[5, 5] > 1
    got.close(), ref.close()
