"""Before a long run: check that it fits the memory budget and the disk.

:func:`estimate` adds up what grows with the movie and cannot be streamed
(the K x T traces, the footprints of the whole-field refit, one patch's slab
per patch in flight, the downsampled copy of a whole-field initialization)
and :func:`check_run` refuses a run that cannot fit, with one message naming
what to change, instead of letting it be killed an hour later.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .memory import Budget, format_bytes, free_disk

#: what the fixed working set of a step may use of the budget (the rest is chunks)
SHARE = 0.85


def corrected_on_disk(shape: tuple[int, ...], bud: Budget) -> bool:
    """Return True if a float32 corrected movie of ``shape`` must live on disk under ``bud``."""
    return not bud.holds(4 * int(np.prod(shape)))


def _patches(params: Any, dims: tuple[int, ...]) -> tuple[int, int, float]:
    """Return (number of patches, pixels of the largest, mean patches covering a pixel).

    (1, P, 1) without patches.
    """
    from .validate import per_axis, to_array_order

    nd = len(dims)
    rf = params["rf"]
    if rf is None:
        return 1, int(np.prod(dims)), 1.0
    try:
        from .cnmf.patches import patch_slices

        rf_a = to_array_order(per_axis(rf, nd, "rf", kind=int, minimum=1), nd)
        stride = params["stride"]
        if stride is None:
            gsig = to_array_order(per_axis(params["gSig"], nd, "gSig", kind=float, minimum=0.5), nd)
            st_a = tuple(max(1, int(np.ceil(2 * g))) for g in gsig)
        else:
            st_a = to_array_order(per_axis(stride, nd, "stride", kind=int, minimum=0), nd)
        sl = patch_slices(dims, rf_a, st_a)
    except InputError:
        return 1, int(np.prod(dims)), 1.0  # the step itself reports bad patch parameters
    sizes = [int(np.prod([s.stop - s.start for s in x])) for x in sl]
    return len(sl), max(sizes), sum(sizes) / float(np.prod(dims))


#: bytes per entry of a footprint's search region in the sparse refit (pixel
#: index, value, component, inverse index, float64 Y H^T sum, with headroom)
REGION_BYTES = 64


def _region_px(params: Any, nd: int) -> int:
    """Upper bound of one footprint's search region.

    Its support box in the refinement (``max(gSiz // 2, 2 gSig)`` each side) dilated by ``ceil(gSig
    / 2)``.
    """
    from .validate import per_axis

    try:
        gsig = per_axis(params["gSig"], nd, "gSig", kind=float, minimum=0.5)
        gsiz = params["gSiz"]
        gsiz = (
            per_axis(gsiz, nd, "gSiz", kind=float, minimum=1)
            if gsiz is not None
            else tuple(2 * g + 1 for g in gsig)
        )
    except InputError:
        return 1  # the step itself reports bad parameters
    from .cnmf.initialization import refine_window

    # the support box of the refinement, dilated by the default of cnmf.steps.Settings.se()
    half = [
        h + int(max(1.0, np.ceil(g / 2)))
        for h, g in zip(refine_window(gsig, gsiz), gsig, strict=True)
    ]
    return int(np.prod([2 * h + 1 for h in half]))


def estimate(shape: tuple[int, ...], steps: Any, params: Any) -> dict[str, dict[str, int]]:
    """Bytes of what each phase holds that does not shrink with the chunk size.

    ``{phase: {part: bytes}}``; the run's peak is the largest phase.
    """
    from .cnmf.patches import PATCH_COPIES, patch_time_bin

    T, dims = int(shape[0]), tuple(int(s) for s in shape[1:])
    P = int(np.prod(dims))
    phases: dict[str, dict[str, int]] = {}
    if "motion" in steps:
        phases["motion"] = {"motion shifts": 4 * T * 64}
    if "cnmf" in steps:
        n_p, patch_px, cover = _patches(params, dims)
        k = int(params["K"] or 1)
        nb = int(params["nb"] or 0)
        K_all = k * n_p
        K = int(np.ceil(K_all / cover))  # duplicates of overlapping patches merged
        if params["rf"] is not None:
            tbin = patch_time_bin(T)  # a long movie's slabs are read binned in time
            phases["cnmf patches"] = {
                "one patch": PATCH_COPIES * 4 * -(-T // tbin) * patch_px,
                "traces": 2 * 4 * K_all * T,
            }
        else:
            ssub, tsub = int(params["ssub"] or 1), int(params["tsub"] or 1)
            phases["cnmf initialization"] = {
                "initialization": 5 * 4 * (T // tsub) * (P // (ssub * ssub))
            }
        # the whole-field refit keeps the footprints sparse: per component its
        # search region (support dilated) with ~REGION_BYTES per entry, and the
        # dense background b with its float64 accumulator; H, A^T Y, S, YrA and
        # the deconvolution's copies (K is an upper bound: every patch finding K
        # distinct neurons)
        phases["cnmf refit"] = {
            "footprints": K * _region_px(params, len(dims)) * REGION_BYTES + 12 * P * nb,
            "traces": 6 * 4 * (K + nb) * T,
        }
    return phases


def tile_store_bytes(shape: tuple[int, ...], params: Any, *, after_motion: bool = False) -> int:
    """Return the disk bytes of the tile stores CNMF holds at once for a movie of ``shape``.

    See :mod:`.cnmf.tiles`: 0 when the movie fits the page cache and none is made. One at a time
    (the largest), or with ``after_motion`` both: the patches' copy, written during motion
    correction, is on disk while the noise's is made.
    """
    from .cnmf.noise import fft_sample_ranges
    from .cnmf.patches import patch_time_bin
    from .cnmf.tiles import use_store

    T, P = int(shape[0]), int(np.prod(shape[1:]))
    if not use_store(4 * T * P):
        return 0
    n_fft = int(params.get("max_num_samples_fft") or 3072) if hasattr(params, "get") else 3072
    n_noise = sum(b - a for a, b in fft_sample_ranges(T, n_fft))
    n_patch = -(-T // patch_time_bin(T)) if params.get("rf") is not None else 0
    n = n_noise + n_patch if after_motion else max(n_noise, n_patch)
    return int(4 * P * n * 1.15)  # tiles pad the far borders (< 1/16 per axis)


_ADVICE = {
    "footprints": "fewer components (K per patch, or a larger rf with a smaller stride)",
    "traces": "fewer components (K) or a shorter movie (split it in time)",
    "one patch": "smaller patches (rf) or a shorter movie",
    "initialization": "patches (rf, stride) or spatial/temporal downsampling (ssub, tsub) for the initialization",
    "motion shifts": "a shorter movie",
}


def check_run(
    shape: tuple[int, ...],
    steps: Any,
    params: Any,
    bud: Budget,
    *,
    movie_out: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
) -> dict[str, dict[str, int]]:
    """Refuse (``InputError``) a run that cannot fit the budget or the disk; returns the estimate."""
    phases = estimate(shape, steps, params)
    if phases:
        phase = max(phases, key=lambda k: sum(phases[k].values()))
        parts = phases[phase]
        need = sum(parts.values())
        if need > SHARE * bud.limit:
            worst = max(parts, key=lambda k: parts[k])
            detail = ", ".join(
                f"{k} {format_bytes(v)}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1])
            )
            raise InputError(
                "memory_limit",
                f"this run needs about {format_bytes(need / SHARE)} of memory in its "
                f"{phase} ({detail}) but the limit is {format_bytes(bud.limit)}: raise --memory-limit "
                f"(the memory_limit setting) or use {_ADVICE[worst]}",
            )
    if "motion" in steps and movie_out is not None:
        need_disk = 4 * int(np.prod(shape)) + (64 << 20)
        store = tile_store_bytes(shape, params, after_motion=True) if "cnmf" in steps else 0
        need_disk += (
            store  # CNMF's temporary tile-major copy of the corrected movie, on the same disk
        )
        what = "the motion-corrected movie" + (" and CNMF's temporary copy of it" if store else "")
        where = Path(movie_out)
        free = free_disk(where if where.is_dir() else where.parent)
        if free < need_disk:
            raise InputError(
                "disk",
                f"{what} need{'' if store else 's'} {format_bytes(need_disk)} on the disk "
                f"holding {str(where)!r}, which has {format_bytes(free)} free: free some space, "
                "or write the corrected movie elsewhere (--save-movie) or raise --memory-limit "
                "so that it stays in memory",
            )
    return phases
