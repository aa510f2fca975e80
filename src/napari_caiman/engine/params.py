"""Parameters with CaImAn's names, groups and defaults.

A CaImAn user's flat ``params_dict`` (as given to ``CNMFParams(params_dict=...)``)
works here unchanged: :meth:`CaimanParams.from_dict` accepts it, rejects
unknown names with the closest known ones, and validates the values the
native engine uses. Per-axis values keep CaImAn's order (rows, cols[, planes]).

Some names live in several CaImAn groups (``nb``, ``p``, ``min_SNR`` ...); as in
CaImAn, setting the flat name sets it in every group that has it, so values
are stored flat.

Examples
--------
>>> p = CaimanParams.from_dict({"max_shifts": (4, 4), "pw_rigid": True})
>>> p.group("motion")["max_shifts"]
(4, 4)
>>> parse_kwargs("{'ssub': 2, 'tsub': 2}")
{'ssub': 2, 'tsub': 2}
"""

from __future__ import annotations

import ast
import copy
import difflib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from . import param_specs as _param_specs
from .errors import InputError

# CaImAn's parameter groups, names and defaults (CaImAn 1.12 CNMFParams).
# None stands for CaImAn's "computed later / not set" default.
DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {
        "fnames": None,
        "dims": None,
        "fr": 30,
        "decay_time": 0.4,
        "dxy": (1, 1),
        "var_name_hdf5": "mov",
        "caiman_version": None,
        "last_commit": None,
        "mmap_F": None,
        "mmap_C": None,
    },
    "patch": {
        "border_pix": 0,
        "del_duplicates": False,
        "in_memory": True,
        "low_rank_background": True,
        "memory_fact": 1,
        "n_processes": 1,
        "nb_patch": 1,
        "only_init": True,
        "p_patch": 0,
        "remove_very_bad_comps": False,
        "rf": None,
        "skip_refinement": False,
        "p_ssub": 2,
        "stride": None,
        "p_tsub": 2,
    },
    "preprocess": {
        "check_nan": True,
        "compute_g": False,
        "include_noise": False,
        "lags": 5,
        "max_num_samples_fft": 3 * 1024,
        "n_pixels_per_process": None,
        "noise_method": "mean",
        "noise_range": (0.25, 0.5),
        "p": 2,
        "pixels": None,
        "s_min": None,
        "sn": None,
    },
    "init": {
        "K": 30,
        "SC_kernel": "heat",
        "SC_sigma": 1,
        "SC_thr": 0,
        "SC_normalize": True,
        "SC_use_NN": False,
        "SC_nnn": 20,
        "alpha_snmf": 0.5,
        "center_psf": False,
        "gSig": (5, 5),
        "gSiz": None,
        "greedyroi_nmf_init_method": "nndsvdar",
        "greedyroi_nmf_max_iter": 200,
        "init_iter": 2,
        "kernel": None,
        "lambda_gnmf": 1,
        "maxIter": 5,
        "max_iter_snmf": 500,
        "method_init": "greedy_roi",
        "min_corr": 0.85,
        "min_pnr": 20,
        "nIter": 5,
        "nb": 1,
        "normalize_init": True,
        "options_local_NMF": None,
        "perc_baseline_snmf": 20,
        "ring_size_factor": 1.5,
        "rolling_length": 100,
        "rolling_sum": True,
        "seed_method": "auto",
        "sigma_smooth_snmf": (0.5, 0.5, 0.5),
        "snmf_l1_ratio": 0.0,
        "ssub": 1,
        "ssub_B": 2,
        "tsub": 1,
    },
    "spatial": {
        "block_size_spat": 5000,
        "dist": 3,
        "expandCore": None,
        "extract_cc": True,
        "maxthr": 0.1,
        "medw": None,
        "method_exp": "dilate",
        "method_ls": "lasso_lars",
        "n_pixels_per_process": None,
        "nb": 1,
        "normalize_yyt_one": True,
        "nrgthr": 0.9999,
        "num_blocks_per_run_spat": 20,
        "se": None,
        "ss": None,
        "thr_method": "nrg",
        "update_background_components": True,
    },
    "temporal": {
        "ITER": 2,
        "bas_nonneg": False,
        "block_size_temp": 5000,
        "fudge_factor": 0.96,
        "lags": 5,
        "optimize_g": False,
        "memory_efficient": False,
        "method_deconvolution": "oasis",
        "nb": 1,
        "noise_method": "mean",
        "noise_range": (0.25, 0.5),
        "num_blocks_per_run_temp": 20,
        "p": 2,
        "s_min": None,
        "solvers": ("ECOS", "SCS"),
        "verbosity": False,
    },
    "merging": {
        "do_merge": True,
        "merge_thr": 0.8,
        "merge_parallel": False,
        "max_merge_area": None,
    },
    "quality": {
        "SNR_lowest": 0.5,
        "cnn_lowest": 0.1,
        "gSig_range": None,
        "min_SNR": 2.5,
        "min_cnn_thr": 0.9,
        "rval_lowest": -1,
        "rval_thr": 0.8,
        # CaImAn's default is True; None = the backend's default: off on the native
        # backend (it has no CNN), CaImAn's True on backend='caiman' (not sent, see caiman_params)
        "use_cnn": None,
        "use_ecc": False,
        "max_ecc": 3,
    },
    "motion": {
        "border_nan": True,
        "gSig_filt": None,
        "is3D": False,
        "max_deviation_rigid": 3,
        "max_shifts": (6, 6),
        "min_mov": None,
        "niter_rig": 1,
        "nonneg_movie": True,
        "num_frames_split": 80,
        "num_splits_to_process_els": None,
        "num_splits_to_process_rig": None,
        "overlaps": (32, 32),
        "pw_rigid": False,
        "shifts_interpolate": False,
        "shifts_opencv": True,
        "splits_els": 14,
        "splits_rig": 14,
        "strides": (96, 96),
        "upsample_factor_grid": 4,
        "use_cuda": False,
        "indices": None,
    },
    "online": {
        "N_samples_exceptionality": None,
        "batch_update_suff_stat": False,
        "dist_shape_update": False,
        "ds_factor": 1,
        "epochs": 1,
        "expected_comps": 500,
        "full_XXt": False,
        "init_batch": 200,
        "init_method": "bare",
        "iters_shape": 5,
        "max_comp_update_shape": None,
        "max_num_added": 5,
        "max_shifts_online": 10,
        "min_SNR": 2.5,
        "min_num_trial": 5,
        "minibatch_shape": 100,
        "minibatch_suff_stat": 5,
        "motion_correct": True,
        "movie_name_online": "online_movie.mp4",
        "normalize": False,
        "n_refit": 0,
        "num_times_comp_updated": None,
        "opencv_codec": "H264",
        "path_to_model": None,
        "ring_CNN": False,
        "rval_thr": 0.8,
        "save_online_movie": False,
        "show_movie": False,
        "simultaneously": False,
        "sniper_mode": False,
        "stop_detection": False,
        "test_both": False,
        "thresh_CNN_noisy": 0.5,
        "thresh_fitness_delta": -50,
        "thresh_fitness_raw": None,
        "thresh_overlap": 0.5,
        "update_freq": 200,
        "update_num_comps": True,
        "use_corr_img": False,
        "use_dense": True,
        "use_peak_max": True,
        "W_update_factor": 1,
    },
    "ring_CNN": {
        "n_channels": 2,
        "use_bias": False,
        "use_add": False,
        "pct": 0.01,
        "patience": 3,
        "max_epochs": 100,
        "width": 5,
        "loss_fn": "pct",
        "lr": 1e-3,
        "lr_scheduler": None,
        "path_to_model": None,
        "remove_activity": False,
        "reuse_model": False,
    },
}

