"""File formats: movies, the results HDF5, provenance, export.

Movies: lazy TIFF memmap, HDF5, CaImAn mmap, multi-file, saving. The results HDF5
(:mod:`.results_file`), provenance (:mod:`.provenance`), NWB/CSV/TIFF export (:mod:`.export`).

Uses the engine's data types; never the app or the napari side.
"""

from .movie import SUPPORTED_SUFFIXES, movie_files, open_movie, save_movie

__all__ = ["open_movie", "save_movie", "movie_files", "SUPPORTED_SUFFIXES"]
