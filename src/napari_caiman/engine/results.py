"""Results in memory and their CaImAn layout (no file handling: see :mod:`napari_caiman.io.results_file`).

:class:`Results` is everything a pipeline run produces except the movies.
This module also holds the mapping between our types and CaImAn's layout that
both the results file (:mod:`napari_caiman.io.results_file`) and the CaImAn
worker exchange (:mod:`napari_caiman.engine.backends.caiman_backend`) use:
the HDF5 value encoding (:func:`write_value` / :func:`read_value`, the way
CaImAn's ``save_dict_to_hdf5`` / ``load_dict_from_hdf5`` do it), the
``estimates`` group (:func:`estimates_to_dict` / :func:`estimates_from_group`)
and the image axis order (:func:`image_to_caiman`).

Values are encoded the way CaImAn's ``save_dict_to_hdf5`` does, so that its
``load_dict_from_hdf5`` reads ours and we read its: dicts become groups,
``None`` the string ``'NoneType'``, strings attributes of their group, scipy sparse matrices groups with
``data``, ``indices``, ``indptr``, ``shape``.

Note on axis order: images and movies in this package are in array order
((Z,) Y, X, napari's). ``dims`` and per-axis parameters follow CaImAn
(rows, cols, planes: z last), and so does the pixel flattening of ``A``
(Fortran order over ``dims``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

import h5py
import numpy as np

from .errors import InputError
from .params import CaimanParams
from .validate import caiman_dims

if TYPE_CHECKING:
    from .cnmf.estimates import Estimates
    from .curation import Curation
    from .evaluation import Metrics

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
    elif isinstance(value, Mapping):  # dicts and the records below
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
            return sp.csc_matrix(
                (obj["data"][()], obj["indices"][()], obj["indptr"][()]), shape=shape
            )
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


# --- typed parts of the results --------------------------------------------


class _Record(Mapping):
    """A dataclass whose fields also read by name, as the dict of the file layout did.

    E.g. ``r.motion["shifts_rig"]``, ``dict(r.summary)``; names it does not know (from another
    version's file) are kept in ``extra``.
    """

    SKIP_NONE: ClassVar[bool] = False  # leave fields that are None out of the mapping

    def _names(self) -> list[str]:
        names = [f.name for f in fields(self) if f.name != "extra"]  # type: ignore[arg-type]
        if self.SKIP_NONE:
            names = [n for n in names if getattr(self, n) is not None]
        return names + list(getattr(self, "extra", {}))

    def __getitem__(self, key: str) -> Any:
        if key in getattr(self, "extra", {}):
            return self.extra[key]  # type: ignore[attr-defined]
        if key in self._names():
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Any:
        """From a dict of the file layout (unknown names go to ``extra``)."""
        if isinstance(values, cls):
            return values
        known = {f.name for f in fields(cls)} - {"extra"}  # type: ignore[arg-type]
        out = cls(**{k: v for k, v in values.items() if k in known})
        out.extra.update({k: v for k, v in values.items() if k not in known})  # type: ignore[attr-defined]
        return out


@dataclass(eq=False)
class MotionRecord(_Record):
    """The motion correction a results file keeps (no movie).

    Shifts CaImAn order (rows, cols[, planes]), template and patch bounds array order.
    """

    shifts_rig: np.ndarray | None = None
    shifts_els: np.ndarray | None = None
    template: np.ndarray | None = None
    patch_bounds: np.ndarray | None = None
    patch_grid_shape: tuple[int, ...] | None = None
    corr_raw: np.ndarray | None = None
    corr_corrected: np.ndarray | None = None
    crispness_raw: float = math.nan
    crispness_corrected: float = math.nan
    corrected_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class SummaryRecord(_Record):
    """Summary images, array order ((Z,) Y, X); a CaImAn file may hold only ``corr``."""

    SKIP_NONE: ClassVar[bool] = True

    mean: np.ndarray | None = None
    max: np.ndarray | None = None
    std: np.ndarray | None = None
    corr: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- results ---------------------------------------------------------------


@dataclass
class Results:
    """Everything a pipeline run produces, except the movies themselves.

    Attributes
    ----------
    params : CaimanParams
    dims : tuple of int
        Frame shape in array order ((Z,) Y, X).
    motion : MotionRecord or None
        ``shifts_rig``, ``shifts_els``, ``template``, ``patch_bounds``,
        ``patch_grid_shape``, ``corr_raw``, ``corr_corrected``,
        ``crispness_raw``, ``crispness_corrected``, ``corrected_path``
        (attributes; also read by name, as a dict).
    summary : SummaryRecord or None
        ``mean``, ``max``, ``std``, ``corr`` images (the same).
    provenance : dict
        Versions, input file, timings.
    """

    params: CaimanParams
    dims: tuple[int, ...]
    motion: MotionRecord | None = None
    summary: SummaryRecord | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    estimates: Estimates | None = None
    metrics: Metrics | None = None
    F_dff: np.ndarray | None = None
    curation: Curation | None = None

    def __post_init__(self) -> None:
        # dicts (the file layout, older callers) become the typed records
        """Turn dicts (the file layout, older callers) into the typed records."""
        if self.motion is not None and not isinstance(self.motion, MotionRecord):
            self.motion = MotionRecord.from_mapping(self.motion)
        if self.summary is not None and not isinstance(self.summary, SummaryRecord):
            self.summary = SummaryRecord.from_mapping(self.summary)

    def threshold_accepted(self) -> np.ndarray | None:
        """Return the indices accepted by the evaluation thresholds alone (no manual decisions)."""
        if self.estimates is None:
            return None
        if self.metrics is not None:
            from .evaluation import apply_thresholds
            from .resolve import thresholds

            # the size limits too (a file of the Evaluation dock keeps them in its provenance)
            return apply_thresholds(self.metrics, **thresholds(self.params, self.provenance))[0]
        idx = self.estimates.idx_components
        return None if idx is None else np.asarray(idx, dtype=np.int64)

    def accepted(self) -> np.ndarray | None:
        """Return the final accepted component indices: thresholds, then manual decisions on top.

        None when the components were never evaluated nor curated.
        """
        thr = self.threshold_accepted()
        if self.curation is None or (thr is None and not self.curation.n_decisions):
            return thr
        assert self.estimates is not None
        base = (
            thr if thr is not None else np.arange(self.estimates.A.shape[1])
        )  # never evaluated: all
        return self.curation.final_indices(base)[0]


#: Estimates fields written under ``estimates/`` (CaImAn names).
ESTIMATE_ARRAYS = ("C", "S", "YrA", "b", "f", "sn", "g", "bl", "c1", "neurons_sn", "lam")
#: Evaluation fields, read when present (written by the evaluation step).
ESTIMATE_OPTIONAL = (
    "idx_components",
    "idx_components_bad",
    "SNR_comp",
    "r_values",
    "cnn_preds",
    "F_dff",
    "solidity",
    "n_pieces",
    "area_ratio",
    "anatomy",
    "classifier_prob",
    "dup_score",
    "dup_of",
    "elongation",
    "area_px",
)


def image_to_caiman(image: np.ndarray) -> np.ndarray:
    """Array-order image ((Z,) Y, X) -> CaImAn's layout (Y, X[, Z]), e.g. for ``Cn``."""
    image = np.asarray(image)
    return image if image.ndim == 2 else np.moveaxis(image, 0, -1)


def image_from_caiman(image: np.ndarray) -> np.ndarray:
    """Inverse of :func:`image_to_caiman`."""
    image = np.asarray(image)
    return image if image.ndim == 2 else np.moveaxis(image, -1, 0)


def estimates_to_dict(
    estimates: Any, summary: Mapping[str, np.ndarray] | None = None
) -> dict[str, Any]:
    """CaImAn's ``estimates`` group content for an Estimates object (plus ``Cn``)."""
    out = dict(estimates.to_dict())
    out["dims"] = np.asarray(caiman_dims(estimates.dims))
    if summary is not None and "corr" in summary:
        out["Cn"] = image_to_caiman(summary["corr"])
    return out


def _numeric(v: np.ndarray) -> np.ndarray:
    """Read the per-component lists CaImAn saves as number *strings* as float.

    These are ``bl``, ``c1``, ``lam``, ``neurons_sn`` (``None`` entries as NaN), so that the
    estimates can be used and saved again.
    """
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
        raise InputError(
            "path", f"estimates/A has {A.shape[0]} pixels but dims {caiman_dims(dims)} give {n_pix}"
        )

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


def motion_to_dict(result: Any, corrected_path: str | None = None) -> MotionRecord:
    """Return a :class:`~napari_caiman.engine.motion.MotionResult` as the record a results file keeps (no movie)."""
    m = result.metrics
    return MotionRecord(
        shifts_rig=np.asarray(result.shifts_rig, dtype=np.float32),
        shifts_els=None if result.shifts_els is None else np.asarray(result.shifts_els, np.float32),
        template=np.asarray(result.template, dtype=np.float32),
        patch_bounds=None if result.patch_bounds is None else np.asarray(result.patch_bounds),
        patch_grid_shape=None
        if result.patch_grid_shape is None
        else tuple(result.patch_grid_shape),
        corr_raw=np.asarray(m.get("corr_raw"), dtype=np.float32),
        corr_corrected=np.asarray(m.get("corr_corrected"), dtype=np.float32),
        crispness_raw=float(m.get("crispness_raw", np.nan)),
        crispness_corrected=float(m.get("crispness_corrected", np.nan)),
        corrected_path=corrected_path,
    )


def summary_to_dict(summary: Any) -> SummaryRecord:
    """:class:`~napari_caiman.engine.summary.SummaryImages` as the record a results file keeps."""
    mean, mx, std, corr = (
        np.asarray(getattr(summary, k), dtype=np.float32) for k in ("mean", "max", "std", "corr")
    )
    return SummaryRecord(mean=mean, max=mx, std=std, corr=corr)
