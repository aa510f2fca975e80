"""Computation backends.

``native`` is this package's own engine (:mod:`napari_caiman.engine`), always
available.  ``caiman`` runs the real CaImAn (GPL, installed separately; see
``docs/caiman.md``) in a separate process through
:mod:`.caiman_backend`; the step functions of :mod:`..pipeline` dispatch to it
when ``params["backend"] == "caiman"``.

Which Python runs CaImAn: the interpreter named by the environment variable
``NAPARI_CAIMAN_CAIMAN_PYTHON`` (e.g. the python of a conda environment that
holds CaImAn), by default the one running napari (``sys.executable``).

Detecting CaImAn never imports it here (importing it takes seconds and pulls
in TensorFlow): for the running interpreter we only look the package up
(:func:`importlib.util.find_spec` plus a look at its files), for another
interpreter we run that python with a tiny probe.  Results are cached per
interpreter; :func:`clear_cache` forgets them (e.g. after installing CaImAn).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

from ..errors import InputError

__all__ = [
    "ENV_PYTHON",
    "BACKENDS",
    "caiman_python",
    "caiman_status",
    "caiman_available",
    "require_caiman",
    "clear_cache",
]

#: Environment variable naming a python that has CaImAn.
ENV_PYTHON = "NAPARI_CAIMAN_CAIMAN_PYTHON"
#: Values of the ``backend`` parameter.
BACKENDS = ("native", "caiman")

#: Seconds the probe of another interpreter may take.
PROBE_TIMEOUT = 60.0

INSTALL_HINT = (
    "install it with conda-forge (`conda install -c conda-forge caiman`) or from source "
    "(https://github.com/flatironinstitute/CaImAn), or point the environment variable "
    f"{ENV_PYTHON} at a python that has it; see docs/caiman.md"
)

# The probe runs either here (exec) or as `python -c PROBE` in another
# interpreter: stdlib only, no import of caiman itself.
PROBE = r"""
import importlib.util, json, os, sys
def _probe():
    out = {"python": sys.executable, "version_info": list(sys.version_info[:3])}
    try:
        spec = importlib.util.find_spec("caiman")
    except Exception as exc:  # a broken caiman on the path
        out["state"] = "error"
        out["detail"] = f"{type(exc).__name__}: {exc}"
        return out
    if spec is None:
        out["state"] = "absent"
        return out
    locs = list(spec.submodule_search_locations or [])
    out["location"] = locs[0] if locs else (spec.origin or "")
    cnmf = [os.path.join(d, "source_extraction", "cnmf") for d in locs]
    ok = any(os.path.isfile(os.path.join(c, "__init__.py")) and os.path.isfile(os.path.join(c, "cnmf.py"))
             for c in cnmf)
    out["state"] = "ok" if ok else "impostor"
    try:
        import importlib.metadata as md
        out["version"] = md.version("caiman")
    except Exception:
        out["version"] = None
        for d in locs:
            v = os.path.join(os.path.dirname(d), "VERSION")
            if os.path.isfile(v):
                with open(v) as fh:
                    out["version"] = fh.read().strip()
                break
    missing = [m for m in ("numpy", "h5py", "tifffile") if importlib.util.find_spec(m) is None]
    out["missing"] = missing
    return out
"""

_cache: dict[str, tuple[bool, str]] = {}
_lock = threading.Lock()


def caiman_python() -> str:
    """Return the python interpreter that runs CaImAn.

    ``$NAPARI_CAIMAN_CAIMAN_PYTHON`` or ``sys.executable``.
    """
    value = os.environ.get(ENV_PYTHON, "").strip()
    return value or sys.executable


def _is_this_python(python: str) -> bool:
    # not realpath: a virtual environment's python is a symlink to the base
    # interpreter but has other packages
    return os.path.abspath(python) == os.path.abspath(sys.executable)


def _probe_here() -> dict:
    ns: dict = {}
    exec(compile(PROBE, "<napari_caiman caiman probe>", "exec"), ns)  # our own constant code
    return ns["_probe"]()


def _probe_other(python: str) -> dict:
    if not os.path.isfile(python) or not os.access(python, os.X_OK):
        return {"state": "no_python"}
    code = PROBE + "\nprint(json.dumps(_probe()))\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHOME"}
    try:
        proc = subprocess.run(
            [python, "-c", code],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return {"state": "no_python", "detail": f"{type(exc).__name__}: {exc}"}
    if proc.returncode != 0:
        return {"state": "no_python", "detail": (proc.stderr or proc.stdout).strip()[-500:]}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"state": "no_python", "detail": proc.stdout.strip()[-500:]}


def _message(info: dict, python: str, same: bool) -> tuple[bool, str]:
    where = "in this Python environment" if same else f"for {ENV_PYTHON}={python}"
    state = info.get("state")
    if state == "no_python":
        detail = info.get("detail")
        return False, (
            f"{ENV_PYTHON}={python!r} is not a working python interpreter"
            + (f" ({detail})" if detail else "")
            + "; set it to the python of the environment "
            "where CaImAn is installed (see docs/caiman.md)"
        )
    if state == "absent":
        return False, f"CaImAn is not installed {where}; {INSTALL_HINT}"
    if state == "error":
        return (
            False,
            f"CaImAn could not be looked up {where} ({info.get('detail')}); {INSTALL_HINT}",
        )
    if state == "impostor":
        return False, (
            f"the installed package named 'caiman' ({info.get('location')}) is the unrelated PyPI "
            "package (no caiman.source_extraction.cnmf); uninstall it (`pip uninstall caiman`) and "
            "install CaImAn from conda-forge (`conda install -c conda-forge caiman`) or from source; "
            "see docs/caiman.md"
        )
    missing = info.get("missing") or []
    if missing:
        return False, (
            f"CaImAn is installed {where} but {', '.join(missing)} missing there "
            "(the CaImAn worker needs numpy, h5py and tifffile)"
        )
    version = info.get("version") or "unknown version"
    return (
        True,
        f"CaImAn {version} at {info.get('location')} (python {info.get('python') or python})",
    )


def caiman_status(python: str | None = None) -> tuple[bool, str]:
    """Whether CaImAn can be used, and a message saying where it is or why not.

    Parameters
    ----------
    python : str, optional
        Interpreter to check; default :func:`caiman_python`.

    Returns
    -------
    (available, message) : (bool, str)
        ``(True, "CaImAn 1.12.1 at ... (python ...)")`` or ``(False, <what is
        wrong and how to fix it>)``.  Cached per interpreter.
    """
    python = python or caiman_python()
    key = os.path.abspath(python)
    with _lock:
        if key in _cache:
            return _cache[key]
    same = _is_this_python(python)
    info = _probe_here() if same else _probe_other(python)
    result = _message(info, python, same)
    with _lock:
        _cache[key] = result
    return result


def caiman_available(python: str | None = None) -> bool:
    """Return True when CaImAn can be run (see :func:`caiman_status`)."""
    return caiman_status(python)[0]


def require_caiman(python: str | None = None) -> str:
    """Return the status message, or raise :class:`InputError` saying why CaImAn cannot be used.

    The error names the argument ``"backend"``.
    """
    ok, message = caiman_status(python)
    if not ok:
        raise InputError("backend", f"backend 'caiman' is not available: {message}")
    return message


def clear_cache() -> None:
    """Forget detection results (after installing CaImAn, or in tests)."""
    with _lock:
        _cache.clear()
