"""One parameter set and one movie shape -> the settings every step runs with.

:func:`resolve` is the single place that reads the schema's parameters
(:mod:`.schema`) against a movie: it fits the planes (z) entries of a volume
(:func:`for_movie`, the same values the docks start from), checks every
per-axis value against the frame and returns the array-order settings of
the motion, CNMF and evaluation steps, or raises :class:`~.errors.InputError`
naming the field. Messages give per-axis values and frame sizes in CaImAn's
order (rows, cols[, planes]), like the parameters themselves.

Examples
--------
>>> r = resolve({"max_shifts": (4, 4), "gSig": (3, 3)}, (100, 8, 64, 64))
>>> r.params["gSig"], r.cnmf.gSig          # CaImAn order; array order (z, y, x)
((3, 3, 2), (2.0, 3.0, 3.0))
>>> r.motion.max_shifts                    # array order (z, y, x)
(2, 4, 4)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .defaults import z_default
from .errors import InputError
from .params import CaimanParams
from .validate import per_axis, to_array_order, to_caiman_order

__all__ = [
    "Resolved",
    "ResolvedMotion",
    "ResolvedCnmf",
    "resolve",
    "resolve_motion",
    "for_movie",
    "thresholds",
    "settings_from_params",
    "patch_geometry",
    "auto_gsiz",
    "auto_stride",
    "MOTION_NAMES",
    "THRESHOLD_NAMES",
]


def auto_gsiz(g: float) -> int:
    """Return CaImAn's automatic ``gSiz`` of one axis with half-size ``g``: ``2 * gSig + 1``."""
    return int(2 * g + 1)


def auto_stride(g: float) -> int:
    """Return the automatic patch overlap ``stride`` of one axis: ``2 * gSig``, at least 1."""
    return max(1, int(math.ceil(2 * g)))


#: The motion parameters the motion step takes (CaImAn's names).
MOTION_NAMES = (
    "max_shifts",
    "pw_rigid",
    "strides",
    "overlaps",
    "max_deviation_rigid",
    "niter_rig",
    "upsample_factor_grid",
    "border_nan",
    "shifts_opencv",
    "gSig_filt",
)

#: Keyword arguments of ``apply_thresholds`` and the schema field each comes from.
THRESHOLD_NAMES = (
    "min_SNR",
    "SNR_lowest",
    "rval_thr",
    "rval_lowest",
    "use_cnn",
    "min_cnn_thr",
    "cnn_lowest",
    "min_solidity",
    "max_pieces",
    "min_area_ratio",
    "max_area_ratio",
    "max_elongation",
    "accept_anatomy",
    "min_classifier_prob",
    "joint_SNR_frac",
    "joint_rval_frac",
    "high_rval_thr",
    "small_floor_px",
    "max_duplicate",
    "min_size",
    "max_size",
)


def _params(params: Any) -> CaimanParams:
    if isinstance(params, CaimanParams):
        return params
    return CaimanParams.from_dict(params or {})


def _frame(movie_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in movie_shape)
    if len(shape) not in (3, 4):
        raise InputError(
            "movie",
            f"expected a movie with 3 dimensions (T, Y, X) or 4 (T, Z, Y, X), got shape {shape}",
        )
    return shape[1:]


