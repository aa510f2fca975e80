"""Pure numerical engine: numpy/scipy/OpenCV only, never Qt or napari."""
