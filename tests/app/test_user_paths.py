"""The command line and the Python API as a new user meets them (issue 12)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from napari_caiman.app.api import run_pipeline
from napari_caiman.app.batch import Batch
from napari_caiman.app.cli import main
from napari_caiman.app.report import ProgressBar, ProgressPrinter, make_progress
from napari_caiman.engine.errors import InputError
from napari_caiman.engine.pipeline import NanFilled, motion_border, movie_for_cnmf, nan_border
from napari_caiman.engine.progress import Progress
from napari_caiman.engine.synthetic import make_movie_2d
from napari_caiman.io.results_file import load_results

SET = ["--set", "K=6", "--set", "gSig=(4, 4)", "--set", "max_shifts=(5, 5)"]
DICT = {"K": 6, "gSig": (4, 4), "max_shifts": (5, 5)}


@pytest.fixture(scope="module")
def syn():
    return make_movie_2d((160, 64, 64), n_neurons=8, rigid_motion=2.5, dtype=np.uint16, seed=7)


@pytest.fixture(scope="module")
def runs(syn, tmp_path_factory):
    """One-go run, and the documented two-step run (motion --save-movie, then cnmf,evaluate on it)."""
    d = tmp_path_factory.mktemp("paths")
    tifffile.imwrite(d / "movie.tif", syn.movie)
    assert (
        main(
            [
                "run",
                str(d / "movie.tif"),
                "--steps",
                "motion,cnmf,evaluate",
                "-o",
                str(d / "one.hdf5"),
                "-q",
                *SET,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "run",
                str(d / "movie.tif"),
                "--steps",
                "motion",
                "--save-movie",
                str(d / "corrected.tif"),
                "-o",
                str(d / "motion.hdf5"),
                "-q",
                *SET,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "run",
                str(d / "corrected.tif"),
                "--steps",
                "cnmf,evaluate",
                "-o",
                str(d / "two.hdf5"),
                "-q",
                *SET,
            ]
        )
        == 0
    )
    return d


# 1 ---------------------------------------------------------------------------- one border rule


def test_two_step_run_equals_the_one_go_run(runs):
    one, two = load_results(runs / "one.hdf5"), load_results(runs / "two.hdf5")
    assert np.isnan(
        tifffile.imread(runs / "corrected.tif")
    ).any()  # border_nan=True: NaN borders on disk
    # the border measured from the NaN strips is the one the shifts give (rigid motion)
    motion = load_results(runs / "motion.hdf5").motion
    from types import SimpleNamespace

    assert nan_border(tifffile.imread(runs / "corrected.tif")) == motion_border(
        SimpleNamespace(**motion)
    )
    assert one.estimates.A.shape == two.estimates.A.shape and one.estimates.A.shape[1] >= 5
    np.testing.assert_allclose(one.estimates.A.toarray(), two.estimates.A.toarray(), atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(one.estimates.C), np.asarray(two.estimates.C), rtol=1e-4, atol=1e-3
    )
    np.testing.assert_array_equal(one.accepted(), two.accepted())


def test_border_rule_zeroes_the_border_and_rejects_inner_nan():
    movie = np.ones((4, 20, 30), np.float32)
    movie[1, :3] = np.nan  # a frame shifted down by 3 rows
    movie[2, :, -2:] = np.nan  # ... left by 2 columns
    view = movie_for_cnmf(movie)
    assert isinstance(view, NanFilled) and view.border == (3, 2)
    frames = view[0:4]
    assert np.isfinite(frames).all() and frames[:, :3].sum() == 0 and frames[:, :, -2:].sum() == 0
    assert frames[:, 3:-3, 2:-2].min() == 1
    assert movie_for_cnmf(view) is view  # applied once
    assert movie_for_cnmf(np.ones((4, 8, 8), np.uint16)).dtype == np.uint16  # nothing to do
    inner = movie.copy()
    inner[3, 10, 10] = np.nan
    with pytest.raises(InputError, match="away from the frame edges.*frame 3"):
        movie_for_cnmf(inner)
    # the shifts, when known, set the border (CaImAn's border_to_0); 'copy' fills no border
    motion = {"shifts_rig": np.array([[1.2, -0.4], [0.0, 2.5]]), "shifts_els": None}
    assert movie_for_cnmf(movie, motion=motion, border_nan=True).border == (2, 3)
    assert movie_for_cnmf(movie, motion=motion, border_nan="copy").border == (0, 0)


# 2 ---------------------------------------------------------------------------- plain dict


def test_run_pipeline_takes_a_plain_dict(runs, tmp_path):
    r = run_pipeline(
        [str(runs / "movie.tif")],
        steps=["motion", "cnmf"],
        output=tmp_path / "d.hdf5",
        params={**DICT, "K": 4},
    )
    assert r.params["K"] == 4 and r.estimates.A.shape[1] >= 3
    assert load_results(tmp_path / "d.hdf5").params["K"] == 4


# 3 ---------------------------------------------------------------------------- fr and NWB


def test_fr_from_tiff_metadata_or_the_default_said(syn, tmp_path, capsys):
    mov = syn.movie[:40]
    tifffile.imwrite(
        tmp_path / "ij.tif", mov, imagej=True, metadata={"finterval": 1 / 15.0, "axes": "TYX"}
    )
    tifffile.imwrite(
        tmp_path / "ome.tif", mov, ome=True, metadata={"axes": "TYX", "TimeIncrement": 0.05}
    )
    tifffile.imwrite(
        tmp_path / "si.tif", mov, description="state.acq.frameRate=7.5\nstate.acq.numberOfZSlices=1"
    )
    tifffile.imwrite(tmp_path / "plain.tif", mov)
    for name, fr, where in (
        ("ij", 15, "ImageJ"),
        ("ome", 20, "OME"),
        ("si", 7.5, "ScanImage"),
        ("plain", 30, "default"),
    ):
        assert (
            main(["run", str(tmp_path / f"{name}.tif"), "-o", str(tmp_path / f"{name}.hdf5"), "-q"])
            == 0
        )
        out = capsys.readouterr().out
        r = load_results(tmp_path / f"{name}.hdf5")
        assert r.params["fr"] == pytest.approx(fr) and where in r.provenance["fr_source"], name
        assert f"fr: {fr:g} Hz" in out and where in out
    # a value given wins over the metadata
    assert (
        main(
            [
                "run",
                str(tmp_path / "ij.tif"),
                "-o",
                str(tmp_path / "given.hdf5"),
                "-q",
                "--set",
                "fr=30",
            ]
        )
        == 0
    )
    assert load_results(tmp_path / "given.hdf5").params["fr"] == 30


def test_nwb_export_options_and_pixel_masks(runs, tmp_path, capsys):
    pynwb = pytest.importorskip("pynwb")
    res = str(runs / "one.hdf5")
    assert (
        main(["export", res, "--nwb", str(tmp_path / "dense.nwb"), "--all", "--mask-type", "image"])
        == 0
    )
    assert (
        main(
            [
                "export",
                res,
                "--nwb",
                str(tmp_path / "px.nwb"),
                "--all",
                "--indicator",
                "GCaMP6f",
                "--location",
                "V1 L2/3",
                "--session-start",
                "2024-05-01T14:30:00+02:00",
                "--description",
                "mouse 3, day 2",
            ]
        )
        == 0
    )
    dense, px = (tmp_path / "dense.nwb").stat().st_size, (tmp_path / "px.nwb").stat().st_size
    print(f"NWB size, image masks {dense / 1e3:.0f} kB -> pixel masks {px / 1e3:.0f} kB")
    assert px < dense
    with pynwb.NWBHDF5IO(str(tmp_path / "px.nwb"), "r") as io_:
        nwb = io_.read()
        plane = nwb.imaging_planes["ImagingPlane"]
        assert plane.indicator == "GCaMP6f" and plane.location == "V1 L2/3"
        assert nwb.session_description == "mouse 3, day 2"
        assert nwb.session_start_time.isoformat().startswith("2024-05-01T14:30:00")
        seg = nwb.processing["ophys"]["ImageSegmentation"].plane_segmentations["PlaneSegmentation"]
        assert "pixel_mask" in seg.colnames and "image_mask" not in seg.colnames
        K = load_results(res).estimates.A.shape[1]
        assert len(seg) == K
    assert (
        main(["export", res, "--nwb", str(tmp_path / "x.nwb"), "--session-start", "yesterday"]) == 2
    )
    assert "--session-start" in capsys.readouterr().err


# 4, 5 -------------------------------------------------------------------------- overwrite, movie check


def test_run_refuses_to_overwrite_unless_asked(runs, tmp_path, capsys):
    out = tmp_path / "r.hdf5"
    out.write_bytes(b"precious")
    assert main(["run", str(runs / "movie.tif"), "-o", str(out), "-q"]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"precious"
    assert main(["run", str(runs / "movie.tif"), "-o", str(out), "-q", "--overwrite"]) == 0
    assert load_results(out).motion is not None


def test_evaluate_refuses_another_movie_unless_forced(runs, tmp_path, syn, capsys):
    other = tmp_path / "other.tif"
    tifffile.imwrite(
        other, np.asarray(tifffile.imread(runs / "corrected.tif"))[::-1].copy()
    )  # same shape
    res = runs / "two.hdf5"
    before = res.read_bytes()
    assert main(["evaluate", str(res), "--movie", str(other), "-q"]) == 2
    err = capsys.readouterr().err
    assert "not the movie" in err and "--force" in err and res.read_bytes() == before
    assert (
        main(
            [
                "evaluate",
                str(res),
                "--movie",
                str(runs / "corrected.tif"),
                "-q",
                "-o",
                str(tmp_path / "ok.hdf5"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    # 10: the old motion / CNMF times are not printed as if they ran again; the evaluation's is
    assert "cnmf: " in out and " components in " not in out and "evaluation:" in out and " s" in out
    assert (
        main(
            [
                "evaluate",
                str(res),
                "--movie",
                str(other),
                "-q",
                "--force",
                "-o",
                str(tmp_path / "f.hdf5"),
            ]
        )
        == 0
    )
    # a motion run's results check against the saved corrected movie, not the raw input
    assert (
        main(
            [
                "evaluate",
                str(runs / "one.hdf5"),
                "--movie",
                str(runs / "movie.tif"),
                "-q",
                "-o",
                str(tmp_path / "n.hdf5"),
            ]
        )
        == 0
    )  # one.hdf5 saved no corrected movie: not checked, said
    assert "not checked" in capsys.readouterr().err


# 6 ---------------------------------------------------------------------------- parameter reference


def test_params_command_and_the_committed_page(capsys):
    assert main(["params", "max_shifts"]) == 0
    out = capsys.readouterr().out
    assert (
        "[motion]" in out
        and "(6, 6)" in out
        and "integer >= 0 per axis" in out
        and "rows, cols" in out
    )
    assert main(["params", "maxshifts"]) == 2
    assert "max_shifts" in capsys.readouterr().err
    assert main(["params"]) == 0
    listing = capsys.readouterr().out
    assert all(n in listing for n in ("fr", "gSig", "min_SNR", "border_nan", "backend"))
    assert main(["params", "--markdown"]) == 0
    page = Path(__file__).resolve().parents[2] / "docs" / "parameters.md"
    assert page.read_text() == capsys.readouterr().out, (
        "regenerate: napari-caiman params --markdown > docs/parameters.md"
    )


def test_the_spec_table_is_the_check():
    from napari_caiman.engine.params import CaimanParams

    for name, bad in (
        ("fr", 0),
        ("min_SNR", -1),
        ("merge_thr", 1.5),
        ("K", 0),
        ("gSig", (0.2, 4)),
        ("border_nan", "yes"),
        ("p", 3),
    ):
        with pytest.raises(InputError) as e:
            CaimanParams.from_dict({name: bad})
        assert e.value.argument == name
    assert CaimanParams.from_dict({"min_SNR": 0, "gSiz": None, "merge_thr": -1})["min_SNR"] == 0


# 8 ---------------------------------------------------------------------------- use_cnn on native


def test_no_cnn_warning_on_default_native_runs(runs, tmp_path, caplog, monkeypatch):
    import napari_caiman.engine.evaluation as evaluation

    monkeypatch.setattr(evaluation, "_CNN_WARNED", False)
    with caplog.at_level(logging.WARNING):
        run_pipeline(
            [str(runs / "movie.tif")],
            steps=["motion", "cnmf", "evaluate"],
            output=tmp_path / "a.hdf5",
            params=DICT,
        )
    assert "CNN" not in caplog.text
    with caplog.at_level(logging.WARNING):
        run_pipeline(
            [str(runs / "movie.tif")],
            steps=["motion", "cnmf", "evaluate"],
            output=tmp_path / "b.hdf5",
            params={**DICT, "use_cnn": True},
        )
    assert "use_cnn=True" in caplog.text and "no CNN" in caplog.text


# 9 ---------------------------------------------------------------------------- batches


def test_batch_cache_names_and_ctrl_c(runs, tmp_path):
    a = Batch(tmp_path / "a.json")
    b = Batch(tmp_path / "b.json")  # same folder: same cache folder
    a.add_variants("k", runs / "movie.tif", DICT, {"K": [4, 6]})
    b.add("other", runs / "movie.tif", {**DICT, "max_shifts": (3, 3)})
    # Ctrl-C in the middle of the first item: it stays queued, a plain re-run resumes it

    def interrupt(p: Progress) -> None:
        if "cnmf" in p.stage:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        a.run(progress=interrupt)
    assert [i.status for i in Batch(tmp_path / "a.json")] == ["queued", "queued"]
    assert "interrupted" in a.item("k K=4").error
    assert a.run() == {"done": 2}
    assert b.run() == {"done": 1}
    names = sorted(p.name for p in a.results_dir.iterdir())
    assert names == ["k_K-4.hdf5", "k_K-6.hdf5"]
    assert a.results("k K=4").estimates is not None
    # clearing a's cache leaves b's entry
    assert len(a.cache.entries()) == 1 and len(b.cache.entries()) == 1
    assert a.cache.entries() != b.cache.entries()
    freed = a.cache.clear()
    assert freed > 0 and a.cache.entries() == [] and len(b.cache.entries()) == 1


# 10, 11 ----------------------------------------------------------------------- output lines, curation


def test_rgb_movie_gets_a_shape_message(tmp_path, capsys):
    np.save(tmp_path / "rgb.npy", np.zeros((10, 32, 32, 3), np.uint8))
    assert main(["run", str(tmp_path / "rgb.npy"), "-o", str(tmp_path / "r.hdf5")]) == 2
    err = capsys.readouterr().err
    assert "RGB" in err and "(T, Y, X, 3)" in err and "max_shifts" not in err


def test_ctrl_c_message_says_what_was_kept(runs, tmp_path, capsys, monkeypatch):
    import napari_caiman.engine.pipeline as pipeline

    def boom(*a, **k):
        raise KeyboardInterrupt
        yield  # pragma: no cover

    monkeypatch.setattr(pipeline, "iter_cnmf_step", boom)
    code = main(
        [
            "run",
            str(runs / "movie.tif"),
            "--steps",
            "motion,cnmf",
            "-o",
            str(tmp_path / "r.hdf5"),
            "--save-movie",
            str(tmp_path / "c.tif"),
            "-q",
            *SET,
        ]
    )
    err = capsys.readouterr().err
    assert code == 130 and not (tmp_path / "r.hdf5").exists() and (tmp_path / "c.tif").exists()
    assert "results file was not written" in err and "c.tif" in err and "kept" in err


def test_headless_results_always_have_the_curation_group(runs):
    with h5py.File(runs / "one.hdf5", "r") as f:
        K = f["estimates/C"].shape[0]
        np.testing.assert_array_equal(f["curation/manual"][()], np.zeros(K, np.int8))
    r = load_results(runs / "one.hdf5")
    assert r.curation is not None and r.curation.n_decisions == 0


def test_cli_output_explains_array_order_and_crispness(runs, capsys):
    assert (
        main(["evaluate", str(runs / "one.hdf5"), "--set", "min_SNR=2", "-o", str(runs / "e.hdf5")])
        == 0
    )
    out = capsys.readouterr().out
    assert "array order Y, X" in out and "CaImAn's dims (rows, cols)" in out
    assert "sharpness of the mean image" in out


# CLI progress: a bar on a terminal, lines otherwise ----------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_lines_otherwise():
    tty, pipe = _Tty(), io.StringIO()
    bar, lines = make_progress(stream=tty), make_progress(stream=pipe)
    assert isinstance(bar, ProgressBar) and isinstance(lines, ProgressPrinter)
    assert not isinstance(make_progress(quiet=True, stream=tty), ProgressBar)
    for p in [Progress("motion", i, 10) for i in range(11)] + [
        Progress("cnmf: noise", i, 4) for i in range(5)
    ]:
        bar(p)
        lines(p)
    bar.close()
    text = tty.getvalue()
    assert "motion" in text and "cnmf: noise" in text and "10/10" in text and "4/4" in text
    assert "<" in text  # tqdm's elapsed<remaining (ETA)
    assert "[" in pipe.getvalue() and "\r" not in pipe.getvalue()


def test_batch_result_names_are_safe_and_distinct(runs, tmp_path):
    b = Batch(tmp_path / "n.json")
    b.add("k K=10", runs / "movie.tif", DICT, ["motion"])
    b.add("k_K-10", runs / "movie.tif", DICT, ["motion"])
    a, c = b.output_path("k K=10"), b.output_path("k_K-10")
    assert a != c and all(" " not in p.name and "=" not in p.name for p in (a, c))
    assert a.name.startswith("k_K-10") and a.suffix == ".hdf5"
