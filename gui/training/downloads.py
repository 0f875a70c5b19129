"""Downloads in the Training tab: the line saying what a run will download, and the question the first time.

The size and the folder come from ``engine.data.downloads.pending_download``. Before Start, Load data or Preview data
begins a download into the default data folder (the one-click path of a template: the app chose the folder),
a question asks once per dataset (QSettings remembers the answer "Download"); a download into a folder the
user chose, with Download if missing ticked, was their own decision and goes ahead.
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget

from engine.data import DataConfig
from engine.data.downloads import PendingDownload, pending_download
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

    def declined(self) -> None:
        """The user answered Cancel to the download: say that nothing started, until the data settings change."""
        if self.text() and "Not started" not in self.text():
            self.setText(f"{self.text()} Not started: you chose not to download it. Choose other data, or Try it "
                         f"on the bundled sample.")


def confirm_download(parent: QWidget, values: dict | None, proceed: Callable[[], object],
                     declined: Callable[[], object] | None = None) -> QMessageBox | None:
    """Call ``proceed`` once loading these data settings may go on: at once when nothing is to be downloaded,
    the download is off, it goes into a folder the user chose, or this dataset's download into the default
    data folder was confirmed before; otherwise after the user answers "Download" in a window-modal
    question (returned; the event loop keeps running), ``declined`` when they cancel."""
    pending, source = pending_for(values)
    chose_folder = bool(str((values or {}).get("root", "")).strip())
    settings = QSettings()
    key = CONFIRMED_KEY.format(source=source)
    if pending is None or not pending.enabled or chose_folder or settings.value(key, False, type=bool):
        proceed()
        return None
    box = QMessageBox(QMessageBox.Icon.Question, "Download the dataset?", pending.sentence(),
                      QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel, parent)
    download = box.button(QMessageBox.StandardButton.Ok)
    download.setText("Download")
    box.setInformativeText("It is fetched once and kept there for the next runs. Cancel to choose other data, "
                           "or Try it on the bundled sample, which needs no download.")
    box.setDefaultButton(download)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def answered() -> None:
        if box.clickedButton() is download:
            settings.setValue(key, True)
            proceed()
        elif declined is not None:
            declined()

    box.finished.connect(answered)
    box.open()
    return box