#: Parameters the plugin adds to CaImAn's set (not CaImAn names).
EXTRA_DEFAULTS: dict[str, dict[str, Any]] = {
    "napari_caiman": {
        "backend": "native",
        # shape thresholds of the evaluation (engine.shapes / engine.evaluation)
        "min_solidity": 0.6,
        "max_pieces": 1,
        "min_area_ratio": 0.075,
        "max_area_ratio": 4.0,
        # a weak fragment of a stronger accepted component (engine.duplicates)
        "max_duplicate": 0.5,
        # footprint pixels below this many standard errors are dropped (engine.cnmf.steps.spatial_step)
        "footprint_noise_thr": 2.0,
        # anatomical seeding (engine.cnmf.anatomy)
        "seed_anatomy": False,
        "accept_anatomy": True,
        "anatomy_thr": 1.0,
        "anatomy_detector": "builtin",  # or "cellpose" (optional package)
        # classifier learnt from curation (engine.classifier): a model file, applied to undecided components
        "classifier": None,
        "min_classifier_prob": 0.5,
        # bytes or a size text ("4GB"); None: half the RAM available at start (engine.memory)
        "memory_limit": None,
    },
}

ALL_GROUPS: dict[str, dict[str, Any]] = {**DEFAULTS, **EXTRA_DEFAULTS}

