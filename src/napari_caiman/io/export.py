"""Export results: NWB (pynwb ophys), CSV traces, TIFF footprint stacks.

Every writer goes through :func:`~napari_caiman.engine.atomic.atomic_path`
(temporary name in the same folder, renamed when complete), so a failed or
interrupted export never leaves a partial file, and every failure to write is
an :class:`~napari_caiman.engine.errors.InputError` naming the output.

NWB layout (:func:`export_nwb`)
-------------------------------
* ``Device`` ``'Microscope'``, ``OpticalChannel`` ``'OpticalChannel'``,
  ``ImagingPlane`` ``'ImagingPlane'`` (``imaging_rate = fr``, ``grid_spacing``
  if given, in CaImAn's axis order (rows, cols[, planes]) and
  ``grid_spacing_unit``).
* optional ``TwoPhotonSeries`` ``'TwoPhotonSeries'`` in acquisition that
  *links* the movie file (``external_file``, ``format='external'``) when
  ``movie_path`` is given; the movie itself is not copied.
* processing module ``'ophys'``:
  ``ImageSegmentation`` -> ``PlaneSegmentation`` ``'PlaneSegmentation'``
  with one ROI per exported component (ROI ``id`` = component index in the
  estimates, plus columns ``accepted`` and, if known, ``SNR_comp`` and
  ``r_values``); ``Fluorescence`` -> ``RoiResponseSeries``
  ``'RoiResponseSeries'`` (``C``, (T, n_rois), ``rate = fr``); with
  ``F_dff``: ``DfOverF`` -> ``RoiResponseSeries`` ``'dff'``; with
  ``include_deconvolved``: ``Fluorescence`` also holds ``'Deconvolved'`` (``S``).
* Masks: ``mask_type='image'`` writes image masks the way CaImAn's
  ``save_NWB`` does: a 2D footprint as a (Y, X) image (rows, cols), a 3D one
  as a (Y, X, Z) volume (CaImAn's dims order; pynwb accepts 2D and 3D image
  masks).  ``mask_type='pixel'`` writes sparse pixel masks ``(x, y, weight)``
  for 2D or voxel masks ``(x, y, z, weight)`` for 3D with x = column, y = row,
  z = plane (NWB's names); use it for thousands of ROIs on large frames.
  ``'auto'`` (default) picks image masks when they take at most 256 MB.

CSV (:func:`export_csv`): a header row ``time_s,<id>,<id>...``, one row per
frame, time = frame / fr.

TIFF (:func:`export_masks_tiff`): a float32 stack (n_rois, *dims) in array
order ((Z,) Y, X), footprints as stored in ``A`` (unit L2 norm), with the
component indices in tifffile's shaped metadata (``TiffFile.shaped_metadata[0]["ids"]``);
``labels=True`` writes instead one uint16/uint32 label image (dims) where
each pixel holds 1 + the index (in the exported list) of the footprint with
the largest weight there (0: none) - overlaps are resolved by weight.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from ..engine.atomic import atomic_path
from ..engine.cnmf.estimates import pixels_to_images
from ..engine.errors import InputError

__all__ = ["export_nwb", "export_csv", "export_masks_tiff", "selected_components"]

_MAX_IMAGE_MASK_BYTES = 256 << 20


def selected_components(estimates: Any, accepted_only: bool = True, idx: Any = None) -> np.ndarray:
    """Return the indices of the components to export.

    ``idx`` if given, else the accepted ones (``estimates.idx_components``; all when not evaluated)
    or all.
    """
    K = int(estimates.A.shape[1])
    if idx is not None:
        idx = np.asarray(idx)
        if idx.dtype == bool:
            if idx.size != K:
                raise InputError("idx", f"boolean mask of length {idx.size} for {K} components")
            return np.flatnonzero(idx)
        idx = idx.astype(np.int64).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= K):
            raise InputError("idx", f"component indices must be in [0, {K})")
        return idx
    if accepted_only and getattr(estimates, "idx_components", None) is not None:
        good = np.asarray(estimates.idx_components, dtype=np.int64).ravel()
        if good.size and (good.min() < 0 or good.max() >= K):
            raise InputError("estimates", f"idx_components out of range for {K} components")
        return good
    return np.arange(K)


def _check_fr(fr: Any) -> float:
    try:
        fr = float(fr)
    except (TypeError, ValueError):
        raise InputError("fr", f"must be a positive frame rate in Hz, got {fr!r}") from None
    if not (fr > 0 and np.isfinite(fr)):
        raise InputError("fr", f"must be a positive frame rate in Hz, got {fr!r}")
    return fr


def _write_atomic(path: Path, argument: str, writer) -> Path:
    try:
        with atomic_path(path) as tmp:
            writer(tmp)
    except InputError as exc:
        if exc.argument == argument:
            raise
        raise InputError(argument, exc.message) from None
    except OSError as exc:
        raise InputError(argument, f"cannot write {str(path)!r}: {exc}") from None
    return path


# ----------------------------------------------------------------------------- NWB


def export_nwb(
    path: str | os.PathLike,
    estimates: Any,
    *,
    fr: float,
    accepted_only: bool = True,
    idx: Any = None,
    F_dff: np.ndarray | None = None,
    movie_path: str | os.PathLike | None = None,
    session_description: str = "calcium imaging analysed with napari-caiman (CNMF)",
    identifier: str | None = None,
    session_start_time: _dt.datetime | None = None,
    experimenter: Any = None,
    institution: str | None = None,
    lab: str | None = None,
    experiment_description: str | None = None,
    grid_spacing: Any = None,
    grid_spacing_unit: str = "micrometers",
    excitation_lambda: float = float("nan"),
    emission_lambda: float = float("nan"),
    indicator: str = "unknown",
    location: str = "unknown",
    device_name: str = "Microscope",
    metrics: Any = None,
    include_deconvolved: bool = False,
    mask_type: str = "pixel",
    trace_unit: str = "a.u.",
) -> Path:
    """Write the (accepted) components to an NWB file with pynwb's ophys types.

    Parameters
    ----------
    path : output ``.nwb`` file (replaced if it exists).
    estimates : Estimates
    fr : frame rate, Hz.
    accepted_only, idx : which components (see :func:`selected_components`).
    F_dff : (K, T) dF/F of *all* components (or (n_rois, T) of the exported
        ones), e.g. from :func:`~napari_caiman.engine.dff.detrend_df_f`.
    movie_path : the movie file to link as an external TwoPhotonSeries.
    grid_spacing : pixel size per axis in CaImAn order (rows, cols[, planes]).
    metrics : optional evaluation Metrics: adds ``SNR_comp``/``r_values`` columns.
    mask_type : ``'pixel'`` (default: sparse pixel masks, voxel masks in 3D, a
        few bytes per footprint pixel), ``'image'`` (dense full-frame masks, as
        CaImAn writes them: K x frame floats) or ``'auto'`` (image masks up to
        256 MB).
    indicator, location, session_start_time, session_description : NWB metadata
        (the indicator, e.g. ``'GCaMP6f'``; the imaged brain area; when the
        session started, default now; what the session was).

    Returns the path.  See the module docstring for the layout.

    Raises
    ------
    InputError
        ``'nwb'``: pynwb missing or the file cannot be written (missing folder,
        no permission); ``'fr'``, ``'F_dff'``, ``'mask_type'``: bad arguments.
    """
    try:
        import pynwb
        from pynwb.ophys import (
            DfOverF,
            Fluorescence,
            ImageSegmentation,
            OpticalChannel,
            RoiResponseSeries,
            TwoPhotonSeries,
        )
    except ImportError:  # pragma: no cover - pynwb is a dependency
        raise InputError("nwb", "NWB export needs pynwb: pip install pynwb") from None
    import uuid

    path = Path(path)
    fr = _check_fr(fr)
    if mask_type not in ("auto", "image", "pixel", "voxel"):
        raise InputError("mask_type", f"must be 'auto', 'image' or 'pixel', got {mask_type!r}")
    sel = selected_components(estimates, accepted_only, idx)
    K = int(estimates.A.shape[1])
    dims = tuple(int(d) for d in estimates.dims)
    C = np.asarray(estimates.C)
    T = int(C.shape[1])
    if F_dff is not None:
        F_dff = np.asarray(F_dff)
        if F_dff.ndim != 2 or F_dff.shape[1] != T or F_dff.shape[0] not in (K, sel.size):
            raise InputError(
                "F_dff", f"must be (K={K}, T={T}) or (n_exported={sel.size}, T), got {F_dff.shape}"
            )
        if F_dff.shape[0] == K:
            F_dff = F_dff[sel]
    n_pix = int(np.prod(dims))
    if mask_type == "auto":
        mask_type = "image" if sel.size * n_pix * 4 <= _MAX_IMAGE_MASK_BYTES else "pixel"
    if mask_type == "voxel":
        mask_type = "pixel"

    start = session_start_time or _dt.datetime.now(_dt.UTC)
    if start.tzinfo is None:
        start = start.replace(tzinfo=_dt.UTC)
    kw: dict[str, Any] = {}
    if experimenter is not None:
        kw["experimenter"] = [experimenter] if isinstance(experimenter, str) else list(experimenter)
    for name, v in (
        ("institution", institution),
        ("lab", lab),
        ("experiment_description", experiment_description),
    ):
        if v is not None:
            kw[name] = v
    nwb = pynwb.NWBFile(
        session_description=session_description,
        identifier=identifier or str(uuid.uuid4()),
        session_start_time=start,
        **kw,
    )
    device = nwb.create_device(name=device_name)
    channel = OpticalChannel(
        name="OpticalChannel", description="imaging channel", emission_lambda=float(emission_lambda)
    )
    plane_kw: dict[str, Any] = {}
    if grid_spacing is not None:
        gs = np.atleast_1d(np.asarray(grid_spacing, dtype=float))
        if gs.size == 1:
            gs = np.repeat(gs, len(dims))
        if gs.size != len(dims):
            raise InputError(
                "grid_spacing", f"needs {len(dims)} values (rows, cols[, planes]), got {gs.size}"
            )
        plane_kw.update(grid_spacing=gs, grid_spacing_unit=grid_spacing_unit)
    plane = nwb.create_imaging_plane(
        name="ImagingPlane",
        optical_channel=channel,
        device=device,
        description=f"frames {dims} (array order)",
        excitation_lambda=float(excitation_lambda),
        imaging_rate=fr,
        indicator=indicator,
        location=location,
        **plane_kw,
    )
    if movie_path is not None:
        nwb.add_acquisition(
            TwoPhotonSeries(
                name="TwoPhotonSeries",
                imaging_plane=plane,
                external_file=[str(movie_path)],
                format="external",
                starting_frame=[0],
                num_samples=T,
                rate=fr,
                unit="n.a.",
                description="raw movie (linked, not copied)",
            )
        )

    ophys = nwb.create_processing_module(
        name="ophys", description="CNMF source extraction (napari-caiman)"
    )
    seg = ImageSegmentation()
    ophys.add(seg)
    ps = seg.create_plane_segmentation(
        name="PlaneSegmentation", description="CNMF footprints (A)", imaging_plane=plane
    )
    A = sparse.csc_matrix(estimates.A)[:, sel]
    accepted = np.zeros(K, bool)
    if getattr(estimates, "idx_components", None) is not None:
        accepted[selected_components(estimates, True)] = True
    else:
        accepted[:] = True
    ps.add_column("accepted", "accepted by component evaluation and curation")
    extra_cols = []
    if metrics is not None:
        for name, desc in (
            ("SNR_comp", "event-exceptionality SNR"),
            ("r_values", "spatial consistency r-value"),
        ):
            v = getattr(metrics, name, None)
            if v is not None and np.size(v) == K:
                ps.add_column(name, desc)
                extra_cols.append((name, np.asarray(v, dtype=float)))
    if mask_type == "image":
        images = pixels_to_images(A, dims).astype(np.float32)  # (n, (Z,) Y, X)
        if len(dims) == 3:
            images = np.moveaxis(images, 1, -1)  # (n, Y, X, Z): CaImAn's dims order
    for j, k in enumerate(sel):
        roi: dict[str, Any] = {"id": int(k), "accepted": bool(accepted[k])}
        for name, col in extra_cols:
            roi[name] = float(col[k])
        if mask_type == "image":
            roi["image_mask"] = images[j]
        else:
            col = A[:, j]
            img = pixels_to_images(col, dims)[0]
            nz = np.nonzero(img)
            w = img[nz].astype(float)
            if len(dims) == 2:
                roi["pixel_mask"] = [
                    (int(x), int(y), float(v)) for y, x, v in zip(nz[0], nz[1], w, strict=False)
                ]
            else:
                roi["voxel_mask"] = [
                    (int(x), int(y), int(z), float(v))
                    for z, y, x, v in zip(nz[0], nz[1], nz[2], w, strict=False)
                ]
        ps.add_roi(**roi)
    if sel.size:
        region = ps.create_roi_table_region(
            description="exported components", region=list(range(sel.size))
        )
    else:
        region = ps.create_roi_table_region(description="no components", region=[])
    fl = Fluorescence(name="Fluorescence")
    ophys.add(fl)
    fl.add_roi_response_series(
        RoiResponseSeries(
            name="RoiResponseSeries",
            data=np.ascontiguousarray(C[sel].T, dtype=np.float32),
            rois=region,
            unit=trace_unit,
            rate=fr,
            description="denoised calcium traces C (time x ROI)",
        )
    )
    if include_deconvolved and getattr(estimates, "S", None) is not None:
        fl.add_roi_response_series(
            RoiResponseSeries(
                name="Deconvolved",
                data=np.ascontiguousarray(np.asarray(estimates.S)[sel].T, dtype=np.float32),
                rois=region,
                unit=trace_unit,
                rate=fr,
                description="deconvolved activity S (time x ROI)",
            )
        )
    if F_dff is not None:
        dff = DfOverF(name="DfOverF")
        ophys.add(dff)
        dff.add_roi_response_series(
            RoiResponseSeries(
                name="dff",
                data=np.ascontiguousarray(F_dff.T, dtype=np.float32),
                rois=region,
                unit="dF/F",
                rate=fr,
                description="detrended dF/F (time x ROI)",
            )
        )

    def write(tmp: Path) -> None:
        with pynwb.NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwb)

    return _write_atomic(path, "nwb", write)


# ----------------------------------------------------------------------------- CSV


def export_csv(
    path: str | os.PathLike,
    traces: np.ndarray,
    ids: Any = None,
    fr: float = 30.0,
    *,
    fmt: str = "%.6g",
) -> Path:
    """Write traces (K, T) as CSV: a ``time_s`` column, then one column per component.

    ``ids`` (K,) label the columns (default 0..K-1).  Raises InputError
    (``'csv'``) when the file cannot be written.
    """
    traces = np.atleast_2d(np.asarray(traces, dtype=np.float64))
    if traces.ndim != 2:
        raise InputError("traces", f"must be (K, T), got shape {traces.shape}")
    K, T = traces.shape
    fr = _check_fr(fr)
    ids = np.arange(K) if ids is None else np.asarray(ids).ravel()
    if ids.size != K:
        raise InputError("ids", f"{ids.size} ids for {K} traces")
    header = ",".join(["time_s"] + [str(i) for i in ids.tolist()])
    data = np.column_stack([np.arange(T) / fr, traces.T]) if K else (np.arange(T) / fr)[:, None]

    def write(tmp: Path) -> None:
        np.savetxt(tmp, data, delimiter=",", header=header, comments="", fmt=fmt)

    return _write_atomic(Path(path), "csv", write)


# ----------------------------------------------------------------------------- TIFF


def export_masks_tiff(
    path: str | os.PathLike,
    estimates: Any,
    accepted_only: bool = True,
    *,
    idx: Any = None,
    labels: bool = False,
) -> Path:
    """Write footprints as a float32 TIFF stack (n, *dims), or a label image.

    See the module docstring.  Raises InputError (``'tiff'``) when the file
    cannot be written.
    """
    import tifffile

    sel = selected_components(estimates, accepted_only, idx)
    dims = tuple(int(d) for d in estimates.dims)
    A = sparse.csc_matrix(estimates.A)[:, sel]
    meta = {"ids": sel.tolist(), "content": "labels" if labels else "footprints"}
    if labels:
        lab = np.zeros(dims, np.uint32 if sel.size >= 65535 else np.uint16)
        if sel.size:
            imgs = pixels_to_images(A, dims)
            best = np.argmax(imgs, axis=0)
            anyw = np.max(imgs, axis=0) > 0
            lab[anyw] = best[anyw] + 1
        data = lab
    else:
        data = (
            pixels_to_images(A, dims).astype(np.float32)
            if sel.size
            else np.zeros((0, *dims), np.float32)
        )

    axes = ("ZYX"[-len(dims) :]) if labels else "Q" + "ZYX"[-len(dims) :]

    def write(tmp: Path) -> None:
        tifffile.imwrite(tmp, data, photometric="minisblack", metadata={"axes": axes, **meta})

    return _write_atomic(Path(path), "tiff", write)
