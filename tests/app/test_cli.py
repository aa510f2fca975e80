"""The headless command line, end to end on small synthetic movies."""

import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import tifffile

from napari_caiman.app.cli import main
from napari_caiman.engine.synthetic import make_movie_2d


@pytest.fixture(scope="module")
def moving_tif(tmp_path_factory):
    syn = make_movie_2d((120, 64, 72), n_neurons=12, rigid_motion=3.0, dtype=np.uint16, seed=3)
    path = tmp_path_factory.mktemp("movie") / "movie.tif"
    tifffile.imwrite(path, syn.movie)
    return path, syn


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_run_motion_writes_results_and_movie(moving_tif, tmp_path, capsys):
    path, syn = moving_tif
    out, mov = tmp_path / "results.hdf5", tmp_path / "corrected.tif"
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"max_shifts": [5, 5], "fr": 30}))
    code = main(
        [
            "run",
            str(path),
            "--steps",
            "motion",
            "-o",
            str(out),
            "--save-movie",
            str(mov),
            "--params",
            str(params),
            "-q",
        ]
    )
    assert code == 0
    assert "crispness" in capsys.readouterr().out
    with h5py.File(out) as f:
        shifts = f["motion/shifts_rig"][()]
        assert shifts.shape == (120, 2)
        assert tuple(f["params/motion/max_shifts"][()]) == (5, 5)
        assert f["summary/corr"].shape == (64, 72)
        assert "input_path" in f["provenance"].attrs
    # the recovered correction cancels the true motion (up to a constant offset)
    err = shifts - (-syn.shifts)
    err -= err.mean(0)
    assert np.sqrt(np.mean(err**2)) < 0.2
    corrected = tifffile.imread(mov)
    assert corrected.shape == syn.movie.shape and corrected.dtype == np.float32
    assert _files(tmp_path) == ["corrected.tif", "p.json", "results.hdf5"]


def _run_error(args, capsys):
    code = main(args)
    stderr = capsys.readouterr().err.strip()
    assert code == 2
    assert "Traceback" not in stderr
    err = stderr.splitlines()[-1]  # progress lines may come before the one error line
    assert err.startswith("napari-caiman: error: ")
    return err


def test_missing_file(tmp_path, capsys):
    err = _run_error(["run", str(tmp_path / "nope.tif"), "-o", str(tmp_path / "r.hdf5")], capsys)
    assert "not found" in err
    assert _files(tmp_path) == []


def test_unknown_parameter_lists_close_matches(moving_tif, tmp_path, capsys):
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"max_shift": [5, 5]}))
    err = _run_error(
        ["run", str(moving_tif[0]), "-o", str(tmp_path / "r.hdf5"), "--params", str(params)], capsys
    )
    assert "max_shifts" in err


def test_impossible_parameter_leaves_nothing(moving_tif, tmp_path, capsys):
    err = _run_error(
        [
            "run",
            str(moving_tif[0]),
            "-o",
            str(tmp_path / "r.hdf5"),
            "--save-movie",
            str(tmp_path / "c.tif"),
            "--set",
            "max_shifts=(40, 40)",
        ],
        capsys,
    )
    assert "max_shifts" in err
    assert _files(tmp_path) == []


def test_nan_movie_and_flat_movie(tmp_path, capsys):
    movie = np.random.default_rng(0).random((20, 32, 32)).astype(np.float32)
    movie[7, 3, 4] = np.nan
    np.save(tmp_path / "nan.npy", movie)
    err = _run_error(
        [
            "run",
            str(tmp_path / "nan.npy"),
            "-o",
            str(tmp_path / "r.hdf5"),
            "--save-movie",
            str(tmp_path / "c.npy"),
        ],
        capsys,
    )
    assert "NaN" in err
    np.save(tmp_path / "flat.npy", np.full((20, 32, 32), 7, np.uint16))
    err = _run_error(["run", str(tmp_path / "flat.npy"), "-o", str(tmp_path / "r.hdf5")], capsys)
    assert "contrast" in err or "constant" in err
    assert _files(tmp_path) == ["flat.npy", "nan.npy"]


