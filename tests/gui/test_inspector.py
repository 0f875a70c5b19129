"""The inspector: typed editors, live shapes and formula, errors, merging undo, hints."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QSpinBox

from engine.layers import suggest_hidden_sizes
from gui.editors import FloatSpinBox, IntEditor, PaddingEditor
from gui.icons import error_icon
from gui.stack_model import COL_LAYER, COL_NOTES, INPUT_ID
from tests.gui.helpers import cell, ids, load, notes, shapes, spec_of


def lenet_conv(window):
    conv = window.document.spec.layers[0].id
    window.stack_view.select_ids([conv])
    return conv


def test_editors_match_the_parameter_schema(window):
    lenet_conv(window)
    editors = window.inspector.editors
    assert isinstance(editors["kernel_size"], IntEditor)
    spin = editors["kernel_size"].spin
    assert (spin.minimum(), spin.maximum(), spin.value()) == (1, 1000, 5)
    assert isinstance(editors["padding"], PaddingEditor)
    assert editors["padding"].value() == 2
    assert isinstance(editors["bias"].box, QCheckBox) and editors["bias"].box.isChecked()
    load(window, spec_of((10,), ("Dropout", {"p": 0.3}), ("GELU", {}), ("BatchNorm1d", {})))
    window.stack_view.select_ids(ids(window)[:1])
    p = window.inspector.editors["p"].spin
    assert isinstance(p, FloatSpinBox) and (p.minimum(), p.maximum(), p.value()) == (0.0, 1.0, 0.3)
    window.stack_view.select_ids(ids(window)[1:2])
    combo = window.inspector.editors["approximate"].combo
    assert isinstance(combo, QComboBox) and [combo.itemText(i) for i in range(combo.count())] == ["none", "tanh"]
    window.stack_view.select_ids(ids(window)[2:3])
    eps = window.inspector.editors["eps"].spin
    assert eps.text() == "1e-05"
    eps.stepUp()  # tiny values step by factors of ten
    assert window.document.spec.layers[2].params["eps"] == 1e-4


def test_changing_kernel_size_updates_rows_formula_and_undo_text(window, qtbot):
    conv = lenet_conv(window)
    before = shapes(window)
    assert "H = floor((28 + 2*2 - 5)/1) + 1 = 28" in window.inspector.formula.text()
    spin = window.inspector.editors["kernel_size"].spin
    spin.setValue(3)
    assert window.document.spec.layer(conv).params["kernel_size"] == 3
    assert shapes(window)[:4] == ["6x30x30", "6x30x30", "6x15x15", "16x11x11"]
    assert shapes(window) != before
    assert cell(window, 0, COL_LAYER) == "Conv2d 6, k3, p2"
    assert "H = floor((28 + 2*2 - 3)/1) + 1 = 30" in window.inspector.formula.text()
    assert window.inspector.out_shape.text() == "6x30x30"
    assert window.document.undo_stack.undoText() == "Set kernel_size"
    assert window.actions["undo"].text() == "Undo Set kernel_size"
    window.actions["undo"].trigger()
    assert shapes(window) == before
    assert spin.value() == 5  # the editor follows undo
    assert window.actions["redo"].text() == "Redo Set kernel_size"


def test_a_burst_of_spin_box_steps_is_one_undo_step(window, qtbot):
    conv = lenet_conv(window)
    spin = window.inspector.editors["out_channels"].spin
    start = window.document.undo_stack.count()
    spin.setFocus()
    for _ in range(5):
        qtbot.keyClick(spin, Qt.Key.Key_Up)
    assert window.document.spec.layer(conv).params["out_channels"] == 11
    assert window.document.undo_stack.count() == start + 1
    window.undo()
    assert window.document.spec.layer(conv).params["out_channels"] == 6
    assert spin.value() == 6


def test_typing_a_number_is_live_and_one_step(window, qtbot):
    conv = window.document.spec.layers[0].id
    window.stack_view.select_ids([conv])
    spin = window.inspector.editors["out_channels"].spin
    spin.selectAll()
    qtbot.keyClicks(spin, "120")
    assert window.document.spec.layer(conv).params["out_channels"] == 120
    assert window.document.undo_stack.count() == 1


def test_a_broken_layer_shows_its_error_and_the_rest_still_shows(window):
    load(window, spec_of((3, 32, 32), ("Conv2d", {"out_channels": 6, "kernel_size": 3}),
                         ("GroupNorm", {"num_groups": 2}), "ReLU", "Flatten", ("Linear", {"out_features": 10})))
    norm = ids(window)[1]
    window.stack_view.select_ids([norm])
    window.inspector.editors["num_groups"].spin.setValue(4)  # 6 channels don't split into 4 groups
    row_notes = notes(window)
    assert "not divisible into 4 groups" in row_notes[1]
    assert cell(window, 1, COL_NOTES, Qt.ItemDataRole.ForegroundRole).color().name() == "#d32f2f"
    assert cell(window, 1, COL_LAYER, Qt.ItemDataRole.DecorationRole).cacheKey() == error_icon().cacheKey()
    assert [n for i, n in enumerate(row_notes) if i != 1] == ["", "", "", ""]
    assert shapes(window) == ["6x30x30", "6x30x30", "6x30x30", "5400", "10"]  # analysis went on past the error
    assert window.inspector.error.isVisibleTo(window.inspector)
    assert "not divisible into 4 groups" in window.inspector.error.text()
    assert window.summary.values["Errors"].text() == "1"
    assert not window.train_button.isEnabled()
    window.undo()
    assert window.train_button.isEnabled()
    assert window.summary.values["Errors"].text() == "none"
    assert not window.inspector.error.isVisibleTo(window.inspector)


def test_an_error_upstream_makes_later_shapes_unknown(window):
    conv = lenet_conv(window)
    window.inspector.editors["kernel_size"].spin.setValue(40)
    assert "kernel 40 is larger than the padded input 32" in notes(window)[0]
    assert shapes(window)[1:] == ["?"] * 8
    assert cell(window, 1, COL_LAYER) == "Sigmoid"  # the rows are still there
    assert window.document.spec.layer(conv).params["kernel_size"] == 40
    # the costs below the error are unknown, so the totals are lower bounds
    assert window.summary.values["Parameters"].text() == "≥ 0"
    window.undo()
    assert window.summary.values["Parameters"].text() == "61,706"


def test_padding_presets(window):
    conv = lenet_conv(window)
    padding = window.inspector.editors["padding"]
    padding.apply_preset("valid")
    assert window.document.spec.layer(conv).params["padding"] == "valid"
    assert shapes(window)[0] == "6x24x24"
    assert not padding.spin.isEnabled()
    padding.apply_preset("same")
    assert shapes(window)[0] == "6x28x28"
    assert "padding 'same' keeps the size" in window.inspector.formula.text()
    padding.apply_preset("full")
    assert shapes(window)[0] == "6x32x32"
    window.inspector.editors["stride"].spin.setValue(2)
    padding.apply_preset("same")
    assert "padding 'same' needs stride 1" in notes(window)[0]  # an allowed value, shown as an error
    padding.apply_preset("number")
    assert window.document.spec.layer(conv).params["padding"] == padding.spin.value()


def test_shape_parameters_are_typed_like_1x28x28(window, qtbot):
    load(window, spec_of((784,), ("Unflatten", {"sizes": (1, 28, 28)}), ("Conv2d", {"out_channels": 4})))
    window.stack_view.select_ids(ids(window)[:1])
    line = window.inspector.editors["sizes"].line
    assert isinstance(line, QLineEdit) and line.text() == "1x28x28"
    line.selectAll()
    qtbot.keyClicks(line, "4x14x14")
    assert window.document.spec.layers[0].params["sizes"] == (4, 14, 14)
    assert shapes(window) == ["4x14x14", "4x12x12"]
    line.selectAll()
    qtbot.keyClicks(line, "4x0")  # "4" is a shape (sent live, an error here); "4x" and "4x0" are not
    assert window.document.spec.layers[0].params["sizes"] == (4,)
    assert "make the sizes multiply to 784" in notes(window)[0]
    assert line.property("invalid")
    line.editingFinished.emit()
    assert line.text() == "4" and not line.property("invalid")
    qtbot.keyClicks(line, "x196")
    assert window.document.spec.layers[0].params["sizes"] == (4, 196)
    assert notes(window)[0] == ""
    assert window.document.undo_stack.count() == 1  # one burst of typing, one undo step


def test_a_reshape_takes_minus_one_typed_in_its_shape(window, qtbot):
    """Reshape's shape may hold -1, so its field takes a minus sign (other shape fields refuse it)."""
    load(window, spec_of((1, 28, 28), ("Reshape", {"shape": (28, 28)}), ("LSTM", {"hidden_size": 8})))
    window.stack_view.select_ids(ids(window)[:1])
    line = window.inspector.editors["shape"].line
    assert line.text() == "28x28" and "from -1 to" in line.hint and "e.g. 28x28" in line.hint
    line.selectAll()
    qtbot.keyClicks(line, "-1x14")
    assert window.document.spec.layers[0].params["shape"] == (-1, 14)
    assert shapes(window) == ["56x14", "8"]
    assert "-1 = 784/14 = 56" in window.inspector.formula.text()
    window.stack_view.select_input()
    input_line = window.inspector.editors["input_shape"].line
    input_line.selectAll()
    qtbot.keyClicks(input_line, "-")  # the input shape has no -1: its field refuses the key
    assert input_line.text() == "1x28x28" and window.document.spec.input_shape == (1, 28, 28)


