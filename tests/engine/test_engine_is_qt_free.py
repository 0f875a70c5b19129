"""engine/ never imports Qt or the GUI; the analysis path does not even import torch (start-up speed)."""
from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import engine

FORBIDDEN = ("PySide6", "shiboken6", "pyqtgraph", "gui")
ANALYSIS_MODULES = ("engine", "engine.errors", "engine.layers", "engine.spec", "engine.shapes")


def modules_loaded_by(imports: list[str]) -> set[str]:
    """Import modules in a fresh interpreter and return every module name it ended up loading."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {imports!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(engine.__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def engine_modules() -> list[str]:
    """Every module of the engine, those inside its subpackages (engine.layers.core) too."""
    return ["engine"] + sorted(m.name for m in pkgutil.walk_packages(engine.__path__, "engine."))


def is_forbidden(module: str) -> bool:
    return any(module == root or module.startswith(root + ".") for root in FORBIDDEN)


def test_every_engine_module_imports_without_qt_or_gui():
    names = engine_modules()
    assert {"engine.spec", "engine.layers", "engine.shapes", "engine.build", "engine.blocks"} <= set(names)
    assert {"engine.layers.registry", "engine.layers.convolution", "engine.layers.group"} <= set(names)
    assert {"engine.groups", "engine.group_analysis", "engine.tree", "engine.legacy"} <= set(names)
    loaded = modules_loaded_by(names)
    assert set(names) <= loaded
    assert sorted(m for m in loaded if is_forbidden(m)) == []


def test_analysis_does_not_import_torch():
    loaded = modules_loaded_by(list(ANALYSIS_MODULES))
    assert "torch" not in loaded
    assert "engine.shapes" in loaded
