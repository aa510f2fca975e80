"""One parameter's description (:class:`Spec`).

Type, bounds, axes, volume default, automatic rule, form field, and the value check
:class:`~.params.CaimanParams` runs.

The group classes that hold the specs are in :mod:`.schema`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from .caiman_defaults import ALL_GROUPS, GROUPS_OF
from .errors import InputError

__all__ = ["Spec", "AXES", "AXIS_NAMES"]

#: Per-axis values are in CaImAn's order.
AXES = (
    "per axis (rows, cols[, planes]) = (y, x[, z]); one value for all axes; 2 values for a volume: "
    "the planes get the volume default"
)
#: Axis names of per-axis values, CaImAn order.
AXIS_NAMES = ("rows", "cols", "planes")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _g(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:g}"


@dataclass(frozen=True)
class Spec:
    """One parameter: its type, bounds, axes, volume default, automatic rule and form field.

    ``kind`` is ``"number"``, ``"int"``, ``"bool"``, ``"choice"``, ``"size"``
    (bytes or a text like "4GB") or ``"text"`` (not checked); ``minimum`` /
    ``maximum`` bound numbers (and each per-axis value); ``open_min`` excludes
    the minimum; ``choices`` lists the allowed values of a choice;
    ``per_axis`` marks one value per spatial axis (CaImAn order);
    ``none_ok`` allows None (CaImAn's "automatic / off", what it means is
    ``auto``); ``z_default`` is the planes value of a volume (fitted to few
    planes by :func:`~.defaults.z_default`); ``form`` is (minimum, maximum,
    step) of the dock's spin box (step None: integers); ``tip`` the
    tooltip (default: ``doc``).
    """

    name: str
    group: str
    kind: str
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    open_min: bool = False
    choices: tuple = ()
    per_axis: bool = False
    none_ok: bool = False
    z_default: Any = None
    auto: str = ""
    checked: bool = True
    form: tuple | None = None
    tip: str = ""
    label: str = ""

    @property
    def groups(self) -> tuple[str, ...]:
        """Every CaImAn group holding this name (setting it sets it in all, as in CaImAn)."""
        return GROUPS_OF[self.name]

    @property
    def default(self) -> Any:
        """CaImAn's default (2D)."""
        return copy.deepcopy(ALL_GROUPS[self.group][self.name])

    @property
    def default_3d(self) -> Any:
        """Default for a volume (rows, cols, planes), or None when as in 2D."""
        d = self.default
        if self.z_default is None or not isinstance(d, tuple):
            return None
        return tuple(d[:2]) + (self.z_default,)

    @property
    def tooltip(self) -> str:
        """Return the form field's tooltip (the docs line when there is no tooltip of its own)."""
        return self.tip or self.doc

    def range_text(self) -> str:
        """Return the valid values in words (what :meth:`check` enforces)."""
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
            text += "; None = " + (self.auto or "automatic/off")
        return text

    def check(self, value: Any) -> None:
        """Raise :class:`InputError` naming this parameter when ``value`` is not valid.

        ``None`` passes where ``none_ok`` (or CaImAn's default is None).
        """
        name = self.name
        if not self.checked:
            return
        if value is None:
            if self.none_ok or ALL_GROUPS[self.group][name] is None:
                return
            raise InputError(name, "a value is required (got None)")
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise InputError(name, f"expected True or False, got {value!r}")
        elif self.kind == "size":
            from .memory import parse_bytes

            parse_bytes(value, name)
        elif self.kind == "choice":
            if value not in self.choices or (
                isinstance(value, bool) and not any(c is value for c in self.choices)
            ):
                raise InputError(
                    name,
                    f"expected one of {', '.join(repr(c) for c in self.choices)}; got {value!r}",
                )
        elif self.per_axis:
            self._check_axes(value)
        elif self.kind == "int":
            lo = int(self.minimum if self.minimum is not None else -math.inf)
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise InputError(name, f"expected an integer >= {lo}, got {value!r}")
        elif self.kind == "number":
            self._check_number(value)

    def _check_number(self, v: Any) -> None:
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            if not _is_number(v) or not lo <= v <= hi:
                raise InputError(self.name, f"expected a number between {lo} and {hi}, got {v!r}")
        elif lo is not None:
            if not _is_number(v) or v < lo or (v == lo and self.open_min):
                want = f"a number > {_g(lo)}" if self.open_min else f"a number >= {_g(lo)}"
                raise InputError(self.name, f"expected {want}, got {v!r}")
        elif not _is_number(v):
            raise InputError(self.name, f"expected a number, got {v!r}")

    def _check_axes(self, v: Any) -> None:
        values = v if isinstance(v, (tuple, list)) else (v,)
        if not 1 <= len(values) <= 3:
            raise InputError(self.name, f"expected 1 to 3 values (rows, cols[, planes]), got {v!r}")
        integer = self.kind == "int"
        lo = self.minimum if self.minimum is not None else -math.inf
        for x in values:
            ok = isinstance(x, int) if integer else _is_number(x)
            if not ok or isinstance(x, bool) or x < lo:
                kind = "integers" if integer else "numbers"
                raise InputError(
                    self.name, f"expected {kind} >= {_g(lo)} (rows, cols[, planes]), got {v!r}"
                )
