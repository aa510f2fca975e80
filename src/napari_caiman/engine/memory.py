"""The memory budget (``memory_limit``) and the chunk sizes derived from it.

Every step that touches frames x pixels data reads it in chunks whose size
comes from one :class:`Budget`, so the whole pipeline's numpy allocations stay
within the budget whatever the number of frames.  What does not fit (the
motion-corrected movie, CNMF's float32 working copy) lives on disk.

``memory_limit`` (a parameter of the ``napari_caiman`` group, the CLI's
``--memory-limit``) is a number of bytes or a text such as ``"4GB"``,
``"512 MiB"``; ``None``/``"auto"`` means :data:`AUTO_FRACTION` of the memory
available when the run starts.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError

#: share of the available RAM used when no limit is given
AUTO_FRACTION = 0.5
#: budgets below this are refused (nothing useful fits)
MIN_LIMIT = 4 * 10**6

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}


def parse_bytes(value: Any, argument: str = "memory_limit") -> int | None:
    """``"4GB"`` / ``"512MiB"`` / ``4e9`` / ``None`` / ``"auto"`` -> bytes (None: automatic)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto", "none")):
        return None
    if isinstance(value, bool):
        raise InputError(
            argument, f"expected a size such as '4GB' or a number of bytes, got {value!r}"
        )
    if isinstance(value, (int, float)):
        n = float(value)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", value)
        if not m or m.group(2).lower() not in _UNITS:
            raise InputError(
                argument,
                f"expected a size such as '4GB', '512MiB' or a number of bytes, got {value!r}",
            )
        n = float(m.group(1)) * _UNITS[m.group(2).lower()]
    else:
        raise InputError(
            argument, f"expected a size such as '4GB' or a number of bytes, got {value!r}"
        )
    if not n >= MIN_LIMIT:
        raise InputError(
            argument, f"{value!r} is too small: give at least {format_bytes(MIN_LIMIT)}"
        )
    return int(n)


def format_bytes(n: float) -> str:
    """Human-readable size (decimal units, as in ``--memory-limit 4GB``)."""
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= f:
            return f"{n / f:.1f} {unit}"
    return f"{int(n)} B"


def available_memory() -> int:
    """Return the bytes of RAM available now.

    The machine's (psutil; /proc/meminfo as a fallback), or less where the
    process runs under a cgroup memory limit (a SLURM job, a container): that
    limit less what the cgroup uses, not counting page cache it can drop.
    """
    n = _machine_available()
    limited = _cgroup_available()
    return n if limited is None else max(0, min(n, limited))


def _machine_available() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover - psutil is a dependency of distributed
        try:
            with open("/proc/meminfo") as fh:
                for line in fh:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
    return 4 << 30  # pragma: no cover


#: files of a cgroup's memory controller: (v2, v1) names
_CGROUP_FILES = {
    "limit": ("memory.max", "memory.limit_in_bytes"),
    "usage": ("memory.current", "memory.usage_in_bytes"),
    "stat": ("memory.stat", "memory.stat"),
}
#: in memory.stat, the page cache the kernel drops before it fails an allocation
_RECLAIMABLE = {"inactive_file", "total_inactive_file"}


def _cgroup_dir(
    cgroup_file: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup"
) -> tuple[Path, int] | None:
    """Return the memory cgroup folder of this process and its version (2 or 1), if mounted."""
    try:
        lines = Path(cgroup_file).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if "memory" in controllers.split(","):
            d = Path(root, "memory", rel.lstrip("/"))
            if d.is_dir():
                return d, 1
        if controllers == "":
            d = Path(root, rel.lstrip("/"))
            if (d / "memory.max").is_file():
                return d, 2
    return None


def _cgroup_available(
    cgroup_file: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup"
) -> int | None:
    """Return the bytes the cgroup of the process may still use, or None without a limit.

    That is limit - usage + reclaimable page cache, the least over the cgroup
    and its parents (a SLURM job sets the limit on the job, its steps inherit it).
    """
    found = _cgroup_dir(cgroup_file, root)
    if found is None:
        return None
    d, version = found
    top = Path(root, "memory") if version == 1 else Path(root)
    best: int | None = None
    while True:
        room = _cgroup_room(d, version)
        if room is not None:
            best = room if best is None else min(best, room)
        if d == top or top not in d.parents:
            return best
        d = d.parent


