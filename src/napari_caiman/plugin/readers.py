"""npe2 reader for movies: TIFF / .npy / HDF5 files and folders of TIFFs.

The data handed to napari stay lazy (memmap or dask); nothing large is read.
HDF5 files without a movie-like (>= 3-D) dataset are left to other readers
(e.g. a CaImAn results file).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..io.movie import HDF5_SUFFIXES, TIFF_SUFFIXES, open_movie
from ._refuse import refuse

__all__ = ["get_reader", "read_movie"]

LayerData = tuple[Any, dict, str]
_FILE_SUFFIXES = TIFF_SUFFIXES + (".npy", ".mmap") + HDF5_SUFFIXES


def _has_movie_dataset(path: Path) -> bool:
    try:
        import h5py

        from ..io.movie import _h5_movie_datasets

        with h5py.File(path, "r") as f:
            return bool(_h5_movie_datasets(f))
    except Exception:
        return False


def _accepts(path: Path) -> bool:
    if path.is_dir():
        return any(p.suffix.lower() in TIFF_SUFFIXES for p in path.iterdir() if p.is_file())
    suffix = path.suffix.lower()
    if suffix not in _FILE_SUFFIXES:
        return False
    if suffix in HDF5_SUFFIXES:
        from .results_reader import is_results_file

        # results files (which may hold 3-D arrays such as patch shifts) go to the results reader
        return not is_results_file(path) and _has_movie_dataset(path)
    return True


def get_reader(
    path: str | os.PathLike | Sequence[str | os.PathLike],
) -> Callable[..., list[LayerData]] | None:
    """npe2 ``get_reader`` hook.

    Parameters
    ----------
    path : str, Path or list of them
        What napari was asked to open.  A list is read as one movie (files
        concatenated along T) when every entry is a TIFF.

    Returns
    -------
    callable or None
        :func:`read_movie` if this plugin can open ``path`` as a movie, else
        None (so napari tries other readers).
    """
    if isinstance(path, (str, os.PathLike)):
        return read_movie if _accepts(Path(path)) else None
    paths = [Path(p) for p in path]
    if not paths:
        return None
    if len(paths) == 1:
        return read_movie if _accepts(paths[0]) else None
    if all(p.suffix.lower() in TIFF_SUFFIXES for p in paths):
        return read_movie
    return None


def read_movie(path: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Any]:
    """Open ``path`` as one lazy movie and return it as napari layer data.

    Parameters
    ----------
    path : str, Path or list of them
        See :func:`napari_caiman.io.open_movie`.

    Returns
    -------
    list of (data, metadata, layer_type)
        ``[(movie, {"name": <stem>, "metadata": {"path": ...}}, "image")]``; for a file
        ``open_movie`` refuses (not a TIFF, a single image, ...), :data:`~._refuse.NOTHING_READ`
        after one notification saying why.
    """
    from ..engine.errors import InputError

    try:
        data = open_movie(path)
    except InputError as exc:
        first = Path(path) if isinstance(path, (str, os.PathLike)) else Path(list(path)[0])
        return refuse(first.name, exc.message)
    meta: dict[str, Any] = {}
    limits = sample_contrast_limits(data)
    if limits is not None:
        meta["contrast_limits"] = limits
    if isinstance(path, (str, os.PathLike)):
        first, meta_path = Path(path), str(path)
    else:
        paths = [Path(p) for p in path]
        first, meta_path = paths[0], [str(p) for p in paths]
        if len(paths) == 1:
            meta_path = str(paths[0])
    name = first.name if first.is_dir() else first.stem
    axes = {3: ("t", "y", "x"), 4: ("t", "z", "y", "x")}.get(data.ndim)
    if axes is not None:
        meta["axis_labels"] = axes  # the sliders say t / z, not -3 / -4
    return [(data, {"name": name, "metadata": {"path": meta_path}, **meta}, "image")]


def sample_contrast_limits(
    data: Any, n_frames: int = 8, low: float = 0.5, high: float = 99.8
) -> list[float] | None:
    """Return contrast limits from percentiles of ``n_frames`` frames spread over the movie.

    So napari never scans a huge movie for its range; None if no finite sample.
    """
    import numpy as np

    T = int(data.shape[0])
    if T == 0:
        return None
    idx = np.unique(np.linspace(0, T - 1, min(T, n_frames)).round().astype(int))
    parts = []
    for t in idx:
        frame = data[int(t)]
        if hasattr(frame, "compute") and not isinstance(frame, np.ndarray):
            frame = frame.compute()
        frame = np.asarray(frame, dtype=np.float32).ravel()
        parts.append(frame[:: max(1, frame.size // 262144)])
    values = np.concatenate(parts)
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    lo, hi = (float(v) for v in np.percentile(values, (low, high)))
    return [lo, hi if hi > lo else lo + 1.0]
