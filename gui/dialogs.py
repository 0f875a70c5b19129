"""Small dialogs: New design (empty or a template), help, about, and the save-file question."""
from __future__ import annotations


from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog, QDialogButtonBox, QLabel, QListWidget, QListWidgetItem, QMessageBox, QTextBrowser,
    QVBoxLayout,
)

from engine.templates import list_templates
from engine.version import version

EMPTY = ""  # the "template" name of an empty design

SHORTCUTS = (
    ("Ctrl+N / Ctrl+O / Ctrl+S / Ctrl+Shift+S", "new, open, save, save as"),
    ("Ctrl+Z / Ctrl+Shift+Z or Ctrl+Y", "undo / redo"),
    ("Delete, Ctrl+D", "delete / duplicate the selected layers"),
    ("Ctrl+X / Ctrl+C / Ctrl+V", "cut / copy / paste layers (as JSON)"),
    ("Alt+Up / Alt+Down", "move the selected layers"),
    ("Ctrl+F", "filter the layer palette"),
    ("Ctrl+1, Ctrl+2, …", "switch tabs"),
    ("F1", "this help"),
)


class NewDesignDialog(QDialog):
    """Choose an empty design or one of the bundled templates."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("New design")
        self.resize(560, 460)
        self.list = QListWidget()
        self.list.setObjectName("templateList")
        self.list.setWordWrap(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.setSpacing(2)
        self._add(EMPTY, "Empty design", "Start from an input of 1x28x28 and no layers.")
        for info in list_templates():
            dataset = f"  (data: {info.dataset})" if info.dataset else ""
            self._add(info.name, info.name, info.description + dataset)
        self.list.setCurrentRow(0)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.list.itemDoubleClicked.connect(lambda _: self.accept())
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Start from an empty design or from one of the networks of the course notes:"))
        layout.addWidget(self.list)
        layout.addWidget(buttons)

    def _add(self, name: str, title: str, description: str) -> None:
        item = QListWidgetItem(f"{title}\n{description}")
        item.setData(Qt.ItemDataRole.UserRole, name)
        item.setToolTip(description)
        self.list.addItem(item)

    def choice(self) -> str:
        """The chosen template name, or EMPTY."""
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else EMPTY


def help_dialog(parent) -> QDialog:
    dialog = QDialog(parent)
    dialog.setWindowTitle("LayerStudio help")
    dialog.resize(620, 520)
    rows = "".join(f"<tr><td><b>{keys}</b></td><td>&nbsp;&nbsp;{what}</td></tr>" for keys, what in SHORTCUTS)
    text = QTextBrowser()
    text.setOpenExternalLinks(True)
    text.setHtml(
        "<h2>Designing a network</h2>"
        "<p>Add layers from the <b>palette</b> on the left: double-click a layer (it goes after the selected one) "
        "or drag it to a position in the stack. Drag rows to reorder them.</p>"
        "<p>Every row shows the layer's output shape and parameter count, updated as you edit. A red mark means "
        "the layer cannot take its input: the <b>inspector</b> on the right says why and how to fix it.</p>"
        "<p>The inspector edits the selected layer. For convolutions and pooling it shows the size formula with "
        "your numbers; for a hidden Linear it suggests sizes you can apply with one click.</p>"
        "<p>The <b>Code</b> tab shows the model as PyTorch prints it and as a standalone script.</p>"
        f"<h3>Keyboard</h3><table>{rows}</table>"
    )
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addWidget(text)
    layout.addWidget(buttons)
    return dialog


def show_about(parent) -> None:
    QMessageBox.about(
        parent, "About LayerStudio",
        f"<h3>LayerStudio {version()}</h3><p>Design a neural network by stacking layers, see every shape and parameter count "
        "live, train it and keep real PyTorch weights.</p><p>PySide6 · PyTorch</p>",
    )
