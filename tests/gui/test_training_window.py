"""install_training(window) in the real MainWindow: tabs, File actions, the Train button, closing during a run."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from gui.training import controller as states
from gui.training import install_training

RUN_TIMEOUT_MS = 120_000


def training_ui(window, epochs: int = 1):
    """The window's training UI (installed here unless the window already did), on a small quick run."""
    ui = getattr(window, "training", None) or install_training(window)
    doc = window.document
    doc.set_extra("data", {"source": "mnist-sample", "limit": 300, "val_fraction": 0.2})
    doc.set_extra("training", {"epochs": epochs, "batch_size": 32, "device": "cpu"})
    doc.undo_stack.setClean()  # so closing the window asks nothing
    return ui


def tab_titles(window) -> list[str]:
    return [window.tabs.tabText(i) for i in range(window.tabs.count())]


def test_install_adds_tabs_file_actions_and_the_train_button_trains(window, qtbot):
    ui = training_ui(window)
    assert {"Training", "Results"} <= set(tab_titles(window))
    file_actions = [a.text() for a in window.file_menu.actions()]
    for action in ui.weights.actions:
        assert action.text() in file_actions
    with qtbot.waitSignal(ui.controller.finished, timeout=RUN_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(window.train_button, Qt.LeftButton)
        assert window.tabs.currentWidget() is ui.panel
    assert blocker.args[0].reason == "completed"
    qtbot.waitUntil(lambda: ui.controller.last_evaluation is not None)
    assert "accuracy" in ui.results.summary.text()
    assert ui.weights.save_weights.isEnabled()
    ui.controller.shutdown()


def test_f5_starts_from_any_tab_and_shift_f5_stops(window, qtbot):
    ui = training_ui(window, epochs=100_000)
    window.tabs.setCurrentIndex(0)  # the Design tab
    with qtbot.waitSignal(ui.controller.batchEnded, timeout=RUN_TIMEOUT_MS):
        qtbot.keyClick(window, Qt.Key_F5)
    assert window.document.read_only
    with qtbot.waitSignal(ui.controller.finished, timeout=RUN_TIMEOUT_MS) as blocker:
        qtbot.keyClick(window, Qt.Key_F5, Qt.ShiftModifier)
    assert blocker.args[0].reason == "stopped"
    assert not window.document.read_only


def test_closing_the_window_during_a_run_stops_it_and_waits_for_the_thread(window, qtbot, message_boxes):
    ui = training_ui(window, epochs=100_000)
    finished = []
    ui.controller.finished.connect(finished.append)
    with qtbot.waitSignal(ui.controller.batchEnded, timeout=RUN_TIMEOUT_MS):
        ui.controller.start()
    assert ui.controller.state == states.RUNNING
    message_boxes.answer = QMessageBox.StandardButton.Yes  # "Stop it and quit?" (tests/gui/test_close_during_run.py)
    assert window.close()
    assert "A run is in progress" in message_boxes.texts[0]
    assert ui.controller.running_threads() == []
    assert ui.controller.state == states.IDLE
    assert [r.reason for r in finished] == ["stopped"]


def test_training_tabs_set_the_design_docks_aside_and_bring_back_only_those(window):
    ui = training_ui(window)
    window.palette_dock.hide()  # the user closed the palette before
    window.tabs.setCurrentWidget(ui.panel)
    assert not window.inspector_dock.isVisible() and not window.palette_dock.isVisible()
    window.tabs.setCurrentWidget(ui.results)
    assert not window.inspector_dock.isVisible()
    window.tabs.setCurrentIndex(0)  # Design
    assert window.inspector_dock.isVisible() and not window.palette_dock.isVisible()
    ui.controller.shutdown()


def test_a_run_does_not_move_the_tabs_or_resize_the_plots(window, qtbot):
    """The footer's Train button drops its icon while a run goes; the footer keeps its height, so the tabs and the
    plots keep their size at a run's start and end (a resize re-laid out and repainted the whole window twice per
    run, and the page jumped by two pixels)."""
    ui = training_ui(window, epochs=100_000)
    window.tabs.setCurrentWidget(ui.panel)
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: ui.panel.plots.graphics.isVisible())
    sizes = lambda: (window.tabs.size(), window.train_button.size(), ui.panel.plots.graphics.size())  # noqa: E731
    qtbot.wait(50)
    idle = sizes()
    with qtbot.waitSignal(ui.controller.batchEnded, timeout=RUN_TIMEOUT_MS):
        ui.controller.start()
    qtbot.wait(50)
    assert window.train_button.icon().isNull()  # "Training…" alone
    assert sizes() == idle
    with qtbot.waitSignal(ui.controller.finished, timeout=RUN_TIMEOUT_MS):
        ui.controller.stop()
    qtbot.wait(50)
    assert sizes() == idle
