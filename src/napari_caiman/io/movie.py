"""Opening and saving movies without reading them into memory.

Movies are (T, Y, X) or (T, Z, Y, X) in napari's order.  What
:func:`open_movie` returns depends on the file:

* uncompressed, contiguous TIFF -> ``np.memmap`` (read-only) from
  ``tifffile.memmap``;
* other TIFF (compressed, tiled, scattered pages) -> a lazy ``dask.array``
  reading a block of pages at a time (small files, under 64 MB, are simply
  read);
* ``.npy`` -> ``np.load(mmap_mode='r')``;
* ``.h5`` / ``.hdf5`` -> a lazy ``dask.array`` over the h5py dataset (the
  dataset keeps its file open);
* CaImAn ``.mmap`` (``..._d1_Y_d2_X_d3_Z_order_C|F_frames_T_.mmap``) -> a
  read-only memmap view;
* several files (a list, or a folder of TIFFs) -> one lazy dask array
  concatenated along T.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.atomic import atomic_path
from ..engine.errors import InputError

__all__ = [
    "open_movie",
    "save_movie",
    "movie_files",
    "TIFF_SUFFIXES",
    "HDF5_SUFFIXES",
    "SUPPORTED_SUFFIXES",
]

TIFF_SUFFIXES = (".tif", ".tiff")
HDF5_SUFFIXES = (".h5", ".hdf5")
SUPPORTED_SUFFIXES = TIFF_SUFFIXES + (".npy",) + HDF5_SUFFIXES + (".mmap",)
_SMALL_BYTES = 64 << 20
_PREFERRED_H5 = ("mov", "data", "movie", "Y", "images", "imaging")


def _natural_key(p: Path):
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", p.name)]


def movie_files(path: str | os.PathLike) -> list[Path]:
    """Return the movie files a path stands for.

    Parameters
    ----------
    path : str or Path
        A folder (its TIFF files, naturally sorted so ``file_2`` comes before
        ``file_10``; hidden files skipped) or a single file.

    Returns
    -------
    list of Path

    Raises
    ------
    InputError
        If the path does not exist or a folder holds no TIFF file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("path", f"file not found: {str(path)!r}")
    if path.is_dir():
        files = [
            p
            for p in path.iterdir()
            if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES and not p.name.startswith(".")
        ]
        if not files:
            raise InputError("path", f"folder {str(path)!r} holds no TIFF files (.tif, .tiff)")
        return sorted(files, key=_natural_key)
    return [path]


def _movie_shape_check(shape: tuple[int, ...], path: Path) -> None:
    if len(shape) == 2:
        raise InputError("path", f"{str(path)!r} is a single image {shape} (Y, X), not a movie")
    if len(shape) not in (3, 4):
        raise InputError(
            "path", f"{str(path)!r} has shape {shape}; expected a movie (T, Y, X) or (T, Z, Y, X)"
        )
    from ..engine.validate import rgb_message

    rgb = rgb_message(shape)
    if rgb:
        raise InputError("path", f"{str(path)!r} {rgb}")


# ----------------------------------------------------------------------------- TIFF


def _tiff_axes_plan(
    shape: tuple[int, ...], axes: str, path: Path
) -> tuple[list[int], tuple[int, ...]]:
    """Return (transpose, squeeze-axes) to bring a TIFF series to T(Z)YX."""
    axes = axes.upper()
    if len(axes) != len(shape):
        axes = "Q" * (len(shape) - 2) + "YX"
    for ch in ("C", "S"):
        if ch in axes:
            n = shape[axes.index(ch)]
            if n > 1:
                raise InputError(
                    "path",
                    f"{str(path)!r} has {n} channels (axes {axes}, shape {shape}); napari-caiman works on "
                    "one channel: save the channel you want as its own file",
                )
    # drop all size-1 axes other than Y, X (but keep at least T)
    keep = [i for i, a in enumerate(axes) if a in "YX" or shape[i] > 1]
    if len([i for i in keep if axes[i] not in "YX"]) == 0:
        # a single frame: keep the first non-YX axis so that the error says "single image"
        lead = [i for i, a in enumerate(axes) if a not in "YX"]
        keep = sorted(set(keep) | set(lead[:1]))
    squeeze = tuple(i for i in range(len(shape)) if i not in keep)
    kept_axes = "".join(axes[i] for i in keep)
    kept_shape = tuple(shape[i] for i in keep)
    if "Y" not in kept_axes or "X" not in kept_axes or kept_axes[-2:] not in ("YX",):
        # unusual layouts: assume the last two axes are the frame
        order = list(range(len(kept_shape)))
        return order, squeeze
    lead = [i for i, a in enumerate(kept_axes[:-2])]
    lead_axes = kept_axes[:-2]
    if len(lead) == 2 and "T" in lead_axes and "Z" in lead_axes:
        order = [lead_axes.index("T"), lead_axes.index("Z")]
    elif len(lead) == 2 and "Z" in lead_axes and lead_axes.index("Z") == 0 and "T" not in lead_axes:
        # e.g. 'ZIYX', 'ZQYX': pages were planes of several volumes; time is the other axis
        order = [1, 0]
    else:
        order = lead
    if len(order) > 2:
        raise InputError(
            "path",
            f"{str(path)!r} has axes {axes} and shape {shape}; expected T, Y, X or T, Z, Y, X",
        )
    return order + [len(kept_shape) - 2, len(kept_shape) - 1], squeeze


