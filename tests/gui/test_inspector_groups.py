"""The inspector on a group: the settings its mode reads, what it computes, its name, a custom shortcut that starts
from what auto used, freezing, and no per-layer initialisation."""
from __future__ import annotations

from PySide6.QtCore import Qt

from engine.groups import bottleneck_block, group, inception_block, residual_block, vgg_block
from engine.layers.group import MODE_PARAMS
from engine.spec import MAX_NAME, LayerSpec, NetworkSpec
from gui.stack_model import COL_LAYER
from tests.gui.helpers import cell, load

CIFAR = (3, 32, 32)


def show(window, *layers, shape=CIFAR):
    """Load a design of ``layers`` and select the first."""
    load(window, NetworkSpec(shape, layers))
    window.stack_view.select_ids([layers[0].id])
    return window.inspector


def shown_settings(inspector) -> list[str]:
    return [name for name, editor in inspector.editors.items() if inspector.form.isRowVisible(editor)]


def choose(inspector, name: str, value: str) -> None:
    """Pick ``value`` in the ``name`` combo box as a person does (the editor emits)."""
    inspector.editors[name].combo.setCurrentText(value)


def test_only_the_settings_of_the_chosen_mode_show_and_each_change_undoes(window):
    inspector = show(window, group("sequence", [LayerSpec("Conv2d", {"out_channels": 3, "padding": 1})]))
    assert shown_settings(inspector) == ["mode", "repeat"]
    assert inspector.name_edit is not None and inspector.form.isRowVisible(inspector.name_edit)
    choose(inspector, "mode", "residual")
    assert shown_settings(inspector) == list(MODE_PARAMS["residual"]) == ["mode", "repeat", "shortcut", "activation"]
    choose(inspector, "mode", "branches")
    assert shown_settings(inspector) == ["mode", "repeat", "merge"]
    inspector.editors["repeat"].spin.setValue(3)
    layer = window.document.spec.layers[0]
    assert (layer.params["mode"], layer.params["repeat"]) == ("branches", 3)
    assert window.document.undo_stack.undoText() == "Set repeat"
    window.undo()
    assert inspector.editors["repeat"].value() == 1
    window.undo()  # a quick run of mode changes is one step, as a burst of spin-box steps is
    assert window.document.spec.layers[0].params["mode"] == "sequence"
    assert shown_settings(inspector) == ["mode", "repeat"]  # the rows follow undo
    window.redo()
    assert shown_settings(inspector) == ["mode", "repeat", "merge"]


def test_the_formula_says_what_a_residual_group_computes(window):
    block = residual_block(128, 2)
    inspector = show(window, block, shape=(64, 32, 32))
    assert inspector.title.text() == "0. Residual block"
    assert inspector.formula.isVisible()
    text = inspector.formula.text()
    assert "output = ReLU(body(x) + shortcut(x))" in text
    assert "shortcut: 1x1 conv, stride 2, 64 -> 128 channels" in text
    assert inspector.out_shape.text() == "128x16x16"
    choose(inspector, "activation", "none")
    assert "output = body(x) + shortcut(x)" in inspector.formula.text()
    choose(inspector, "shortcut", "auto+bn")
    assert "64 -> 128 channels + BatchNorm" in inspector.formula.text()
    inspector = show(window, inception_block())
    assert "channels = 64 + 128 + 32 + 32 = 256" in inspector.formula.text()
    assert shown_settings(inspector) == ["mode", "repeat", "merge"]


def test_a_group_has_no_initialisation_and_freezing_it_freezes_everything_inside(window):
    block = vgg_block()
    inspector = show(window, block)
    assert not inspector.init_box.isVisible()
    assert not any(editor.isVisible() for editor in inspector.init_editors.values())
    assert inspector.trainable.isVisible() and "every layer inside it" in inspector.trainable.toolTip()
    inspector.trainable.click()
    analysis = window.document.analysis
    assert window.document.spec.layers[0].frozen
    assert analysis.rows[0].params > 0 and all(row.trainable == 0 for row in analysis.all_rows)
    window.undo()
    assert all(row.trainable == row.params for row in window.document.analysis.all_rows)
    assert inspector.trainable.isChecked()
    # a layer inside the group keeps the ordinary layer tooltip and its initialisation box
    inspector.show_layer(block.layers[0].id)
    assert inspector.title.text().startswith("0 › 0. Conv2d")
    assert inspector.init_box.isVisible() and "this layer" in inspector.trainable.toolTip()


