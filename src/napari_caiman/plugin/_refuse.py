"""What the npe2 readers answer for a file they take but cannot open."""

from __future__ import annotations

from typing import Any

__all__ = ["NOTHING_READ", "refuse"]

#: napari's "read, nothing to add" answer of a reader (``[(None,)]``): no layer, no traceback
NOTHING_READ: list[Any] = [(None,)]


def refuse(name: str, message: str) -> list[Any]:
    """Show why the file ``name`` cannot be opened and return :data:`NOTHING_READ`.

    One napari error notification. Raising instead would add napari's own "reader
    failed" notification, its traceback printed in the terminal and, for File > Open,
    the reader-choice dialog again.
    """
    from napari.utils.notifications import show_error

    show_error(f"Cannot open {name}: {message}")
    return NOTHING_READ
