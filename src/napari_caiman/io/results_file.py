"""Results files: HDF5 in CaImAn's ``CNMF.save()`` layout plus our own groups.

Layout written by :func:`save_results`::

    /dims                  frame shape in CaImAn order (rows, cols[, planes])
    /params/<group>/<name> every parameter, CaImAn's groups (motion, init, ...)
    /estimates/...         CNMF results (from the CNMF step on; CaImAn names)
    /motion/               shifts_rig (T, n_axes) CaImAn order, shifts_els,
                           template, patch_bounds (array order), metrics
    /summary/              mean, max, std, corr images (array order, (Z,)Y,X)
    /provenance            attributes: software versions, input file, timings

Values are written the way CaImAn's ``save_dict_to_hdf5`` does (see
:mod:`napari_caiman.engine.results`). Files are written atomically (temp name,
then rename).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..engine.atomic import atomic_path
from ..engine.errors import InputError, ResultsFileError
from ..engine.params import DEFAULTS, CaimanParams
from ..engine.results import (
    Results,
    estimates_from_group,
    estimates_to_dict,
    read_value,
    write_value,
)
from ..engine.validate import array_dims, caiman_dims

__all__ = ["save_results", "load_results"]


def save_results(path: str | os.PathLike, results: Results) -> Path:
    """Write ``results`` to an HDF5 file atomically. Returns the path.

    Raises
    ------
    InputError
        If the folder does not exist or the file cannot be written.
    """
    path = Path(path)
    try:
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("dims", data=np.asarray(caiman_dims(results.dims)))
            # CaImAn's load_CNMF makes a CNMFParams group of every group under
            # 'params' and fails on unknown ones: the plugin's own groups
            # (``backend``) are written apart
            groups = results.params.to_groups()
            write_value(f, "params", {g: v for g, v in groups.items() if g in DEFAULTS})
            write_value(
                f, "napari_caiman_params", {g: v for g, v in groups.items() if g not in DEFAULTS}
            )
            if results.motion is not None:
                write_value(f, "motion", results.motion)
            if results.summary is not None:
                write_value(f, "summary", results.summary)
            if results.estimates is not None:
                est = estimates_to_dict(results.estimates, results.summary)
                if results.metrics is not None:
                    est.update(results.metrics.to_dict())
                if results.F_dff is not None:
                    est["F_dff"] = np.asarray(results.F_dff, dtype=np.float32)
                final = results.accepted()
                if final is not None:
                    K = results.estimates.A.shape[1]
                    est["idx_components"] = np.asarray(final, dtype=np.int64)
                    est["idx_components_bad"] = np.setdiff1d(np.arange(K), final)
                write_value(f, "estimates", est)
                from ..engine.curation import Curation, write_curation

                # always written (all 0 before any decision), so every reader finds the same layout
                curation = (
                    results.curation
                    if results.curation is not None
                    else Curation.empty(results.estimates.A.shape[1])
                )
                write_curation(f, curation)
            prov = f.create_group("provenance")
            for k, v in results.provenance.items():
                prov.attrs[k] = (
                    v if isinstance(v, (str, int, float)) else json.dumps(v, default=repr)
                )
            f.attrs["napari_caiman_format"] = 1
    except OSError as exc:
        raise InputError("output", f"cannot write results file {str(path)!r}: {exc}") from None
    return path


def load_results(path: str | os.PathLike) -> Results:
    """Read a results file written by :func:`save_results` or CaImAn's ``CNMF.save()``.

    Raises
    ------
    InputError
        Missing file, not HDF5, truncated or damaged, not a results file (e.g.
        an HDF5 file of another tool), or parts that do not fit together
        (e.g. footprints whose pixel count does not match ``dims``). The
        message names the file and what is wrong.
    """
    path = Path(path)
    name = repr(str(path))
    if not path.is_file():
        raise ResultsFileError("path", f"results file not found: {name}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        # an HDF5 file starts with this signature (at 0, or 512 * 2**k after a user block)
        signature = b"\x89HDF\r\n\x1a\n"
        size = path.stat().st_size
        offsets = [0] + [512 << k for k in range(12) if (512 << k) < size]
        try:
            with path.open("rb") as fh:
                is_hdf5 = any(fh.seek(o) == o and fh.read(8) == signature for o in offsets)
        except OSError:
            is_hdf5 = True  # unreadable: report h5py's own reason below
        if not is_hdf5:
            raise ResultsFileError(
                "path",
                f"{name} is not an HDF5 file (no HDF5 signature); expected a "
                "results file written by napari-caiman or CaImAn's CNMF.save()",
            ) from None
        if "truncated" in str(exc):
            import re

            eof = re.search(r"stored_eof\s*=\s*(\d+)", str(exc))
            of = f" of the {int(eof.group(1)):,}" if eof else ""
            raise ResultsFileError(
                "path",
                f"{name} is truncated: it has {size:,} bytes{of} the HDF5 file "
                "should have (cut short while copying or saving?) and cannot be "
                "read; copy or save it again",
            ) from None
        raise ResultsFileError(
            "path", f"{name} is a damaged HDF5 file and cannot be opened: {exc}"
        ) from None
    part = "the file"
    try:
        with f:
            missing = [k for k in ("dims", "params") if k not in f]
            if missing:
                found = ", ".join(sorted(f.keys())[:8]) or "nothing"
                raise ResultsFileError(
                    "path",
                    f"{name} is not a napari-caiman/CaImAn results file: it has no "
                    f"{' and no '.join(repr(m) for m in missing)} (its top level "
                    f"holds: {found})",
                )
            part = "'dims'"
            raw_dims = tuple(np.asarray(f["dims"][()]).ravel().tolist())
            if not 2 <= len(raw_dims) <= 3 or not all(
                isinstance(d, int) and d >= 1 for d in raw_dims
            ):
                raise ResultsFileError(
                    "path", f"{name}: 'dims' must be 2 or 3 positive sizes, got {raw_dims}"
                )
            dims = array_dims(raw_dims)
            part = "the parameters ('params')"
            stored = read_value(f["params"])
            if (
                "napari_caiman_params" in f
            ):  # our own groups (e.g. backend), apart for CaImAn's load_CNMF
                stored = {**stored, **read_value(f["napari_caiman_params"])}
            params = CaimanParams.from_dict(stored, strict=False)
            part = "'motion'"
            motion = read_value(f["motion"]) if "motion" in f else None
            part = "'summary'"
            summary = read_value(f["summary"]) if "summary" in f else None
            part = "the CNMF results ('estimates')"
            estimates, extra = (
                estimates_from_group(f["estimates"], dims) if "estimates" in f else (None, {})
            )
            if estimates is not None:
                K = estimates.A.shape[1]
                for key in ("C", "S", "YrA"):
                    rows = np.shape(getattr(estimates, key))[0]
                    if rows != K:
                        raise ResultsFileError(
                            "path",
                            f"{name}: estimates/{key} has {rows} traces for {K} "
                            "footprints in estimates/A",
                        )
            if summary is None and "Cn" in extra:
                summary = {"corr": extra["Cn"]}
            from ..engine.curation import read_curation

            part = "the curation"
            curation = read_curation(f) if estimates is not None else None
            part = "'provenance'"
            prov: dict[str, Any] = {}
            if "provenance" in f:
                for k, v in f["provenance"].attrs.items():
                    if isinstance(v, str) and v[:1] in "{[":
                        try:
                            v = json.loads(v)
                        except ValueError:
                            pass
                    prov[k] = v.item() if isinstance(v, np.generic) else v
        part = "the evaluation results"
        results = Results(
            params=params,
            dims=dims,
            motion=motion,
            summary=summary,
            provenance=prov,
            estimates=estimates,
            F_dff=extra.get("F_dff"),
            curation=curation,
        )
        if estimates is not None:
            from ..engine.evaluation import Metrics

            results.metrics = Metrics.from_saved(extra, estimates)
            if curation is not None and curation.n_components != estimates.A.shape[1]:
                raise ResultsFileError(
                    "path",
                    f"curation holds {curation.n_components} decisions for "
                    f"{estimates.A.shape[1]} components",
                )
            # estimates.idx_components holds the threshold result; the file's
            # idx_components is the final (curated) set, re-derived by accepted()
            thr = results.threshold_accepted()
            if results.metrics is not None or curation is None:
                estimates.idx_components = thr
            if estimates.idx_components is not None:
                estimates.idx_components_bad = np.setdiff1d(
                    np.arange(estimates.A.shape[1]), estimates.idx_components
                )
    except InputError as exc:
        if name in exc.message:
            raise ResultsFileError("path", exc.message) from None
        raise ResultsFileError("path", f"{name}: {part}: {exc}") from None
    except (
        OSError,
        KeyError,
        ValueError,
        TypeError,
        IndexError,
        AttributeError,
        RuntimeError,
    ) as exc:
        raise ResultsFileError(
            "path",
            f"{name} is damaged or not in the results layout: cannot read {part} "
            f"({type(exc).__name__}: {exc})",
        ) from None
    return results
