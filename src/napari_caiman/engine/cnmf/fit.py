"""CNMF driver: ``iter_cnmf`` / ``cnmf``.

Pipeline (CaImAn's ``CNMF.fit`` shape, own implementation):

1. noise per pixel (PSD), NaN / constant-movie checks;
2. initialization: greedy ROI on the whole field of view (downsampled by
   ``ssub``/``tsub``), or per patch (``rf``/``stride``) on an executor and
   combined, or from seeds (``Ain``);
3. spatial update -> temporal update (deconvolution) -> merging -> spatial
   update -> temporal update on the whole field of view, then the components
   that still overlap and correlate above ``merge_thr`` merged (the last
   spatial update can cut a cell in two touching pieces with one trace) and,
   when any were, one more temporal update;
4. components normalized to unit-norm footprints, results in CaImAn's layout.

Memory (``params["memory_limit"]``, :mod:`..memory`): movies whose float32
copy is below ``max_in_memory`` bytes (40 % of the budget by default) are
loaded once as a (T, pixels) array; larger ones are streamed in chunks of
frames for every statistic (``A^T Y``, ``Y C^T``, noise, means), patches read
only their slab and run as many at a time as the budget holds, and the
footprints of the patches stay sparse until their duplicates are merged.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator
from typing import Any

import numpy as np
from scipy import sparse

from ..errors import InputError
from ..params import CaimanParams
from ..progress import Progress, as_progress, run
from ..resolve import patch_geometry, settings_from_params
from ..threads import single_threaded_blas
from ..validate import check_movie
from . import sparse_steps as sps
from ._shapes import box_indices, upsample_images, upsample_time
from .data import IN_MEMORY_SHARE, MovieData, check_not_constant
from .estimates import Estimates, caiman_permutation
from .initialization import iter_greedy_roi
from .noise import fft_sample_ranges
from .patches import (
    PATCH_COPIES,
    PATCH_K_DENSITY,
    fit_patch,
    fit_patch_from,
    patch_init_budget,
    patch_slices,
    patch_tiles,
    patch_time_bin,
)
from .products import csc_of
from .seeds import seeds_as_csc
from .steps import Settings
from .tiles import backing_dir

__all__ = ["iter_cnmf", "cnmf", "settings_from_params"]

MIN_FRAMES = 10


def _nn_svd_rows(F: np.ndarray, nb: int, T: int) -> np.ndarray:
    """``nb`` non-negative temporal background starts from stacked patch backgrounds."""
    f = np.ones((nb, T), np.float32)
    if nb == 0 or F.shape[0] == 0:
        return f
    F = F / np.maximum(F.mean(axis=1, keepdims=True), 1e-12)
    u, s, vt = np.linalg.svd(F.astype(np.float64), full_matrices=False)
    for j in range(min(nb, len(s))):
        v = vt[j] * np.sign(vt[j].sum() or 1.0)
        v = np.maximum(v, 0)
        f[j] = v / max(v.mean(), 1e-12)
    return f


def _default_executor(n: int):
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=max(1, n), thread_name_prefix="cnmf-patch")


@single_threaded_blas
def iter_cnmf(
    movie: Any,
    params: CaimanParams,
    *,
    Ain: Any = None,
    executor: Any = None,
    memmap_dir: Any = None,
    max_in_memory: int | None = None,
    tiles: Any = None,
) -> Generator[Progress, None, Estimates]:
    """CNMF source extraction as a progress generator (returns :class:`Estimates`).

    Parameters
    ----------
    movie : array-like (T, Y, X) or (T, Z, Y, X)
        numpy, np.memmap, dask ...; any int/float dtype.
    params : CaimanParams
        CaImAn names: ``K, gSig, gSiz, nb, nIter, ssub, tsub, method_init``
        (init), ``p, ITER, bas_nonneg, s_min, fudge_factor, lags`` (temporal),
        ``maxthr, nrgthr, extract_cc, update_background_components`` (spatial),
        ``merge_thr, do_merge`` (merging), ``rf, stride, n_processes,
        nb_patch, p_patch, p_ssub, p_tsub`` (patches), ``noise_range,
        noise_method, max_num_samples_fft`` (noise), ``fr, decay_time``.
    Ain : optional seeds (K, *frame) boolean/float in array order, or
        (pixels, K) dense/sparse in CaImAn pixel order; skips initialization.
    executor : optional object with ``submit(fn, *args)`` returning futures
        with ``done()``/``result()`` (concurrent.futures executors,
        ``dask.distributed.Client``); default: a thread pool of ``n_processes``.
    memmap_dir : folder for the tile-major copy (:mod:`.tiles`) of a streamed movie larger
        than the page cache (default: next to the movie's file); it is removed at the end.
    max_in_memory : bytes; movies whose float32 copy is larger are streamed
        (default: 40 % of ``params["memory_limit"]``, see :mod:`..memory`).
    tiles : :class:`~.tiles.TileStore`, optional
        The tile-major copy the patches read, written while the movie was made
        (:func:`~.patches.patch_store_plan`); used if it is the one they would
        build, and removed at the end either way.

    Raises
    ------
    InputError
        Bad movie (too few frames, NaN/inf, constant) or parameters.
    """
    opened: list[MovieData] = []
    try:
        return (
            yield from _iter_cnmf(
                movie,
                params,
                Ain=Ain,
                executor=executor,
                max_in_memory=max_in_memory,
                opened=opened,
                folder=memmap_dir,
                tiles=tiles,
            )
        )
    finally:
        for data in opened:  # the tile store's temporary file, also on error or cancel
            data.close_store()
        if tiles is not None:  # taken or not (closing twice is a no-op)
            tiles.close()


def _iter_cnmf(
    movie: Any,
    params: CaimanParams,
    *,
    Ain: Any,
    executor: Any,
    max_in_memory: int | None,
    opened: list,
    folder: Any,
    tiles: Any = None,
) -> Generator[Progress, None, Estimates]:
    if not isinstance(params, CaimanParams):
        params = CaimanParams.from_dict(params or {})
    T, dims = check_movie(movie, min_frames=MIN_FRAMES)
    from ..border import movie_for_cnmf

    movie = movie_for_cnmf(movie)  # motion-correction borders (NaN strips) zeroed, as on every path
    nd = len(dims)
    st = settings_from_params(params, nd, dims)
    geometry = patch_geometry(params, st, nd, dims) if Ain is None else None
    A_seed = seeds_as_csc(Ain, dims) if Ain is not None else None
    timings: dict[str, float] = {}
    info: dict[str, Any] = {"dims": dims, "n_frames": T}
    from ..memory import budget

    bud = budget(params)
    info["memory_limit"] = bud.limit
    if max_in_memory is None:
        max_in_memory = int(bud.limit * IN_MEMORY_SHARE)
    data = MovieData(
        movie, max_bytes=max_in_memory, chunk_bytes=min(64 << 20, bud.chunk_bytes(0.0625))
    )
    opened.append(data)
    data.folder = None if folder is None else str(folder)
    data.tile = patch_tiles(dims, *geometry) if geometry is not None else None
    if tiles is not None:  # written during motion correction (see .patches.patch_store_plan)
        adopted = geometry is not None and data.adopt_store(tiles, patch_time_bin(T))
        if not adopted:
            tiles.close()
        info["tiles_from_motion"] = adopted

    t0 = time.perf_counter()
    for done, total in data.load():
        yield Progress("cnmf: loading", done, total)
    timings["load"] = time.perf_counter() - t0
    if data.Y is None:
        # pixel-wise reads of a movie larger than the page cache go through a
        # tile-major copy on disk (see .tiles); the patches reuse it for the same frames
        ranges = fft_sample_ranges(T, st.max_num_samples_fft)
        if data.wants_store(sum(b - a for a, b in ranges)):
            t0 = time.perf_counter()
            yield from as_progress(data.iter_store(1, ranges), "cnmf: reordering frames (noise)")
            timings["reorder"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen = data.noise(st.noise_range, st.noise_method, st.max_num_samples_fft)
    sn, vmin, vmax = yield from as_progress(gen, "cnmf: noise")
    check_not_constant(vmin, vmax)
    timings["noise"] = time.perf_counter() - t0
    nb = st.nb

    # ---------------------------------------------------------------- initialization
    t0 = time.perf_counter()
    if A_seed is not None:
        info["init"] = "seeded"
        A = A_seed
        K = A.shape[1]
        yield Progress("cnmf: seeded start", 0, 1)
        b = np.zeros((data.P, nb), np.float32)
        if nb:
            b[:, 0] = data.mean_image()
        H = np.zeros((K + nb, T), np.float32)
        H[K:] = 1.0
        from .temporal import hals_temporal

        hals_temporal(H, data.AtY_sparse(A, b), sps.gram(A, b), 10)
        yield Progress("cnmf: seeded start", 1, 1)
    elif geometry is None:
        info["init"] = "greedy_roi"
        yield Progress("cnmf: initialization", 0, 1)
        Yd = data.downsampled(st.ssub, st.tsub)
        scale = np.array([1.0] * (nd - 2) + [st.ssub, st.ssub])
        gSig = tuple(float(g / s) for g, s in zip(st.gSig, scale, strict=True))
        gSiz = tuple(max(1, int(round(g / s))) for g, s in zip(st.gSiz, scale, strict=True))
        A, C, b, f = yield from iter_greedy_roi(Yd, st.K, gSig, gSiz, nb=nb, nIter=st.nIter)
        small = Yd.shape[1:]
        del Yd
        A = upsample_images(A, small, dims, st.ssub)
        b = upsample_images(b, small, dims, st.ssub)
        C = upsample_time(C, T, st.tsub)
        f = upsample_time(f, T, st.tsub)
        K = A.shape[1]
        A = csc_of(np.ascontiguousarray(A, dtype=np.float32))
        b = np.ascontiguousarray(b, dtype=np.float32)
        H = np.ascontiguousarray(np.concatenate([C, f], axis=0), dtype=np.float32)
        yield Progress("cnmf: initialization", 1, 1)
    else:
        info["init"] = "patches"
        A, b, H = yield from _run_patches(data, params, st, geometry, executor, info)
        K = A.shape[1]
        timings["patches"] = time.perf_counter() - t0
    timings["init"] = time.perf_counter() - t0
    info["K_init"] = int(K)

    # ---------------------------------------------------------------- refinement
    extra = None
    n_merged = 0
    plan = ["spatial", "temporal", "merge", "spatial", "temporal"]
    for i, step in enumerate(plan):
        yield Progress("cnmf: refine", i, len(plan), step)
        t0 = time.perf_counter()
        if K == 0:
            break
        if step == "spatial":
            A, b, H, _ = sps.binned_spatial_step(data, A, b, H, st, sn, patch_time_bin(T))
        elif step == "temporal":  # all but the last binned as the spatial updates (sparse_steps)
            tb = 1 if i == len(plan) - 1 else patch_time_bin(T)
            gen = sps.iter_binned_temporal_step(data, A, b, H, st.temporal, tb)
            A, b, H, extra, _ = yield from gen
        elif step == "merge" and st.do_merge:
            A, H, n = sps.merge_step(A, H, nb, st.merge_thr, YrA=extra["YrA"] if extra else None)
            n_merged += n
            extra = None
        K = A.shape[1]
        timings[step] = timings.get(step, 0.0) + time.perf_counter() - t0
    yield Progress("cnmf: refine", len(plan), len(plan))
    if K > 1 and st.do_merge and extra is not None:
        # the last spatial update (noise cut, largest piece) can leave a cell in two
        # touching components with one trace: merge them as the merge step would
        t0 = time.perf_counter()
        A, H, n = sps.merge_step(A, H, nb, st.merge_thr, YrA=extra["YrA"])
        if n:
            n_merged += n
            info["final_merges"] = n
            A, b, H, extra, _ = yield from sps.iter_temporal_step(data, A, b, H, st.temporal)
        K = A.shape[1]
        timings["merge"] = timings.get("merge", 0.0) + time.perf_counter() - t0
    info["merged_groups"] = n_merged
    if K and extra is None:  # pragma: no cover - plan always ends with a temporal update
        A, b, H, extra, _ = run(sps.iter_temporal_step(data, A, b, H, st.temporal))
        K = A.shape[1]
    anat = None
    seed = params.get("seed_anatomy", False)
    if seed and A_seed is None:
        t0 = time.perf_counter()
        yield Progress("cnmf: anatomical seeds", 0, 1)
        A, b, H, extra, anat = yield from _add_anatomy(
            data, A, b, H, st, params, extra, only=seed == "only"
        )
        K = A.shape[1]
        info["n_anatomy"] = int(anat.sum())
        timings["anatomy"] = time.perf_counter() - t0
        yield Progress("cnmf: anatomical seeds", 1, 1)
    est = _build(A, b, H, extra, sn, dims, T, st, timings, info)
    if anat is not None:
        est.from_anatomy = anat
    return est


def _add_anatomy(
    data: MovieData, A, b, H, st: Settings, params: CaimanParams, extra, *, only: bool
):
    """Add soma masks found in the mean image (:mod:`.anatomy`) that no component covers.

    One spatial update restricted to each mask and one temporal update of all components; silent
    seeded cells are kept (flat trace).  With ``only`` the activity-based components are replaced.
    Generator; returns ``(A, b, H, extra, from_anatomy)``.
    """
    from .anatomy import detect_somata, merge_seeds

    dims = data.dims
    K, nb = A.shape[1], b.shape[1]
    mean = data.mean_image().reshape(dims)
    detector = params.get("anatomy_detector", "builtin")
    found = None
    if detector == "cellpose":
        from .anatomy import cellpose_somata

        found = cellpose_somata(mean, st.gSig)
        if found is None:
            raise InputError(
                "anatomy_detector",
                "'cellpose' needs the cellpose package (pip install cellpose) "
                "and a 2D movie; use 'builtin'",
            )
    masks, _ = (
        found
        if found is not None
        else detect_somata(mean, st.gSig, thr=float(params.get("anatomy_thr", 1.0) or 0.0))
    )
    if only:
        A, H, K = sparse.csc_matrix((data.P, 0), dtype=np.float32), np.ascontiguousarray(H[K:]), 0
    keep = merge_seeds(A, masks)
    n = int(keep.size)
    if n == 0 and not only:
        return A, b, H, extra, np.zeros(K, bool)
    flat = np.asarray(masks, bool).reshape(len(masks), -1)
    cols = []
    for i in keep:
        idx = np.flatnonzero(flat[i])
        cols.append((idx, np.full(idx.size, 1.0 / np.sqrt(max(idx.size, 1)), np.float32)))
    M = sps.csc_from_columns(cols, data.P)
    A = sparse.hstack([A, M], format="csc", dtype=np.float32)
    H = np.ascontiguousarray(
        np.concatenate([H[:K], np.zeros((n, H.shape[1]), np.float32), H[K:]], axis=0)
    )
    K2 = K + n
    from .temporal import hals_temporal

    hals_temporal(H, data.AtY_sparse(A, b), sps.gram(A, b), 5)
    update = np.r_[np.zeros(K, bool), np.ones(n, bool)]
    regions = [None] * K + [idx.astype(np.int64) for idx, _ in cols]
    A, b, H, kept = sps.spatial_step(
        data, A, b, H, st, n_iter=3, update=update, regions=regions, clean=False
    )
    if (
        kept.size < K2
    ):  # a seeded cell keeps its footprint even when silent: put the dropped masks back
        lost = np.setdiff1d(np.arange(K, K2), kept)
        cols_all = [
            (A.indices[A.indptr[j] : A.indptr[j + 1]], A.data[A.indptr[j] : A.indptr[j + 1]])
            for j in range(A.shape[1])
        ]
        Hk = [H[j] for j in range(kept.size)]
        for j in lost:
            pos = int(np.searchsorted(kept, j))
            kept = np.insert(kept, pos, j)
            cols_all.insert(pos, cols[j - K])
            Hk.insert(pos, np.zeros(H.shape[1], np.float32))
        A = sps.csc_from_columns(cols_all, data.P)
        H = np.ascontiguousarray(
            np.concatenate(
                [
                    np.asarray(Hk, np.float32).reshape(-1, H.shape[1]),
                    H[-nb:] if nb else np.zeros((0, H.shape[1]), np.float32),
                ],
                axis=0,
            )
        )
    anat = np.r_[np.zeros(K, bool), np.ones(n, bool)]
    A, b, H, extra, kept = yield from sps.iter_temporal_step(
        data, A, b, H, st.temporal, keep_silent=anat
    )
    return A, b, H, extra, anat[kept]


def _surviving(
    anat: np.ndarray, K2: int
) -> np.ndarray:  # pragma: no cover - anatomy comps are never dropped
    return np.r_[np.zeros(K2 - int(anat.sum()), bool), np.ones(int(anat.sum()), bool)]


def _build(A, b, H, extra, sn, dims, T, st, timings, info) -> Estimates:
    K = A.shape[1]
    perm = caiman_permutation(dims)
    b = np.ascontiguousarray(b[perm], dtype=np.float32)
    f = np.ascontiguousarray(H[K:], dtype=np.float32)
    snc = sn[perm].astype(np.float32)
    if K == 0:
        est = Estimates.empty(dims, T, b=b, f=f, sn=snc, p=st.temporal.p)
    else:
        # normalize the non-zeros only, then CaImAn's pixel order
        A = sparse.csc_matrix(A, dtype=np.float32)
        col = np.repeat(np.arange(K), np.diff(A.indptr))
        nrm = np.sqrt(np.bincount(col, weights=A.data.astype(np.float64) ** 2, minlength=K))
        nrm[nrm == 0] = 1.0
        A.data = (A.data / nrm[col]).astype(np.float32)
        s = nrm[:, None]
        est = Estimates(
            A=sparse.csc_matrix(A[perm]).sorted_indices(),  # canonical CSC, as CaImAn writes it
            C=(H[:K] * s).astype(np.float32),
            S=(extra["S"] * s).astype(np.float32),
            YrA=(extra["YrA"] * s).astype(np.float32),
            b=b,
            f=f,
            sn=snc,
            g=extra["g"],
            bl=extra["bl"] * nrm,
            c1=np.zeros(K),
            neurons_sn=extra["neurons_sn"] * nrm,
            lam=extra["lam"] * nrm,
            dims=tuple(dims),
        )
    est.timings = timings
    est.info = info
    return est


def _run_patches(data: MovieData, params: CaimanParams, st: Settings, geometry, executor, info):
    """Run every patch on the executor and combine (a generator); return (A (CSC), b, H)."""
    rf_a, st_a = geometry
    dims, T, nb = data.dims, data.T, st.nb
    slices = patch_slices(dims, rf_a, st_a)
    info["n_patches"] = len(slices)
    k_patch, p_ssub = patch_init_budget(
        tuple(s.stop - s.start for s in slices[0]),
        st.gSig,
        st.K,
        int(params["p_ssub"] or 1),
        float(params.get("patch_K_density", PATCH_K_DENSITY) or 0.0),
    )
    info["patch_K"], info["patch_ssub"] = k_patch, p_ssub
    p_st = dataclasses.replace(
        st, K=k_patch, temporal=dataclasses.replace(st.temporal, p=int(params["p_patch"] or 0))
    )
    p_tsub = int(params["p_tsub"] or 1)
    nb_patch = int(params["nb_patch"] if params["nb_patch"] is not None else 1)
    n_workers = int(params["n_processes"] or 1)
    own = executor is None
    ex = _default_executor(n_workers) if own else executor
    from ..memory import pickles_by_path

    remote = hasattr(ex, "scatter") and pickles_by_path(data.movie)
    # patches in flight: each holds its (T, *patch) float32 slab and the fit's
    # working copies (PATCH_COPIES of it) within half the budget
    from ..memory import budget

    patch_px = max(int(np.prod([s.stop - s.start for s in sl])) for sl in slices)
    half = int(budget(params).limit * 0.5)
    tbin = patch_time_bin(T)
    slab = 4 * -(-T // tbin) * patch_px
    fit = int(half // (PATCH_COPIES * slab))
    max_inflight = max(1, min(max(2, 2 * n_workers), fit))
    if remote:  # workers read their own slabs: keep every worker busy (the budget is per process)
        max_inflight = max(2, 2 * len(ex.scheduler_info().get("workers", ())))
    info["patch_time_bin"] = tbin
    info["patches_in_flight"] = max_inflight
    store = None
    if data.wants_store(T) and (not remote or data.folder or backing_dir(data.movie)):
        # slabs of a movie larger than the page cache: from a tile-major copy (.tiles) next
        # to the movie (read once, not once per patch); a cluster's workers share its path
        t_s = time.perf_counter()
        store = yield from as_progress(data.iter_store(tbin), "cnmf: reordering frames (patches)")
        info["tile_store_s"] = round(time.perf_counter() - t_s, 1)
    results: dict[int, dict] = {}
    pending: dict[Any, int] = {}
    nxt = 0
    yield Progress("cnmf: patches", 0, len(slices))
    try:
        while len(results) < len(slices):
            while nxt < len(slices) and len(pending) < max_inflight:
                if remote:  # the worker reads its slab from the shared path
                    fu = ex.submit(
                        fit_patch_from,
                        store or data.movie,
                        slices[nxt],
                        p_st,
                        p_ssub,
                        p_tsub,
                        nb_patch,
                        tbin,
                        T,
                        pure=False,
                    )
                else:
                    fu = ex.submit(
                        fit_patch,
                        data.patch(slices[nxt], tbin),
                        p_st,
                        p_ssub,
                        p_tsub,
                        nb_patch,
                        tbin=tbin,
                        T_full=T,
                    )
                pending[fu] = nxt
                nxt += 1
            finished = [fu for fu in pending if fu.done()]
            if not finished:
                time.sleep(0.02)
                yield Progress("cnmf: patches", len(results), len(slices))
                continue
            for fu in finished:
                i = pending.pop(fu)
                results[i] = fu.result()
            yield Progress("cnmf: patches", len(results), len(slices))
    except (GeneratorExit, KeyboardInterrupt, Exception):
        for fu in pending:
            try:
                fu.cancel()
            except Exception:  # pragma: no cover
                pass
        if own:
            ex.shutdown(wait=False, cancel_futures=True)
        raise
    if own:
        ex.shutdown(wait=True)
    workers = {r.get("pid") for r in results.values() if "pid" in r}
    if workers:
        info["workers"] = sorted(workers)  # type: ignore[type-var]
    # combine
    cols, Cs, Fs = [], [], []
    for i, sl in enumerate(slices):
        r = results[i]
        gidx = box_indices(sl, dims)
        for k in range(r["A"].shape[1]):
            nz = np.flatnonzero(r["A"][:, k] > 0)
            cols.append((gidx[nz], r["A"][nz, k]))
        Cs.append(r["C"])
        Fs.append(r["f"])
    K = len(cols)
    # footprints stay sparse until duplicates of overlapping patches are merged:
    # only the merged set is made dense (pixels x K) for the whole-field refit
    if K:
        rows = np.concatenate([idx for idx, _ in cols])
        vals = np.concatenate([v for _, v in cols]).astype(np.float32)
        colj = np.repeat(np.arange(K), [idx.size for idx, _ in cols])
        A = sparse.csc_matrix((vals, (rows, colj)), shape=(data.P, K), dtype=np.float32)
    else:
        A = sparse.csc_matrix((data.P, 0), dtype=np.float32)
    del cols
    C = np.concatenate(Cs, axis=0).astype(np.float32) if K else np.zeros((0, T), np.float32)
    del Cs, results
    info["K_patches"] = K
    f = _nn_svd_rows(np.concatenate(Fs, axis=0), nb, T)
    if st.do_merge and K > 1:
        from .merging import merge_components

        A, C, groups, _ = merge_components(A, C, st.merge_thr)
        K = A.shape[1]
        info["patch_merges"] = len(groups)
    A = sparse.csc_matrix(A, dtype=np.float32)
    A.sort_indices()
    H = np.ascontiguousarray(np.concatenate([C, f], axis=0), dtype=np.float32)
    b = np.zeros((data.P, nb), np.float32)
    if nb:
        mean = data.mean_image()
        b[:, 0] = np.maximum(mean - A @ H[:K].mean(axis=1), 0) / max(float(H[K].mean()), 1e-12)
    return A, b, H


def cnmf(movie: Any, params: CaimanParams, **kw) -> Estimates:
    """Blocking wrapper of :func:`iter_cnmf`."""
    return run(iter_cnmf(movie, params, **kw))
