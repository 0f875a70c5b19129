"""Closing the window during a run asks first, with the run paused while the question is open; Cancel resumes
it, Stop and Quit stops it. The window's X (close) and Ctrl+Q both ask; nothing replaces the design meanwhile."""
from __future__ import annotations

import re

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from gui.document import DesignFile
from gui.training import controller as states
from tests.gui.test_training_window import RUN_TIMEOUT_MS, training_ui

LOOK_AFTER_MS = 400  # how long the question stays open before it is answered


class Question:
    """Answers the close question after LOOK_AFTER_MS, recording what was true while it was open."""

    def __init__(self, ui, answer):
        self.ui, self.answer = ui, answer
        self.text = ""
        self.states: list[str] = []
        self.steps: list[int] = []  # the run's optimizer steps when the question opened and when it was answered
        self._timer = QTimer()
        self._timer.setInterval(20)
        self._timer.timeout.connect(self._look)
        self._timer.start()

    def _step(self) -> int:
        worker = self.ui.controller._worker
        return worker.trainer.global_step if worker is not None and worker.trainer is not None else -1

    def _look(self) -> None:
        for box in QApplication.topLevelWidgets():
            if isinstance(box, QMessageBox) and box.isVisible() and not self.text:
                self.text = box.text()
                self._record()
                QTimer.singleShot(LOOK_AFTER_MS, lambda b=box: (self._record(), b.button(self.answer).click()))

    def _record(self) -> None:
        self.states.append(self.ui.controller.state)
        self.steps.append(self._step())

    def stop(self) -> None:
        self._timer.stop()


def running(window, qtbot):
    ui = training_ui(window, epochs=40)
    with qtbot.waitSignal(ui.controller.batchEnded, timeout=RUN_TIMEOUT_MS):
        ui.panel.start_action.trigger()
    return ui


def test_cancel_keeps_the_window_and_the_run_which_waits_while_asked(window, qtbot):
    ui = running(window, qtbot)
    question = Question(ui, QMessageBox.StandardButton.Cancel)
    try:
        assert not window.close()
    finally:
        question.stop()
    # the epoch under way when asked: the first, or a later one on a fast machine (an epoch is a few batches here)
    assert re.match(r"A run is in progress \(epoch \d+ of 40\)\. Stop it and quit\?", question.text), question.text
    assert question.states == [states.PAUSED, states.PAUSED]
    opened, answered = question.steps
    assert 0 < opened and answered - opened <= 1  # at most the batch under way when the question opened
    assert window.isVisible() and ui.controller.state == states.RUNNING
    with qtbot.waitSignal(ui.controller.batchEnded, timeout=RUN_TIMEOUT_MS):
        pass  # the run went on
    with qtbot.waitSignal(ui.controller.finished, timeout=RUN_TIMEOUT_MS):
        ui.panel.stop_action.trigger()


def test_a_run_paused_before_stays_paused_after_cancel(window, qtbot):
    ui = running(window, qtbot)
    ui.panel.pause_action.trigger()
    question = Question(ui, QMessageBox.StandardButton.Cancel)
    try:
        assert not window.close()
    finally:
        question.stop()
    assert question.text and ui.controller.state == states.PAUSED
    with qtbot.waitSignal(ui.controller.finished, timeout=RUN_TIMEOUT_MS):
        ui.panel.stop_action.trigger()


def test_ctrl_q_asks_and_stop_and_quit_stops_the_run_and_closes(window, qtbot):
    ui = running(window, qtbot)
    finished = []
    ui.controller.finished.connect(finished.append)
    question = Question(ui, QMessageBox.StandardButton.Yes)
    try:
        qtbot.keyClick(window, Qt.Key_Q, Qt.ControlModifier)
    finally:
        question.stop()
    assert question.text.startswith("A run is in progress (epoch")
    assert not window.isVisible()
    assert ui.controller.running_threads() == [] and ui.controller.state == states.IDLE
    assert [r.reason for r in finished] == ["stopped"]


def test_closing_when_no_run_goes_asks_nothing(window, qtbot):
    training_ui(window)
    question = Question(window.training, QMessageBox.StandardButton.Cancel)
    try:
        assert window.close()
    finally:
        question.stop()
    assert question.text == ""


def test_nothing_replaces_the_design_during_a_run(window, qtbot, tmp_path):
    ui = running(window, qtbot)
    other = tmp_path / "other.json"
    DesignFile.template("mlp").write(other)
    spec = window.document.spec
    assert not window.open_file(other)
    window.open_template("mlp")
    window.new_design()  # would open the New dialog: it does not
    assert window.document.spec == spec
    assert not window.actions["new"].isEnabled() and not window.actions["open"].isEnabled()
    assert not window.templates_menu.isEnabled() and not window.recent_menu.isEnabled()
    assert not [w for w in QApplication.topLevelWidgets() if w.isVisible() and w is not window]
    with qtbot.waitSignal(ui.controller.finished, timeout=RUN_TIMEOUT_MS):
        ui.panel.stop_action.trigger()
    assert window.open_file(other)
    assert window.document.spec != spec