#: name -> groups that hold it
GROUPS_OF: dict[str, tuple[str, ...]] = {}
for _g, _names in ALL_GROUPS.items():
    for _n in _names:
        GROUPS_OF[_n] = GROUPS_OF.get(_n, ()) + (_g,)


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """Parse the kwargs text box: a Python/JSON dict literal of parameters.

    Parsed with :func:`ast.literal_eval` (never ``eval``), so only literals are
    allowed. ``None``/empty text gives ``{}``. JSON spellings ``true``,
    ``false`` and ``null`` are accepted too.

    Raises
    ------
    InputError
        (argument ``"kwargs"``) when the text is not a dict literal.

    Examples
    --------
    >>> parse_kwargs("{'ssub': 2, 'gSig': (4, 4)}")
    {'ssub': 2, 'gSig': (4, 4)}
    """
    if text is None or not str(text).strip():
        return {}
    text = str(text).strip()
    if not text.startswith("{"):
        text = "{" + text + "}"
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        try:
            value = json.loads(text)
        except ValueError:
            raise InputError(
                "kwargs",
                f"could not read {text!r} as a dict of parameters, e.g. {{'ssub': 2, 'tsub': 2}}",
            ) from None
    if not isinstance(value, dict):
        raise InputError("kwargs", f"expected a dict of parameters, got {type(value).__name__}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise InputError("kwargs", f"parameter names must be strings, got {bad!r}")
    return value


def close_matches(name: str, n: int = 3) -> list[str]:
    """Known parameter names closest to ``name`` (case-insensitive)."""
    lower = {k.lower(): k for k in GROUPS_OF}
    hits = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)
    return [lower[h] for h in hits]


def _unknown_message(name: str) -> str:
    hits = close_matches(name)
    hint = f"; did you mean {', '.join(repr(h) for h in hits)}?" if hits else ""
    return f"unknown parameter {name!r}{hint}"


# --- validators for the values the native engine uses -----------------------

def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_positive_number(name: str, v: Any, *, allow_zero: bool = False) -> None:
    if not _is_number(v) or v < 0 or (v == 0 and not allow_zero):
        want = "a number >= 0" if allow_zero else "a number > 0"
        raise InputError(name, f"expected {want}, got {v!r}")


