"""Building the window and visiting every tab shows no window but the main one.

A widget shown (``setVisible(True)``) before it is put in a layout has no parent yet, so it is a window of its own
for a moment: the main window loses activation and with it the keyboard shortcuts (Shift+F5 stopped nothing).
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QWidget


class ShownWindows(QObject):
    """Records every widget window that gets a Show event."""

    def __init__(self):
        super().__init__()
        self.shown: list[str] = []

    def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Show and isinstance(obj, QWidget) and obj.isWindow():
            self.shown.append(f"{type(obj).__name__} {obj.objectName()!r}")
        return False


def test_the_window_and_its_tabs_show_no_other_window(qtbot):
    from gui.main_window import MainWindow
    from gui.training import install_training

    app = QApplication.instance()
    recorder = ShownWindows()
    app.installEventFilter(recorder)
    try:
        window = MainWindow()
        qtbot.addWidget(window)
        install_training(window)  # the Training, Results, Predict, Search and Runs tabs
        window.show()
        qtbot.waitExposed(window)
        for index in range(window.tabs.count()):
            window.tabs.setCurrentIndex(index)
            qtbot.wait(10)
    finally:
        app.removeEventFilter(recorder)
    assert recorder.shown == ["MainWindow 'mainWindow'"]
    assert app.activeWindow() is window
    window.training.controller.shutdown()
    window.document.undo_stack.setClean()