def _two(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2


# --- volumes: the planes entries -------------------------------------------------


def for_movie(params: Any, movie_shape: Sequence[int]) -> CaimanParams:
    """``params`` with the planes entry of every 2-value per-axis setting filled for a volume.

    For a (T, Z, Y, X) movie a setting given as (rows, cols) gets the planes
    value the docks start from: the schema's ``z_default`` fitted to ``Z``
    planes (``max_shifts``, ``strides``, ``overlaps``, ``gSig``), the whole
    depth for ``rf``, and the automatic rule for ``gSiz`` (2 * gSig + 1) and
    ``stride`` (2 * gSig) from the planes' gSig; ``is3D`` is set. A 2D movie,
    scalars and 3-value settings are left as given. Returns a new object.
    """
    params = _params(params)
    frame = _frame(movie_shape)
    if len(frame) == 2:
        return params
    Z = frame[0]
    new: dict[str, Any] = {}
    for name in ("max_shifts", "strides", "overlaps", "gSig"):
        v = params[name]
        if _two(v):
            z = z_default(name, Z)
            new[name] = (*v, z if name == "gSig" and not float(z).is_integer() else int(z))
    gz = float((new.get("gSig") or per_axis(params["gSig"], 3, "gSig", kind=float))[2])
    if _two(params["gSiz"]):
        new["gSiz"] = (*params["gSiz"], auto_gsiz(gz))
    if _two(params["rf"]):
        new["rf"] = (*params["rf"], int(Z))
        if params["stride"] is not None and _two(params["stride"]):
            new["stride"] = (*params["stride"], auto_stride(gz))
    if not params["is3D"]:
        new["is3D"] = True
    if not new:
        return params
    out = params.copy()
    explicit = set(out._explicit)
    out.update(new)
    out._explicit = explicit  # filled for the movie, not given by the user
    return out


# --- motion ---------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedMotion:
    """The motion step's settings, array order ((z,) y, x).

    ``caiman``: the values as given, CaImAn order (what results record).
    """

    max_shifts: tuple[int, ...]
    strides: tuple[int, ...]
    overlaps: tuple[int, ...]
    max_deviation_rigid: tuple[int, ...]
    niter_rig: int
    upsample_factor_grid: int
    pw_rigid: bool
    border_nan: Any
    shifts_opencv: bool
    gSig_filt: tuple[float, ...] | None
    caiman: dict[str, Any] = field(default_factory=dict)


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, np.integer, float, np.floating)
    ):
        raise InputError(name, f"expected an integer >= {minimum}, got {value!r}")
    if float(value) != int(value) or int(value) < minimum:
        raise InputError(name, f"expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _border(border_nan: Any) -> Any:
    if isinstance(border_nan, np.bool_):
        border_nan = bool(border_nan)
    if (
        border_nan is True
        or border_nan is False
        or (isinstance(border_nan, str) and border_nan == "copy")
    ):
        return border_nan
    raise InputError("border_nan", f"expected True, False or 'copy', got {border_nan!r}")


def _explicit_planes(value: Any, nd: int) -> bool:
    """Return True unless a 2-value sequence was given for a 3D movie (planes implied)."""
    return nd != 3 or not _two(value)


def resolve_motion(values: Mapping[str, Any], frame_shape: Sequence[int]) -> ResolvedMotion:
    """Check the motion parameters ``values`` against frames of ``frame_shape``; return them in array order.

    ``values`` in CaImAn names and order, ``frame_shape`` in array order.

    A planes entry implied by a 2-value setting (a caller that did not go
    through :func:`for_movie`) is clamped to fit rather than refused.
    """
    fs = tuple(int(s) for s in frame_shape)
    nd = len(fs)
    max_shifts = values["max_shifts"]
    ms = per_axis(max_shifts, nd, "max_shifts", kind=int, minimum=0)
    ms_arr = to_array_order(ms, nd)
    explicit = _explicit_planes(max_shifts, nd)
    for a, (m, n) in enumerate(zip(ms_arr, fs, strict=True)):
        if 2 * m >= n and (explicit or a != 0):
            raise InputError(
                "max_shifts",
                f"{ms} must be less than half the frame {to_caiman_order(fs, nd)} on every axis "
                "(rows, cols[, planes]); a larger shift would leave almost nothing to register",
            )
    # the search window must fit in the frame (circular correlation)
    max_shifts_arr = tuple(min(m, (n - 1) // 2) for m, n in zip(ms_arr, fs, strict=True))
    pw_rigid = bool(values["pw_rigid"])
    strides, overlaps = values["strides"], values["overlaps"]
    st = per_axis(strides, nd, "strides", kind=int, minimum=1)
    ov = per_axis(overlaps, nd, "overlaps", kind=int, minimum=0)
    st_arr, ov_arr = list(to_array_order(st, nd)), list(to_array_order(ov, nd))
    if pw_rigid:
        st_explicit = _explicit_planes(strides, nd) or _explicit_planes(overlaps, nd)
        for a, n in enumerate(fs):
            if st_arr[a] + ov_arr[a] > n:
                if nd == 3 and a == 0 and not st_explicit:
                    st_arr[a], ov_arr[a] = n, 0  # planes implied: one patch through all planes
                    continue
                name = "strides" if st_arr[a] > n else "overlaps"
                raise InputError(
                    name,
                    f"patch size strides + overlaps = {tuple(s + o for s, o in zip(st, ov, strict=True))} "
                    f"is larger than the frame {to_caiman_order(fs, nd)} (rows, cols[, planes])",
                )
    mdr = values["max_deviation_rigid"]
    if isinstance(mdr, (tuple, list)):
        md = to_array_order(per_axis(mdr, nd, "max_deviation_rigid", kind=int), nd)
    else:
        if isinstance(mdr, (bool, np.bool_)) or not isinstance(
            mdr, (int, np.integer, float, np.floating)
        ):
            raise InputError("max_deviation_rigid", f"expected a number, got {mdr!r}")
        if float(mdr) != int(mdr):
            raise InputError("max_deviation_rigid", f"expected an integer, got {mdr!r}")
        md = (int(mdr),) * nd
    if any(v < 0 for v in md):
        raise InputError("max_deviation_rigid", f"must be >= 0, got {mdr!r}")
    niter_rig = _int(values["niter_rig"], "niter_rig", 1)
    upsample = _int(values["upsample_factor_grid"], "upsample_factor_grid", 1)
    border_nan = _border(values["border_nan"])
    gSig_filt = values["gSig_filt"]
    gsig = None
    if gSig_filt is not None:
        g = per_axis(gSig_filt, nd, "gSig_filt", kind=float)
        if not all(v > 0 and math.isfinite(v) for v in g):
            raise InputError("gSig_filt", f"must be positive, got {gSig_filt!r}")
        gsig = to_array_order(g, nd)
    caiman = dict(
        max_shifts=tuple(ms),
        niter_rig=niter_rig,
        strides=tuple(st),
        overlaps=tuple(ov),
        max_deviation_rigid=mdr if isinstance(mdr, (tuple, list)) else int(mdr),
        upsample_factor_grid=upsample,
        pw_rigid=pw_rigid,
        border_nan=border_nan,
        shifts_opencv=bool(values["shifts_opencv"]),
        gSig_filt=None
        if gSig_filt is None
        else tuple(per_axis(gSig_filt, nd, "gSig_filt", kind=float)),
    )
    return ResolvedMotion(
        max_shifts=max_shifts_arr,
        strides=tuple(st_arr),
        overlaps=tuple(ov_arr),
        max_deviation_rigid=tuple(int(v) for v in md),
        niter_rig=niter_rig,
        upsample_factor_grid=upsample,
        pw_rigid=pw_rigid,
        border_nan=border_nan,
        shifts_opencv=bool(values["shifts_opencv"]),
        gSig_filt=gsig,
        caiman=caiman,
    )


# --- CNMF -----------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedCnmf:
    """The CNMF geometry, array order: neuron size and box, patches (None: whole field of view)."""

    K: int
    gSig: tuple[float, ...]
    gSiz: tuple[int, ...]
    rf: tuple[int, ...] | None
    stride: tuple[int, ...] | None
    nb: int
    p: int
    ssub: int
    tsub: int
    merge_thr: float
    method_init: str


def _resolve_cnmf(params: CaimanParams, frame: tuple[int, ...]) -> ResolvedCnmf:
    nd = len(frame)
    if params["backend"] == "caiman":  # CaImAn checks its own; the geometry as it will read it
        gSig = to_array_order(per_axis(params["gSig"], nd, "gSig", kind=float, minimum=0.5), nd)
        gSiz = (
            tuple(auto_gsiz(g) for g in gSig)
            if params["gSiz"] is None
            else to_array_order(per_axis(params["gSiz"], nd, "gSiz", kind=int, minimum=1), nd)
        )
        rf = (
            None
            if params["rf"] is None
            else to_array_order(per_axis(params["rf"], nd, "rf", kind=int), nd)
        )
        stride = (
            None
            if params["stride"] is None or rf is None
            else to_array_order(per_axis(params["stride"], nd, "stride", kind=int), nd)
        )
        geometry = None if rf is None else (rf, stride)
    else:
        st = settings_from_params(params, nd, frame)
        gSig, gSiz = st.gSig, st.gSiz
        geometry = patch_geometry(params, st, nd, frame)
    return ResolvedCnmf(
        K=int(params["K"]),
        gSig=tuple(float(g) for g in gSig),
        gSiz=tuple(int(g) for g in gSiz),
        rf=None if geometry is None else tuple(int(r) for r in geometry[0]),
        stride=None
        if geometry is None or geometry[1] is None
        else tuple(int(s) for s in geometry[1]),
        nb=int(params["nb"]),
        p=int(params["p"]),
        ssub=int(params["ssub"]),
        tsub=int(params["tsub"]),
        merge_thr=float(params["merge_thr"]),
        method_init=str(params["method_init"]),
    )


# --- CNMF (the native engine's settings) -----------------------------------------


def settings_from_params(params: CaimanParams, nd: int, dims: tuple[int, ...]) -> Any:
    """Read and check the native CNMF parameters (per-axis values -> array order).

    A :class:`~.cnmf.steps.Settings`.
    """
    from .cnmf.steps import Settings
    from .cnmf.temporal import TemporalSettings

    K = params["K"]
    if not isinstance(K, int) or K < 1:
        raise InputError(
            "K", f"expected an integer >= 1 components per patch/field of view, got {K!r}"
        )
    gSig = to_array_order(per_axis(params["gSig"], nd, "gSig", kind=float, minimum=0.5), nd)
    gSiz_p = params["gSiz"]
    if gSiz_p is None:
        gSiz = tuple(auto_gsiz(g) for g in gSig)
    else:
        gSiz = to_array_order(per_axis(gSiz_p, nd, "gSiz", kind=int, minimum=1), nd)
    for g, d in zip(gSig, dims, strict=True):
        if 2 * g >= d:
            caiman_dims = tuple(dims[-2:]) + tuple(dims[:-2])  # rows, cols[, planes], as gSig
            axes = "rows, cols, planes" if nd == 3 else "rows, cols"
            raise InputError(
                "gSig",
                f"neuron size gSig={params['gSig']!r} does not fit the frame "
                f"{caiman_dims} ({axes}): need 2 * gSig < frame size on every axis",
            )
    method = params["method_init"]
    if method != "greedy_roi":
        raise InputError(
            "method_init",
            f"the native engine supports 'greedy_roi' only, got {method!r} "
            "(use backend='caiman' for other methods)",
        )
    for name in ("ssub", "tsub"):
        v = params[name]
        if not isinstance(v, int) or v < 1:
            raise InputError(name, f"expected an integer >= 1, got {v!r}")
    p = params["p"]
    if p not in (0, 1, 2):
        raise InputError("p", f"expected 0, 1 or 2, got {p!r}")
    nb = params["nb"]
    if not isinstance(nb, int) or nb < 0:
        raise InputError("nb", f"expected an integer >= 0, got {nb!r}")
    ts = TemporalSettings(
        p=p,
        bas_nonneg=bool(params["bas_nonneg"]),
        s_min=params["s_min"],
        fudge_factor=float(params["fudge_factor"] or 1.0),
        lags=int(params["lags"]),
        noise_range=tuple(params["noise_range"]),
        noise_method=params["noise_method"],
        n_iter=max(1, int(params["ITER"])),
        fr=float(params["fr"]),
        decay_time=float(params["decay_time"]),
    )
    thr_method = params["thr_method"]
    if thr_method not in ("nrg", "max"):
        raise InputError("thr_method", f"expected 'nrg' or 'max', got {thr_method!r}")
    medw = params["medw"]
    if medw is not None:
        medw = to_array_order(per_axis(medw, nd, "medw", kind=int, minimum=1), nd)
    elif min(gSig[-2:]) < 3:
        # the default 3 x 3 median is as wide as the core of cells this small (2 x 2 pixels above
        # half maximum on the downsampled mouse movie, gSig 2): it flattens the peak, and maxthr of
        # the flattened maximum then keeps a halo (thunder fish: 6 cells accepted with it, 8 without)
        medw = (1,) * nd
    return Settings(
        medw=medw,
        thr_method=thr_method,
        noise_thr=float(params.get("footprint_noise_thr", 0.0) or 0.0),
        se_close=_structure(params["se"], nd, "se"),
        ss=_structure(params["ss"], nd, "ss"),
        K=K,
        gSig=gSig,
        gSiz=gSiz,
        nb=nb,
        nIter=int(params["nIter"]),
        ssub=params["ssub"],
        tsub=params["tsub"],
        maxthr=float(params["maxthr"]),
        nrgthr=float(params["nrgthr"]),
        extract_cc=bool(params["extract_cc"]),
        update_background=bool(params["update_background_components"]),
        merge_thr=float(params["merge_thr"]),
        do_merge=bool(params["do_merge"]),
        temporal=ts,
        noise_range=tuple(params["noise_range"]),
        noise_method=params["noise_method"],
        max_num_samples_fft=int(params["max_num_samples_fft"]),
    )


def _structure(v: Any, nd: int, name: str) -> np.ndarray | None:
    """Return a CaImAn structuring element (rows, cols[, planes]) -> boolean, array order."""
    if v is None:
        return None
    a = np.asarray(v)
    if a.ndim != nd or a.dtype.kind not in "biuf":
        raise InputError(
            name, f"expected a {nd}-d boolean/0-1 structuring element, got shape {a.shape}"
        )
    a = a.astype(bool)
    return np.moveaxis(a, -1, 0) if nd == 3 else a


def patch_geometry(params: CaimanParams, st: Any, nd: int, dims: tuple[int, ...]) -> Any:
    """Patch half-sizes and overlaps (array order) from ``rf``/``stride``, checked; None: no patches."""
    rf = params["rf"]
    if rf is None:
        return None
    rf_a = to_array_order(per_axis(rf, nd, "rf", kind=int, minimum=1), nd)
    stride = params["stride"]
    if stride is None:
        st_a = tuple(auto_stride(g) for g in st.gSig)
    else:
        st_a = to_array_order(per_axis(stride, nd, "stride", kind=int, minimum=0), nd)
    for r, g in zip(rf_a, st.gSig, strict=True):
        if r <= g:
            raise InputError(
                "rf",
                f"patch half-size rf={rf!r} must be larger than gSig={params['gSig']!r} "
                "on every axis (a patch must hold at least one neuron)",
            )
    for r, s, d in zip(rf_a, st_a, dims, strict=True):
        if s >= min(2 * r, d) and min(2 * r, d) < d:
            raise InputError(
                "stride",
                f"overlap stride={stride!r} must be smaller than the patch size 2*rf={rf!r}",
            )
    return rf_a, st_a


# --- evaluation -----------------------------------------------------------------


def thresholds(params: Any, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the keyword arguments of :func:`~.evaluation.apply_thresholds` from ``params``.

    The quality group and the plugin's shape and size limits.

    ``use_cnn`` None (the backend's default) is off here (the native engine has
    no CNN). The size limits of a file saved before they were parameters are
    read from its ``provenance["evaluation"]`` (the Evaluation dock kept them
    there) when ``params`` does not set them; 0 means no limit.
    """
    p = _params(params) if params is not None else CaimanParams.defaults()
    out = {k: p[k] for k in THRESHOLD_NAMES}
    out["use_cnn"] = bool(out["use_cnn"])
    old = provenance.get("evaluation") if isinstance(provenance, Mapping) else None
    for k in ("min_size", "max_size"):
        if out[k] is None and isinstance(old, Mapping) and old.get(k):
            out[k] = float(old[k])
        if not out[k]:
            out[k] = None
    return out


# --- everything -----------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """What :func:`resolve` returns.

    Attributes
    ----------
    params : CaimanParams
        The parameters for this movie (planes entries filled, CaImAn order).
    frame_shape : tuple of int
        Array order ((Z,) Y, X).
    motion, cnmf : ResolvedMotion, ResolvedCnmf or None
        Array-order settings of the steps asked for.
    quality : dict
        The evaluation thresholds (:func:`thresholds`).
    """

    params: CaimanParams
    frame_shape: tuple[int, ...]
    motion: ResolvedMotion | None
    cnmf: ResolvedCnmf | None
    quality: dict[str, Any]


def resolve(
    params: Any, movie_shape: Sequence[int], steps: Sequence[str] = ("motion", "cnmf", "evaluate")
) -> Resolved:
    """Return the settings of ``steps`` for a movie of ``movie_shape`` ((T, Y, X) or (T, Z, Y, X)).

    ``params`` is a :class:`CaimanParams` or a flat/grouped dict of CaImAn
    names (checked as it is read). Nothing is computed; the same call checks a
    batch item before it is queued.

    Raises
    ------
    InputError
        A value that does not fit the movie (``max_shifts`` of half the frame,
        patches larger than the frame, ``gSig`` too large, ``rf`` not larger than
        ``gSig`` ...), named by its parameter.
    """
    p = for_movie(params, movie_shape)
    frame = _frame(movie_shape)
    motion = resolve_motion(p.group("motion"), frame) if "motion" in steps else None
    cnmf = _resolve_cnmf(p, frame) if "cnmf" in steps else None
    return Resolved(params=p, frame_shape=frame, motion=motion, cnmf=cnmf, quality=thresholds(p))