def test_the_name_field_renames_the_group_and_typing_is_one_undo_step(window, qtbot):
    block = residual_block()
    inspector = show(window, block)
    edit = inspector.name_edit
    assert edit.text() == "Residual block"
    edit.selectAll()
    qtbot.keyClicks(edit, "Stage 1")
    assert window.document.spec.layers[0].name == "Stage 1"
    assert cell(window, 0, COL_LAYER) == "Stage 1" and inspector.title.text() == "0. Stage 1"
    assert window.document.undo_stack.undoText() == "Rename group"
    window.undo()  # every keystroke, one step
    assert window.document.spec.layers[0].name == "Residual block" and edit.text() == "Residual block"
    assert not window.document.modified
    edit.clear()
    qtbot.keyClicks(edit, "x" * (MAX_NAME + 10))
    assert window.document.spec.layers[0].name == "x" * MAX_NAME  # the field stops where a file's limit is
    assert not window.document.edit_name(block.id, "y" * (MAX_NAME + 1))
    saved = window.document.spec.to_dict()
    assert NetworkSpec.from_dict(saved).layers[0].name == "x" * MAX_NAME


def test_custom_shortcut_starts_from_what_auto_used_in_one_undo_step(window):
    block = residual_block(128, 2)
    inspector = show(window, block, shape=(64, 32, 32))
    auto_params = window.document.analysis.rows[0].params
    choose(inspector, "shortcut", "custom")
    layer = window.document.spec.layers[0]
    assert layer.params["shortcut"] == "custom"
    assert [(s.kind, s.params["out_channels"], s.params["kernel_size"], s.params["stride"]) for s in layer.shortcut] \
        == [("Conv2d", 128, 1, 2)]
    ids = [one.id for one in window.document.spec.all_layers()]
    assert len(ids) == len(set(ids))
    analysis = window.document.analysis
    assert analysis.ok and analysis.rows[0].params == auto_params and analysis.rows[0].shape == (128, 16, 16)
    assert "shortcut: custom" in inspector.formula.text()
    assert window.document.undo_stack.undoText() == "Set shortcut to custom"
    window.undo()
    layer = window.document.spec.layers[0]
    assert layer.params["shortcut"] == "auto" and layer.shortcut == ()
    assert inspector.editors["shortcut"].value() == "auto"
    window.redo()
    assert len(window.document.spec.layers[0].shortcut) == 1
    # back to auto: the custom layers stay in the design, unused, and the help line says so
    choose(inspector, "shortcut", "auto")
    layer = window.document.spec.layers[0]
    assert len(layer.shortcut) == 1 and window.document.analysis.ok
    assert "unused" in inspector.help.text()
    # custom again uses the layers kept, nothing new is added
    kept = layer.shortcut
    choose(inspector, "shortcut", "custom")
    assert window.document.spec.layers[0].shortcut == kept
    assert "unused" not in inspector.help.text()
    choose(inspector, "mode", "sequence")
    assert "unused outside residual mode" in inspector.help.text() and shown_settings(inspector) == ["mode", "repeat"]


def test_custom_shortcut_keeps_the_batchnorm_of_auto_bn_and_is_empty_for_an_identity(window):
    inspector = show(window, bottleneck_block())  # auto+bn; 3 -> 256 channels
    choose(inspector, "shortcut", "custom")
    assert [s.kind for s in window.document.spec.layers[0].shortcut] == ["Conv2d", "BatchNorm2d"]
    assert window.document.analysis.ok
    inspector = show(window, residual_block(64), shape=(64, 8, 8))  # keeps the shape: the identity
    choose(inspector, "shortcut", "custom")
    assert window.document.spec.layers[0].shortcut == () and window.document.analysis.ok


def test_group_edits_wait_while_the_design_is_read_only(window, qtbot):
    block = residual_block()
    inspector = show(window, block)
    window.document.read_only = True
    try:
        assert not inspector.params_box.isEnabled()
        assert not window.document.edit_name(block.id, "Other")
        assert not window.document.edit_param(block.id, "shortcut", "custom")
    finally:
        window.document.read_only = False
    assert window.document.spec.layers[0] == block
    qtbot.keyClick(inspector.name_edit, Qt.Key.Key_A)  # enabled again
    assert window.document.spec.layers[0].name.endswith("a")


def test_a_linear_inside_a_group_gets_hidden_size_suggestions_for_the_network_after_the_group(window):
    hidden = LayerSpec("Linear", {"out_features": 100})
    body = group("sequence", [LayerSpec("Flatten"), hidden, LayerSpec("ReLU")])
    load(window, NetworkSpec((1, 28, 28), (body, LayerSpec("Linear", {"out_features": 10}))))
    inspector = window.inspector
    inspector.show_layer(hidden.id)
    assert inspector.title.text() == "0 › 1. Linear 100"
    assert inspector.suggest_box.isVisible() and "784 inputs and the network's 10 outputs" in \
        inspector.suggest_note.text()
    button = inspector.suggestion_buttons[0]
    assert button.isEnabled()
    button.click()
    assert window.document.spec.layer(hidden.id).params["out_features"] == button.property("hiddenSize")
    window.undo()
    assert window.document.spec.layer(hidden.id).params["out_features"] == 100
