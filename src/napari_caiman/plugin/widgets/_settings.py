"""Shared pieces of the step forms' settings dataclasses (no Qt here)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from ...engine.errors import InputError

#: Axis names of per-axis values, CaImAn order.
AXES = ("y", "x", "z")


def three_axes(value: Any, z_default: Any, *, cast: type | None = None) -> tuple:
    """Return a CaImAn per-axis value -> (y, x, z), filling z with ``z_default``.

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
        """Return a copy with some fields changed."""
        return replace(self, **changes)

    def as_form(self) -> dict[str, Any]:
        """Field name -> value, for filling the form."""
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


# --- parameter presets (JSON files of flat CaImAn names) ------------------------

#: Names that describe one movie rather than a way of processing it: never
#: saved in a preset nor taken from one (the step sets them from the movie).
PER_MOVIE = frozenset(
    {"is3D", "dims", "fnames", "var_name_hdf5", "caiman_version", "last_commit", "mmap_F", "mmap_C"}
)


def step_names(*groups: str) -> frozenset[str]:
    """Return the parameter names a step uses.

    CaImAn's ``groups`` plus ``backend``, less the per-movie names.
    """
    from ...engine.params import ALL_GROUPS

    names = {"backend"}
    for group in groups:
        names.update(ALL_GROUPS[group])
    return frozenset(names - PER_MOVIE)


def write_preset(path: str | os.PathLike, values: Mapping[str, Any]) -> Path:
    """Write ``values`` (flat CaImAn names) as a JSON preset, atomically.

    The values are validated first, so a preset that loads is what is
    written. Per-movie names (``is3D`` ...) are left out. Returns the path.

    Raises
    ------
    InputError
        A bad name or value, or a folder that does not exist.
    """
    import json

    from ...engine.atomic import atomic_path
    from ...engine.params import CaimanParams

    names = [k for k in values if k not in PER_MOVIE]
    params = CaimanParams.from_dict({k: values[k] for k in names})
    text = json.dumps({k: params[k] for k in names}, indent=2, sort_keys=True, default=repr)
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError("preset", f"cannot write {str(path)!r}: {exc}") from None
    return path


def read_preset(path: str | os.PathLike) -> dict[str, Any]:
    """Read a preset.

    A JSON object of flat CaImAn names (or CaImAn's nested groups), e.g. a CaImAn ``params_dict``
    saved as JSON.

    Returns only the names the file holds, with validated values (tuples for
    per-axis values).

    Raises
    ------
    InputError
        Missing file, not JSON, unknown names (with the closest known ones) or
        bad values; the message names the file.
    """
    import json

    from ...engine.params import ALL_GROUPS, CaimanParams

    path = Path(path)
    try:
        params = CaimanParams.from_json(str(path))
        raw = json.loads(path.read_text(encoding="utf-8"))
    except InputError as exc:
        if exc.argument == "params":  # from_json's own message names the file
            raise InputError("preset", exc.message) from None
        raise InputError("preset", f"{path.name}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise InputError("preset", f"cannot read {str(path)!r}: {exc}") from None
    names: list[str] = []
    for key, value in raw.items():
        if key in ALL_GROUPS and isinstance(value, Mapping):
            names.extend(value)
        else:
            names.append(key)
    return {name: params[name] for name in dict.fromkeys(names)}


def format_kwargs(values: Mapping[str, Any]) -> str:
    """Return a kwargs dict as the text of the kwargs box (``""`` when empty).

    :func:`~napari_caiman.engine.params.parse_kwargs` reads it back.
    """
    return repr(dict(values)) if values else ""
