"""Editing the stack as a user does: palette, drag and drop, delete, duplicate, copy/paste, undo/redo."""
from __future__ import annotations

import json

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QGuiApplication

from gui.stack_model import COL_LAYER, COL_NOTES, INPUT_ID
from tests.gui.helpers import cell, ids, kinds, load, shapes, spec_of


def small(window):
    load(window, spec_of((1, 28, 28), ("Conv2d", {"out_channels": 6, "kernel_size": 5, "padding": 2}), "ReLU",
                         "MaxPool2d", "Flatten", ("Linear", {"out_features": 10})))
    return ids(window)


def test_first_start_shows_lenet_with_its_first_layer_selected(window):
    assert window.document.name == "lenet"
    assert kinds(window)[:3] == ["Conv2d", "Sigmoid", "AvgPool2d"]
    assert cell(window, 0, COL_LAYER) == "Conv2d 6, k5, p2"
    assert shapes(window)[-1] == "10"
    assert window.stack_view.selected_ids() == [window.document.spec.layers[0].id]
    assert window.inspector.layer_id == window.document.spec.layers[0].id


def test_palette_double_click_and_enter_add_after_the_selection(window, qtbot):
    before = small(window)
    window.stack_view.select_ids([before[1]])
    tree = window.palette.tree
    item = window.palette.item("BatchNorm2d")
    tree.scrollToItem(item)
    position = tree.visualItemRect(item).center()
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=position)
    qtbot.mouseDClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=position)
    assert kinds(window)[2] == "BatchNorm2d"
    assert window.stack_view.selected_ids() == [ids(window)[2]]
    tree.setCurrentItem(window.palette.item("Dropout"))
    qtbot.keyClick(tree, Qt.Key.Key_Return)
    assert kinds(window)[3] == "Dropout"  # after the layer added last, which is now selected
    window.undo()
    window.undo()
    assert ids(window) == before


def test_palette_filter_and_enter_adds_the_first_match(window, qtbot):
    small(window)
    qtbot.keyClicks(window.palette.filter, "norm")
    visible = window.palette.visible_kinds()
    assert visible[:4] == ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm"]
    assert "Conv2d" not in visible and "ReLU" not in visible
    window.stack_view.select_input()
    qtbot.keyClick(window.palette.filter, Qt.Key.Key_Return)
    assert kinds(window)[0] == "BatchNorm1d"


def test_palette_drag_drops_at_a_position(window):
    before = small(window)
    model = window.stack_view.stack_model
    mime = window.palette.tree.mimeData([window.palette.item("Dropout")])
    # a drop between layer rows 3 and 4 (model rows count the input row first)
    assert model.canDropMimeData(mime, Qt.DropAction.CopyAction, 4, 0, QModelIndex())
    assert model.dropMimeData(mime, Qt.DropAction.CopyAction, 4, 0, QModelIndex())
    assert kinds(window) == ["Conv2d", "ReLU", "MaxPool2d", "Dropout", "Flatten", "Linear"]
    assert window.stack_view.selected_ids() == [ids(window)[3]]
    window.undo()
    assert ids(window) == before


def test_drag_reorder_moves_layers_and_undoes(window):
    before = small(window)
    view, model = window.stack_view, window.stack_view.stack_model
    window.stack_view.select_ids([before[3]])  # Flatten
    mime = model.mimeData(view.selectionModel().selectedRows())
    assert model.dropMimeData(mime, Qt.DropAction.MoveAction, 1, 0, QModelIndex())  # above the first layer
    assert ids(window) == [before[3]] + before[:3] + before[4:]
    assert window.document.undo_stack.undoText() == "Move Flatten"
    assert view.selected_ids() == [before[3]]  # the selection follows the moved row
    assert view.currentIndex().row() == 1
    # the view's own remove-after-move is a no-op: the model moved the rows itself
    assert not model.removeRows(1, 1, QModelIndex())
    window.undo()
    assert ids(window) == before
    window.redo()
    assert ids(window)[0] == before[3]


def test_drag_with_copy_action_duplicates(window):
    before = small(window)
    model = window.stack_view.stack_model
    mime = model.mimeData([model.index_of(before[1])])
    assert model.dropMimeData(mime, Qt.DropAction.CopyAction, -1, 0, QModelIndex())  # on empty space: append
    assert kinds(window)[-1] == "ReLU" and ids(window)[-1] not in before


