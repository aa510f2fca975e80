"""Native CNMF source extraction (no Qt, no napari).

>>> from napari_caiman.engine.cnmf import cnmf, iter_cnmf, Estimates
"""

from .compare import match_components
from .deconvolution import deconvolve, estimate_ar, oasis
from .estimates import (
    Estimates,
    caiman_dims,
    caiman_permutation,
    footprint_to_image,
    frames_to_pixels,
    images_to_pixels,
    pixels_to_images,
)
from .fit import cnmf, iter_cnmf
from .noise import psd_noise

__all__ = [
    "Estimates",
    "cnmf",
    "iter_cnmf",
    "deconvolve",
    "estimate_ar",
    "oasis",
    "psd_noise",
    "caiman_dims",
    "caiman_permutation",
    "footprint_to_image",
    "frames_to_pixels",
    "images_to_pixels",
    "pixels_to_images",
    "match_components",
]
