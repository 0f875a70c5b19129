"""Where LayerStudio keeps its own files: the user's data, cache and log folders, from platformdirs.

``LAYERSTUDIO_HOME`` puts all of them in one folder instead (``data/``, ``cache/``, ``logs/``): the
tests set it, so they never read or write the user's real folders. Nothing here creates a folder;
writers create what they need (``engine.files.write_atomically`` makes the parent folder).
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "LayerStudio"
HOME_VARIABLE = "LAYERSTUDIO_HOME"


def _user_folder(kind: str) -> Path:
    home = os.environ.get(HOME_VARIABLE)
    if home:
        return Path(home).expanduser() / kind
    finder = {"data": platformdirs.user_data_path, "cache": platformdirs.user_cache_path,
              "logs": platformdirs.user_log_path}[kind]
    return Path(finder(APP_NAME, appauthor=False))


def data_dir() -> Path:
    """The user's LayerStudio data folder (downloaded datasets, automatic checkpoints)."""
    return _user_folder("data")


def cache_dir() -> Path:
    """Decoded datasets kept to skip decoding next time; safe to delete."""
    return _user_folder("cache")


def log_dir() -> Path:
    """Log files with the full tracebacks of unexpected errors."""
    return _user_folder("logs")


def datasets_dir() -> Path:
    """The default root of downloaded datasets (MNIST, Fashion-MNIST, CIFAR-10)."""
    return data_dir() / "datasets"


def checkpoints_dir() -> Path:
    """Where the window keeps a run's checkpoint when its design has not been saved to a file."""
    return data_dir() / "checkpoints"
