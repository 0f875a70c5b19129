"""Groups in the layer stack: their layers are real rows (any depth), edited, moved, copied, grouped and ungrouped
like top-level layers, each edit one undo step, selection and expansion kept through every edit."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QGuiApplication

from engine.groups import group, residual_block
from engine.shapes import format_shape
from engine.spec import LayerSpec, NetworkSpec
from engine.tree import Place
from gui.document import DesignFile
from gui.mime import kind_to_mime
from gui.stack_model import COL_INDEX, COL_LAYER, COL_NOTES, COL_SHAPE
from gui.stack_nodes import SHORTCUT_KEY

F = Qt.ItemFlag


def texts(model, parent: QModelIndex, column: int) -> list[str]:
    return [model.data(model.index(row, column, parent)) for row in range(model.rowCount(parent))]


def small_tree(window) -> NetworkSpec:
    """conv, a residual group (conv, relu; custom shortcut: conv 1x1), a sequence (relu, identity), flatten, linear."""
    body = [LayerSpec("Conv2d", {"out_channels": 4, "padding": 1}, "bc"), LayerSpec("ReLU", {}, "br")]
    res = group("residual", body, id="res", shortcut="custom",
                shortcut_layers=[LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 1}, "sc")])
    seq = group("sequence", [LayerSpec("ReLU", {}, "r1"), LayerSpec("Identity", {}, "i1")], id="seq")
    spec = NetworkSpec((1, 8, 8), (LayerSpec("Conv2d", {"out_channels": 2}, "c0"), res, seq,
                                   LayerSpec("Flatten", {}, "fl"), LayerSpec("Linear", {"out_features": 3}, "li")))
    window.load_design(DesignFile(spec, "tree"))
    return spec


def test_groups_expand_to_their_layers_as_editable_rows(window):
    window.open_template("resnet18")
    doc, view, model = window.document, window.stack_view, window.stack_view.stack_model
    b2 = next(layer for layer in doc.spec.layers if layer.name == "b2")
    index = model.index_of(b2.id)
    assert model.rowCount(index) == 2 and not view.isExpanded(index)
    view.expand(index)
    assert texts(model, index, COL_LAYER) == ["Residual 64", "Residual 64"]
    block = model.index(0, 0, index)
    view.expand(block)
    body = doc.spec.layer(model.layer_id(block)).layers
    assert texts(model, block, COL_INDEX) == ["0", "1", "2", "3", "4"]  # the state_dict index in its group
    assert texts(model, block, COL_LAYER) == [doc.analysis.row(layer.id).label for layer in body]
    assert texts(model, block, COL_SHAPE) == [format_shape(doc.analysis.row(layer.id).shape) for layer in body]
    conv = model.index(3, 0, block)
    assert model.flags(conv) & F.ItemIsSelectable and model.flags(conv) & F.ItemIsDragEnabled
    assert model.flags(block) & F.ItemIsDropEnabled  # a drop on a group adds to it
    view.select_ids([body[3].id])
    assert view.selected_ids() == [body[3].id] and view.current_layer_id() == body[3].id
    # an edit inside keeps the groups open and the inner row selected
    doc.edit_param(body[3].id, "out_channels", 32)
    assert view.isExpanded(model.index_of(b2.id)) and view.isExpanded(model.index_of(model.layer_id(block)))
    assert view.selected_ids() == [body[3].id]
    assert "32" in model.data(model.index_of(body[3].id, COL_LAYER))


def test_branches_show_numbered_and_a_branch_opens_to_its_layers(window):
    window.open_template("googlenet")
    doc, model = window.document, window.stack_view.stack_model
    inception = next(layer for layer in doc.spec.all_layers() if layer.name == "Inception 3a")
    index = model.index_of(inception.id)
    assert texts(model, index, COL_INDEX) == ["branch 1", "branch 2", "branch 3", "branch 4"]
    branch = model.index(1, 0, index)
    assert texts(model, branch, COL_INDEX) == ["0", "1", "2", "3"]
    assert texts(model, branch, COL_LAYER)[0].startswith("Conv2d")


def test_a_custom_shortcut_shows_under_a_shortcut_row_that_takes_drops(window):
    small_tree(window)
    doc, model = window.document, window.stack_view.stack_model
    res = model.index_of("res")
    assert texts(model, res, COL_LAYER) == [doc.analysis.row("bc").label, doc.analysis.row("br").label, "Shortcut"]
    header = model.index_of("res" + SHORTCUT_KEY)
    assert header.parent() == res and model.layer_id(header) is None
    assert texts(model, header, COL_LAYER) == [doc.analysis.row("sc").label]
    assert model.data(header.siblingAtColumn(COL_SHAPE)) == "4x6x6"  # what the shortcut gives the sum
    assert model.dropMimeData(kind_to_mime("BatchNorm2d"), Qt.DropAction.CopyAction, -1, 0, header)
    assert [layer.kind for layer in doc.spec.layer("res").shortcut] == ["Conv2d", "BatchNorm2d"]
    assert window.stack_view.selected_ids() == [doc.spec.layer("res").shortcut[1].id]
    window.undo()
    assert [layer.id for layer in doc.spec.layer("res").shortcut] == ["sc"]


def test_palette_adds_after_the_selected_layer_in_its_group(window):
    small_tree(window)
    doc, view = window.document, window.stack_view
    view.select_ids(["r1"])
    new = window.add_kind("BatchNorm2d")
    assert [layer.id for layer in doc.spec.layer("seq").layers] == ["r1", *new, "i1"]
    view.select_ids(["seq"])  # a selected group: after it, beside it
    new = window.add_kind("VGG block")  # a preset: a whole group with fresh ids
    assert doc.spec.layers[3].id == new[0] and doc.spec.layers[3].name == "VGG block"


def test_group_make_residual_and_ungroup_are_single_undo_steps(window):
    small_tree(window)
    doc, view = window.document, window.stack_view
    before = doc.spec
    view.select_ids(["fl", "c0", "li"])  # not contiguous: wrapped at the first one's place, in design order
    window.actions["group"].trigger()
    wrapper = doc.spec.layers[0]
    assert wrapper.is_group and [layer.id for layer in wrapper.layers] == ["c0", "fl", "li"]
    assert [layer.id for layer in doc.spec.layers[1:]] == ["res", "seq"]
    assert doc.undo_stack.undoText() == "Group 3 layers"
    assert view.selected_ids() == [wrapper.id] and view.isExpanded(view.stack_model.index_of(wrapper.id))
    window.undo()
    assert doc.spec == before
    view.select_ids(["r1", "i1"])
    window.actions["make_residual"].trigger()
    made = doc.spec.layer("seq").layers[0]
    assert made.params["mode"] == "residual" and doc.undo_stack.undoText() == "Make residual of 2 layers"
    window.actions["ungroup"].trigger()
    assert [layer.id for layer in doc.spec.layer("seq").layers] == ["r1", "i1"]
    assert doc.undo_stack.undoText() == "Ungroup residual group"
    assert "without the shortcut sum" in window.statusBar().currentMessage()
    view.select_ids(["res"])
    window.actions["ungroup"].trigger()
    assert "its shortcut layers are left out" in window.statusBar().currentMessage()
    window.undo()
    window.undo()
    window.undo()
    assert doc.spec == before


def test_group_refuses_layers_of_different_groups_with_a_sentence(window):
    small_tree(window)
    doc, view = window.document, window.stack_view
    before = doc.spec
    view.select_ids(["c0", "r1"])
    window.actions["group"].trigger()
    assert doc.spec == before and not doc.undo_stack.canUndo()
    assert "different groups" in window.statusBar().currentMessage()


def test_drags_move_layers_within_and_across_groups_never_a_group_into_itself(window):
    small_tree(window)
    doc, model = window.document, window.stack_view.stack_model
    move = Qt.DropAction.MoveAction
    # onto a group row: to the end of the group
    assert model.dropMimeData(model.mimeData([model.index_of("c0")]), move, -1, 0, model.index_of("seq"))
    assert [layer.id for layer in doc.spec.layer("seq").layers] == ["r1", "i1", "c0"]
    assert doc.undo_stack.undoText() == "Move Conv2d"
    # between rows inside a group, then out to the top level
    assert model.dropMimeData(model.mimeData([model.index_of("c0")]), move, 0, 0, model.index_of("seq"))
    assert [layer.id for layer in doc.spec.layer("seq").layers] == ["c0", "r1", "i1"]
    assert model.dropMimeData(model.mimeData([model.index_of("r1")]), move, 1, 0, QModelIndex())  # above row 1
    assert doc.spec.layers[0].id == "r1"
    # a group carries its layers; it cannot go into itself or its own groups
    drag = model.mimeData([model.index_of("res"), model.index_of("bc")])
    assert not model.canDropMimeData(drag, move, -1, 0, model.index_of("res"))
    assert not model.canDropMimeData(drag, move, -1, 0, model.index_of("res" + SHORTCUT_KEY))
    assert model.dropMimeData(drag, move, -1, 0, model.index_of("seq"))
    assert doc.spec.layer("seq").layers[-1].id == "res" and [layer.id for layer in doc.spec.layer("res").layers] == [
        "bc", "br"]


def test_copy_and_paste_of_a_group_gives_it_and_its_layers_new_ids(window):
    small_tree(window)
    doc, view = window.document, window.stack_view
    view.select_ids(["res"])
    assert view.copy_selected()
    view.select_ids(["r1"])
    pasted = view.paste()
    seq = doc.spec.layer("seq").layers
    assert [layer.id for layer in seq][0] == "r1" and seq[1].id == pasted[0]
    every = [layer.id for layer in doc.spec.all_layers()]
    assert len(every) == len(set(every)) == 14  # 10, then 4 new ids: the group, its two layers, its shortcut's layer
    assert seq[1].params == doc.spec.layer("res").params and len(seq[1].shortcut) == 1
    assert doc.undo_stack.undoText() == "Paste residual group"
    QGuiApplication.clipboard().clear()


def test_delete_at_any_depth_and_the_selection_follows(window):
    small_tree(window)
    doc, view = window.document, window.stack_view
    view.select_ids(["r1"])
    assert view.delete_selected()
    assert [layer.id for layer in doc.spec.layer("seq").layers] == ["i1"] and view.selected_ids() == ["i1"]
    view.select_ids(["i1"])
    view.delete_selected()
    assert view.selected_ids() == ["seq"]  # nothing left beside it: its group
    view.select_ids(["res", "bc"])  # a group and a layer inside it: the group goes, with its layers
    assert view.delete_selected()
    assert "bc" not in [layer.id for layer in doc.spec.all_layers()]
    assert doc.undo_stack.undoText() == "Delete residual group"
    for _ in range(3):
        window.undo()
    assert [layer.id for layer in doc.spec.layer("seq").layers] == ["r1", "i1"]


def test_alt_arrows_move_within_the_group(window, qtbot):
    small_tree(window)
    doc, view = window.document, window.stack_view
    view.select_ids(["i1"])
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    assert [layer.id for layer in doc.spec.layer("seq").layers] == ["i1", "r1"] and view.selected_ids() == ["i1"]
    assert not view.move_selected(-1)  # first in its group: stays


def test_structural_edits_keep_expansion_and_selection(window):
    small_tree(window)
    doc, view, model = window.document, window.stack_view, window.stack_view.stack_model
    view.expand(model.index_of("res"))
    view.expand(model.index_of("res" + SHORTCUT_KEY))
    view.select_ids(["sc"])
    doc.add_layers(0, [LayerSpec("Identity")])
    doc.delete_layers(["li"])
    doc.move_layers(["seq"], Place("res", "layers", 0))
    window.undo()
    assert view.isExpanded(model.index_of("res")) and view.isExpanded(model.index_of("res" + SHORTCUT_KEY))
    assert view.selected_ids() == ["sc"] and view.current_layer_id() == "sc"


def test_a_group_row_counts_the_errors_inside_it(window):
    small_tree(window)
    doc, model = window.document, window.stack_view.stack_model
    doc.edit_param("bc", "kernel_size", 40)
    note = model.data(model.index_of("res", COL_NOTES))
    assert note.startswith("1 error inside: 1 › 0: ") and "kernel" in note


def test_read_only_blocks_every_tree_edit(window):
    small_tree(window)
    doc, view, model = window.document, window.stack_view, window.stack_view.stack_model
    before = doc.spec
    doc.read_only = True
    view.select_ids(["r1", "i1"])
    for key in ("group", "make_residual", "ungroup", "delete", "move_up"):
        window.actions[key].trigger()
    assert not model.canDropMimeData(kind_to_mime("ReLU"), Qt.DropAction.CopyAction, -1, 0, model.index_of("seq"))
    assert doc.add_layers(Place("seq", "layers", 0), [LayerSpec("ReLU")]) == []
    assert doc.spec == before and not doc.undo_stack.canUndo()
    assert not model.flags(model.index_of("r1")) & F.ItemIsDragEnabled
    doc.read_only = False


def test_a_residual_block_preset_keeps_its_shape_in_the_stack(window):
    doc, model = window.document, window.stack_view.stack_model
    window.load_design(DesignFile(NetworkSpec((3, 8, 8), (residual_block(8, 2),)), "res"))
    row = doc.analysis.rows[0]
    assert model.data(model.index_of(row.layer_id, COL_SHAPE)) == "8x4x4" == format_shape(row.shape)
