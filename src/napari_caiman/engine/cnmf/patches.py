"""Patches: split the field of view into overlapping pieces processed in parallel.

``rf`` is the half-size of a patch and ``stride`` the overlap between
neighbouring patches, per axis in CaImAn order (rows, cols[, planes]).  Along
an axis of length ``d`` patches have size ``min(2 rf, d)``, start every
``size - stride`` pixels and the last one is flush with the border.

Each patch (:func:`fit_patch`, a plain function of numpy arrays so that it can
run on a thread pool, a process pool or a ``dask.distributed.Client``) is
initialized with ``K`` components (greedy ROI on the patch downsampled by
``p_ssub``/``p_tsub``, ``nb_patch`` background components; both adapted to small cells by
:func:`patch_init_budget`) followed by one
round of spatial/temporal updates on the patch at full resolution (AR order
``p_patch``).  The caller places the footprints into the full field of view
and merges duplicates found in overlapping patches.

A patch's slab (T x patch pixels) would grow with the movie's length.  A
movie longer than :data:`PATCH_MAX_FRAMES` frames has its slabs read binned
in time (:func:`patch_time_bin` frames averaged, streamed from disk, so the
full-rate slab is never held): patches only have to find the footprints, and
the whole-field updates that follow recompute every trace at the movie's
full rate.
"""

from __future__ import annotations

import itertools

import numpy as np

from ._shapes import downsample, upsample_images, upsample_time
from .data import IN_MEMORY_SHARE, MovieData
from .initialization import greedy_roi
from .steps import Settings, spatial_step, temporal_step

__all__ = [
    "patch_slices",
    "patch_tiles",
    "patch_time_bin",
    "patch_init_budget",
    "patch_store_plan",
    "fit_patch",
    "fit_patch_from",
]

#: working copies of its slab that one patch fit holds at its peak, the slab
#: included (tracemalloc: 2.2 for a 2D patch of 51 x 51 pixels, 1.6 for a
#: 24 x 50 x 50 volume patch; rounded up)
PATCH_COPIES = 3


#: a patch's slab holds at most this many samples in time (see :func:`patch_time_bin`)
PATCH_MAX_FRAMES = 10_000


#: components per patch: at least this many per expected soma (disc of radius 2 gSig) the patch holds
PATCH_K_DENSITY = 0.5


def patch_init_budget(
    sizes: tuple[int, ...], gSig, K: int, p_ssub: int, density: float = PATCH_K_DENSITY
) -> tuple[int, int]:
    """Components and spatial downsampling of a patch's initialization: ``(K', p_ssub')``.

    ``sizes`` and ``gSig`` in array order.  ``K' = max(K, floor(density x n))``, ``n`` the
    patch's area in expected somata (the disc of radii 2 gSig the shape metrics use; the
    ellipsoid in a volume); density 0: ``K``.  A patch of rf 25 holds 8 such discs at gSig 5
    but 32 at gSig 2.5 (a recording binned 2x): with K 10 the init ran out of components
    before it ran out of cells (``bench/results/realdata_robustness.md``).  The greedy init
    still stops where the data run out of signal, so K' is a budget, not a count.
    ``p_ssub' <= p_ssub`` is the largest that keeps ``gSig / p_ssub' >= 1`` pixel in the
    frame: cells under a pixel wide in the downsampled patch are not found.
    """
    g = np.asarray(gSig, dtype=float)
    soma = float(np.pi * 2 * g[-2] * 2 * g[-1])
    if len(sizes) == 3 and g.size == 3:
        soma *= 4.0 / 3.0 * 2 * g[0]
    n = float(np.prod(sizes)) / soma
    k = max(int(K), int(density * n)) if density > 0 else int(K)
    return k, max(1, min(int(p_ssub), int(min(g[-2:]))))


