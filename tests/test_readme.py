"""The README's code blocks run as written, on a small synthetic movie.

Every ```python block and every `napari-caiman ...` line of the ```bash blocks
is taken from README.md and run in a folder holding the files the README
names (movie.tif, part1.tif + part2.tif, params.json, base.json). Left out,
by their text: the install/test lines at the top (pip, .ci/run), the demo
(opens napari), the development commands, and the Dask lines
(`--scheduler`: a cluster of its own, tested in test_batch.py).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_caiman.app.cli import main
from napari_caiman.engine.synthetic import make_movie_2d

README = Path(__file__).resolve().parents[1] / "README.md"

#: lines of the bash blocks that are not run here (see the module docstring)
SKIP = ("--scheduler", "napari-caiman demo", "pip install", ".ci/run", "python -m", "python bench")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def _commands() -> list[str]:
    lines = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("napari-caiman ") and not any(s in line for s in SKIP):
                lines.append(line)
    return lines


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """movie.tif (80x80, 150 frames, rigid motion, 10 neurons), its two halves, params files."""
    d = tmp_path_factory.mktemp("readme")
    syn = make_movie_2d((150, 80, 80), n_neurons=10, rigid_motion=2.5, dtype=np.uint16, seed=5)
    tifffile.imwrite(d / "movie.tif", syn.movie)
    tifffile.imwrite(d / "part1.tif", syn.movie[:75])
    tifffile.imwrite(d / "part2.tif", syn.movie[75:])
    small = {"gSig": [4, 4], "K": 6, "rf": 25, "stride": 10, "max_shifts": [6, 6]}
    (d / "params.json").write_text(json.dumps(small))
    (d / "base.json").write_text(json.dumps(small))
    return d


@pytest.fixture
def folder(inputs, tmp_path):
    """A fresh copy of the inputs for each test (the blocks write runs.json, results ...)."""
    for f in inputs.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


def test_readme_has_what_the_test_runs():
    cmds = _commands()
    assert any(c.startswith("napari-caiman run ") for c in cmds)
    assert any(
        "--steps cnmf,evaluate" in c and "corrected.tif" in c for c in cmds
    )  # the two-step path
    assert any(c.startswith("napari-caiman batch ") for c in cmds)
    assert len(_blocks("python")) >= 2


def test_readme_python_blocks_run_as_written(folder, monkeypatch):
    monkeypatch.chdir(folder)
    for block in _blocks("python"):
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    # the first block: motion correction, then CNMF on its NaN-bordered output, then evaluation
    first: dict = {}
    exec(compile(_blocks("python")[0], "README.md", "exec"), first)  # noqa: S102
    assert np.isnan(np.asarray(first["res"].corrected)).any()  # border_nan=True left NaN borders
    est = first["est"]
    assert est.A.shape[1] >= 5 and est.idx_components is not None
    assert first["results"].accepted() is not None


def _curate_by_hand(path: Path) -> None:
    """Accept the 3 highest-SNR and reject the 2 lowest-SNR components, saved as manual decisions."""
    from napari_caiman.engine.curation import Curation
    from napari_caiman.io.results_file import load_results, save_results

    r = load_results(path)
    order = np.argsort(r.metrics.SNR_comp)
    manual = np.zeros(r.estimates.A.shape[1], np.int8)
    manual[order[:2]], manual[order[-3:]] = -1, 1
    r.curation = Curation(manual)
    save_results(path, r)


def test_readme_commands_run_as_written(folder, monkeypatch, capsys):
    monkeypatch.chdir(folder)
    cmds = _commands()
    for cmd in cmds:
        argv = shlex.split(cmd)[1:]
        if argv[0] == "train-classifier":
            _curate_by_hand(folder / argv[1])  # what the user does in the Evaluation dock first
        code = main(argv)
        out = capsys.readouterr()
        assert code == 0, f"{cmd!r} exited {code}: {out.err[-500:]}"
    for name in (
        "results.hdf5",
        "corrected.tif",
        "motion.hdf5",
        "cnmf.hdf5",
        "out.nwb",
        "traces.csv",
        "masks.tif",
        "runs.json",
        "my_cells.json",
    ):
        assert (folder / name).exists(), name
