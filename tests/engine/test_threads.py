"""While an engine step runs, BLAS runs one thread per caller; the limit goes when the step ends."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from napari_caiman.engine.cnmf import iter_cnmf
from napari_caiman.engine.motion import iter_motion_correct
from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.synthetic import make_movie_2d


def _blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


@pytest.fixture
def two_blas_threads():
    if not _blas_threads():
        pytest.skip("no BLAS library with a thread pool is loaded")
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        yield before


def test_motion_runs_with_one_blas_thread_and_restores_the_limit(two_blas_threads):
    syn = make_movie_2d((80, 48, 64), n_neurons=6, rigid_motion=3, noise=10, seed=1)
    gen = iter_motion_correct(syn.movie, max_shifts=(4, 4), n_workers=2)
    next(gen)
    assert _blas_threads() == [1] * len(two_blas_threads)
    result = None
    try:
        while True:
            next(gen)
            assert _blas_threads() == [1] * len(two_blas_threads)
    except StopIteration as stop:
        result = stop.value
    assert _blas_threads() == two_blas_threads
    # the correction itself still works: the shifts undo the synthetic motion
    err = np.asarray(result.shifts_rig) + syn.shifts
    err -= err.mean(axis=0)  # the template's own offset is arbitrary
    assert np.sqrt((err**2).mean(axis=0)).max() < 0.5


def test_a_cancelled_cnmf_gives_the_blas_threads_back(two_blas_threads):
    syn = make_movie_2d((100, 40, 40), n_neurons=5, seed=2)
    gen = iter_cnmf(syn.movie, CaimanParams({"K": 5, "gSig": (3, 3)}))
    next(gen)
    assert _blas_threads() == [1] * len(two_blas_threads)
    gen.close()  # what a cancel does
    assert _blas_threads() == two_blas_threads
