"""The batch file on disk: read, written atomically, merged with other writers under a lock."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..engine.errors import InputError
from .batch_item import BatchItem

FORMAT = "napari-caiman-batch"
#: Version of the batch file layout this code writes and reads.
VERSION = 1

__all__ = ["BatchFile", "FORMAT", "VERSION"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class LockBusy(Exception):
    """Another writer holds the batch file's lock (a non-blocking attempt)."""


@contextlib.contextmanager
def _file_lock(path: Path, blocking: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``<folder>/.<name>.lock`` while the batch file is rewritten.

    The file is read and rewritten under the lock (POSIX; elsewhere no lock, the merge still
    applies). With ``blocking=False`` it raises :class:`LockBusy` at once when the lock is held.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock = path.with_name(f".{path.name}.lock")
    with open(lock, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockBusy(str(lock)) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class BatchFile:
    """The persistence of :class:`~napari_caiman.app.batch.Batch`.

    ``items`` as the file holds them, this object's own changes kept apart from other writers'.
    """

    path: Path
    items: list[BatchItem]
    created: float
    _lock: threading.RLock
    _saved: dict[str, dict[str, Any]]
    _cache_dir: Path | None

    @property
    def folder(self) -> Path:
        """Return the folder of the batch file."""
        return self.path.parent

    def _read(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InputError("batch", f"cannot read batch file {str(self.path)!r}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError("batch", f"{str(self.path)!r} is not a napari-caiman batch file")
        version = data.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise InputError(
                "batch",
                f"{str(self.path)!r} was written by a newer napari-caiman (batch format "
                f"{version!r}; this version reads up to {VERSION}); update napari-caiman",
            )
        try:
            self.items = [BatchItem.from_dict(d) for d in data.get("items", [])]
        except TypeError as exc:
            raise InputError("batch", f"damaged item in {str(self.path)!r}: {exc}") from None
        self._saved = {i.name: i.to_dict() for i in self.items}
        self.created = float(data.get("created", self.created))
        if self._cache_dir is None and data.get("cache_dir"):
            c = Path(data["cache_dir"])
            self._cache_dir = c if c.is_absolute() else self.folder / c
        host = socket.gethostname()
        for item in self.items:
            # an item left "running" by a process that is gone was interrupted
            r = item.runner or {}
            if item.status == "running" and not (
                r.get("host") == host and _pid_alive(int(r.get("pid", -1)))
            ):
                item.status, item.error, item.runner = (
                    "queued",
                    "interrupted (the run stopped before it finished)",
                    {},
                )

    def save(self) -> None:
        """Write the batch file atomically, merged with what others wrote meanwhile.

        Several writers may share a batch file (``napari-caiman batch`` in a
        terminal while the Batch widget adds items, or two widgets): under a
        lock file, the file is read again and only the items this object
        changed, added or removed since it last read or wrote the file are
        applied to it; items changed elsewhere are taken over (in place, so
        references to them stay valid).
        """
        from ..engine.atomic import atomic_path

        with self._lock, _file_lock(self.path):
            self._sync()
            cache = self._cache_dir
            with contextlib.suppress(ValueError):
                cache = cache.relative_to(self.folder)
            head = {
                "format": FORMAT,
                "version": VERSION,
                "created": self.created,
                "saved": time.time(),
                "cache_dir": str(cache),
            }
            dicts = [i.to_dict() for i in self.items]
            # one item per line: readable and diffable, and json's fast encoder (no indent) does the work
            items = ",\n  ".join(json.dumps(d) for d in dicts)
            text = (
                json.dumps(head)[:-1]
                + ',\n "items": ['
                + (f"\n  {items}\n ]" if items else "]")
                + "\n}\n"
            )
            with atomic_path(self.path) as tmp:
                tmp.write_text(text)
            self._saved = {d["name"]: d for d in dicts}

    def refresh(self, blocking: bool = True) -> bool:
        """Take over what other writers changed in the file (keeping changes made here).

        With ``blocking=False`` (a viewer's periodic look) nothing waits: while another
        writer holds the file (or this object saves in another thread) it returns False
        and reads nothing; True when it read the file.
        """
        if not self._lock.acquire(blocking=blocking):
            return False
        try:
            with _file_lock(self.path, blocking=blocking):
                self._sync()
        except LockBusy:
            return False
        finally:
            self._lock.release()
        return True

    def _sync(self) -> None:
        mine = {i.name: i.to_dict() for i in self.items}
        changed = {n for n, d in mine.items() if self._saved.get(n) != d}
        removed = set(self._saved) - set(mine)
        self._merge(self._disk_items(), changed, removed)

    def _disk_items(self) -> list[dict[str, Any]] | None:
        """Return the items in the file now (None: no readable batch file there)."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or not isinstance(data.get("items"), list)
        ):
            return None
        return [d for d in data["items"] if isinstance(d, dict) and isinstance(d.get("name"), str)]

    def _merge(
        self, disk: list[dict[str, Any]] | None, changed: set[str], removed: set[str]
    ) -> None:
        if disk is None:
            return
        mine = {i.name: i for i in self.items}
        merged: list[BatchItem] = []
        for d in disk:
            name = d["name"]
            if name in removed:
                continue
            if name in changed or d == self._saved.get(name):
                if name in mine:  # ours is newer, or nobody else touched it
                    merged.append(mine.pop(name))
                continue
            try:  # changed or added by another writer
                theirs = BatchItem.from_dict(d)
            except (TypeError, InputError):
                continue
            if name in mine:
                item = mine.pop(name)
                for f in BatchItem.__dataclass_fields__:
                    setattr(item, f, getattr(theirs, f))
                merged.append(item)
            else:
                merged.append(theirs)
            self._saved[name] = d
        # ours that the file does not have: new here (or deleted there but changed here)
        merged.extend(i for n, i in mine.items() if n in changed or n not in self._saved)
        self.items = merged
