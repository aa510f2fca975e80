"""Results files: HDF5 in CaImAn's ``CNMF.save()`` layout plus our own groups.

Layout written by :func:`save_results`::

    /dims                  frame shape in CaImAn order (rows, cols[, planes])
    /params/<group>/<name> every parameter, CaImAn's groups (motion, init, ...)
    /estimates/...         CNMF results (from the CNMF step on; CaImAn names)
    /motion/               shifts_rig (T, n_axes) CaImAn order, shifts_els,
                           template, patch_bounds (array order), metrics
    /summary/              mean, max, std, corr images (array order, (Z,)Y,X)
    /provenance            attributes: software versions, input file, timings

Values are written the way CaImAn's ``save_dict_to_hdf5`` does, so that its
``load_dict_from_hdf5`` reads ours and we read its: dicts become groups,
``None`` the string ``'NoneType'``, strings attributes of their group, scipy sparse matrices groups with
``data``, ``indices``, ``indptr``, ``shape``. Files are written atomically
(temp name, then rename).

Note on axis order: images and movies in this package are in array order
((Z,) Y, X, napari's). ``dims`` and per-axis parameters follow CaImAn
(rows, cols, planes: z last), and so does the pixel flattening of ``A``
(Fortran order over ``dims``).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .atomic import atomic_path
from .errors import InputError
from .params import CaimanParams
from .validate import array_dims, caiman_dims

NONE_STRING = "NoneType"


# --- generic value <-> HDF5 (CaImAn's conventions) ---------------------------

def write_value(group: h5py.Group, name: str, value: Any) -> None:
    """Write ``value`` under ``group[name]`` following CaImAn's conventions."""
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover
        sp = None
    if value is None:
        group.create_dataset(name, data=NONE_STRING)
    elif isinstance(value, dict):
        sub = group.create_group(name)
        for k, v in value.items():
            write_value(sub, str(k), v)
    elif sp is not None and sp.issparse(value):
        m = sp.csc_matrix(value)
        sub = group.create_group(name)
        sub.create_dataset("data", data=m.data)
        sub.create_dataset("indices", data=m.indices)
        sub.create_dataset("indptr", data=m.indptr)
        sub.create_dataset("shape", data=np.asarray(m.shape))
    elif isinstance(value, str):
        group.attrs[name] = value  # CaImAn keeps strings as attributes of the parent group
    elif isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        group.create_dataset(name, data=value)
    elif isinstance(value, slice):
        group.create_dataset(name, data=repr(value))
    elif isinstance(value, (tuple, list)):
        try:
            arr = np.asarray(value)
        except ValueError:
            arr = None
        if arr is None or arr.dtype == object:
            group.create_dataset(name, data=json.dumps(value, default=repr))
        elif arr.dtype.kind == "U":
            group.create_dataset(name, data=arr.astype("S"))
        else:
            group.create_dataset(name, data=arr)
    else:
        arr = np.asarray(value)
        if arr.dtype == object:
            group.create_dataset(name, data=repr(value))
        else:
            kwargs = {"compression": "gzip", "compression_opts": 1} if arr.size > 4096 else {}
            group.create_dataset(name, data=arr, **kwargs)


def read_value(obj: h5py.Group | h5py.Dataset) -> Any:
    """Inverse of :func:`write_value` (reads CaImAn-written files too)."""
    if isinstance(obj, h5py.Group):
        keys = set(obj.keys())
        if {"data", "indices", "indptr", "shape"} <= keys and len(keys) == 4:
            import scipy.sparse as sp

            shape = tuple(int(s) for s in obj["shape"][()])
            return sp.csc_matrix((obj["data"][()], obj["indices"][()], obj["indptr"][()]), shape=shape)
        out = {k: read_value(obj[k]) for k in obj}
        for k, v in obj.attrs.items():  # strings, CaImAn-style
            out.setdefault(k, None if v == NONE_STRING else v)
        return out
    value = obj[()]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return None if value == NONE_STRING else value
    if isinstance(value, np.ndarray) and value.dtype.kind == "S":
        return tuple(v.decode() for v in value.ravel())
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- results ---------------------------------------------------------------

