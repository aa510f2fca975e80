"""Shared pieces of the step forms' settings dataclasses (no Qt here)."""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from typing import Any

#: Axis names of per-axis values, CaImAn order.
AXES = ("y", "x", "z")


def three_axes(value: Any, z_default: Any, *, cast: type | None = None) -> tuple:
    """A CaImAn per-axis value -> (y, x, z), filling z with ``z_default``.

    ``None`` (CaImAn's "automatic") becomes zeros, a scalar is used for y
    and x, and ``cast`` (e.g. ``int``) is applied to every given value.
    """
    if value is None:
        return (0, 0, z_default)
    if not isinstance(value, (tuple, list)):
        value = (value, value)
    value = tuple(cast(v) for v in value) if cast else tuple(value)
    return value if len(value) >= 3 else (value[0], value[1], z_default)


class FormSettings:
    """Mixin for the frozen dataclasses that hold one step form's values."""

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def as_form(self) -> dict[str, Any]:
        """Field name -> value, for filling the form."""
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
