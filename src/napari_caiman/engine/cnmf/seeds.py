"""Seed footprints (``Ain``) in the engine's internal layout (internal to :mod:`napari_caiman.engine.cnmf`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from ..errors import InputError
from .estimates import caiman_permutation
from .products import csc_of

__all__ = ["seeds_as_csc"]


def seeds_as_csc(Ain: Any, dims: tuple[int, ...]) -> sparse.csc_matrix:
    """Seeds as CSC (pixels C-order, K) float32, empty ones dropped; sparse seeds stay sparse."""
    P = int(np.prod(dims))
    if sparse.issparse(Ain):
        S = sparse.csc_matrix(Ain)
        if S.dtype == object or S.dtype.kind not in "biuf":
            raise InputError("Ain", f"expected boolean or numeric footprints, got dtype {S.dtype}")
        if S.shape[0] != P:
            raise InputError(
                "Ain",
                f"expected sparse footprints (pixels={P}, K) in CaImAn order, got shape {S.shape}",
            )
        S = S.astype(np.float32)
        if not np.all(np.isfinite(S.data)) or (S.data < 0).any():
            raise InputError("Ain", "footprints must be finite and non-negative")
        A = sparse.csc_matrix(S[np.argsort(caiman_permutation(dims))])  # x_c = x_caiman[inv]
    else:
        M = np.asarray(Ain)
        if M.dtype == object or M.dtype.kind not in "biuf":
            raise InputError("Ain", f"expected boolean or numeric footprints, got dtype {M.dtype}")
        if M.ndim == len(dims) + 1 and tuple(M.shape[1:]) == tuple(dims):
            Ad = M.reshape(M.shape[0], P).T.astype(np.float32)
        elif M.ndim == 2 and M.shape[0] == P:
            inv = np.argsort(caiman_permutation(dims))
            Ad = M.astype(np.float32)[inv]
        else:
            raise InputError(
                "Ain",
                f"expected footprints (K, {', '.join(map(str, dims))}) in array order or "
                f"(pixels={P}, K) in CaImAn order, got shape {M.shape}",
            )
        if not np.all(np.isfinite(Ad)) or (Ad < 0).any():
            raise InputError("Ain", "footprints must be finite and non-negative")
        A = csc_of(np.ascontiguousarray(Ad))
    A.eliminate_zeros()
    A.sort_indices()
    alive = np.flatnonzero(np.diff(A.indptr) > 0)
    return sparse.csc_matrix(A[:, alive]) if alive.size < A.shape[1] else A
