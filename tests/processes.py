"""LayerStudio run as a person runs it: a fresh Python process on this checkout's code.

``python -m engine.cli`` and ``python -m gui.launch`` (the ``layerstudio`` console script's own
function) from any folder import the packages of this checkout, never an installed copy.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def process_env(**extra: str) -> dict[str, str]:
    """The environment with this checkout first on the import path (and ``extra`` variables)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def command(module: str, *args) -> list[str]:
    return [sys.executable, "-m", module, *map(str, args)]


def run(module: str, *args, cwd, timeout: float = 180, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` in ``cwd``; text output captured unless redirected in ``kwargs``."""
    kwargs.setdefault("capture_output", "stdout" not in kwargs and "stderr" not in kwargs)
    kwargs.setdefault("env", process_env())
    return subprocess.run(command(module, *args), cwd=cwd, text=True, timeout=timeout, **kwargs)
