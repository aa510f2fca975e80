"""The optional CaImAn backend.

Without CaImAn (CI): detection (absent, the unrelated PyPI 'caiman', a
broken interpreter), the InputError through the pipeline, the parameter
hand-over, and the process runner with a fake worker script (log lines ->
Progress, errors, cancel kills the whole process group and leaves no files).

With CaImAn (``-m caiman``; set NAPARI_CAIMAN_CAIMAN_PYTHON to a python that
has it): motion, CNMF and evaluation by the real CaImAn checked against the
synthetic ground truth, CaImAn's own results file read by load_results, and
cancel in the middle of CNMF.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import stat
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from napari_caiman.engine import backends
from napari_caiman.engine.backends import caiman_backend as cb
from napari_caiman.engine.backends import caiman_process as cp
from napari_caiman.engine.errors import InputError
from napari_caiman.engine.params import CaimanParams
from napari_caiman.engine.progress import Progress, run

posix_only = pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")


@pytest.fixture(autouse=True)
def _fresh_detection():
    backends.clear_cache()
    yield
    backends.clear_cache()


def _wrapper(tmp_path: Path, name: str, *args: str, pythonpath: str | None = None) -> str:
    """An executable that runs this python (so not sys.executable by path)."""
    path = tmp_path / name
    env = f"PYTHONPATH={pythonpath} " if pythonpath else "PYTHONPATH= "
    path.write_text(f'#!/bin/sh\n{env}exec {sys.executable} {" ".join(args)} "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _fake_caiman(root: Path, *, real_layout: bool) -> Path:
    pkg = root / "caiman"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('detection must not import caiman')\n")
    if real_layout:
        cnmf = pkg / "source_extraction" / "cnmf"
        cnmf.mkdir(parents=True)
        (pkg / "source_extraction" / "__init__.py").write_text("")
        (cnmf / "__init__.py").write_text("")
        (cnmf / "cnmf.py").write_text("")
    return root


# --------------------------------------------------------------------------- detection


def test_absent_in_this_python_gives_an_install_hint(monkeypatch):
    monkeypatch.delenv(backends.ENV_PYTHON, raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "caiman" else real(name, *a)
    )
    ok, msg = backends.caiman_status()
    assert not ok
    assert "CaImAn is not installed" in msg and "conda-forge" in msg and "docs/caiman.md" in msg
    assert backends.caiman_available() is False


def test_unrelated_pypi_caiman_is_recognised_in_this_python(monkeypatch, tmp_path):
    root = _fake_caiman(tmp_path, real_layout=False)
    spec = importlib.machinery.ModuleSpec("caiman", None, is_package=True)
    spec.submodule_search_locations = [str(root / "caiman")]
    real = importlib.util.find_spec
    monkeypatch.delenv(backends.ENV_PYTHON, raising=False)
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: spec if name == "caiman" else real(name, *a)
    )
    ok, msg = backends.caiman_status()
    assert not ok
    assert "unrelated PyPI package" in msg and "source_extraction" in msg and "uninstall" in msg


def test_detection_is_cached(monkeypatch):
    calls = []
    monkeypatch.setattr(backends, "_probe_here", lambda: calls.append(1) or {"state": "absent"})
    monkeypatch.delenv(backends.ENV_PYTHON, raising=False)
    assert backends.caiman_status() == backends.caiman_status()
    assert len(calls) == 1
    backends.clear_cache()
    backends.caiman_status()
    assert len(calls) == 2


@posix_only
def test_other_python_without_caiman(tmp_path):
    py = _wrapper(tmp_path, "py_nosite", "-S")  # no site-packages: no caiman there
    ok, msg = backends.caiman_status(py)
    assert not ok and "CaImAn is not installed" in msg and backends.ENV_PYTHON in msg


@posix_only
def test_other_python_with_the_impostor(tmp_path):
    root = _fake_caiman(tmp_path / "site", real_layout=False)
    py = _wrapper(tmp_path, "py_impostor", pythonpath=str(root))
    ok, msg = backends.caiman_status(py)
    assert not ok and "unrelated PyPI package" in msg


@posix_only
def test_other_python_with_caiman_layout_is_found_without_importing_it(tmp_path, monkeypatch):
    root = _fake_caiman(tmp_path / "site", real_layout=True)  # its __init__ raises if imported
    py = _wrapper(tmp_path, "py_fake", pythonpath=str(root))
    monkeypatch.setenv(backends.ENV_PYTHON, py)
    assert backends.caiman_python() == py
    ok, msg = backends.caiman_status()
    assert ok, msg
    assert "CaImAn" in msg and str(root / "caiman") in msg


def test_broken_interpreter_path(tmp_path):
    ok, msg = backends.caiman_status(str(tmp_path / "no" / "python"))
    assert not ok and "not a working python interpreter" in msg and backends.ENV_PYTHON in msg


def test_require_caiman_raises_input_error(tmp_path):
    with pytest.raises(InputError) as info:
        backends.require_caiman(str(tmp_path / "missing-python"))
    assert info.value.argument == "backend"
    assert "backend 'caiman' is not available" in str(info.value)


@posix_only
@pytest.mark.parametrize("step", ["motion", "cnmf", "evaluate"])
def test_pipeline_with_backend_caiman_but_no_caiman_raises_input_error(step, tmp_path, monkeypatch):
    from napari_caiman.engine import pipeline

    monkeypatch.setenv(backends.ENV_PYTHON, _wrapper(tmp_path, "py_nosite", "-S"))
    params = CaimanParams.from_dict({"backend": "caiman"})
    movie = np.zeros((10, 16, 16), np.float32)
    gen = {
        "motion": lambda: pipeline.iter_motion_step(movie, params),
        "cnmf": lambda: pipeline.iter_cnmf_step(movie, params),
        "evaluate": lambda: pipeline.iter_evaluate_step(movie, object(), params),
    }[step]()
    with pytest.raises(InputError) as info:
        run(gen)
    assert info.value.argument == "backend" and "CaImAn is not installed" in str(info.value)


def test_native_backend_does_not_probe(monkeypatch):
    from napari_caiman.engine import pipeline
    from napari_caiman.engine.synthetic import make_movie_2d

    monkeypatch.setattr(
        backends, "caiman_status", lambda *a: pytest.fail("native must not look for CaImAn")
    )
    m = make_movie_2d((20, 32, 32), n_neurons=2, seed=0)
    res = run(pipeline.iter_motion_step(m.movie, CaimanParams.from_dict({"max_shifts": (2, 2)})))
    assert res.motion.corrected.shape == m.movie.shape


# --------------------------------------------------------------------------- parameters


def test_caiman_params_grouped_changed_only():
    p = CaimanParams.from_dict(
        {"backend": "caiman", "gSig": (3, 3), "nb": 2, "p": 1, "max_shifts": (4, 4), "min_SNR": 3.0}
    )
    g = cb.caiman_params(p, (32, 32))
    assert "napari_caiman" not in g and all("backend" not in v for v in g.values())
    assert g["init"]["gSig"] == [3, 3] and g["motion"]["max_shifts"] == [4, 4]
    assert (
        g["init"]["nb"] == 2
        and "nb" not in g.get("spatial", {})
        and "nb" not in g.get("temporal", {})
    )
    assert g["preprocess"]["p"] == 1 and g["temporal"]["p"] == 1
    assert g["quality"]["min_SNR"] == 3.0 and g["online"]["min_SNR"] == 3.0
    assert "K" not in g.get("init", {})  # defaults are left to CaImAn
    json.dumps(g)


def test_caiman_params_3d_per_axis_values():
    p = CaimanParams.from_dict(
        {"gSig": (4, 4), "max_shifts": (5, 5), "strides": (24, 24), "overlaps": (8, 8)}
    )
    g = cb.caiman_params(p, (6, 40, 40))  # Z=6 planes
    assert g["init"]["gSig"] == [4.0, 4.0, 4.0]
    assert g["motion"]["max_shifts"] == [5, 5, 2]  # planes clamped to what 6 planes allow
    assert g["motion"]["strides"] == [24, 24, 6] and g["motion"]["overlaps"] == [8, 8, 0]
    assert g["motion"]["is3D"] is True
    p3 = CaimanParams.from_dict({"gSig": (4, 4, 2), "strides": (24, 24, 4), "overlaps": (8, 8, 1)})
    g3 = cb.caiman_params(p3, (6, 40, 40))
    assert g3["init"]["gSig"] == [4.0, 4.0, 2.0] and g3["motion"]["strides"] == [24, 24, 4]


def test_patch_order_3d_becomes_array_order():
    # CaImAn: patches in C order over its (rows, cols, planes) grid
    ny, nx, nz = 2, 3, 2
    inds = np.array([(i, j, k) for i in range(ny) for j in range(nx) for k in range(nz)])
    bounds = np.stack(
        [np.stack([inds * 10, inds * 10 + 12], -1)[:, a] for a in range(3)], 1
    )  # (n, 3, 2)
    els = np.arange(len(inds), dtype=np.float32)[None, :, None].repeat(3, -1)
    els, b, grid = cb._patches_to_native(
        {"patch_bounds": bounds, "patch_inds": inds, "shifts_els": els}, 3
    )
    assert grid == (nz, ny, nx)
    # ours: C order over (z, y, x); bounds axes in array order
    for n, (k, i, j) in enumerate(np.ndindex(nz, ny, nx)):
        caiman_index = (i * nx + j) * nz + k
        assert els[0, n, 0] == caiman_index
        np.testing.assert_array_equal(
            b[n], [[k * 10, k * 10 + 12], [i * 10, i * 10 + 12], [j * 10, j * 10 + 12]]
        )


# --------------------------------------------------------------------------- runner (fake worker)

FAKE_WORKER = textwrap.dedent(r"""
    import json, os, signal, subprocess, sys, time
    import numpy as np
    job = json.load(open(sys.argv[1]))
    mode = os.environ.get("FAKE_MODE", "ok")
    def say(s):
        print(s, flush=True)
    say("@@PHASE 0 3 import caiman")
    say("@@LOG INFO caiman: fake CaImAn 0.0 for " + job["task"])
    say("a plain line CaImAn printed")
    if mode in ("hang", "ignore_term"):
        if mode == "ignore_term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(os.environ["FAKE_PIDS"], "w") as fh:
            fh.write(f"{os.getpid()} {child.pid}")
        out = job["output"].get("corrected")
        if out:
            with open(out, "wb") as fh:
                fh.write(b"half-written")
        open(os.path.join(job["workdir"], "caiman_temp.mmap"), "wb").write(b"x" * 1000)
        say("@@PHASE 1 3 CNMF fit")
        say("@@LOG INFO caiman: ready")
        while True:
            say("@@LOG INFO caiman: working")
            time.sleep(0.1)
    if mode == "error":
        say('@@ERROR {"type": "ValueError", "message": "gSig must be positive", "traceback": "tb"}')
        sys.exit(1)
    if mode == "importerror":
        say('@@ERROR {"type": "ImportError", "message": "CaImAn is installed but cannot be imported (no tensorflow)"}')
        sys.exit(1)
    if mode == "crash":
        say("@@LOG ERROR caiman: segfault soon")
        os._exit(3)
    say("@@PHASE 1 3 motion correction")
    if job["task"] == "motion":
        spec = job["movie"]
        mov = np.load(spec["path"], mmap_mode="r")
        nd = mov.ndim - 1
        arr = mov if nd == 2 else np.transpose(mov, (0, 3, 1, 2))
        np.save(job["output"]["corrected"], np.asarray(arr, np.float32) + 1)
        T = mov.shape[0]
        np.savez(job["output"]["motion"], shifts_rig=np.full((T, nd), 0.5, np.float32),
                 template=np.asarray(mov, np.float32).mean(0))
    say("@@PHASE 2 3 done")
    say("@@RESULT " + json.dumps({"caiman_version": "0.0", "timings": {"motion correction": 0.1}}))
