"""Summary images of a movie (mean, max, std, local correlation), in one pass.

The movie is read in chunks of frames, so memory does not grow with the
number of frames T and a memory-mapped movie stays on disk.  Per pixel we
accumulate, in float64 and relative to a per-pixel offset taken from the
first chunk (to avoid cancellation), the count of valid samples, the sum and
the sum of squares; and, for each offset of the half neighbourhood, the sum of
products with the neighbour (shifted-slice products).

Local correlation follows CaImAn's ``local_correlations``: for each pixel, the
mean over its neighbours (8 in 2D / 26 in 3D with ``eight_neighbours=True``,
else 4 / 6) of the temporal Pearson correlation with that neighbour, divided
by the number of neighbours that exist (fewer at the edges).

Missing values (NaN, e.g. the borders left by motion correction with
``border_nan=True``) are ignored: mean, max and std use the valid samples of
each pixel; for correlations a NaN sample is treated as equal to that pixel's
mean over its valid samples (i.e. it adds nothing to the variance or
covariance).  Pixels with no valid sample get 0 in every image; a pixel with
zero variance has correlation 0 with its neighbours (they still count in the
divisor).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from .progress import Progress, run
from .threads import single_threaded_blas
from .validate import check_movie

__all__ = [
    "SummaryImages",
    "SummaryAccumulator",
    "iter_summary_images",
    "summary_images",
    "local_correlations",
    "mean_image",
    "max_image",
    "neighbour_offsets",
]

_STAGE = "summary images"


@dataclass
class SummaryImages:
    """Summary images of a movie, each float32 of the frame shape.

    Attributes
    ----------
    mean, max, std : ndarray
        Per-pixel temporal mean, maximum and standard deviation (ddof=0), in
        the movie's intensity units, over the valid (non-NaN) samples.
    corr : ndarray or None
        Local correlation image (dimensionless, in [-1, 1]); None if not
        computed.
    """

    mean: np.ndarray
    max: np.ndarray
    std: np.ndarray
    corr: np.ndarray | None


def neighbour_offsets(ndim: int, eight_neighbours: bool = True) -> list[tuple[int, ...]]:
    """Half of the neighbourhood offsets (one of each pair +d / -d).

    Parameters
    ----------
    ndim : int
        2 or 3 spatial dimensions.
    eight_neighbours : bool
        Full (8 in 2D / 26 in 3D) neighbourhood if True, else the face
        neighbours (4 / 6).

    Returns
    -------
    list of tuple of int
        Offsets in array order, lexicographically positive.
    """
    if eight_neighbours:
        offs = [d for d in itertools.product((-1, 0, 1), repeat=ndim) if any(d)]
    else:
        offs = [tuple(int(i == a) for i in range(ndim)) for a in range(ndim)]
    return [d for d in offs if d > (0,) * ndim]


def _pair_slices(offset, shape):
    """Slices (a, b) such that b-pixels are the a-pixels moved by ``offset``."""
    sa, sb = [], []
    for d, n in zip(offset, shape, strict=True):
        if d >= 0:
            sa.append(slice(0, n - d))
            sb.append(slice(d, n))
        else:
            sa.append(slice(-d, n))
            sb.append(slice(0, n + d))
    return tuple(sa), tuple(sb)


def _default_chunk(frame_size: int) -> int:
    # ~2 M float64 values (16 MB) per chunk: a progress report (and a chance
    # to cancel) every ~0.1 s, at no measurable cost in speed
    return max(1, (1 << 21) // max(frame_size, 1))


@numba.njit(nogil=True, cache=True)
def _accumulate_rows(
    y, off, offs, count, s1, s2, mx, cross, miss_a, miss_b, miss_n, zy0, zy1
):  # pragma: no cover
    """Add rows ``zy0:zy1`` (flat over Z, Y) of one chunk (t, Z, Y, X) into the per-pixel sums.

    Sums relative to ``off``, NaN = missing, and, per neighbour offset ``offs[i]``, the sums of
    products with that neighbour and the NaN corrections (see :func:`_iter_accumulate`). Each row
    writes only its own pixels' sums, so disjoint row ranges run on threads at once (the GIL is
    released; numba's ``parallel=True`` OpenMP pool would not survive the fork of a napari step's
    child process).
    """
    T, Z, Y, X = y.shape
    n_off = offs.shape[0]
    for zy in range(zy0, zy1):
        z = zy // Y
        r = zy - z * Y
        for t in range(T):
            for x in range(X):
                v = y[t, z, r, x]
                if v == v:
                    d = v - off[z, r, x]
                    count[z, r, x] += 1.0
                    s1[z, r, x] += d
                    s2[z, r, x] += d * d
                    if v > mx[z, r, x]:
                        mx[z, r, x] = v
        for i in range(n_off):
            z2 = z + offs[i, 0]
            r2 = r + offs[i, 1]
            if z2 < 0 or z2 >= Z or r2 < 0 or r2 >= Y:
                continue
            dx = offs[i, 2]
            x0 = max(0, -dx)
            x1 = min(X, X - dx)
            for t in range(T):
                for x in range(x0, x1):
                    va = y[t, z, r, x]
                    vb = y[t, z2, r2, x + dx]
                    na = va != va
                    nb = vb != vb
                    ya = 0.0 if na else va - off[z, r, x]
                    yb = 0.0 if nb else vb - off[z2, r2, x + dx]
                    cross[i, z, r, x] += ya * yb
                    if nb:
                        miss_a[i, z, r, x] += ya
                    if na:
                        miss_b[i, z, r, x] += yb
                    if na or nb:
                        miss_n[i, z, r, x] += 1.0


class SummaryAccumulator:
    """The sums behind the summary images, fed chunks of frames in any order.

    Used by :func:`iter_summary_images` (one pass over a movie) and by the
    motion step, which feeds it the corrected frames as it writes them, so the
    corrected movie is not read again.  Use as a context manager (its threads
    are made for this accumulation only: a pool made earlier would not survive
    the fork of a napari step's child process).

    Parameters
    ----------
    frame_shape : tuple of int
        (Y, X) or (Z, Y, X).
    want_corr : bool
        Also accumulate the neighbour products of the correlation image.
    eight_neighbours : bool
        8 (2D) / 26 (3D) neighbours if True, else 4 / 6.
    """

    def __init__(
        self, frame_shape: tuple[int, ...], *, want_corr: bool = True, eight_neighbours: bool = True
    ) -> None:
        self.frame_shape = tuple(int(n) for n in frame_shape)
        ndim = len(self.frame_shape)
        self.want_corr = want_corr
        offsets = neighbour_offsets(ndim, eight_neighbours) if want_corr else []
        self._pairs = [_pair_slices(d, self.frame_shape) for d in offsets]
        shape3 = (1,) * (3 - ndim) + self.frame_shape  # a 2D frame is one plane
        self._shape3 = shape3
        self._offs3 = np.array([(0,) * (3 - ndim) + tuple(d) for d in offsets], np.int64).reshape(
            -1, 3
        )
        self.frames = 0  # frames added so far
        self._offset: np.ndarray | None = None  # per-pixel offset (float64)
        self._sums: tuple[np.ndarray, ...] | None = None  # made at the first frames (_allocate)
        rows = shape3[0] * shape3[1]
        n_thr = max(1, min(4, os.cpu_count() or 1, rows // 64))
        self._cuts = np.linspace(0, rows, n_thr + 1).astype(int)
        self._pool = (
            ThreadPoolExecutor(max_workers=n_thr, thread_name_prefix="summary")
            if n_thr > 1
            else None
        )

    def _allocate(self) -> tuple[np.ndarray, ...]:
        """Return the sums, made at the first call.

        Not before: a motion step whose frames a cluster's workers write never adds any.
        """
        if self._sums is None:
            shape3 = self._shape3
            # per pixel: count, sum, sum of squares, max; per neighbour offset, indexed by the
            # a-pixel: sum_t y_a y_b, sum_t y_a [b missing], sum_t y_b [a missing], count of
            # frames a or b missing (NaN read as 0 after the offset)
            cross = (len(self._offs3), *shape3)
            self._sums = (
                np.zeros(shape3, np.float64),
                np.zeros(shape3, np.float64),
                np.zeros(shape3, np.float64),
                np.full(shape3, -np.inf, np.float64),
                np.zeros(cross, np.float64),
                np.zeros(cross, np.float64),
                np.zeros(cross, np.float64),
                np.zeros(cross, np.float64),
            )
        return self._sums

    def __enter__(self) -> SummaryAccumulator:
        """Enter the accumulation (its threads stop at the exit)."""
        return self

    def __exit__(self, *exc: Any) -> None:
        """Stop the accumulation's threads."""
        self.close()

    def close(self) -> None:
        """Stop the accumulation's threads."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def add(self, frames: np.ndarray) -> None:
        """Add a chunk of frames (t, *frame_shape); NaN samples are missing."""
        y = np.asarray(frames)
        if y.dtype.kind != "f" or y.dtype.itemsize < 4:
            y = y.astype(np.float32)  # integers up to 2**24 exactly
        n = len(y)
        if n == 0:
            return
        y = np.ascontiguousarray(y).reshape(n, *self._shape3)
        if self._offset is None:
            with np.errstate(invalid="ignore"):
                valid = ~np.isnan(y)
                cnt = valid.sum(axis=0)
                self._offset = np.where(
                    cnt > 0,
                    np.where(valid, y, 0).sum(axis=0, dtype=np.float64) / np.maximum(cnt, 1),
                    0.0,
                )
            del valid
        count, s1, s2, mx, cross, miss_a, miss_b, miss_n = self._allocate()
        args = (y, self._offset, self._offs3, count, s1, s2, mx, cross, miss_a, miss_b, miss_n)
        cuts = self._cuts
        if self._pool is None:
            _accumulate_rows(*args, 0, int(cuts[-1]))
        else:
            futures = [
                self._pool.submit(_accumulate_rows, *args, int(cuts[i]), int(cuts[i + 1]))
                for i in range(len(cuts) - 1)
            ]
            for fu in futures:
                fu.result()
        self.frames += n

    def result(self) -> SummaryImages:
        """Return the summary images of the frames added so far."""
        frame_shape = self.frame_shape
        count, s1, s2, mx, cross, miss_a, miss_b, miss_n = self._allocate()
        count, s1, s2, mx = (a.reshape(frame_shape) for a in (count, s1, s2, mx))
        offset = (
            np.zeros(frame_shape) if self._offset is None else self._offset.reshape(frame_shape)
        )
        n_frames = self.frames
        has = count > 0
        n = np.maximum(count, 1)
        m = s1 / n  # mean of the valid samples, relative to offset
        mean = np.where(has, m + offset, 0.0)
        maxi = np.where(has & np.isfinite(mx), mx, 0.0)
        var_sum = np.maximum(s2 - n * m * m, 0.0) * has  # sum of squared deviations
        std = np.sqrt(var_sum / n)
        corr = None
        if self.want_corr:
            rho = np.zeros(frame_shape, np.float64)
            nbrs = np.zeros(frame_shape, np.float64)
            for i, (sa, sb) in enumerate(self._pairs):
                ma, mb = m[sa], m[sb]
                # sum over frames where both are valid of (y_a - m_a)(y_b - m_b)
                qa = s1[sa] - miss_a[i].reshape(frame_shape)[sa]
                qb = s1[sb] - miss_b[i].reshape(frame_shape)[sa]
                nab = n_frames - miss_n[i].reshape(frame_shape)[sa]
                cov = cross[i].reshape(frame_shape)[sa] - mb * qa - ma * qb + ma * mb * nab
                den = np.sqrt(var_sum[sa] * var_sum[sb])
                ok = den > 1e-12 * np.maximum(1.0, np.sqrt(n[sa] * n[sb]))
                c = np.where(ok, cov / np.where(ok, den, 1.0), 0.0)
                np.clip(c, -1.0, 1.0, out=c)
                rho[sa] += c
                rho[sb] += c
                nbrs[sa] += 1
                nbrs[sb] += 1
            corr = (rho / np.maximum(nbrs, 1)).astype(np.float32)
        return SummaryImages(
            mean=mean.astype(np.float32),
            max=maxi.astype(np.float32),
            std=std.astype(np.float32),
            corr=corr,
        )


def _iter_accumulate(
    movie: Any, *, want_corr: bool, eight_neighbours: bool, chunk_size: int | None
) -> Generator[Progress, None, SummaryImages]:
    n_frames, frame_shape = check_movie(movie, min_frames=1)
    chunk_size = (
        _default_chunk(int(np.prod(frame_shape))) if chunk_size is None else int(chunk_size)
    )
    if chunk_size < 1:
        from .errors import InputError

        raise InputError("chunk_size", f"must be >= 1, got {chunk_size}")
    with SummaryAccumulator(
        tuple(frame_shape), want_corr=want_corr, eight_neighbours=eight_neighbours
    ) as acc:
        yield Progress(_STAGE, 0, n_frames)
        for t0 in range(0, n_frames, chunk_size):
            t1 = min(n_frames, t0 + chunk_size)
            acc.add(np.asarray(movie[t0:t1]))
            yield Progress(_STAGE, t1, n_frames)
        return acc.result()


@single_threaded_blas
def iter_summary_images(
    movie: Any, *, eight_neighbours: bool = True, chunk_size: int | None = None
) -> Generator[Progress, None, SummaryImages]:
    """Compute mean, max, std and local correlation images in one pass.

    Parameters
    ----------
    movie : array-like
        (T, Y, X) or (T, Z, Y, X), any integer or float dtype; numpy array,
        memmap, h5py dataset or dask array (read chunk by chunk).  NaN
        samples are treated as missing (see the module docstring).
    eight_neighbours : bool
        Neighbourhood for the correlation image: 8 (2D) / 26 (3D) if True,
        else 4 / 6.
    chunk_size : int, optional
        Frames read at a time; default keeps a chunk near 128 MB (float64).

    Yields
    ------
    Progress
        ``("summary images", frames done, T)`` after each chunk.

    Returns
    -------
    SummaryImages
        float32 images of the frame shape.

    Raises
    ------
    InputError
        If ``movie`` is not a (T, Y, X) / (T, Z, Y, X) numeric array.
    """
    return (
        yield from _iter_accumulate(
            movie, want_corr=True, eight_neighbours=eight_neighbours, chunk_size=chunk_size
        )
    )


def summary_images(movie: Any, **kw: Any) -> SummaryImages:
    """Blocking version of :func:`iter_summary_images` (same arguments)."""
    return run(iter_summary_images(movie, **kw))


def local_correlations(
    movie: Any, *, eight_neighbours: bool = True, chunk_size: int | None = None
) -> np.ndarray:
    """Local correlation image (CaImAn's ``local_correlations`` definition).

    Parameters
    ----------
    movie : array-like
        (T, Y, X) or (T, Z, Y, X), any numeric dtype.
    eight_neighbours : bool
        8 / 26 neighbours if True, else 4 / 6.
    chunk_size : int, optional
        Frames read at a time.

    Returns
    -------
    ndarray
        float32, frame shape: mean Pearson correlation of each pixel's trace
        with its neighbours' (dimensionless).
    """
    return run(  # type: ignore[return-value]
        _iter_accumulate(
            movie, want_corr=True, eight_neighbours=eight_neighbours, chunk_size=chunk_size
        )
    ).corr


def mean_image(movie: Any, chunk_size: int | None = None) -> np.ndarray:
    """Return the temporal mean of each pixel over its non-NaN samples, in the movie's units.

    Float32, frame shape; 0 where a pixel has none.
    """
    return run(
        _iter_accumulate(movie, want_corr=False, eight_neighbours=True, chunk_size=chunk_size)
    ).mean


def max_image(movie: Any, chunk_size: int | None = None) -> np.ndarray:
    """Return the temporal maximum of each pixel, ignoring NaN, in the movie's units.

    Float32, frame shape; 0 where a pixel has no valid sample.
    """
    return run(
        _iter_accumulate(movie, want_corr=False, eight_neighbours=True, chunk_size=chunk_size)
    ).max
