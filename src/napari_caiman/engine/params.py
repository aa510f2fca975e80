"""Parameters with CaImAn's names, groups and defaults.

A CaImAn user's flat ``params_dict`` (as given to ``CNMFParams(params_dict=...)``)
works here unchanged: :meth:`CaimanParams.from_dict` accepts it, rejects
unknown names with the closest known ones, and validates the values the
native engine uses with the schema's checks (:mod:`.schema`). Per-axis values keep
CaImAn's order (rows, cols[, planes]).

Some names live in several CaImAn groups (``nb``, ``p``, ``min_SNR`` ...); as in
CaImAn, setting the flat name sets it in every group that has it, so values
are stored flat.

Examples
--------
>>> p = CaimanParams.from_dict({"max_shifts": (4, 4), "pw_rigid": True})
>>> p.group("motion")["max_shifts"]
(4, 4)
>>> parse_kwargs("{'ssub': 2, 'tsub': 2}")
{'ssub': 2, 'tsub': 2}
"""

from __future__ import annotations

import ast
import copy
import difflib
import json
from collections.abc import Mapping
from typing import Any

from .caiman_defaults import ALL_GROUPS, DEFAULTS, EXTRA_DEFAULTS, GROUPS_OF
from .errors import InputError
from .schema import SPEC_BY_NAME

__all__ = [
    "CaimanParams",
    "DEFAULTS",
    "EXTRA_DEFAULTS",
    "ALL_GROUPS",
    "GROUPS_OF",
    "parse_kwargs",
    "close_matches",
]


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """Parse the kwargs text box: a Python/JSON dict literal of parameters.

    Parsed with :func:`ast.literal_eval` (never ``eval``), so only literals are
    allowed. ``None``/empty text gives ``{}``. JSON spellings ``true``,
    ``false`` and ``null`` are accepted too.

    Raises
    ------
    InputError
        (argument ``"kwargs"``) when the text is not a dict literal.

    Examples
    --------
    >>> parse_kwargs("{'ssub': 2, 'gSig': (4, 4)}")
    {'ssub': 2, 'gSig': (4, 4)}
    """
    if text is None or not str(text).strip():
        return {}
    text = str(text).strip()
    if not text.startswith("{"):
        text = "{" + text + "}"
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        try:
            value = json.loads(text)
        except ValueError:
            raise InputError(
                "kwargs",
                f"could not read {text!r} as a dict of parameters, e.g. {{'ssub': 2, 'tsub': 2}}",
            ) from None
    if not isinstance(value, dict):
        raise InputError("kwargs", f"expected a dict of parameters, got {type(value).__name__}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise InputError("kwargs", f"parameter names must be strings, got {bad!r}")
    return value


def close_matches(name: str, n: int = 3) -> list[str]:
    """Known parameter names closest to ``name`` (case-insensitive)."""
    lower = {k.lower(): k for k in GROUPS_OF}
    hits = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)
    return [lower[h] for h in hits]


def _unknown_message(name: str) -> str:
    hits = close_matches(name)
    hint = f"; did you mean {', '.join(repr(h) for h in hits)}?" if hits else ""
    return f"unknown parameter {name!r}{hint}"


