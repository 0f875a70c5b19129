"""The app-wide input rules (gui.input_policy): the wheel scrolls past unfocused spin boxes and combo
boxes, and the undo keys reach the design's undo unless a text field has its own typing to undo."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QFormLayout,
    QLineEdit,
    QScrollArea,
    QSpinBox,
    QWidget,
)

from gui.training import install_training
from tests.gui.helpers import ids

CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier


def wheel(widget: QWidget, notches: int) -> None:
    """A real wheel event over the middle of ``widget`` (negative notches scroll down)."""
    local = QPointF(widget.rect().center())
    event = QWheelEvent(local, QPointF(widget.mapToGlobal(local)), QPoint(), QPoint(0, 120 * notches),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def focus(qtbot, widget: QWidget) -> None:
    widget.window().activateWindow()
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus)


def scrolled_into_view(qtbot, area: QScrollArea, widget: QWidget) -> None:
    """Put ``widget`` in view with room to scroll further down."""
    area.ensureWidgetVisible(widget)
    qtbot.waitUntil(lambda: area.verticalScrollBar().value() < area.verticalScrollBar().maximum())


@pytest.fixture
def training_tab(window, qtbot):
    """The window's Training tab, shown in a window low enough that its settings column scrolls."""
    ui = install_training(window)
    window.resize(1280, 500)
    window.tabs.setCurrentWidget(ui.panel)
    qtbot.waitUntil(lambda: ui.panel.scroll.verticalScrollBar().maximum() > 0)
    yield ui.panel
    ui.controller.shutdown()


def test_the_wheel_over_the_learning_rate_scrolls_the_settings_column(training_tab, qtbot):
    lr = training_tab.train_form.widget("lr")
    bar = training_tab.scroll.verticalScrollBar()
    scrolled_into_view(qtbot, training_tab.scroll, lr)
    start, value = bar.value(), lr.value()
    for _ in range(6):  # the six notches that took 0.001 to 1e-08
        wheel(lr, -1)
    assert lr.value() == value == 0.001
    assert training_tab.train_form.values()["lr"] == 0.001
    assert bar.value() > start  # the column scrolled down instead

    focus(qtbot, lr)
    wheel(lr, +1)  # focused: the wheel is the field's
    assert lr.value() == pytest.approx(0.01)


def test_the_wheel_over_the_dataset_combo_keeps_the_bundled_sample(training_tab, qtbot):
    combo = training_tab.data_form.widget("source")
    bar = training_tab.scroll.verticalScrollBar()
    bar.setValue(0)
    wheel(combo, -1)
    assert combo.currentData() == "mnist-sample"
    assert training_tab.data_form.values()["source"] == "mnist-sample"
    assert bar.value() > 0

    focus(qtbot, combo)
    wheel(combo, -1)
    assert combo.currentData() == "mnist"


def test_the_wheel_over_an_inspector_field_scrolls_the_inspector(window, qtbot):
    window.resize(1280, 420)  # the Conv2d page no longer fits: the inspector scrolls
    window.stack_view.select_ids(ids(window)[:1])
    area = window.inspector.pages.currentWidget()
    assert isinstance(area, QScrollArea)
    qtbot.waitUntil(lambda: area.verticalScrollBar().maximum() > 0)
    editors = window.inspector.editors
    spin, combo = editors["kernel_size"].spin, editors["padding"].combo
    for field in (spin, combo):
        area.verticalScrollBar().setValue(0)
        wheel(field, -1)
        assert area.verticalScrollBar().value() > 0
    layer = window.document.spec.layers[0]
    assert (layer.params["kernel_size"], layer.params["padding"]) == (5, 2)
    assert window.document.undo_stack.count() == 0

    focus(qtbot, spin)
    wheel(spin, +1)
    assert window.document.spec.layers[0].params["kernel_size"] == 6


def test_no_spin_box_or_combo_box_takes_focus_from_the_wheel(training_tab, window):
    """The wheel would focus a WheelFocus widget before anything else sees the event."""
    boxes = [w for w in window.findChildren(QWidget) if isinstance(w, (QAbstractSpinBox, QComboBox)) and w.isVisible()]
    assert len(boxes) > 10
    assert all(w.focusPolicy() == Qt.FocusPolicy.StrongFocus for w in boxes)


