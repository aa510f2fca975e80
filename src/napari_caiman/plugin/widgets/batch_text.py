"""What the Batch dock shows, in words: sizes, times, provenance, comparisons (no Qt).

Also the parsing of the "values" field and the parameters of a preset file.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...engine.errors import InputError

#: Text colour of each status in the queue table.
STATUS_COLORS = {
    "queued": "#a8a8a8",
    "running": "#4aa8ff",
    "done": "#4cc26a",
    "failed": "#ff5a5a",
    "cancelled": "#ffa23a",
}

#: Edge colours of the two compared items' contours.
COMPARE_COLORS = ("cyan", "orange")

#: Parameter names that describe one movie, not a way of processing it.
PER_MOVIE = frozenset(
    {"is3D", "dims", "fnames", "var_name_hdf5", "caiman_version", "last_commit", "mmap_F", "mmap_C"}
)


def format_bytes(n: int) -> str:
    """``12_300_000`` -> ``"12.3 MB"`` (decimal units)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover


def format_elapsed(seconds: float | None) -> str:
    """Seconds -> ``"4.2 s"``, ``"3:05"`` or ``"1:02:03"``; ``""`` for None."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def parse_values(text: str, name: str) -> list:
    """Return the values of a variant parameter from text like ``[(3, 3), (4, 4)]``.

    Raises
    ------
    InputError
        Not a Python literal, or not a non-empty list.
    """
    text = (text or "").strip()
    if not text:
        raise InputError(name, "give the values to try as a list, e.g. [(3, 3), (4, 4)]")
    try:
        values = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise InputError(
            name, f"cannot read {text!r}: write a Python list such as [(3, 3), (4, 4)]"
        ) from None
    if not isinstance(values, list):
        raise InputError(
            name, f"{text!r} is not a list: write the values in brackets, e.g. [{text}]"
        )
    if not values:
        raise InputError(name, "the list of values is empty")
    return values


def fmt_value(value: Any) -> str:
    """Return ``value`` as short text for item names and the table (tuples as ``(a, b)``)."""
    if isinstance(value, list):
        value = tuple(fmt_value(v) for v in value)
        return "(" + ", ".join(value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


def provenance_text(item: Any, results: Any, results_path: str | Path) -> str:
    """Return what, how and when of a finished item, one fact per line."""
    prov = results.provenance if isinstance(results.provenance, dict) else {}
    lines = [f"{item.name}: {item.summary or item.status}", f"results: {results_path}"]
    inp = prov.get("input_path") or ", ".join(item.movie)
    lines.append(f"input: {inp}")
    facts = []
    if prov.get("input_size") is not None:
        facts.append(format_bytes(int(prov["input_size"])))
    if prov.get("input_shape") is not None:
        facts.append(
            f"shape {tuple(int(s) for s in prov['input_shape'])} {prov.get('input_dtype', '')}"
        )
    if prov.get("input_header_sha256"):
        facts.append(f"header sha256 {str(prov['input_header_sha256'])[:16]}…")
    if facts:
        lines.append("  " + ", ".join(facts))
    lines.append(
        f"steps: {', '.join(prov.get('steps') or item.steps)}; backend: {prov.get('backend', '?')}"
    )
    if prov.get("started") or prov.get("finished"):
        took = prov.get("elapsed")
        took = f" ({format_elapsed(float(took))})" if took is not None else ""
        lines.append(
            f"started {prov.get('started', '?')}, finished {prov.get('finished', '?')}{took}"
        )
    timings = prov.get("timings") or {}
    if timings:
        lines.append("timings: " + ", ".join(f"{k} {float(v):.2f} s" for k, v in timings.items()))
    if "motion_cache" in prov:
        key = str(prov.get("motion_cache_key", ""))[:12]
        lines.append(f"motion cache: {prov['motion_cache']}" + (f" (key {key}…)" if key else ""))
    versions = prov.get("versions") or {}
    if versions:
        lines.append(
            "versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "platform")
        )
        if "platform" in versions:
            lines.append(f"platform: {versions['platform']}")
    if item.params:
        lines.append(
            "parameters (not default): "
            + ", ".join(f"{k}={fmt_value(v)}" for k, v in sorted(item.params.items()))
        )
    return "\n".join(lines)


def compare_text(a: str, b: str, diff: dict[str, tuple[Any, Any]], counts: Sequence[str]) -> str:
    """Return the text shown for a comparison: legend and parameter differences."""
    lines = [
        f"{COMPARE_COLORS[0]}: {a} — {counts[0]}",
        f"{COMPARE_COLORS[1]}: {b} — {counts[1]}",
    ]
    if diff:
        lines.append(f"parameters that differ ({a} | {b}):")
        lines += [f"  {k}: {fmt_value(va)} | {fmt_value(vb)}" for k, (va, vb) in diff.items()]
    else:
        lines.append("same parameters")
    return "\n".join(lines)


def accepted_contours(results: Any) -> tuple[list[np.ndarray], str]:
    """Return the contours of a result's accepted components and a count text.

    All components when never evaluated; the text reads e.g. ``"47 of 52 accepted"``.
    """
    from ..layers.cnmf import contours

    est = results.estimates
    if est is None:
        return [], "no components"
    K = int(est.A.shape[1])
    accepted = results.accepted()
    polygons, owner = contours(est)
    if accepted is None:
        return list(polygons), f"{K} components (not evaluated)"
    keep = np.isin(owner, np.asarray(accepted, dtype=np.int64))
    return [p for p, k in zip(polygons, keep, strict=True) if k], f"{len(accepted)} of {K} accepted"


def file_name(name: str) -> str:
    """Return ``name`` as a file-name stem (letters, digits, ``. = _ -`` only)."""
    return re.sub(r"[^\w.=-]+", "_", name).strip("._") or "movie"


def preset_params(path: str | Path) -> dict[str, Any]:
    """Return a preset file's parameters (flat CaImAn names, those not at their default)."""
    from ...engine.params import CaimanParams

    params = CaimanParams.from_json(str(path))
    return {k: v for k, v in params.changed().items() if k not in PER_MOVIE}


def short_path(path: Path, parts: int = 3) -> str:
    """Return the last ``parts`` components of a path, prefixed by "…/" when cut."""
    p = Path(path)
    if len(p.parts) <= parts + 1:
        return str(p)
    return str(Path("…", *p.parts[-parts:]))