""")


@pytest.fixture
def fake_worker(tmp_path, monkeypatch):
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER)
    monkeypatch.setattr(cp, "WORKER_SCRIPT", script)
    monkeypatch.delenv(backends.ENV_PYTHON, raising=False)  # sys.executable runs it
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setenv(cp.ENV_TMPDIR, str(tmpdir))
    monkeypatch.setenv("FAKE_PIDS", str(tmp_path / "pids.txt"))
    return tmpdir


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"  # zombie: dead, not reaped yet
    except FileNotFoundError:
        return True
    except OSError:  # pragma: no cover - no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def _wait_dead(pids, timeout=10.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if all(_dead(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_fake_motion_step_result_and_progress(fake_worker):
    from napari_caiman.engine.motion import MotionResult
    from napari_caiman.engine.pipeline import MotionStepResult

    movie = np.random.default_rng(0).random((12, 20, 24)).astype(np.float32)
    seen: list[Progress] = []
    res = run(
        cb.iter_motion_step(movie, CaimanParams.from_dict({"max_shifts": (2, 2)})), seen.append
    )
    assert isinstance(res, MotionStepResult) and isinstance(res.motion, MotionResult)
    np.testing.assert_allclose(res.motion.corrected, movie + 1)
    assert res.motion.shifts_rig.shape == (12, 2) and res.motion.template.shape == (20, 24)
    assert res.motion.shifts_els is None and res.motion.params["backend"] == "caiman"
    assert res.summary.mean.shape == (20, 24)
    assert set(res.motion.metrics) >= {
        "corr_raw",
        "corr_corrected",
        "crispness_raw",
        "crispness_corrected",
    }
    stages = [p.stage for p in seen]
    assert "CaImAn: import caiman" in stages and "CaImAn: motion correction" in stages
    messages = [p.message for p in seen]
    assert (
        "caiman: fake CaImAn 0.0 for motion" in messages
        and "a plain line CaImAn printed" in messages
    )
    phase = next(p for p in seen if p.stage == "CaImAn: motion correction")
    assert (phase.done, phase.total) == (1, 3)
    assert list(fake_worker.iterdir()) == []  # temporary folder removed


def test_fake_motion_3d_axis_order_and_out_file(fake_worker, tmp_path):
    movie = np.random.default_rng(1).random((6, 4, 10, 12)).astype(np.float32)  # T, Z, Y, X
    out = tmp_path / "corrected.npy"
    res = run(
        cb.iter_motion_step(movie, CaimanParams.from_dict({"max_shifts": (2, 2, 1)}), out=out)
    )
    assert out.is_file() and isinstance(res.motion.corrected, np.memmap)
    np.testing.assert_allclose(
        res.motion.corrected, movie + 1
    )  # through CaImAn's (T, Y, X, Z) and back
    assert res.motion.template.shape == (4, 10, 12)
    np.testing.assert_allclose(res.motion.template, movie.mean(0), rtol=1e-5)
    assert list(fake_worker.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".corrected")] == []


@pytest.mark.parametrize(
    "mode, exc, text",
    [
        ("error", cp.CaimanError, "CaImAn motion failed: ValueError: gSig must be positive"),
        ("crash", cp.CaimanError, "exit status 3"),
        ("importerror", InputError, "cannot be imported"),
    ],
)
def test_fake_worker_failures(fake_worker, monkeypatch, tmp_path, mode, exc, text):
    monkeypatch.setenv("FAKE_MODE", mode)
    out = tmp_path / "c.npy"
    with pytest.raises(exc, match=text):
        run(cb.iter_motion_step(np.zeros((5, 8, 8), np.float32), CaimanParams(), out=out))
    assert not out.exists() and list(fake_worker.iterdir()) == []
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".c.")] == []


@posix_only
@pytest.mark.parametrize("mode", ["hang", "ignore_term"])
def test_cancel_kills_the_process_group_and_removes_files(fake_worker, monkeypatch, tmp_path, mode):
    monkeypatch.setenv("FAKE_MODE", mode)
    monkeypatch.setattr(cp, "GRACE_S", 1.0)
    out = tmp_path / "corrected.npy"
    gen = cb.iter_motion_step(np.zeros((5, 8, 8), np.float32), CaimanParams(), out=out)
    t0 = time.monotonic()
    for p in gen:
        if p.message == "caiman: ready":
            break
        assert time.monotonic() - t0 < 60
    pids = [int(v) for v in (tmp_path / "pids.txt").read_text().split()]
    assert not any(_dead(p) for p in pids)
    assert any(fake_worker.iterdir())  # the job's temporary folder exists while it runs
    gen.close()  # what a cancelled napari worker does
    assert _wait_dead(pids), "worker or its child still alive"
    assert list(fake_worker.iterdir()) == []
    assert (
        not out.exists()
        and [p for p in tmp_path.iterdir() if p.name.startswith(".corrected")] == []
    )


@posix_only
def test_error_in_the_consumer_also_kills(fake_worker, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_MODE", "hang")
    gen = cb.iter_cnmf_step(np.zeros((5, 8, 8), np.float32), CaimanParams(), summary=object())
    for p in gen:
        if p.message == "caiman: ready":
            break
    pids = [int(v) for v in (tmp_path / "pids.txt").read_text().split()]
    with pytest.raises(KeyboardInterrupt):
        gen.throw(KeyboardInterrupt())
    assert _wait_dead(pids)
    assert list(fake_worker.iterdir()) == []


def test_heartbeat_while_the_worker_is_silent(tmp_path):
    script = tmp_path / "quiet.py"
    script.write_text(
        "import time, json\ntime.sleep(1.0)\nprint('@@RESULT ' + json.dumps({'ok': 1}), flush=True)\n"
    )
    seen = []
    res = run(
        cp.iter_run_worker({"task": "motion"}, tmp_path, python=sys.executable, script=script),
        seen.append,
    )
    assert res == {"ok": 1}
    assert len(seen) >= 3  # a report every HEARTBEAT_S even without output


def test_missing_interpreter_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot start the CaImAn python"):
        run(
            cp.iter_run_worker({"task": "cnmf"}, tmp_path, python=str(tmp_path / "nope" / "python"))
        )


def test_bad_inputs_are_input_errors(fake_worker):
    with pytest.raises(InputError, match="template"):
        run(
            cb.iter_motion_step(
                np.zeros((5, 8, 8), np.float32), CaimanParams(), template=np.zeros((3, 3))
            )
        )
    with pytest.raises(InputError, match="Ain"):
        run(
            cb.iter_cnmf_step(
                np.zeros((5, 8, 8), np.float32), CaimanParams(), Ain=np.zeros((2, 4, 4))
            )
        )
    with pytest.raises(InputError, match="out"):
        run(cb.iter_motion_step(np.zeros((5, 8, 8), np.float32), CaimanParams(), out="x.avi"))


def test_ain_images_become_caiman_pixel_order():
    masks = np.zeros((2, 6, 7), bool)
    masks[0, 1, 5] = True
    masks[1, 4, 2] = True
    A = cb._ain_pixels(masks, (6, 7))
    assert A.shape == (42, 2)
    assert A[1 + 6 * 5, 0] == 1 and A[4 + 6 * 2, 1] == 1 and A.sum() == 2


def test_whole_file_memmaps_are_passed_by_path(tmp_path):
    import tifffile

    arr = np.random.default_rng(0).random((4, 5, 6)).astype(np.float32)
    np.save(tmp_path / "m.npy", arr)
    mm = np.load(tmp_path / "m.npy", mmap_mode="r")
    assert cb._passthrough(mm) == {
        "path": str((tmp_path / "m.npy").resolve()),
        "format": "npy",
        "shape": [4, 5, 6],
    }
    assert cb._passthrough(mm[1:]) is None  # a part of the file: copied
    assert cb._passthrough(arr) is None
    tifffile.imwrite(tmp_path / "m.tif", arr, photometric="minisblack")
    tm = tifffile.memmap(tmp_path / "m.tif", mode="r")
    assert cb._passthrough(tm)["format"] == "tif"


# --------------------------------------------------------------------------- with the real CaImAn

needs_caiman = pytest.mark.skipif(
    not backends.caiman_available(), reason="CaImAn not available (set NAPARI_CAIMAN_CAIMAN_PYTHON)"
)


@pytest.fixture(scope="module")
def movie2d_motion():
    from napari_caiman.engine.synthetic import make_movie_2d

    return make_movie_2d((200, 96, 96), n_neurons=15, rigid_motion=3, nonrigid_motion=1, seed=2)


def _frame_corr(a, b, crop):
    return float(
        np.mean(
            [
                np.corrcoef(np.nan_to_num(a[t][crop]).ravel(), b[t][crop].ravel())[0, 1]
                for t in range(0, len(a), 5)
            ]
        )
    )


@pytest.mark.caiman
@needs_caiman
@pytest.mark.parametrize("pw_rigid", [False, True])
def test_caiman_motion_2d(movie2d_motion, pw_rigid, tmp_path):
    from napari_caiman.engine.pipeline import iter_motion_step

    m = movie2d_motion
    p = CaimanParams.from_dict(
        {
            "backend": "caiman",
            "max_shifts": (6, 6),
            "pw_rigid": pw_rigid,
            "strides": (32, 32),
            "overlaps": (16, 16),
        }
    )
    out = tmp_path / "mc.tif"
    res = run(iter_motion_step(m.movie, p, out=out))
    mo = res.motion
    assert out.is_file() and mo.corrected.shape == m.movie.shape
    truth = -m.shifts  # CaImAn's shifts are corrections
    for ax in range(2):
        assert np.corrcoef(mo.shifts_rig[:, ax], truth[:, ax])[0, 1] > 0.97
    crop = (slice(10, -10), slice(10, -10))
    assert (
        _frame_corr(mo.corrected, m.still, crop) > 0.96 > _frame_corr(m.movie, m.still, crop) + 0.1
    )
    assert np.nanmean(mo.metrics["corr_corrected"]) > np.nanmean(mo.metrics["corr_raw"]) + 0.05
    if pw_rigid:
        assert mo.shifts_els.shape == (200, 9, 2) and mo.patch_grid_shape == (3, 3)
        assert mo.patch_bounds.shape == (9, 2, 2) and mo.patch_bounds[-1].tolist() == [
            [48, 96],
            [48, 96],
        ]
    else:
        assert mo.shifts_els is None


def _check_cnmf(est, truth, *, f1, corr):
    from napari_caiman.engine.cnmf.compare import match_components

    acc = est.idx_components
    mr = match_components(est.footprints(acc), truth.footprints, est.C[acc], truth.traces)
    assert mr.f1 >= f1, str(mr)
    assert mr.median_trace_corr >= corr, str(mr)
    return mr


@pytest.mark.caiman
@needs_caiman
def test_caiman_cnmf_and_evaluate_2d():
    from napari_caiman.engine.evaluation import apply_thresholds, thresholds_from_params
    from napari_caiman.engine.pipeline import iter_cnmf_step, iter_evaluate_step
    from napari_caiman.engine.synthetic import make_movie_2d

    m = make_movie_2d((200, 48, 48), n_neurons=8, seed=3)
    p = CaimanParams.from_dict({"backend": "caiman", "K": 12, "gSig": (4, 4), "use_cnn": False})
    est = run(iter_cnmf_step(m.movie, p)).estimates
    assert (
        est.dims == (48, 48) and est.A.shape == (48 * 48, est.C.shape[0]) and est.C.shape[1] == 200
    )
    assert est.info["backend"] == "caiman" and est.bl.dtype.kind == "f"
    ev = run(iter_evaluate_step(m.movie, est, p))
    assert ev.metrics.SNR_comp.shape == (est.n_components,) and ev.F_dff.shape == est.C.shape
    mr = _check_cnmf(est, m, f1=0.85, corr=0.9)
    # CaImAn's accepted set is what our thresholds give on its metrics
    np.testing.assert_array_equal(
        apply_thresholds(ev.metrics, **thresholds_from_params(p))[0], est.idx_components
    )
    print(mr)


@pytest.mark.caiman
@needs_caiman
def test_caiman_seeded_cnmf_recovers_the_seeds():
    from napari_caiman.engine.pipeline import iter_cnmf_step
    from napari_caiman.engine.synthetic import make_movie_2d

    m = make_movie_2d((200, 48, 48), n_neurons=6, seed=4)
    seeds = m.footprints > 0.3 * m.footprints.max(axis=(1, 2), keepdims=True)
    p = CaimanParams.from_dict({"backend": "caiman", "gSig": (4, 4)})
    est = run(iter_cnmf_step(m.movie, p, Ain=seeds)).estimates
    est.idx_components = np.arange(est.n_components)
    _check_cnmf(est, m, f1=0.99, corr=0.9)


@pytest.mark.caiman
@needs_caiman
def test_caiman_3d_cnmf():
    from napari_caiman.engine.pipeline import iter_cnmf_step, iter_evaluate_step
    from napari_caiman.engine.synthetic import make_movie_3d

    m = make_movie_3d((120, 5, 32, 32), n_neurons=5, gSig=(3, 3, 1.5), seed=5)
    p = CaimanParams.from_dict({"backend": "caiman", "K": 7, "gSig": (3, 3, 1.5), "use_cnn": False})
    est = run(iter_cnmf_step(m.movie, p)).estimates
    assert est.dims == (5, 32, 32)
    run(iter_evaluate_step(m.movie, est, p))
    _check_cnmf(est, m, f1=0.8, corr=0.9)


@pytest.mark.caiman
@needs_caiman
def test_caiman_written_results_open_with_load_results(tmp_path):
    """CaImAn's own CNMF.save() file (kept from the worker) read by load_results."""
    from napari_caiman.engine.synthetic import make_movie_2d
    from napari_caiman.io.results_file import load_results

    m = make_movie_2d((200, 48, 48), n_neurons=8, seed=3)
    np.save(tmp_path / "movie.npy", m.movie)
    p = CaimanParams.from_dict({"K": 12, "gSig": (4, 4)})
    job = {
        "task": "cnmf",
        "workdir": str(tmp_path),
        "movie": {"path": str(tmp_path / "movie.npy"), "format": "npy", "shape": [200, 48, 48]},
        "params": cb.caiman_params(p, (48, 48)),
        "n_processes": 1,
        "output": {"cnmf": str(tmp_path / "c.hdf5")},
    }
    run(cp.iter_run_worker(job, tmp_path))
    res = load_results(tmp_path / "c.hdf5")
    assert res.dims == (48, 48) and res.estimates.n_components >= 8
    from napari_caiman.engine.cnmf.compare import match_components

    assert match_components(res.estimates, m.footprints).recall == 1.0


