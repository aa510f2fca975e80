"""One BLAS thread per caller while the engine's own workers run.

The engine parallelises its steps itself (thread pools over frame batches
and patches, numba kernels over rows).  A BLAS library with a thread pool of
its own (OpenBLAS, MKL) called from several of those workers at once makes
its threads spin and wait on each other: on 2 cores, 512x512x3,000 frames
took 179 s with OpenBLAS's 2 threads and 134 s with one (user time 262 s
against 152 s), and small products called from 2 threads ran 3x slower.
So while an engine step runs, BLAS calls run in the thread that makes them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from typing import Any, TypeVar

R = TypeVar("R")


def single_threaded_blas(
    gen_func: Callable[..., Generator[Any, Any, R]],
) -> Callable[..., Generator[Any, Any, R]]:
    """Decorate a generator function: BLAS is limited to one thread while it runs.

    The previous limits come back when the generator finishes, fails or is
    closed (a cancel).
    """

    @functools.wraps(gen_func)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, R]:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return (yield from gen_func(*args, **kwargs))

    return wrapper
