"""The typed, declarative parameter schema: one frozen dataclass per CaImAn group.

Every parameter users set is a field of one group class (:class:`Data`,
:class:`Motion`, :class:`Init`, :class:`Spatial`, :class:`Temporal`,
:class:`Merging`, :class:`Patch`, :class:`Quality` and the plugin's own
:class:`Plugin`). Its :class:`Spec` (``field.metadata["spec"]``) holds the
type, the bounds, whether it has one value per axis (CaImAn's order rows,
cols[, planes]), the planes value for a volume, the "automatic" rule of a
``None`` value, and the label, tooltip and range of its form field.

The defaults are CaImAn's table (:mod:`.caiman_defaults`), read here, never
repeated. This module is the one source of the value checks
(:class:`~.params.CaimanParams` runs :meth:`Spec.check`), of
``napari-caiman params`` and ``docs/parameters.md``, and of the dock forms'
tooltips and ranges; :func:`~.resolve.resolve` turns a parameter set and a
movie shape into the array-order settings of the steps.

Examples
--------
>>> Motion().max_shifts
(6, 6)
>>> SPEC_BY_NAME["gSig"].default_3d
(5, 5, 2)
>>> Motion.from_params({"max_shifts": (4, 4)}).max_shifts
(4, 4)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from .caiman_defaults import ALL_GROUPS
from .schema_spec import AXES, AXIS_NAMES, Spec

__all__ = [
    "Spec",
    "Data",
    "Motion",
    "Init",
    "Spatial",
    "Temporal",
    "Merging",
    "Patch",
    "Quality",
    "Plugin",
    "GROUPS",
    "SPECS",
    "SPEC_BY_NAME",
    "spec",
    "tooltip",
    "form_range",
    "describe",
    "markdown",
    "AXES",
    "AXIS_NAMES",
]


def _f(kind: str, doc: str, **kw: Any) -> Any:
    """Return a field of a group class; :func:`_group` turns it into a default + :class:`Spec`."""
    return dataclasses.field(metadata={"kind": kind, "doc": doc, **kw})


def _group(name: str):
    """Class decorator: a frozen dataclass whose fields take CaImAn's defaults of group ``name``."""

    def wrap(cls: type) -> type:
        for fname in cls.__annotations__:
            if fname == "GROUP":
                continue
            meta = dict(cls.__dict__[fname].metadata)
            s = Spec(name=fname, group=name, **meta)
            default = ALL_GROUPS[name][fname]
            setattr(cls, fname, dataclasses.field(default=default, metadata={"spec": s}))
        setattr(cls, "GROUP", name)  # noqa: B010 (a class attribute the dataclass must not see)
        return dataclass(frozen=True)(cls)

    return wrap


class _Group:
    """What every group class shares: build from a parameter set, list the specs."""

    GROUP: ClassVar[str] = ""

    @classmethod
    def specs(cls) -> tuple[Spec, ...]:
        return tuple(f.metadata["spec"] for f in dataclasses.fields(cast(Any, cls)))

    @classmethod
    def from_params(cls, params: Any) -> Any:
        """Return the group's values from a :class:`~.params.CaimanParams` or a flat dict, each checked.

        Names not given keep CaImAn's default.
        """
        values = {}
        for s in cls.specs():
            if isinstance(params, Mapping) and s.name not in params:
                continue
            v = params[s.name]
            s.check(v)
            values[s.name] = v
        return cls(**values)


@_group("data")
class Data(_Group):
    """The movie's rates (CaImAn's ``data`` group)."""

    fr: float = _f(
        "number",
        "Imaging rate, frames (volumes) per second, Hz. Sets the default AR time constants, "
        "the evaluation's event window (fr * decay_time frames), the NWB rate and the CSV time column. "
        "Read from the TIFF metadata (ImageJ, OME, ScanImage) when not given.",
        minimum=0,
        open_min=True,
        form=(0.01, 10_000, 1.0),
        tip="Frame rate of the movie, Hz",
    )
    decay_time: float = _f(
        "number",
        "Decay time of a calcium transient, s (GCaMP6f ~0.4, GCaMP6s ~1).",
        minimum=0,
        open_min=True,
        form=(0.001, 100, 0.05),
        tip="Decay time of a calcium transient, seconds",
    )