@dataclass
class Results:
    """Everything a pipeline run produces, except the movies themselves.

    Attributes
    ----------
    params : CaimanParams
    dims : tuple of int
        Frame shape in array order ((Z,) Y, X).
    motion : dict or None
        ``shifts_rig``, ``shifts_els``, ``template``, ``patch_bounds``,
        ``patch_grid_shape``, ``corr_raw``, ``corr_corrected``,
        ``crispness_raw``, ``crispness_corrected``, ``corrected_path``.
    summary : dict or None
        ``mean``, ``max``, ``std``, ``corr`` images.
    provenance : dict
        Versions, input file, timings.
    """

    params: CaimanParams
    dims: tuple[int, ...]
    motion: dict[str, Any] | None = None
    summary: dict[str, np.ndarray] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    estimates: Any = None  # engine.cnmf.estimates.Estimates
    metrics: Any = None  # engine.evaluation.Metrics
    F_dff: np.ndarray | None = None
    curation: Any = None  # engine.curation.Curation

    def threshold_accepted(self) -> np.ndarray | None:
        """Indices accepted by the evaluation thresholds alone (no manual decisions)."""
        if self.estimates is None:
            return None
        if self.metrics is not None:
            from .evaluation import apply_thresholds, thresholds_from_params

            return apply_thresholds(self.metrics, **thresholds_from_params(self.params))[0]
        idx = self.estimates.idx_components
        return None if idx is None else np.asarray(idx, dtype=np.int64)

    def accepted(self) -> np.ndarray | None:
        """Final accepted component indices: thresholds, then manual decisions on top.
        None when the components were never evaluated nor curated."""
        thr = self.threshold_accepted()
        if self.curation is None or (thr is None and not self.curation.n_decisions):
            return thr
        base = thr if thr is not None else np.arange(self.estimates.A.shape[1])  # never evaluated: all
        return self.curation.final_indices(base)[0]


#: Estimates fields written under ``estimates/`` (CaImAn names).
ESTIMATE_ARRAYS = ("C", "S", "YrA", "b", "f", "sn", "g", "bl", "c1", "neurons_sn", "lam")
#: Evaluation fields, read when present (written by the evaluation step).
ESTIMATE_OPTIONAL = ("idx_components", "idx_components_bad", "SNR_comp", "r_values", "cnn_preds", "F_dff",
                     "solidity", "n_pieces", "area_ratio", "anatomy", "classifier_prob",
                     "dup_score", "dup_of")


def image_to_caiman(image: np.ndarray) -> np.ndarray:
    """Array-order image ((Z,) Y, X) -> CaImAn's layout (Y, X[, Z]), e.g. for ``Cn``."""
    image = np.asarray(image)
    return image if image.ndim == 2 else np.moveaxis(image, 0, -1)


def image_from_caiman(image: np.ndarray) -> np.ndarray:
    """Inverse of :func:`image_to_caiman`."""
    image = np.asarray(image)
    return image if image.ndim == 2 else np.moveaxis(image, -1, 0)