def test_input_row_in_the_inspector(window, qtbot):
    window.stack_view.select_input()
    assert window.inspector.layer_id == INPUT_ID
    line = window.inspector.editors["input_shape"].line
    line.selectAll()
    qtbot.keyClicks(line, "1x32x32")
    assert window.document.spec.input_shape == (1, 32, 32)
    assert shapes(window)[0] == "6x32x32"


def test_leaving_an_incomplete_shape_puts_the_designs_shape_back(window, qtbot):
    window.stack_view.select_input()
    line = window.inspector.editors["input_shape"].line
    line.setFocus()
    qtbot.waitUntil(line.hasFocus)
    line.selectAll()
    qtbot.keyClicks(line, "0x28x28")  # never a valid shape: the design keeps its own
    assert line.property("invalid")
    window.stack_view.setFocus()  # focus leaves; editingFinished does not come for an incomplete text
    qtbot.waitUntil(lambda: not line.hasFocus())
    assert line.text() == "x".join(map(str, window.document.spec.input_shape))
    assert not line.property("invalid")


def test_linear_hidden_size_suggestions_apply_in_one_click(window):
    fc1 = window.document.spec.layers[7].id  # Linear 84 between Conv 120 (flattened) and Linear 10
    window.stack_view.select_ids([fc1])
    assert window.inspector.suggest_box.isVisibleTo(window.inspector)
    expected = suggest_hidden_sizes(120, 10)
    buttons = window.inspector.suggestion_buttons
    assert [b.property("hiddenSize") for b in buttons] == list(expected.values())
    buttons[0].click()
    assert window.document.spec.layer(fc1).params["out_features"] == expected["2/3 of input + output"]
    assert shapes(window)[7] == str(expected["2/3 of input + output"])
    window.undo()
    assert window.document.spec.layer(fc1).params["out_features"] == 84
    window.stack_view.select_ids([window.document.spec.layers[8].id])  # the output layer: no suggestions
    assert not window.inspector.suggest_box.isVisibleTo(window.inspector)


