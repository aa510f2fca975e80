"""napari-caiman: calcium-imaging analysis (motion correction, CNMF, evaluation) in napari.

The Python API (no napari needed)::

    from napari_caiman import Batch, run_pipeline, load_results
"""

from typing import Any

try:
    from ._version import __version__
except ImportError:  # pragma: no cover - not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "Batch", "run_pipeline", "load_results", "save_results", "CaimanParams"]

_LAZY = {
    "Batch": ("napari_caiman.app.batch", "Batch"),
    "run_pipeline": ("napari_caiman.app.api", "run_pipeline"),
    "load_results": ("napari_caiman.io.results_file", "load_results"),
    "save_results": ("napari_caiman.io.results_file", "save_results"),
    "CaimanParams": ("napari_caiman.engine.params", "CaimanParams"),
}


def __getattr__(name: str) -> Any:
    # imported on first use, so that napari's plugin discovery stays light
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'napari_caiman' has no attribute {name!r}")