def _check_int(name: str, v: Any, minimum: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise InputError(name, f"expected an integer >= {minimum}, got {v!r}")


def _check_per_axis(name: str, v: Any, minimum: float, *, integer: bool, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    values = v if isinstance(v, (tuple, list)) else (v,)
    if not 1 <= len(values) <= 3:
        raise InputError(name, f"expected 1 to 3 values (rows, cols[, planes]), got {v!r}")
    for x in values:
        ok = isinstance(x, int) if integer else _is_number(x)
        if not ok or isinstance(x, bool) or x < minimum:
            kind = "integers" if integer else "numbers"
            raise InputError(name, f"expected {kind} >= {minimum} (rows, cols[, planes]), got {v!r}")


def _check_choice(name: str, v: Any, choices: tuple) -> None:
    if v not in choices:
        raise InputError(name, f"expected one of {', '.join(repr(c) for c in choices)}; got {v!r}")


def _check_range(name: str, v: Any, lo: float, hi: float) -> None:
    if not _is_number(v) or not lo <= v <= hi:
        raise InputError(name, f"expected a number between {lo} and {hi}, got {v!r}")


def _check_bool(name: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise InputError(name, f"expected True or False, got {v!r}")


def _check_memory_limit(name: str, v: Any) -> None:
    from .memory import parse_bytes

    parse_bytes(v, name)


#: The checks of the values the native engine uses, built from the one table of
#: parameter specs (name, type, range, meaning): :mod:`.param_specs`.
VALIDATORS: dict[str, Callable[[str, Any], None]] = _param_specs.validators()


def _integral(value: Any) -> Any:
    """Floats with an integer value (and tuples of them) as ints."""
    if isinstance(value, tuple):
        return tuple(_integral(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _normalize(value: Any) -> Any:
    """Lists and numpy arrays become tuples of Python scalars (JSON and HDF5 have no tuples)."""
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, list):
        return tuple(_normalize(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_normalize(v) for v in value)
    return value


class CaimanParams:
    """A validated, flat set of CaImAn parameters.

    Build it with :meth:`defaults` or :meth:`from_dict`; read one stage's
    parameters with :meth:`group`; export with :meth:`to_dict` (flat) or
    :meth:`to_groups` (CaImAn's nested layout, as saved in results files).
    """

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values: dict[str, Any] = {}
        self._explicit: set[str] = set()  # names given by the user (even at their default value)
        for group in ALL_GROUPS.values():
            for name, default in group.items():
                self._values.setdefault(name, copy.deepcopy(default))
        if values:
            self.update(values)

    # construction ---------------------------------------------------------
    @classmethod
    def defaults(cls) -> CaimanParams:
        """All parameters at CaImAn's defaults."""
        return cls()

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None = None, *, strict: bool = True) -> CaimanParams:
        """Build from a flat dict of CaImAn names, or CaImAn's nested groups.

        Parameters
        ----------
        values : mapping
            ``{"max_shifts": (6, 6), ...}`` or ``{"motion": {...}, "init": {...}}``.
        strict : bool
            Reject unknown names (default). With ``strict=False`` they are
            dropped silently and values this version cannot use are replaced
            by defaults with a warning, integral floats read as integers (used
            when reading files from CaImAn, possibly a newer version).

        Raises
        ------
        InputError
            Unknown names (message lists the close matches) or invalid values.
        """
        flat = cls._flatten(values or {})
        if strict:
            return cls(flat)
        params = cls()
        for name, value in flat.items():
            if name not in GROUPS_OF:
                continue
            try:
                params.update({name: value})
            except InputError:
                # e.g. CaImAn stores gSiz (7.0, 7.0, 5.0) when gSig is fractional:
                # take integral floats as integers; otherwise keep the default
                try:
                    params.update({name: _integral(_normalize(value))})
                except InputError as exc:
                    import logging

                    logging.getLogger(__name__).warning("parameter %s=%r not used (%s); default %r kept",
                                                        name, value, exc, params[name])
        return params

    @classmethod
    def from_json(cls, path: str) -> CaimanParams:
        """Read a flat (or grouped) JSON parameter file."""
        from pathlib import Path

        p = Path(path)
        if not p.is_file():
            raise InputError("params", f"parameter file not found: {str(p)!r}")
        try:
            values = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise InputError("params", f"cannot read {str(p)!r} as JSON: {exc}") from None
        if not isinstance(values, dict):
            raise InputError("params", f"{str(p)!r} must hold a JSON object of parameters")
        return cls.from_dict(values)

    @staticmethod
    def _flatten(values: Mapping[str, Any]) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for key, value in values.items():
            if key in ALL_GROUPS and isinstance(value, Mapping):
                flat.update(value)
            else:
                flat[key] = value
        return flat

    # access ---------------------------------------------------------------
    def update(self, values: Mapping[str, Any]) -> CaimanParams:
        """Set several parameters (flat or grouped), validating each. Returns self."""
        flat = self._flatten(values)
        unknown = [k for k in flat if k not in GROUPS_OF]
        if unknown:
            raise InputError(unknown[0], _unknown_message(unknown[0]))
        new = {k: _normalize(v) for k, v in flat.items()}
        for name, value in new.items():
            check = VALIDATORS.get(name)
            if check is not None and value is not None:
                check(name, value)
            elif check is not None and value is None and name not in _NONE_OK:
                raise InputError(name, "a value is required (got None)")
        self._values.update(new)
        self._explicit.update(new)
        return self

    def is_set(self, name: str) -> bool:
        """Whether ``name`` was given (a value from the user or a file), not left at its default."""
        return name in self._explicit or name in self.changed()

    def __getitem__(self, name: str) -> Any:
        if name not in self._values:
            raise KeyError(_unknown_message(name))
        return self._values[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def group(self, name: str) -> dict[str, Any]:
        """The parameters of one CaImAn group (``"motion"``, ``"init"``, ...)."""
        if name not in ALL_GROUPS:
            raise InputError("group", f"unknown group {name!r}; groups are {', '.join(ALL_GROUPS)}")
        return {k: self._values[k] for k in ALL_GROUPS[name]}

    def to_dict(self) -> dict[str, Any]:
        """Flat copy of every parameter."""
        return copy.deepcopy(self._values)

    def to_groups(self) -> dict[str, dict[str, Any]]:
        """CaImAn's nested layout ``{group: {name: value}}``."""
        return {g: self.group(g) for g in ALL_GROUPS}

    def changed(self) -> dict[str, Any]:
        """Only the parameters that differ from the defaults (for summaries)."""
        base = CaimanParams()._values
        return {k: v for k, v in self._values.items() if base.get(k) != v}

    def copy(self) -> CaimanParams:
        new = CaimanParams(self.changed())
        new._explicit = set(self._explicit)
        return new

    def to_json(self, *, only_changed: bool = False) -> str:
        """JSON text of the flat dict (tuples become lists)."""
        values = self.changed() if only_changed else self.to_dict()
        return json.dumps(values, indent=2, sort_keys=True, default=repr)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CaimanParams) and self._values == other._values

    def __repr__(self) -> str:
        return f"CaimanParams({self.changed()!r})"


# Validated names whose CaImAn default is None, so None stays allowed.
_NONE_OK = {k for k, g in ((k, GROUPS_OF[k]) for k in VALIDATORS) if any(ALL_GROUPS[x][k] is None for x in g)}