def test_wrong_dimensions_and_single_frame(tmp_path, capsys):
    np.save(tmp_path / "img.npy", np.zeros((32, 32), np.float32))
    err = _run_error(["run", str(tmp_path / "img.npy"), "-o", str(tmp_path / "r.hdf5")], capsys)
    assert "movie" in err or "path" in err
    np.save(tmp_path / "one.npy", np.zeros((1, 32, 32), np.float32))
    err = _run_error(["run", str(tmp_path / "one.npy"), "-o", str(tmp_path / "r.hdf5")], capsys)
    assert "frame" in err


def test_unavailable_step_and_bad_output(moving_tif, tmp_path, capsys):
    err = _run_error(
        ["run", str(moving_tif[0]), "--steps", "motion,evaluate", "-o", str(tmp_path / "r.hdf5")],
        capsys,
    )
    assert "evaluate" in err
    err = _run_error(
        ["run", str(moving_tif[0]), "--steps", "motion,denoise", "-o", str(tmp_path / "r.hdf5")],
        capsys,
    )
    assert "unknown step" in err
    err = _run_error(["run", str(moving_tif[0]), "-o", str(tmp_path / "r.txt")], capsys)
    assert ".hdf5" in err
    err = _run_error(["run", str(moving_tif[0]), "-o", str(tmp_path / "no" / "r.hdf5")], capsys)
    assert "does not exist" in err


def test_headless_demo_small(tmp_path, monkeypatch):
    from napari_caiman.app import demo

    monkeypatch.setattr(demo, "DEMO_SHAPE", (80, 96, 96))
    text = demo.run_headless_demo(tmp_path / "out", quiet=True)
    assert "rigid shift error vs truth" in text
    assert _files(tmp_path / "out") == ["corrected.tif", "demo_movie.tif", "results.hdf5"]
    ratio = float(text.split("(ratio ")[1].split(")")[0])
    assert ratio > 0.95


