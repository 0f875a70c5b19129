"""What the layer stack shows a new user: a reason too long for the Notes column read whole on the
current row's own line, a hint in an empty design, and an input shape field that says what it expects."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor

from engine.shapes import analyze
from gui.dialogs import EMPTY
from gui.editors import INPUT_SHAPE_HINT, ShapeEdit
from gui.icons import ERROR_COLOR
from gui.stack_model import COL_NOTES, COL_SHAPE
from gui.stack_view import EMPTY_HINT
from tests.gui.helpers import ids, load, notes, spec_of


def broken_lenet(window) -> str:
    """LeNet whose third convolution no longer fits (padding 0 upstream); the broken layer's id."""
    doc = window.document
    doc.edit_param(doc.spec.layers[0].id, "padding", 0)
    return doc.spec.layers[5].id


def pixels(image, rect: QRect, wanted) -> int:
    """How many pixels of ``image`` inside ``rect`` satisfy ``wanted(QColor)``."""
    rect = rect.intersected(image.rect())
    return sum(wanted(image.pixelColor(x, y)) for x in range(rect.left(), rect.right() + 1, 2)
               for y in range(rect.top(), rect.bottom() + 1))


def reddish(color: QColor) -> bool:
    return color.red() > 150 and color.green() < 120 and color.blue() < 120


@pytest.mark.parametrize("size", [(1280, 800), (1024, 700)])
def test_the_current_rows_reason_is_read_whole_on_a_line_of_its_own(window, qtbot, size):
    window.resize(*size)
    broken = broken_lenet(window)
    view, model = window.stack_view, window.stack_view.stack_model
    reason = analyze(window.document.spec).row(broken).error
    assert view.fontMetrics().horizontalAdvance(reason) > view.columnWidth(COL_NOTES)  # the column alone cuts it
    neighbour = ids(window)[6]
    view.select_ids([neighbour])
    normal = view.visualRect(model.index_of(broken)).height()

    view.select_ids([broken])
    index = model.index_of(broken)
    assert view.note_text(index) == reason
    qtbot.waitUntil(lambda: view.visualRect(index).height() > normal)
    cell = view.visualRect(index)
    row = QRect(0, cell.top(), view.viewport().width(), cell.height())
    note = view.note_rect(row, reason)
    assert view.viewport().rect().contains(note) and row.contains(note)
    needed = view.fontMetrics().boundingRect(note, Qt.TextFlag.TextWordWrap, reason)
    assert note.contains(needed)  # every word of the reason fits in the line (wrapped if need be)
    image = view.viewport().grab().toImage()
    assert pixels(image, note, reddish) > 20  # and it is painted there, in the error colour
    assert ERROR_COLOR == "#d32f2f"

    view.select_ids([neighbour])  # only the current row has the extra line
    qtbot.waitUntil(lambda: view.visualRect(model.index_of(broken)).height() == normal)
    assert view.note_text(model.index_of(broken)) == ""


def test_a_note_row_chosen_while_the_stack_is_hidden_is_placed_when_it_shows(window, qtbot, monkeypatch):
    """While another tab is in front (a run's health badges change the rows every few seconds) the stack places
    no note row; showing it places the current one."""
    window.resize(1280, 800)
    view, model = window.stack_view, window.stack_view.stack_model
    broken = broken_lenet(window)
    view.select_ids([ids(window)[6]])
    qtbot.waitUntil(lambda: view._note_row == -1)
    normal = view.visualRect(model.index_of(broken)).height()
    design = window.tabs.currentWidget()
    window.tabs.setCurrentIndex(window.tabs.indexOf(design) + 1)  # the Code tab
    assert not view.isVisible()
    placed = []
    monkeypatch.setattr(view, "setItemDelegateForRow", lambda *args: placed.append(args))
    view.select_ids([broken])
    qtbot.wait(20)
    assert placed == [] and view._note_row == -1  # nothing done for a hidden view
    monkeypatch.undo()
    window.tabs.setCurrentWidget(design)
    index = model.index_of(broken)
    qtbot.waitUntil(lambda: view.visualRect(index).height() > normal)
    assert view._note_row == index.row() and view.note_text(index)


def test_rows_keep_one_height_when_the_notes_column_shows_the_note_whole(window, qtbot):
    view, model = window.stack_view, window.stack_view.stack_model
    view.select_ids(ids(window)[:1])  # no note
    heights = {view.visualRect(model.index_of(layer_id)).height() for layer_id in ids(window)}
    assert len(heights) == 1 and view.note_text(model.index_of(ids(window)[0])) == ""
    window.resize(1920, 1080)  # the Notes column is wide enough for the whole reason
    broken = broken_lenet(window)
    view.select_ids([broken])
    qtbot.waitUntil(lambda: view.columnWidth(COL_NOTES) > 600)
    assert view.note_text(model.index_of(broken)) == ""
    assert {view.visualRect(model.index_of(layer_id)).height() for layer_id in ids(window)} == heights


def test_an_empty_design_says_how_to_add_a_layer(window, qtbot):
    window.new_from(EMPTY)
    view = window.stack_view
    assert view.empty_hint() == EMPTY_HINT
    assert "double-click a layer in the palette or drag it here" in EMPTY_HINT
    below_input = view.visualRect(view.stack_model.index(0, 0)).bottom()
    area = QRect(0, below_input + 1, view.viewport().width(), 80)
    image = view.viewport().grab().toImage()
    assert pixels(image, area, lambda c: c.lightness() < 200) > 20  # the hint is painted under the input
    window.add_kind("Flatten")
    assert view.empty_hint() == ""


