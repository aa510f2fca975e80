"""The docks and the CLI run a movie with the same parameters and accept the same
components (2D and 3D).

The user's two paths: the Motion correction, CNMF and Evaluation docks (docked
from the manifest, movie chosen, one gSig and K typed, Run / Evaluate clicked,
Save results answered) and ``napari-caiman run movie.tif --steps
motion,cnmf,evaluate --set gSig=... --set K=...`` (the CLI is a loop over
``app.api.run_pipeline``). Both sets of parameters the steps ran with are
resolved for the movie (``engine.resolve.resolve``) and must be equal, planes
defaults of a volume included, as must the evaluation thresholds and the
accepted components of the two saved files, with a size limit typed in the dock
and given to the CLI (``--set min_size=``), which an export of the dock's file
follows; the forms' fields, tooltips and ranges are the schema's.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from magicgui.widgets import FloatSpinBox, SpinBox

from napari_caiman.app.cli import main
from napari_caiman.engine.resolve import resolve, thresholds
from napari_caiman.engine.schema import SPEC_BY_NAME
from napari_caiman.io.results_file import load_results

pytestmark = pytest.mark.gui

GROUPS = ("motion", "init", "patch", "temporal", "merging", "quality")


def _dock_runs(viewer, wait_done, movie, gsig_yx, K, saved):
    """Motion, CNMF and Evaluate through the docks, a size limit typed that rejects some
    accepted components, the result saved to ``saved``; the Motion and CNMF docks (they hold
    the parameters each ran with), the size limit and the number accepted without it."""
    _, motion = viewer.window.add_plugin_dock_widget("napari-caiman", "Motion correction")
    _, cnmf = viewer.window.add_plugin_dock_widget("napari-caiman", "CNMF")
    _, evaluation = viewer.window.add_plugin_dock_widget("napari-caiman", "Evaluation / curation")
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
    # the Evaluation dock took the new result; it scores it on the corrected movie
    assert evaluation.session is not None
    evaluation.movie.value = viewer.layers["raw corrected"]
    evaluation.runner.run_button.native.click()
    wait_done(evaluation, 60_000)
    assert evaluation.session.metrics is not None, evaluation.runner.status.value
    # min_size typed in the dock: the median size of the accepted components
    before = np.flatnonzero(evaluation.accepted)
    size = np.asarray(evaluation.session.metrics.size)
    limit = int(np.median(size[before])) + 1
    evaluation.min_size.value = limit
    evaluation.ask_save_path = lambda start: str(saved)  # the "Save results" dialog answered
    evaluation.save_button.native.click()
    assert saved.is_file(), evaluation.runner.status.value
    return motion, cnmf, limit, len(before)


def _cli_run(tmp_path, movie, gsig_yx, K, min_size):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie)
    out = tmp_path / "out.h5"
    assert (
        main(
            [
                "run",
                str(path),
                "--steps",
                "motion,cnmf,evaluate",
                "--output",
                str(out),
                "--set",
                f"gSig={tuple(gsig_yx)!r}",
                "--set",
                f"K={K}",
                "--set",
                f"min_size={min_size}",
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
    saved = tmp_path / "dock.hdf5"
    motion, cnmf, limit, n_before = _dock_runs(viewer, wait_done, movie, gsig, K, saved)
    results = _cli_run(tmp_path, movie, gsig, K, limit)
    docked = load_results(tmp_path / "dock.hdf5")
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
    # the same parameters on the same movie: the same components, the same accepted set
    assert cnmf.last_result.estimates.A.shape == results.estimates.A.shape
    assert thresholds(docked.params) == thresholds(results.params)
    dock_accepted = sorted(int(k) for k in docked.estimates.idx_components)
    cli_accepted = sorted(int(k) for k in results.estimates.idx_components)
    assert dock_accepted == cli_accepted
    assert 0 < len(cli_accepted) < n_before  # the size limit rejected some, on both paths
    # and an export of the dock's file holds exactly those (the limit is kept with the file)
    csv = tmp_path / "traces.csv"
    assert main(["export", str(saved), "--csv", str(csv)]) == 0
    assert len(csv.read_text().splitlines()[0].split(",")) == len(dock_accepted) + 1


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