@_group("motion")
class Motion(_Group):
    """Motion correction (CaImAn's ``motion`` group)."""

    max_shifts: tuple = _f(
        "int",
        "Largest rigid shift allowed, pixels " + AXES + "; at most half the frame.",
        minimum=0,
        per_axis=True,
        z_default=2,
        form=(0, 512, None),
        tip="Largest rigid shift allowed, pixels per axis",
    )
    pw_rigid: bool = _f(
        "bool", "Piecewise-rigid correction on a grid of overlapping patches after the rigid pass."
    )
    strides: tuple = _f(
        "int",
        "pw-rigid: patch spacing, pixels " + AXES + " (patch size = strides + overlaps).",
        minimum=1,
        per_axis=True,
        z_default=4,
        form=(1, 4096, None),
        tip="pw-rigid: patch spacing, pixels per axis (patch size = strides + overlaps)",
    )
    overlaps: tuple = _f(
        "int",
        "pw-rigid: overlap of neighbouring patches, pixels " + AXES + ".",
        minimum=0,
        per_axis=True,
        z_default=2,
        form=(0, 4096, None),
        tip="pw-rigid: overlap between neighbouring patches, pixels per axis",
    )
    max_deviation_rigid: int = _f(
        "number",
        "pw-rigid: largest deviation of a patch from the rigid shift, pixels " + AXES + ".",
        minimum=0,
        per_axis=True,
        form=(0, 100, None),
        tip="pw-rigid: largest deviation of a patch from the rigid shift, pixels",
    )
    niter_rig: int = _f(
        "int", "Iterations of the rigid template refinement.", minimum=1, form=(1, 20, None)
    )
    upsample_factor_grid: int = _f(
        "int",
        "pw-rigid: upsampling of the patch grid when interpolating shifts.",
        minimum=1,
        form=(1, 50, None),
    )
    border_nan: Any = _f(
        "choice",
        "How to fill pixels shifted in from outside the frame: True NaN, False 0, "
        "'copy' the nearest edge value. Before CNMF a fixed border as wide as the largest shift is "
        "set to 0 (CaImAn's border_to_0; none with 'copy').",
        choices=(True, False, "copy"),
        tip="How to fill pixels shifted in from outside the frame",
    )
    shifts_opencv: bool = _f("bool", "Apply shifts with OpenCV (fast, bicubic) instead of the FFT.")
    gSig_filt: Any = _f(
        "number",
        "High-pass filter size (pixels) used only for estimating shifts (1-photon data); "
        "None = off. " + AXES + ".",
        minimum=0,
        per_axis=True,
        none_ok=True,
        auto="off",
        z_default=0,
        form=(0, 100, None),
        tip="High-pass filter size (pixels) used only for estimating shifts; 0 = off",
    )
    is3D: bool = _f("bool", "Volume movie (set from the movie's shape).")


@_group("init")
class Init(_Group):
    """Initialization (CaImAn's ``init`` group)."""

    K: int = _f(
        "int",
        "Components per patch (or in the whole field of view without patches).",
        minimum=1,
        form=(1, 100_000, None),
        tip="Number of components per patch (or in the whole field of view without patches)",
    )
    gSig: tuple = _f(
        "number",
        "Expected neuron half-size (Gaussian SD), pixels " + AXES + ".",
        minimum=0.5,
        per_axis=True,
        z_default=2,
        form=(0.5, 200, 0.5),
        tip="Expected neuron half-size, pixels",
    )
    gSiz: Any = _f(
        "int",
        "Neuron bounding box, pixels " + AXES + "; None = 2 * gSig + 1.",
        minimum=1,
        per_axis=True,
        none_ok=True,
        z_default=0,
        auto="2 * gSig + 1",
        form=(0, 401, None),
        tip="Neuron bounding box, pixels (0 = 2 * gSig + 1)",
    )
    nb: int = _f(
        "int",
        "Number of background components (0: none).",
        minimum=0,
        form=(0, 20, None),
        tip="Number of background components",
    )
    ssub: int = _f(
        "int", "Spatial downsampling during initialization.", minimum=1, form=(1, 16, None)
    )
    tsub: int = _f(
        "int", "Temporal downsampling during initialization.", minimum=1, form=(1, 64, None)
    )
    method_init: str = _f(
        "text",
        "Initialization: 'greedy_roi' (native); the caiman backend also offers "
        "'corr_pnr' (CNMF-E), 'sparse_nmf', 'graph_nmf'.",
        checked=False,
        tip="Initialization method (the caiman backend offers all of CaImAn's)",
    )
    nIter: int = _f(
        "text",
        "Iterations of the greedy initialization's rank-1 refinement (integer).",
        checked=False,
    )


