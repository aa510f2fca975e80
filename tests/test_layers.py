"""The package's layers, checked on the source: who may import whom, and no import cycles.

::

    engine/   algorithms (motion, CNMF, evaluation, parameters); imports only engine/
    io/       file formats (movies, results HDF5, provenance, NWB/CSV/TIFF export); engine/ + io/
    app/      the headless application (runs, batch queue, Dask, CLI, demo, public API); engine/ + io/ + app/
    plugin/   the napari side (readers, sample data, layers/, widgets/); may use everything

Every ``import`` in every module counts, at the top or inside a function
(a lazy import is still a dependency), and so does every import of a
third-party GUI package (Qt, magicgui, vispy, napari) below the napari side.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "napari_caiman"
SRC = Path(__file__).resolve().parents[1] / "src"

#: layer of each top-level part of the package; a module may import its own layer and lower ones
LAYERS = {"engine": 0, "io": 1, "app": 2, "plugin": 3}
LAYER_NAMES = {0: "engine", 1: "io", 2: "app", 3: "napari side"}
#: neutral modules anyone may import (the version string; the package top only imports it)
NEUTRAL = {PACKAGE, f"{PACKAGE}._version"}
GUI_PACKAGES = {
    "PyQt5",
    "PyQt6",
    "PySide2",
    "PySide6",
    "qtpy",
    "magicgui",
    "vispy",
    "napari",
    "superqt",
}
#: (module, third-party GUI package) pairs allowed below the napari side, with the reason
GUI_ALLOWED = {
    # `napari-caiman demo` opens a viewer with the plugin's docks (by napari's public API and the
    # plugin's manifest name, not by importing our napari side); lazily, inside open_demo_viewer
    (f"{PACKAGE}.app.demo", "napari"): "the demo command opens napari",
    (f"{PACKAGE}.app.demo", "qtpy"): "the demo raises its first dock once the event loop runs",
}


def _modules(src: Path = SRC) -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


def _imports(module: str, path: Path, is_pkg: bool, modules: dict) -> list[tuple[str, int, bool]]:
    """(imported module, line, resolved) for every import of the package in ``path``;
    third-party imports as ``("<ext>:" + top name, line, True)``."""
    base = module if is_pkg else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                head = base.split(".")
                head = head[: len(head) - (node.level - 1)]
                target = ".".join(head + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                targets = [target]
            else:
                # `from pkg import sub` imports the submodule when there is one
                targets = [
                    f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target
                    for a in node.names
                ]
        else:
            continue
        for t in targets:
            if t.split(".")[0] != PACKAGE:
                found.append((f"<ext>:{t.split('.')[0]}", node.lineno, True))
            else:
                found.append((t, node.lineno, t in modules))
    return found


def _graph(src: Path = SRC):
    modules = _modules(src)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    problems: list[str] = []
    for m, (path, is_pkg) in modules.items():
        where = path.relative_to(src)
        for target, line, resolved in _imports(m, path, is_pkg, modules):
            if target.startswith("<ext>:"):
                ext = target[6:]
                if ext in GUI_PACKAGES and _layer(m) < 3 and (m, ext) not in GUI_ALLOWED:
                    problems.append(
                        f"{where}:{line}: {m} ({_layer_name(m)}) imports the GUI package {ext}"
                    )
                continue
            if not resolved:
                problems.append(
                    f"{where}:{line}: {m} imports {target}, which is not a module of the package"
                )
                continue
            if target != m:
                edges[m].add(target)
            if target in NEUTRAL or m == PACKAGE:
                continue
            if _layer(target) > _layer(m):
                problems.append(
                    f"{where}:{line}: {m} ({_layer_name(m)}) imports {target} "
                    f"({_layer_name(target)}), a higher layer"
                )
    return modules, edges, problems


def _layer(module: str) -> int:
    parts = module.split(".")
    if module in NEUTRAL:
        return -1
    if len(parts) < 2 or parts[1] not in LAYERS:
        raise AssertionError(f"{module} lies in no layer: put it under one of {sorted(LAYERS)}")
    return LAYERS[parts[1]]


def _layer_name(module: str) -> str:
    return LAYER_NAMES.get(_layer(module), "neutral")


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_every_module_lies_in_a_layer_and_imports_only_its_own_or_lower_layers():
    modules, _edges, problems = _graph()
    assert len(modules) > 60
    for m in modules:
        _layer(m)
    assert problems == [], "layer rule broken:\n" + "\n".join(problems)


def test_no_import_cycle_between_modules():
    _modules_, edges, _problems = _graph()
    cycles = _cycles(edges)
    assert cycles == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


# --- the checker itself finds what it must (a tiny package written here) ------------


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / PACKAGE / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


@pytest.fixture
def tiny(tmp_path):
    return _write(
        tmp_path,
        {
            "__init__.py": "",
            "_version.py": "",
            "engine/__init__.py": "",
            "engine/a.py": "from . import b\n",
            "engine/b.py": "def f():\n    from .a import x\n",  # lazy: still a cycle
            "io/__init__.py": "",
            "io/f.py": "from ..engine.b import f\n",
            "app/__init__.py": "",
            "app/run.py": "from ..io import f\nfrom ..engine import a\n",
            "plugin/__init__.py": "",
            "plugin/w.py": "from ..app.run import main\nimport qtpy\n",
        },
    )


def test_checker_passes_a_clean_tree_and_finds_cycles(tiny):
    _modules_, edges, problems = _graph(tiny)
    assert problems == []
    assert edges[f"{PACKAGE}.app.run"] == {f"{PACKAGE}.io.f", f"{PACKAGE}.engine.a"}
    assert _cycles(edges) == [[f"{PACKAGE}.engine.a", f"{PACKAGE}.engine.b"]]


def test_checker_finds_upward_imports_gui_imports_and_dangling_imports(tiny):
    _write(
        tiny,
        {
            "engine/c.py": "def g():\n    from ..io.f import f\n",
            "io/g.py": "from napari.utils import notifications\n",
            "app/h.py": "from .atomic import atomic_path\n",
        },
    )
    _modules_, _edges, problems = _graph(tiny)
    text = "\n".join(problems)
    assert len(problems) == 3, text
    assert "engine.c (engine) imports napari_caiman.io.f (io), a higher layer" in text
    assert "io.g (io) imports the GUI package napari" in text
    assert "app.atomic, which is not a module of the package" in text


#: Source modules allowed over MAX_LINES, each with the reason (issue 13: none without one).
LONG_MODULES = {
    "engine/evaluation.py": "the Metrics record, the SNR, the chunked spatial r-values (local or on "
    "a cluster), the metrics driver, apply_thresholds and the classifier's use; to split (r-values "
    "apart) with the real-data work, which edits it (issue 14)",
    "engine/motion.py": "NoRMCorre: the MotionResult record, the parameter check (_Config), the "
    "registration engine (template, chunks, piecewise) and the ~280-line iter_motion_correct "
    "driver; to split with the recording-scale work, which edits it (issue 10)",
}
MAX_LINES = 600


def test_no_module_over_600_lines_without_a_written_reason():
    too_long = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        rel = path.relative_to(SRC / PACKAGE).as_posix()
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES and rel not in LONG_MODULES:
            too_long[rel] = n
    assert too_long == {}, (
        f"modules over {MAX_LINES} lines: {too_long}; split them, or give the reason "
        "in LONG_MODULES"
    )
    gone = [m for m in LONG_MODULES if not (SRC / PACKAGE / m).is_file()]
    assert gone == [], f"LONG_MODULES names files that are not there: {gone}"
    short = [
        m
        for m in LONG_MODULES
        if len((SRC / PACKAGE / m).read_text(encoding="utf-8").splitlines()) <= MAX_LINES
    ]
    assert short == [], f"LONG_MODULES names files no longer over {MAX_LINES} lines: {short}"
