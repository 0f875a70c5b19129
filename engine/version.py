"""LayerStudio's version, declared once (``version`` in pyproject.toml) and read back from the package metadata.

A source checkout that was never installed has no metadata: then the version is read from the
pyproject.toml beside the packages, so ``layerstudio --version`` and the About box still say it.
"""
from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "layerstudio"
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
UNKNOWN = "unknown"


def version() -> str:
    """The installed distribution's version; else the source tree's pyproject.toml's; else ``unknown``."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return source_version()


def source_version(pyproject: Path | None = None) -> str:
    """``[project] version`` of a pyproject.toml (the checkout's by default) that declares this distribution,
    or ``unknown``."""
    pyproject = pyproject or PYPROJECT
    if sys.version_info < (3, 11):  # pragma: no cover - Python 3.10 (no tomllib) reads an install's metadata only
        return UNKNOWN
    else:  # a version check type checkers follow: tomllib is Python 3.11's
        import tomllib

        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return UNKNOWN
        if project.get("name") != DISTRIBUTION or not isinstance(project.get("version"), str):
            return UNKNOWN
        return project["version"]
