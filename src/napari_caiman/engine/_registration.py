"""Registration kernels for motion correction (no I/O, no progress).

Everything here works on *batches* of frames (B, Y, X) or volumes
(B, Z, Y, X), float32, in array order.  Shifts are in array order too, and
follow CaImAn's convention: a shift ``s`` is the correction, i.e. if
``raw(r) = truth(r - d)`` then ``s = -d`` and ``corrected(r) = raw(r - s)``.

Shift estimation
    Cross-correlation of an apodized, mean-subtracted frame with the template,
    computed in the Fourier domain (real FFTs).  Only a small window of
    cross-correlation values is ever needed, so instead of an inverse FFT the
    window is evaluated by *matrix DFTs* (``E_y @ P @ E_x``) at arbitrary,
    per-frame positions.  The integer peak is searched in ``|s| <= max_shift``
    (or a window around the rigid shift for patches), refined on a grid
    upsampled ``UPSAMPLE`` times within +-0.8 px of it (Guizar-Sicairos'
    upsampled DFT) and finally by a parabola through the three best upsampled
    values on each axis.  All of it is batched (numpy matmul on stacks).

Shift application
    2D: ``cv2.warpAffine`` (rigid) / ``cv2.remap`` (piecewise rigid) with
    bicubic interpolation.  3D: rigid = bicubic in-plane warp of every plane
    followed by cubic (Catmull-Rom) interpolation across planes; piecewise
    rigid = bicubic ``cv2.remap`` of the source planes + cubic convolution
    across planes (8x faster than ``scipy.ndimage.map_coordinates``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np
import scipy.fft as sfft
from scipy import ndimage
from scipy.interpolate import make_interp_spline

UPSAMPLE = 4  # sub-pixel grid of the upsampled DFT (1/4 px, then a parabola: as accurate as 1/16 px, measured)
_TWO_PI = 2.0 * np.pi


# ----------------------------------------------------------------------------- helpers


def edge_window(shape: tuple[int, ...], zero: tuple[int, ...], ramp: tuple[int, ...]) -> np.ndarray:
    """Separable window.

    0 within ``zero`` px of the edges, a raised-cosine ramp over the next ``ramp`` px, 1 inside.
    """
    w = np.ones((), np.float64)
    for n, z, r in zip(shape, zero, ramp, strict=True):
        x = np.arange(n)
        d = np.minimum(x, n - 1 - x) - z
        v = np.clip((d + 0.5) / max(r, 1), 0, 1)
        w = np.multiply.outer(w, 0.5 - 0.5 * np.cos(np.pi * v))
    return w.astype(np.float32)


class Spectral:
    """Precomputed geometry for matrix-DFT cross-correlations of arrays of one shape.

    The arrays have the spatial ``shape`` given (rfft along the last axis).

    Accuracy note (measured on noisy synthetic 2-photon movies): plain
    cross-correlation beats phase correlation (whitening amplifies noise), and
    windowing only the *template* -- zero within ``max_shift`` of the edges,
    then a short ramp -- avoids both wrap-around and the bias an edge taper on
    the moving frame introduces (0.04 px RMS vs 0.08-0.2 px).
    """

    def __init__(
        self, shape: tuple[int, ...], zero: tuple[int, ...], ramp: int = 4, keep: float = 1.0
    ):
        self.shape = tuple(int(s) for s in shape)
        self.nd = len(shape)
        self.axes = tuple(range(-self.nd, 0))
        zero = tuple(
            min(z, max(0, n // 2 - ramp - 2)) for z, n in zip(zero, self.shape, strict=True)
        )
        self.window = edge_window(self.shape, zero, (ramp,) * self.nd)
        # Only frequencies up to ``keep`` x Nyquist enter the correlation
        # windows (``crop``): a low-pass of the cross-correlation that hardly
        # changes the peak position but cuts the matrix-DFT work ~1/keep^2.
        self.freqs = []
        self.sel = []
        for a, n in enumerate(self.shape):
            if a < self.nd - 1:
                f = np.fft.fftfreq(n, 1.0 / n)
            else:
                f = np.fft.rfftfreq(n, 1.0 / n)
            idx = np.flatnonzero(np.abs(f) <= keep * n / 2 + 1e-9)
            self.sel.append(idx)
            self.freqs.append((_TWO_PI * f[idx] / n).astype(np.float32))
        n = self.shape[-1]
        w = np.full(n // 2 + 1, 2.0, np.float32)
        w[0] = 1.0
        if n % 2 == 0:
            w[-1] = 1.0
        self.last_weights = w[self.sel[-1]]
        self.full = all(
            len(i) == (n if a < self.nd - 1 else n // 2 + 1)
            for a, (i, n) in enumerate(zip(self.sel, self.shape, strict=True))
        )
        self._ix = np.ix_(*self.sel)

    def crop(self, F: np.ndarray) -> np.ndarray:
        """Keep the frequencies used by :meth:`window_values` ((B, *rfft) -> smaller)."""
        return F if self.full else F[(slice(None), *self._ix)]  # type: ignore[arg-type]

    def prepare(
        self, x: np.ndarray, window: np.ndarray | None = None, workers: int = 1
    ) -> np.ndarray:
        """Mean-subtract, optionally window, and rFFT a batch (B, *shape).

        Only the frequencies used are kept (see :meth:`crop`).
        """
        axes = self.axes
        y = x - x.mean(axis=axes, keepdims=True, dtype=np.float32)
        if window is not None:
            y *= window
        return self.crop(sfft.rfftn(y, axes=axes, workers=workers).astype(np.complex64, copy=False))

    def prepare_template(self, x: np.ndarray) -> np.ndarray:
        return self.prepare(x, self.window)

    def window_values(
        self, P: np.ndarray, grids: list[np.ndarray], offsets: np.ndarray
    ) -> np.ndarray:
        """Cross-correlation values at positions ``offsets[b] + grid``.

        P : (B, *rfft_shape) complex64 cross-power spectra.
        grids : one (w_a,) array of relative positions per axis (shared).
        offsets : (B, nd) per-item origin of the grid (pixels).
        Returns (B, w_0, ..., w_{nd-1}) float32 (unnormalized).

        The per-item offsets become phase ramps (applied to P before
        contracting each axis), so each axis is contracted with one *shared*
        kernel in a single large GEMM (stacked small complex GEMMs are slow).
        """
        B = P.shape[0]
        X = P
        offsets = np.asarray(offsets, np.float32)
        for a in reversed(range(self.nd)):  # last (contiguous) axis first: one GEMM, no copy
            f = self.freqs[a]
            ax = 1 + a
            if np.any(offsets[:, a] != 0):
                ph = offsets[:, a, None] * f[None, :]  # (B, n_a)
                ramp = (np.cos(ph) + 1j * np.sin(ph)).astype(np.complex64)
                shape = [B] + [1] * (X.ndim - 1)
                shape[ax] = len(f)
                X = X * ramp.reshape(shape)
            ph = np.asarray(grids[a], np.float32)[:, None] * f[None, :]  # (w, n_a)
            K = (np.cos(ph) + 1j * np.sin(ph)).astype(np.complex64)
            if a == self.nd - 1:
                K = K * self.last_weights[None, :]
            Xm = np.moveaxis(X, ax, -1)
            lead = Xm.shape[:-1]
            Y = np.ascontiguousarray(Xm).reshape(-1, len(f)) @ K.T
            X = np.moveaxis(Y.reshape(*lead, K.shape[0]), -1, ax)
        return np.ascontiguousarray(X.real)


def _parabola(c_m: np.ndarray, c_0: np.ndarray, c_p: np.ndarray) -> np.ndarray:
    den = c_m - 2.0 * c_0 + c_p
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(den < 0, 0.5 * (c_m - c_p) / den, 0.0)
    return np.clip(d, -0.5, 0.5)


def find_shifts(
    spec: Spectral,
    P: np.ndarray,
    center: np.ndarray,
    half: np.ndarray,
    lo: np.ndarray | None = None,
    hi: np.ndarray | None = None,
) -> np.ndarray:
    """Sub-pixel correction shifts of a batch against a template.

    P : (B, *rfft_shape) cross-power spectra ``template * conj(frame)`` of
        prepared (see :meth:`Spectral.prepare`) arrays.
    center : (B, nd) int, centre of the integer search window.
    half : (nd,) int, half-width of the integer search window.
    lo, hi : optional (B, nd) float bounds the result is clipped to.
    Returns (B, nd) float32 shifts, array order.
    """
    B, nd = center.shape
    bi = np.arange(B)
    # integer search
    grids = [np.arange(-half[a], half[a] + 1, dtype=np.float32) for a in range(nd)]
    cc = spec.window_values(P, grids, center)
    idx = np.unravel_index(cc.reshape(B, -1).argmax(axis=1), cc.shape[1:])
    peak = center.astype(np.float32) + np.stack([grids[a][idx[a]] for a in range(nd)], axis=1)
    # upsampled DFT around the integer peak
    n = int(math.ceil(0.8 * UPSAMPLE))
    grid = (np.arange(-n, n + 1) / UPSAMPLE).astype(np.float32)
    cc = spec.window_values(P, [grid] * nd, peak)
    idx = np.unravel_index(cc.reshape(B, -1).argmax(axis=1), cc.shape[1:])
    shifts = np.empty((B, nd), np.float32)
    w = cc.shape[1]
    for a in range(nd):
        i = np.clip(idx[a], 1, w - 2)
        im = list(idx)
        ip = list(idx)
        i0 = list(idx)
        im[a] = i - 1
        ip[a] = i + 1
        i0[a] = i
        d = _parabola(cc[(bi, *im)], cc[(bi, *i0)], cc[(bi, *ip)])
        shifts[:, a] = peak[:, a] + grid[i] + d / UPSAMPLE
    if lo is not None:
        shifts = np.clip(shifts, lo, hi)
    return shifts


# ----------------------------------------------------------------------------- filtering


def high_pass(frames: np.ndarray, gsig: tuple[float, ...]) -> np.ndarray:
    """CaImAn-style 1p high-pass.

    Gaussian smoothing (SD gSig) minus the local mean over the kernel's support (box of size
    2*ceil(3*gSig)+1).
    """
    nd = len(gsig)
    ks = tuple(2 * int(math.ceil(3 * g)) + 1 for g in gsig)
    out = np.empty_like(frames, dtype=np.float32)
    for i, f in enumerate(frames):
        f = np.asarray(f, np.float32)
        if nd == 2:
            g = cv2.GaussianBlur(
                f, (ks[1], ks[0]), sigmaX=gsig[1], sigmaY=gsig[0], borderType=cv2.BORDER_REFLECT
            )
            m = cv2.blur(f, (ks[1], ks[0]), borderType=cv2.BORDER_REFLECT)
        else:
            g = ndimage.gaussian_filter(f, gsig, truncate=3.0, mode="reflect")
            m = ndimage.uniform_filter(f, ks, mode="reflect")
        out[i] = g - m
    return out


# ----------------------------------------------------------------------------- patches


def bin2(frames: np.ndarray) -> np.ndarray:
    """Average 2x2 blocks of (B, Y, X) frames (an odd last row/column is dropped).

    Shifts estimated on binned frames lose hardly any accuracy (measured
    0.031 -> 0.032 px RMS on noisy synthetic movies) for 4x less FFT work.
    """
    y, x = frames.shape[1] // 2, frames.shape[2] // 2
    out = np.empty((len(frames), y, x), np.float32)
    for i, f in enumerate(
        frames
    ):  # OpenCV's area resize (2x2 means): SIMD, 10x numpy's strided sum
        cv2.resize(
            np.ascontiguousarray(f[: 2 * y, : 2 * x]),
            (x, y),
            dst=out[i],
            interpolation=cv2.INTER_AREA,
        )
    return out


def patch_starts(n: int, size: int, stride: int) -> np.ndarray:
    """Start indices of patches of ``size`` stepping by ``stride``; last flush."""
    if size >= n:
        return np.array([0])
    starts = list(range(0, n - size, stride))
    if not starts or starts[-1] != n - size:
        starts.append(n - size)
    return np.asarray(starts)


def field_weights(
    n: int, centers: np.ndarray, upsample: int, extrapolate: bool = True
) -> np.ndarray:
    """(n, len(centers)) weights that interpolate values at patch ``centers`` to every pixel.

    A cubic (or lower) spline evaluated on a grid ``upsample`` times finer than the patch grid, then
    linear to the pixels; continued linearly beyond the outermost centres (holding the field
    constant there left residual motion in the outer half-patch, which CNMF then found as spurious
    components along the edges of the frame). With ``extrapolate=False`` the field is held constant
    there instead (used along z, where a few noisy plane shifts make extrapolation unreliable).
    """
    m = len(centers)
    if m == 1:
        return np.ones((n, 1), np.float32)
    k = min(3, m - 1)
    spl = make_interp_spline(centers.astype(float), np.eye(m), k=k)
    fine = np.linspace(centers[0], centers[-1], (m - 1) * max(1, int(upsample)) + 1)
    S = spl(fine)  # (nf, m)
    p = np.arange(n, dtype=float)
    if not extrapolate:
        p = np.clip(p, centers[0], centers[-1])
    j = np.clip(np.searchsorted(fine, p, side="right") - 1, 0, len(fine) - 2)
    t = (p - fine[j]) / (fine[j + 1] - fine[j])
    L = np.zeros((n, len(fine)))
    L[np.arange(n), j] = 1 - t
    L[np.arange(n), j + 1] += t
    return (L @ S).astype(np.float32)


class PatchGrid:
    """Overlapping patches over a frame and the interpolation back to pixels."""

    def __init__(
        self, frame_shape, strides, overlaps, upsample_grid, pad, taper=4, keep=0.5, binning=1
    ):
        self.frame_shape = tuple(frame_shape)
        self.nd = len(frame_shape)
        self.size = tuple(
            min(s + o, n) for s, o, n in zip(strides, overlaps, frame_shape, strict=True)
        )
        self.starts = [
            patch_starts(n, sz, st)
            for n, sz, st in zip(frame_shape, self.size, strides, strict=True)
        ]
        self.grid_shape = tuple(len(s) for s in self.starts)
        # estimation may run on frames binned ``binning`` x in y/x: patch
        # geometry there (``bsize``, ``bstarts``); output geometry stays full
        self.binning = int(binning)
        self.bsize = tuple(sz // self.binning for sz in self.size)
        self.bstarts = [st // self.binning for st in self.starts]
        self.n_patches = int(np.prod(self.grid_shape))
        # frame patches (size S, short taper) are correlated with template
        # regions padded by ``pad`` on each side (FFT size S + 2 pad): no
        # wrap-around for |shift| <= pad, and no template content lost.
        self.pad = tuple(int(p) for p in pad)
        self.fft_shape = tuple(
            sfft.next_fast_len(sz + 2 * p, real=True)
            for sz, p in zip(self.bsize, self.pad, strict=True)
        )
        self.spec = Spectral(self.fft_shape, (0,) * self.nd, keep=keep)
        self.fwin = edge_window(
            self.bsize, (0,) * self.nd, tuple(min(taper, sz // 4) for sz in self.bsize)
        )
        centers = [s + (sz - 1) / 2.0 for s, sz in zip(self.starts, self.size, strict=True)]
        # in-plane (y, x): linear beyond the outer centres; along z (3D, axis 0): constant
        self.weights = [
            field_weights(n, c, upsample_grid, extrapolate=not (self.nd == 3 and a == 0))
            for a, (n, c) in enumerate(zip(frame_shape, centers, strict=True))
        ]
        b = np.empty((self.n_patches, self.nd, 2), np.int64)
        mesh = np.meshgrid(*self.starts, indexing="ij")
        for a in range(self.nd):
            b[:, a, 0] = mesh[a].ravel()
            b[:, a, 1] = mesh[a].ravel() + self.size[a]
        self.bounds = b

    def extract(self, frames: np.ndarray) -> np.ndarray:
        """(B, *binned frame) -> (B * n_patches, *bsize) copies."""
        v = np.lib.stride_tricks.sliding_window_view(
            frames, self.bsize, axis=tuple(range(1, self.nd + 1))
        )
        idx = np.ix_(*self.bstarts)
        return v[(slice(None), *idx)].reshape(-1, *self.bsize)

    def prepare_frames(self, frames: np.ndarray) -> np.ndarray:
        """(B, *frame) -> (B * n_patches, *rfft(fft_shape)) spectra of tapered patches, zero-padded at the end."""
        p = self.extract(frames)
        axes = tuple(range(1, self.nd + 1))
        p = (p - p.mean(axis=axes, keepdims=True, dtype=np.float32)) * self.fwin
        return self.spec.crop(
            sfft.rfftn(p, s=self.fft_shape, axes=axes, workers=1).astype(np.complex64, copy=False)
        )

    def prepare_template(self, template: np.ndarray) -> np.ndarray:
        """(*frame) -> (n_patches, *rfft(fft_shape)).

        Template regions around each patch, padded by ``pad`` (zeros beyond the frame, after mean
        subtraction).
        """
        t = template - template.mean()
        tp = np.pad(
            t,
            [
                (p, max(p, f - s - p))
                for p, f, s in zip(self.pad, self.fft_shape, self.bsize, strict=True)
            ],
        )
        v = np.lib.stride_tricks.sliding_window_view(tp, self.fft_shape)
        v = v[np.ix_(*self.bstarts)].reshape(-1, *self.fft_shape)
        return self.spec.crop(
            sfft.rfftn(v, axes=tuple(range(1, self.nd + 1)), workers=1).astype(
                np.complex64, copy=False
            )
        )

    def field(self, grid_vals: np.ndarray) -> np.ndarray:
        """(B, *grid_shape) patch values -> (B, *frame_shape) smooth field."""
        if self.nd == 2:
            wy, wx = self.weights
            B, ny, nx = grid_vals.shape
            a = grid_vals.reshape(B * ny, nx).astype(np.float32) @ wx.T  # (B*ny, X)
            a = a.reshape(B, ny, -1).transpose(1, 0, 2).reshape(ny, -1)  # (ny, B*X)
            return (wy @ a).reshape(wy.shape[0], B, -1).transpose(1, 0, 2)
        wz, wy, wx = self.weights
        return np.einsum("zi,yj,xk,bijk->bzyx", wz, wy, wx, grid_vals, optimize=True).astype(
            np.float32
        )


# ----------------------------------------------------------------------------- application

_BORDER_CV = {True: cv2.BORDER_REPLICATE, "copy": cv2.BORDER_REPLICATE, False: cv2.BORDER_REFLECT}


def _nan_outside(out: np.ndarray, coords: list[np.ndarray], shape) -> None:
    bad = np.zeros(out.shape, bool)
    for c, n in zip(coords, shape, strict=True):
        bad |= (c < -1e-3) | (c > n - 1 + 1e-3)
    out[bad] = np.nan


@lru_cache(maxsize=8)
def _base_grid(shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    return tuple(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"))


def shift_rigid(frames: np.ndarray, shifts: np.ndarray, border_nan=True) -> np.ndarray:
    """Apply rigid correction shifts (B, nd) array order to (B, *frame)."""
    B = frames.shape[0]
    shape = frames.shape[1:]
    out = np.empty((B, *shape), np.float32)
    bmode = _BORDER_CV[border_nan]
    if len(shape) == 2:
        Y, X = shape
        for i in range(B):
            sy, sx = float(shifts[i, 0]), float(shifts[i, 1])
            M = np.array([[1.0, 0.0, sx], [0.0, 1.0, sy]])
            cv2.warpAffine(
                frames[i], M, (X, Y), dst=out[i], flags=cv2.INTER_CUBIC, borderMode=bmode
            )
            if border_nan is True:
                _nan_border_rigid(out[i], (sy, sx))
        return out
    Z, Y, X = shape
    zz = np.arange(Z, dtype=np.float64)
    for i in range(B):
        sz, sy, sx = (float(v) for v in shifts[i])
        M = np.array([[1.0, 0.0, sx], [0.0, 1.0, sy]])
        planes = np.empty((Z, Y, X), np.float32)
        for k in range(Z):
            cv2.warpAffine(
                frames[i, k], M, (X, Y), dst=planes[k], flags=cv2.INTER_CUBIC, borderMode=bmode
            )
        if abs(sz) < 1e-6:
            out[i] = planes
        else:
            src = zz - sz
            out[i] = _cubic_along0(planes, src, border_nan)
        if border_nan is True:
            _nan_border_rigid(out[i], (sz, sy, sx))
    return out


def _nan_border_rigid(img: np.ndarray, s) -> None:
    for a, v in enumerate(s):
        n = img.shape[a]
        if v > 1e-3:
            k = min(n, int(math.ceil(v - 1e-3)))
            idx = [slice(None)] * img.ndim
            idx[a] = slice(0, k)
            img[tuple(idx)] = np.nan
        elif v < -1e-3:
            k = min(n, int(math.ceil(-v - 1e-3)))
            idx = [slice(None)] * img.ndim
            idx[a] = slice(n - k, n)
            img[tuple(idx)] = np.nan


def _cubic_along0(planes: np.ndarray, src: np.ndarray, border_nan) -> np.ndarray:
    """Catmull-Rom interpolation of ``planes`` (Z, ...) at positions ``src`` (Z,)."""
    Z = planes.shape[0]
    i0 = np.floor(src).astype(int)
    t = (src - i0)[:, None, None].astype(np.float32)
    w = [
        ((-t + 2) * t - 1) * t / 2,
        ((3 * t - 5) * t * t + 2) / 2,
        ((-3 * t + 4) * t + 1) * t / 2,
        (t - 1) * t * t / 2,
    ]
    out = np.zeros_like(planes)
    for j, wj in enumerate(w):
        idx = i0 - 1 + j
        if border_nan is False:  # mirror
            idx = np.abs(idx)
            idx = np.where(idx > Z - 1, 2 * (Z - 1) - idx, idx)
        idx = np.clip(idx, 0, Z - 1)
        out += wj * planes[idx]
    return out


def shift_field(frames: np.ndarray, fields: np.ndarray, border_nan=True) -> np.ndarray:
    """Apply dense correction fields (B, nd, *frame) (array order) to (B, *frame)."""
    B = frames.shape[0]
    shape = frames.shape[1:]
    base = _base_grid(tuple(shape))
    out = np.empty((B, *shape), np.float32)
    if len(shape) == 2:
        bmode = _BORDER_CV[border_nan]
        for i in range(B):
            my = base[0] - fields[i, 0]
            mx = base[1] - fields[i, 1]
            cv2.remap(frames[i], mx, my, cv2.INTER_CUBIC, dst=out[i], borderMode=bmode)
            if border_nan is True:
                _nan_outside(out[i], [my, mx], shape)
        return out
    for i in range(B):
        out[i] = _remap_3d(frames[i], fields[i], base, border_nan)
    return out


def _keys(d: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5.

    OpenCV's INTER_CUBIC uses -0.75; both interpolate.
    """
    d = np.abs(d)
    d2 = d * d
    d3 = d2 * d
    return np.where(
        d <= 1, 1.5 * d3 - 2.5 * d2 + 1, np.where(d < 2, -0.5 * d3 + 2.5 * d2 - 4 * d + 2, 0)
    ).astype(np.float32)


