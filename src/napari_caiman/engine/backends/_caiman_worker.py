"""napari-caiman's CaImAn worker: runs one step with the real CaImAn.

Standalone script: it imports only the standard library, numpy, h5py,
tifffile and caiman (never napari_caiman), because it may run under another
Python interpreter (``NAPARI_CAIMAN_CAIMAN_PYTHON``).  It calls CaImAn's
public API; it contains none of CaImAn's code.

Usage::

    python _caiman_worker.py JOB.json

The job file (written by :mod:`napari_caiman.engine.backends.caiman_backend`)::

    {"task": "motion" | "cnmf" | "evaluate",
     "workdir": folder for every temporary file (CAIMAN_TEMP points there too),
     "movie": {"path", "format": "npy"|"tif"|"h5", "var_name", "shape"},
              # frames in CaImAn's axis order (T, rows, cols[, planes])
     "params": CaImAn's parameters, grouped ({"motion": {...}, "init": {...}}),
     "n_processes": int (> 1: a multiprocessing pool via caiman.cluster),
     "fill_nan": bool, "border": [rows, cols(, planes)] or null,
     "template": .npy path or null (motion),
     "Ain": .npy path or null (cnmf; (pixels, K) CaImAn pixel order),
     "estimates": .hdf5 path (evaluate; CaImAn estimates layout),
     "output": {...} paths to write}

Output protocol on stdout, one record per line:

    @@PHASE <i> <n> <name>     phase i of n begins
    @@LOG <LEVEL> <logger>: <message>   a log record (CaImAn's and ours)
    @@RESULT <json>            what was written
    @@ERROR <json>             {"type", "message", "traceback"}; exit status 1

Anything else CaImAn prints comes through as plain lines.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback

PREFIX_PHASE = "@@PHASE"
PREFIX_LOG = "@@LOG"
PREFIX_RESULT = "@@RESULT"
PREFIX_ERROR = "@@ERROR"

log = logging.getLogger("napari_caiman.worker")

PHASES = {
    "motion": ["import caiman", "motion correction", "writing corrected movie", "done"],
    "cnmf": ["import caiman", "memory mapping", "CNMF fit", "CNMF refit", "saving", "done"],
    "evaluate": [
        "import caiman",
        "memory mapping",
        "evaluating components",
        "dF/F",
        "saving",
        "done",
    ],
}


def emit(line: str) -> None:
    sys.stdout.write(line.replace("\n", " | ") + "\n")
    sys.stdout.flush()


class _Phases:
    def __init__(self, task: str) -> None:
        self.names = PHASES[task]
        self.t0 = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.current: str | None = None

    def start(self, name: str) -> None:
        now = time.perf_counter()
        if self.current is not None:
            self.timings[self.current] = self.timings.get(self.current, 0.0) + now - self.t0
        self.t0, self.current = now, name
        emit(f"{PREFIX_PHASE} {self.names.index(name)} {len(self.names)} {name}")


class _LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_LineFormatter(f"{PREFIX_LOG} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in ("caiman", "napari_caiman"):
        logging.getLogger(name).setLevel(logging.INFO)


# --------------------------------------------------------------------------- movie access


def open_movie(spec: dict):
    """Return the movie as an array-like (T, rows, cols[, planes]), without loading it."""
    import numpy as np

    path, fmt = spec["path"], spec["format"]
    if fmt == "npy":
        arr = np.load(path, mmap_mode="r")
    elif fmt == "tif":
        import tifffile

        arr = tifffile.memmap(path, mode="r")
    elif fmt == "h5":
        import h5py

        arr = h5py.File(path, "r")[spec.get("var_name") or "mov"]
    else:
        raise ValueError(f"unknown movie format {fmt!r}")
    shape = tuple(spec["shape"])
    if tuple(arr.shape) != shape:
        arr = arr.reshape(shape)
    return arr


def make_c_memmap(
    spec: dict, workdir: str, *, fill_nan: bool, border, chunk_bytes: int = 1 << 27
) -> str:
    """Write CaImAn's C-order memmap file from the movie, chunk by chunk, and return its path.

    The file holds pixels x frames, pixels in Fortran order over dims; NaN -> 0 when ``fill_nan``, a
    border of ``border`` pixels per axis set to 0. The path follows CaImAn's file-name pattern, so
    ``load_memmap`` reads it.
    """
    import numpy as np
    from caiman.mmapping import load_memmap
    from caiman.paths import memmap_frames_filename

    mov = open_movie(spec)
    T, dims = int(mov.shape[0]), tuple(int(d) for d in mov.shape[1:])
    P = int(np.prod(dims))
    fname = memmap_frames_filename(os.path.join(workdir, "Yr_"), dims, T, "C")
    Yr = np.memmap(fname, mode="w+", dtype=np.float32, shape=(P, T), order="C")
    step = max(1, chunk_bytes // max(4 * P, 1))
    for t0 in range(0, T, step):
        t1 = min(T, t0 + step)
        block = np.array(mov[t0:t1], dtype=np.float32)
        if fill_nan or border is not None:
            np.nan_to_num(block, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        if border is not None:
            for axis, b in enumerate(border):
                b = int(b)
                if b > 0:
                    idx = [slice(None)] * block.ndim
                    n = block.shape[axis + 1]
                    idx[axis + 1] = np.r_[0 : min(b, n), max(n - b, 0) : n]
                    block[tuple(idx)] = 0
        if not np.all(np.isfinite(block)):
            raise ValueError(
                f"the movie contains NaN or infinite values (frames {t0}-{t1}); "
                "motion-corrected movies need fill_nan/border"
            )
        Yr[:, t0:t1] = block.reshape(t1 - t0, -1, order="F").T
    Yr.flush()
    del Yr
    Yr, dims2, T2 = load_memmap(fname)
    assert tuple(dims2) == dims and T2 == T, (dims2, T2, dims, T)
    return fname


def images_from_memmap(fname: str):
    import numpy as np
    from caiman.mmapping import load_memmap

    Yr, dims, T = load_memmap(fname)
    return np.reshape(Yr.T, [T] + list(dims), order="F")


# --------------------------------------------------------------------------- writing outputs


def write_npy_frames(path: str, shape, frames_iter) -> None:
    """Sequentially write a C-order float32 .npy of ``shape`` from blocks of frames."""
    import numpy as np

    with open(path, "wb") as fh:
        np.lib.format.write_array_header_2_0(
            fh,
            {
                "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                "fortran_order": False,
                "shape": tuple(int(s) for s in shape),
            },
        )
        for block in frames_iter:
            np.ascontiguousarray(block, dtype=np.float32).tofile(fh)


def write_tif_frames(path: str, shape, frames_iter) -> None:
    """BigTIFF, uncompressed, contiguous; one page per plane, like the plugin's own writer."""
    import numpy as np
    import tifffile

    mm = tifffile.memmap(
        path,
        shape=tuple(int(s) for s in shape),
        dtype=np.float32,
        bigtiff=True,
        photometric="minisblack",
    )
    offset = int(mm.offset)
    del mm
    with open(path, "r+b") as fh:
        fh.seek(offset)
        for block in frames_iter:
            np.ascontiguousarray(block, dtype=np.float32).tofile(fh)