def test_delete_key_removes_the_selection_and_undo_restores(window, qtbot):
    before = small(window)
    view = window.stack_view
    view.select_ids([before[1], before[2]])
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert ids(window) == [before[0]] + before[3:]
    assert view.selected_ids() == [before[3]]  # the next layer gets the selection
    assert window.actions["undo"].text() == "Undo Delete 2 layers"
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ids(window) == before
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert ids(window) == [before[0]] + before[3:]
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(view, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert ids(window) == [before[0]] + before[3:]


def test_ctrl_d_duplicates_after_the_selection(window, qtbot):
    before = small(window)
    view = window.stack_view
    view.select_ids([before[0]])
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    after = window.document.spec.layers
    assert [layer.kind for layer in after[:2]] == ["Conv2d", "Conv2d"]
    assert after[1].params == after[0].params and after[1].id not in before
    assert view.selected_ids() == [after[1].id]
    assert window.document.undo_stack.undoText() == "Duplicate Conv2d"
    assert "kernel 5" not in (cell(window, 1, COL_NOTES) or "")  # 6 -> 6 channels still fits
    window.undo()
    assert ids(window) == before


def test_copy_paste_through_the_clipboard_as_json(window, qtbot):
    before = small(window)
    view = window.stack_view
    view.select_ids([before[1], before[2]])
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    copied = json.loads(QGuiApplication.clipboard().text())
    assert [item["kind"] for item in copied] == ["ReLU", "MaxPool2d"]
    view.select_ids([before[4]])
    qtbot.keyClick(view, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert kinds(window) == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "ReLU", "MaxPool2d"]
    assert len(set(ids(window))) == 7  # pasted layers get new ids
    assert window.document.undo_stack.undoText() == "Paste 2 layers"
    assert cell(window, 6, COL_NOTES).startswith("MaxPool2d needs (channels, height, width) input")
    window.undo()
    assert ids(window) == before
    window.redo()
    assert len(ids(window)) == 7


def test_paste_of_plain_text_json_and_of_junk(window):
    small(window)
    clipboard = QGuiApplication.clipboard()
    clipboard.setText('[{"kind": "Dropout", "params": {"p": 0.25}}]')
    window.stack_view.select_input()
    window.actions["paste"].trigger()
    assert window.document.spec.layers[0].kind == "Dropout"
    assert window.document.spec.layers[0].params["p"] == 0.25
    count = len(ids(window))
    clipboard.setText("hello")
    window.actions["paste"].trigger()
    assert len(ids(window)) == count
    assert "Nothing pasted" in window.statusBar().currentMessage()


def test_cut_then_paste_moves_a_layer(window):
    before = small(window)
    window.stack_view.select_ids([before[1]])
    window.actions["cut"].trigger()
    assert before[1] not in ids(window)
    window.stack_view.select_ids([before[3]])
    window.actions["paste"].trigger()
    assert kinds(window) == ["Conv2d", "MaxPool2d", "Flatten", "ReLU", "Linear"]


def test_alt_up_and_down_move_the_selection(window, qtbot):
    before = small(window)
    view = window.stack_view
    view.select_ids([before[2]])
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    assert ids(window) == [before[0], before[2], before[1]] + before[3:]
    qtbot.keyClick(view, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    qtbot.keyClick(view, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    assert ids(window) == [before[0], before[1], before[3], before[2], before[4]]
    assert view.selected_ids() == [before[2]]


def test_context_menu_offers_the_edit_actions(window):
    small(window)
    texts = [action.text() for action in window.stack_view.context_menu().actions() if not action.isSeparator()]
    assert texts == ["Cu&t", "&Copy", "&Paste", "&Duplicate", "Move &Up", "Move Do&wn", "&Group", "Make &Residual",
                     "U&ngroup", "De&lete"]


def test_edit_actions_follow_the_selection(window):
    small(window)
    window.stack_view.select_input()
    assert not window.actions["delete"].isEnabled()
    assert window.actions["paste"].isEnabled()
    window.stack_view.select_ids(ids(window)[:1])
    assert window.actions["delete"].isEnabled()


def test_input_row_edits_the_input_shape(window):
    small(window)
    model = window.stack_view.stack_model
    index = model.index(0, 2)
    assert model.data(index, Qt.ItemDataRole.EditRole) == "1x28x28"
    assert not model.setData(index, "1x0x28")  # a widget would not allow it: refused
    assert model.setData(index, "3x32x32")
    assert window.document.spec.input_shape == (3, 32, 32)
    assert shapes(window)[0] == "6x32x32"
    assert window.document.undo_stack.undoText() == "Set input shape"
    assert model.data(index, Qt.ItemDataRole.UserRole + 1) == INPUT_ID
