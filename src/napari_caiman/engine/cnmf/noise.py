"""Noise SD per pixel (or per trace) from the power spectral density.

For white noise of variance s**2 the one-sided PSD ``2 |X_k|**2 / T`` has
expectation ``2 s**2`` at every frequency, so averaging it over a
high-frequency band (``noise_range``, in units of the sampling rate: (0.25,
0.5) is the upper half up to Nyquist), where calcium transients carry little
power, and halving gives ``s**2``.  ``method`` combines the band: ``"mean"``
(CaImAn's default), ``"median"`` or ``"logmexp"`` (exp of the mean log).

Long series are cut to ``max_num_samples_fft`` samples taken from the start,
middle and end (three equal pieces), as CaImAn does.
"""

from __future__ import annotations

import numpy as np

__all__ = ["psd_noise", "fft_sample_ranges"]


def fft_sample_ranges(T: int, max_num_samples_fft: int = 3072) -> list[tuple[int, int]]:
    """Return the frame ranges :func:`psd_noise` uses of a ``T``-sample series.

    All of it, or three pieces of ``max_num_samples_fft // 3`` (start, middle, end).
    """
    if T <= max_num_samples_fft:
        return [(0, T)]
    n3 = max_num_samples_fft // 3
    mid = T // 2 - n3 // 2
    return [(0, n3), (mid, mid + n3), (T - n3, T)]


def psd_noise(
    Y: np.ndarray,
    noise_range: tuple[float, float] = (0.25, 0.5),
    method: str = "mean",
    max_num_samples_fft: int = 3072,
) -> np.ndarray:
    """Noise SD of each row of ``Y`` (n, T) (or of a 1D trace).

    Returns float64 (n,) (or a float for 1D input).
    """
    Y = np.asarray(Y)
    one = Y.ndim == 1
    Y2 = Y[None] if one else Y.reshape(-1, Y.shape[-1])
    T = Y2.shape[-1]
    if T > max_num_samples_fft:
        Y2 = np.concatenate(
            [Y2[:, a:b] for a, b in fft_sample_ranges(T, max_num_samples_fft)], axis=1
        )
        T = Y2.shape[-1]
    freqs = np.fft.rfftfreq(T)  # cycles / sample, 0 .. 0.5
    band = (freqs > noise_range[0]) & (freqs <= noise_range[1])
    if not band.any():
        band = freqs > 0
    # rows in blocks: the complex spectrum of a block stays near 8 MB whatever n
    sn = np.empty(Y2.shape[0], np.float64)
    step = max(1, (8 << 20) // (16 * max(1, T)))
    for r0 in range(0, Y2.shape[0], step):
        blk = Y2[r0 : r0 + step].astype(np.float32, copy=False)
        blk = blk - blk.mean(axis=1, keepdims=True)
        X = np.fft.rfft(blk, axis=1)[:, band]
        psd = (X.real**2 + X.imag**2) * (2.0 / T)
        if method == "median":
            v = np.median(psd, axis=1) / 2
        elif method == "logmexp":
            v = np.exp(np.mean(np.log(psd / 2 + 1e-30), axis=1))
        else:
            v = psd.mean(axis=1) / 2
        sn[r0 : r0 + step] = np.sqrt(np.maximum(v, 0))
    # the last bin at Nyquist has only a real part (half the variance) for even T
    return float(sn[0]) if one else sn  # type: ignore[return-value]