def _cgroup_room(d: Path, version: int) -> int | None:
    """Return limit - usage + reclaimable page cache of one cgroup folder (None: no limit)."""
    names = {k: v[0] if version == 2 else v[1] for k, v in _CGROUP_FILES.items()}
    try:
        raw = (d / names["limit"]).read_text().strip()
        usage = int((d / names["usage"]).read_text().strip())
        stat = (d / names["stat"]).read_text().splitlines()
    except (OSError, ValueError):
        return None
    if raw == "max" or not raw.isdigit() or int(raw) >= 1 << 60:
        return None  # no limit (v1 writes a number near 2**63)
    reclaim = 0
    for line in stat:
        key, _, value = line.partition(" ")
        if key in _RECLAIMABLE and value.strip().isdigit():
            reclaim = max(reclaim, int(value))
    return max(0, int(raw) - usage + reclaim)


@dataclass(frozen=True)
class Budget:
    """A memory budget in bytes, and chunk sizes derived from it.

    The steps split the budget into shares: a chunk of frames read at once
    uses :attr:`CHUNK` of it (the caller counts its own copies through
    ``copies``), and a step may hold a whole movie in memory only when it
    fits :attr:`HOLD` of it.
    """

    limit: int
    CHUNK = 0.125
    HOLD = 0.25

    def frames(
        self,
        frame_bytes: int,
        *,
        copies: float = 1.0,
        share: float | None = None,
        at_most: int | None = None,
    ) -> int:
        """Frames per chunk: ``copies`` float arrays of ``frame_bytes`` each within ``share`` of the budget."""
        share = self.CHUNK if share is None else share
        n = int(self.limit * share // max(1.0, copies * max(1, int(frame_bytes))))
        n = max(1, n)
        return n if at_most is None else max(1, min(n, int(at_most)))

    def chunk_bytes(self, share: float | None = None) -> int:
        """Return the bytes of one streamed chunk: ``share`` of the budget (default its chunk share)."""
        return max(1 << 16, int(self.limit * (self.CHUNK if share is None else share)))

    def holds(self, nbytes: int, share: float | None = None) -> bool:
        """Return True if an array of ``nbytes`` may be held in memory."""
        return int(nbytes) <= self.limit * (self.HOLD if share is None else share)


def resolve_limit(value: Any = None) -> int:
    """Bytes of the budget: ``value`` parsed, or the automatic default."""
    n = parse_bytes(value)
    if n is None:
        n = max(MIN_LIMIT, int(available_memory() * AUTO_FRACTION))
    return n


def budget(params: Any = None, memory_limit: Any = None) -> Budget:
    """Return the :class:`Budget` of a run.

    ``memory_limit`` if given, else ``params["memory_limit"]``.
    """
    if memory_limit is None and params is not None:
        try:
            memory_limit = (
                params.get("memory_limit") if hasattr(params, "get") else params["memory_limit"]
            )
        except (KeyError, TypeError):
            memory_limit = None
    return Budget(resolve_limit(memory_limit))


def pickles_by_path(movie: Any) -> bool:
    """Return True if ``movie`` is sent to cluster workers as a path they open themselves.

    Also for the movie a view such as ``NanFilled`` wraps (``io.shared.MovieFile``).
    """
    for _ in range(8):
        if movie is None:
            return False
        if getattr(movie, "pickles_by_path", False):
            return True
        movie = getattr(movie, "movie", None)
    return False


# ----------------------------------------------------------------------------- disk


def free_disk(path: str | os.PathLike) -> int:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    p = Path(path).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return int(shutil.disk_usage(p).free)


def is_disk_full(exc: BaseException) -> bool:
    """Return True when ``exc`` says the disk (or the user's quota) is full."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(InputError):
    """The disk filled up while writing; the partial file was removed."""
