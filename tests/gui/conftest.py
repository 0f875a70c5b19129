"""Fixtures for the window tests: isolated QSettings, no QThread left running, a ready main window, the Training
area."""
from __future__ import annotations

import pytest
import shiboken6
from PySide6.QtCore import QSettings, QThread, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from gui.app import configure_application


@pytest.fixture(autouse=True)
def isolated_settings(qapp, tmp_path):
    """Every test gets its own empty settings folder: the user's settings are never read or written."""
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    configure_application(qapp)
    yield tmp_path / "settings"


@pytest.fixture(autouse=True)
def no_thread_left_running(qapp):
    """Fail a test that leaves a QThread running. Every QThread Python holds has a shiboken wrapper, so the wrappers
    are searched (hundreds) instead of every object of the heap (about a million after a while: 0.3 s a test)."""
    yield
    qapp.processEvents()
    running = [obj for obj in shiboken6.getAllValidWrappers()
               if isinstance(obj, QThread) and shiboken6.isValid(obj) and obj.isRunning()
               and obj is not qapp.thread()]
    assert not running, f"QThread(s) left running: {running}"


@pytest.fixture
def area(qtbot):
    """Makes TrainingAreas (a controller with its Training and Results tabs) over a document, by default a
    small quick run; every one made is shut down after the test."""
    from tests.gui.test_training import TrainingArea, make_document

    areas = []

    def make(doc=None) -> TrainingArea:
        areas.append(TrainingArea(qtbot, doc or make_document()))
        return areas[-1]

    yield make
    for made in areas:
        made.close()


@pytest.fixture
def window(qtbot):
    """A shown MainWindow on its first start (the LeNet template)."""
    from gui.main_window import MainWindow

    win = MainWindow()
    win.show()
    qtbot.waitExposed(win)
    yield win
    training = getattr(win, "training", None)
    if training is not None:
        training.controller.shutdown()  # a test that failed mid-run: close without the "stop the run?" question
    win.document.undo_stack.setClean()  # close without the "save changes?" question
    win.close()
    win.deleteLater()


class MessageBoxes:
    """Answers every QMessageBox that opens with ``answer`` and records its texts."""

    def __init__(self, qapp):
        self.answer = QMessageBox.StandardButton.Ok
        self.texts: list[str] = []
        self._timer = QTimer()
        self._timer.setInterval(10)
        self._timer.timeout.connect(self._close_open_boxes)
        self._timer.start()

    def _close_open_boxes(self) -> None:
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, QMessageBox) and widget.isVisible():
                self.texts.append(f"{widget.text()}\n{widget.informativeText()}")
                button = widget.button(self.answer) or widget.defaultButton() or widget.buttons()[0]
                button.click()

    def stop(self) -> None:
        self._timer.stop()


@pytest.fixture
def message_boxes(qapp):
    boxes = MessageBoxes(qapp)
    yield boxes
    boxes.stop()
