"""Sample data: small synthetic calcium-imaging movies with known motion.

Both samples come from :mod:`napari_caiman.engine.synthetic` with a fixed seed,
so they are the same every time and quick to make (well under 2 s).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Shapes of the samples, in napari's axis order.
SHAPE_2D = (300, 128, 128)  # (T, Y, X)
SHAPE_3D = (100, 8, 64, 64)  # (T, Z, Y, X)


def _layer_tuple(
    movie: np.ndarray, name: str, axis_labels: tuple[str, ...]
) -> tuple[Any, dict, str]:
    lo, hi = np.percentile(movie.mean(axis=0), (0.5, 99.8))
    meta = {
        "name": name,
        "axis_labels": axis_labels,
        "contrast_limits": (float(lo), float(max(hi, lo + 1e-6))),
        "colormap": "gray",
    }
    return (movie, meta, "image")


def sample_movie_2d() -> list[tuple[Any, dict, str]]:
    """Return a (300, 128, 128) float32 movie.

    ~30 neurons, rigid drift of ~4 px plus ~1.5 px of non-rigid (position-dependent) motion.

    Returns
    -------
    list of layer data tuples
        One Image layer named ``"synthetic 2D"``.
    """
    from ..engine.synthetic import make_movie_2d

    synth = make_movie_2d(
        SHAPE_2D,
        n_neurons=30,
        rigid_motion=4.0,
        nonrigid_motion=1.5,
        seed=0,
        return_flow=False,
        return_truth=False,
    )
    return [
        _layer_tuple(np.asarray(synth.movie, dtype=np.float32), "synthetic 2D", ("t", "y", "x"))
    ]


def sample_movie_3d() -> list[tuple[Any, dict, str]]:
    """Return a (100, 8, 64, 64) float32 volumetric movie with rigid motion (~2 px in y/x, ~1 plane in z).

    Returns
    -------
    list of layer data tuples
        One Image layer named ``"synthetic 3D"``.
    """
    from ..engine.synthetic import make_movie_3d

    synth = make_movie_3d(
        SHAPE_3D,
        n_neurons=20,
        rigid_motion=(2.0, 2.0, 1.0),
        seed=0,
        return_flow=False,
        return_truth=False,
    )
    return [
        _layer_tuple(
            np.asarray(synth.movie, dtype=np.float32), "synthetic 3D", ("t", "z", "y", "x")
        )
    ]