@pytest.mark.skipif(shutil.which("napari-caiman") is None, reason="console script not on PATH")
def test_console_script_is_installed():
    out = subprocess.run(
        ["napari-caiman", "run", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "--steps" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "napari_caiman.app.cli", "run", "x.tif", "-o", "r.txt"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1


def test_cancel_during_summary_removes_the_movie_file(tmp_path, monkeypatch):
    """Where the summary images need a pass of their own (the frames were written by
    cluster workers, so the motion step did not see them), a cancel during that pass,
    after the corrected movie's file was completed, removes the file."""
    from napari_caiman.engine import motion
    from napari_caiman.engine.params import CaimanParams
    from napari_caiman.engine.pipeline import iter_motion_step

    real = motion.iter_motion_correct

    def frames_unseen(*args, on_frames=None, **kwargs):  # what a cluster run does
        return (yield from real(*args, **kwargs))

    monkeypatch.setattr(motion, "iter_motion_correct", frames_unseen)
    movie = make_movie_2d((60, 48, 48), n_neurons=5, rigid_motion=2.0, seed=1).movie
    out = tmp_path / "corrected.npy"
    gen = iter_motion_step(movie, CaimanParams.defaults(), out=out)
    for p in gen:
        if p.stage.startswith("summary"):
            break
    else:
        raise AssertionError("no summary pass")
    assert out.exists()  # motion finished and renamed its file
    gen.close()  # cancel
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    syn = make_movie_2d((300, 64, 64), n_neurons=12, rigid_motion=2.0, dtype=np.uint16, seed=2)
    folder = tmp_path_factory.mktemp("eval")
    tifffile.imwrite(folder / "m.tif", syn.movie)
    out = folder / "r.hdf5"
    code = main(
        [
            "run",
            str(folder / "m.tif"),
            "--steps",
            "motion,cnmf,evaluate",
            "-o",
            str(out),
            "--set",
            "K=20",
            "--set",
            "gSig=(4, 4)",
            "--set",
            "use_cnn=False",
            "-q",
        ]
    )
    assert code == 0
    return folder, syn


def test_run_with_evaluation_finds_the_neurons(evaluated):
    from napari_caiman.engine.cnmf import match_components
    from napari_caiman.io.results_file import load_results

    folder, syn = evaluated
    r = load_results(folder / "r.hdf5")
    acc = r.accepted()
    assert r.metrics is not None and r.F_dff.shape == r.estimates.C.shape
    m = match_components(
        r.estimates.footprints(acc),
        syn.footprints,
        found_traces=r.estimates.C[acc],
        true_traces=syn.traces,
    )
    assert m.f1 >= 0.9 and m.median_trace_corr >= 0.9, str(m)
    with h5py.File(folder / "r.hdf5") as f:
        np.testing.assert_array_equal(f["estimates/idx_components"][()], acc)
        assert f["estimates/SNR_comp"].shape == (r.estimates.A.shape[1],)


def test_reevaluation_keeps_manual_decisions(evaluated, tmp_path, capsys):
    from napari_caiman.engine.curation import Curation
    from napari_caiman.io.results_file import load_results, save_results

    folder, _ = evaluated
    r = load_results(folder / "r.hdf5")
    K = r.estimates.A.shape[1]
    acc = set(r.accepted().tolist())
    keep_out = sorted(acc)[0]  # accepted by thresholds, rejected by hand
    cur = Curation.empty(K).reject(keep_out)
    r.curation = cur
    path = save_results(tmp_path / "curated.hdf5", r)
    assert keep_out not in load_results(path).accepted()
    # strict thresholds, then lax ones: the manual rejection holds throughout
    assert main(["evaluate", str(path), "--set", "min_SNR=50", "--set", "rval_thr=1.0", "-q"]) == 0
    strict = load_results(path)
    assert len(strict.accepted()) < len(acc) and keep_out not in strict.accepted()
    assert (
        main(
            [
                "evaluate",
                str(path),
                "--movie",
                str(folder / "m.tif"),
                "--set",
                "min_SNR=0.5",
                "--set",
                "rval_thr=-1",
                "-q",
            ]
        )
        == 0
    )
    lax = load_results(path)
    assert keep_out not in lax.accepted() and len(lax.accepted()) == K - 1
    assert lax.curation.manual[keep_out] == -1
    capsys.readouterr()


def test_export_nwb_csv_masks(evaluated, tmp_path, capsys):
    pynwb = pytest.importorskip("pynwb")
    from napari_caiman.io.results_file import load_results

    folder, _ = evaluated
    r = load_results(folder / "r.hdf5")
    n_acc = len(r.accepted())
    nwb, csv, masks = tmp_path / "o.nwb", tmp_path / "o.csv", tmp_path / "m.tif"
    assert (
        main(
            [
                "export",
                str(folder / "r.hdf5"),
                "--nwb",
                str(nwb),
                "--csv",
                str(csv),
                "--masks",
                str(masks),
            ]
        )
        == 0
    )
    with pynwb.NWBHDF5IO(str(nwb), "r") as io:
        f = io.read()
        ps = f.processing["ophys"]["ImageSegmentation"].plane_segmentations
        seg = next(iter(ps.values()))
        assert len(seg) == n_acc
    assert tifffile.imread(masks).shape == (n_acc, 64, 64)
    header = csv.read_text().splitlines()[0].split(",")
    assert len(header) == n_acc + 1
    err = _run_error(
        ["export", str(folder / "r.hdf5"), "--nwb", str(tmp_path / "no" / "o.nwb")], capsys
    )
    assert "nwb" in err


def test_evaluate_rejects_a_movie_of_another_size(evaluated, tmp_path, capsys):
    folder, _ = evaluated
    np.save(tmp_path / "other.npy", np.zeros((50, 32, 32), np.float32))
    err = _run_error(
        [
            "evaluate",
            str(folder / "r.hdf5"),
            "--movie",
            str(tmp_path / "other.npy"),
            "-o",
            str(tmp_path / "x.hdf5"),
        ],
        capsys,
    )
    assert "does not match" in err
    assert not (tmp_path / "x.hdf5").exists()
    err = _run_error(["evaluate", str(tmp_path / "missing.hdf5")], capsys)
    assert "not found" in err


def test_backend_flag_without_caiman_is_a_clear_error(moving_tif, tmp_path, capsys, monkeypatch):
    from napari_caiman.engine import backends

    monkeypatch.setattr(
        backends, "caiman_status", lambda python=None: (False, "CaImAn is not installed here")
    )
    path, _ = moving_tif
    out = tmp_path / "r.hdf5"
    assert (
        main(["run", str(path), "--steps", "motion", "-o", str(out), "--backend", "caiman", "-q"])
        == 2
    )
    err = capsys.readouterr().err
    assert "backend" in err and "CaImAn is not installed here" in err and not out.exists()
    assert (
        main(
            [
                "batch",
                str(tmp_path / "b.json"),
                "--add",
                "x",
                "--movie",
                str(path),
                "--backend",
                "caiman",
            ]
        )
        == 2
    )
    assert "CaImAn is not installed here" in capsys.readouterr().err


def test_train_classifier_from_curated_file_and_apply_with_evaluate(tmp_path, capsys):
    from napari_caiman.engine.curation import Curation
    from napari_caiman.io.results_file import load_results, save_results

    syn = make_movie_2d((200, 64, 64), n_neurons=10, gSig=3, seed=5, return_flow=False)
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, syn.movie.astype(np.float32))
    res = tmp_path / "r.hdf5"
    assert (
        main(
            [
                "run",
                str(movie),
                "--steps",
                "cnmf,evaluate",
                "-o",
                str(res),
                "--set",
                "K=14",
                "--set",
                "gSig=(3, 3)",
                "--set",
                "use_cnn=False",
                "-q",
            ]
        )
        == 0
    )
    # no decisions yet: one clear message
    assert main(["train-classifier", str(res), "-o", str(tmp_path / "m.json")]) == 2
    assert "no manual accept/reject decisions" in capsys.readouterr().err
    r = load_results(res)
    K = r.estimates.A.shape[1]
    order = np.argsort(r.metrics.SNR_comp)
    manual = np.zeros(K, np.int8)
    manual[order[:2]] = -1
    manual[order[-3:]] = 1
    r.curation = Curation(manual)
    save_results(res, r)
    model = tmp_path / "m.json"
    assert main(["train-classifier", str(res), "-o", str(model)]) == 0
    assert "trained on 5 decisions" in capsys.readouterr().out
    assert (
        main(["evaluate", str(res), "--set", f"classifier={model}", "-o", str(tmp_path / "c.hdf5")])
        == 0
    )
    back = load_results(tmp_path / "c.hdf5")
    assert back.metrics.classifier_prob is not None and back.metrics.classifier_prob.shape == (K,)
    acc = np.zeros(K, bool)
    acc[back.accepted()] = True
    assert acc[order[-3:]].all() and not acc[order[:2]].any()  # manual decisions win
    # shape metrics saved with the results and usable as thresholds from the CLI
    assert (
        main(["evaluate", str(res), "--set", "min_solidity=1.0", "-o", str(tmp_path / "s.hdf5")])
        == 0
    )
    strict = load_results(tmp_path / "s.hdf5")
    auto = np.setdiff1d(np.flatnonzero(strict.metrics.solidity < 1.0), np.flatnonzero(manual))
    assert not np.isin(auto, strict.accepted()).any()