def test_the_input_shape_field_says_what_it_expects(window, qtbot):
    window.stack_view.select_input()
    editor = window.inspector.editors["input_shape"]
    line = editor.line
    qtbot.waitUntil(line.isVisible)
    line.setFocus()
    qtbot.waitUntil(line.hasFocus)
    line.selectAll()
    qtbot.keyClicks(line, "1x")
    assert line.problem() == INPUT_SHAPE_HINT and "CxHxW" in INPUT_SHAPE_HINT
    qtbot.waitUntil(editor.problem.isVisible)
    assert editor.problem.text() == INPUT_SHAPE_HINT
    assert line.property("invalid") and line.toolTip() == INPUT_SHAPE_HINT
    qtbot.keyClicks(line, "32x32")
    assert line.problem() == "" and not editor.problem.isVisible()
    assert window.document.spec.input_shape == (1, 32, 32)
    qtbot.keyClicks(line, "q")  # refused by the field: it still says why
    assert line.text() == "1x32x32" and not editor.problem.isHidden()
    window.stack_view.setFocus()
    qtbot.waitUntil(lambda: not editor.problem.isVisible())


def test_unflatten_sizes_say_what_they_expect_too(window, qtbot):
    load(window, spec_of((784,), ("Unflatten", {"dim": 1, "sizes": (1, 28, 28)})))
    window.stack_view.select_ids(ids(window))
    line = window.inspector.editors["sizes"].line
    line.setText("0x28")
    assert "joined by x" in line.problem() and window.inspector.editors["sizes"].problem.isVisible()


def test_the_shape_edited_in_the_stack_says_what_it_expects(window, qtbot):
    view = window.stack_view
    messages = []
    view.message.connect(messages.append)
    view.setFocus()
    view.edit(view.stack_model.index(0, COL_SHAPE))
    editor = view.findChild(ShapeEdit)
    assert editor is not None and editor.text() == "1x28x28"
    editor.selectAll()
    qtbot.keyClicks(editor, "3x")
    assert editor.problem() == INPUT_SHAPE_HINT and editor.toolTip() == INPUT_SHAPE_HINT
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bool(messages))
    assert messages[-1] == f"{INPUT_SHAPE_HINT} The input stays 1x28x28."
    messages.clear()
    window.palette.filter.setFocus()  # leaving the field says so too
    qtbot.waitUntil(lambda: bool(messages))
    assert messages == [f"{INPUT_SHAPE_HINT} The input stays 1x28x28."]
    assert window.document.spec.input_shape == (1, 28, 28)


def test_shapes_in_the_notes_inspector_and_code_tab_are_written_1x28x28(window, qtbot):
    """The engine writes shapes in its messages as Python tuples; the window writes them one way."""
    load(window, spec_of((784,), "MaxPool2d", ("LayerNorm", {"normalized_dims": 3}), "Flatten"))
    doc = window.document
    errors = [row.error for row in analyze(doc.spec).rows if row.error]
    assert any("(784,)" in error for error in errors)  # what the engine says
    view = window.stack_view
    assert notes(window)[0].startswith("MaxPool2d needs (channels, height, width) input, got 784:")
    assert "(784,)" not in "".join(notes(window))
    tooltip = view.stack_model.data(view.stack_model.index_of(ids(window)[0], COL_NOTES), Qt.ItemDataRole.ToolTipRole)
    assert "got 784:" in tooltip
    view.select_ids(ids(window)[:1])
    assert "got 784:" in window.inspector.error.text() and "(784,)" not in window.inspector.error.text()
    window.tabs.setCurrentWidget(window.code_view)
    qtbot.waitUntil(lambda: "got 784:" in window.code_view.text.toPlainText())
    load(window, spec_of((16, 4, 4), ("LayerNorm", {"normalized_dims": 4})))
    assert "the input 16x4x4 has 3" in notes(window)[0]


@pytest.mark.parametrize("text, written", [
    ("got (16, 4, 4): add a Flatten", "got 16x4x4: add a Flatten"),
    ("got (784,)", "got 784"),
    ("needs (channels, height, width) input", "needs (channels, height, width) input"),
    ("floor((28 + 2*2 - 5)/1) + 1 (padding 2)", "floor((28 + 2*2 - 5)/1) + 1 (padding 2)"),
])
def test_shapes_in_prose(text, written):
    from gui.wording import shapes_in_prose

    assert shapes_in_prose(text) == written


def test_the_note_line_follows_edits_of_the_design(window, qtbot):
    """An edit that breaks (or mends) the current row gives it (or takes away) its note line."""
    view, model = window.stack_view, window.stack_view.stack_model
    conv3 = ids(window)[5]
    view.select_ids([conv3])
    normal = view.visualRect(model.index_of(conv3)).height()
    broken_lenet(window)
    qtbot.waitUntil(lambda: view.visualRect(model.index_of(conv3)).height() > normal)
    below = view.visualRect(model.index_of(ids(window)[6]))
    assert below.top() >= view.visualRect(model.index_of(conv3)).bottom()  # the rows below move down
    window.undo()
    qtbot.waitUntil(lambda: view.visualRect(model.index_of(conv3)).height() == normal)
    assert view.note_text(model.index_of(conv3)) == ""
