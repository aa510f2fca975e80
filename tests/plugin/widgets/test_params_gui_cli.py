"""The docks and the CLI run a movie with the same parameters (2D and 3D).

The user's two paths: the Motion correction and CNMF docks (docked from the
manifest, movie chosen, one gSig and K typed, Run clicked) and
``napari-caiman run movie.tif --steps motion,cnmf --set gSig=... --set K=...``.
Both sets of parameters the steps ran with are resolved for the movie
(``engine.resolve.resolve``) and must be equal, planes defaults of a volume
included; the forms' fields, tooltips and ranges are the schema's.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from magicgui.widgets import FloatSpinBox, SpinBox

from napari_caiman.app.cli import main
from napari_caiman.engine.resolve import resolve
from napari_caiman.engine.schema import SPEC_BY_NAME
from napari_caiman.io.results_file import load_results

pytestmark = pytest.mark.gui

GROUPS = ("motion", "init", "patch", "temporal", "merging", "quality")


def _dock_runs(viewer, wait_done, movie, gsig_yx, K):
    """Motion then CNMF through the docks; the parameters each ran with."""
    _, motion = viewer.window.add_plugin_dock_widget("napari-caiman", "Motion correction")
    _, cnmf = viewer.window.add_plugin_dock_widget("napari-caiman", "CNMF")
    raw = viewer.add_image(movie, name="raw")
    motion.movie.value = raw
    motion.runner.run_button.native.click()
    wait_done(motion)
    assert motion.last_params is not None, motion.runner.status.value
    cnmf.movie.value = viewer.layers["raw corrected"]
    for box, v in zip(cnmf.gSig.boxes, gsig_yx, strict=False):  # y, x typed; z as the dock fills it
        box.value = v
    cnmf.K.value = K
    cnmf.runner.run_button.native.click()
    wait_done(cnmf, 60_000)
    assert cnmf.last_params is not None, cnmf.runner.status.value
    return motion, cnmf


def _cli_run(tmp_path, movie, gsig_yx, K):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie)
    out = tmp_path / "out.h5"
    assert (
        main(
            [
                "run",
                str(path),
                "--steps",
                "motion,cnmf",
                "--output",
                str(out),
                "--set",
                f"gSig={tuple(gsig_yx)!r}",
                "--set",
                f"K={K}",
                "-q",
            ]
        )
        == 0
    )
    return load_results(out)


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_docks_and_cli_resolve_the_same_parameters(
    viewer, wait_done, tmp_path, movie_2d, movie_3d, dim, capsys
):
    movie = np.asarray((movie_2d if dim == "2d" else movie_3d).movie, dtype=np.float32)
    gsig, K = (3, 3), 6
    motion, cnmf = _dock_runs(viewer, wait_done, movie, gsig, K)
    results = _cli_run(tmp_path, movie, gsig, K)
    capsys.readouterr()
    shape = movie.shape
    cli = resolve(results.params, shape)
    gui_motion = resolve(motion.last_params, shape, ["motion"])
    gui_cnmf = resolve(cnmf.last_params, shape, ["cnmf"])
    assert gui_motion.motion == cli.motion
    assert gui_cnmf.cnmf == cli.cnmf
    for group in GROUPS:
        src = gui_motion if group == "motion" else gui_cnmf
        assert src.params.group(group) == cli.params.group(group), group
    if dim == "3d":
        # the volume defaults: z shift 2 and gSig 2 planes on both paths (not the repeated y/x value)
        assert cli.params["max_shifts"] == (6, 6, 2) and cli.motion.max_shifts == (2, 6, 6)
        assert cli.params["gSig"] == (3, 3, 2) and cli.cnmf.gSig == (2.0, 3.0, 3.0)
    else:
        assert cli.cnmf.gSig == (3.0, 3.0) and cli.cnmf.gSiz == (7, 7)
    # the same parameters on the same movie: the same components
    assert cnmf.last_result.estimates.A.shape == results.estimates.A.shape


def test_forms_take_their_fields_from_the_schema(viewer):
    _, motion = viewer.window.add_plugin_dock_widget("napari-caiman", "Motion correction")
    _, cnmf = viewer.window.add_plugin_dock_widget("napari-caiman", "CNMF")
    for widget, names in (
        (motion, ("max_shifts", "niter_rig", "border_nan", "pw_rigid", "gSig_filt")),
        (cnmf, ("gSig", "K", "merge_thr", "fr", "rf", "p")),
    ):
        for name in names:
            field = getattr(widget, name)
            spec = SPEC_BY_NAME[name]
            assert field.tooltip == spec.tooltip, name
            if spec.form is not None:
                lo, hi, _ = spec.form
                box = field.boxes[0] if hasattr(field, "boxes") else field
                assert (box.min, box.max) == (lo, hi), name
    # gSig boxes take half planes (the schema's step 0.5), K is an integer box (step None)
    assert cnmf.gSig.fractional and cnmf.gSig.boxes[0].step == 0.5
    assert isinstance(cnmf.K, SpinBox) and isinstance(cnmf.merge_thr, FloatSpinBox)
