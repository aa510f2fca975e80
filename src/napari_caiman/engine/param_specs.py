"""One declarative table of the parameters users set: name, group, default,
type, valid range, per-axis meaning, 3D default and what it does.

It is the single source of the value checks (:data:`~.params.VALIDATORS` is
built from it), of ``napari-caiman params [NAME]`` and of the generated page
``docs/parameters.md`` (``napari-caiman params --markdown``). Groups and
defaults come from :data:`~.params.ALL_GROUPS` (CaImAn's), not repeated here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Per-axis values are in CaImAn's order.
AXES = "per axis (rows, cols[, planes]) = (y, x[, z]); one value for all axes; 2 values for a volume: the planes get the last"


@dataclass(frozen=True)
class ParamSpec:
    """One parameter.

    ``kind`` is ``"number"``, ``"int"``, ``"bool"``, ``"choice"``, ``"size"`` (bytes or a text like "4GB") or
    ``"text"`` (not checked); ``minimum``/``maximum`` bound numbers (and each
    per-axis value); ``open_min`` excludes the minimum; ``choices`` lists the
    allowed values of a choice; ``per_axis`` marks one value per spatial axis;
    ``z_default`` the planes value the widgets start from for a volume.
    """

    name: str
    kind: str
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    open_min: bool = False
    choices: tuple = ()
    per_axis: bool = False
    none_ok: bool = False  # None allowed (CaImAn's "automatic / off")
    z_default: Any = None  # the planes value the widgets start from for a volume
    checked: bool = True  # validated by CaimanParams (False: documented only)

    @property
    def groups(self) -> tuple[str, ...]:
        from .caiman_defaults import GROUPS_OF

        return GROUPS_OF[self.name]

    @property
    def group(self) -> str:
        return self.groups[0]

    @property
    def default(self) -> Any:
        from .caiman_defaults import ALL_GROUPS

        return ALL_GROUPS[self.group][self.name]

    @property
    def default_3d(self) -> Any:
        """Default for a volume (rows, cols, planes), or None when as in 2D."""
        d = self.default
        if self.z_default is None or not isinstance(d, tuple):
            return None
        return tuple(d[:2]) + (self.z_default,)

    def range_text(self) -> str:
        """The valid values in words (what the check enforces)."""
        if self.kind == "bool":
            text = "True or False"
        elif self.kind == "size":
            text = "bytes, or a size such as '4GB' or '512MiB'"
        elif self.kind == "choice":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind in ("number", "int"):
            what = "integer" if self.kind == "int" else "number"
            if self.minimum is not None and self.maximum is not None:
                text = f"{what} in [{_g(self.minimum)}, {_g(self.maximum)}]"
            elif self.minimum is not None:
                text = f"{what} {'>' if self.open_min else '>='} {_g(self.minimum)}"
            else:
                text = what
            if self.per_axis:
                text = f"one {text} per axis"
        else:
            text = "see the description"
        if self.none_ok:
            text += "; None = automatic/off"
        return text

    def validator(self) -> Callable[[str, Any], None] | None:
        """The check :class:`~.params.CaimanParams` runs on a new value (None: unchecked)."""
        from . import param_checks as P

        if not self.checked:
            return None
        if self.kind == "bool":
            return P._check_bool
        if self.kind == "size":
            return P._check_memory_limit
        if self.kind == "choice":
            return lambda n, v: P._check_choice(n, v, self.choices)
        if self.per_axis:
            return lambda n, v: P._check_per_axis(n, v, self.minimum, integer=self.kind == "int",
                                                  allow_none=self.none_ok)
        if self.kind == "int":
            return lambda n, v: P._check_int(n, v, int(self.minimum))
        if self.maximum is not None:
            return lambda n, v: P._check_range(n, v, self.minimum, self.maximum)
        return lambda n, v: P._check_positive_number(n, v, allow_zero=not self.open_min)


def _g(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:g}"


def _p(name: str, kind: str, doc: str, **kw: Any) -> ParamSpec:
    return ParamSpec(name, kind, doc, **kw)


#: The table. Order: as the pipeline uses them (data, motion, CNMF, evaluation).
SPECS: tuple[ParamSpec, ...] = (
    # data
    _p("fr", "number", "Imaging rate, frames (volumes) per second, Hz. Sets the default AR time constants, "
       "the evaluation's event window (fr * decay_time frames), the NWB rate and the CSV time column. "
       "Read from the TIFF metadata (ImageJ, OME, ScanImage) when not given.", minimum=0, open_min=True),
    _p("decay_time", "number", "Decay time of a calcium transient, s (GCaMP6f ~0.4, GCaMP6s ~1).",
       minimum=0, open_min=True),
    # motion
    _p("max_shifts", "int", "Largest rigid shift allowed, pixels " + AXES + "; at most half the frame.",
       minimum=0, per_axis=True, z_default=2),
    _p("pw_rigid", "bool", "Piecewise-rigid correction on a grid of overlapping patches after the rigid pass."),
    _p("strides", "int", "pw-rigid: patch spacing, pixels " + AXES + " (patch size = strides + overlaps).",
       minimum=1, per_axis=True, z_default=4),
    _p("overlaps", "int", "pw-rigid: overlap of neighbouring patches, pixels " + AXES + ".",
       minimum=0, per_axis=True, z_default=2),
    _p("max_deviation_rigid", "number", "pw-rigid: largest deviation of a patch from the rigid shift, pixels "
       + AXES + ".", minimum=0, per_axis=True),
    _p("niter_rig", "int", "Iterations of the rigid template refinement.", minimum=1),
    _p("upsample_factor_grid", "int", "pw-rigid: upsampling of the patch grid when interpolating shifts.",
       minimum=1),
    _p("border_nan", "choice", "How to fill pixels shifted in from outside the frame: True NaN, False 0, "
       "'copy' the nearest edge value. Before CNMF a fixed border as wide as the largest shift is set to 0 "
       "(CaImAn's border_to_0; none with 'copy').", choices=(True, False, "copy")),
    _p("shifts_opencv", "bool", "Apply shifts with OpenCV (fast, bicubic) instead of the FFT."),
    _p("gSig_filt", "number", "High-pass filter size (pixels) used only for estimating shifts (1-photon data); "
       "None = off. " + AXES + ".", minimum=0, per_axis=True, none_ok=True),
    _p("is3D", "bool", "Volume movie (set from the movie's shape)."),
    # CNMF
    _p("K", "int", "Components per patch (or in the whole field of view without patches).", minimum=1),
    _p("gSig", "number", "Expected neuron half-size (Gaussian SD), pixels " + AXES + ".",
       minimum=0.5, per_axis=True, z_default=2),
    _p("gSiz", "int", "Neuron bounding box, pixels " + AXES + "; None = 2 * gSig + 1.",
       minimum=1, per_axis=True, none_ok=True),
    _p("nb", "int", "Number of background components (0: none).", minimum=0),
    _p("p", "choice", "Order of the autoregressive model of the traces (0 = no deconvolution).",
       choices=(0, 1, 2)),
    _p("ssub", "int", "Spatial downsampling during initialization.", minimum=1),
    _p("tsub", "int", "Temporal downsampling during initialization.", minimum=1),
    _p("rf", "text", "Patch half-size, pixels per axis (rows, cols[, planes]); None = no patches (whole field "
       "of view).", checked=False),
    _p("stride", "text", "Overlap between neighbouring patches, pixels; None = automatic.", checked=False),
    _p("method_init", "text", "Initialization: 'greedy_roi' (native); the caiman backend also offers "
       "'corr_pnr' (CNMF-E), 'sparse_nmf', 'graph_nmf'.", checked=False),
    _p("nIter", "text", "Iterations of the greedy initialization's rank-1 refinement (integer).", checked=False),
    _p("merge_thr", "number", "Components whose traces correlate above this are merged.", minimum=-1, maximum=1),
    # evaluation
    _p("min_SNR", "number", "Accept a component whose trace SNR (event exceptionality) is at least this.",
       minimum=0),
    _p("SNR_lowest", "text", "Reject a component whose SNR is below this, whatever the other tests (number).",
       checked=False),
    _p("rval_thr", "number", "Accept a component whose spatial correlation with the movie (r-value) is at "
       "least this.", minimum=-1, maximum=1),
    _p("rval_lowest", "text", "Reject a component whose r-value is below this (number in [-1, 1]).",
       checked=False),
    _p("use_cnn", "text", "Use CaImAn's CNN classifier (True/False). None (default): the backend's default, "
       "off on the native backend (it has no CNN), on with backend='caiman' when its model files exist.",
       checked=False),
    # napari-caiman: resources
    _p("memory_limit", "size", "Memory budget of a run: chunk sizes of every step come from it, and whatever "
       "is frames x pixels and does not fit goes to disk; a run that cannot fit is refused before it starts. "
       "None = half the RAM available when the run starts.", none_ok=True),
    # napari-caiman: footprint shape (evaluation) and footprint cleaning (CNMF)
    _p("min_solidity", "number", "Reject a footprint (cut at 20 % of its max) whose area / convex-hull area is "
       "below this, whatever its SNR (0 = off).", minimum=0, maximum=1),
    _p("max_pieces", "number", "Reject a footprint in more pieces than this (4-connected, each holding >= 10 % "
       "of its pixels; 0 = off).", minimum=0),
    _p("min_area_ratio", "number", "Reject a footprint smaller than this many discs of radius 2 gSig "
       "(specks; 0 = off).", minimum=0),
    _p("max_area_ratio", "number", "Reject a footprint larger than this many discs of radius 2 gSig "
       "(sprawling; 0 = off).", minimum=0),
    _p("max_duplicate", "number", "Reject a component whose footprint lies in a stronger accepted component's "
       "and whose trace follows it: min(fraction of its footprint inside, trace correlation) above this "
       "(1 = off).", minimum=0, maximum=1),
    _p("footprint_noise_thr", "number", "CNMF: footprint pixels below this many standard errors of their "
       "regression are dropped (no ragged halos; 0 = off).", minimum=0),
    # napari-caiman: anatomical seeding (CNMF)
    _p("seed_anatomy", "choice", "Seed CNMF with somata found in the mean image: True adds them to the "
       "activity-based init, 'only' uses them alone; silent cells keep a flat trace.",
       choices=(False, True, "only")),
    _p("accept_anatomy", "bool", "Accept anatomy-seeded components on their shape alone (they may be silent)."),
    _p("anatomy_thr", "number", "Soma detector threshold (higher: fewer, clearer somata).", minimum=0),
    _p("anatomy_detector", "choice", "Soma detector: 'builtin' (scikit-image) or 'cellpose' (when installed).",
       choices=("builtin", "cellpose")),
    # napari-caiman: classifier learnt from curation (evaluation)
    _p("classifier", "text", "A classifier model file (`napari-caiman train-classifier`) applied to the "
       "undecided components instead of the SNR / r-value test; None = off.", checked=False),
    _p("min_classifier_prob", "number", "Accept when the classifier's probability is at least this.",
       minimum=0, maximum=1),
    # napari-caiman
    _p("backend", "choice", "Who computes: 'native' (this package) or 'caiman' (a CaImAn installation, "
       "docs/caiman.md).", choices=("native", "caiman")),
)

SPEC_BY_NAME: dict[str, ParamSpec] = {s.name: s for s in SPECS}


def validators() -> dict[str, Callable[[str, Any], None]]:
    """``{name: check}`` for every checked parameter (used as ``params.VALIDATORS``)."""
    out = {}
    for s in SPECS:
        v = s.validator()
        if v is not None:
            out[s.name] = v
    return out


def describe(spec: ParamSpec) -> str:
    """Terminal text of one parameter (``napari-caiman params NAME``)."""
    groups = ", ".join(spec.groups)
    lines = [f"{spec.name}  [{groups}]",
             f"  default: {spec.default!r}" + (f"  (volumes: {spec.default_3d!r})" if spec.default_3d else ""),
             f"  valid:   {spec.range_text()}",
             f"  {spec.doc}"]
    return "\n".join(lines)


def markdown() -> str:
    """The parameter reference page (``docs/parameters.md``)."""
    out = ["# Parameter reference", "",
           "Generated by `napari-caiman params --markdown` from `napari_caiman/engine/param_specs.py` "
           "(the same table checks the values); do not edit by hand.", "",
           "Names, groups and defaults are CaImAn's (1.12). Per-axis values are in CaImAn's order "
           "(rows, cols[, planes]) = (y, x[, z]); one value means the same for every axis; a 2-value "
           "setting given for a volume gets its last value for the planes. Any other CaImAn parameter "
           "name is accepted too (`--set NAME=VALUE`, a params JSON file or the kwargs box); unknown "
           "names are rejected with the closest known ones.", "",
           "| name | group | default | volumes | valid values | meaning |", "|---|---|---|---|---|---|"]
    for s in SPECS:
        d3 = "" if s.default_3d is None else f"`{s.default_3d!r}`"
        doc = s.doc.replace("|", "\\|")
        out.append(f"| `{s.name}` | {', '.join(s.groups)} | `{s.default!r}` | {d3} | {s.range_text()} | {doc} |")
    return "\n".join(out) + "\n"
