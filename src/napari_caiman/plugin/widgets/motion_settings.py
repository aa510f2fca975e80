"""The motion-correction form's values and their mapping to engine parameters.

One place holds the defaults, the per-axis layout and the translation to a
:class:`~napari_caiman.engine.params.CaimanParams`, so "reset to defaults" and
"run headless with the same settings" are one line each. No Qt here.

Per-axis values are kept in CaImAn's order (rows, cols, planes) = (y, x, z),
always with three entries; :meth:`MotionSettings.to_dict` drops the planes
entry for a 2D movie.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ...engine.params import CaimanParams, parse_kwargs
from ...engine.schema import SPEC_BY_NAME
from ._settings import FormSettings, step_names, three_axes

#: Per-axis fields of the form.
PER_AXIS = ("max_shifts", "strides", "overlaps", "gSig_filt")

#: Parameters the motion step uses (what it takes from a preset).
STEP_NAMES = step_names("motion")

#: pw-rigid-only fields (disabled in the form when pw_rigid is off).
PW_RIGID_ONLY = ("strides", "overlaps", "max_deviation_rigid", "upsample_factor_grid")


def _three(value: Any, name: str) -> tuple:
    """Return a CaImAn per-axis default -> (y, x, z) with the schema's volume default for ``name``.

    As CaImAn's 3D motion demo (few planes, small z shifts), and as the CLI.
    """
    return three_axes(value, int(SPEC_BY_NAME[name].z_default))


@dataclass(frozen=True)
class MotionSettings(FormSettings):
    """Everything the motion-correction form holds.

    Attributes
    ----------
    max_shifts, strides, overlaps : (int, int, int)
        Pixels per axis, (y, x, z); z is used only for (T, Z, Y, X) movies.
    gSig_filt : (int, int, int)
        High-pass filter size per axis in pixels; all zeros = off (None).
    pw_rigid, max_deviation_rigid, niter_rig, upsample_factor_grid,
    border_nan, shifts_opencv :
        CaImAn's motion parameters of the same names.
    kwargs : str
        Any other CaImAn parameters as dict text; they override the form.
    output : str
        File for the corrected movie (``.tif`` / ``.npy``); empty = in memory.
    backend : str
        ``"native"`` or ``"caiman"`` (the ``backend`` parameter).
    """

    #: The step this form sets (its key in the viewer's shared forms, ``_state.FORM_STEPS``).
    STEP: ClassVar[str] = "motion"

    max_shifts: tuple[int, int, int]
    strides: tuple[int, int, int]
    overlaps: tuple[int, int, int]
    gSig_filt: tuple[int, int, int]
    pw_rigid: bool
    max_deviation_rigid: int
    niter_rig: int
    upsample_factor_grid: int
    border_nan: bool | str
    shifts_opencv: bool
    kwargs: str = ""
    output: str = ""
    backend: str = "native"

    @classmethod
    def defaults(cls) -> MotionSettings:
        """CaImAn's motion defaults (plus our z defaults)."""
        m = CaimanParams.defaults().group("motion")
        return cls(
            max_shifts=_three(m["max_shifts"], "max_shifts"),
            strides=_three(m["strides"], "strides"),
            overlaps=_three(m["overlaps"], "overlaps"),
            gSig_filt=_three(m["gSig_filt"], "gSig_filt"),
            pw_rigid=bool(m["pw_rigid"]),
            max_deviation_rigid=int(m["max_deviation_rigid"]),
            niter_rig=int(m["niter_rig"]),
            upsample_factor_grid=int(m["upsample_factor_grid"]),
            border_nan=m["border_nan"],
            shifts_opencv=bool(m["shifts_opencv"]),
            backend=str(CaimanParams.defaults()["backend"]),
        )

    def to_dict(self, n_spatial: int) -> dict[str, Any]:
        """Flat CaImAn parameters for a movie with ``n_spatial`` (2 or 3) axes.

        The kwargs text is parsed and applied last, so it overrides the form.

        Raises
        ------
        InputError
            When the kwargs text is not a dict literal.
        """
        n = 3 if n_spatial == 3 else 2
        gsig = tuple(self.gSig_filt[:n])
        values: dict[str, Any] = {
            "max_shifts": tuple(self.max_shifts[:n]),
            "strides": tuple(self.strides[:n]),
            "overlaps": tuple(self.overlaps[:n]),
            "gSig_filt": None if not any(gsig) else gsig,
            "pw_rigid": bool(self.pw_rigid),
            "max_deviation_rigid": int(self.max_deviation_rigid),
            "niter_rig": int(self.niter_rig),
            "upsample_factor_grid": int(self.upsample_factor_grid),
            "border_nan": self.border_nan,
            "shifts_opencv": bool(self.shifts_opencv),
            "is3D": n == 3,
            "backend": str(self.backend),
        }
        values.update(parse_kwargs(self.kwargs))
        return values

    def to_params(self, n_spatial: int) -> CaimanParams:
        """Return the validated :class:`CaimanParams` (raises ``InputError`` naming the bad field)."""
        return CaimanParams.from_dict(self.to_dict(n_spatial))

    def for_frames(self, frame_shape: Sequence[int]) -> CaimanParams:
        """:meth:`to_params` for a movie with frames of ``frame_shape`` (array order)."""
        return self.to_params(len(frame_shape))

    @property
    def output_path(self) -> str | None:
        """The output file, or None for in memory."""
        text = str(self.output or "").strip()
        return text or None