@_group("spatial")
class Spatial(_Group):
    """Spatial update (CaImAn's ``spatial`` group): how a footprint is cut."""

    maxthr: float = _f(
        "text",
        "Footprint pixels below this fraction of the footprint's maximum are dropped "
        "(number in [0, 1]).",
        checked=False,
    )
    nrgthr: float = _f(
        "text",
        "A footprint keeps the brightest pixels holding this fraction of its energy "
        "(thr_method 'nrg'; number in [0, 1]).",
        checked=False,
    )


@_group("temporal")
class Temporal(_Group):
    """Temporal update and deconvolution (CaImAn's ``temporal`` group)."""

    p: int = _f(
        "choice",
        "Order of the autoregressive model of the traces (0 = no deconvolution).",
        choices=(0, 1, 2),
    )


@_group("merging")
class Merging(_Group):
    """Merging (CaImAn's ``merging`` group)."""

    merge_thr: float = _f(
        "number",
        "Components whose traces correlate above this are merged.",
        minimum=-1,
        maximum=1,
        form=(-1.0, 1.0, 0.05),
    )


@_group("patch")
class Patch(_Group):
    """Patches (CaImAn's ``patch`` group). The planes axis is never split unless given."""

    rf: Any = _f(
        "text",
        "Patch half-size, pixels per axis (rows, cols[, planes]); None = no patches (whole field "
        "of view); 2 values for a volume: the patches span all planes.",
        checked=False,
        per_axis=True,
        none_ok=True,
        z_default=0,
        auto="no patches",
        form=(0, 4096, None),
        tip="Patch half-size, pixels (0 = whole field of view along that axis; all 0 = no patches)",
    )
    stride: Any = _f(
        "text",
        "Overlap between neighbouring patches, pixels; None = automatic (2 * gSig).",
        checked=False,
        per_axis=True,
        none_ok=True,
        z_default=0,
        auto="2 * gSig",
        form=(0, 4096, None),
        tip="Overlap between neighbouring patches, pixels (0 = automatic)",
    )


@_group("quality")
class Quality(_Group):
    """Evaluation thresholds (CaImAn's ``quality`` group)."""

    min_SNR: float = _f(
        "number",
        "Accept a component whose trace SNR (event exceptionality) is at least this.",
        minimum=0,
        form=(0.0, 20.0, 0.05),
        tip="Accept when the trace's SNR is at least this (or r >= rval_thr)",
    )
    SNR_lowest: float = _f(
        "text",
        "Reject a component whose SNR is below this, whatever the other tests (number).",
        checked=False,
        form=(0.0, 5.0, 0.05),
    )
    rval_thr: float = _f(
        "number",
        "Accept a component whose spatial correlation with the movie (r-value) is at least this.",
        minimum=-1,
        maximum=1,
        form=(-1.0, 1.0, 0.01),
        tip="Accept when the spatial r-value is at least this (or SNR >= min_SNR)",
    )
    rval_lowest: float = _f(
        "text",
        "Reject a component whose r-value is below this (number in [-1, 1]).",
        checked=False,
        form=(-1.0, 1.0, 0.01),
    )
    use_cnn: Any = _f(
        "text",
        "Use CaImAn's CNN classifier (True/False). None (default): the backend's default, "
        "off on the native backend (it has no CNN), on with backend='caiman' when its model files "
        "exist.",
        checked=False,
    )
    min_cnn_thr: float = _f(
        "text",
        "With the CNN: accept a component whose CNN probability is at least this.",
        checked=False,
    )
    cnn_lowest: float = _f(
        "text",
        "With the CNN: reject a component whose CNN probability is below this.",
        checked=False,
    )