def write_h5(path: str, values: dict) -> None:
    import h5py
    import numpy as np

    with h5py.File(path, "w") as f:
        for k, v in values.items():
            if v is None:
                continue
            f.create_dataset(k, data=np.asarray(v))


def read_estimates(path: str):
    """Return a CaImAn Estimates from an HDF5 file with an ``estimates`` group.

    The group is in CNMF.save()'s layout (A as a sparse CSC group).
    """
    import h5py
    import numpy as np
    import scipy.sparse as sp
    from caiman.source_extraction.cnmf.estimates import Estimates

    with h5py.File(path, "r") as f:
        g = f["estimates"]

        def get(name):
            if name not in g:
                return None
            v = g[name][()]
            if isinstance(v, bytes) and v == b"NoneType":
                return None
            return v

        a = g["A"]
        A = sp.csc_matrix(
            (a["data"][()], a["indices"][()], a["indptr"][()]),
            shape=tuple(int(s) for s in a["shape"][()]),
        )
        dims = tuple(int(d) for d in np.asarray(f["dims"][()]).ravel())
        est = Estimates(A=A, b=get("b"), C=get("C"), f=get("f"), R=get("YrA"), dims=dims)
        est.YrA = get("YrA")
        for name in ("S", "sn", "g", "bl", "c1", "neurons_sn", "lam"):
            setattr(est, name, get(name))
    if est.b is not None and est.b.ndim == 1:
        est.b = est.b[:, None]
    if est.f is not None and est.f.ndim == 1:
        est.f = est.f[None, :]
    return est


