"""The pieces of the synthetic movies' generative model (see :mod:`.synthetic`).

Random streams, smooth series and fields, the neurons' footprints, their
AR(2) calcium traces, the low-rank background, the motion (rigid shifts and
smooth non-rigid flows) and the bicubic warps of 2D and 3D frames. The public
entry points (``make_movie_2d`` ...) and the truth they return are in
:mod:`.synthetic`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage, signal

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
    x = ndimage.gaussian_filter1d(
        rng.standard_normal((n + 8 * int(sigma) + 8, size)), sigma, axis=0, mode="wrap"
    )
    x = x[4 * int(sigma) + 4 : 4 * int(sigma) + 4 + n]
    x -= x.mean(axis=0)
    m = np.abs(x).max(axis=0)
    m[m == 0] = 1
    return x / m


def _smooth_field(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: tuple[float, ...]
) -> np.ndarray:
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


def _make_background(
    rng, frame_shape, n_frames, sig, rank, baseline, texture, neuron_glow, fps_sum, fr
):
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
        amp = _smooth_series(rng, n_frames, max(3.0, fr / 2), nd * n_modes).reshape(
            n_frames, nd, n_modes
        )
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
        pos = np.stack(
            [g.ravel() / n for g, n in zip(grids, self.L, strict=True)], axis=0
        )  # (nd, P)
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
        return cv2.warpAffine(
            frame, m, frame.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
        )
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
        planes = np.stack(
            [
                cv2.warpAffine(
                    p, m, p.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
                )
                for p in frame
            ]
        )
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
                acc += w[j][z] * cv2.remap(
                    frame[src], map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
                )
            out[z] = acc
            continue
        cache = {}
        acc = np.zeros(frame.shape[1:], np.float32)
        for j in range(4):
            idx = _reflect_index(z0[z] + (j - 1), nz)
            for src in {int(_reflect_index(np.array(i), nz)) for i in range(lo + j - 1, hi + j)}:
                if src not in cache:
                    cache[src] = cv2.remap(
                        frame[src], map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
                    )
                acc += np.where(idx == src, w[j][z], 0.0) * cache[src]
        out[z] = acc
    return out