@posix_only
@pytest.mark.caiman
@needs_caiman
def test_caiman_cancel_mid_cnmf(tmp_path, monkeypatch):
    from napari_caiman.engine.pipeline import iter_cnmf_step
    from napari_caiman.engine.synthetic import make_movie_2d

    procs = []
    real_popen = cp._popen
    monkeypatch.setattr(cp, "_popen", lambda *a: procs.append(real_popen(*a)) or procs[-1])
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setenv(cp.ENV_TMPDIR, str(tmpdir))
    m = make_movie_2d((300, 64, 64), n_neurons=15, seed=1)
    p = CaimanParams.from_dict(
        {"backend": "caiman", "K": 4, "gSig": (4, 4), "rf": 16, "stride": 6, "n_processes": 2}
    )
    gen = iter_cnmf_step(m.movie, p)
    t0 = time.monotonic()
    for prog in gen:
        if prog.stage == "CaImAn: CNMF fit":
            break
        assert time.monotonic() - t0 < 120
    time.sleep(2.0)  # inside CaImAn's fit, with its process pool running
    pgid = procs[0].pid
    os.killpg(pgid, 0)  # the group is alive
    gen.close()
    assert procs[0].poll() is not None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("processes of the CaImAn worker survived the cancel")
    assert list(tmpdir.iterdir()) == []


