"""The CNMF result (:class:`Estimates`) and the pixel-order helpers.

Pixel order
-----------
CaImAn flattens a frame in **Fortran order over its own dims** (rows, cols[,
planes]).  Our frames are in array order ((Z,) Y, X).  So:

* 2D frame (Y, X): ``pixel = y + Y * x``  (``frame.ravel(order="F")``);
* 3D frame (Z, Y, X): CaImAn dims are (Y, X, Z) and
  ``pixel = y + Y * x + Y * X * z`` (``frame.transpose(1, 2, 0).ravel(order="F")``).

In both cases this is the C-order ravel of the frame with its last two axes
swapped, which is what the helpers below do.  Always use them
(:func:`frames_to_pixels`, :func:`images_to_pixels`, :func:`pixels_to_images`,
:func:`footprint_to_image`) instead of reshaping by hand.

Internally the CNMF engine works with C-order pixels (``frame.ravel()``) and
converts with :func:`caiman_permutation` when it builds :class:`Estimates`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from ..validate import caiman_dims

__all__ = [
    "Estimates",
    "caiman_dims",
    "caiman_permutation",
    "frames_to_pixels",
    "images_to_pixels",
    "pixels_to_images",
    "footprint_to_image",
]


def caiman_permutation(dims: tuple[int, ...]) -> np.ndarray:
    """``perm`` such that ``x_caiman = x_c[perm]`` for pixel vectors.

    ``x_c`` is a pixel vector flattened in C order over the array-order frame
    (``frame.ravel()``), ``x_caiman`` the same pixels in CaImAn order.  The
    inverse is ``np.argsort(perm)``.
    """
    dims = tuple(int(d) for d in dims)
    return np.arange(int(np.prod(dims))).reshape(dims).swapaxes(-1, -2).ravel()


def frames_to_pixels(frames: np.ndarray) -> np.ndarray:
    """(T, *frame) array-order frames -> (pixels, T) in CaImAn's pixel order.

    This is CaImAn's ``Yr`` layout (one row per pixel).
    """
    frames = np.asarray(frames)
    return frames.swapaxes(-1, -2).reshape(frames.shape[0], -1).T


def images_to_pixels(images: np.ndarray) -> np.ndarray:
    """(K, *frame) array-order images (footprints) -> (pixels, K) CaImAn order.

    Use it to build an ``A`` (or ``Ain``) from painted masks:
    ``sparse.csc_matrix(images_to_pixels(masks))``.
    """
    return frames_to_pixels(images)


def pixels_to_images(A: Any, dims: tuple[int, ...]) -> np.ndarray:
    """(pixels, K) CaImAn-order matrix (dense or sparse) -> (K, *dims) images.

    ``dims`` is the frame shape in **array order** ((Z,) Y, X).
    """
    dims = tuple(int(d) for d in dims)
    if sparse.issparse(A):
        A = A.toarray()
    A = np.asarray(A)
    if A.ndim == 1:
        A = A[:, None]
    swapped = dims[:-2] + (dims[-1], dims[-2])
    return A.T.reshape((A.shape[1],) + swapped).swapaxes(-1, -2)


def footprint_to_image(a: Any, dims: tuple[int, ...]) -> np.ndarray:
    """One CaImAn-order column (pixels,) or (pixels, 1) -> image of shape ``dims`` (array order)."""
    if sparse.issparse(a):
        a = a.toarray()
    return pixels_to_images(np.asarray(a).reshape(-1, 1), dims)[0]


@dataclass
class Estimates:
    """CNMF results with CaImAn's names and layout.

    Attributes
    ----------
    A : scipy.sparse.csc_matrix
        (pixels, K) spatial footprints, pixels in CaImAn order (see module
        docstring); columns have unit L2 norm (CaImAn's ``normalize_components``).
    C : ndarray (K, T)
        Denoised calcium traces (baseline removed), in units matching ``A``.
    S : ndarray (K, T)
        Deconvolved activity (spikes), >= 0.
    YrA : ndarray (K, T)
        Residual traces: ``C + YrA`` is the raw (unmixed, baseline included) trace.
    b : ndarray (pixels, nb)
        Spatial background, CaImAn pixel order.
    f : ndarray (nb, T)
        Temporal background.
    sn : ndarray (pixels,)
        Noise SD per pixel (PSD estimate), CaImAn pixel order.
    g : ndarray (K, p)
        AR coefficients per component (``c[t] = sum_i g[i] c[t-1-i] + s[t]``).
    bl, c1, neurons_sn, lam : ndarray (K,)
        Baseline, initial calcium value (always 0 here: the first frame's
        activity is part of ``S``), noise SD of each raw trace, and the L1
        penalty used by the deconvolution.
    dims : tuple of int
        Frame shape in **array order** ((Z,) Y, X); :attr:`caiman_dims` gives
        CaImAn's (rows, cols[, planes]).
    idx_components, idx_components_bad : ndarray or None
        Set by component evaluation (not by CNMF).
    timings : dict
        Seconds per stage.
    info : dict
        Free-form details (number of patches, components before/after merging ...).
    from_anatomy : (K,) bool or None
        Components seeded from the anatomy (``seed_anatomy``), None when none was.
    """

    A: sparse.csc_matrix
    C: np.ndarray
    S: np.ndarray
    YrA: np.ndarray
    b: np.ndarray
    f: np.ndarray
    sn: np.ndarray
    g: np.ndarray
    bl: np.ndarray
    c1: np.ndarray
    neurons_sn: np.ndarray
    lam: np.ndarray
    dims: tuple[int, ...]
    idx_components: np.ndarray | None = None
    idx_components_bad: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    from_anatomy: np.ndarray | None = None

    @property
    def caiman_dims(self) -> tuple[int, ...]:
        """Frame shape in CaImAn order (rows, cols[, planes])."""
        return caiman_dims(self.dims)

    @property
    def n_components(self) -> int:
        """Return the number of components (columns of ``A``)."""
        return int(self.A.shape[1])

    @property
    def n_frames(self) -> int:
        """Return the number of frames of the traces (0 without traces)."""
        return int(self.C.shape[1]) if self.C.ndim == 2 else 0

    def footprints(self, idx: Any = None) -> np.ndarray:
        """Footprints as (K, *dims) array-order images (optionally only ``idx``)."""
        A = self.A if idx is None else self.A[:, idx]
        return pixels_to_images(A, self.dims)

    def background_images(self) -> np.ndarray:
        """Spatial background components as (nb, *dims) images."""
        return pixels_to_images(self.b, self.dims)

    def to_dict(self) -> dict[str, Any]:
        """CaImAn's ``estimates`` names -> values (for saving)."""
        return {
            "A": self.A,
            "C": self.C,
            "S": self.S,
            "YrA": self.YrA,
            "b": self.b,
            "f": self.f,
            "sn": self.sn,
            "g": self.g,
            "bl": self.bl,
            "c1": self.c1,
            "neurons_sn": self.neurons_sn,
            "lam": self.lam,
            "dims": self.caiman_dims,
            "idx_components": self.idx_components,
            "idx_components_bad": self.idx_components_bad,
        }

    @classmethod
    def empty(
        cls, dims: tuple[int, ...], n_frames: int, *, b=None, f=None, sn=None, p: int = 0
    ) -> Estimates:
        """Return a valid result without components."""
        P = int(np.prod(dims))
        z = np.zeros((0, n_frames), np.float32)
        return cls(
            A=sparse.csc_matrix((P, 0), dtype=np.float32),
            C=z,
            S=z.copy(),
            YrA=z.copy(),
            b=np.zeros((P, 0), np.float32) if b is None else b,
            f=np.zeros((0, n_frames), np.float32) if f is None else f,
            sn=np.zeros(P, np.float32) if sn is None else sn,
            g=np.zeros((0, p)),
            bl=np.zeros(0),
            c1=np.zeros(0),
            neurons_sn=np.zeros(0),
            lam=np.zeros(0),
            dims=tuple(int(d) for d in dims),
        )
