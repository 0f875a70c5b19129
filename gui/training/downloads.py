"""Downloads in the Training tab: the line saying what a run will download, and the question the first time.

The size and the folder come from ``engine.downloads.pending_download``; the question is asked once per
dataset (QSettings remembers the answer "Download"), before Start or Load data begins a download.
"""
from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget

from engine.data import DataConfig
from engine.downloads import PendingDownload, pending_download
from engine.errors import LayerStudioError

CONFIRMED_KEY = "downloads/confirmed/{source}"


def pending_for(values: dict | None) -> tuple[PendingDownload | None, str]:
    """(what loading these data settings would download, their source); (None, "") when nothing or invalid."""
    try:
        config = DataConfig.from_dict(dict(values or {}))
    except LayerStudioError:
        return None, ""
    return pending_download(config), config.source


class DownloadNote(QLabel):
    """``Fashion-MNIST will be downloaded (30.9 MB) into …`` under the data settings; hidden when nothing is."""

    def __init__(self, style: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setStyleSheet(style)
        self.hide()

    def refresh(self, values: dict | None) -> None:
        pending, _source = pending_for(values)
        self.setText(pending.sentence() if pending is not None else "")
        self.setVisible(pending is not None)


def confirm_download(parent: QWidget, values: dict | None) -> bool:
    """True when loading may go on: nothing to download, the download is off, this dataset's download was
    confirmed before, or the user confirms it now ("Download"); False when they cancel."""
    pending, source = pending_for(values)
    if pending is None or not pending.enabled:
        return True
    settings = QSettings()
    key = CONFIRMED_KEY.format(source=source)
    if settings.value(key, False, type=bool):
        return True
    box = QMessageBox(QMessageBox.Icon.Question, "Download the dataset?", pending.sentence(),
                      QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel, parent)
    box.button(QMessageBox.StandardButton.Ok).setText("Download")
    box.setInformativeText("It is fetched once and kept there for the next runs. Cancel to choose other data, "
                           "or Try it on the bundled sample, which needs no download.")
    box.setDefaultButton(QMessageBox.StandardButton.Ok)
    box.exec()
    if box.clickedButton() is not box.button(QMessageBox.StandardButton.Ok):
        return False
    settings.setValue(key, True)
    return True