def _remap_3d(vol: np.ndarray, field: np.ndarray, base, border_nan) -> np.ndarray:
    """out(z, y, x) = vol(z - fz, y - fy, x - fx) for a dense field.

    Bicubic OpenCV remap of the source planes, cubic convolution across planes.
    """
    Z, Y, X = vol.shape
    bmode = _BORDER_CV[border_nan]
    out = np.empty((Z, Y, X), np.float32)
    for z in range(Z):
        zs = base[0][z] - field[0, z]
        my = base[1][z] - field[1, z]
        mx = base[2][z] - field[2, z]
        k0 = int(np.floor(zs.min())) - 1
        k1 = int(np.floor(zs.max())) + 2
        acc = np.zeros((Y, X), np.float32)
        planes = {}
        for k in range(k0, k1 + 1):
            w = _keys(zs - k)
            if border_nan is False:  # mirror
                kk = abs(k)
                kk = 2 * (Z - 1) - kk if kk > Z - 1 else kk
                kk = min(max(kk, 0), Z - 1)
            else:
                kk = min(max(k, 0), Z - 1)
            if kk not in planes:
                planes[kk] = cv2.remap(vol[kk], mx, my, cv2.INTER_CUBIC, borderMode=bmode)
            acc += w * planes[kk]
        if border_nan is True:
            _nan_outside(acc, [zs, my, mx], (Z, Y, X))
        out[z] = acc
    return out
