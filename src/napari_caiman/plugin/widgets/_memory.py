"""The memory budget field of the step widgets, and where a too-large corrected movie goes.

A corrected movie that does not fit the budget goes to a temporary file, removed when napari exits.
"""

from __future__ import annotations

import atexit
import contextlib
import tempfile
import uuid
from pathlib import Path
from typing import Any

from magicgui.widgets import LineEdit

TIP = (
    "memory_limit: memory budget of the step, e.g. 4GB or 512MiB; empty = half the RAM available. "
    "What does not fit (the corrected movie) goes to disk, and a run that cannot fit is refused before it starts"
)

_TEMP: list[Path] = []


def memory_limit_edit() -> LineEdit:
    edit = LineEdit(value="", label="memory_limit", tooltip=TIP)
    edit.native.setPlaceholderText("auto (half the free RAM)")
    return edit


def with_memory_limit(params: Any, edit: LineEdit) -> Any:
    """``params`` with the field's budget, checked (an ``InputError`` names memory_limit)."""
    from ...engine.memory import parse_bytes

    text = str(edit.value).strip()
    if not text:
        return params
    parse_bytes(text)
    return params.copy().update({"memory_limit": text})


def _cleanup() -> None:
    for p in _TEMP:
        with contextlib.suppress(OSError):
            p.unlink()


def corrected_movie_path(shape: tuple[int, ...], params: Any, out: Any) -> Any:
    """Return where the corrected movie goes: ``out`` if given.

    Else a temporary ``.npy`` when the corrected movie does not fit the budget (the layer is then a
    lazy view of it), else None (memory). Refuses a run that cannot fit the budget or the disk.
    """
    from ...engine.memory import budget
    from ...engine.preflight import check_run, corrected_on_disk

    bud = budget(params)
    if out is None and corrected_on_disk(shape, bud):
        folder = Path(tempfile.gettempdir()) / "napari_caiman"
        folder.mkdir(exist_ok=True)
        out = folder / f"corrected-{uuid.uuid4().hex[:12]}.npy"
        if not _TEMP:
            atexit.register(_cleanup)
        _TEMP.append(out)
    check_run(shape, ("motion",), params, bud, movie_out=out)
    return out
