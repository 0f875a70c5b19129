"""Open and save dialogs that remember the last folder for each kind of file.

A kind is a short name ("designs", "weights", "checkpoints", "images", "data"); each keeps its own
folder in QSettings under ``folders/<kind>``, so saving weights somewhere does not move the place
where designs open. A remembered folder that is gone falls back to the home folder.
"""
from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QDialog, QFileDialog, QWidget

SETTINGS_GROUP = "folders"


def last_folder(kind: str) -> str:
    """The folder the last dialog of this kind was left in (the home folder at first)."""
    folder = QSettings().value(f"{SETTINGS_GROUP}/{kind}", "", type=str)
    return folder if folder and Path(folder).is_dir() else str(Path.home())


def remember_folder(kind: str, path: str | Path) -> None:
    """Start the next dialog of this kind in the folder of ``path``."""
    QSettings().setValue(f"{SETTINGS_GROUP}/{kind}", str(Path(path).resolve().parent))


def get_open_path(parent: QWidget | None, kind: str, caption: str, name_filter: str) -> str:
    """Ask for an existing file, starting in this kind's last folder; "" when cancelled."""
    dialog = _dialog(parent, caption, name_filter, QFileDialog.AcceptMode.AcceptOpen)
    dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    dialog.setDirectory(last_folder(kind))
    return _run(dialog, kind)


def get_save_path(parent: QWidget | None, kind: str, caption: str, name_filter: str, name: str,
                  default_suffix: str) -> str:
    """Ask where to save, suggesting ``name`` in this kind's last folder; a name typed without a
    suffix gets the chosen filter's (see ``with_suffix``); "" when cancelled."""
    dialog = _dialog(parent, caption, name_filter, QFileDialog.AcceptMode.AcceptSave)
    dialog.setFileMode(QFileDialog.FileMode.AnyFile)
    dialog.setDirectory(last_folder(kind))
    dialog.selectFile(name)
    path = _run(dialog, kind)
    return with_suffix(path, dialog.selectedNameFilter(), default_suffix) if path else ""


def with_suffix(path: str, chosen_filter: str, default_suffix: str) -> str:
    """``path`` as typed when it has a suffix (the save then checks it); else with the chosen filter's
    first suffix (``*.safetensors``), or ``default_suffix`` for a filter such as "All files (*)"."""
    if Path(path).suffix:
        return path
    found = re.search(r"\*(\.\w+)", chosen_filter or "")
    return path + (found.group(1) if found else default_suffix)


def _dialog(parent, caption: str, name_filter: str, mode) -> QFileDialog:
    dialog = QFileDialog(parent, caption)
    dialog.setNameFilters(name_filter.split(";;"))  # "Designs (*.json);;All files (*)", as Qt's static dialogs take
    dialog.setAcceptMode(mode)
    return dialog


def _run(dialog: QFileDialog, kind: str) -> str:
    if dialog.exec() != QDialog.DialogCode.Accepted or not dialog.selectedFiles():
        dialog.deleteLater()
        return ""
    path = dialog.selectedFiles()[0]
    dialog.deleteLater()  # freed by the event loop, after the caller has read the chosen filter
    remember_folder(kind, path)
    return path