@pytest.mark.caiman
@needs_caiman
def test_our_results_file_loads_in_caiman(tmp_path):
    """A results file written by save_results opens with CaImAn's load_CNMF."""
    import subprocess

    from napari_caiman.engine.pipeline import iter_cnmf_step, iter_evaluate_step
    from napari_caiman.engine.results import Results, summary_to_dict
    from napari_caiman.engine.synthetic import make_movie_2d
    from napari_caiman.io.results_file import save_results

    m = make_movie_2d((150, 40, 48), n_neurons=6, seed=6)
    p = CaimanParams.from_dict({"K": 8, "gSig": (4, 4), "use_cnn": False})
    step = run(iter_cnmf_step(m.movie, p))
    ev = run(iter_evaluate_step(m.movie, step.estimates, p))
    res = Results(
        params=p,
        dims=(40, 48),
        summary=summary_to_dict(step.summary),
        estimates=step.estimates,
        metrics=ev.metrics,
        F_dff=ev.F_dff,
    )
    save_results(tmp_path / "ours.hdf5", res)
    code = textwrap.dedent(f"""
        import json, numpy as np
        from caiman.source_extraction.cnmf.cnmf import load_CNMF
        cnm = load_CNMF({str(tmp_path / "ours.hdf5")!r})
        e = cnm.estimates
        A = e.A.toarray().reshape(tuple(e.dims) + (-1,), order="F")
        Cn = np.asarray(e.Cn)
        r = [float(np.corrcoef(A[..., k].ravel(), Cn.ravel())[0, 1]) for k in range(A.shape[-1])]
        print("JSON", json.dumps({{"A": list(e.A.shape), "C": list(e.C.shape), "dims": [int(d) for d in e.dims],
              "idx": [int(i) for i in e.idx_components], "corr": r,
              "gSig": [float(g) for g in cnm.params.init["gSig"]]}}))
    """)
    out = subprocess.run(
        [backends.caiman_python(), "-c", code], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(
        next(line for line in out.stdout.splitlines() if line.startswith("JSON "))[5:]
    )
    K = step.estimates.n_components
    assert info["A"] == [40 * 48, K] and info["C"] == [K, 150] and info["dims"] == [40, 48]
    assert info["idx"] == [int(i) for i in step.estimates.idx_components]
    assert min(info["corr"]) > 0.3  # footprints lie on bright spots of the correlation image
    assert info["gSig"] == [4.0, 4.0]
