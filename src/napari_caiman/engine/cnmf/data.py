"""Chunked access to the movie for CNMF (internal).

The CNMF steps only need sufficient statistics (``Y H^T``, ``A^T Y``), the
noise per pixel and a downsampled copy for initialization, so the movie is
read in chunks of frames (or, for the noise, blocks of pixels over all
frames).  When the movie as float32 is smaller than ``max_bytes`` it is
loaded once into a (T, pixels) array and the statistics become single
matrix products; otherwise every pass streams from the source (memmap,
dask, ...), and peak memory is a chunk plus the factors.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..validate import check_finite
from ._shapes import downsample
from .noise import fft_sample_ranges, psd_noise
from .products import Regions, csc_arrays, sparse_t_chunk
from .tiles import TileStore, backing_dir, binned_chunks, tile_shape, use_store

#: movies (as float32) up to this size are held in memory during CNMF
DEFAULT_MAX_BYTES = 3 << 30

#: the share of the memory budget a movie's float32 copy may take to be held in memory
IN_MEMORY_SHARE = 0.4


def _as_array(x) -> np.ndarray:
    if hasattr(x, "compute") and not isinstance(x, np.ndarray):
        x = x.compute()
    return np.asarray(x)


class MovieData:
    """A movie as CNMF reads it: (T, P) pixels in C order, in memory or streamed in chunks."""

    def __init__(self, movie, *, max_bytes: int | None = None, chunk_bytes: int = 64 << 20):
        self.movie = movie
        self.T = int(movie.shape[0])
        self.dims = tuple(int(s) for s in movie.shape[1:])
        self.P = int(np.prod(self.dims))
        self.chunk_bytes = int(chunk_bytes)
        self.chunk_frames = max(1, min(self.T, chunk_bytes // max(1, 4 * self.P)))
        limit = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
        self.max_bytes = int(limit)
        self.in_memory = 4 * self.T * self.P <= limit
        self.Y: np.ndarray | None = None
        #: tile size per axis of a :class:`TileStore` (the patch driver sets it to fit its patches)
        self.tile: tuple[int, ...] | None = None
        #: folder of the tile store's file (default: next to the movie's file)
        self.folder: str | None = None
        #: open tile stores by (tbin, frame ranges); ``_kept``: those handed in (:meth:`adopt_store`)
        self._stores: dict[tuple, TileStore] = {}
        self._kept: set[tuple] = set()
        self._binned: MovieData | None = None

    # ------------------------------------------------------------------ reading
    def _read(self, t0: int, t1: int) -> np.ndarray:
        chunk = _as_array(self.movie[t0:t1])
        chunk = chunk.reshape(t1 - t0, self.P)
        if chunk.dtype != np.float32:
            chunk = chunk.astype(np.float32)
        if not getattr(self.movie, "finite", False):  # a NanFilled view already read NaN/inf as 0
            check_finite(chunk, first_frame=t0)
        return chunk

    def _frames(self, t0: int, t1: int) -> np.ndarray:
        return self._read(t0, t1).reshape(t1 - t0, *self.dims)

    def load(self):
        """Load into memory if small (a generator: yields after each chunk)."""
        if not self.in_memory or self.Y is not None:
            return
        Y = np.empty((self.T, self.P), np.float32)
        for t0 in range(0, self.T, self.chunk_frames):
            t1 = min(self.T, t0 + self.chunk_frames)
            Y[t0:t1] = self._read(t0, t1)
            yield t1, self.T
        self.Y = Y

    def chunks(self):
        """Yield ``(t0, t1, chunk)`` for frames ``t0:t1`` as (t, P) float32 chunks."""
        if self.Y is not None:
            yield 0, self.T, self.Y
            return
        for t0 in range(0, self.T, self.chunk_frames):
            t1 = min(self.T, t0 + self.chunk_frames)
            yield t0, t1, self._read(t0, t1)

    def binned(self, tbin: int) -> MovieData:
        """Return the movie averaged over ``tbin`` frames, as another :class:`MovieData`.

        The last sample is the mean of the frames left.  It is read from the tile
        store when that holds those samples (a long movie's, built for the
        patches), else binned from this movie's chunks as they are read; held in
        memory where it fits.
        """
        tbin = max(1, int(tbin))
        if tbin == 1:
            return self
        if self._binned is None or self._binned.movie.tbin != tbin:
            view = MovieData(
                _BinnedFrames(self, tbin), max_bytes=self.max_bytes, chunk_bytes=self.chunk_bytes
            )
            for _ in view.load():
                pass
            self._binned = view
        return self._binned

    # ------------------------------------------------------------------ tile store
    def wants_store(self, n_frames: int) -> bool:
        """Return True if reading ``n_frames`` of every pixel pixel-wise should go through a :class:`TileStore`.

        That is a streamed movie too large for the page cache.
        """
        if self.Y is not None:
            return False
        itemsize = getattr(getattr(self.movie, "dtype", None), "itemsize", 4)
        return use_store(int(n_frames) * self.P * int(itemsize))

    def iter_store(self, tbin: int = 1, ranges: list[tuple[int, int]] | None = None):
        """Yield (done, total) frames.

        Returns the :class:`TileStore` of ``ranges`` (default: all frames) binned by ``tbin`` (kept
        until :meth:`close_store`, and reused when asked for the same frames again). A store this
        object built for other frames is removed first (one on disk at a time), a handed-in one
        (:meth:`adopt_store`) is kept.
        """
        kept = self.stored(tbin, ranges)
        if kept is not None:
            return kept
        for k in [k for k in self._stores if k not in self._kept]:
            self._stores.pop(k).close()
        self._binned = None
        key = self._key(tbin, ranges)
        tile = self.tile or tile_shape(self.dims)
        store = yield from TileStore.build(
            self._frames,
            self.T,
            self.dims,
            tile,
            tbin=tbin,
            chunk_bytes=self.chunk_bytes,
            folder=self.folder or backing_dir(self.movie),
            ranges=list(key[1]),
        )
        self._stores[key] = store
        return store

    def adopt_store(self, store: TileStore, tbin: int) -> bool:
        """Take ``store`` (all frames binned by ``tbin``, written as the movie was made) as this movie's.

        Used when it is the store the patches would build: the same samples, tiles and frames of a
        movie read from disk (not loaded). The movie's motion border (a
        :class:`~napari_caiman.engine.border.NanFilled` view's) is applied to its reads. Returns
        whether it was taken; when not, its file is removed. Either way it is this object's to close.
        """
        tbin = max(1, int(tbin))
        fits = (
            self.Y is None
            and not self.in_memory
            and store.dims == self.dims
            and store.n == -(-self.T // tbin)
            and (self.tile is None or store.tile == tuple(self.tile))
        )
        if not fits:
            store.close()
            return False
        store.set_border(getattr(self.movie, "border", None))
        key = self._key(tbin, None)
        if key in self._stores:
            self._stores.pop(key).close()
        self._stores[key] = store
        self._kept.add(key)
        self._binned = None
        return True

    def _key(self, tbin: int, ranges: list[tuple[int, int]] | None) -> tuple:
        return (int(tbin), tuple(ranges or [(0, self.T)]))

    def stored(
        self, tbin: int = 1, ranges: list[tuple[int, int]] | None = None
    ) -> TileStore | None:
        """Return the open tile store of ``ranges`` binned by ``tbin``, if any.

        ``ranges`` default: all frames.
        """
        return self._stores.get(self._key(tbin, ranges))

    def close_store(self) -> None:
        """Remove the tile stores' files (if any)."""
        stores, self._stores, self._kept = list(self._stores.values()), {}, set()
        for store in stores:
            store.close()
        self._binned = None

    # ------------------------------------------------------------------ statistics
    def YHt(self, H: np.ndarray, regions: list | None = None) -> np.ndarray:
        """``Y H^T`` (P, k) for H (k, T).

        With ``regions`` (one entry per row of ``H``: an index array, or None
        for the whole column) only the entries of column ``j`` at
        ``regions[j]`` are computed, at the cost of the regions' pixels; the
        other entries are 0.  This is all the spatial HALS reads.
        """
        H = np.ascontiguousarray(H, dtype=np.float32)
        if regions is None:
            return self._YHt_dense(H)
        full = np.array([j for j, r in enumerate(regions) if r is None], np.int64)
        part = np.array([j for j, r in enumerate(regions) if r is not None and len(r)], np.int64)
        R = Regions(regions, part)
        acc, full_out = self.region_YHt(H, R, full)
        out = np.zeros((self.P, H.shape[0]), np.float32, order="F")
        R.scatter(acc, out)
        if full.size:
            out[:, full] = full_out
        return out

    def region_YHt(
        self, H: np.ndarray, R: Regions, full: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Compute ``Y H^T`` at the regions ``R`` and the whole columns ``full``, in one pass.

        Float64, one value per region entry, and (P, len(full)) for the columns.
        """
        H = np.ascontiguousarray(H, dtype=np.float32)
        acc = R.new_acc()
        full = np.asarray(full, np.int64)
        full_out = np.zeros((self.P, full.size), np.float32)
        for t0, t1, ch in self.chunks():
            Hc = H[:, t0:t1]
            R.add_chunk(ch, Hc, acc)
            if full.size:
                full_out += ch.T @ np.ascontiguousarray(Hc[full]).T
        return acc, full_out

    def _YHt_dense(self, H: np.ndarray) -> np.ndarray:
        if self.Y is not None:
            return (H @ self.Y).T
        # streamed: accumulate in place with BLAS (out += ch^T H_c^T), so no
        # second pixels x k array is made per chunk
        from scipy.linalg.blas import sgemm

        out = np.zeros((self.P, H.shape[0]), np.float32, order="F")
        for t0, t1, ch in self.chunks():
            ch = np.ascontiguousarray(ch, dtype=np.float32)
            Hc = np.ascontiguousarray(H[:, t0:t1])
            res = sgemm(1.0, ch.T, Hc.T, beta=1.0, c=out, overwrite_c=1)
            in_place = res is out or np.shares_memory(res, out)
            if not in_place:  # pragma: no cover - BLAS made a copy
                out = np.asfortranarray(res)
        return out

    def AtY(self, W: np.ndarray) -> np.ndarray:
        """``W^T Y`` (k, T) for dense W (P, k).

        The patches' small factors (whole fields of view use :meth:`AtY_sparse`).
        """
        W = np.ascontiguousarray(W, dtype=np.float32)
        out = np.empty((W.shape[1], self.T), np.float32)
        for t0, t1, ch in self.chunks():
            out[:, t0:t1] = (ch @ W).T
        return out

    def AtY_sparse(self, A, b: np.ndarray) -> np.ndarray:
        """Return ``[A b]^T Y`` (K + nb, T) for sparse footprints ``A`` and a dense background ``b``.

        ``A`` is (P, K), ``b`` (P, nb); the cost is that of ``A``'s non-zeros.
        """
        from scipy import sparse

        S = sparse.csc_matrix(A, dtype=np.float32)
        S.sort_indices()
        K, nb = S.shape[1], b.shape[1]
        out = np.empty((K + nb, self.T), np.float32)
        bd = np.ascontiguousarray(b, dtype=np.float32)
        arrays = csc_arrays(S)
        for t0, t1, ch in self.chunks():
            if K:
                sparse_t_chunk(ch, arrays, out, t0)
            if nb:
                out[K:, t0:t1] = (ch @ bd).T
        return out

    def noise(self, noise_range, method, max_num_samples_fft):
        """Yield (done, total); return (sn (P,), vmin, vmax).

        Streamed, only the frames the estimate uses are read (and vmin, vmax
        are theirs).
        """
        sn = np.empty(self.P, np.float64)
        vmin, vmax = np.inf, -np.inf
        if self.Y is not None:
            step = max(1, (32 << 20) // max(1, 4 * self.T))
            for p0 in range(0, self.P, step):
                p1 = min(self.P, p0 + step)
                blk = self.Y[:, p0:p1]
                sn[p0:p1] = psd_noise(blk.T, noise_range, method, max_num_samples_fft)
                vmin, vmax = min(vmin, float(blk.min())), max(vmax, float(blk.max()))
                yield p1, self.P
            return sn, vmin, vmax
        # stream blocks of pixels, contiguous in C order, of about chunk_bytes, over
        # only the frames the noise estimate uses (three pieces of a long movie):
        # reading all frames of each block made a movie larger than the page
        # cache read itself from disk once per block
        ranges = fft_sample_ranges(self.T, max_num_samples_fft)
        n_t = sum(b - a for a, b in ranges)
        max_px = max(1, self.chunk_bytes // max(1, 4 * n_t))
        store = self.stored(1, ranges)
        if store is not None:
            # the frames reordered by pixel tile (see iter_store): contiguous reads
            done = 0
            for idx, blk in store.pixel_groups(max_px):
                sn[idx] = psd_noise(blk.T, noise_range, method, max_num_samples_fft)
                done += idx.size
                yield done, self.P
            return sn, store.vmin, store.vmax
        for key, p0, p1 in pixel_blocks(self.dims, max_px):
            parts = [_as_array(self.movie[(slice(a, b),) + key]) for a, b in ranges]
            blk = (parts[0] if len(parts) == 1 else np.concatenate(parts)).reshape(n_t, -1)
            blk = blk.astype(np.float32, copy=False)
            if not getattr(self.movie, "finite", False):
                check_finite(blk)
            sn[p0:p1] = psd_noise(blk.T, noise_range, method, max_num_samples_fft)
            vmin, vmax = min(vmin, float(blk.min())), max(vmax, float(blk.max()))
            del blk
            yield p1, self.P
        return sn, vmin, vmax

    def downsampled(self, ssub: int, tsub: int) -> np.ndarray:
        """(T', *dims') float32 copy averaged over ``tsub`` frames and ``ssub`` pixels."""
        if self.Y is not None:
            return downsample(self.Y.reshape(self.T, *self.dims), ssub, tsub)
        parts = [
            downsample(ch, ssub, 1) if ssub > 1 else ch
            for _, ch in binned_chunks(self._frames, self.T, tsub, self.chunk_frames)
        ]
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def mean_image(self) -> np.ndarray:
        """Return the mean image (P,) float32.

        From the tile store's pass when it was built from every frame, else one
        pass over the movie.
        """
        for store in self._stores.values():
            if store.mean is not None:
                return store.mean.reshape(self.P)
        acc = np.zeros(self.P, np.float64)
        for _, _, ch in self.chunks():
            acc += ch.sum(axis=0, dtype=np.float64)
        return (acc / self.T).astype(np.float32)

    def patch(self, sl: tuple[slice, ...], tbin: int = 1) -> np.ndarray:
        """(T, *patch) float32 of one patch (reads only its pixels).

        With ``tbin`` > 1, (ceil(T / tbin), *patch) of means over ``tbin`` frames, read in chunks so
        that the full-rate slab is never held.
        """
        store = self.stored(tbin)
        if store is not None:
            return store.read(sl)
        if tbin > 1:
            shape = tuple(s.stop - s.start for s in sl)
            step = self.chunk_bytes // max(1, 4 * int(np.prod(shape)))
            parts = [
                ch
                for _, ch in binned_chunks(
                    lambda t0, t1: self.patch_frames(sl, t0, t1), self.T, tbin, step
                )
            ]
            return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
        return self.patch_frames(sl, 0, self.T)

    def patch_frames(self, sl: tuple[slice, ...], t0: int, t1: int) -> np.ndarray:
        """(t1 - t0, *patch) float32 of frames ``t0:t1`` of one patch."""
        if self.Y is not None:
            Y = self.Y.reshape(self.T, *self.dims)[(slice(t0, t1),) + sl]
            return np.ascontiguousarray(Y)
        out = _as_array(self.movie[(slice(t0, t1),) + sl])
        if getattr(self.movie, "finite", False) and out.dtype == np.float32:
            return out  # a fresh array of a NanFilled view: finite, and nobody else's
        out = out.astype(np.float32)
        check_finite(out)
        return out


class _BinnedFrames:
    """View ``(ceil(T / tbin), *dims)`` float32 of a movie's frames averaged over ``tbin``.

    See :meth:`MovieData.binned`; slices only.
    """

    finite = True  # the source's frames are checked as they are read
    dtype = np.dtype(np.float32)

    def __init__(self, data: MovieData, tbin: int) -> None:
        self.data, self.tbin = data, int(tbin)
        self.shape = (-(-data.T // self.tbin), *data.dims)

    def __getitem__(self, key: slice) -> np.ndarray:
        b0, b1, _ = key.indices(self.shape[0])
        data, tbin = self.data, self.tbin
        store = data.stored(tbin)
        if store is not None:
            return store.read_frames(b0, b1)
        t0, t1 = b0 * tbin, min(data.T, b1 * tbin)
        frames = data.Y[t0:t1] if data.Y is not None else data._read(t0, t1)
        return downsample(frames.reshape(t1 - t0, *data.dims), 1, tbin)


def pixel_blocks(dims: tuple[int, ...], max_px: int, offset: int = 0):
    """Yield blocks of at most ``max_px`` pixels, each contiguous in C order.

    At least one row of the last axis, split as needed: ``(key, p0, p1)`` with ``key`` the spatial
    index (ints and slices) and ``[p0, p1)`` its flat pixel range.
    """
    dims = tuple(int(d) for d in dims)
    inner = int(np.prod(dims[1:])) if len(dims) > 1 else 1
    if inner <= max_px or len(dims) == 1:
        step = max(1, max_px // inner)
        for i0 in range(0, dims[0], step):
            i1 = min(dims[0], i0 + step)
            yield (slice(i0, i1),), offset + i0 * inner, offset + i1 * inner
        return
    for i in range(dims[0]):
        for key, p0, p1 in pixel_blocks(dims[1:], max_px, offset + i * inner):
            yield (i, *key), p0, p1


def check_not_constant(vmin: float, vmax: float) -> None:
    """Raise InputError when the movie is constant (nothing to extract)."""
    if not vmax > vmin:
        raise InputError(
            "movie", f"is constant (every pixel equals {vmin:g} in every frame); nothing to extract"
        )
