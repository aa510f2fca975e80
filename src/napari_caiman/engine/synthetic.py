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
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .errors import InputError
from .synthetic_model import (
    _make_background,
    _make_footprints,
    _make_traces,
    _Motion,
    _rng,
    _to_dtype,
    _warp_2d,
    _warp_3d,
    ar2_coefficients,
)
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
        raise InputError(
            "shape", f"expected (T, Y, X) or (T, Z, Y, X) with positive sizes, got {shape}"
        )
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
    footprints, centers = _make_footprints(
        _rng(seed, _S_NEURONS), frame_shape, sig, n_neurons, margin
    )
    traces, spikes = _make_traces(
        _rng(seed, _S_SPIKES), n_neurons, n_frames, fr, g, firing_rate, amplitude
    )
    fps_sum = footprints.sum(axis=0) * amplitude if n_neurons else np.zeros(frame_shape, np.float32)
    b, f = _make_background(
        _rng(seed, _S_BACKGROUND),
        frame_shape,
        n_frames,
        sig,
        background_rank,
        baseline,
        texture,
        neuron_glow,
        fps_sum,
        fr,
    )
    motion = _Motion(
        _rng(seed, _S_MOTION), n_frames, frame_shape, rigid, nonrigid_motion, n_modes, fr
    )

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
    base = np.stack(
        np.meshgrid(*[np.arange(n, dtype=np.float32) for n in frame_shape[-2:]], indexing="ij")
    )

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
                    pool.submit(
                        frame_job, t, cl[i], st[i], None if fl is None else fl[i], movie_out
                    )
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

                    mm = tifffile.memmap(
                        tmp, shape=shape, dtype=dtype, bigtiff=True, photometric="minisblack"
                    )
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
        shape=shape,
        n_neurons=n_neurons,
        gSig=tuple(per_axis(gSig, nd, "gSig", kind=float)),
        rigid_motion=rigid_motion,
        nonrigid_motion=nonrigid_motion,
        noise=float(noise),
        snr=float(snr),
        amplitude=amplitude,
        baseline=float(baseline),
        texture=float(texture),
        neuron_glow=float(neuron_glow),
        background_rank=int(background_rank),
        fr=float(fr),
        decay_time=float(decay_time),
        rise_time=float(rise_time),
        firing_rate=float(firing_rate),
        n_modes=int(n_modes),
        dtype=dtype.name,
        seed=int(seed),
        return_flow=return_flow,
        return_truth=return_truth,
        out=None if out is None else str(out),
        gSig_array_order=tuple(sig),
        rigid_motion_array_order=tuple(rigid),
        p=2,
        g=tuple(g),
        units="counts; shifts/flow in pixels, array order",
    )
    return SyntheticMovie(
        movie=movie,
        clean=clean,
        still=still,
        shifts=motion.shifts,
        flow=flow_all,
        footprints=footprints,
        traces=traces,
        spikes=spikes,
        b=b,
        f=f,
        centers=centers,
        g=np.tile(np.asarray(g, np.float64), (n_neurons, 1)),
        noise_sd=float(noise),
        params=params,
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
        shape,
        n_neurons=n_neurons,
        gSig=gSig,
        rigid_motion=rigid_motion,
        nonrigid_motion=nonrigid_motion,
        noise=noise,
        snr=snr,
        background_rank=background_rank,
        dtype=dtype,
        seed=seed,
        return_flow=return_flow,
        **kwargs,
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
        shape,
        n_neurons=n_neurons,
        gSig=gSig,
        rigid_motion=rigid_motion,
        nonrigid_motion=nonrigid_motion,
        noise=noise,
        snr=snr,
        background_rank=background_rank,
        dtype=dtype,
        seed=seed,
        return_flow=return_flow,
        **kwargs,
    )