@_group("napari_caiman")
class Plugin(_Group):
    """The package's own parameters (not CaImAn names)."""

    backend: str = _f(
        "choice",
        "Who computes: 'native' (this package) or 'caiman' (CaImAn, docs/caiman.md).",
        choices=("native", "caiman"),
    )
    memory_limit: Any = _f(
        "size",
        "Memory budget of a run: every step's chunks follow it, frames x pixels that do not fit "
        "go to disk, a run that cannot fit is refused before it starts.",
        none_ok=True,
        auto="half the RAM available when the run starts",
    )
    min_solidity: float = _f(
        "number",
        "Reject a footprint (cut at 20 % of its max) whose area / convex-hull area is below this.",
        minimum=0,
        maximum=1,
    )
    max_pieces: float = _f(
        "number",
        "Reject a footprint in more pieces than this (4-connected, >= 10 % of its pixels each).",
        minimum=0,
    )
    min_area_ratio: float = _f(
        "number",
        "Reject a footprint smaller than this many discs of radius 2 gSig (specks; 0 = off).",
        minimum=0,
    )
    max_area_ratio: float = _f(
        "number",
        "Reject a footprint larger than this many discs of radius 2 gSig (sprawling; 0 = off).",
        minimum=0,
    )
    max_elongation: Any = _f(
        "number",
        "Reject a footprint longer than this ratio of its principal axes (in gSig; streaks).",
        minimum=1,
        none_ok=True,
        auto="off",
    )
    joint_SNR_frac: Any = _f(
        "number",
        "Also accept a component whose SNR reaches this x min_SNR while its r-value reaches "
        "joint_rval_frac x rval_thr (both tests passing at looser levels); None = off.",
        minimum=0,
        maximum=1,
        none_ok=True,
        auto="off",
    )
    joint_rval_frac: Any = _f(
        "number",
        "The r-value fraction of the joint test (x rval_thr, with joint_SNR_frac); None = off.",
        minimum=0,
        maximum=1,
        none_ok=True,
        auto="off",
    )
    high_rval_thr: Any = _f(
        "number",
        "A component whose r-value reaches this is exempt from SNR_lowest (a footprint the "
        "movie shows clearly, with faint transients; its SNR must still be > 0); None = off.",
        minimum=-1,
        maximum=1,
        none_ok=True,
        auto="off",
    )
    small_floor_px: Any = _f(
        "number",
        "Where the area floor (min_area_ratio discs of radius 2 gSig) is under this many pixels, "
        "one pixel short of it passes (somata at the resolution limit); None or 0 = off.",
        minimum=0,
        none_ok=True,
        auto="off",
    )
    min_size: Any = _f(
        "number",
        "Reject a footprint of fewer pixels (above 20 % of its max); None = no limit.",
        minimum=0,
        none_ok=True,
        auto="no limit",
        form=(0, 1_000_000, None),
    )
    max_size: Any = _f(
        "number",
        "Reject a component whose footprint has more pixels than this; None = no limit "
        "(the Evaluation dock's max_size).",
        minimum=0,
        none_ok=True,
        auto="no limit",
        form=(0, 10_000_000, None),
    )
    max_duplicate: float = _f(
        "number",
        "Reject a component whose footprint lies in a stronger accepted "
        "component's and whose trace follows it: min(fraction of its footprint inside, trace "
        "correlation) above this (1 = off).",
        minimum=0,
        maximum=1,
    )
    footprint_noise_thr: float = _f(
        "number",
        "CNMF: footprint pixels below this many standard errors of their "
        "regression are dropped (no ragged halos; 0 = off).",
        minimum=0,
    )
    patch_K_density: float = _f(
        "number",
        "CNMF patches: at least this many components per soma disc (radius 2 gSig) of a patch, "
        "where that is more than K (small cells); 0 = K only.",
        minimum=0,
    )
    seed_anatomy: Any = _f(
        "choice",
        "Seed CNMF with somata found in the mean image: True adds them to the "
        "activity-based init, 'only' uses them alone; silent cells keep a flat trace.",
        choices=(False, True, "only"),
    )
    accept_anatomy: bool = _f(
        "bool", "Accept anatomy-seeded components on their shape alone (they may be silent)."
    )
    anatomy_thr: float = _f(
        "number", "Soma detector threshold (higher: fewer, clearer somata).", minimum=0
    )
    anatomy_detector: str = _f(
        "choice",
        "Soma detector: 'builtin' (scikit-image) or 'cellpose' (when installed).",
        choices=("builtin", "cellpose"),
    )
    classifier: Any = _f(
        "text",
        "A classifier model file (`napari-caiman train-classifier`) applied to the "
        "undecided components instead of the SNR / r-value test; None = off.",
        checked=False,
    )
    min_classifier_prob: float = _f(
        "number", "Accept when the classifier's probability is at least this.", minimum=0, maximum=1
    )


