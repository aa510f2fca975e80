"""The CNMF form's values and their mapping to engine parameters.

One place holds the defaults, the per-axis layout and the translation to a
:class:`~napari_caiman.engine.params.CaimanParams`, so "reset to defaults" and
"run headless with the same settings" are one line each. No Qt here.

Per-axis values are kept in CaImAn's order (rows, cols, planes) = (y, x, z),
always with three entries; :meth:`CNMFSettings.to_dict` drops the planes entry
for a 2D movie. ``0`` in a per-axis field means "automatic": ``gSiz`` =
``2 * gSig + 1``, ``rf`` = the whole field of view along that axis (all
zeros: no patches, CaImAn's ``rf=None``), ``stride`` = the engine's default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ...engine.params import CaimanParams, parse_kwargs
from ...engine.resolve import auto_gsiz, auto_stride
from ...engine.schema import SPEC_BY_NAME
from ._settings import FormSettings, step_names, three_axes

#: Per-axis fields of the form.
PER_AXIS = ("gSig", "gSiz", "rf", "stride")

#: Patch-only fields (disabled in the form while rf is all zeros).
PATCH_ONLY = ("stride",)

#: Initialization methods the native engine implements.
METHODS_INIT = ("greedy_roi",)

#: Initialization methods of CaImAn (backend "caiman").
CAIMAN_METHODS_INIT = ("greedy_roi", "corr_pnr", "sparse_nmf", "local_nmf", "graph_nmf", "pca_ica")

#: Parameters the CNMF step uses (what it takes from a preset).
STEP_NAMES = step_names("data", "patch", "preprocess", "init", "spatial", "temporal", "merging")


def methods_init(backend: str) -> tuple[str, ...]:
    """Return the initialization methods ``backend`` offers."""
    return CAIMAN_METHODS_INIT if backend == "caiman" else METHODS_INIT


def _number(v: Any) -> int | float:
    """Return an int when integral (5.0 -> 5), else the float (0.5)."""
    v = float(v)
    return int(v) if v.is_integer() else v


def _three(value: Any, name: str) -> tuple:
    """Return a CaImAn per-axis default -> (y, x, z) with the schema's volume default for ``name``.

    The CLI's too; :func:`napari_caiman.engine.defaults.z_default` fits it to few planes.
    """
    return three_axes(value, SPEC_BY_NAME[name].z_default, cast=_number if name == "gSig" else int)


@dataclass(frozen=True)
class CNMFSettings(FormSettings):
    """Everything the CNMF form holds (CaImAn's names).

    Attributes
    ----------
    fr : float
        Frame rate, Hz.
    decay_time : float
        Decay time of a calcium transient, seconds.
    p : int
        Order of the autoregressive model of the traces (0, 1 or 2).
    nb : int
        Number of background components.
    gSig : (int, int, int)
        Expected neuron half-size, pixels (y, x, z).
    gSiz : (int, int, int)
        Neuron bounding box, pixels (y, x, z); 0 = ``2 * gSig + 1``.
    K : int
        Components per patch (or for the whole field of view without patches).
    rf : (int, int, int)
        Patch half-size, pixels (y, x, z); 0 = the whole field of view along
        that axis; all zeros = no patches.
    stride : (int, int, int)
        Overlap between patches, pixels (y, x, z); 0 = the engine's default.
    merge_thr : float
        Trace correlation above which overlapping components are merged.
    method_init : str
        Initialization method.
    ssub, tsub : int
        Spatial / temporal downsampling during initialization.
    kwargs : str
        Any other CaImAn parameters as dict text; they override the form.
    backend : str
        ``"native"`` or ``"caiman"`` (the ``backend`` parameter).
    """

    #: The step this form sets (its key in the viewer's shared forms, ``_state.FORM_STEPS``).
    STEP: ClassVar[str] = "cnmf"

    fr: float
    decay_time: float
    p: int
    nb: int
    gSig: tuple[float, float, float]  # fractions allowed: 0.5 plane for 2 planes
    gSiz: tuple[int, int, int]
    K: int
    rf: tuple[int, int, int]
    stride: tuple[int, int, int]
    merge_thr: float
    method_init: str
    ssub: int
    tsub: int
    kwargs: str = ""
    backend: str = "native"

    @classmethod
    def defaults(cls) -> CNMFSettings:
        """CaImAn's CNMF defaults (plus our z defaults)."""
        d = CaimanParams.defaults()
        return cls(
            fr=float(d["fr"]),
            decay_time=float(d["decay_time"]),
            p=int(d["p"]),
            nb=int(d["nb"]),
            gSig=_three(d["gSig"], "gSig"),
            gSiz=_three(d["gSiz"], "gSiz"),
            K=int(d["K"]),
            rf=_three(d["rf"], "rf"),
            stride=_three(d["stride"], "stride"),
            merge_thr=float(d["merge_thr"]),
            method_init=str(d["method_init"]),
            ssub=int(d["ssub"]),
            tsub=int(d["tsub"]),
            backend=str(d["backend"]),
        )

    def to_dict(self, frame_shape: Sequence[int]) -> dict[str, Any]:
        """Flat CaImAn parameters for a movie with frames of ``frame_shape`` (array order, (Y, X) or (Z, Y, X)).

        The kwargs text is parsed and applied last, so it overrides the form.

        Raises
        ------
        InputError
            When the kwargs text is not a dict literal.
        """
        frame_shape = tuple(int(s) for s in frame_shape)
        n = 3 if len(frame_shape) == 3 else 2
        # frame size per axis in CaImAn order (y, x[, z])
        size = frame_shape[-2:] + frame_shape[:1] if n == 3 else frame_shape
        gsig = tuple(_number(g) for g in self.gSig[:n])
        gsiz = tuple(
            int(v) if v else auto_gsiz(g) for v, g in zip(self.gSiz[:n], gsig, strict=True)
        )
        rf = self.rf[:n]
        stride = self.stride[:n]
        values: dict[str, Any] = {
            "fr": float(self.fr),
            "decay_time": float(self.decay_time),
            "p": int(self.p),
            "nb": int(self.nb),
            "gSig": gsig,
            "gSiz": None if not any(self.gSiz[:n]) else gsiz,
            "K": int(self.K),
            "rf": (
                None
                if not any(rf)
                else tuple(int(r) if r else int(s) for r, s in zip(rf, size, strict=True))
            ),
            "stride": (
                None
                if not any(rf) or not any(stride)
                else tuple(
                    int(v) if v else auto_stride(g) for v, g in zip(stride, gsig, strict=True)
                )
            ),
            "merge_thr": float(self.merge_thr),
            "method_init": str(self.method_init),
            "ssub": int(self.ssub),
            "tsub": int(self.tsub),
            "is3D": n == 3,
            "backend": str(self.backend),
        }
        values.update(parse_kwargs(self.kwargs))
        return values

    def to_params(self, frame_shape: Sequence[int]) -> CaimanParams:
        """Return the validated :class:`CaimanParams` (raises ``InputError`` naming the bad field)."""
        return CaimanParams.from_dict(self.to_dict(frame_shape))

    def for_frames(self, frame_shape: Sequence[int]) -> CaimanParams:
        """:meth:`to_params` for a movie with frames of ``frame_shape`` (array order)."""
        return self.to_params(frame_shape)
