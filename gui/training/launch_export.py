"""File > Export > Launch Script for torchrun…: the open design's run as files for several GPUs or machines
(engine.launch_script): train_ddp.py, its data as tensors and a Slurm script, with the torchrun command lines
shown after writing.

The data are the Training tab's: when they are not loaded yet they load first (off the UI thread, as Load data
does) and the export goes on once they are. ``export_to(folder)`` does the work without a dialog (tests call it).
"""
from __future__ import annotations

import html

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialog, QFileDialog, QMessageBox, QWidget

from engine.errors import LayerStudioError
from engine.launch_script import DATA_NAME, SCRIPT_NAME, SLURM_NAME, LaunchFiles, write_launch_files
from gui.file_dialogs import last_folder, remember_folder
from gui.training import controller as states

TIP = (f"Write {SCRIPT_NAME} (this design, its data and a DistributedDataParallel loop), {SLURM_NAME} and the "
       "torchrun commands, to train on several GPUs or machines")


class LaunchScriptExport(QObject):
    """The Launch Script for torchrun… action (File > Export) and what it does; ``last_dialog``: the last message."""

    def __init__(self, controller, parent_widget: QWidget):
        super().__init__(parent_widget)
        self.controller, self.parent_widget = controller, parent_widget
        self.last_dialog: QMessageBox | None = None
        self.written: LaunchFiles | None = None
        self._waiting_for: str | None = None  # the folder an export waits to write into while the data load
        self.action = QAction("&Launch Script for torchrun…", self)
        self.action.setStatusTip(TIP)
        self.action.setToolTip(TIP)
        self.action.triggered.connect(self._ask)
        controller.stateChanged.connect(self.update_enabled)
        controller.dataLoaded.connect(self._data_ready)
        controller.dataFailed.connect(self._data_failed)
        self.update_enabled()

    def update_enabled(self, *_args) -> None:
        self.action.setEnabled(self.controller.state == states.IDLE)

    def _ask(self) -> None:
        dialog = QFileDialog(self.parent_widget, "Export Launch Script: choose a folder")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.setDirectory(last_folder("launch"))
        accepted = dialog.exec() == QDialog.DialogCode.Accepted and dialog.selectedFiles()
        folder = dialog.selectedFiles()[0] if accepted else ""
        dialog.deleteLater()
        if folder:
            remember_folder("launch", f"{folder}/{SCRIPT_NAME}")
            self.export_to(folder)

    def export_to(self, folder: str) -> bool:
        """Write the launch files into ``folder`` now, or once the data have loaded; False when it cannot."""
        controller = self.controller
        try:
            data_config = controller.data_config()
        except LayerStudioError as exc:
            self._show(QMessageBox.Warning, "Export Launch Script", str(exc))
            return False
        data = controller.cached_data(data_config)
        if data is None:
            self._waiting_for = folder
            if not controller.load_data():
                self._waiting_for = None
                self._show(QMessageBox.Warning, "Export Launch Script",
                           "The data cannot be loaded while a run goes: export when it has ended.")
                return False
            controller.message.emit(f"Loading the data for {SCRIPT_NAME}…")
            return True
        return self._write(folder, data)

    def _data_ready(self, bundle) -> None:
        folder, self._waiting_for = self._waiting_for, None
        if folder is not None:
            self._write(folder, bundle)

    def _data_failed(self, text: str) -> None:
        if self._waiting_for is not None:
            self._waiting_for = None
            self._show(QMessageBox.Warning, "Export Launch Script", f"The data did not load: {text}")

    def _write(self, folder: str, data) -> bool:
        document = self.controller.document
        name = document.path.stem if document.path is not None else (document.name or "layerstudio-run")
        try:
            files = write_launch_files(folder, document.spec, self.controller.train_config(), data, name=name)
        except LayerStudioError as exc:
            self._show(QMessageBox.Warning, "Export Launch Script", str(exc))
            return False
        self.written = files
        commands = html.escape(files.text())
        self._show(QMessageBox.Information, "Launch Script Written",
                   f"Wrote {SCRIPT_NAME}, {DATA_NAME} and {SLURM_NAME} to {folder}. Run them from that folder:",
                   f"<pre>{commands}</pre>")
        self.controller.message.emit(f"Wrote {SCRIPT_NAME} to {folder}")
        return True

    def _show(self, icon, title: str, text: str, informative: str = "") -> QMessageBox:
        if self.last_dialog is not None:
            self.last_dialog.close()
        box = QMessageBox(icon, title, text, QMessageBox.Ok, self.parent_widget)
        if informative:
            box.setInformativeText(informative)
        self.last_dialog = box
        box.open()
        return box
