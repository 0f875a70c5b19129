"""The parts that need torch: the Code tab and the inner layers of blocks (meta device)."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QScrollArea

from gui.code_view import MODEL, SCRIPT
from gui.stack_model import COL_LAYER, COL_NOTES, COL_PARAMS, COL_SHAPE
from tests.gui.helpers import ids, load, spec_of


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


def test_a_block_expands_to_its_inner_layers_built_on_the_meta_device(window, qtbot):
    load(window, spec_of((3, 32, 32), ("Residual", {"out_channels": 16, "stride": 2}), "Identity"))
    view, model = window.stack_view, window.stack_view.stack_model
    block = model.index_of(ids(window)[0])
    assert model.hasChildren(block) and model.rowCount(block) == 0  # nothing built before expanding
    view.expand(block)
    assert view.isExpanded(block)
    names = [model.data(model.index(r, COL_LAYER, block)) for r in range(model.rowCount(block))]
    assert names == ["conv1: Conv2d", "bn1: BatchNorm2d", "ReLU", "conv2: Conv2d", "bn2: BatchNorm2d",
                     "conv3: Conv2d", "Sum", "ReLU"]  # in the order data flows, the shortcut's 1x1 conv last
    conv1 = model.index(0, COL_LAYER, block)
    assert model.data(model.index(0, COL_NOTES, block)).startswith("Conv2d(3, 16, kernel_size=(3, 3), stride=(2, 2)")
    assert model.data(model.index(0, COL_PARAMS, block)) == str(3 * 16 * 9 + 16)
    assert model.data(model.index(0, COL_SHAPE, block)) == "16x16x16"  # from a forward pass on the meta device
    assert not model.flags(conv1) & Qt.ItemFlag.ItemIsEditable  # read-only
    assert not model.flags(conv1) & Qt.ItemFlag.ItemIsSelectable
    # editing the block rebuilds its inner layers, and it stays expanded
    window.stack_view.select_ids(ids(window)[:1])
    window.inspector.editors["stride"].spin.setValue(1)
    window.inspector.editors["out_channels"].spin.setValue(3)
    block = model.index_of(ids(window)[0])
    names = [model.data(model.index(r, COL_LAYER, block)) for r in range(model.rowCount(block))]
    assert names == ["conv1: Conv2d", "bn1: BatchNorm2d", "ReLU", "conv2: Conv2d", "bn2: BatchNorm2d", "Sum",
                     "ReLU"]  # identity shortcut: no 1x1 projection
    assert view.isExpanded(block)
    # moving rows keeps the children with their block
    window.document.move_layers([ids(window)[1]], 0)
    block = model.index_of(ids(window)[1])
    assert block.row() == 2 and model.rowCount(block) == 7
    assert model.parent(model.index(0, 0, block)) == block


def inner_rows(window, layer_index: int) -> list[tuple[str, str, str]]:
    """(layer, shape, notes) of each inner row of the block at ``layer_index``, once expanded."""
    view, model = window.stack_view, window.stack_view.stack_model
    block = model.index_of(ids(window)[layer_index])
    view.expand(block)
    return [tuple(model.data(model.index(r, column, block)) for column in (COL_LAYER, COL_SHAPE, COL_NOTES))
            for r in range(model.rowCount(block))]


def call_order(kind: str, in_shape, params: dict) -> list[str]:
    """The block's inner layers in the order its forward really calls them (hooks on a CPU run)."""
    import torch

    from engine.layers import build_layer

    module, order = build_layer(kind, in_shape, params), []
    for name, child in module.named_children():
        child.register_forward_hook(lambda *_, name=name: order.append(name))
    module(torch.zeros(1, *in_shape))
    return order


@pytest.mark.parametrize("params, shortcut", [({"out_channels": 8, "stride": 2}, "conv3"),
                                              ({"out_channels": 4, "stride": 1}, "input")])
def test_a_residual_block_lists_its_steps_in_the_order_data_flows(window, qtbot, params, shortcut):
    load(window, spec_of((4, 8, 8), ("Residual", params)))
    rows = inner_rows(window, 0)
    layers = [label.split(":")[0] for label, _, _ in rows if ":" in label]
    assert layers == call_order("Residual", (4, 8, 8), params)  # not registration order (conv1, conv2, conv3, bn1, bn2)
    labels = [label for label, _, _ in rows]
    assert labels[:5] == ["conv1: Conv2d", "bn1: BatchNorm2d", "ReLU", "conv2: Conv2d", "bn2: BatchNorm2d"]
    assert labels[-2:] == ["Sum", "ReLU"]
    out = "8x4x4" if shortcut == "conv3" else "4x8x8"
    assert rows[2][1:] == (out, "relu(bn1)")  # the activation, with its shape
    assert rows[-2][1:] == (out, f"bn2 + {shortcut}")  # the sum of the main path and the shortcut
    assert rows[-1][1:] == (out, f"relu(bn2 + {shortcut})")
    if shortcut == "conv3":
        # the shortcut's 1x1 conv
        assert rows[5][0] == "conv3: Conv2d" and rows[5][2].startswith("from input: Conv2d(4, 8")
    assert rows[-1][1] == window.stack_view.stack_model.data(
        window.stack_view.stack_model.index_of(ids(window)[0], COL_SHAPE))


def test_an_inception_block_lists_its_branches_and_the_concatenation(window, qtbot):
    params = {"c1": 2, "c2_reduce": 2, "c2": 3, "c3_reduce": 1, "c3": 2, "c4": 1}
    load(window, spec_of((4, 6, 6), ("Inception", params)))
    rows = inner_rows(window, 0)
    layers = [label.split(":")[0] for label, _, _ in rows if ":" in label]
    assert layers == call_order("Inception", (4, 6, 6), params)
    assert rows[-1] == ("Concat", "8x6x6", "cat(relu(p1_1), relu(p2_2), relu(p3_2), relu(p4_2))")
    assert [label for label, _, note in rows if note.startswith("from input: ")] == [
        "p2_1: Conv2d", "p3_1: Conv2d", "p4_1: MaxPool2d"]  # each branch starts again from the input


def test_a_sequential_block_lists_its_layers_as_before(window, qtbot):
    load(window, spec_of((3, 8, 8), ("VGGBlock", {"num_convs": 2, "out_channels": 4})))
    rows = inner_rows(window, 0)
    assert [label for label, _, _ in rows] == ["0: Conv2d", "1: ReLU", "2: Conv2d", "3: ReLU", "4: MaxPool2d"]
    assert [shape for _, shape, _ in rows] == ["4x8x8"] * 4 + ["4x4x4"]
