"""The headless application: runs, the batch queue, Dask, the command line, the demo, the public API.

Uses :mod:`napari_caiman.engine` (algorithms) and :mod:`napari_caiman.io`
(file formats); never Qt, magicgui, vispy or napari (tests/test_layers.py).
"""
