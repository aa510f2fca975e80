"""Movie input/output: lazy opening (TIFF memmap, HDF5, multi-file) and saving."""

from .movie import SUPPORTED_SUFFIXES, movie_files, open_movie, save_movie

__all__ = ["open_movie", "save_movie", "movie_files", "SUPPORTED_SUFFIXES"]
