"""The Code tab: print(model) of the built network and the standalone PyTorch script, with Copy.

Both need torch, so the text is made only while the tab is visible (and
again after an edit), never at start-up.
"""
from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.errors import LayerStudioError
from gui.icons import icon
from gui.widgets import ElidedLabel
from gui.wording import shapes_in_prose

MODEL, SCRIPT = 0, 1


class CodeView(QWidget):
    def __init__(self, document, parent=None):
        super().__init__(parent)
        self.setObjectName("codeView")
        self.document = document
        self._dirty = True
        self.model_button = QToolButton()
        self.model_button.setText("print(model)")
        self.script_button = QToolButton()
        self.script_button.setText("Standalone Python")
        self.group = QButtonGroup(self)
        for mode, button in ((MODEL, self.model_button), (SCRIPT, self.script_button)):
            button.setCheckable(True)
            button.setObjectName("segment")
            self.group.addButton(button, mode)
        self.model_button.setChecked(True)
        self.copy_button = QPushButton(icon("copy"), "Copy")
        self.copy_button.setToolTip("Copy the text to the clipboard")
        self.note = ElidedLabel()  # a long hint is cut, never the Copy button
        self.note.setObjectName("help")
        bar = QHBoxLayout()
        bar.setSpacing(0)
        bar.addWidget(self.model_button)
        bar.addWidget(self.script_button)
        bar.addSpacing(12)
        bar.addWidget(self.note, 1)
        bar.addWidget(self.copy_button)
        self.text = QPlainTextEdit()
        self.text.setObjectName("code")
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(bar)
        layout.addWidget(self.text)
        self._timer = QTimer(self, singleShot=True, interval=150)
        self._timer.timeout.connect(self.refresh)
        self.group.idClicked.connect(self.refresh)
        self.copy_button.clicked.connect(self.copy)
        document.changed.connect(self._on_changed)

    def mode(self) -> int:
        return self.group.checkedId()

    def _on_changed(self) -> None:
        self._dirty = True
        if self.isVisible():
            self._timer.start()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._dirty:
            self.note.setText("Building the model…")
            self._timer.start(0)

    def refresh(self, *_) -> None:
        """Rebuild the shown text from the current design (meta device: no weights allocated)."""
        self._dirty = False
        spec = self.document.spec
        analysis = self.document.analysis
        if not analysis.ok:
            lines = [f"layer {row.index} ({row.kind}): {shapes_in_prose(row.error)}" for row in analysis.errors]
            self._show("# The design has errors; fix them to see the code:\n# " + "\n# ".join(lines),
                       f"{len(lines)} error(s)")
            return
        try:
            if self.mode() == SCRIPT:
                from engine.export import python_source

                self._show(python_source(spec), "A runnable script: its nn.Sequential has the same state_dict keys")
            else:
                from gui.meta import model_text

                self._show(model_text(spec), f"{len(spec.layers)} layers, as PyTorch prints the model")
        except LayerStudioError as exc:
            self._show(f"# {exc}", "The design cannot be built")

    def _show(self, text: str, note: str) -> None:
        scroll = self.text.verticalScrollBar().value()
        self.text.setPlainText(text)
        self.text.verticalScrollBar().setValue(scroll)
        self.note.setText(note)

    def copy(self) -> None:
        if self._dirty:
            self.refresh()
        QGuiApplication.clipboard().setText(self.text.toPlainText())
        self.note.setText("Copied to the clipboard")
