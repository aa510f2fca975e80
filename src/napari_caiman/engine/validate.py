"""Checks of user input shared by all engine steps, with plain messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InputError


def check_movie(
    movie: Any, *, argument: str = "movie", min_frames: int = 2
) -> tuple[int, tuple[int, ...]]:
    """Check that ``movie`` is a (T, Y, X) or (T, Z, Y, X) real-valued array-like.

    Only the shape and dtype are inspected (no data is read), so memory-mapped
    and lazy movies stay on disk.

    Parameters
    ----------
    movie : array-like
        Anything with ``shape``, ``dtype`` and slicing along the first axis.
    argument : str
        Name used in error messages.
    min_frames : int
        Fewest frames the step can work with.

    Returns
    -------
    n_frames : int
    frame_shape : tuple of int
        (Y, X) or (Z, Y, X).

    Raises
    ------
    InputError
        On a wrong number of dimensions, too few frames, an empty frame or a
        non-numeric/complex dtype.
    """
    shape = getattr(movie, "shape", None)
    dtype = getattr(movie, "dtype", None)
    if shape is None or dtype is None:
        raise InputError(argument, f"expected an array, got {type(movie).__name__}")
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (3, 4):
        raise InputError(
            argument,
            f"expected a movie with 3 dimensions (T, Y, X) or 4 (T, Z, Y, X), got shape {shape}",
        )
    rgb = rgb_message(shape)
    if rgb:
        raise InputError(argument, rgb)
    dtype = np.dtype(dtype)
    if dtype.kind not in "uif" and dtype != np.bool_:
        raise InputError(argument, f"expected integer or float pixels, got dtype {dtype}")
    if shape[0] < min_frames:
        raise InputError(
            argument, f"has {shape[0]} frame(s); at least {min_frames} are needed (shape {shape})"
        )
    if min(shape[1:]) < 1:
        raise InputError(argument, f"has an empty frame (shape {shape})")
    return shape[0], shape[1:]


def rgb_message(shape: Sequence[int]) -> str | None:
    """Return what is wrong with a colour movie (T, Y, X, 3 or 4), or None.

    Such a shape would otherwise read as a volume of 3 or 4 pixels' width.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 4 and shape[-1] in (3, 4) and min(shape[1:3]) > 4:
        kind = "RGB" if shape[-1] == 3 else "RGBA"
        return (
            f"has shape {shape}: an {kind} colour movie (T, Y, X, {shape[-1]}); expected one channel, "
            f"(T, Y, X) or a volume (T, Z, Y, X): save one channel (movie[..., 0]) or a grey-scale copy"
        )
    return None


def check_finite(chunk: np.ndarray, *, argument: str = "movie", first_frame: int = 0) -> None:
    """Raise :class:`InputError` if ``chunk`` holds NaN or infinite values.

    ``first_frame`` is the index of ``chunk[0]`` in the whole movie, so the
    message can name the first bad frame.
    """
    if chunk.dtype.kind != "f":
        return
    bad = ~np.isfinite(chunk)
    if bad.any():
        frame = first_frame + int(np.argmax(bad.reshape(len(chunk), -1).any(axis=1)))
        raise InputError(argument, f"contains NaN or infinite values (first in frame {frame})")


def per_axis(
    value: Any, ndim: int, argument: str, *, kind: type = int, minimum: float | None = None
) -> tuple:
    """Expand a scalar or sequence parameter to one value per spatial axis.

    Values stay in the order given (CaImAn's rows, cols[, planes]).  A 2-value
    sequence given for a 3D movie gets its last value repeated for the planes
    axis, as CaImAn does for ``max_shifts`` and friends.
    """
    if isinstance(value, (int, float, np.integer, np.floating)):
        values = (value,) * ndim
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = tuple(value)
        if len(values) == ndim - 1 and ndim == 3:
            values = values + (values[-1],)
        if len(values) != ndim:
            raise InputError(
                argument, f"expected {ndim} values (one per axis), got {len(values)}: {value!r}"
            )
    else:
        raise InputError(argument, f"expected a number or a tuple of {ndim} numbers, got {value!r}")
    try:
        values = tuple(kind(v) for v in values)
    except (TypeError, ValueError):
        raise InputError(argument, f"expected numbers, got {value!r}") from None
    if minimum is not None and any(v < minimum for v in values):
        raise InputError(argument, f"values must be >= {minimum}, got {value!r}")
    return values


def to_array_order(values: Sequence, ndim: int) -> tuple:
    """Convert per-axis values from CaImAn order (rows, cols[, planes]) to array order (y, x) or (z, y, x)."""
    values = tuple(values)
    return values if ndim == 2 else (values[2], values[0], values[1])


def to_caiman_order(values: Sequence, ndim: int) -> tuple:
    """Inverse of :func:`to_array_order`: (z, y, x) -> (rows, cols, planes)."""
    values = tuple(values)
    return values if ndim == 2 else (values[1], values[2], values[0])


def caiman_dims(dims: Sequence[int]) -> tuple[int, ...]:
    """Array-order frame shape ((Z,) Y, X) -> CaImAn's ``dims`` (rows, cols[, planes])."""
    dims = tuple(int(d) for d in dims)
    return to_caiman_order(dims, len(dims))


def array_dims(dims: Sequence[int]) -> tuple[int, ...]:
    """CaImAn's ``dims`` (rows, cols[, planes]) -> array order ((Z,) Y, X)."""
    dims = tuple(int(d) for d in dims)
    return to_array_order(dims, len(dims))
