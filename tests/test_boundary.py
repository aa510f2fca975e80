"""The headless side (engine, io, the app: CLI, batch, Dask, demo, public API) never loads Qt,
magicgui, vispy or napari, whether it is imported module by module or used through the CLI."""

from __future__ import annotations

import subprocess
import sys

GUI_PACKAGES = (
    "PyQt6",
    "PyQt5",
    "PySide6",
    "PySide2",
    "qtpy",
    "magicgui",
    "vispy",
    "napari",
    "superqt",
)

_CODE = r"""
import importlib, pkgutil, sys
import napari_caiman
from napari_caiman import Batch, run_pipeline, load_results, save_results, CaimanParams
names = []
for sub in ("engine", "io", "app"):
    pkg = importlib.import_module(f"napari_caiman.{sub}")
    names.append(pkg.__name__)
    names += [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
for name in names:
    importlib.import_module(name)
gui = set(sys.argv[1:])
print("IMPORTED", len(names))
print(sorted(m for m in sys.modules if m.split('.')[0] in gui))
"""


def test_every_headless_module_loads_no_gui_module():
    out = subprocess.run(
        [sys.executable, "-c", _CODE, *GUI_PACKAGES], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    count, loaded = out.stdout.strip().splitlines()[-2:]
    assert int(count.split()[1]) > 50  # engine, io and app, all of them (not an empty walk)
    assert loaded == "[]", f"GUI modules loaded by the headless side: {loaded}"


def test_cli_help_loads_no_gui_module():
    code = (
        "import sys\nfrom napari_caiman.app.cli import main\n"
        "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
        "gui = set(sys.argv[1:])\n"
        "print('MODULES', sorted(m for m in sys.modules if m.split('.')[0] in gui))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *GUI_PACKAGES], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "MODULES []"


def test_opening_a_movie_with_the_reader_loads_neither_numba_nor_the_engine_kernels(tmp_path):
    """napari calls the reader on the main thread: importing numba there took 4 s
    of the time to the first frame of a movie."""
    import numpy as np
    import tifffile

    path = tmp_path / "m.tif"
    tifffile.imwrite(path, np.arange(20 * 16 * 16, dtype=np.uint16).reshape(20, 16, 16))
    code = (
        "import sys\nfrom napari_caiman.plugin.readers import get_reader\n"
        f"layers = get_reader({str(path)!r})({str(path)!r})\n"
        "heavy = ('numba', 'llvmlite', 'dask')\n"
        "print(layers[0][0].shape, sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(20, 16, 16) []"