def patch_time_bin(T: int) -> int:
    """Frames averaged per sample of a patch slab.

    1 up to :data:`PATCH_MAX_FRAMES` frames, then as many as keep the slab at most that long.

    A rule of the movie's length alone (not of the memory budget), so a run
    gives the same components whatever its budget, and one patch's working
    set stays bounded however long the movie is (rf 25: 3 x 10,000 x 51 x 51
    float32 = 0.31 GB).
    """
    return max(1, -(-int(T) // PATCH_MAX_FRAMES))


def patch_slices(dims: tuple[int, ...], rf, stride) -> list[tuple[slice, ...]]:
    """Overlapping patch windows (array order)."""
    axes = []
    for d, r, s in zip(dims, rf, stride, strict=True):
        size = min(2 * int(r), d)
        step = max(1, size - int(s))
        starts = list(range(0, d - size + 1, step))
        if starts[-1] + size < d:
            starts.append(d - size)
        axes.append([slice(a, a + size) for a in starts])
    return [tuple(c) for c in itertools.product(*axes)]


def patch_tiles(dims: tuple[int, ...], rf, stride) -> tuple[int, ...]:
    """Return the tile size per axis for a :class:`~.tiles.TileStore` read by the patches.

    The patches are those of :func:`patch_slices`; the tiles fit the patch grid exactly where they
    can.
    """
    from .tiles import tile_shape

    sizes = tuple(min(2 * int(r), int(d)) for r, d in zip(rf, dims, strict=True))
    steps = tuple(max(1, z - int(s)) for z, s in zip(sizes, stride, strict=True))
    return tile_shape(dims, sizes, steps)


def patch_store_plan(shape: tuple[int, ...], params) -> tuple[tuple[int, ...], int] | None:
    """Return ``(tile, tbin)`` of the tile store CNMF's patches will read from a movie of ``shape``.

    None when they read none: no patches (``rf`` None), a movie CNMF holds in
    memory (:data:`~.data.IN_MEMORY_SHARE` of the budget), or one the page cache
    holds (:func:`~.tiles.use_store`). The motion step writes that store as it
    writes the corrected frames (float32), so CNMF does not read them once more
    to build it. The same rules as the CNMF run's, from the same parameters.
    """
    from ..memory import budget
    from ..resolve import patch_geometry, settings_from_params
    from .tiles import use_store

    T, dims = int(shape[0]), tuple(int(d) for d in shape[1:])
    nbytes = 4 * T * int(np.prod(dims))
    if params.get("rf") is None or nbytes <= int(budget(params).limit * IN_MEMORY_SHARE):
        return None
    if not use_store(nbytes):
        return None
    st = settings_from_params(params, len(dims), dims)
    geometry = patch_geometry(params, st, len(dims), dims)
    if geometry is None:
        return None
    return patch_tiles(dims, *geometry), patch_time_bin(T)


def fit_patch(
    Y: np.ndarray,
    st: Settings,
    p_ssub: int,
    p_tsub: int,
    nb_patch: int,
    rounds: int = 1,
    *,
    tbin: int = 1,
    T_full: int | None = None,
) -> dict:
    """Find components in one patch (T, *patch) float32.

    ``Y`` may be the slab binned by ``tbin`` frames (see :func:`patch_time_bin`);
    the initialization then downsamples it by ``ceil(p_tsub / tbin)`` more, and
    the traces come back at the movie's ``T_full`` frames.

    Returns ``A`` (patch pixels C-order, K'), ``C`` (K', T), ``b``, ``f``.
    """
    if tbin > 1:
        p_tsub = max(1, -(-int(p_tsub) // int(tbin)))
    Y = np.ascontiguousarray(Y, dtype=np.float32)
    T = Y.shape[0]
    dims = Y.shape[1:]
    nd = len(dims)
    scale = np.array([1.0] * (nd - 2) + [p_ssub, p_ssub])
    gSig = tuple(float(g / s) for g, s in zip(st.gSig, scale, strict=True))
    gSiz = tuple(max(1, int(round(g / s))) for g, s in zip(st.gSiz, scale, strict=True))
    Yd = downsample(Y, p_ssub, p_tsub)
    A, C, b, f = greedy_roi(Yd, st.K, gSig, gSiz, nb=nb_patch, nIter=st.nIter)
    del Yd
    small = tuple(int(s) for s in downsample(Y[:1], p_ssub, 1).shape[1:])
    A = upsample_images(A, small, dims, p_ssub)
    b = upsample_images(b, small, dims, p_ssub)
    C = upsample_time(C, T, p_tsub)
    f = upsample_time(f, T, p_tsub)
    K = A.shape[1]
    W = np.ascontiguousarray(np.concatenate([A, b], axis=1), dtype=np.float32)
    H = np.ascontiguousarray(np.concatenate([C, f], axis=0), dtype=np.float32)
    if rounds and K:
        data = MovieData(Y)
        data.Y = Y.reshape(T, -1)
        for _ in range(rounds):
            W, H, K = spatial_step(data, W, H, K, nb_patch, st)
            W, H, K, _ = temporal_step(data, W, H, K, nb_patch, st.temporal)
    C, f = H[:K], H[K:]
    if tbin > 1 and T_full is not None:
        C, f = upsample_time(C, int(T_full), tbin), upsample_time(f, int(T_full), tbin)
    return {"A": W[:, :K], "C": C, "b": W[:, K:], "f": f}


def fit_patch_from(
    movie,
    sl: tuple[slice, ...],
    st: Settings,
    p_ssub: int,
    p_tsub: int,
    nb_patch: int,
    tbin: int = 1,
    T_full: int | None = None,
) -> dict:
    """Run :func:`fit_patch` on the patch ``sl`` read from ``movie`` where this runs.

    On a cluster worker reading a path it shares: the movie, or the :class:`~.tiles.TileStore` of
    its frames binned by ``tbin``, then with the movie's ``T_full``. The result says which process
    ran it.
    """
    import os

    from .tiles import TileStore

    if isinstance(movie, TileStore):
        out = fit_patch(movie.read(sl), st, p_ssub, p_tsub, nb_patch, tbin=tbin, T_full=T_full)
    else:
        data = MovieData(movie, max_bytes=0)
        out = fit_patch(
            data.patch(sl, tbin), st, p_ssub, p_tsub, nb_patch, tbin=tbin, T_full=data.T
        )
    out["pid"] = os.getpid()
    return out