def _integral(value: Any) -> Any:
    """Floats with an integer value (and tuples of them) as ints."""
    if isinstance(value, tuple):
        return tuple(_integral(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _normalize(value: Any) -> Any:
    """List and numpy arrays become tuples of Python scalars (JSON and HDF5 have no tuples)."""
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, list):
        return tuple(_normalize(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_normalize(v) for v in value)
    return value


class CaimanParams:
    """A validated, flat set of CaImAn parameters.

    Build it with :meth:`defaults` or :meth:`from_dict`; read one stage's
    parameters with :meth:`group`; export with :meth:`to_dict` (flat) or
    :meth:`to_groups` (CaImAn's nested layout, as saved in results files).
    """

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values: dict[str, Any] = {}
        self._explicit: set[str] = set()  # names given by the user (even at their default value)
        for group in ALL_GROUPS.values():
            for name, default in group.items():
                self._values.setdefault(name, copy.deepcopy(default))
        if values:
            self.update(values)

    # construction ---------------------------------------------------------
    @classmethod
    def defaults(cls) -> CaimanParams:
        """All parameters at CaImAn's defaults."""
        return cls()

    @classmethod
    def from_dict(
        cls, values: Mapping[str, Any] | None = None, *, strict: bool = True
    ) -> CaimanParams:
        """Build from a flat dict of CaImAn names, or CaImAn's nested groups.

        Parameters
        ----------
        values : mapping
            ``{"max_shifts": (6, 6), ...}`` or ``{"motion": {...}, "init": {...}}``.
        strict : bool
            Reject unknown names (default). With ``strict=False`` they are
            dropped silently and values this version cannot use are replaced
            by defaults with a warning, integral floats read as integers (used
            when reading files from CaImAn, possibly a newer version).

        Raises
        ------
        InputError
            Unknown names (message lists the close matches) or invalid values.
        """
        flat = cls._flatten(values or {})
        if strict:
            return cls(flat)
        params = cls()
        for name, value in flat.items():
            if name not in GROUPS_OF:
                continue
            try:
                params.update({name: value})
            except InputError:
                # e.g. CaImAn stores gSiz (7.0, 7.0, 5.0) when gSig is fractional:
                # take integral floats as integers; otherwise keep the default
                try:
                    params.update({name: _integral(_normalize(value))})
                except InputError as exc:
                    import logging

                    logging.getLogger(__name__).warning(
                        "parameter %s=%r not used (%s); default %r kept",
                        name,
                        value,
                        exc,
                        params[name],
                    )
        return params

    @classmethod
    def from_json(cls, path: str) -> CaimanParams:
        """Read a flat (or grouped) JSON parameter file."""
        from pathlib import Path

        p = Path(path)
        if not p.is_file():
            raise InputError("params", f"parameter file not found: {str(p)!r}")
        try:
            values = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise InputError("params", f"cannot read {str(p)!r} as JSON: {exc}") from None
        if not isinstance(values, dict):
            raise InputError("params", f"{str(p)!r} must hold a JSON object of parameters")
        return cls.from_dict(values)

    @staticmethod
    def _flatten(values: Mapping[str, Any]) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for key, value in values.items():
            if key in ALL_GROUPS and isinstance(value, Mapping):
                flat.update(value)
            else:
                flat[key] = value
        return flat

    # access ---------------------------------------------------------------
    def update(self, values: Mapping[str, Any]) -> CaimanParams:
        """Set several parameters (flat or grouped), validating each. Returns self."""
        flat = self._flatten(values)
        unknown = [k for k in flat if k not in GROUPS_OF]
        if unknown:
            raise InputError(unknown[0], _unknown_message(unknown[0]))
        new = {k: _normalize(v) for k, v in flat.items()}
        for name, value in new.items():
            spec = SPEC_BY_NAME.get(name)  # the schema's check (type, bounds, axes)
            if spec is not None:
                spec.check(value)
        self._values.update(new)
        self._explicit.update(new)
        return self

    def is_set(self, name: str) -> bool:
        """Whether ``name`` was given (a value from the user or a file), not left at its default."""
        return name in self._explicit or name in self.changed()

    def __getitem__(self, name: str) -> Any:
        """Return the value of the parameter ``name``; raise InputError for an unknown name."""
        if name not in self._values:
            raise KeyError(_unknown_message(name))
        return self._values[name]

    def __setitem__(self, name: str, value: Any) -> None:
        """Set one parameter (checked as :meth:`update` does)."""
        self.update({name: value})

    def __contains__(self, name: object) -> bool:
        """Return True when ``name`` is a parameter."""
        return name in self._values

    def get(self, name: str, default: Any = None) -> Any:
        """Return the value of ``name`` (``default`` when it is not a parameter)."""
        return self._values.get(name, default)

    def group(self, name: str) -> dict[str, Any]:
        """Return the parameters of one CaImAn group (``"motion"``, ``"init"``, ...)."""
        if name not in ALL_GROUPS:
            raise InputError("group", f"unknown group {name!r}; groups are {', '.join(ALL_GROUPS)}")
        return {k: self._values[k] for k in ALL_GROUPS[name]}

    def to_dict(self) -> dict[str, Any]:
        """Flat copy of every parameter."""
        return copy.deepcopy(self._values)

    def to_groups(self) -> dict[str, dict[str, Any]]:
        """CaImAn's nested layout ``{group: {name: value}}``."""
        return {g: self.group(g) for g in ALL_GROUPS}

    def changed(self) -> dict[str, Any]:
        """Only the parameters that differ from the defaults (for summaries)."""
        base = CaimanParams()._values
        return {k: v for k, v in self._values.items() if base.get(k) != v}

    def copy(self) -> CaimanParams:
        """Return an independent copy (the values set explicitly are kept as such)."""
        new = CaimanParams(self.changed())
        new._explicit = set(self._explicit)
        return new

    def to_json(self, *, only_changed: bool = False) -> str:
        """JSON text of the flat dict (tuples become lists)."""
        values = self.changed() if only_changed else self.to_dict()
        return json.dumps(values, indent=2, sort_keys=True, default=repr)

    def __eq__(self, other: object) -> bool:
        """Return True for parameters with the same values."""
        return isinstance(other, CaimanParams) and self._values == other._values

    def __repr__(self) -> str:
        """Return the parameters that differ from CaImAn's defaults."""
        return f"CaimanParams({self.changed()!r})"
