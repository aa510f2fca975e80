"""Component outlines drawn into one RGBA image (no Qt, no viewer).

5,000 contours as a napari Shapes layer cost napari ~1.2 s of CPU to build
(one shape object and mesh per path) and more to draw; the same outlines as
pixels of one RGBA Image layer cost a texture upload. Each component's
outline is the edge of its CaImAn-style energy contour (the pixels holding
``thr`` of its energy, see :func:`~.contours.contours`),
drawn at ``factor`` (2) times the frame's resolution so that a line is half
a movie pixel wide and overlapping components both keep their outline.

* :func:`outlines` — the outline pixels and their component (built once, in
  the step's worker);
* :func:`outline_image` — those pixels coloured per component (accepted /
  rejected / hidden, or a palette): a recolouring is one vectorized
  assignment into a new image;
* :func:`image_geometry` / :func:`frame_position` — the image's scale and
  translate from the frame's, and a data position of the image back to
  frame pixel coordinates (what a click hits: the component is then found
  from the footprints);
* :func:`component_paths` — closed contour paths of a few components (the
  selection outline), traced when asked for.

Examples
--------
>>> o = outlines(estimates)                                      # doctest: +SKIP
>>> rgba = outline_image(o, component_colors(np.arange(o.n_components)))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy import sparse

from .contours import _energy_mask, _entries, closed_paths, contours

__all__ = [
    "MAX_IMAGE_BYTES",
    "Outlines",
    "component_paths",
    "frame_position",
    "image_geometry",
    "outline_image",
    "outlines",
]

#: The RGBA image is drawn at twice the frame's resolution (y, x) unless it
#: would take more than this many bytes (large volumes): then at the frame's.
MAX_IMAGE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Outlines:
    """Outline pixels of every component.

    Attributes
    ----------
    dims : tuple of int
        Frame shape, array order ((Z,) Y, X).
    factor : int
        Image pixels per frame pixel along y and x (1 or 2; z is never refined).
    pixel : (n,) int64
        Flat index of each outline pixel into the image (``shape``).
    component : (n,) int64
        Component (column of ``A``) of each outline pixel.
    n_components : int
    """

    dims: tuple[int, ...]
    factor: int
    pixel: np.ndarray
    component: np.ndarray
    n_components: int

    @property
    def shape(self) -> tuple[int, ...]:
        """Image shape without the colour axis: ((Z,) Y * factor, X * factor)."""
        f = self.factor
        return (*self.dims[:-2], self.dims[-2] * f, self.dims[-1] * f)


def _factor(dims: Sequence[int]) -> int:
    return 2 if 4 * int(np.prod(dims)) * 4 <= MAX_IMAGE_BYTES else 1


def outlines(estimates: Any, thr: float = 0.9, factor: int | None = None) -> Outlines:
    """Return the outline pixels of each component's energy contour.

    Parameters
    ----------
    estimates : Estimates
        Needs ``A`` (pixels x K, CaImAn order) and ``dims`` (array order).
    thr : float
        Fraction of each footprint's energy inside its outline (CaImAn's
        ``thr_method='nrg'`` with ``thr=0.9``, as :func:`~.contours.contours`).
    factor : {1, 2}, optional
        Image resolution per frame pixel (default: 2 unless the image would
        exceed :data:`MAX_IMAGE_BYTES`).

    Returns
    -------
    Outlines
        At ``factor`` 2 a frame pixel is a 2x2 block; the outline is the ring
        of blocks' sub-pixels facing a pixel outside the component (per
        plane: z neighbours are not looked at), i.e. it runs just inside the
        region's outer pixel edges, as the traced contours do.
    """
    if not 0 < thr <= 1:
        raise ValueError(f"thr must be in (0, 1], got {thr!r}")
    dims = tuple(int(d) for d in estimates.dims)
    f = _factor(dims) if factor is None else int(factor)
    if f not in (1, 2):
        raise ValueError(f"factor must be 1 or 2, got {factor!r}")
    comp, pix, values, K = _entries(estimates)
    keep = _energy_mask(comp, values, K, thr)
    comp, pix = comp[keep].astype(np.int64), pix[keep].astype(np.int64)
    if len(comp) == 0:
        empty = np.zeros(0, np.int64)
        return Outlines(dims=dims, factor=f, pixel=empty, component=empty, n_components=K)
    P = int(np.prod(dims))
    Y, X = dims[-2], dims[-1]
    key = comp * P + pix
    order = np.argsort(key, kind="stable")
    key, comp, pix = key[order], comp[order], pix[order]
    y = (pix // X) % Y
    x = pix % X

    def absent(step: int, inside: np.ndarray) -> np.ndarray:
        """Whether the neighbour at ``pix + step`` is outside the component (or the frame)."""
        q = key + step
        i = np.minimum(np.searchsorted(key, q), len(key) - 1)
        return ~(inside & (key[i] == q))

    up, down = absent(-X, y > 0), absent(X, y < Y - 1)
    left, right = absent(-1, x > 0), absent(1, x < X - 1)
    plane = pix // (X * Y)  # 0 in 2D
    if f == 1:
        edge = up | down | left | right
        pixel, owner = pix[edge], comp[edge]
    else:
        pieces_pix, pieces_comp = [], []
        for a, vertical in ((0, up), (1, down)):
            for b, horizontal in ((0, left), (1, right)):
                edge = vertical | horizontal
                fy, fx = 2 * y[edge] + a, 2 * x[edge] + b
                pieces_pix.append((plane[edge] * (2 * Y) + fy) * (2 * X) + fx)
                pieces_comp.append(comp[edge])
        pixel, owner = np.concatenate(pieces_pix), np.concatenate(pieces_comp)
    return Outlines(dims=dims, factor=f, pixel=pixel, component=owner, n_components=K)


def outline_image(o: Outlines, colors: np.ndarray) -> np.ndarray:
    """Return the outlines coloured per component: a new ((Z,) Y', X', 4) uint8 RGBA image.

    Parameters
    ----------
    o : Outlines
    colors : (K, 4) float in [0, 1]
        RGBA per component; alpha 0 hides a component. Where outlines of two
        components share a pixel the higher component index is drawn.
    """
    colors = np.asarray(colors, np.float32).reshape(-1, 4)
    if len(colors) != o.n_components:
        raise ValueError(f"{len(colors)} colours for {o.n_components} components")
    image = np.zeros((int(np.prod(o.shape)), 4), np.uint8)
    rgba = np.round(np.clip(colors, 0, 1) * 255).astype(np.uint8)
    image[o.pixel] = rgba[o.component]
    return image.reshape(*o.shape, 4)


def image_geometry(
    scale: Sequence[float], translate: Sequence[float], factor: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Scale and translate of the outline image from the frame's (spatial axes).

    Frame pixel ``u`` (centre at ``translate + u * scale``) covers image pixels
    ``factor * u ... factor * u + factor - 1``; their centres are spaced
    ``scale / factor`` from ``translate - (factor - 1) / (2 factor) * scale``.
    """
    scale = tuple(float(s) for s in scale)
    translate = tuple(float(t) for t in translate)
    n = len(scale)
    f = [1] * (n - 2) + [factor, factor]
    return (
        tuple(s / k for s, k in zip(scale, f, strict=True)),
        tuple(t - (k - 1) / (2 * k) * s for s, t, k in zip(scale, translate, f, strict=True)),
    )


def frame_position(position: Sequence[float], factor: int) -> np.ndarray:
    """Return an outline image's data position -> frame pixel coordinates (same axes)."""
    p = np.asarray(position, np.float64).copy()
    p[-2:] = p[-2:] / factor - (factor - 1) / (2 * factor)
    return p


def component_paths(
    estimates: Any, components: Sequence[int], thr: float = 0.9
) -> list[np.ndarray]:
    """Return the closed contour paths of ``components`` ((n, ndim) vertices, frame pixel coordinates).

    The same outlines as :func:`~.contours.contours`, only those components traced.
    """
    ks = np.asarray(list(components), dtype=np.int64)
    if ks.size == 0:
        return []
    sub = SimpleNamespace(A=sparse.csc_matrix(estimates.A)[:, ks], dims=estimates.dims)
    polygons, _ = contours(sub, thr=thr)
    return closed_paths(polygons)
