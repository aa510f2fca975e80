"""Defaults that fit the movie: planes (z) values for 3D, and patches / K from the frame size.

CaImAn's defaults are 2D only. :data:`Z_DEFAULTS` holds the planes entry of
every per-axis parameter (the schema's ``z_default``) (CaImAn order: rows, cols, planes), and
:func:`z_default` shrinks it so that it passes the engine's rules on a movie
with few planes (2 planes: no z shift, gSig 0.5 plane ...). The CLI, the API
and the dock forms read these, so they agree.

:func:`suggest_patches` proposes ``rf`` / ``stride`` / ``K`` from the frame
size and the neuron size, with the reason in words (the forms show it).
Pure Python, no Qt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .schema import SPECS

#: Planes (z) entry of the per-axis parameters for (T, Z, Y, X) movies, for
#: movies with enough planes, from the schema (:mod:`.schema`, ``z_default``);
#: :func:`z_default` fits them to fewer planes. Motion: CaImAn's 3D demo (few
#: planes, small z shifts); CNMF: gSig 2 planes (CaImAn's 3D demo), 0 =
#: automatic for the others.
Z_DEFAULTS: dict[str, float] = {
    s.name: s.z_default for s in SPECS if s.per_axis and s.z_default is not None
}


def z_default(name: str, n_planes: int | None = None) -> float:
    """Return the planes entry of ``name`` for a movie of ``n_planes`` planes.

    None: the plain default. The default is reduced to what the engine accepts there.

    - ``max_shifts``: below half the planes (2 * shift < Z), so 0 for 2-3 planes;
    - ``strides`` / ``overlaps``: one patch through all planes when they do not fit;
    - ``gSig``: 2 * gSig < Z in 0.5 steps (0.5 for 2 planes, 1 for 3, 1.5 for 4).
    """
    value = Z_DEFAULTS[name]
    if n_planes is None or n_planes <= 0:
        return value
    Z = int(n_planes)
    if name == "max_shifts":
        return min(value, max(0, (Z - 1) // 2))
    if name == "strides":
        return value if value + Z_DEFAULTS["overlaps"] <= Z else Z
    if name == "overlaps":
        return value if Z_DEFAULTS["strides"] + value <= Z else 0
    if name == "gSig":
        if 2 * value < Z:
            return value
        return max(0.5, math.floor((Z - 0.5) / 2 / 0.5) * 0.5 if Z > 1 else 0.5)
    return value


def z_fits(name: str, value: float, n_planes: int) -> bool:
    """Whether a planes entry passes the engine's rule on ``n_planes`` planes."""
    Z = int(n_planes)
    if name == "max_shifts":
        return 2 * value < Z
    if name == "gSig":
        return 0 < value and 2 * value < Z
    if name in ("strides", "overlaps"):
        return value <= Z
    return True


@dataclass(frozen=True)
class PatchSuggestion:
    """``rf`` / ``stride`` per axis (CaImAn order; None = no patches), ``K``, and why."""

    rf: tuple[int, ...] | None
    stride: tuple[int, ...] | None
    K: int
    reason: str


def suggest_patches(frame_shape: Sequence[int], gSig: Sequence[float]) -> PatchSuggestion:
    """Return patches and components per patch for frames of ``frame_shape``.

    ``frame_shape`` in array order, neurons of half-size ``gSig`` (CaImAn order).

    As in CaImAn's demos (gSig 4 -> rf 15, stride 6, K 4): patches of about
    8 gSig across (``rf`` = 4 gSig), overlapping by 2 gSig, K = about the
    neurons that fit in a patch (its area over a neuron's, ``pi (2 gSig)^2``).
    A frame narrower than two patches along y or x is fitted whole, with K from
    the frame's area the same way. The planes axis is never split into patches.
    """
    shape = tuple(int(s) for s in frame_shape)
    nd = len(shape)
    yx = shape[-2:]
    g = [float(v) for v in gSig][:2]
    if len(g) == 1:
        g = g * 2
    rf_yx = tuple(max(4, int(round(4 * v))) for v in g)
    stride_yx = tuple(max(2, int(round(2 * v))) for v in g)
    neuron = math.pi * (2 * g[0]) * (2 * g[1])
    size = "x".join(str(s) for s in yx)
    if all(n >= 4 * r for n, r in zip(yx, rf_yx, strict=True)):
        area = (2 * rf_yx[0]) * (2 * rf_yx[1])
        K = max(1, int(round(area / neuron)))
        n_patches = math.prod(
            math.ceil((n - 2 * r) / max(2 * r - s, 1)) + 1
            for n, r, s in zip(yx, rf_yx, stride_yx, strict=True)
        )
        planes = () if nd == 2 else (shape[0],)
        rf = (*rf_yx, *planes)
        stride = (*stride_yx, *((0,) if nd == 3 else ()))
        reason = (
            f"{size} px frames, gSig {g[0]:g}: ~{n_patches} patches of "
            f"{2 * rf_yx[0]}x{2 * rf_yx[1]} px (rf = 4 gSig), overlapping by {stride_yx[0]} px "
            f"(stride = 2 gSig), K {K} per patch (a patch's area / a neuron's, pi (2 gSig)^2)"
        )
        return PatchSuggestion(rf=rf, stride=stride, K=K, reason=reason)
    area = yx[0] * yx[1]
    K = max(1, int(round(area / neuron)))
    reason = (
        f"{size} px frames, gSig {g[0]:g}: smaller than two patches of {2 * rf_yx[0]} px, so "
        f"the whole field of view, K {K} (its area / a neuron's, pi (2 gSig)^2)"
    )
    return PatchSuggestion(rf=None, stride=None, K=K, reason=reason)
