"""Summary images: chunked one-pass results against in-memory references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from napari_caiman.engine.progress import Progress
from napari_caiman.engine.summary import (
    iter_summary_images,
    local_correlations,
    max_image,
    mean_image,
    summary_images,
)
from napari_caiman.engine.synthetic import make_movie_2d


def reference_local_correlations(movie, eight_neighbours=True):
    """Straightforward in-memory version: normalize over time, average products with neighbours."""
    y = np.asarray(movie, np.float64)
    y = y - y.mean(axis=0)
    sd = y.std(axis=0)
    z = np.divide(y, sd, out=np.zeros_like(y), where=sd > 0)
    fs = y.shape[1:]
    nd = len(fs)
    if eight_neighbours:
        offs = [d for d in itertools.product((-1, 0, 1), repeat=nd) if any(d)]
    else:
        offs = [tuple(s * (i == a) for i in range(nd)) for a in range(nd) for s in (-1, 1)]
    rho = np.zeros(fs)
    cnt = np.zeros(fs)
    for idx in np.ndindex(*fs):
        for d in offs:
            j = tuple(i + k for i, k in zip(idx, d, strict=True))
            if all(0 <= jj < n for jj, n in zip(j, fs, strict=True)):
                rho[idx] += np.mean(z[(slice(None), *idx)] * z[(slice(None), *j)])
                cnt[idx] += 1
    return rho / cnt


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(0)


def _smooth_movie(rng, shape):
    from scipy import ndimage

    x = rng.standard_normal(shape)
    return ndimage.gaussian_filter(x, (0, *([1.0] * (len(shape) - 1)))) * 50 + 1000


@pytest.mark.parametrize("eight", [True, False])
@pytest.mark.parametrize("shape", [(23, 9, 11), (17, 4, 6, 5)])
def test_local_correlations_match_reference(rng, shape, eight):
    mov = _smooth_movie(rng, shape).astype(np.float32)
    ref = reference_local_correlations(mov, eight)
    got = local_correlations(mov, eight_neighbours=eight, chunk_size=5)
    assert got.dtype == np.float32 and got.shape == shape[1:]
    np.testing.assert_allclose(got, ref, atol=2e-5)
    # chunking does not matter
    np.testing.assert_allclose(local_correlations(mov, eight_neighbours=eight), got, atol=1e-6)


def test_summary_images_match_numpy(rng):
    mov = (_smooth_movie(rng, (31, 10, 12))).astype(np.uint16)
    gen = iter_summary_images(mov, chunk_size=8)
    reports = []
    try:
        while True:
            reports.append(next(gen))
    except StopIteration as stop:
        s = stop.value
    assert all(isinstance(p, Progress) for p in reports)
    assert reports[-1].done == reports[-1].total == 31
    assert len(reports) == 1 + 4
    f = mov.astype(np.float64)
    np.testing.assert_allclose(s.mean, f.mean(0), rtol=1e-6)
    np.testing.assert_allclose(s.max, f.max(0))
    np.testing.assert_allclose(s.std, f.std(0), rtol=1e-4)
    np.testing.assert_allclose(s.corr, reference_local_correlations(f), atol=2e-5)
    for im in (s.mean, s.max, s.std, s.corr):
        assert im.dtype == np.float32
    np.testing.assert_allclose(mean_image(mov, chunk_size=7), s.mean)
    np.testing.assert_allclose(max_image(mov, chunk_size=7), s.max)


def test_large_offset_no_cancellation(rng):
    # tiny fluctuations on a huge baseline: float64 accumulators + offset keep precision
    mov = (rng.standard_normal((40, 6, 7)) * 1e-2 + 1e6).astype(np.float64)
    np.testing.assert_allclose(
        local_correlations(mov, chunk_size=9), reference_local_correlations(mov), atol=1e-6
    )


def test_zero_variance_and_nan(rng):
    mov = _smooth_movie(rng, (30, 8, 9)).astype(np.float32)
    mov[:, 0, 0] = 5.0  # constant pixel
    mov[:, 7, :] = np.nan  # all-NaN row (a border left by motion correction)
    mov[:10, :, 8] = np.nan  # NaN in some frames only
    s = summary_images(mov, chunk_size=7)
    for im in (s.mean, s.max, s.std, s.corr):
        assert np.all(np.isfinite(im))
    assert np.all(s.corr[7] == 0) and np.all(s.mean[7] == 0)
    assert s.std[0, 0] == 0
    # a pixel with NaN in some frames: mean/max over the valid ones
    np.testing.assert_allclose(s.mean[3, 8], np.nanmean(mov[:, 3, 8].astype(np.float64)), rtol=1e-5)
    np.testing.assert_allclose(s.max[3, 8], np.nanmax(mov[:, 3, 8]))
    # correlations with NaN = reference with each NaN replaced by the pixel's mean
    filled = mov.astype(np.float64).copy()
    m = np.where(
        np.isnan(filled).all(0), 0, np.nanmean(np.where(np.isnan(filled).all(0), 0, filled), axis=0)
    )
    filled = np.where(np.isnan(filled), m, filled)
    ref = reference_local_correlations(filled)
    np.testing.assert_allclose(s.corr, ref, atol=2e-5)


def test_memmap_input(tmp_path, rng):
    mov = _smooth_movie(rng, (25, 8, 8)).astype(np.int16)
    np.save(tmp_path / "m.npy", mov)
    mm = np.load(tmp_path / "m.npy", mmap_mode="r")
    np.testing.assert_allclose(
        local_correlations(mm, chunk_size=4), reference_local_correlations(mov), atol=2e-5
    )


def test_neurons_stand_out_in_corr():
    s = make_movie_2d((300, 64, 64), n_neurons=8, gSig=3, seed=5, snr=3)
    corr = local_correlations(s.movie)
    c = np.round(s.centers).astype(int)
    at_neurons = corr[c[:, 0], c[:, 1]]
    mask = s.footprints.max(axis=0) < 0.01
    assert np.median(at_neurons) > np.percentile(corr[mask], 95)
    assert np.median(at_neurons) > 0.3


def test_the_summary_sums_are_made_with_the_first_frames():
    """A motion step whose frames a cluster's workers write never adds frames to its
    accumulator: the sums (13 neighbour offsets of a volume, 4 arrays each) are only
    made when frames come, and the images of the frames added are right."""
    import tracemalloc

    from napari_caiman.engine.summary import SummaryAccumulator, summary_images

    frames = np.random.default_rng(0).random((20, 8, 64, 64)).astype(np.float32)
    tracemalloc.start()
    try:
        acc = SummaryAccumulator(frames.shape[1:])
        before = tracemalloc.get_traced_memory()[0]
        with acc:
            acc.add(frames)
            after = tracemalloc.get_traced_memory()[0]
            got = acc.result()
    finally:
        tracemalloc.stop()
    sums = 8 * 8 * 64 * 64 * (4 + 13 * 4)  # float64
    assert before < 0.05 * sums and after > 0.9 * sums
    np.testing.assert_allclose(got.corr, summary_images(frames).corr, rtol=1e-5, atol=1e-6)
