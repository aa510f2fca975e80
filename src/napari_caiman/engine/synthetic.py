"""Synthetic calcium-imaging movies with known ground truth.

The generative model (all intensities in detector *counts*, so that a float
movie and its ``uint16`` version differ only by rounding):

* ``K`` neurons with elliptical Gaussian footprints ``A_k`` (peak 1, truncated
  at about 3 SD) and calcium traces ``C_k`` that follow an AR(2) process
  driven by sparse Poisson spikes ``S_k`` (fr 30 Hz, rise 0.05 s, decay 0.4 s
  by default); a single spike peaks at ``amplitude = snr * noise`` counts at
  the footprint centre.
* A non-negative low-rank background ``B = b f``: the first spatial component
  holds the baseline (``baseline`` counts) times a fine-scale log-normal
  texture ("neuropil", so that motion estimation has structure everywhere)
  and a dim copy of the neurons' resting fluorescence; further components are
  smooth, large-scale and slowly varying.
* ``clean = A C + b f``; ``still = clean + N(0, noise**2)`` (independent per
  pixel and frame); ``movie = warp(still)``.

Motion: every frame of ``still`` is warped by a displacement field
``d(t, r) = shifts[t] + nonrigid(t, r)`` such that

    movie[t](r) = still[t](r - d(t, r))

(a positive ``d`` moves the image content towards larger indices).  Shifts and
flows are in pixels, in **array order** (y, x) or (z, y, x).  2D frames are
warped with OpenCV's bicubic interpolation (``BORDER_REFLECT``; OpenCV
quantises sub-pixel positions to 1/32 px); 3D frames with the same cubic
convolution as a tensor product (OpenCV in each plane, the same Keys kernel
along z, half-sample-symmetric reflection at the borders).

Frames are produced chunk by chunk and the noise of frame ``t`` comes from its
own random stream, so the result does not depend on chunking, and a large
movie can be written straight to a ``.npy`` memmap (``out=``) without holding
the displacement fields of all frames (``return_flow=False``).
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage, signal

from .atomic import atomic_path
from .errors import InputError
from .validate import per_axis, to_array_order

__all__ = ["SyntheticMovie", "make_movie_2d", "make_movie_3d", "make_movie", "ar2_coefficients"]

# independent random streams (SeedSequence spawn keys)
_S_NEURONS, _S_SPIKES, _S_BACKGROUND, _S_MOTION, _S_NOISE = range(5)


@dataclass
class SyntheticMovie:
    """A synthetic movie and its ground truth.

    Attributes
    ----------
    movie : ndarray or np.memmap
        (T, Y, X) or (T, Z, Y, X): what a user would record (moved + noisy),
        in the requested dtype; counts (integer dtypes are rounded and
        clipped to the dtype's range).
    clean : ndarray or None
        float32, no motion and no noise: ``A C + b f``.  None if
        ``return_truth=False``.
    still : ndarray or None
        float32, no motion, with the same noise as ``movie`` (what perfect
        motion correction would give).  None if ``return_truth=False``.
    shifts : ndarray
        (T, n_axes) float32 true rigid displacement of each frame in pixels,
        array order (y, x) / (z, y, x); ``movie[t](r) = still[t](r - d)``.
    flow : ndarray or None
        (T, n_axes, *frame_shape) float32 full displacement field (rigid +
        non-rigid) in pixels, same convention; None when there is no motion
        or ``return_flow=False``.
    footprints : ndarray
        (K, *frame_shape) float32 spatial footprints, each with maximum 1.
    traces : ndarray
        (K, T) float32 calcium traces C in counts (>= 0).
    spikes : ndarray
        (K, T) float32 spike input S of the AR process (counts, >= 0).
    b : ndarray
        (nb, *frame_shape) float32 spatial background components (>= 0).
    f : ndarray
        (nb, T) float32 temporal background components (>= 0).
    centers : ndarray
        (K, n_axes) float64 footprint centres, array order, pixels.
    g : ndarray
        (K, 2) AR(2) coefficients of each trace: c[t] = g1 c[t-1] + g2 c[t-2] + s[t].
    noise_sd : float
        Standard deviation of the additive Gaussian noise, counts.
    params : dict
        Every setting used (including ``seed``) and derived constants.
    """

    movie: np.ndarray
    clean: np.ndarray | None
    still: np.ndarray | None
    shifts: np.ndarray
    flow: np.ndarray | None
    footprints: np.ndarray
    traces: np.ndarray
    spikes: np.ndarray
    b: np.ndarray
    f: np.ndarray
    centers: np.ndarray
    g: np.ndarray
    noise_sd: float
    params: dict = field(default_factory=dict)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """(Y, X) or (Z, Y, X)."""
        return tuple(self.movie.shape[1:])

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return int(self.movie.shape[0])

    @property
    def background(self) -> tuple[np.ndarray, np.ndarray]:
        """The low-rank background as ``(b, f)``; see the attributes."""
        return self.b, self.f

    @property
    def caiman_dims(self) -> tuple[int, ...]:
        """Frame dims in CaImAn order: (Y, X) or (Y, X, Z)."""
        fs = self.frame_shape
        return fs if len(fs) == 2 else (fs[1], fs[2], fs[0])

    def footprints_caiman(self):
        """Footprints as CaImAn's ``A``: scipy.sparse CSC, pixels x K.

        Pixels are flattened in Fortran order over :attr:`caiman_dims`
        ((Y, X) or (Y, X, Z)).
        """
        from scipy import sparse

        fp = self.footprints
        if fp.ndim == 4:  # (K, Z, Y, X) -> (K, Y, X, Z)
            fp = fp.transpose(0, 2, 3, 1)
        # Fortran-order flattening of each footprint == C-order of the reversed axes
        flat = fp.transpose(0, *range(fp.ndim - 1, 0, -1)).reshape(len(fp), -1).T
        return sparse.csc_matrix(flat)


# ----------------------------------------------------------------------------- helpers


def ar2_coefficients(fr: float, decay_time: float, rise_time: float) -> tuple[float, float]:
    """AR(2) coefficients for a double-exponential calcium kernel.

    Parameters
    ----------
    fr : float
        Frame rate, Hz.
    decay_time, rise_time : float
        Time constants, seconds.

    Returns
    -------
    (g1, g2) : tuple of float
        With ``c[t] = g1 c[t-1] + g2 c[t-2] + s[t]``.
    """
    d = math.exp(-1.0 / (decay_time * fr))
    r = math.exp(-1.0 / (max(rise_time, 1e-6) * fr))
    return d + r, -d * r


def _rng(seed: int, stream: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), 7919, stream, *more])


def _smooth_series(rng: np.random.Generator, n: int, sigma: float, size: int = 1) -> np.ndarray:
    """(n, size) smooth zero-mean random series with unit max |value|."""
    x = ndimage.gaussian_filter1d(rng.standard_normal((n + 8 * int(sigma) + 8, size)), sigma, axis=0, mode="wrap")
    x = x[4 * int(sigma) + 4 : 4 * int(sigma) + 4 + n]
    x -= x.mean(axis=0)
    m = np.abs(x).max(axis=0)
    m[m == 0] = 1
    return x / m


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: tuple[float, ...]) -> np.ndarray:
    """Zero-mean, unit-SD Gaussian random field with correlation length ~sigma (px)."""
    x = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    x -= x.mean()
    sd = x.std()
    return (x / sd if sd > 0 else x).astype(np.float32)


def _to_dtype(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        return x.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    return np.clip(np.rint(x), info.min, info.max).astype(dtype)


# ----------------------------------------------------------------------------- model pieces


def _make_footprints(rng, frame_shape, sig, n_neurons, margin):
    """Elliptical Gaussian footprints at random, not-too-close positions."""
    nd = len(frame_shape)
    sig = np.asarray(sig, float)
    lo = np.array([min(m, (n - 1) / 3) for m, n in zip(margin, frame_shape, strict=True)])
    hi = np.array(frame_shape, float) - 1 - lo
    min_dist = 1.2 * float(np.min(sig[-2:]))
    centers: list[np.ndarray] = []
    tries = 0
    while len(centers) < n_neurons:
        c = lo + rng.random(nd) * (hi - lo)
        tries += 1
        # relax the spacing if the frame is crowded
        relax = 0.8 ** (tries // (50 * max(n_neurons, 1)))
        if all(np.linalg.norm((c - p) / sig * sig[-1]) >= min_dist * relax for p in centers):
            centers.append(c)
    centers_arr = np.array(centers).reshape(n_neurons, nd)
    fps = np.zeros((n_neurons, *frame_shape), np.float32)
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in frame_shape], indexing="ij")
    for k in range(n_neurons):
        scale = sig * rng.uniform(0.8, 1.25, nd)
        # rotation in the (y, x) plane; z stays an axis
        th = rng.uniform(0, np.pi)
        rot = np.eye(nd)
        rot[-2:, -2:] = [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
        cov_inv = rot @ np.diag(1.0 / scale**2) @ rot.T
        # only evaluate in a bounding box
        rad = np.ceil(3.5 * scale.max()).astype(int)
        sl = tuple(
            slice(max(0, int(round(c)) - rad), min(n, int(round(c)) + rad + 1))
            for c, n in zip(centers_arr[k], frame_shape, strict=True)
        )
        d = np.stack([g[sl] - c for g, c in zip(grids, centers_arr[k], strict=True)], axis=-1)
        q = np.einsum("...i,ij,...j->...", d, cov_inv, d)
        a = np.exp(-0.5 * q)
        a[q > 9.0] = 0.0  # truncate at 3 SD
        fps[k][sl] = a / a.max()
    return fps, centers_arr


def _make_traces(rng, n_neurons, n_frames, fr, g, firing_rate, amplitude):
    """Sparse Poisson spikes through an AR(2) filter, scaled so a spike peaks at ~amplitude."""
    g1, g2 = g
    # peak of the impulse response
    h = signal.lfilter([1.0], [1.0, -g1, -g2], np.r_[1.0, np.zeros(int(10 * fr) + 10)])
    hpeak = float(h.max())
    rates = firing_rate * rng.uniform(0.5, 1.5, n_neurons)  # Hz
    amps = amplitude * rng.uniform(0.75, 1.25, n_neurons)
    counts = rng.poisson(rates[:, None] / fr, (n_neurons, n_frames)).astype(np.float64)
    sizes = np.exp(0.2 * rng.standard_normal((n_neurons, n_frames)))  # spike-size jitter
    spikes = counts * sizes * (amps / hpeak)[:, None]
    traces = signal.lfilter([1.0], [1.0, -g1, -g2], spikes, axis=1)
    traces = np.maximum(traces, 0.0)
    return traces.astype(np.float32), spikes.astype(np.float32)


def _make_background(rng, frame_shape, n_frames, sig, rank, baseline, texture, neuron_glow, fps_sum, fr):
    """Non-negative low-rank background (b, f)."""
    nd = len(frame_shape)
    b = np.zeros((rank, *frame_shape), np.float32)
    f = np.zeros((rank, n_frames), np.float32)
    # large-scale illumination (vignetting) times fine-scale neuropil texture
    large = _smooth_field(rng, frame_shape, tuple(max(2.0, n / 4) for n in frame_shape))
    fine = _smooth_field(rng, frame_shape, tuple(max(0.7, s / 2) for s in sig))
    b[0] = baseline * np.exp(0.15 * large + texture * fine) + neuron_glow * fps_sum
    # slow drift (a few %) with mild photobleaching
    tt = np.arange(n_frames) / fr
    drift = 0.03 * _smooth_series(rng, n_frames, max(2.0, 3 * fr), 1)[:, 0]
    f[0] = (1.0 + drift) * (0.97 + 0.03 * np.exp(-tt / max(tt[-1], 1.0)))
    for i in range(1, rank):
        sp = _smooth_field(rng, frame_shape, tuple(max(2.0, n / 3) for n in frame_shape))
        b[i] = 0.15 * baseline * np.exp(0.5 * sp) / np.exp(0.5 * sp).max()
        f[i] = 0.5 + 0.5 * _smooth_series(rng, n_frames, max(2.0, fr), 1)[:, 0]
    del nd
    return b, f


class _Motion:
    """Rigid trajectory + smooth non-rigid field, evaluated frame chunk by chunk."""

    def __init__(self, rng, n_frames, frame_shape, rigid, nonrigid, n_modes, fr):
        nd = len(frame_shape)
        self.frame_shape = frame_shape
        self.nd = nd
        # rigid: smooth random walk + jitter, each axis scaled to max |d| = rigid[a]
        steps = rng.standard_normal((n_frames, nd))
        walk = ndimage.gaussian_filter1d(np.cumsum(steps, axis=0), 2.0, axis=0)
        walk -= walk.mean(axis=0)
        walk += 0.15 * np.abs(walk).max(axis=0, initial=1e-9) * rng.standard_normal((n_frames, nd))
        m = np.abs(walk).max(axis=0)
        m[m == 0] = 1
        self.shifts = (walk / m * np.asarray(rigid, float)).astype(np.float32)
        self.has_nonrigid = nonrigid > 0
        self.has_motion = bool(np.any(np.asarray(rigid) > 0) or self.has_nonrigid)
        if not self.has_nonrigid:
            return
        # spatial modes: cos(2 pi k.r/L + phase), 0.3-1.2 cycles across the frame
        L = np.asarray(frame_shape, float)
        ks = rng.normal(size=(nd, n_modes, nd))
        ks /= np.linalg.norm(ks, axis=-1, keepdims=True)
        ks *= rng.uniform(0.3, 1.2, (nd, n_modes, 1))
        phases = rng.uniform(0, 2 * np.pi, (nd, n_modes))
        self.ks, self.phases, self.L = ks, phases, L
        # smooth time courses of the mode amplitudes
        amp = _smooth_series(rng, n_frames, max(3.0, fr / 2), nd * n_modes).reshape(n_frames, nd, n_modes)
        amp += 0.1 * rng.standard_normal(amp.shape)
        # scale so that max over (t, r) of |nonrigid| equals `nonrigid` (on a fine grid)
        grid = [np.linspace(0, n - 1, min(n, 48)) for n in frame_shape]
        phi = self._modes(grid)  # (nd, M, P)
        vals = np.matmul(amp.transpose(1, 0, 2), phi)  # (nd, T, P)
        mag = np.sqrt((vals.astype(np.float64) ** 2).sum(axis=0)).max()
        self.amp = (amp * (nonrigid / mag if mag > 0 else 0.0)).astype(np.float32)
        self.phi = self._modes([np.arange(n, dtype=float) for n in frame_shape])  # (nd, M, P)

    def _modes(self, axes):
        grids = np.meshgrid(*axes, indexing="ij")
        pos = np.stack([g.ravel() / n for g, n in zip(grids, self.L, strict=True)], axis=0)  # (nd, P)
        arg = 2 * np.pi * np.einsum("amd,dp->amp", self.ks, pos) + self.phases[..., None]
        return np.cos(arg).astype(np.float32)

    def flow(self, t0: int, t1: int) -> np.ndarray:
        """(t1-t0, nd, *frame_shape) float32 full displacement (rigid + non-rigid)."""
        n = t1 - t0
        out = np.empty((n, self.nd, int(np.prod(self.frame_shape))), np.float32)
        if self.has_nonrigid:
            out[:] = np.matmul(self.amp[t0:t1].transpose(1, 0, 2), self.phi).transpose(1, 0, 2)
        else:
            out[:] = 0
        out += self.shifts[t0:t1, :, None]
        return out.reshape(n, self.nd, *self.frame_shape)


def _warp_2d(frame: np.ndarray, shift, flow, base) -> np.ndarray:
    import cv2

    if flow is None:
        m = np.array([[1, 0, shift[1]], [0, 1, shift[0]]], np.float64)
        return cv2.warpAffine(frame, m, frame.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    map_y = base[0] - flow[0]
    map_x = base[1] - flow[1]
    return cv2.remap(frame, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _keys_weights(u: np.ndarray, a: float = -0.75) -> list[np.ndarray]:
    """Cubic-convolution (Keys, OpenCV's a=-0.75) weights for offsets -1, 0, 1, 2."""
    out = []
    for s in (u + 1.0, u, 1.0 - u, 2.0 - u):
        s = np.abs(s)
        near = ((a + 2) * s - (a + 3)) * s * s + 1
        far = ((a * s - 5 * a) * s + 8 * a) * s - 4 * a
        out.append(np.where(s <= 1, near, np.where(s < 2, far, 0.0)).astype(np.float32))
    return out


def _reflect_index(i: np.ndarray, n: int) -> np.ndarray:
    """Half-sample symmetric reflection (OpenCV BORDER_REFLECT, scipy 'reflect')."""
    i = np.mod(i, 2 * n)
    return np.where(i >= n, 2 * n - 1 - i, i)


def _warp_3d(frame: np.ndarray, shift, flow, base) -> np.ndarray:
    """Tensor-product cubic convolution: OpenCV bicubic in (y, x), Keys cubic in z."""
    import cv2

    nz = frame.shape[0]
    if flow is None:
        m = np.array([[1, 0, shift[2]], [0, 1, shift[1]]], np.float64)
        planes = np.stack([
            cv2.warpAffine(p, m, p.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            for p in frame
        ])
        z0 = math.floor(-shift[0])
        w = _keys_weights(np.float32(-shift[0] - z0))  # type: ignore[arg-type]
        out = np.zeros_like(planes)
        zz = np.arange(nz)
        for j in range(4):
            out += w[j] * planes[_reflect_index(zz + z0 + j - 1, nz)]
        return out
    zs = np.arange(nz, dtype=np.float32)[:, None, None] - flow[0]
    z0f = np.floor(zs)
    w = _keys_weights(zs - z0f)
    z0 = z0f.astype(np.int32)
    out = np.empty_like(frame)
    for z in range(nz):
        map_y = base[0] - flow[1, z]
        map_x = base[1] - flow[2, z]
        lo, hi = int(z0[z].min()), int(z0[z].max())
        if lo == hi:  # the common case: one set of 4 source planes for the whole plane
            acc = np.zeros(frame.shape[1:], np.float32)
            for j in range(4):
                src = int(_reflect_index(np.array(lo + j - 1), nz))
                acc += w[j][z] * cv2.remap(frame[src], map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            out[z] = acc
            continue
        cache = {}
        acc = np.zeros(frame.shape[1:], np.float32)
        for j in range(4):
            idx = _reflect_index(z0[z] + (j - 1), nz)
            for src in {int(_reflect_index(np.array(i), nz)) for i in range(lo + j - 1, hi + j)}:
                if src not in cache:
                    cache[src] = cv2.remap(frame[src], map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
                acc += np.where(idx == src, w[j][z], 0.0) * cache[src]
        out[z] = acc
    return out


# ----------------------------------------------------------------------------- public API


def make_movie(
    shape: tuple[int, ...],
    *,
    n_neurons: int,
    gSig,
    rigid_motion=0.0,
    nonrigid_motion: float = 0.0,
    noise: float = 10.0,
    snr: float = 2.0,
    amplitude: float | None = None,
    baseline: float = 100.0,
    texture: float = 0.25,
    neuron_glow: float = 0.3,
    background_rank: int = 1,
    fr: float = 30.0,
    decay_time: float = 0.4,
    rise_time: float = 0.05,
    firing_rate: float = 0.5,
    n_modes: int = 4,
    dtype=np.float32,
    seed: int = 0,
    return_flow: bool = True,
    return_truth: bool = True,
    out: str | os.PathLike | None = None,
    reuse: bool = False,
    chunk_frames: int | None = None,
) -> SyntheticMovie:
    """Make a 2D (T, Y, X) or 3D (T, Z, Y, X) synthetic movie with ground truth.

    See :func:`make_movie_2d` for the parameters; ``gSig`` is per axis in
    CaImAn order (rows, cols[, planes]).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (3, 4) or min(shape) < 1:
        raise InputError("shape", f"expected (T, Y, X) or (T, Z, Y, X) with positive sizes, got {shape}")
    n_frames, frame_shape = shape[0], shape[1:]
    nd = len(frame_shape)
    if n_frames < 2:
        raise InputError("shape", f"need at least 2 frames, got {n_frames}")
    sig = to_array_order(per_axis(gSig, nd, "gSig", kind=float, minimum=0.3), nd)
    rigid = to_array_order(per_axis(rigid_motion, nd, "rigid_motion", kind=float, minimum=0.0), nd)
    nonrigid_motion = float(nonrigid_motion)
    if nonrigid_motion < 0:
        raise InputError("nonrigid_motion", f"must be >= 0, got {nonrigid_motion}")
    if n_neurons < 0:
        raise InputError("n_neurons", f"must be >= 0, got {n_neurons}")
    if noise < 0:
        raise InputError("noise", f"must be >= 0, got {noise}")
    if background_rank < 1:
        raise InputError("background_rank", f"must be >= 1, got {background_rank}")
    dtype = np.dtype(dtype)
    if dtype.kind not in "uif":
        raise InputError("dtype", f"expected an integer or float dtype, got {dtype}")
    if amplitude is None:
        amplitude = snr * (noise if noise > 0 else 1.0)
    amplitude = float(amplitude)
    g = ar2_coefficients(fr, decay_time, rise_time)

    # --- ground truth
    margin = tuple(1.5 * s + r + nonrigid_motion for s, r in zip(sig, rigid, strict=True))
    footprints, centers = _make_footprints(_rng(seed, _S_NEURONS), frame_shape, sig, n_neurons, margin)
    traces, spikes = _make_traces(_rng(seed, _S_SPIKES), n_neurons, n_frames, fr, g, firing_rate, amplitude)
    fps_sum = footprints.sum(axis=0) * amplitude if n_neurons else np.zeros(frame_shape, np.float32)
    b, f = _make_background(
        _rng(seed, _S_BACKGROUND), frame_shape, n_frames, sig, background_rank,
        baseline, texture, neuron_glow, fps_sum, fr,
    )
    motion = _Motion(_rng(seed, _S_MOTION), n_frames, frame_shape, rigid, nonrigid_motion, n_modes, fr)

    # --- outputs
    P = int(np.prod(frame_shape))
    At = footprints.reshape(n_neurons, P)  # (K, P)
    Bt = b.reshape(background_rank, P)  # (nb, P)
    clean = np.empty(shape, np.float32) if return_truth else None
    still = np.empty(shape, np.float32) if return_truth else None
    flow_all = None
    if return_flow and motion.has_motion:
        flow_all = np.empty((n_frames, nd, *frame_shape), np.float32)
    if chunk_frames is None:
        chunk_frames = max(1, min(n_frames, (16 << 20) // max(P, 1)))
    warp = _warp_2d if nd == 2 else _warp_3d
    # (y, x) pixel grid for the remap maps
    base = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in frame_shape[-2:]], indexing="ij"))

    def frame_job(t: int, cl_t: np.ndarray, st_t: np.ndarray, fl_t, movie_out) -> None:
        # noise of frame t comes from its own stream: independent of chunking/threads
        nz = _rng(seed, _S_NOISE, t).standard_normal(frame_shape, dtype=np.float32)
        np.multiply(nz, np.float32(noise), out=nz)
        np.add(cl_t, nz, out=st_t)
        if motion.has_motion:
            mv = warp(st_t, motion.shifts[t], fl_t, base)
        else:
            mv = st_t
        movie_out[t] = _to_dtype(mv, dtype)

    def fill(movie_out: np.ndarray) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            for t0 in range(0, n_frames, chunk_frames):
                t1 = min(n_frames, t0 + chunk_frames)
                # (c, P) C-contiguous: frames x pixels
                cl = f[:, t0:t1].T @ Bt
                if n_neurons:
                    cl += traces[:, t0:t1].T @ At
                cl = cl.reshape(t1 - t0, *frame_shape)
                st = still[t0:t1] if return_truth else np.empty_like(cl)  # type: ignore[index]
                fl = motion.flow(t0, t1) if motion.has_nonrigid else None
                if flow_all is not None:
                    flow_all[t0:t1] = fl if fl is not None else motion.flow(t0, t1)
                jobs = [
                    pool.submit(frame_job, t, cl[i], st[i], None if fl is None else fl[i], movie_out)
                    for i, t in enumerate(range(t0, t1))
                ]
                for j in jobs:
                    j.result()
                if return_truth:
                    clean[t0:t1] = cl  # type: ignore[index]

    if out is not None:
        out = Path(out)
        suffix = out.suffix.lower()
        if suffix not in (".npy", ".tif", ".tiff"):
            raise InputError("out", f"expected a .npy or .tif path, got {str(out)!r}")
        # streamed: each chunk of frames goes to the file's pages as it is made
        # (``reuse``: a file an earlier call with the same arguments wrote is
        # opened as it is: benchmarks of long movies regenerate only the truth)
        with contextlib.nullcontext(None) if reuse and out.exists() else atomic_path(out) as tmp:
            if tmp is not None:
                if suffix == ".npy":
                    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
                else:
                    import tifffile

                    mm = tifffile.memmap(tmp, shape=shape, dtype=dtype, bigtiff=True, photometric="minisblack")
                fill(mm)
                mm.flush()
                del mm
        if suffix == ".npy":
            movie = np.load(out, mmap_mode="r")
        else:
            import tifffile

            movie = tifffile.memmap(out, mode="r").reshape(shape)
    else:
        movie = np.empty(shape, dtype)
        fill(movie)

    params: dict[str, Any] = dict(
        shape=shape, n_neurons=n_neurons, gSig=tuple(per_axis(gSig, nd, "gSig", kind=float)),
        rigid_motion=rigid_motion, nonrigid_motion=nonrigid_motion, noise=float(noise), snr=float(snr),
        amplitude=amplitude, baseline=float(baseline), texture=float(texture),
        neuron_glow=float(neuron_glow), background_rank=int(background_rank), fr=float(fr),
        decay_time=float(decay_time), rise_time=float(rise_time), firing_rate=float(firing_rate),
        n_modes=int(n_modes), dtype=dtype.name, seed=int(seed), return_flow=return_flow,
        return_truth=return_truth, out=None if out is None else str(out),
        gSig_array_order=tuple(sig), rigid_motion_array_order=tuple(rigid),
        p=2, g=tuple(g), units="counts; shifts/flow in pixels, array order",
    )
    return SyntheticMovie(
        movie=movie, clean=clean, still=still, shifts=motion.shifts, flow=flow_all,
        footprints=footprints, traces=traces, spikes=spikes, b=b, f=f, centers=centers,
        g=np.tile(np.asarray(g, np.float64), (n_neurons, 1)), noise_sd=float(noise), params=params,
    )


def make_movie_2d(
    shape: tuple[int, int, int] = (300, 128, 128),
    *,
    n_neurons: int = 30,
    gSig=4,
    rigid_motion=0.0,
    nonrigid_motion: float = 0.0,
    noise: float = 10.0,
    snr: float = 2.0,
    background_rank: int = 1,
    dtype=np.float32,
    seed: int = 0,
    return_flow: bool = True,
    **kwargs,
) -> SyntheticMovie:
    """Make a 2D two-photon-like movie (T, Y, X) with known truth.

    Parameters
    ----------
    shape : (T, Y, X)
        Frames and frame size, pixels.
    n_neurons : int
        Number of neurons K.
    gSig : float or (float, float)
        Footprint Gaussian SD in pixels, CaImAn order (rows, cols); each
        neuron's SDs vary by a random factor in [0.8, 1.25] and its ellipse
        is randomly oriented.
    rigid_motion : float or (float, float)
        Largest absolute rigid displacement per axis, pixels (0: none).  The
        trajectory is a smoothed random walk plus jitter.
    nonrigid_motion : float
        Largest magnitude of the extra, spatially smooth displacement field,
        pixels (0: none); a sum of ``n_modes`` low-frequency cosine modes with
        smoothly varying amplitudes.
    noise : float
        Standard deviation of the additive Gaussian noise, counts.
    snr : float
        Peak of a single spike's transient at a footprint centre, in units of
        ``noise`` (per-neuron factor in [0.75, 1.25]).  ``amplitude=`` (counts)
        overrides it.
    background_rank : int
        Number of background components nb.
    dtype : dtype
        dtype of ``movie``; integers are rounded and clipped (values are
        counts: baseline ~100, so ``uint16`` needs no rescaling).
    seed : int
        Seed; the result is a deterministic function of all arguments.
    return_flow : bool
        Keep the full displacement field (T, 2, Y, X) float32 (set False for
        big movies).
    **kwargs
        ``amplitude`` (counts), ``baseline`` (counts, 100), ``texture``
        (log-SD of the fine neuropil texture, 0.25), ``neuron_glow`` (resting
        fluorescence of neurons as a fraction of ``amplitude``, 0.3),
        ``fr`` (Hz, 30), ``decay_time`` (s, 0.4), ``rise_time`` (s, 0.05),
        ``firing_rate`` (Hz, 0.5), ``n_modes`` (4), ``return_truth`` (keep
        ``clean`` and ``still``, True), ``out`` (a ``.npy`` path: write the
        movie there and return it as a read-only memmap), ``chunk_frames``.

    Returns
    -------
    SyntheticMovie

    Raises
    ------
    InputError
        On invalid shapes or parameters.
    """
    return make_movie(
        shape, n_neurons=n_neurons, gSig=gSig, rigid_motion=rigid_motion,
        nonrigid_motion=nonrigid_motion, noise=noise, snr=snr, background_rank=background_rank,
        dtype=dtype, seed=seed, return_flow=return_flow, **kwargs,
    )


def make_movie_3d(
    shape: tuple[int, int, int, int] = (200, 10, 64, 64),
    *,
    n_neurons: int = 20,
    gSig=(4, 4, 2),
    rigid_motion=0.0,
    nonrigid_motion: float = 0.0,
    noise: float = 10.0,
    snr: float = 2.0,
    background_rank: int = 1,
    dtype=np.float32,
    seed: int = 0,
    return_flow: bool = True,
    **kwargs,
) -> SyntheticMovie:
    """Make a volumetric movie (T, Z, Y, X) with known truth.

    Same model and parameters as :func:`make_movie_2d`, except:

    Parameters
    ----------
    shape : (T, Z, Y, X)
    gSig : float or (float, float, float)
        Footprint SD in pixels, CaImAn order (rows, cols, planes); the
        ellipsoid is rotated in the (y, x) plane only.
    rigid_motion : float or (float, float, float)
        Largest absolute rigid displacement per axis, pixels, CaImAn order
        (rows, cols, planes); a scalar applies to all three axes (z included).
        ``shifts`` are still returned in array order (z, y, x).

    Returns
    -------
    SyntheticMovie
        ``flow`` is (T, 3, Z, Y, X) in array order (z, y, x).
    """
    return make_movie(
        shape, n_neurons=n_neurons, gSig=gSig, rigid_motion=rigid_motion,
        nonrigid_motion=nonrigid_motion, noise=noise, snr=snr, background_rank=background_rank,
        dtype=dtype, seed=seed, return_flow=return_flow, **kwargs,
    )
