"""Products of movie chunks with sparse factors (internal).

On a whole field of view the footprints are sparse: a 512 x 512 movie with
500 neurons has ~0.1 % of ``A``'s entries non-zero.  The two statistics every
CNMF pass needs are computed here at the cost of those non-zeros, not of
pixels x components:

* ``A^T Y`` (k, T): :func:`sparse_t_chunk` multiplies one chunk of frames by a
  CSC matrix (each frame is one contiguous row, read once per component);
* ``Y H^T`` restricted to the search regions (each component's support
  dilated, the only entries the spatial HALS reads): :class:`Regions`, a
  sampled dense-dense product accumulated in float64.

Both are numba kernels that release the GIL.  They are not ``parallel=True``:
numba's OpenMP pool does not survive a fork (the napari docks run their steps
in forked children), and the CNMF patches already run on several threads.
Dense factors (the background, the small patches' footprints) keep BLAS
products.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy import sparse


@numba.njit(nogil=True, cache=True)
def _csc_t_rows(ch, indptr, indices, vals, out, col0):  # pragma: no cover - compiled
    tc = ch.shape[0]
    k = indptr.size - 1
    for t in range(tc):
        row = ch[t]
        for j in range(k):
            s = 0.0
            for q in range(indptr[j], indptr[j + 1]):
                s += row[indices[q]] * vals[q]
            out[j, col0 + t] = s


@numba.njit(nogil=True, cache=True)
def _region_rows(ch, Hc, cols, indptr, pix, acc):  # pragma: no cover - compiled
    tc = ch.shape[0]
    n = indptr.size - 1
    for j in range(n):
        h = Hc[cols[j]]
        q0, q1 = indptr[j], indptr[j + 1]
        for t in range(tc):
            w = h[t]
            if w == 0.0:
                continue
            row = ch[t]
            for q in range(q0, q1):
                acc[q] += row[pix[q]] * w


def csc_of(W: np.ndarray, cols: np.ndarray | None = None) -> sparse.csc_matrix:
    """Return a CSC float32 copy of the columns ``cols`` of the dense ``W`` (P, n).

    ``cols`` default: all. Canonical (sorted indices), built from one scan of ``W`` (scipy's dense
    -> COO -> CSC path is several times slower).
    """
    Ws = W if cols is None or cols.size == W.shape[1] else W[:, cols]
    p, j = np.nonzero(Ws)  # C order: by pixel, then column (CSR of W)
    vals = np.asarray(Ws[p, j], np.float32)
    indptr = np.r_[0, np.cumsum(np.bincount(p, minlength=Ws.shape[0]))].astype(np.int64)
    S = sparse.csr_matrix((vals, j.astype(np.int64), indptr), shape=Ws.shape).tocsc()
    S.sort_indices()
    return S


def csc_arrays(S: sparse.csc_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, indices, data) of a canonical CSC matrix as the kernels take them."""
    return S.indptr.astype(np.int64), S.indices.astype(np.int64), S.data.astype(np.float32)


def sparse_t_chunk(
    ch: np.ndarray, arrays: tuple[np.ndarray, np.ndarray, np.ndarray], out: np.ndarray, col0: int
) -> None:
    """Set ``out[:k, col0:col0 + len(ch)] = (ch @ S).T`` for a chunk ``ch``.

    ``ch`` is (t, P) float32 and ``S`` (P, k) given as its :func:`csc_arrays`.
    """
    _csc_t_rows(np.ascontiguousarray(ch, dtype=np.float32), *arrays, out, col0)


class Regions:
    """Search regions of some columns in one flat layout.

    Column ``cols[j]`` owns the pixels ``pix[indptr[j]:indptr[j + 1]]``.
    """

    def __init__(self, regions: list, cols: np.ndarray):
        self.cols = np.asarray(cols, np.int64)
        sizes = np.array([regions[c].size for c in self.cols], np.int64)
        self.indptr = np.r_[0, np.cumsum(sizes)].astype(np.int64)
        self.pix = (
            np.concatenate([np.asarray(regions[c], np.int64) for c in self.cols])
            if self.cols.size
            else np.zeros(0, np.int64)
        )

    def new_acc(self) -> np.ndarray:
        """Return a zeroed accumulator of one value per region entry (float64)."""
        return np.zeros(self.pix.size, np.float64)

    def add_chunk(self, ch: np.ndarray, Hc: np.ndarray, acc: np.ndarray) -> None:
        """``acc += (ch^T Hc^T)`` sampled at the regions, for one chunk."""
        if not self.pix.size:
            return
        ch = np.ascontiguousarray(ch, dtype=np.float32)
        _region_rows(
            ch, np.ascontiguousarray(Hc, dtype=np.float32), self.cols, self.indptr, self.pix, acc
        )

    def scatter(self, acc: np.ndarray, out: np.ndarray) -> None:
        """Write the sampled sums into the dense (P, n) ``out``."""
        col = np.repeat(self.cols, np.diff(self.indptr))
        out[self.pix, col] = acc
