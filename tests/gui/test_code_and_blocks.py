"""The part that needs torch: the Code tab (print(model) on the meta device, the script)."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QScrollArea

from gui.code_view import MODEL, SCRIPT


def test_code_tab_shows_print_model_and_the_script(window, qtbot):
    code = window.code_view
    window.tabs.setCurrentWidget(code)
    qtbot.waitUntil(lambda: "Sequential(" in code.text.toPlainText())
    text = code.text.toPlainText()
    assert "(0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))" in text
    assert "(8): Linear(in_features=84, out_features=10, bias=True)" in text
    code.script_button.click()
    assert code.mode() == SCRIPT
    script = code.text.toPlainText()
    assert "model = nn.Sequential(" in script and "import torch" in script
    code.copy_button.click()
    assert QGuiApplication.clipboard().text() == script
    code.model_button.click()
    assert code.mode() == MODEL
    # an edit while the tab is shown rebuilds the text
    window.document.edit_param(window.document.spec.layers[0].id, "out_channels", 8)
    qtbot.waitUntil(lambda: "Conv2d(1, 8, kernel_size=(5, 5)" in code.text.toPlainText())


def in_view(widget) -> bool:
    """Whether ``widget`` lies wholly inside the visible part of the scroll area holding its tab page
    (once the layouts have settled)."""
    for _ in range(3):
        QApplication.sendPostedEvents()
        QApplication.processEvents()
    area = widget.parentWidget()
    while not isinstance(area, QScrollArea):
        area = area.parentWidget()
    rect = QRect(widget.mapTo(area.viewport(), QPoint(0, 0)), widget.size())
    return widget.isVisible() and area.viewport().rect().contains(rect)


@pytest.mark.parametrize("size", [(1280, 800), (1024, 700)])
def test_copy_stays_in_view_whatever_the_hint_says(window, qtbot, size):
    window.resize(*size)
    code = window.code_view
    window.tabs.setCurrentWidget(code)
    qtbot.waitUntil(lambda: "Sequential(" in code.text.toPlainText())
    for button in (code.script_button, code.model_button, code.script_button):
        button.click()
        assert in_view(code.copy_button) and in_view(code.script_button), code.note.text()
    long_hint = "A runnable script: " + "its nn.Sequential has the same state_dict keys; " * 4
    code.note.setText(long_hint)
    assert in_view(code.copy_button)
    assert code.note.text() == long_hint and code.note.toolTip() == long_hint  # cut on screen, whole in the tooltip
    window.resizeDocks([window.inspector_dock], [520], Qt.Orientation.Horizontal)  # a wider inspector
    assert in_view(code.copy_button)


def test_code_tab_lists_the_errors_of_a_broken_design(window, qtbot):
    window.document.edit_param(window.document.spec.layers[0].id, "kernel_size", 40)
    window.tabs.setCurrentWidget(window.code_view)
    qtbot.waitUntil(lambda: "errors" in window.code_view.text.toPlainText())
    assert "layer 0 (Conv2d): kernel 40 is larger" in window.code_view.text.toPlainText()
