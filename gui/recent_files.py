"""The recent design files: the list kept in QSettings (newest first) and the File menu's Open Recent.

The list, the last design file (opened again at the next start) and the design folder the Open
dialog starts in are updated together, in ``add_recent``, whenever a design is opened or saved.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMenu

from gui.file_dialogs import remember_folder

MAX_RECENT = 8
RECENT_KEY = "recentFiles"
LAST_KEY = "lastFile"


def recent_files() -> list[str]:
    value = QSettings().value(RECENT_KEY, [], type=list)
    return [str(v) for v in value or []]


def last_file() -> str:
    """The design file opened or saved last ("" before the first)."""
    return QSettings().value(LAST_KEY, "")


def add_recent(path) -> None:
    path = str(Path(path).resolve())
    files = [path] + [p for p in recent_files() if p != path]
    settings = QSettings()
    settings.setValue(RECENT_KEY, files[:MAX_RECENT])
    settings.setValue(LAST_KEY, path)
    remember_folder("designs", path)  # a design opened from Open Recent: the Open dialog starts there too


def forget_recent(path: str) -> None:
    """Take ``path`` off the list (a file that is gone)."""
    QSettings().setValue(RECENT_KEY, [p for p in recent_files() if p != path])


def fill_recent_menu(menu: QMenu, open_recent: Callable[[str], None]) -> None:
    """Fill Open Recent (each time it is about to show): a file each, newest first, then Clear List."""
    menu.clear()
    files = recent_files()
    for path in files:
        action = menu.addAction(Path(path).name)
        action.setToolTip(path)
        action.setStatusTip(path)
        action.triggered.connect(lambda _=False, p=path: open_recent(p))
    if not files:
        menu.addAction("No recent designs").setEnabled(False)
    else:
        menu.addSeparator()
        menu.addAction("Clear List", lambda: QSettings().remove(RECENT_KEY))