class _TiffPages:
    """Thread-safe reader of blocks of pages of one TIFF series (for dask)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._tif: Any = None

    def read(
        self, start: int, stop: int, pages_per_index: int, index_shape: tuple[int, ...]
    ) -> np.ndarray:
        import tifffile

        with self._lock:
            if self._tif is None:
                self._tif = tifffile.TiffFile(self.path)
            data = self._tif.asarray(
                key=range(start * pages_per_index, stop * pages_per_index), series=0
            )
        return np.asarray(data).reshape(stop - start, *index_shape)

    def __getstate__(self):  # picklable for process/distributed schedulers
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])

    def __del__(self):
        try:
            if self._tif is not None:
                self._tif.close()
        except Exception:
            pass


def _open_tiff(path: Path):
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise ValueError("no image series")
            series = tif.series[0]
            shape = tuple(int(s) for s in series.shape)
            axes = series.axes
            dtype = np.dtype(series.dtype)
            n_pages = len(series.pages)
    except InputError:
        raise
    except Exception as exc:
        raise InputError("path", f"cannot read {str(path)!r} as TIFF: {exc}") from exc
    if len(shape) < 2:
        raise InputError("path", f"cannot read {str(path)!r} as TIFF: image has shape {shape}")
    order, squeeze = _tiff_axes_plan(shape, axes, path)
    final_shape = tuple(s for i, s in enumerate(shape) if i not in squeeze)
    final_shape = tuple(final_shape[i] for i in order)
    _movie_shape_check(final_shape, path)

    def arrange(arr):
        if squeeze:
            arr = arr.reshape(tuple(s for i, s in enumerate(arr.shape) if i not in squeeze))
        if order != list(range(len(order))):
            arr = arr.transpose(order)
        return arr

    try:
        mm = tifffile.memmap(path, mode="r")
        if tuple(mm.shape) == shape:
            return arrange(mm)
    except Exception:
        pass
    try:
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if nbytes <= _SMALL_BYTES:
            return arrange(np.asarray(tifffile.imread(path, series=0)).reshape(shape))
        # lazy: blocks of indices along the first series axis
        import dask
        import dask.array as da

        n0 = shape[0]
        if n_pages % n0:
            raise ValueError(f"{n_pages} pages do not split evenly over the first axis ({n0})")
        ppi = n_pages // n0
        index_shape = shape[1:]
        frame_bytes = max(1, nbytes // n0)
        block = max(1, min(n0, (64 << 20) // frame_bytes))
        reader = _TiffPages(path)
        blocks = []
        for t0 in range(0, n0, block):
            t1 = min(n0, t0 + block)
            d = dask.delayed(reader.read, pure=True)(t0, t1, ppi, index_shape)
            blocks.append(da.from_delayed(d, shape=(t1 - t0, *index_shape), dtype=dtype))
        return arrange(da.concatenate(blocks, axis=0))
    except InputError:
        raise
    except Exception as exc:
        raise InputError("path", f"cannot read {str(path)!r} as TIFF: {exc}") from exc


# ----------------------------------------------------------------------------- other formats


def _h5_movie_datasets(f) -> list[tuple[str, Any]]:
    import h5py

    found: list[tuple[str, Any]] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.ndim >= 3 and obj.dtype.kind in "uifb":
            found.append((name, obj))

    f.visititems(visit)
    return found


def _open_hdf5(path: Path, var_name_hdf5: str | None):
    import dask.array as da
    import h5py

    try:
        f = h5py.File(path, "r")
    except Exception as exc:
        raise InputError("path", f"cannot read {str(path)!r} as HDF5: {exc}") from exc
    try:
        if var_name_hdf5 is not None:
            if var_name_hdf5 not in f or not isinstance(f[var_name_hdf5], h5py.Dataset):
                names = [n for n, _ in _h5_movie_datasets(f)]
                raise InputError(
                    "var_name_hdf5",
                    f"no dataset {var_name_hdf5!r} in {str(path)!r}; movie-like datasets there: {names}",
                )
            dset = f[var_name_hdf5]
        else:
            cands = _h5_movie_datasets(f)
            if not cands:
                raise InputError(
                    "path", f"{str(path)!r} holds no movie (no dataset with 3 or more dimensions)"
                )
            by_name = {n.split("/")[-1]: d for n, d in cands}
            dset = next((by_name[n] for n in _PREFERRED_H5 if n in by_name), None)
            if dset is None:
                dset = max((d for _, d in cands), key=lambda d: d.size)
        shape = tuple(int(s) for s in dset.shape)
        _movie_shape_check(shape, path)
        frame = int(np.prod(shape[1:])) * dset.dtype.itemsize
        chunk_t = max(1, min(shape[0], (64 << 20) // max(frame, 1)))
        arr = da.from_array(
            dset, chunks=(chunk_t, *shape[1:]), lock=True, name=f"h5-{path.name}-{dset.name}"
        )
        # the dataset (referenced by the graph) keeps the file open; keep the File too
        arr._napari_caiman_h5file = f  # type: ignore[attr-defined]
        return arr
    except BaseException:
        f.close()
        raise


_MMAP_RE = re.compile(r"_d1_(\d+)_d2_(\d+)_d3_(\d+)_order_([CF])_frames_(\d+)")


def _open_caiman_mmap(path: Path):
    m = _MMAP_RE.search(path.name)
    if not m:
        raise InputError(
            "path",
            f"{str(path)!r}: a .mmap file must carry CaImAn's name pattern "
            "'..._d1_<Y>_d2_<X>_d3_<Z>_order_<C|F>_frames_<T>_.mmap'",
        )
    d1, d2, d3, order, T = int(m[1]), int(m[2]), int(m[3]), m[4], int(m[5])
    P = d1 * d2 * d3
    try:
        yr = np.memmap(path, mode="r", dtype=np.float32, shape=(P, T), order=order)  # type: ignore[call-overload]
    except Exception as exc:
        raise InputError("path", f"cannot read {str(path)!r} as a CaImAn memmap: {exc}") from exc
    # pixels are flattened in Fortran order over (d1, d2, d3): pixel = y + d1*x + d1*d2*z.
    # Build the (T, z, x, y) view from the file's own strides (a reshape would
    # copy the whole file for order C, where time is the fast axis).
    sP, sT = yr.strides
    mov = np.lib.stride_tricks.as_strided(
        yr,
        shape=(T, d3, d2, d1),
        strides=(sT, sP * d1 * d2, sP * d1, sP),
        subok=True,
        writeable=False,
    )
    mov = mov.transpose(0, 1, 3, 2)  # (T, z, y, x)
    return mov[:, 0] if d3 == 1 else mov


def _open_one(path: Path, var_name_hdf5: str | None):
    if not path.exists():
        raise InputError("path", f"file not found: {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        return _open_tiff(path)
    if suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise InputError("path", f"cannot read {str(path)!r} as .npy: {exc}") from exc
        _movie_shape_check(tuple(arr.shape), path)
        return arr
    if suffix in HDF5_SUFFIXES:
        return _open_hdf5(path, var_name_hdf5)
    if suffix == ".mmap":
        return _open_caiman_mmap(path)
    raise InputError(
        "path",
        f"unsupported file type {suffix or '(none)'!r} for {str(path)!r}; supported: "
        + ", ".join(SUPPORTED_SUFFIXES)
        + " or a folder of TIFFs",
    )


def open_movie(
    path: str | os.PathLike | Sequence[str | os.PathLike], *, var_name_hdf5: str | None = None
):
    """Open a movie lazily (memory-mapped or dask), in napari order.

    Parameters
    ----------
    path : str, Path or sequence of them
        A movie file (.tif/.tiff, .npy, .h5/.hdf5, CaImAn .mmap), a folder of
        TIFFs, or a list of files; several files are concatenated along T.
    var_name_hdf5 : str, optional
        Dataset holding the movie in an HDF5 file; by default the only one
        with 3 or more dimensions, preferring the names 'mov', 'data', ...,
        else the biggest.

    Returns
    -------
    array-like
        (T, Y, X) or (T, Z, Y, X): ``np.memmap`` where the file allows it,
        else a lazy ``dask.array.Array`` (small compressed TIFFs: ndarray).
        Nothing large is read.

    Raises
    ------
    InputError
        Missing or unreadable file, unsupported extension, a single 2-D image,
        more than one channel, or files whose frame shapes/dtypes differ.
    """
    if isinstance(path, (str, os.PathLike)):
        p = Path(path)
        files = movie_files(p) if p.is_dir() else [p]
    else:
        files = [Path(p) for p in path]
        if not files:
            raise InputError("path", "no files given")
        expanded = []
        for p in files:
            expanded.extend(movie_files(p) if p.is_dir() else [p])
        files = expanded
    if len(files) == 1:
        return _open_one(files[0], var_name_hdf5)
    import dask.array as da

    parts = []
    first = None
    for f in files:
        arr = _open_one(f, var_name_hdf5)
        if first is None:
            first = (f, tuple(arr.shape[1:]), np.dtype(arr.dtype))
        elif tuple(arr.shape[1:]) != first[1] or np.dtype(arr.dtype) != first[2]:
            raise InputError(
                "path",
                f"{str(f)!r} has frames {tuple(arr.shape[1:])} {np.dtype(arr.dtype)}, but {str(first[0])!r} "
                f"has {first[1]} {first[2]}; all files of a movie must agree",
            )
        if not isinstance(arr, da.Array):
            frame = int(np.prod(arr.shape[1:])) * arr.dtype.itemsize
            ct = max(1, min(arr.shape[0], (64 << 20) // max(frame, 1)))
            arr = da.from_array(arr, chunks=(ct, *arr.shape[1:]), name=f"movie-{f}")
        parts.append(arr)
    return da.concatenate(parts, axis=0)


# ----------------------------------------------------------------------------- saving


def _rate(text: str, names: Sequence[str]) -> float | None:
    for name in names:
        m = re.search(rf"{re.escape(name)}\s*=\s*'?([0-9.eE+-]+)", text)
        if m:
            try:
                v = float(m.group(1))
            except ValueError:
                continue
            if np.isfinite(v) and v > 0:
                return v
    return None


def frame_rate(path: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[float, str] | None:
    """Return the frame rate (Hz) a movie's TIFF metadata records, with where it was found, or None.

    Volumes per second for a volume movie.

    Reads, from the first file: ImageJ's ``finterval`` (s per frame) or
    ``fps``; OME-XML ``Pixels/@TimeIncrement`` (with its unit); ScanImage's
    ``scanVolumeRate`` (volumes) / ``scanFrameRate`` (SI 2015+) or
    ``state.acq.frameRate`` (SI 3). Other formats: None.
    """
    if isinstance(path, (str, os.PathLike)):
        p = Path(path)
        files = movie_files(p) if p.is_dir() else [p]
    else:
        files = [Path(f) for f in path]
    if not files or files[0].suffix.lower() not in TIFF_SUFFIXES or not files[0].is_file():
        return None
    import tifffile

    try:
        with tifffile.TiffFile(files[0]) as tif:
            ij = tif.imagej_metadata or {}
            if ij.get("finterval"):
                return 1.0 / float(ij["finterval"]), "ImageJ metadata (finterval)"
            if ij.get("fps"):
                return float(ij["fps"]), "ImageJ metadata (fps)"
            ome = tif.ome_metadata
            if ome:
                m = re.search(r"<Pixels\b[^>]*>", ome)
                tag = m.group(0) if m else ""
                inc = re.search(r'TimeIncrement="([0-9.eE+-]+)"', tag)
                if inc and float(inc.group(1)) > 0:
                    unit = re.search(r'TimeIncrementUnit="([^"]+)"', tag)
                    scale = {
                        "s": 1.0,
                        "ms": 1e-3,
                        "µs": 1e-6,
                        "us": 1e-6,
                        "min": 60.0,
                        "h": 3600.0,
                    }.get(unit.group(1) if unit else "s", 1.0)
                    return 1.0 / (float(inc.group(1)) * scale), "OME metadata (TimeIncrement)"
            volume = len(tif.series[0].shape) >= 4 if tif.series else False
            texts = []
            with contextlib.suppress(Exception):
                si = tif.scanimage_metadata or {}
                texts.append(
                    "\n".join(f"{k} = {v}" for k, v in (si.get("FrameData") or {}).items())
                )
            page: Any = tif.pages[0]
            for code in (270, 305):  # ImageDescription, Software: where ScanImage writes its state
                tag = page.tags.get(code)
                if tag is not None and isinstance(tag.value, str):
                    texts.append(tag.value)
            text = "\n".join(texts)
            names = (["SI.hRoiManager.scanVolumeRate"] if volume else []) + [
                "SI.hRoiManager.scanFrameRate",
                "scanimage.SI.hRoiManager.scanFrameRate",
                "state.acq.frameRate",
            ]
            fr = _rate(text, names)
            if fr:
                return fr, "ScanImage metadata"
    except (
        Exception
    ):  # unreadable metadata: as if there were none (the movie itself opens elsewhere)
        return None
    return None


def save_movie(path: str | os.PathLike, movie: Any, *, chunk_size: int | None = None) -> Path:
    """Write a movie chunk by chunk, atomically (temp file, then rename).

    Parameters
    ----------
    path : str or Path
        Output file: ``.tif``/``.tiff`` (BigTIFF, uncompressed, contiguous,
        so it opens as a memmap; axes metadata TYX / TZYX), ``.npy``, or
        ``.h5``/``.hdf5`` (dataset ``'mov'``).
    movie : array-like
        (T, Y, X) or (T, Z, Y, X), any numeric dtype (kept); memmap / dask /
        h5py input is read ``chunk_size`` frames at a time.
    chunk_size : int, optional
        Frames per chunk; default about 64 MB.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    InputError
        Unsupported extension, missing output folder or a non-movie array.
    """
    from ..engine.validate import check_movie

    path = Path(path)
    n_frames, frame_shape = check_movie(movie, min_frames=1)
    dtype = np.dtype(movie.dtype)
    frame_bytes = int(np.prod(frame_shape)) * dtype.itemsize
    if chunk_size is None:
        chunk_size = max(1, (64 << 20) // max(frame_bytes, 1))
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise InputError("chunk_size", f"must be >= 1, got {chunk_size}")
    suffix = path.suffix.lower()
    if suffix not in TIFF_SUFFIXES + (".npy",) + HDF5_SUFFIXES:
        raise InputError(
            "path",
            f"cannot save a movie as {suffix or '(none)'!r}; supported: .tif, .tiff, .npy, .h5, .hdf5",
        )
    shape = (n_frames, *frame_shape)

    def chunks():
        for t0 in range(0, n_frames, chunk_size):
            yield (
                t0,
                min(n_frames, t0 + chunk_size),
                np.asarray(movie[t0 : t0 + chunk_size], dtype=dtype),
            )

    with atomic_path(path) as tmp:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            axes = "TYX" if len(frame_shape) == 2 else "TZYX"
            with tifffile.TiffWriter(tmp, bigtiff=True) as tw:
                tw.write(
                    (c for _, _, c in chunks()),
                    shape=shape,
                    dtype=dtype,
                    photometric="minisblack",
                    metadata={"axes": axes},
                )
        elif suffix == ".npy":
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            for t0, t1, c in chunks():
                mm[t0:t1] = c
            mm.flush()
            del mm
        else:
            import h5py

            with h5py.File(tmp, "w") as f:
                ds = f.create_dataset("mov", shape=shape, dtype=dtype, chunks=(1, *frame_shape))
                for t0, t1, c in chunks():
                    ds[t0:t1] = c
    return path
