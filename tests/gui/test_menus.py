"""Menus, shortcuts, help and the hooks the training GUI uses."""
from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QLabel

from tests.gui.helpers import ids


def shortcuts(window, key):
    return [s.toString() for s in window.actions[key].shortcuts()]


def test_desktop_shortcuts(window):
    expected = {
        "new": "Ctrl+N", "open": "Ctrl+O", "save": "Ctrl+S", "save_as": "Ctrl+Shift+S", "quit": "Ctrl+Q",
        "undo": "Ctrl+Z", "cut": "Ctrl+X", "copy": "Ctrl+C", "paste": "Ctrl+V", "duplicate": "Ctrl+D",
        "delete": "Del", "move_up": "Alt+Up", "move_down": "Alt+Down", "help": "F1", "filter": "Ctrl+F",
    }
    for key, sequence in expected.items():
        assert sequence in shortcuts(window, key), key
    assert {"Ctrl+Shift+Z", "Ctrl+Y"} <= set(shortcuts(window, "redo"))


def test_menus_hold_the_actions(window):
    titles = [action.text() for action in window.menuBar().actions()]
    assert titles == ["&File", "&Edit", "&View", "&Templates", "&Help"]
    edit_menu = window.menuBar().actions()[1].menu()
    assert window.actions["undo"] in edit_menu.actions() and window.actions["delete"] in edit_menu.actions()


def test_f1_opens_the_help(window, qtbot):
    shown = []

    def close_dialog():
        dialog = QApplication.activeModalWidget()
        shown.append(dialog.windowTitle())
        dialog.reject()

    QTimer.singleShot(0, close_dialog)  # runs inside the dialog's exec()
    window.actions["help"].trigger()
    assert shown == ["LayerStudio help"]


def test_hooks_for_the_training_gui(window, qtbot):
    page = QLabel("training page")
    index = window.add_tab(page, "Training")
    assert window.tabs.tabText(index) == "Training"
    window.tabs.setCurrentWidget(page)
    assert window.tabs.currentWidget() is page and window.tabs.indexOf(page) == index
    save_weights = QAction("Save &Weights…", window)
    window.add_file_actions([save_weights])
    file_actions = window.file_menu.actions()
    assert file_actions.index(save_weights) < file_actions.index(window.actions["quit"])
    assert window.train_button.isEnabled()
    clicks = []
    window.train_button.clicked.connect(lambda: clicks.append(True))
    window.train_button.click()
    assert clicks == [True]
    vetoes = []
    window.add_close_guard(lambda: vetoes.append(True) or False)
    assert not window.close()
    assert vetoes == [True] and window.isVisible()
    window._close_guards.clear()
    with qtbot.waitSignal(window.closing):
        window.close()


def test_view_menu_tab_shortcuts(window):
    names = {action.text(): action.shortcut().toString() for action in window.view_menu.actions()}
    assert names["Design Tab"] == "Ctrl+1" and names["Code Tab"] == "Ctrl+2"
    next(a for a in window.view_menu.actions() if a.text() == "Code Tab").trigger()
    assert window.tabs.currentWidget() is window.code_view


def test_move_up_from_the_menu_keeps_the_layer_selected(window):
    layer = ids(window)[2]
    window.stack_view.select_ids([layer])
    window.actions["move_up"].trigger()
    assert ids(window).index(layer) == 1
    assert window.document.undo_stack.undoText() == "Move AvgPool2d"
    assert window.stack_view.selected_ids() == [layer]