def estimates_to_dict(estimates: Any, summary: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """CaImAn's ``estimates`` group content for an Estimates object (plus ``Cn``)."""
    out = dict(estimates.to_dict())
    out["dims"] = np.asarray(caiman_dims(estimates.dims))
    if summary is not None and "corr" in summary:
        out["Cn"] = image_to_caiman(summary["corr"])
    return out


def _numeric(v: np.ndarray) -> np.ndarray:
    """CaImAn saves some per-component lists (``bl``, ``c1``, ``lam``,
    ``neurons_sn``) as arrays of number *strings*; read those as float
    (``None`` entries as NaN) so that the estimates can be used and saved again."""
    if v.dtype.kind not in "SUO":
        return v
    def num(x: Any) -> float:
        x = x.decode() if isinstance(x, bytes) else str(x)
        try:
            return float(x)
        except ValueError:
            return float("nan")  # 'None', '' ...
    return np.vectorize(num, otypes=[np.float64])(v) if v.size else v.astype(np.float64)


def estimates_from_group(group: h5py.Group, dims: tuple[int, ...]) -> tuple[Any, dict[str, Any]]:
    """Build an Estimates from an ``estimates`` group (ours or CaImAn's).

    Missing optional fields get neutral values. Returns ``(estimates, extra)``
    where ``extra`` holds evaluation fields and ``Cn`` (array order) if stored.
    Returns ``(None, {})`` when the group holds no footprints.
    """
    from scipy import sparse

    from .cnmf.estimates import Estimates

    if "A" not in group:
        return None, {}
    A = read_value(group["A"])
    if A is None:
        return None, {}
    if not sparse.issparse(A):
        A = sparse.csc_matrix(np.asarray(A))
    A = sparse.csc_matrix(A)
    K = A.shape[1]
    n_pix = int(np.prod(dims))
    if A.shape[0] != n_pix:
        raise InputError("path", f"estimates/A has {A.shape[0]} pixels but dims {caiman_dims(dims)} give {n_pix}")

    def get(name: str) -> Any:
        return read_value(group[name]) if name in group else None

    C = get("C")
    T = int(np.asarray(C).shape[1]) if C is not None and np.ndim(C) == 2 else 0
    zeros_kt = np.zeros((K, T), np.float32)
    fields: dict[str, Any] = {}
    for name in ESTIMATE_ARRAYS:
        v = get(name)
        fields[name] = None if v is None else _numeric(np.asarray(v))
    est = Estimates(
        A=A,
        C=np.asarray(C, np.float32) if C is not None else zeros_kt,
        S=fields["S"] if fields["S"] is not None else zeros_kt.copy(),
        YrA=fields["YrA"] if fields["YrA"] is not None else zeros_kt.copy(),
        b=fields["b"] if fields["b"] is not None else np.zeros((n_pix, 0), np.float32),
        f=fields["f"] if fields["f"] is not None else np.zeros((0, T), np.float32),
        sn=fields["sn"] if fields["sn"] is not None else np.zeros(n_pix, np.float32),
        g=fields["g"] if fields["g"] is not None else np.zeros((K, 0)),
        bl=fields["bl"] if fields["bl"] is not None else np.zeros(K),
        c1=fields["c1"] if fields["c1"] is not None else np.zeros(K),
        neurons_sn=fields["neurons_sn"] if fields["neurons_sn"] is not None else np.zeros(K),
        lam=fields["lam"] if fields["lam"] is not None else np.zeros(K),
        dims=tuple(dims),
    )
    if est.b.ndim == 1:
        est.b = est.b[:, None]
    if est.f.ndim == 1:
        est.f = est.f[None, :]
    extra: dict[str, Any] = {}
    for name in ESTIMATE_OPTIONAL:
        v = get(name)
        if v is not None:
            extra[name] = np.asarray(v)
    est.idx_components = extra.get("idx_components")
    est.idx_components_bad = extra.get("idx_components_bad")
    if extra.get("anatomy") is not None and np.size(extra["anatomy"]) == K:
        est.from_anatomy = np.asarray(extra["anatomy"], bool).ravel()
    cn = get("Cn")
    if cn is not None and np.ndim(cn) == len(dims):
        extra["Cn"] = image_from_caiman(cn)
    return est, extra


def motion_to_dict(result: Any, corrected_path: str | None = None) -> dict[str, Any]:
    """Flatten a :class:`~napari_caiman.engine.motion.MotionResult` (without the movie)."""
    m = result.metrics
    return {
        "shifts_rig": np.asarray(result.shifts_rig, dtype=np.float32),
        "shifts_els": None if result.shifts_els is None else np.asarray(result.shifts_els, np.float32),
        "template": np.asarray(result.template, dtype=np.float32),
        "patch_bounds": None if result.patch_bounds is None else np.asarray(result.patch_bounds),
        "patch_grid_shape": None if result.patch_grid_shape is None else tuple(result.patch_grid_shape),
        "corr_raw": np.asarray(m.get("corr_raw"), dtype=np.float32),
        "corr_corrected": np.asarray(m.get("corr_corrected"), dtype=np.float32),
        "crispness_raw": float(m.get("crispness_raw", np.nan)),
        "crispness_corrected": float(m.get("crispness_corrected", np.nan)),
        "corrected_path": corrected_path,
    }


def summary_to_dict(summary: Any) -> dict[str, np.ndarray]:
    """Flatten :class:`~napari_caiman.engine.summary.SummaryImages`."""
    return {k: np.asarray(getattr(summary, k), dtype=np.float32) for k in ("mean", "max", "std", "corr")}


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("napari-caiman", "numpy", "scipy", "opencv-python-headless", "h5py", "tifffile", "napari"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return tuple(out.items())


def software_versions() -> dict[str, str]:
    """Versions of the software that matters for reproducing a result (read
    once per process: package metadata is slow to parse)."""
    return dict(_versions())


def file_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Identify one input file cheaply: path, size, mtime, the SHA-256 of its
    first MiB (``header_sha256``) and of a sample of its content
    (``content_sha256``: size, first and last MiB, and 16 blocks of 64 KiB
    spread evenly in between). The content hash does not depend on the file's
    name or location, so a copied movie is recognised; reading ~3 MiB costs
    milliseconds even for a file of many GB.
    """
    import hashlib

    p = Path(path)
    st = p.stat()
    size = st.st_size
    head = hashlib.sha256()
    content = hashlib.sha256(str(size).encode())
    mib = 1 << 20
    with open(p, "rb") as fh:
        first = fh.read(mib)
        head.update(first)
        content.update(first)
        if size > 2 * mib:
            block = 64 << 10
            for i in range(1, 17):
                fh.seek(mib + (size - 2 * mib - block) * i // 17)
                content.update(fh.read(block))
            fh.seek(size - mib)
            content.update(fh.read(mib))
        elif size > mib:
            content.update(fh.read())
    return {"path": str(p.resolve()), "size": size, "mtime": st.st_mtime,
            "header_sha256": head.hexdigest(), "content_sha256": content.hexdigest()}


def input_files(source: str | os.PathLike | list) -> list[Path]:
    """The files a movie source consists of (a folder expands to its movie files)."""
    from ..io.movie import movie_files

    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    files: list[Path] = []
    for s in sources:
        p = Path(s)
        files.extend(movie_files(p) if p.is_dir() else [p])
    return files


def make_provenance(input_path: str | os.PathLike | list | None = None, timings: dict[str, float] | None = None,
                    **extra: Any) -> dict[str, Any]:
    """Provenance record: versions, input file(s) (path, size, mtime, header
    and sampled-content hashes), timings, plus ``extra`` (steps, backend,
    start/end times ...)."""
    prov: dict[str, Any] = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": software_versions()}
    if input_path:
        files = input_files(input_path)
        prov["input_path"] = str(files[0].resolve()) if files and files[0].exists() else str(input_path)
        if files and all(f.is_file() for f in files):
            prints = [file_fingerprint(f) for f in files]
            prov["input_size"] = sum(fp["size"] for fp in prints)
            prov["input_mtime"] = prints[0]["mtime"]
            prov["input_header_sha256"] = prints[0]["header_sha256"]
            prov["input_files"] = prints
    if timings:
        prov["timings"] = {k: float(v) for k, v in timings.items()}
    prov.update(extra)
    return prov


def save_results(path: str | os.PathLike, results: Results) -> Path:
    """Write ``results`` to an HDF5 file atomically. Returns the path.

    Raises
    ------
    InputError
        If the folder does not exist or the file cannot be written.
    """
    path = Path(path)
    try:
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("dims", data=np.asarray(caiman_dims(results.dims)))
            from .params import DEFAULTS

            # CaImAn's load_CNMF makes a CNMFParams group of every group under
            # 'params' and fails on unknown ones: the plugin's own groups
            # (``backend``) are written apart
            groups = results.params.to_groups()
            write_value(f, "params", {g: v for g, v in groups.items() if g in DEFAULTS})
            write_value(f, "napari_caiman_params", {g: v for g, v in groups.items() if g not in DEFAULTS})
            if results.motion is not None:
                write_value(f, "motion", results.motion)
            if results.summary is not None:
                write_value(f, "summary", results.summary)
            if results.estimates is not None:
                est = estimates_to_dict(results.estimates, results.summary)
                if results.metrics is not None:
                    est.update(results.metrics.to_dict())
                if results.F_dff is not None:
                    est["F_dff"] = np.asarray(results.F_dff, dtype=np.float32)
                final = results.accepted()
                if final is not None:
                    K = results.estimates.A.shape[1]
                    est["idx_components"] = np.asarray(final, dtype=np.int64)
                    est["idx_components_bad"] = np.setdiff1d(np.arange(K), final)
                write_value(f, "estimates", est)
                from .curation import Curation, write_curation

                # always written (all 0 before any decision), so every reader finds the same layout
                curation = results.curation if results.curation is not None else Curation.empty(results.estimates.A.shape[1])
                write_curation(f, curation)
            prov = f.create_group("provenance")
            for k, v in results.provenance.items():
                prov.attrs[k] = v if isinstance(v, (str, int, float)) else json.dumps(v, default=repr)
            f.attrs["napari_caiman_format"] = 1
    except OSError as exc:
        raise InputError("output", f"cannot write results file {str(path)!r}: {exc}") from None
    return path


def load_results(path: str | os.PathLike) -> Results:
    """Read a results file written by :func:`save_results` or CaImAn's ``CNMF.save()``.

    Raises
    ------
    InputError
        Missing file, not HDF5, truncated or damaged, not a results file (e.g.
        an HDF5 file of another tool), or parts that do not fit together
        (e.g. footprints whose pixel count does not match ``dims``). The
        message names the file and what is wrong.
    """
    path = Path(path)
    name = repr(str(path))
    if not path.is_file():
        raise InputError("path", f"results file not found: {name}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        # an HDF5 file starts with this signature (at 0, or 512 * 2**k after a user block)
        signature = b"\x89HDF\r\n\x1a\n"
        size = path.stat().st_size
        offsets = [0] + [512 << k for k in range(12) if (512 << k) < size]
        try:
            with path.open("rb") as fh:
                is_hdf5 = any(fh.seek(o) == o and fh.read(8) == signature for o in offsets)
        except OSError:
            is_hdf5 = True  # unreadable: report h5py's own reason below
        if not is_hdf5:
            raise InputError("path", f"{name} is not an HDF5 file (no HDF5 signature); expected a "
                                     "results file written by napari-caiman or CaImAn's CNMF.save()") from None
        if "truncated" in str(exc):
            import re

            stored = re.search(r"stored_eof\s*=\s*(\d+)", str(exc))
            of = f" of the {int(stored.group(1)):,}" if stored else ""
            raise InputError("path", f"{name} is truncated: it has {size:,} bytes{of} the HDF5 file "
                                     "should have (cut short while copying or saving?) and cannot be "
                                     "read; copy or save it again") from None
        raise InputError("path", f"{name} is a damaged HDF5 file and cannot be opened: {exc}") from None
    part = "the file"
    try:
        with f:
            missing = [k for k in ("dims", "params") if k not in f]
            if missing:
                found = ", ".join(sorted(f.keys())[:8]) or "nothing"
                raise InputError("path", f"{name} is not a napari-caiman/CaImAn results file: it has no "
                                         f"{' and no '.join(repr(m) for m in missing)} (its top level "
                                         f"holds: {found})")
            part = "'dims'"
            raw_dims = tuple(np.asarray(f["dims"][()]).ravel().tolist())
            if not 2 <= len(raw_dims) <= 3 or not all(isinstance(d, int) and d >= 1 for d in raw_dims):
                raise InputError("path", f"{name}: 'dims' must be 2 or 3 positive sizes, got {raw_dims}")
            dims = array_dims(raw_dims)
            part = "the parameters ('params')"
            stored = read_value(f["params"])
            if "napari_caiman_params" in f:  # our own groups (e.g. backend), apart for CaImAn's load_CNMF
                stored = {**stored, **read_value(f["napari_caiman_params"])}
            params = CaimanParams.from_dict(stored, strict=False)
            part = "'motion'"
            motion = read_value(f["motion"]) if "motion" in f else None
            part = "'summary'"
            summary = read_value(f["summary"]) if "summary" in f else None
            part = "the CNMF results ('estimates')"
            estimates, extra = estimates_from_group(f["estimates"], dims) if "estimates" in f else (None, {})
            if estimates is not None:
                K = estimates.A.shape[1]
                for key in ("C", "S", "YrA"):
                    rows = np.shape(getattr(estimates, key))[0]
                    if rows != K:
                        raise InputError("path", f"{name}: estimates/{key} has {rows} traces for {K} "
                                                 "footprints in estimates/A")
            if summary is None and "Cn" in extra:
                summary = {"corr": extra["Cn"]}
            from .curation import read_curation

            part = "the curation"
            curation = read_curation(f) if estimates is not None else None
            part = "'provenance'"
            prov: dict[str, Any] = {}
            if "provenance" in f:
                for k, v in f["provenance"].attrs.items():
                    if isinstance(v, str) and v[:1] in "{[":
                        try:
                            v = json.loads(v)
                        except ValueError:
                            pass
                    prov[k] = v.item() if isinstance(v, np.generic) else v
        part = "the evaluation results"
        results = Results(params=params, dims=dims, motion=motion, summary=summary, provenance=prov,
                          estimates=estimates, F_dff=extra.get("F_dff"), curation=curation)
        if estimates is not None:
            from .evaluation import Metrics

            results.metrics = Metrics.from_saved(extra, estimates)
            if curation is not None and curation.n_components != estimates.A.shape[1]:
                raise InputError("path", f"curation holds {curation.n_components} decisions for "
                                         f"{estimates.A.shape[1]} components")
            # estimates.idx_components holds the threshold result; the file's
            # idx_components is the final (curated) set, re-derived by accepted()
            thr = results.threshold_accepted()
            if results.metrics is not None or curation is None:
                estimates.idx_components = thr
            if estimates.idx_components is not None:
                estimates.idx_components_bad = np.setdiff1d(np.arange(estimates.A.shape[1]), estimates.idx_components)
    except InputError as exc:
        if name in exc.message:
            raise
        raise InputError("path", f"{name}: {part}: {exc}") from None
    except (OSError, KeyError, ValueError, TypeError, IndexError, AttributeError, RuntimeError) as exc:
        raise InputError("path", f"{name} is damaged or not in the results layout: cannot read {part} "
                                 f"({type(exc).__name__}: {exc})") from None
    return results