# --------------------------------------------------------------------------- helpers


def numeric_fields(est) -> None:
    """Turn the per-component lists CaImAn keeps as numpy scalars/arrays into float arrays.

    These are ``bl``, ``c1``, ``neurons_sn`` and ``lam``, so that ``CNMF.save`` stores numbers (a
    ragged list would be saved as strings).
    """
    import numpy as np

    for name in ("bl", "c1", "neurons_sn", "lam"):
        v = getattr(est, name, None)
        if v is None or isinstance(v, np.ndarray) and v.dtype.kind == "f":
            continue
        try:
            setattr(
                est,
                name,
                np.array(
                    [
                        float(np.asarray(x, dtype=float).ravel()[0]) if np.size(x) else np.nan
                        for x in v
                    ],
                    dtype=np.float64,
                ),
            )
        except (TypeError, ValueError):
            setattr(est, name, None)


def make_params(job: dict):
    from caiman.source_extraction.cnmf.params import CNMFParams

    # given to the constructor (not set afterwards) so that values CaImAn derives
    # from others (gSiz from gSig ...) follow the ones given
    return CNMFParams(params_dict=job.get("params") or {})


def setup_dview(n: int):
    if n is None or int(n) <= 1:
        return None
    import caiman.cluster

    _, dview, n_proc = caiman.cluster.setup_cluster(
        backend="multiprocessing", n_processes=int(n), ignore_preexisting=True
    )
    log.info("started a multiprocessing pool of %d processes", n_proc)
    return dview


def stop_dview(dview) -> None:
    if dview is None:
        return
    try:
        dview.terminate()
    except Exception:  # pragma: no cover
        pass


def cnn_usable(is3d: bool) -> tuple[bool, str]:
    """Whether CaImAn's CNN classifier can run here, and why not."""
    import importlib.util

    if is3d:
        return False, "the CNN classifier works on 2D footprints only"
    if importlib.util.find_spec("tensorflow") is None:
        return False, "tensorflow is not installed"
    from caiman.paths import caiman_datadir

    base = os.path.join(caiman_datadir(), "model", "cnn_model")
    have = (os.path.isfile(base + ".json") and os.path.isfile(base + ".h5")) or os.path.isfile(
        base + ".h5.pb"
    )
    if not have:
        return False, (
            f"the model files {base}.json/.h5 are missing (run `caimanmanager install` "
            "to download them, or set CAIMAN_DATA)"
        )
    return True, ""


# --------------------------------------------------------------------------- tasks


