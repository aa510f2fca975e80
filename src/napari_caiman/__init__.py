"""napari-caiman: calcium-imaging analysis (motion correction, CNMF, evaluation) in napari."""

try:
    from ._version import __version__
except ImportError:  # pragma: no cover - not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
