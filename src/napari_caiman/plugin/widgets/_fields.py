"""Form fields built from the parameter schema (:mod:`napari_caiman.engine.schema`).

Each field is labelled with its CaImAn name and takes its tooltip, range and
step from the parameter's :class:`~napari_caiman.engine.schema.Spec`, so the
docks, ``napari-caiman params`` and ``docs/parameters.md`` say the same.
Per-axis fields are :class:`AxesEdit` (one box per axis, y, x[, z]).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox

from ...engine.schema import SPEC_BY_NAME
from ._settings import AXES


def tooltip(name: str) -> str:
    """Return the tooltip of parameter ``name``."""
    return SPEC_BY_NAME[name].tooltip


def spin(name: str, value: float) -> SpinBox | FloatSpinBox:
    """Return a number field with the schema's range (integers when its step is None)."""
    lo, hi, step = SPEC_BY_NAME[name].form
    if step is None:
        return SpinBox(
            value=int(value), min=int(lo), max=int(hi), name=name, label=name, tooltip=tooltip(name)
        )
    return FloatSpinBox(
        value=float(value), min=lo, max=hi, step=step, name=name, label=name, tooltip=tooltip(name)
    )


def check(name: str, value: bool) -> CheckBox:
    """Return a checkbox whose text is the CaImAn name (magicgui would turn "_" into spaces)."""
    box = CheckBox(value=value, name=name, tooltip=tooltip(name))
    box.native.setText(name)
    return box


def choice(name: str, value: Any, choices: Sequence[Any] | None = None) -> ComboBox:
    """Return a drop-down of the schema's choices (or ``choices``), shown as text."""
    options = SPEC_BY_NAME[name].choices if choices is None else tuple(choices)
    return ComboBox(
        value=value,
        choices=[(str(c), c) for c in options],
        label=name,
        name=name,
        tooltip=tooltip(name),
    )


class AxesEdit(Container):
    """One spin box per axis, CaImAn order (y, x[, z]); z only for 3D movies.

    Range and step come from the schema (``minimum``/``maximum``/``step``
    override them); a fractional step (gSig 0.5) gives float boxes.
    """

    def __init__(
        self,
        name: str,
        value: Sequence[float],
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        note: str = "",
        step: float | None = None,
    ) -> None:
        spec = SPEC_BY_NAME.get(name)
        lo, hi, form_step = spec.form if spec is not None and spec.form else (0, 4096, None)
        minimum = lo if minimum is None else minimum
        maximum = hi if maximum is None else maximum
        step = form_step if step is None else step
        self.param = name
        self.note = note
        tip = spec.tooltip if spec is not None else name
        # ``step`` (e.g. 0.5): fractional values (gSig 0.5 plane for a 2-plane movie)
        self.fractional = step is not None and not float(step).is_integer()
        box_type = FloatSpinBox if self.fractional else SpinBox
        extra = {"step": step} if self.fractional else {}
        self.boxes = [
            box_type(
                value=float(v) if self.fractional else int(v),
                min=minimum,
                max=maximum,
                name=f"{name}_{axis}",
                tooltip=f"{tip} — {axis}",
                **extra,
            )
            for v, axis in zip(value, AXES, strict=True)
        ]
        super().__init__(widgets=self.boxes, layout="horizontal", labels=False, name=name)
        self.margins = (0, 0, 0, 0)
        self.tooltip = tip
        self.n_axes = 3
        self.set_n_axes(2)

    @property
    def value(self) -> tuple[int | float, ...]:
        """All three values (y, x, z), whether z is shown or not (ints unless fractional)."""
        if self.fractional:
            return tuple(
                int(v) if float(v).is_integer() else float(v) for v in (b.value for b in self.boxes)
            )
        return tuple(int(b.value) for b in self.boxes)

    @value.setter
    def value(self, values: Sequence[float]) -> None:
        for box, v in zip(self.boxes, values, strict=True):
            box.value = float(v) if self.fractional else int(v)

    def set_n_axes(self, n: int) -> None:
        """Show 2 (y, x) or 3 (y, x, z) boxes and label them."""
        self.n_axes = 3 if n == 3 else 2
        self.boxes[2].visible = self.n_axes == 3
        note = f"; {self.note}" if self.note else ""
        self.label = f"{self.param} ({', '.join(AXES[: self.n_axes])}{note})"


def fit_planes(edits: Sequence[AxesEdit], n_planes: int) -> list[str]:
    """Set the z box of each per-axis field to the schema's volume default for ``n_planes`` planes.

    Only where it is still the plain default or does not fit (e.g. max_shifts z 2 on 2 planes);
    returns the names changed.
    """
    from ...engine.defaults import z_default, z_fits

    changed = []
    for edit in edits:
        spec = SPEC_BY_NAME.get(edit.param)
        if spec is None or spec.z_default is None:
            continue
        box = edit.boxes[2]
        z = float(box.value)
        if z == float(spec.z_default) or not z_fits(edit.param, z, n_planes):
            new = z_default(edit.param, n_planes)
            if float(new) != z:
                box.value = new if edit.fractional else int(new)
                changed.append(edit.param)
    return changed