def test_a_spin_box_in_any_scroll_area_follows_the_rule(qtbot):
    """Not only the app's own forms: a plain QSpinBox in a plain QScrollArea; the nearest area that
    can still scroll gets the wheel (here the outer one, as the inner one is at its end)."""
    outer = QScrollArea()
    body = QWidget()
    form = QFormLayout(body)
    inner = QScrollArea()
    inner.setFixedHeight(60)
    spin = QSpinBox()
    spin.setValue(5)
    inner.setWidget(spin)
    inner.setWidgetResizable(True)
    form.addRow("inner", inner)
    for row in range(40):
        form.addRow(f"row {row}", QSpinBox())
    outer.setWidget(body)
    outer.resize(300, 200)
    qtbot.addWidget(outer)
    outer.show()
    qtbot.waitExposed(outer)
    wheel(spin, -1)
    assert spin.value() == 5
    assert outer.verticalScrollBar().value() > 0


# --------------------------------------------------------------------------- undo keys

def press(qtbot, keys: str) -> None:
    """Press Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y on the widget that has the focus, as a person would."""
    key, modifiers = {"undo": (Qt.Key.Key_Z, CTRL), "redo": (Qt.Key.Key_Z, CTRL | SHIFT),
                      "redo-y": (Qt.Key.Key_Y, CTRL)}[keys]
    qtbot.keyClick(QApplication.focusWidget(), key, modifiers)


def type_into(qtbot, spin: QAbstractSpinBox, text: str) -> None:
    focus(qtbot, spin)
    spin.selectAll()
    qtbot.keyClicks(spin, text)


def test_undo_keys_after_tabbing_out_of_an_inspector_field_undo_the_design(window, qtbot):
    window.stack_view.select_ids(ids(window)[:1])
    doc = window.document
    out_channels = window.inspector.editors["out_channels"].spin
    type_into(qtbot, out_channels, "8")
    assert doc.spec.layers[0].params["out_channels"] == 8
    qtbot.keyClick(out_channels, Qt.Key.Key_Tab)
    kernel = window.inspector.editors["kernel_size"].spin
    qtbot.waitUntil(kernel.hasFocus)  # a spin box with no typing of its own

    press(qtbot, "undo")
    assert doc.spec.layers[0].params["out_channels"] == 6
    press(qtbot, "redo")
    assert doc.spec.layers[0].params["out_channels"] == 8
    press(qtbot, "undo")
    press(qtbot, "redo-y")
    assert doc.spec.layers[0].params["out_channels"] == 8
    assert kernel.hasFocus()


def test_undo_keys_undo_the_typing_in_a_field_first(window, qtbot):
    window.stack_view.select_ids(ids(window)[:1])
    doc = window.document
    doc.edit_param(doc.spec.layers[3].id, "out_channels", 20)  # an earlier edit of the design
    doc.undo_stack.command(doc.undo_stack.count() - 1).stamp = 0  # long ago: the typing below is its own step
    out_channels = window.inspector.editors["out_channels"].spin
    type_into(qtbot, out_channels, "12")
    assert doc.spec.layers[0].params["out_channels"] == 12
    line = out_channels.findChild(QLineEdit)
    assert line.isUndoAvailable()

    while line.isUndoAvailable():  # the field's own typing goes first, keystroke by keystroke
        press(qtbot, "undo")
        assert doc.spec.layers[3].params["out_channels"] == 20
    assert out_channels.value() == 6 and doc.spec.layers[0].params["out_channels"] == 6
    press(qtbot, "undo")  # then the design's
    assert doc.spec.layers[3].params["out_channels"] == 16
    assert out_channels.hasFocus()


def test_undo_keys_in_the_shape_field_and_the_palette_filter(window, qtbot):
    """Line edits too: the input shape and the palette's filter (which has no part in the design)."""
    doc = window.document
    window.stack_view.select_input()
    line = window.inspector.editors["input_shape"].line
    focus(qtbot, line)
    line.selectAll()
    qtbot.keyClicks(line, "3x32x32")
    assert doc.spec.input_shape == (3, 32, 32)
    press(qtbot, "undo")
    assert line.isRedoAvailable()  # the field undid its typing (a design undo would have reset its history)
    while line.isUndoAvailable():
        press(qtbot, "undo")
    assert line.text() == "1x28x28" and doc.spec.input_shape == (1, 28, 28)
    press(qtbot, "redo")  # the field's redo first
    assert line.text() == "3x32x32" and doc.spec.input_shape == (3, 32, 32)
    press(qtbot, "undo")
    doc.edit_input_shape((3, 64, 64))
    filter_box = window.palette.filter
    focus(qtbot, filter_box)
    press(qtbot, "undo")  # nothing typed in the filter: the design's undo
    assert doc.spec.input_shape == (1, 28, 28)
    press(qtbot, "redo")
    assert doc.spec.input_shape == (3, 64, 64)
