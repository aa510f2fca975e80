"""npe2 reader for results files: ours and those written by CaImAn's ``CNMF.save()``.

A results file opens into the same layers as a fresh CNMF run (correlation
image, footprints Labels with a features table, the contours as one RGBA
image of outlines, the lazy denoised movie), ready for evaluation and curation. The loaded
:class:`~napari_caiman.engine.results.Results` rides along in each layer's
``metadata["napari_caiman_results"]`` (with the file path), so the
evaluation widget can pick it up.

Which files this reader takes: HDF5 files with ``dims`` and ``estimates`` (or
``motion``), ours or CaImAn's. HDF5 files of other tools and files that are
not HDF5 at all are declined (None), so other readers can try them. A file
with the HDF5 signature that cannot be opened (truncated, damaged) is taken,
so that the user reads what is wrong with it instead of "no reader found".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["get_results_reader", "is_results_file", "read_results", "results_layer_data"]

LayerData = tuple[Any, dict, str]
SUFFIXES = (".hdf5", ".h5")

#: The first bytes of every HDF5 file (at offset 0 unless it has a user block).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _has_hdf5_signature(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(8) == HDF5_SIGNATURE
    except OSError:
        return False


def is_results_file(path: str | os.PathLike) -> bool:
    """Return True for an HDF5 file with CaImAn/napari-caiman results, without reading large data.

    Such a file has ``dims`` and ``estimates`` or ``motion``.
    """
    p = Path(path)
    if p.suffix.lower() not in SUFFIXES or not p.is_file():
        return False
    try:
        import h5py

        with h5py.File(p, "r") as f:
            return "dims" in f and ("estimates" in f or "motion" in f)
    except Exception:
        return False


def is_broken_hdf5(path: str | os.PathLike) -> bool:
    """Return True for a ``.hdf5``/``.h5`` file that starts like HDF5 but cannot be opened.

    E.g. truncated while copying.
    """
    p = Path(path)
    if p.suffix.lower() not in SUFFIXES or not p.is_file() or not _has_hdf5_signature(p):
        return False
    try:
        import h5py

        with h5py.File(p, "r"):
            return False
    except Exception:
        return True


def get_results_reader(
    path: str | os.PathLike | Sequence[str | os.PathLike],
) -> Callable[..., list[LayerData]] | None:
    """npe2 ``get_reader`` hook.

    :func:`read_results` for a results file (or a damaged HDF5 file, to say what is wrong), else
    None.
    """
    if not isinstance(path, (str, os.PathLike)):
        paths = list(path)
        if len(paths) != 1:
            return None
        path = paths[0]
    return read_results if is_results_file(path) or is_broken_hdf5(path) else None


def results_layer_data(results: Any, name: str, path: str | None = None) -> list[LayerData]:
    """Layer data tuples for a loaded results object (no Qt, no viewer)."""
    from types import SimpleNamespace

    from .layers.cnmf import cnmf_layer_data

    meta_extra = {"napari_caiman_results": results, "napari_caiman_results_path": path}
    layers: list[LayerData] = []
    summary = results.summary or {}
    if results.estimates is not None:
        step = SimpleNamespace(
            estimates=results.estimates, summary=SimpleNamespace(**summary) if summary else None
        )
        layers = cnmf_layer_data(step, name)
    elif summary:
        for key in ("mean", "corr"):
            if key in summary:
                layers.append(
                    (
                        summary[key],
                        {"name": f"{name} {'correlation' if key == 'corr' else key}"},
                        "image",
                    )
                )
    elif results.motion is not None and results.motion.get("template") is not None:
        layers.append((results.motion["template"], {"name": f"{name} template"}, "image"))
    out = []
    for data, meta, kind in layers:
        meta = dict(meta)
        meta["metadata"] = {**meta.get("metadata", {}), **meta_extra}
        out.append((data, meta, kind))
    return out


def read_results(path: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Any]:
    """Open a results file as layers (see module docstring).

    A missing, corrupt or foreign file gives one napari error notification naming the
    file and what is wrong (napari's own "reader failed" message does not include it),
    and no layer (:data:`~._refuse.NOTHING_READ`): no traceback.
    """
    from ..engine.errors import InputError
    from ..io.results_file import load_results
    from ._refuse import refuse

    if not isinstance(path, (str, os.PathLike)):
        path = list(path)[0]
    p = Path(path)
    try:
        results = load_results(p)
    except InputError as exc:
        return refuse(p.name, exc.message)
    return results_layer_data(results, p.stem, str(p))
