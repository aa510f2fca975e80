"""The motion-border rule: how CNMF and the evaluation read a motion-corrected movie.

One rule for every path (CLI, API, widgets, batch), see :func:`movie_for_cnmf`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["NanFilled", "motion_border", "nan_border", "movie_for_cnmf"]


class NanFilled:
    """Lazy view of a motion-corrected movie, prepared for CNMF.

    Motion correction with ``border_nan=True`` leaves NaN where no data came
    in, and the width of that strip changes from frame to frame. Like
    CaImAn (``border_to_0``), we set a fixed border of ``border`` pixels per
    axis to 0 in every frame (so no fake activity appears there) and read any
    remaining NaN as 0. Only the frames read are converted; the movie stays
    on disk.

    Parameters
    ----------
    movie : array-like (T, (Z,) Y, X)
    border : sequence of int, optional
        Border width per spatial axis, array order ((z,) y, x).
    """

    def __init__(self, movie: Any, border: Any = None) -> None:
        self.movie = movie
        self.shape = tuple(movie.shape)
        self.dtype = movie.dtype
        self.ndim = len(self.shape)
        nd = self.ndim - 1
        self.border = tuple(int(b) for b in border) if border is not None else (0,) * nd

    #: what it returns holds no NaN or inf (readers may skip their finiteness check)
    finite = True

    def __len__(self) -> int:
        """Return the number of frames."""
        return self.shape[0]

    def __getitem__(self, key: Any) -> Any:
        """Read frames of the movie with the border set to 0 and any NaN read as 0."""
        import numpy as np

        key = key if isinstance(key, tuple) else (key,)
        if len(key) > self.ndim or not all(isinstance(k, (int, np.integer, slice)) for k in key):
            # arbitrary keys: prepare whole frames, then index within them
            return self[key[0]][
                (slice(None),) * (0 if isinstance(key[0], (int, np.integer)) else 1) + key[1:]
            ]
        # ints and slices: read only the requested block, then blank the border
        # in the movie's coordinates (a patch, a block of rows, frames)
        from .finite import finite_float32

        frames = finite_float32(self.movie[key])
        key = key + (slice(None),) * (self.ndim - len(key))
        out_axis = 0 if isinstance(key[0], (int, np.integer)) else 1
        for axis, b in enumerate(self.border):
            k, n = key[1 + axis], self.shape[1 + axis]
            if isinstance(k, slice):
                if b > 0:
                    idx = np.arange(n)[k]
                    hit = np.flatnonzero((idx < b) | (idx >= n - b))
                    if hit.size:
                        sel: list[Any] = [slice(None)] * frames.ndim
                        sel[out_axis] = hit
                        frames[tuple(sel)] = 0
                out_axis += 1
            elif b > 0 and not (b <= (int(k) % n) < n - b):
                frames[...] = 0  # an int index inside the border: all of it is border
        return frames


def motion_border(motion: Any) -> tuple[int, ...]:
    """Border (pixels per axis, array order) that motion correction may have filled.

    The largest absolute shift, rigid plus piecewise deviation, rounded up.
    """
    import numpy as np

    from .validate import to_array_order

    shifts = np.abs(np.asarray(motion.shifts_rig, dtype=np.float64))
    nd = shifts.shape[1]
    worst = shifts.max(axis=0) if len(shifts) else np.zeros(nd)
    if getattr(motion, "shifts_els", None) is not None and np.size(motion.shifts_els):
        worst = np.maximum(worst, np.abs(np.asarray(motion.shifts_els)).reshape(-1, nd).max(axis=0))
    return tuple(int(np.ceil(w)) for w in to_array_order(tuple(worst), nd))


def _motion_attr(motion: Any, name: str) -> Any:
    if isinstance(motion, Mapping):  # a results file's motion record (or its dict)
        return motion.get(name)
    return getattr(motion, name, None)


def nan_border(movie: Any, *, chunk_bytes: int = 32 << 20) -> tuple[int, ...] | None:
    """Return the border covering the NaN strips at the frame edges of ``movie``.

    In pixels per axis, array order, read chunk by chunk; None when it holds no NaN.

    A NaN pixel belongs to a strip when every pixel between it and the edge,
    along one axis, is NaN in that frame (what motion correction with
    ``border_nan=True`` leaves); it counts towards the axis where it is
    nearest the edge. The border of an axis is the deepest such pixel + 1.

    Raises
    ------
    InputError
        NaN away from the edges (a damaged movie, not a motion border).
    """
    import numpy as np

    from .errors import InputError

    if np.dtype(movie.dtype).kind != "f":
        return None
    shape = tuple(int(s) for s in movie.shape)
    nd = len(shape) - 1
    per_frame = 4 * int(np.prod(shape[1:]))
    step = max(1, chunk_bytes // max(1, per_frame))
    border = [0] * nd
    found = False
    for t0 in range(0, shape[0], step):
        chunk = np.isnan(np.asarray(movie[t0 : t0 + step]))
        if not chunk.any():
            continue
        found = True
        whole = chunk.reshape(len(chunk), -1).all(axis=1)
        if whole.any():
            raise InputError("movie", f"frame {t0 + int(np.argmax(whole))} is all NaN")
        best = np.full(
            chunk.shape, np.iinfo(np.int32).max, np.int32
        )  # depth of each NaN in a strip
        axis_of = np.full(chunk.shape, -1, np.int8)
        covered = np.zeros(chunk.shape, bool)
        for a in range(nd):
            ax = a + 1
            n = shape[ax]
            m = np.moveaxis(chunk, ax, -1)
            full = m.all(
                axis=-1, keepdims=True
            )  # a line that is all NaN lies in another axis' strip
            lead = np.argmin(m, axis=-1)[..., None]  # run of NaN from the low edge
            trail = np.argmin(m[..., ::-1], axis=-1)[..., None]  # ... from the high edge
            i = np.arange(n)
            in_run = m & ((i < lead) | (i >= n - trail)) & ~full
            covered |= np.moveaxis(in_run | (m & full), -1, ax)
            depth = np.minimum(i, n - 1 - i).astype(np.int32) + np.zeros_like(lead, np.int32)
            depth = np.moveaxis(depth, -1, ax)
            in_run = np.moveaxis(in_run, -1, ax)
            better = in_run & (depth < best)
            best[better] = depth[better]
            axis_of[better] = a
        stray = chunk & ~covered
        if stray.any():
            frame = t0 + int(np.argmax(stray.reshape(len(chunk), -1).any(axis=1)))
            raise InputError(
                "movie",
                f"contains NaN away from the frame edges (first in frame {frame}); "
                "only the borders left by motion correction may be NaN",
            )
        for a in range(nd):
            sel = axis_of == a
            if sel.any():
                border[a] = max(border[a], int(best[sel].max()) + 1)
    return tuple(border) if found else None


def movie_for_cnmf(movie: Any, *, motion: Any = None, border_nan: Any = None) -> Any:
    """Return the movie as CNMF and the evaluation read it.

    THE rule for the borders motion correction leaves, used by every path (CLI, API, widgets,
    batch).

    Motion correction fills pixels shifted in from outside the frame with NaN
    (``border_nan=True``), 0 (``False``) or the nearest edge value
    (``"copy"``); the width of that strip changes from frame to frame. Like
    CaImAn (``border_to_0``), a fixed border is set to 0 in every frame, so
    that no fake activity appears there:

    * when the motion correction is known (``motion``: a
      :class:`~napari_caiman.engine.motion.MotionResult` or a results file's
      ``motion`` dict), the border is its largest shift rounded up
      (:func:`motion_border`), none with ``border_nan="copy"``;
    * otherwise (a corrected movie read from a file, ``res.corrected`` given
      to :func:`~napari_caiman.engine.cnmf.cnmf`), the border is measured
      from the NaN strips at the frame edges (:func:`nan_border`; the same
      width for rigid correction). NaN away from the edges is an error.

    Remaining NaN read as 0. Returns ``movie`` itself when nothing needs
    changing, else a lazy :class:`NanFilled` view (the movie stays on disk).
    Idempotent: a :class:`NanFilled` is returned as is.
    """
    if isinstance(movie, NanFilled):
        return movie
    if motion is not None and _motion_attr(motion, "shifts_rig") is not None:
        if border_nan is None:
            border_nan = (_motion_attr(motion, "params") or {}).get("border_nan", True)
        if border_nan == "copy":
            return NanFilled(movie, None)
        shifts = _motion_attr(motion, "shifts_rig")
        from types import SimpleNamespace

        return NanFilled(
            movie,
            motion_border(
                SimpleNamespace(shifts_rig=shifts, shifts_els=_motion_attr(motion, "shifts_els"))
            ),
        )
    border = nan_border(movie)
    return movie if border is None else NanFilled(movie, border)
