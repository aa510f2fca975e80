"""A temporary tile-major copy of a movie on disk, for reads of pixels over all frames.

A movie file is frame-major: one frame's pixels are contiguous, one pixel's
time series is spread over the whole file.  The CNMF patches (a box of pixels
over all frames) and the per-pixel noise (all pixels over the sampled frames)
read the movie the other way round.  Through a memory map, each of those
reads faults pages all over the file, and the kernel reads ahead around every
fault (megabytes on many disks): a movie larger than the page cache is then
read from disk once per patch, hundreds of times its size in all.

:class:`TileStore` is written in one sequential pass over the movie (frames
in chunks, optionally averaged over ``tbin`` frames) and holds the frames as
tiles: a box of pixels (``tile`` per axis) with all its frames contiguous.
A box of pixels over all frames is then a few contiguous reads, and each tile
is read about once.  Its size on disk is the binned movie's (as float32),
bounded for long movies by the patches' time binning; the file is allocated
before it is written, so a full disk fails at once, and it is removed when
the store is closed (also on error or cancel).

:class:`TileWriter` writes a store from frames handed to it in order, a chunk
at a time: the motion step feeds it the corrected frames as it writes them, so
that CNMF finds the copy made without one more pass over the corrected movie.

Internal to :mod:`napari_caiman.engine.cnmf`.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ._shapes import box_indices, downsample

__all__ = ["TileStore", "TileWriter", "tile_shape", "binned_chunks"]

#: ``"auto"``: a store is used when the bytes to read exceed half of the RAM
#: available (so that the page cache cannot hold them); ``"always"``/``"never"``
#: (tests, benchmarks)
POLICY = "auto"


def binned_chunks(
    read: Callable[[int, int], np.ndarray], T: int, tbin: int, step: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Read frames ``0:T`` in chunks and average them over ``tbin`` frames.

    ``read(t0, t1)`` reads chunks of about ``step`` frames (multiples of ``tbin``); the last sample
    averages the frames left. Yields ``(b0, chunk)``, ``b0`` the first binned sample's index.
    """
    tbin = max(1, int(tbin))
    step = max(tbin, (int(step) // tbin) * tbin)
    for t0 in range(0, T, step):
        t1 = min(T, t0 + step)
        ch = read(t0, t1)
        yield t0 // tbin, (downsample(ch, 1, tbin) if tbin > 1 else ch)


def tile_shape(
    dims: tuple[int, ...],
    sizes: tuple[int, ...] | None = None,
    steps: tuple[int, ...] | None = None,
    *,
    default: int = 16,
) -> tuple[int, ...]:
    """Tile size per axis: the whole axis where one patch covers it.

    Where patches of ``sizes`` start every ``steps`` pixels, their common divisor (tiles then fit
    patches exactly) when it is at least 8; else about ``default``, chosen so that the tiles pad the
    axis by less than one tile's count of pixels.
    """
    out = []
    for i, d in enumerate(dims):
        d = int(d)
        t = -(-d // -(-d // default))  # ~default, padding d by < d / default pixels
        if sizes is not None and steps is not None:
            g = math.gcd(int(sizes[i]), int(steps[i]))
            if int(sizes[i]) >= d:
                t = d
            elif g >= 8:
                t = g
        out.append(max(1, min(d, t)))
    return tuple(out)


def use_store(source_bytes: int) -> bool:
    """Whether reads of ``source_bytes`` should go through a :class:`TileStore`."""
    if POLICY in ("always", "never"):
        return POLICY == "always"
    from ..memory import available_memory

    return int(source_bytes) > available_memory() // 2


def backing_dir(movie) -> str | None:
    """Return the folder of the file a movie (or the movie a view wraps) is read from, if any."""
    for _ in range(8):
        if movie is None:
            return None
        for attr in ("filename", "path", "source"):  # np.memmap, io.shared.MovieFile
            p = getattr(movie, attr, None)
            if isinstance(p, (list, tuple)) and p:
                p = p[0]
            if isinstance(p, (str, os.PathLike)) and os.path.exists(p):
                return os.path.dirname(os.path.abspath(p))
        movie = getattr(movie, "movie", None)
    return None


class TileStore:
    """Frames ``(n, *dims)`` float32 on disk as tiles (see the module's text).

    Build it with :meth:`build` (a generator), read boxes with :meth:`read`,
    and :meth:`close` it (or use it as a context manager) to remove the file.
    """

    def __init__(self, path: str, dims: tuple[int, ...], n: int, tile: tuple[int, ...]) -> None:
        self.path = path
        self.dims = tuple(int(d) for d in dims)
        self.n = int(n)
        self.tile = tuple(int(t) for t in tile)
        self.grid = tuple(-(-d // t) for d, t in zip(self.dims, self.tile, strict=True))
        self.tile_px = int(np.prod(self.tile))
        self.tile_bytes = 4 * self.n * self.tile_px
        self.nbytes = self.tile_bytes * int(np.prod(self.grid))
        self.vmin, self.vmax = np.inf, -np.inf
        #: the temporal mean of every pixel over all the movie's frames (full-rate,
        #: float32, ``dims``), when the store was built from all of them
        self.mean: np.ndarray | None = None
        #: pixels per axis at each edge read as 0 (a motion border, see :meth:`set_border`)
        self.border: tuple[int, ...] | None = None
        self._fd: int | None = None
        self._owner = True  # the process that built the store removes its file

    def __getstate__(self) -> dict:
        """Pickle by path: a cluster worker opens the file read-only.

        Only the builder removes it.
        """
        state = dict(self.__dict__)
        state["_fd"], state["_owner"] = None, False
        return state

    def __setstate__(self, state: dict) -> None:
        """Restore a store pickled by path, opening its file read-only."""
        self.__dict__.update(state)
        self._fd = os.open(self.path, os.O_RDONLY)

    # ------------------------------------------------------------------ writing
    @classmethod
    def create(
        cls, dims: tuple[int, ...], n: int, tile: tuple[int, ...], folder: str | None = None
    ) -> TileStore:
        """Return a new store of ``n`` samples, its whole file reserved (a full disk fails here)."""
        try:
            fd, path = tempfile.mkstemp(prefix="napari-caiman-tiles-", suffix=".f32", dir=folder)
        except OSError:  # the movie's folder is read-only: the system's temporary folder
            folder = None
            fd, path = tempfile.mkstemp(prefix="napari-caiman-tiles-", suffix=".f32")
        store = cls(path, dims, n, tile)
        store._fd = fd
        try:
            store._allocate(folder)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def build(
        cls,
        read: Callable[[int, int], np.ndarray],
        T: int,
        dims: tuple[int, ...],
        tile: tuple[int, ...],
        *,
        tbin: int = 1,
        chunk_bytes: int = 64 << 20,
        folder: str | None = None,
        ranges: list[tuple[int, int]] | None = None,
    ):
        """Yield ``(done, total)`` frames; return the store.

        ``read(t0, t1)`` gives frames ``t0:t1`` as ``(t1 - t0, *dims)`` float32.
        With ``ranges`` only those frame ranges are stored (one after the
        other); with ``tbin`` > 1 each sample is the mean of ``tbin`` frames.
        """
        writer = TileWriter(dims, T, tile, tbin=tbin, folder=folder, ranges=ranges)
        try:
            frame_bytes = 4 * int(np.prod(dims))
            step = max(1, int(chunk_bytes) // max(1, frame_bytes))
            step = max(writer.tbin, step // writer.tbin * writer.tbin)
            done = 0
            for a, b in writer.ranges:
                for t0 in range(a, b, step):
                    t1 = min(b, t0 + step)
                    writer.add(t0, read(t0, t1))
                    done += t1 - t0
                    yield done, writer.total
            return writer.finish()
        except BaseException:
            writer.abort()
            raise

    def _allocate(self, folder: str | None) -> None:
        """Reserve the whole file now, so that a full disk fails before any work."""
        from ..memory import DiskFullError, format_bytes, free_disk, is_disk_full

        assert self._fd is not None
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(self._fd, 0, max(1, self.nbytes))
            else:  # pragma: no cover - not on every OS
                os.ftruncate(self._fd, self.nbytes)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            where = folder or tempfile.gettempdir()
            raise DiskFullError(
                "disk",
                f"CNMF needs {format_bytes(self.nbytes)} of temporary space in "
                f"{where!r} to reorder the movie's frames, and "
                f"{format_bytes(free_disk(where))} are free. Free some space, or put "
                "the movie (or its motion-corrected copy) on a larger disk.",
            ) from None

    def _write(self, s0: int, ch: np.ndarray) -> None:
        """Write samples ``s0 : s0 + len(ch)`` (each ``(*dims)``) into their tiles."""
        m = ch.shape[0]
        self.vmin = min(self.vmin, float(ch.min()))
        self.vmax = max(self.vmax, float(ch.max()))
        padded = tuple(g * t for g, t in zip(self.grid, self.tile, strict=True))
        if padded != self.dims:
            buf = np.zeros((m, *padded), np.float32)
            buf[(slice(None),) + tuple(slice(0, d) for d in self.dims)] = ch
            ch = buf
        nd = len(self.dims)
        # (m, g0, t0, g1, t1, ...) -> (g0, g1, ..., m, t0, t1, ...)
        shape = (m,) + tuple(itertools.chain.from_iterable(zip(self.grid, self.tile, strict=True)))
        order = tuple(1 + 2 * i for i in range(nd)) + (0,) + tuple(2 + 2 * i for i in range(nd))
        blocks = np.ascontiguousarray(ch.reshape(shape).transpose(order))
        blocks = blocks.reshape(-1, m * self.tile_px)
        at = 4 * s0 * self.tile_px
        assert self._fd is not None
        for k in range(blocks.shape[0]):
            os.pwrite(self._fd, memoryview(blocks[k]), k * self.tile_bytes + at)

    # ------------------------------------------------------------------ reading
    def read(self, sl: tuple[slice, ...]) -> np.ndarray:
        """``(n, *box)`` float32 of the pixels ``sl`` (slices in array order) over all stored samples."""
        assert self._fd is not None, "the tile store is closed"
        box = tuple(s.stop - s.start for s in sl)
        out = np.empty((self.n, *box), np.float32)
        buf = np.empty((self.n, *self.tile), np.float32)
        view = memoryview(buf.data).cast("B")  # type: ignore[arg-type]  # preadv fills buf in place
        ranges = [range(s.start // t, -(-s.stop // t)) for s, t in zip(sl, self.tile, strict=True)]
        for idx in itertools.product(*ranges):
            k = int(np.ravel_multi_index(idx, self.grid))
            got = os.preadv(self._fd, [view], k * self.tile_bytes)
            if got != self.tile_bytes:  # pragma: no cover - the file was allocated in full
                raise OSError(f"short read from the tile store {self.path}")
            src, dst = [slice(None)], [slice(None)]
            for i, s, t in zip(idx, sl, self.tile, strict=True):
                lo, hi = max(s.start, i * t), min(s.stop, (i + 1) * t)
                src.append(slice(lo - i * t, hi - i * t))
                dst.append(slice(lo - s.start, hi - s.start))
            out[tuple(dst)] = buf[tuple(src)]
        self._blank_border(out, sl)
        return out

    def read_frames(self, s0: int, s1: int) -> np.ndarray:
        """Return the stored samples ``s0:s1`` of every pixel, ``(s1 - s0, *dims)`` float32.

        One contiguous read per tile: the frame-major view the binned updates stream.
        """
        assert self._fd is not None, "the tile store is closed"
        s0, s1 = max(0, int(s0)), min(self.n, int(s1))
        m = max(0, s1 - s0)
        n_tiles = int(np.prod(self.grid))
        blocks = np.empty((n_tiles, m * self.tile_px), np.float32)
        size, at = 4 * m * self.tile_px, 4 * s0 * self.tile_px
        for k in range(n_tiles if m else 0):
            view = memoryview(blocks[k]).cast("B")
            if os.preadv(self._fd, [view], k * self.tile_bytes + at) != size:  # pragma: no cover
                raise OSError(f"short read from the tile store {self.path}")
        nd = len(self.dims)
        # (g0, g1, ..., m, t0, t1, ...) -> (m, g0, t0, g1, t1, ...), the inverse of _write
        order = (nd,) + tuple(itertools.chain.from_iterable((i, nd + 1 + i) for i in range(nd)))
        padded = tuple(g * t for g, t in zip(self.grid, self.tile, strict=True))
        frames = blocks.reshape(*self.grid, m, *self.tile).transpose(order).reshape(m, *padded)
        crop = (slice(None),) + tuple(slice(0, d) for d in self.dims)
        out = np.ascontiguousarray(frames[crop])
        self._blank_border(out, tuple(slice(0, d) for d in self.dims))
        return out

    def set_border(self, border: tuple[int, ...] | None) -> None:
        """Read ``border`` pixels per axis at each edge as 0 from now on (the mean image too).

        What :class:`~napari_caiman.engine.border.NanFilled` does to the frames,
        applied to a store written before the motion border was known.
        """
        if border is None or not any(int(b) > 0 for b in border):
            self.border = None
            return
        self.border = tuple(int(b) for b in border)
        if self.mean is not None:
            self.mean = self.mean.copy()
            self._blank_border(self.mean[None], tuple(slice(0, d) for d in self.dims))
        self.vmin, self.vmax = min(self.vmin, 0.0), max(self.vmax, 0.0)

    def _blank_border(self, out: np.ndarray, sl: tuple[slice, ...]) -> None:
        """Set the border pixels of ``out`` ((n, *box) at the pixels ``sl``) to 0."""
        if self.border is None:
            return
        for axis, (s, b, d) in enumerate(zip(sl, self.border, self.dims, strict=True)):
            if b <= 0:
                continue
            idx = np.arange(s.start, s.stop)
            hit = np.flatnonzero((idx < b) | (idx >= d - b))
            if hit.size:
                key: list = [slice(None)] * out.ndim
                key[1 + axis] = hit
                out[tuple(key)] = 0

    def pixel_groups(self, max_px: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield the groups of whole tiles of about ``max_px`` pixels.

        Each is ``(flat C-order pixel indices of the movie, (n, pixels) float32 samples)``, padding
        left out.
        """
        per = max(1, int(max_px) // self.tile_px)
        tiles = list(itertools.product(*[range(g) for g in self.grid]))
        for g0 in range(0, len(tiles), per):
            idx_parts, data_parts = [], []
            for idx in tiles[g0 : g0 + per]:
                sl = tuple(
                    slice(i * t, min(d, (i + 1) * t))
                    for i, t, d in zip(idx, self.tile, self.dims, strict=True)
                )
                idx_parts.append(box_indices(sl, self.dims))
                data_parts.append(self.read(sl).reshape(self.n, -1))
            yield np.concatenate(idx_parts), np.concatenate(data_parts, axis=1)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Close the store's file, and remove it when this process built it."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._owner:
            self._owner = False  # once: the name may be another store's later
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> TileStore:
        """Return the store (closed when the ``with`` block ends)."""
        return self

    def __exit__(self, *exc) -> None:
        """Close the store."""
        self.close()

    def __del__(self) -> None:  # pragma: no cover - a store dropped without close()
        """Close the store if it was dropped without :meth:`close`."""
        try:
            self.close()
        except Exception:
            pass


class TileWriter:
    """Write a :class:`TileStore` from frames handed to it in order, a chunk at a time.

    Frames ``t0 : t0 + len(frames)`` come in order (``add``); those in
    ``ranges`` (default: all ``T``) are stored, averaged over ``tbin`` frames
    within each range, with the frames of an unfinished sample kept until the
    next chunk completes it. The samples are those :meth:`TileStore.build`
    would write from the same frames, bit for bit. When every frame is
    stored, their float64 sums make the store's mean image. :meth:`finish`
    returns the store; :meth:`abort` (also on error) removes the file.
    """

    def __init__(
        self,
        dims: tuple[int, ...],
        T: int,
        tile: tuple[int, ...],
        *,
        tbin: int = 1,
        folder: str | None = None,
        ranges: list[tuple[int, int]] | None = None,
        buffer_bytes: int = 64 << 20,
    ) -> None:
        self.T, self.tbin = int(T), max(1, int(tbin))
        # samples are written in runs of about buffer_bytes, so that each tile gets one
        # write per run (a few small writes to each of thousands of tiles per chunk of
        # frames left the page cache's writeback with random writes)
        self.buffer_bytes = int(buffer_bytes)
        self._buf: list[np.ndarray] = []
        self._buf_s0 = self._buf_n = 0
        # a run is written on a thread of its own while the next one fills (the caller, the
        # motion step's loop, does not wait on the page cache's writeback); one at a time
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: Future | None = None
        self.dims = tuple(int(d) for d in dims)
        self.ranges = [(0, self.T)] if ranges is None else [(int(a), int(b)) for a, b in ranges]
        self.total = sum(b - a for a, b in self.ranges)
        # the first sample of each range (the last entry: the store's samples)
        self._first = list(
            itertools.accumulate([0] + [-(-(b - a) // self.tbin) for a, b in self.ranges])
        )
        self.store: TileStore | None = TileStore.create(self.dims, self._first[-1], tile, folder)
        self._sum = np.zeros(int(np.prod(self.dims)), np.float64) if self.total == self.T else None
        self._next = self.ranges[0][0] if self.ranges else 0  # the frame expected next
        self._pending: np.ndarray | None = None  # frames of the current range's unfinished sample
        self.taken = 0  # frames of the ranges given so far

    def add(self, t0: int, frames: np.ndarray) -> None:
        """Take frames ``t0 : t0 + len(frames)`` ((m, *dims) float32, finite), the next in order."""
        t0, m = int(t0), int(frames.shape[0])
        if self._sum is not None:
            flat = frames.reshape(m, -1)
            np.add(self._sum, flat.sum(axis=0, dtype=np.float64), out=self._sum)
        for r, (a, b) in enumerate(self.ranges):
            lo, hi = max(a, t0), min(b, t0 + m)
            if lo < hi:
                self._take(r, lo, frames[lo - t0 : hi - t0])

    def _take(self, r: int, lo: int, part: np.ndarray) -> None:
        a, b = self.ranges[r]
        if lo != self._next:
            raise ValueError(f"tile store: frame {lo} given where frame {self._next} comes next")
        self.taken += len(part)
        start = lo  # first frame of the unfinished sample, when there is one
        if self._pending is not None:
            start -= len(self._pending)
            part = np.concatenate([self._pending, part])
            self._pending = None
        end = start + len(part)
        keep = len(part) if end == b else (len(part) // self.tbin) * self.tbin
        if keep:
            ch = part[:keep]
            ch = downsample(ch, 1, self.tbin) if self.tbin > 1 else ch
            self._queue(self._first[r] + (start - a) // self.tbin, np.asarray(ch, np.float32))
        if keep < len(part):
            self._pending = np.array(part[keep:], np.float32)
        self._next = end
        if end == b and r + 1 < len(self.ranges):
            self._next = self.ranges[r + 1][0]

    def _queue(self, s0: int, samples: np.ndarray) -> None:
        """Write ``samples`` at sample ``s0`` (the next after the queued ones) when the run is long."""
        if not self._buf:
            self._buf_s0 = s0
        assert s0 == self._buf_s0 + self._buf_n
        self._buf.append(samples)
        self._buf_n += len(samples)
        if self._buf_n * samples[0].nbytes >= self.buffer_bytes:
            self._flush()

    def _flush(self) -> None:
        if self._buf and self.store is not None:
            run = self._buf[0] if len(self._buf) == 1 else np.concatenate(self._buf)
            self._buf, self._buf_n = [], 0
            self._wait()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiles")
            self._inflight = self._pool.submit(self.store._write, self._buf_s0, run)

    def _wait(self) -> None:
        """Wait for the run being written (its error, if any, is raised here)."""
        fut, self._inflight = self._inflight, None
        if fut is not None:
            fut.result()

    def _stop(self) -> None:
        try:
            self._wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    @property
    def complete(self) -> bool:
        """Return True when every frame to store has been given."""
        return self.taken == self.total and self._pending is None

    def finish(self) -> TileStore:
        """Return the store, every frame written (``ValueError`` if some are missing)."""
        if not self.complete or self.store is None:
            self.abort()
            raise ValueError(f"tile store: frames from {self._next} on were never given")
        try:
            self._flush()
            self._stop()
        except BaseException:
            self.abort()
            raise
        store, self.store = self.store, None
        if self._sum is not None:
            store.mean = (self._sum / max(1, self.T)).astype(np.float32).reshape(self.dims)
        return store

    def abort(self) -> None:
        """Remove the store's file (a cancel, an error, frames not all given)."""
        with contextlib.suppress(Exception):
            self._stop()
        if self.store is not None:
            self.store.close()
            self.store = None
        self._pending, self._buf = None, []