#: The group classes, in the order the pipeline uses them.
GROUPS: tuple[type[_Group], ...] = (
    Data,
    Motion,
    Init,
    Spatial,
    Temporal,
    Merging,
    Patch,
    Quality,
    Plugin,
)
#: Every described parameter, group by group.
SPECS: tuple[Spec, ...] = tuple(s for g in GROUPS for s in g.specs())
SPEC_BY_NAME: dict[str, Spec] = {s.name: s for s in SPECS}


def spec(name: str) -> Spec:
    """Return the :class:`Spec` of ``name`` (KeyError for a name the schema does not describe)."""
    return SPEC_BY_NAME[name]


def tooltip(name: str) -> str:
    """Return the form tooltip of ``name``."""
    return SPEC_BY_NAME[name].tooltip


def form_range(name: str) -> tuple:
    """(minimum, maximum, step) of the form field of ``name`` (step None: integers)."""
    s = SPEC_BY_NAME[name]
    if s.form is None:
        raise KeyError(f"{name} has no form range")
    return s.form


def describe(s: Spec) -> str:
    """Terminal text of one parameter (``napari-caiman params NAME``)."""
    lines = [
        f"{s.name}  [{', '.join(s.groups)}]",
        f"  default: {s.default!r}" + (f"  (volumes: {s.default_3d!r})" if s.default_3d else ""),
        f"  valid:   {s.range_text()}",
        f"  {s.doc}",
    ]
    return "\n".join(lines)


def markdown() -> str:
    """Return the parameter reference page (``docs/parameters.md``)."""
    out = [
        "# Parameter reference",
        "",
        "Generated by `napari-caiman params --markdown` from `napari_caiman/engine/schema.py` "
        "(the same schema checks the values, builds the dock forms and resolves the settings for a "
        "movie); do not edit by hand.",
        "",
        "Names, groups and defaults are CaImAn's (1.12). Per-axis values are in CaImAn's order "
        "(rows, cols[, planes]) = (y, x[, z]); one value means the same for every axis; a 2-value "
        "setting given for a volume gets the planes value of the 'volumes' column (fitted to a movie of "
        "few planes), as the docks do. Any other CaImAn parameter name is accepted too (`--set NAME=VALUE`, "
        "a params JSON file or the kwargs box); unknown names are rejected with the closest known ones.",
        "",
        "| name | group | default | volumes | valid values | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for s in SPECS:
        d3 = "" if s.default_3d is None else f"`{s.default_3d!r}`"
        doc = s.doc.replace("|", "\\|")
        out.append(
            f"| `{s.name}` | {', '.join(s.groups)} | `{s.default!r}` | {d3} | {s.range_text()} | {doc} |"
        )
    return "\n".join(out) + "\n"
