"""A movie by its path, for workers of a cluster that share the file system.

Pickling a ``np.memmap`` pickles its data; a :class:`MovieFile` pickles only
the path (and HDF5 dataset name) and opens the movie lazily, once per process,
when a worker first reads from it. Indexing returns numpy arrays, as the
opened movie does.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_OPEN: dict[tuple, Any] = {}
_LOCK = threading.Lock()


class MovieFile:
    """Lazy, picklable handle of a movie file (or files) opened with :func:`.movie.open_movie`."""

    #: read by :func:`napari_caiman.engine.memory.pickles_by_path`
    pickles_by_path = True

    def __init__(self, source: Any, var_name_hdf5: str | None = None, *, movie: Any = None) -> None:
        self.source = (
            [os.fspath(s) for s in source]
            if isinstance(source, (list, tuple))
            else os.fspath(source)
        )
        self.var_name_hdf5 = var_name_hdf5
        m = movie if movie is not None else self._movie()
        self.shape = tuple(int(s) for s in m.shape)
        self.dtype = m.dtype
        self.ndim = len(self.shape)

    def _key(self) -> tuple:
        src = tuple(self.source) if isinstance(self.source, list) else (self.source,)
        return (os.getpid(), src, self.var_name_hdf5)

    def _movie(self) -> Any:
        key = self._key()
        with _LOCK:
            m = _OPEN.get(key)
            if m is None:
                from .movie import open_movie

                m = _OPEN[key] = open_movie(self.source, var_name_hdf5=self.var_name_hdf5)
        return m

    def __len__(self) -> int:
        """Return the number of frames."""
        return self.shape[0]

    def __getitem__(self, key: Any) -> Any:
        """Read frames from the file."""
        import numpy as np

        out = self._movie()[key]
        if hasattr(out, "compute") and not isinstance(out, np.ndarray):
            out = out.compute()
        return np.asarray(out)

    def __getstate__(self) -> dict:
        """Pickle by path (a cluster worker opens the file itself)."""
        return {
            "source": self.source,
            "var_name_hdf5": self.var_name_hdf5,
            "shape": self.shape,
            "dtype": str(self.dtype),
        }

    def __setstate__(self, state: dict) -> None:
        """Restore a movie pickled by path."""
        import numpy as np

        self.source, self.var_name_hdf5 = state["source"], state["var_name_hdf5"]
        self.shape, self.dtype = tuple(state["shape"]), np.dtype(state["dtype"])
        self.ndim = len(self.shape)

    def __repr__(self) -> str:
        """Return the file, shape and dtype."""
        return f"MovieFile({self.source!r}, shape={self.shape}, dtype={self.dtype})"


def forget(source: Any) -> None:
    """Close this process's handles of ``source`` (before the file is removed or renamed)."""
    src = (
        tuple(os.fspath(s) for s in source)
        if isinstance(source, (list, tuple))
        else (os.fspath(source),)
    )
    with _LOCK:
        for k in [k for k in _OPEN if k[1] == src]:
            _OPEN.pop(k, None)
