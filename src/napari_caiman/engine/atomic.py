"""Atomic file writing: write to a temporary name, rename when complete.

A cancelled or failed step must never leave a half-written file behind, so
every file the package writes goes through :func:`atomic_path`.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


def temp_name(path: str | os.PathLike) -> Path:
    """Return a unique temporary sibling of ``path`` (same folder, same suffix)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to ``path``, else delete it.

    Works for generator-based writers too: if the enclosing generator is
    closed (cancel) the ``GeneratorExit`` raised at the yield point passes
    through here and the temporary file is removed.

    Examples
    --------
    >>> with atomic_path("out.h5") as tmp:      # doctest: +SKIP
    ...     write_everything(tmp)
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        from .errors import InputError

        raise InputError(
            "path", f"folder {str(parent)!r} does not exist (for output {str(path)!r})"
        )
    tmp = temp_name(path)
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.replace(tmp, path)
