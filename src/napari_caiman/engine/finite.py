"""NaN and +-inf read as 0 in one pass (a numba kernel).

Its own module so that what only checks shapes and values (``validate``,
the movie readers napari calls) does not import numba: that import alone
took 4 s of opening a movie in napari.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["finite_float32"]


@numba.njit(nogil=True, cache=True)  # not parallel=True: OpenMP threads do not survive a fork
def _finite_into(src, dst):  # pragma: no cover - compiled
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            v = src[i, j]
            dst[i, j] = v if np.isfinite(v) else 0.0


def finite_float32(x: np.ndarray) -> np.ndarray:
    """Return a float32 copy of ``x`` with NaN and +-inf read as 0, in one pass.

    ``np.nan_to_num`` of a copy takes several.
    """
    x = np.asarray(x)
    if x.dtype.kind != "f" or x.ndim == 0 or x.size == 0:
        return np.nan_to_num(np.array(x, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    out = np.empty(x.shape, np.float32)
    src = np.ascontiguousarray(x).reshape(x.shape[0], -1)
    _finite_into(src, out.reshape(x.shape[0], -1))
    return out
