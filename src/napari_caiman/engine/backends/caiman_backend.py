"""The ``caiman`` backend: pipeline steps run by the real CaImAn in a separate process.

Each ``iter_<step>_step`` here has the signature and result type of the one
in :mod:`napari_caiman.engine.pipeline` (which dispatches here when
``params["backend"] == "caiman"``), so layers, curation and saving work
unchanged.  The work itself is done by ``_caiman_worker.py`` (a standalone
script, see there) run by the interpreter :func:`~.caiman_python` names:

* the movie is handed over as a file: a 2D movie that is a whole ``.npy`` /
  ``.tif`` file on disk (a memmap) by its path, anything else (an in-memory
  napari layer, a lazy HDF5 or multi-file movie, every 3D movie) written to a
  temporary ``.npy`` in CaImAn's axis order (T, rows, cols[, planes]), chunk
  by chunk;
* parameters go over as CaImAn's grouped dict of the values that differ from
  the defaults (per-axis values already in CaImAn's order; for 3D, 2-value
  per-axis values get their planes value as in the native engine);
* the worker's log lines come back as :class:`Progress` (stage ``"CaImAn:
  <phase>"``, done/total = phase number, message = the log line) and go to
  the ``napari_caiman.caiman`` logger;
* closing the generator (cancel) or any failure terminates the worker's
  whole process group (CaImAn's multiprocessing pool included): SIGTERM, then
  SIGKILL after :data:`.caiman_process.GRACE_S` seconds; the temporary folder goes with it
  and an ``out`` file is written atomically (nothing half-written is left).

What still runs natively: the summary images (mean/max/std/correlation) and
the motion quality metrics (frame-template correlation, crispness), so that
they mean the same on both backends.

Temporary files go to a fresh folder under ``$NAPARI_CAIMAN_TMPDIR`` (default
the system's temp folder); CaImAn's own temporary files (``CAIMAN_TEMP``) too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..params import DEFAULTS, GROUPS_OF, CaimanParams
from ..progress import Progress
from ..results import image_from_caiman, image_to_caiman
from ..validate import check_movie, per_axis, to_array_order, to_caiman_order
from .caiman_process import (
    WORKER_SCRIPT,
    CaimanError,
    _workdir,
    iter_run_worker,
)

__all__ = [
    "CaimanError",
    "WORKER_SCRIPT",
    "iter_motion_step",
    "iter_cnmf_step",
    "iter_evaluate_step",
    "iter_run_worker",
    "caiman_params",
]

logger = logging.getLogger("napari_caiman.caiman")

_CHUNK_BYTES = 1 << 27  # frames written per block when handing the movie over
_PER_AXIS = ("max_shifts", "strides", "overlaps", "gSig", "gSiz", "gSig_filt")


# --------------------------------------------------------------------------- parameters


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def caiman_params(
    params: CaimanParams, frame_shape: tuple[int, ...] | None = None
) -> dict[str, dict[str, Any]]:
    """Return CaImAn's grouped parameter dict for ``params`` (``{"motion": {...}, ...}``).

    Only the values that differ from CaImAn's defaults, without the plugin's own group. For a 3D
    frame (``frame_shape`` (Z, Y, X)) the per-axis motion and CNMF values get three entries (rows,
    cols, planes), as the native engine reads them; a 2-value ``strides``/``overlaps`` then means
    one patch through all planes where the planes would not fit.

    Raises
    ------
    InputError
        A value that cannot be sent to the worker (not JSON-able).
    """
    values = {k: v for k, v in params.changed().items() if any(g in DEFAULTS for g in GROUPS_OF[k])}
    nd = len(frame_shape) if frame_shape is not None else 2
    if nd == 3 and frame_shape is not None:
        nz = int(frame_shape[0])
        for name in _PER_AXIS:
            v = params[name]
            if v is None:
                continue
            implied = isinstance(v, tuple | list) and len(v) == 2
            kind = int if name in ("max_shifts", "strides", "overlaps", "gSiz") else float
            values[name] = per_axis(v, 3, name, kind=kind)
            if name == "max_shifts" and implied:
                values[name] = values[name][:2] + (min(values[name][2], max((nz - 1) // 2, 0)),)
        st, ov = list(values["strides"]), list(values["overlaps"])
        if (
            isinstance(params["strides"], tuple | list)
            and len(params["strides"]) == 2
            and st[2] + ov[2] > nz
        ):
            st[2], ov[2] = nz, 0
        values["strides"], values["overlaps"] = tuple(st), tuple(ov)
        values["is3D"] = True
    grouped: dict[str, dict[str, Any]] = {}
    for name, v in values.items():
        for g in GROUPS_OF[name]:
            if g not in DEFAULTS or (name == "nb" and g != "init"):
                continue
            grouped.setdefault(g, {})[name] = _jsonable(v)
    try:
        json.dumps(grouped)
    except (TypeError, ValueError) as exc:
        raise InputError("params", f"cannot pass the parameters to CaImAn: {exc}") from None
    return grouped


# --------------------------------------------------------------------------- movie hand-over


def _passthrough(movie: Any) -> dict[str, Any] | None:
    """Return the file behind a 2D movie that is a whole .npy/.tif file mapped in memory."""
    if not isinstance(movie, np.memmap) or movie.ndim != 3 or not movie.flags.c_contiguous:
        return None
    fn = getattr(movie, "filename", None)
    if not fn or not Path(fn).is_file():
        return None
    path = Path(fn)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            ref, fmt = np.load(path, mmap_mode="r"), "npy"
        elif suffix in (".tif", ".tiff"):
            import tifffile

            ref, fmt = tifffile.memmap(path, mode="r"), "tif"
        else:
            return None
    except Exception:  # not a plain file of that kind: hand over a copy
        return None
    same = (
        ref.size == movie.size
        and ref.dtype == movie.dtype
        and int(ref.offset) == int(movie.offset)
        and ref.flags.c_contiguous
    )
    del ref
    if not same:
        return None
    return {"path": str(path.resolve()), "format": fmt, "shape": [int(s) for s in movie.shape]}


def _iter_movie_file(
    movie: Any, workdir: Path, name: str = "movie"
) -> Generator[Progress, None, dict[str, Any]]:
    """Return the movie as a file the worker reads, in CaImAn's axis order."""
    spec = _passthrough(movie)
    if spec is not None:
        return spec
    T = int(movie.shape[0])
    frame = tuple(int(s) for s in movie.shape[1:])
    nd = len(frame)
    shape_c = (T, *frame) if nd == 2 else (T, frame[1], frame[2], frame[0])
    path = workdir / f"{name}.npy"
    step = max(1, _CHUNK_BYTES // max(4 * int(np.prod(frame)), 1))
    stage = "CaImAn: handing over the movie"
    yield Progress(stage, 0, T)
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_2_0(
            fh,
            {
                "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                "fortran_order": False,
                "shape": shape_c,
            },
        )
        for t0 in range(0, T, step):
            t1 = min(T, t0 + step)
            block = np.asarray(movie[t0:t1], dtype=np.float32)
            if nd == 3:
                block = block.transpose(0, 2, 3, 1)
            np.ascontiguousarray(block).tofile(fh)
            yield Progress(stage, t1, T)
    return {"path": str(path), "format": "npy", "shape": list(shape_c)}


def _base_job(
    task: str, workdir: Path, movie_spec: dict, params: CaimanParams, frame: tuple[int, ...]
) -> dict[str, Any]:
    return {
        "task": task,
        "workdir": str(workdir),
        "movie": {**movie_spec, "var_name": params["var_name_hdf5"]},
        "params": caiman_params(params, frame),
        "n_processes": int(params["n_processes"] or 1),
        "output": {},
    }


# --------------------------------------------------------------------------- motion


def _iter_motion_metrics(
    raw: Any, corrected: Any, template: np.ndarray, max_shifts: tuple[int, ...]
) -> Generator[Progress, None, dict[str, Any]]:
    """Return the native engine's motion metrics (see MotionResult.metrics) for a CaImAn run."""
    from ..motion import _pearson, crispness

    T = int(raw.shape[0])
    crop = tuple(
        slice(m, n - m if n - 2 * m > 2 else n) if m else slice(None)
        for m, n in zip(max_shifts, template.shape, strict=True)
    )
    t_crop = np.ascontiguousarray(np.asarray(template, np.float32)[crop])
    corr_raw = np.empty(T, np.float32)
    corr_cor = np.empty(T, np.float32)
    raw_sum = np.zeros(t_crop.shape)
    cor_sum = np.zeros(t_crop.shape)
    cor_cnt = np.zeros(t_crop.shape, np.int64)
    step = max(1, _CHUNK_BYTES // max(4 * int(np.prod(template.shape)), 1) // 2)
    for t0 in range(0, T, step):
        t1 = min(T, t0 + step)
        r = np.asarray(raw[t0:t1], np.float32)[(slice(None), *crop)]
        c = np.asarray(corrected[t0:t1], np.float32)[(slice(None), *crop)]
        has_nan = bool(np.isnan(c).any())
        corr_raw[t0:t1] = _pearson(r, t_crop)
        corr_cor[t0:t1] = _pearson(c, t_crop, has_nan)
        raw_sum += r.sum(axis=0)
        ok = np.isfinite(c)
        cor_sum += np.where(ok, c, 0).sum(axis=0)
        cor_cnt += ok.sum(axis=0)
        yield Progress("motion metrics", t1, T)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_cor = np.where(cor_cnt > 0, cor_sum / np.maximum(cor_cnt, 1), np.nan)
    return {
        "corr_raw": corr_raw,
        "corr_corrected": corr_cor,
        "crispness_raw": crispness(raw_sum / T),
        "crispness_corrected": crispness(mean_cor),
    }


def _patches_to_native(data: dict[str, np.ndarray], nd: int):
    """CaImAn's patch order/bounds -> ours.

    Bounds (n, n_axes, 2) in array order, patches in C order over the array-order grid; shifts keep
    CaImAn's axis order.
    """
    bounds_c = np.asarray(data["patch_bounds"], np.int64)  # (n, nd, 2) CaImAn axis order
    inds = np.asarray(data["patch_inds"], np.int64)  # (n, nd) grid index, CaImAn order
    els = np.asarray(data["shifts_els"], np.float32)
    grid_c = tuple(int(v) for v in inds.max(axis=0) + 1)
    if nd == 2:
        return els, bounds_c, grid_c
    ny, nx, nz = grid_c
    key = inds[:, 2] * (ny * nx) + inds[:, 0] * nx + inds[:, 1]
    perm = np.argsort(key, kind="stable")
    return els[:, perm], bounds_c[perm][:, [2, 0, 1], :], (nz, ny, nx)


def iter_motion_step(
    movie: Any, params: CaimanParams, *, out: str | Path | None = None, template: Any = None
) -> Generator[Progress, None, Any]:
    """Correct motion with CaImAn's ``MotionCorrect``, then compute the summary images.

    Rigid or pw-rigid, 2D or 3D; same contract as
    :func:`napari_caiman.engine.pipeline.iter_motion_step`.

    The corrected movie is CaImAn's: with ``nonneg_movie=True`` (CaImAn's
    default) it is shifted by CaImAn's ``min_mov`` (kept in ``motion.params``).
    """
    from .._output import _load, check_out
    from ..atomic import atomic_path
    from ..motion import MotionResult
    from ..step_results import MotionStepResult
    from ..summary import iter_summary_images

    T, frame = check_movie(movie, min_frames=2)
    nd = len(frame)
    out_path = check_out(out)
    tpl = None
    if template is not None:
        tpl = np.asarray(template, np.float32)
        if tpl.shape != tuple(frame):
            raise InputError(
                "template", f"has shape {tpl.shape}, the movie's frames {tuple(frame)}"
            )
    t0 = time.perf_counter()
    with _workdir() as wd:
        spec = yield from _iter_movie_file(movie, wd)
        job = _base_job("motion", wd, spec, params, frame)
        if tpl is not None:
            np.save(wd / "template.npy", image_to_caiman(tpl))
            job["template"] = str(wd / "template.npy")
        fmt = (
            "tif"
            if out_path is not None and out_path.suffix.lower() in (".tif", ".tiff")
            else "npy"
        )
        target = (
            atomic_path(out_path)
            if out_path is not None
            else contextlib.nullcontext(wd / "corrected.npy")
        )
        with target as corr_path:
            job["output"] = {
                "corrected": str(corr_path),
                "corrected_format": fmt,
                "motion": str(wd / "motion.npz"),
            }
            res = yield from iter_run_worker(job, wd)
        with np.load(wd / "motion.npz") as z:
            data = {k: z[k] for k in z.files}
        corrected = (
            _load(out_path, (T, *frame)) if out_path is not None else np.load(wd / "corrected.npy")
        )
    t1 = time.perf_counter()
    try:
        shifts_rig = np.asarray(data["shifts_rig"], np.float32).reshape(T, nd)
        shifts_els = bounds = grid = None
        if "shifts_els" in data:
            shifts_els, bounds, grid = _patches_to_native(data, nd)
        template_arr = image_from_caiman(data["template"]).astype(np.float32)
        ms = per_axis(params["max_shifts"], nd, "max_shifts", kind=int)
        ms_arr = tuple(
            min(m, (n - 1) // 2) for m, n in zip(to_array_order(ms, nd), frame, strict=True)
        )
        metrics = yield from _iter_motion_metrics(movie, corrected, template_arr, ms_arr)
        used = dict(params.group("motion"))
        used.update(
            backend="caiman",
            caiman_version=res.get("caiman_version"),
            min_mov=res.get("min_mov"),
            border_to_0=res.get("border_to_0"),
        )
        motion = MotionResult(
            corrected=corrected,
            template=template_arr,
            shifts_rig=shifts_rig,
            shifts_els=shifts_els,
            patch_bounds=bounds,
            patch_grid_shape=grid,
            metrics=metrics,
            params=used,
            timings={**res.get("timings", {}), "total": t1 - t0},
        )
        t2 = time.perf_counter()
        summary = yield from iter_summary_images(corrected)
    except BaseException:
        if out_path is not None:
            with contextlib.suppress(OSError):
                Path(out_path).unlink()
        raise
    t3 = time.perf_counter()
    return MotionStepResult(
        motion=motion, summary=summary, timings={"motion": t2 - t0, "summary": t3 - t2}
    )


# --------------------------------------------------------------------------- CNMF


def _ain_pixels(Ain: Any, frame: tuple[int, ...]) -> np.ndarray:
    """Seeds as a boolean (pixels, K) matrix in CaImAn's pixel order.

    CaImAn's seeded CNMF starts from binary masks (it estimates C, b and f
    from them); weighted footprints are reduced to their support.
    """
    from scipy import sparse

    from ..cnmf.estimates import images_to_pixels

    P = int(np.prod(frame))
    M = Ain.toarray() if sparse.issparse(Ain) else np.asarray(Ain)
    if M.dtype == object or M.dtype.kind not in "biuf":
        raise InputError("Ain", f"expected boolean or numeric footprints, got dtype {M.dtype}")
    if M.ndim == len(frame) + 1 and tuple(M.shape[1:]) == tuple(frame):
        A = images_to_pixels(M)
    elif M.ndim == 2 and M.shape[0] == P:
        A = M
    else:
        raise InputError(
            "Ain",
            f"expected footprints (K, {', '.join(map(str, frame))}) in array order or "
            f"(pixels={P}, K) in CaImAn order, got shape {M.shape}",
        )
    if A.dtype.kind == "f" and (not np.all(np.isfinite(A)) or (A < 0).any()):
        raise InputError("Ain", "footprints must be finite and non-negative")
    A = np.ascontiguousarray(A > 0)
    A = A[:, A.any(axis=0)]
    if A.shape[1] == 0:
        raise InputError("Ain", "no non-empty footprint to seed CNMF with")
    return A


def _numeric(est: Any) -> None:
    """Per-component arrays that CaImAn saved as strings (ragged lists) -> float."""
    K = int(est.A.shape[1])
    for name in ("bl", "c1", "neurons_sn", "lam", "g"):
        v = getattr(est, name)
        if isinstance(v, np.ndarray) and v.dtype.kind in "USO":
            try:
                setattr(est, name, v.astype(np.float64))
            except (TypeError, ValueError):
                setattr(est, name, np.zeros(K) if name != "g" else np.zeros((K, 0)))


def _border_caiman(border: Any, nd: int) -> list[int] | None:
    if border is None:
        return None
    b = tuple(int(v) for v in border)
    if len(b) != nd:
        raise InputError("border", f"expected {nd} values (array order), got {border!r}")
    return list(to_caiman_order(b, nd))


def iter_cnmf_step(
    movie: Any,
    params: CaimanParams,
    *,
    Ain: Any = None,
    summary: Any = None,
    executor: Any = None,
    fill_nan: bool = False,
    border: Any = None,
) -> Generator[Progress, None, Any]:
    """Run CNMF by CaImAn (``CNMF(...).fit``, then ``refit`` after patches).

    Seeded with ``Ain``; same contract as :func:`napari_caiman.engine.pipeline.iter_cnmf_step`.

    ``executor`` is not used: CaImAn runs its own pool of ``n_processes``.
    """
    import h5py

    from ..results import estimates_from_group
    from ..step_results import CnmfStepResult
    from ..summary import iter_summary_images

    T, frame = check_movie(movie, min_frames=2)
    nd = len(frame)
    border_c = _border_caiman(border, nd)
    A = _ain_pixels(Ain, frame) if Ain is not None else None
    if executor is not None:
        logger.info(
            "backend 'caiman' runs its own process pool (n_processes=%s); the executor is not used",
            params["n_processes"],
        )
    t0 = time.perf_counter()
    if summary is None:
        summary = yield from iter_summary_images(movie)
    t1 = time.perf_counter()
    with _workdir() as wd:
        spec = yield from _iter_movie_file(movie, wd)
        job = _base_job("cnmf", wd, spec, params, frame)
        job["fill_nan"] = bool(fill_nan or border is not None)
        job["border"] = border_c
        if A is not None:
            np.save(wd / "Ain.npy", A)
            job["Ain"] = str(wd / "Ain.npy")
        job["output"] = {"cnmf": str(wd / "cnmf.hdf5")}
        res = yield from iter_run_worker(job, wd)
        with h5py.File(wd / "cnmf.hdf5", "r") as f:
            est, _extra = estimates_from_group(f["estimates"], tuple(frame))
    if est is None:
        from ..cnmf.estimates import Estimates

        est = Estimates.empty(tuple(frame), T)
    _numeric(est)
    est.idx_components = est.idx_components_bad = None
    t2 = time.perf_counter()
    est.timings = {**res.get("timings", {}), "total": t2 - t1}
    est.info = {
        "backend": "caiman",
        "caiman_version": res.get("caiman_version"),
        "dims": tuple(frame),
        "n_frames": T,
        "init": "seeded" if A is not None else str(params["method_init"]),
        "patches": params["rf"] is not None and A is None,
    }
    return CnmfStepResult(
        estimates=est, summary=summary, timings={"summary": t1 - t0, "cnmf": t2 - t1}
    )


# --------------------------------------------------------------------------- evaluation


def iter_evaluate_step(
    movie: Any, estimates: Any, params: CaimanParams, *, fill_nan: bool = False, border: Any = None
) -> Generator[Progress, None, Any]:
    """Evaluate components with CaImAn (``estimates.evaluate_components``) and its ``detrend_df_f``.

    The CNN runs only when ``use_cnn`` and its model files are there. Same contract as
    :func:`napari_caiman.engine.pipeline.iter_evaluate_step` (sets ``estimates.idx_components`` /
    ``idx_components_bad`` to CaImAn's result).
    """
    import h5py
    from scipy import sparse

    from ..evaluation import Metrics
    from ..results import estimates_to_dict, write_value
    from ..step_results import EvaluateStepResult
    from ..validate import caiman_dims

    T, frame = check_movie(movie, min_frames=2)
    nd = len(frame)
    if tuple(estimates.dims) != tuple(frame):
        raise InputError(
            "movie",
            f"frame shape {tuple(frame)} does not match the estimates' {tuple(estimates.dims)}",
        )
    if estimates.n_frames != T:
        raise InputError("movie", f"has {T} frames, the estimates {estimates.n_frames}")
    K = int(estimates.A.shape[1])
    border_c = _border_caiman(border, nd)
    t0 = time.perf_counter()
    if K == 0:
        empty = np.zeros(0)
        estimates.idx_components = np.zeros(0, np.int64)
        estimates.idx_components_bad = np.zeros(0, np.int64)
        metrics = Metrics(SNR_comp=empty, r_values=empty.copy(), size=np.zeros(0, np.int64))
        return EvaluateStepResult(
            metrics=metrics, F_dff=None, timings={"evaluate": 0.0, "dff": 0.0}
        )
    with _workdir() as wd:
        spec = yield from _iter_movie_file(movie, wd)
        job = _base_job("evaluate", wd, spec, params, frame)
        job["fill_nan"] = bool(fill_nan or border is not None)
        job["border"] = border_c
        est_path = wd / "estimates.hdf5"
        with h5py.File(est_path, "w") as f:
            f.create_dataset("dims", data=np.asarray(caiman_dims(frame)))
            d = estimates_to_dict(estimates)
            d.pop("idx_components", None)
            d.pop("idx_components_bad", None)
            write_value(f, "estimates", d)
        job["estimates"] = str(est_path)
        job["output"] = {"evaluate": str(wd / "evaluate.hdf5")}
        res = yield from iter_run_worker(job, wd)
        with h5py.File(wd / "evaluate.hdf5", "r") as f:
            out = {k: f[k][()] for k in f}
    t1 = time.perf_counter()
    A = sparse.csc_matrix(estimates.A)
    cnn = out.get("cnn_preds")
    metrics = Metrics(
        SNR_comp=np.asarray(out["SNR_comp"], np.float64).ravel(),
        r_values=np.asarray(out["r_values"], np.float64).ravel(),
        size=np.diff(sparse.csc_matrix(A > 0).indptr).astype(np.int64),
        cnn_preds=None if cnn is None else np.asarray(cnn, np.float64).ravel(),
        cnn_available=cnn is not None,
        timings=dict(res.get("timings", {})),
    )
    estimates.idx_components = np.asarray(out["idx_components"], np.int64).ravel()
    estimates.idx_components_bad = np.asarray(out["idx_components_bad"], np.int64).ravel()
    F_dff = out.get("F_dff")
    timings = res.get("timings", {})
    return EvaluateStepResult(
        metrics=metrics,
        F_dff=None if F_dff is None else np.asarray(F_dff, np.float32),
        timings={
            "evaluate": t1 - t0 - float(timings.get("dF/F", 0.0)),
            "dff": float(timings.get("dF/F", 0.0)),
        },
    )
