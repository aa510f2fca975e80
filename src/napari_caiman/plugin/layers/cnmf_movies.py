"""The lazy movies of a CNMF result (no Qt, no viewer).

The denoised ``A C + b f`` (:class:`ReconstructedMovie`) and the residual ``Y - A C - b f``
(:class:`ResidualMovie`), computing only the frames napari asks for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from ...engine.cnmf.estimates import pixels_to_images
from .contours import _csc

__all__ = ["ReconstructedMovie", "ResidualMovie"]


def _normalize_key(key: Any, ndim: int) -> tuple:
    """Return a numpy index -> a tuple of exactly ``ndim`` entries (no Ellipsis)."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is None for k in key):
        raise IndexError("np.newaxis is not supported by lazy CNMF movies")
    n_ell = sum(k is Ellipsis for k in key)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis")
    if n_ell:
        i = next(j for j, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (ndim - len(key) + 1) + key[i + 1 :]
    if len(key) > ndim:
        raise IndexError(f"too many indices: {len(key)} for {ndim} dimensions")
    return key + (slice(None),) * (ndim - len(key))


class ReconstructedMovie:
    """``A C + b f`` as a lazy (T, *dims) float32 array (the denoised movie).

    Only the frames asked for are computed (sparse ``A`` times a few columns
    of ``C``), so napari showing one frame costs one frame. Supports numpy
    basic indexing (ints, slices, Ellipsis) and integer arrays along time.

    Parameters
    ----------
    estimates : Estimates
    background : bool
        Add the background ``b f`` (default True).
    """

    dtype = np.dtype(np.float32)

    def __init__(self, estimates: Any, background: bool = True) -> None:
        self.estimates = estimates
        self.background = background
        self.dims = tuple(int(d) for d in estimates.dims)
        self.shape = (
            int(estimates.C.shape[1]) if estimates.n_components else int(estimates.f.shape[1]),
        ) + self.dims
        self._A = _csc(estimates.A)
        self._A_rows: sparse.csr_matrix | None = None  # row slicing (3D single plane)

    @property
    def ndim(self) -> int:
        """Return the number of axes (as a numpy array's)."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Return the number of elements (as a numpy array's)."""
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        """Return the number of frames."""
        return self.shape[0]

    def __repr__(self) -> str:
        """Return the type, shape and dtype."""
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"

    def _frames_pixels(self, t: np.ndarray, rows: slice | None) -> np.ndarray:
        """(pixels or rows, len(t)) CaImAn-order values of frames ``t``."""
        est = self.estimates
        if rows is None:
            A, b = self._A, est.b
        else:
            if self._A_rows is None:
                self._A_rows = self._A.tocsr()
            A, b = self._A_rows[rows], est.b[rows]
        out = np.zeros((A.shape[0], len(t)), np.float32)
        if A.shape[1]:
            out += A @ np.asarray(est.C[:, t], np.float32)
        if self.background and b.shape[1]:
            out += np.asarray(b, np.float32) @ np.asarray(est.f[:, t], np.float32)
        return out

    def _compute(self, t: np.ndarray, spatial: tuple) -> np.ndarray:
        """Frames ``t`` (1-D int array) as (len(t), *dims)[spatial]."""
        dims = self.dims
        if len(dims) == 3 and isinstance(spatial[0], (int, np.integer)):
            # one z plane: CaImAn pixel order puts plane z in one block of rows
            z = int(range(dims[0])[spatial[0]])
            plane = dims[1] * dims[2]
            pix = self._frames_pixels(t, slice(z * plane, (z + 1) * plane))
            frames = pixels_to_images(pix, dims[1:])
            return frames[(slice(None),) + spatial[1:]]
        pix = self._frames_pixels(t, None)
        return pixels_to_images(pix, dims)[(slice(None),) + spatial]

    def __getitem__(self, key: Any) -> np.ndarray:
        """Compute the frames ``key`` selects."""
        key = _normalize_key(key, self.ndim)
        tkey, spatial = key[0], key[1:]
        if isinstance(tkey, (int, np.integer)):
            t = np.array([range(self.shape[0])[tkey]])
            return np.ascontiguousarray(self._compute(t, spatial)[0])
        if isinstance(tkey, slice):
            t = np.arange(self.shape[0])[tkey]
        else:
            t = np.arange(self.shape[0])[np.asarray(tkey)]
            if t.ndim != 1:
                raise IndexError("only 1-D index arrays are supported along time")
        return np.ascontiguousarray(self._compute(t, spatial))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """Compute the whole movie as an array."""
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class ResidualMovie(ReconstructedMovie):
    """``Y - A C - b f`` as a lazy (T, *dims) float32 array.

    Parameters
    ----------
    movie : array-like (T, *dims)
        The movie CNMF ran on (numpy, memmap, dask ...); read one requested
        frame range at a time.
    estimates : Estimates

    Raises
    ------
    ValueError
        The movie's shape does not match the estimates.
    """

    def __init__(self, movie: Any, estimates: Any) -> None:
        super().__init__(estimates, background=True)
        if tuple(movie.shape) != self.shape:
            raise ValueError(
                f"movie shape {tuple(movie.shape)} does not match the estimates {self.shape}"
            )
        self.movie = movie

    def _compute(self, t: np.ndarray, spatial: tuple) -> np.ndarray:
        model = super()._compute(t, spatial)
        if len(t) and np.all(np.diff(t) == 1):
            frames = self.movie[int(t[0]) : int(t[-1]) + 1]  # contiguous: one read
        else:
            frames = self.movie[t]
        frames = np.asarray(np.asarray(frames)[(slice(None),) + spatial], np.float32)
        return frames - model
