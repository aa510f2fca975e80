"""The headless side (engine, io, CLI, batch, public API) never loads Qt, magicgui, vispy or napari."""

from __future__ import annotations

import subprocess
import sys

GUI_PACKAGES = ("PyQt6", "PyQt5", "PySide6", "PySide2", "qtpy", "magicgui", "vispy", "napari", "superqt")

_CODE = r"""
import sys
import napari_caiman
from napari_caiman import Batch, run_pipeline, load_results, save_results, CaimanParams
import napari_caiman.cli, napari_caiman.runs, napari_caiman.batch, napari_caiman.dask_batch
import napari_caiman.engine.motion, napari_caiman.engine.cnmf, napari_caiman.engine.evaluation
import napari_caiman.engine.results, napari_caiman.engine.export, napari_caiman.engine.pipeline
import napari_caiman.io.movie
gui = set(sys.argv[1:])
print(sorted(m for m in sys.modules if m.split('.')[0] in gui))
"""


def test_headless_api_loads_no_gui_module():
    out = subprocess.run(
        [sys.executable, "-c", _CODE, *GUI_PACKAGES], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"GUI modules loaded by the headless API: {out.stdout}"


def test_cli_help_loads_no_gui_module():
    code = (
        "import sys\nfrom napari_caiman.cli import main\n"
        "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
        "gui = set(sys.argv[1:])\n"
        "print('MODULES', sorted(m for m in sys.modules if m.split('.')[0] in gui))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *GUI_PACKAGES], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "MODULES []"
