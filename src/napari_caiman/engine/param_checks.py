"""The value checks behind :data:`~.params.VALIDATORS`: each raises an InputError naming the parameter."""

from __future__ import annotations

import math
from typing import Any

from .errors import InputError


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_positive_number(name: str, v: Any, *, allow_zero: bool = False) -> None:
    if not _is_number(v) or v < 0 or (v == 0 and not allow_zero):
        want = "a number >= 0" if allow_zero else "a number > 0"
        raise InputError(name, f"expected {want}, got {v!r}")


def _check_int(name: str, v: Any, minimum: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise InputError(name, f"expected an integer >= {minimum}, got {v!r}")


def _check_per_axis(name: str, v: Any, minimum: float, *, integer: bool, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    values = v if isinstance(v, (tuple, list)) else (v,)
    if not 1 <= len(values) <= 3:
        raise InputError(name, f"expected 1 to 3 values (rows, cols[, planes]), got {v!r}")
    for x in values:
        ok = isinstance(x, int) if integer else _is_number(x)
        if not ok or isinstance(x, bool) or x < minimum:
            kind = "integers" if integer else "numbers"
            raise InputError(name, f"expected {kind} >= {minimum} (rows, cols[, planes]), got {v!r}")


def _check_choice(name: str, v: Any, choices: tuple) -> None:
    if v not in choices:
        raise InputError(name, f"expected one of {', '.join(repr(c) for c in choices)}; got {v!r}")


def _check_range(name: str, v: Any, lo: float, hi: float) -> None:
    if not _is_number(v) or not lo <= v <= hi:
        raise InputError(name, f"expected a number between {lo} and {hi}, got {v!r}")


def _check_bool(name: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise InputError(name, f"expected True or False, got {v!r}")


def _check_memory_limit(name: str, v: Any) -> None:
    from .memory import parse_bytes

    parse_bytes(v, name)
