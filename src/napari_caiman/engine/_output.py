"""Chunked, atomic writers for (T, ...) float32 movies: memory, .npy, .tif.

Usage (inside a generator, so that closing it removes the temporary file)::

    with output_writer(out, shape) as w:
        for t0, block in ...:
            w.write(t0, block)       # blocks must come in increasing frame order
    result = w.result()              # ndarray, or read-only memmap of the file
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .errors import InputError

SUFFIXES = (".npy", ".tif", ".tiff")


def check_out(out) -> Path | None:
    """Validate an ``out`` argument: None or a path ending in .npy/.tif/.tiff."""
    if out is None:
        return None
    if not isinstance(out, (str, os.PathLike)):
        raise InputError("out", f"expected None or a file path, got {type(out).__name__}")
    path = Path(out)
    if path.suffix.lower() not in SUFFIXES:
        raise InputError("out", f"expected a path ending in .npy, .tif or .tiff, got {str(path)!r}")
    if not (path.parent if str(path.parent) else Path(".")).is_dir():
        raise InputError("out", f"folder {str(path.parent)!r} does not exist")
    return path


class _Writer:
    def __init__(self, shape, dtype):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.next = 0
        self._result: Any = None

    def _write(self, t0: int, block: np.ndarray) -> None:
        raise NotImplementedError

    def write(self, t0: int, block: np.ndarray) -> None:
        if t0 != self.next:
            raise RuntimeError(f"blocks out of order: expected frame {self.next}, got {t0}")
        self._write(t0, np.asarray(block, self.dtype))
        self.next = t0 + len(block)

    def skip(self, t0: int, n: int) -> None:
        """Frames ``[t0, t0 + n)`` were written into :meth:`remote` by someone else."""
        if t0 != self.next:
            raise RuntimeError(f"blocks out of order: expected frame {self.next}, got {t0}")
        self.next = t0 + int(n)

    def remote(self):
        """Return where other processes may write frames directly, or None (in memory).

        The answer is ``(path, byte offset of frame 0, bytes per frame)``.
        """
        return None

    def result(self):
        return self._result

    def close(self) -> None:  # pragma: no cover - overridden
        pass


class _MemWriter(_Writer):
    def __init__(self, shape, dtype):
        super().__init__(shape, dtype)
        self._result = np.empty(self.shape, self.dtype)

    def _write(self, t0, block):
        self._result[t0 : t0 + len(block)] = block


class _NpyWriter(_Writer):
    """Sequential writes, not a memmap.

    Written pages of a memmap count in the process's resident memory, which would then grow with T.
    """

    def __init__(self, path, shape, dtype):
        super().__init__(shape, dtype)
        self.path = Path(path)
        self.f = open(path, "wb")
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": self.shape,
        }
        np.lib.format.write_array_header_2_0(self.f, header)
        self.offset = self.f.tell()
        self.frame_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize

    def remote(self):
        self.f.flush()
        if os.path.getsize(self.path) < self.offset + self.shape[0] * self.frame_bytes:
            self.f.truncate(self.offset + self.shape[0] * self.frame_bytes)  # sparse until written
        return (str(self.path.resolve()), self.offset, self.frame_bytes)

    def _write(self, t0, block):
        np.ascontiguousarray(block).tofile(self.f)

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None


class _TifWriter(_Writer):
    """BigTIFF, one page per plane, uncompressed and contiguous.

    The file layout (IFDs + reserved data) is created up front by tifffile, then the pixel data are
    written block by block with plain file writes.
    """

    def __init__(self, path, shape, dtype):
        import tifffile

        super().__init__(shape, dtype)
        mm = tifffile.memmap(
            path, shape=self.shape, dtype=self.dtype, bigtiff=True, photometric="minisblack"
        )
        self.offset = int(mm.offset)
        del mm
        self.path = Path(path)
        self.frame_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        self.f = open(path, "r+b")

    def remote(self):
        self.f.flush()
        return (str(self.path.resolve()), self.offset, self.frame_bytes)

    def _write(self, t0, block):
        self.f.seek(self.offset + t0 * self.frame_bytes)
        np.ascontiguousarray(block).tofile(self.f)

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None


def disk_full_error(exc: OSError, path: Path) -> BaseException:
    """Return a clear error for a full disk (the partial file is removed by the caller).

    Other errors as they are.
    """
    from .memory import DiskFullError, format_bytes, free_disk, is_disk_full

    if not is_disk_full(exc):
        return exc
    return DiskFullError(
        "disk",
        f"no space left on the disk holding {str(path)!r} while writing it "
        f"({format_bytes(free_disk(path))} free); the partial file was removed. "
        "Free some space or write the output to another disk.",
    )


def _load(path: Path, shape):
    if path.suffix.lower() == ".npy":
        return np.load(path, mmap_mode="r")
    import tifffile

    mm = tifffile.memmap(path, mode="r")
    return mm.reshape(shape)


@contextlib.contextmanager
def output_writer(out, shape, dtype=np.float32) -> Iterator[_Writer]:
    """Context manager yielding a writer; on error/cancel no file is left."""
    path = check_out(out)
    if path is None:
        w: _Writer = _MemWriter(shape, dtype)
        yield w
        return
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".npy":
            w = _NpyWriter(tmp, shape, dtype)
        else:
            w = _TifWriter(tmp, shape, dtype)
        try:
            try:
                yield w
            finally:
                w.close()
        except OSError as exc:
            err = disk_full_error(exc, path)
            if err is exc:
                raise
            raise err from exc
        if w.next != w.shape[0]:
            raise RuntimeError(f"only {w.next} of {w.shape[0]} frames were written")
    w._result = _load(path, shape)