def test_freezing_a_layer_counts_it_as_not_trainable(window):
    conv = lenet_conv(window)
    total = window.document.analysis.params
    window.inspector.trainable.setChecked(False)
    assert window.document.spec.layer(conv).frozen
    assert window.summary.values["Trainable"].text() == f"{total - 156:,}"
    window.undo()
    assert window.summary.values["Trainable"].text() == f"{total:,}"


def test_read_only_disables_editing_with_a_visible_note(window):
    lenet_conv(window)
    window.document.read_only = True
    assert window.read_only_banner.isVisibleTo(window)
    assert not window.inspector.params_box.isEnabled()
    assert not window.actions["delete"].isEnabled() and not window.actions["paste"].isEnabled()
    assert window.add_kind("ReLU") == []
    window.document.read_only = False
    assert not window.read_only_banner.isVisibleTo(window)
    assert window.actions["delete"].isEnabled()


def test_every_spin_box_value_is_valid_or_an_error_on_its_layer(window):
    """Drive every int editor of every kind to its extremes: never an exception, always a row."""
    from engine.layers import KINDS

    for kind in KINDS:
        load(window, spec_of((3, 16, 16), kind))
        window.stack_view.select_ids(ids(window))
        for name, editor in window.inspector.editors.items():
            spin = getattr(editor, "spin", None)
            if isinstance(spin, QSpinBox):
                for value in (spin.minimum(), spin.maximum()):
                    spin.setValue(value)
                    row = window.document.analysis.rows[0]
                    assert row.error or row.shape is not None, (kind, name, value)
