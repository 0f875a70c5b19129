"""File > Import PyTorch…: a PyTorch file, a torchvision model or a bare state_dict opened as a new, unsaved design,
and a dialog listing what could not be mapped (or was changed), each part with its line or module and the reason.

The importing is engine.importing's; this module only asks for the source and the input shape and shows the result.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.controls import naming
from engine.errors import LayerStudioError
from engine.importing import TORCHVISION_PREFIX, Imported, design_data, import_model, parse_shape
from engine.importing.source import INPUT_SHAPE_SETTING
from engine.importing.torchvision_models import MODELS
from gui.document import DesignFile
from gui.file_dialogs import get_open_path

SHAPE_BOX = "the Input shape box"  # how messages name the input shape here (engine.controls)
SOURCE_FILTER = ("PyTorch files and state_dicts (*.py *.pt *.pth *.safetensors);;PyTorch files (*.py);;"
                 "State dicts (*.pt *.pth *.safetensors);;All files (*)")


class ImportDialog(QDialog):
    """Asks what to import (a file, or one of torchvision's classic models) and one input sample's shape."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Import PyTorch")
        self.from_file = QRadioButton("A PyTorch file or state_dict")
        self.from_torchvision = QRadioButton("A torchvision model")
        choice = QButtonGroup(self)
        choice.addButton(self.from_file)
        choice.addButton(self.from_torchvision)
        self.from_file.setChecked(True)
        self.path = QLineEdit()
        self.path.setPlaceholderText("model.py, or weights.pt")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.model = QComboBox()
        self.model.addItems(list(MODELS))
        self.shape = QLineEdit()
        self.shape.setPlaceholderText("e.g. 1x28x28; empty: the file's INPUT_SHAPE, 3x224x224 for torchvision")
        row = QHBoxLayout()
        row.addWidget(self.path)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow(self.from_file)
        form.addRow("File:", row)
        form.addRow(self.from_torchvision)
        form.addRow("Model:", self.model)
        form.addRow("Input shape:", self.shape)
        note = QLabel("A file is read, never run: each nn.X(...) call with literal arguments becomes a layer.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Import")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.path.textEdited.connect(lambda _: self.from_file.setChecked(True))
        self.model.activated.connect(lambda _: self.from_torchvision.setChecked(True))

    def _browse(self) -> None:
        path = get_open_path(self, "imports", "Import PyTorch", SOURCE_FILTER)
        if path:
            self.path.setText(path)
            self.from_file.setChecked(True)

    def source(self) -> str:
        """What to import, as `layerstudio import` takes it."""
        if self.from_torchvision.isChecked():
            return TORCHVISION_PREFIX + self.model.currentText()
        return self.path.text().strip()


class ImportReport(QDialog):
    """What an import left out or changed: a table of where, what and why."""

    def __init__(self, imported: Imported, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Imported {imported.source}")
        self.setObjectName("importReport")
        summary = QLabel(imported.summary() + ".")
        summary.setWordWrap(True)
        self.table = QTableWidget(len(imported.notes), 4)
        self.table.setHorizontalHeaderLabels(["", "Where", "What", "Why"])
        for row, note in enumerate(imported.notes):
            cells = ("Not mapped" if note.left_out else "Changed", note.where[:1].upper() + note.where[1:],
                     note.what, note.reason)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                item.setToolTip(text)
                self.table.setItem(row, column, item)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(True)
        header = self.table.horizontalHeader()
        for column in range(3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)  # wrapped text
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        hint = QLabel("The design is open as a new, unsaved design: add what is missing, then save it.")
        hint.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(summary)
        layout.addWidget(self.table)
        layout.addWidget(hint)
        layout.addWidget(buttons)
        self.resize(1000, 420)


def import_pytorch(window) -> None:
    """File > Import PyTorch…: ask, import, open the design, show what could not be mapped."""
    if not window.may_replace_design():
        return
    dialog = ImportDialog(window)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return
    import_into(window, dialog.source(), dialog.shape.text())


def import_into(window, source: str, shape_text: str = "") -> ImportReport | None:
    """Import ``source`` for the input shape ``shape_text`` (empty: the source's own) into the window as a new
    design; the report dialog (opened, not waited for) when parts were left out or changed, else None."""
    if not source:
        window.show_error("Nothing to import", "choose a PyTorch file or a torchvision model, then press Import")
        return None
    QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        with naming(lambda key: SHAPE_BOX if key == INPUT_SHAPE_SETTING else None):
            shape = parse_shape(shape_text) if shape_text.strip() else None
            imported = import_model(source, shape)
    except LayerStudioError as exc:
        window.show_error(f"Cannot import {source}", str(exc))
        return None
    finally:
        QGuiApplication.restoreOverrideCursor()
    window.load_design(DesignFile.from_dict(design_data(imported), imported.spec))
    window.show_message(imported.summary())
    if not imported.notes:
        return None
    report = ImportReport(imported, window)
    report.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    report.open()
    return report