def run_motion(job: dict, phases: _Phases) -> dict:
    import numpy as np
    from caiman.motion_correction import MotionCorrect, sliding_window_dims

    opts = make_params(job)
    mopts = dict(opts.get_group("motion"))
    spec = job["movie"]
    shape = tuple(spec["shape"])
    nd = len(shape) - 1
    mopts["is3D"] = nd == 3
    mopts["var_name_hdf5"] = spec.get("var_name") or "mov"
    template = np.load(job["template"]) if job.get("template") else None
    dview = setup_dview(job.get("n_processes", 1))
    try:
        phases.start("motion correction")
        mc = MotionCorrect([spec["path"]], dview=dview, **mopts)
        mc.motion_correct(template=template, save_movie=True)
    finally:
        stop_dview(dview)
    phases.start("writing corrected movie")
    out = job["output"]
    mmap = mc.mmap_file[0] if isinstance(mc.mmap_file, (list, tuple)) else mc.mmap_file
    from caiman.mmapping import load_memmap

    Yr, dims, T = load_memmap(mmap)
    dims = tuple(int(d) for d in dims)
    P = int(np.prod(dims))
    step = max(1, (1 << 27) // max(4 * P, 1))
    to_array = (lambda b: b) if nd == 2 else (lambda b: np.transpose(b, (0, 3, 1, 2)))
    array_shape = (T,) + (dims if nd == 2 else (dims[2], dims[0], dims[1]))

    def frames(Y):
        for t0 in range(0, T, step):
            t1 = min(T, t0 + step)
            yield to_array(np.asarray(Y[:, t0:t1]).T.reshape((t1 - t0,) + dims, order="F"))

    write = write_tif_frames if out["corrected_format"] == "tif" else write_npy_frames
    write(out["corrected"], array_shape, frames(Yr))
    del Yr
    os.remove(mmap)

    pw = bool(mopts.get("pw_rigid"))
    shifts_rig = getattr(mc, "shifts_rig", None)
    shifts_rig = (
        np.zeros((0, nd), np.float32)
        if shifts_rig is None or len(shifts_rig) == 0
        else np.asarray(shifts_rig, dtype=np.float32)
    )
    res = {
        "min_mov": float(np.asarray(mc.min_mov).ravel()[0]) if mc.min_mov is not None else None,
        "border_to_0": int(getattr(mc, "border_to_0", 0) or 0),
        "pw_rigid": pw,
    }
    arrays = {}
    if pw:
        comps = [np.asarray(mc.x_shifts_els, np.float32), np.asarray(mc.y_shifts_els, np.float32)]
        if nd == 3:
            comps.append(np.asarray(mc.z_shifts_els, np.float32))
        els = np.stack(comps, axis=-1)  # (T, n_patches, nd) CaImAn order
        arrays["shifts_els"] = els
        template_out = mc.total_template_els
        strides, overlaps = mopts["strides"], mopts["overlaps"]
        inds, corners, sizes = [], [], []
        for ind, corner, size in sliding_window_dims(dims, overlaps, strides):
            inds.append(ind)
            corners.append(corner)
            sizes.append(size)
        corners = np.asarray(corners, np.int64)  # type: ignore[assignment]
        stops = np.minimum(corners + np.asarray(sizes, np.int64), np.asarray(dims))
        arrays["patch_inds"] = np.asarray(inds, np.int64)
        arrays["patch_bounds"] = np.stack([corners, stops], axis=-1)  # (n, nd, 2) CaImAn order
        if shifts_rig.size == 0:  # template given: no rigid pass
            shifts_rig = els.mean(axis=1)
    else:
        template_out = mc.total_template_rig
    arrays["shifts_rig"] = shifts_rig.reshape(T, nd)
    arrays["template"] = np.asarray(template_out, np.float32)
    np.savez(out["motion"], **arrays)  # type: ignore[arg-type]
    return res


def run_cnmf(job: dict, phases: _Phases) -> dict:
    import numpy as np
    from caiman.source_extraction import cnmf

    phases.start("memory mapping")
    fname = make_c_memmap(
        job["movie"], job["workdir"], fill_nan=job.get("fill_nan", False), border=job.get("border")
    )
    images = images_from_memmap(fname)
    opts = make_params(job)
    n_proc = int(job.get("n_processes", 1) or 1)
    Ain = None
    if job.get("Ain"):
        Ain = np.load(job["Ain"])
        log.info("seeded CNMF with %d footprints (rf=None, only_init=False)", Ain.shape[1])
        opts.change_params({"patch": {"rf": None, "only_init": False}})
    elif opts.get("patch", "rf") is None:
        # one patch for the whole field of view: a full fit (CaImAn's only_init
        # would stop after initialization)
        opts.change_params({"patch": {"only_init": False}})
    patches = Ain is None and opts.get("patch", "rf") is not None
    opts.change_params({"patch": {"n_processes": n_proc}})
    dview = setup_dview(n_proc)
    try:
        phases.start("CNMF fit")
        cnm = cnmf.CNMF(n_proc, params=opts, dview=dview, Ain=Ain)
        cnm.fit(images)
        k_fit = 0 if cnm.estimates.A is None else int(cnm.estimates.A.shape[1])
        log.info("CNMF fit found %d components", k_fit)
        phases.start("CNMF refit")
        if patches and k_fit:
            cnm = cnm.refit(images, dview=dview)
            log.info("refit: %d components", int(cnm.estimates.A.shape[1]))
        else:
            log.info(
                "no refit needed (%s)",
                "seeded" if Ain is not None else "no patches" if not patches else "no components",
            )
    finally:
        stop_dview(dview)
    phases.start("saving")
    cnm.dview = None
    numeric_fields(cnm.estimates)
    cnm.save(job["output"]["cnmf"])
    return {
        "n_components": int(cnm.estimates.A.shape[1]) if cnm.estimates.A is not None else 0,
        "dims": list(cnm.dims),
    }


def run_evaluate(job: dict, phases: _Phases) -> dict:
    phases.start("memory mapping")
    fname = make_c_memmap(
        job["movie"], job["workdir"], fill_nan=job.get("fill_nan", False), border=job.get("border")
    )
    images = images_from_memmap(fname)
    opts = make_params(job)
    est = read_estimates(job["estimates"])
    nd = images.ndim - 1
    if opts.get("quality", "use_cnn"):
        ok, why = cnn_usable(nd == 3)
        if not ok:
            log.warning("use_cnn=True but %s; evaluating without the CNN", why)
            opts.change_params({"quality": {"use_cnn": False}})
    dview = setup_dview(job.get("n_processes", 1))
    try:
        phases.start("evaluating components")
        est.evaluate_components(images, opts, dview=dview)
    finally:
        stop_dview(dview)
    log.info("accepted %d of %d components", len(est.idx_components), est.A.shape[1])
    phases.start("dF/F")
    try:
        est.detrend_df_f()
    except Exception as exc:  # dF/F is an extra; the metrics stand
        log.warning("detrend_df_f failed: %s: %s", type(exc).__name__, exc)
        est.F_dff = None
    phases.start("saving")
    import numpy as np

    cnn = est.cnn_preds
    cnn = None if cnn is None or np.size(cnn) != est.A.shape[1] else np.asarray(cnn, np.float64)
    write_h5(
        job["output"]["evaluate"],
        {
            "SNR_comp": np.asarray(est.SNR_comp, np.float64),
            "r_values": np.asarray(est.r_values, np.float64),
            "cnn_preds": cnn,
            "idx_components": np.asarray(est.idx_components, np.int64),
            "idx_components_bad": np.asarray(est.idx_components_bad, np.int64),
            "F_dff": None if est.F_dff is None else np.asarray(est.F_dff, np.float32),
            "use_cnn": bool(opts.get("quality", "use_cnn")),
        },
    )
    return {
        "n_accepted": int(len(est.idx_components)),
        "use_cnn": bool(opts.get("quality", "use_cnn")),
    }


TASKS = {"motion": run_motion, "cnmf": run_cnmf, "evaluate": run_evaluate}


def main(argv: list[str]) -> int:
    setup_logging()
    if hasattr(os, "nice"):
        # below the napari window in CPU priority (CaImAn and its pool inherit it), so that the
        # viewer stays responsive while CaImAn keeps every core busy
        try:
            os.nice(5)
        except OSError:
            pass
    if len(argv) != 2:
        emit(
            f"{PREFIX_ERROR} "
            + json.dumps({"type": "UsageError", "message": "usage: _caiman_worker.py JOB.json"})
        )
        return 2
    try:
        with open(argv[1]) as fh:
            job = json.load(fh)
        task = job["task"]
        phases = _Phases(task)
        phases.start("import caiman")
        os.environ.setdefault("CAIMAN_TEMP", job["workdir"])
        try:
            import caiman  # noqa: F401
            from caiman.source_extraction import cnmf  # noqa: F401
        except Exception as exc:
            raise ImportError(
                f"CaImAn is installed but cannot be imported ({type(exc).__name__}: {exc}); "
                "fix that environment (CaImAn 1.x imports tensorflow)"
            ) from exc
        try:
            import importlib.metadata as md

            version = md.version("caiman")
        except Exception:
            version = "unknown"
        log.info("CaImAn %s (python %s), task %s", version, sys.version.split()[0], task)
        result = TASKS[task](job, phases)
        phases.start("done")
        result["caiman_version"] = version
        result["timings"] = phases.timings
        emit(f"{PREFIX_RESULT} " + json.dumps(result, default=repr))
        return 0
    except BaseException as exc:  # report everything, including KeyboardInterrupt
        emit(
            f"{PREFIX_ERROR} "
            + json.dumps(
                {
                    "type": type(exc).__name__,
                    "message": str(exc),
                    "traceback": traceback.format_exc(),
                }
            )
        )
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
