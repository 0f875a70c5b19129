"""The palette's Blocks: the group presets (engine.groups.PRESETS), inserted as fresh groups by click, Enter or drag."""
from __future__ import annotations

import torch
from PySide6.QtCore import QModelIndex, Qt

from engine.build import build_model
from engine.groups import PRESETS
from engine.spec import NetworkSpec
from gui.document import what
from gui.icons import category_icon
from gui.mime import kind_to_mime
from tests.gui.helpers import ids, load

CIFAR = (3, 32, 32)


def structure(layer) -> dict:
    """A layer's JSON without any id: what it is, not who it is."""
    data = layer.to_dict() if not isinstance(layer, dict) else layer
    out = {key: value for key, value in data.items() if key != "id"}
    for slot in ("layers", "shortcut"):
        if slot in out:
            out[slot] = [structure(child) for child in out[slot]]
    return out


def every_id(spec: NetworkSpec) -> list[str]:
    return [layer.id for layer in spec.all_layers()]


def blocks_entries(window) -> list[str]:
    tree = window.palette.tree
    for index in range(tree.topLevelItemCount()):
        group = tree.topLevelItem(index)
        if group.text(0) == "Blocks":
            return [group.child(i).text(0) for i in range(group.childCount())]
    raise AssertionError("no Blocks category")


def test_the_blocks_category_lists_every_preset_with_its_help_and_icon(window):
    assert blocks_entries(window) == list(PRESETS)
    assert {"Group", "VGG block", "NiN block", "Residual block", "Bottleneck block", "Inception block",
            "Dense block"} <= set(PRESETS)
    blocks_icon = category_icon("Blocks").pixmap(16).toImage()
    for name, preset in PRESETS.items():
        item = window.palette.item(name)
        assert preset.help in item.toolTip(0) and f"<b>{name}</b>" in item.toolTip(0)
        assert item.icon(0).pixmap(16).toImage() == blocks_icon
    assert window.palette.visible_kinds().count("Group") == 1  # the Group kind is its presets, not a twin entry


def test_every_preset_inserts_a_fresh_group_that_analyses_on_3x32x32(window, qtbot):
    load(window, NetworkSpec(CIFAR))
    tree = window.palette.tree
    for name, preset in PRESETS.items():
        window.stack_view.select_input()
        tree.setCurrentItem(window.palette.item(name))
        qtbot.keyClick(tree, Qt.Key.Key_Return)
        spec = window.document.spec
        group = spec.layers[0]
        assert group.is_group and structure(group) == structure(preset.make()), name
        assert window.document.undo_stack.undoText() == f"Add {what([group])}"
        assert window.document.analysis.ok, (name, [row.error for row in window.document.analysis.errors])
        assert window.stack_view.selected_ids() == [group.id]
        assert window.inspector.layer_id == group.id
        model = build_model(spec).eval()
        with torch.no_grad():
            out = model(torch.zeros(2, *CIFAR))
        assert tuple(out.shape[1:]) == window.document.analysis.rows[0].shape
        # a second insert gets ids of its own, for the group and every layer inside it
        first = set(every_id(spec))
        window.stack_view.select_input()
        qtbot.keyClick(tree, Qt.Key.Key_Return)
        twice = window.document.spec
        second = set(every_id(twice)) - first
        assert len(second) == len(first) and len(set(every_id(twice))) == len(every_id(twice))
        assert NetworkSpec.from_dict(twice.to_dict()) == twice  # a design file refuses repeated ids
        window.undo()
        window.undo()
        assert window.document.spec.layers == ()


def test_a_double_click_inserts_after_the_selection(window, qtbot):
    load(window, NetworkSpec(CIFAR, ()))
    window.add_kind("ReLU")
    window.add_kind("Flatten")
    before = ids(window)
    window.stack_view.select_ids(before[:1])
    tree = window.palette.tree
    item = window.palette.item("VGG block")
    tree.scrollToItem(item)
    position = tree.visualItemRect(item).center()
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=position)
    qtbot.mouseDClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=position)
    spec = window.document.spec
    assert [layer.name or layer.kind for layer in spec.layers] == ["ReLU", "VGG block", "Flatten"]
    assert window.document.analysis.ok
    window.undo()
    assert ids(window) == before


def test_dragging_a_preset_drops_a_group_at_the_position(window):
    load(window, NetworkSpec(CIFAR, ()))
    window.add_kind("Flatten")
    before = ids(window)
    model = window.stack_view.stack_model
    mime = window.palette.tree.mimeData([window.palette.item("Inception block")])
    assert model.canDropMimeData(mime, Qt.DropAction.CopyAction, 1, 0, QModelIndex())
    assert model.dropMimeData(mime, Qt.DropAction.CopyAction, 1, 0, QModelIndex())  # above Flatten
    spec = window.document.spec
    assert spec.layers[0].name == "Inception block" and spec.layers[1].kind == "Flatten"
    assert len(spec.layers[0].layers) == 4 and window.document.analysis.ok
    assert window.document.analysis.rows[0].shape == (256, 32, 32)
    assert window.stack_view.selected_ids() == [spec.layers[0].id]
    window.undo()
    assert ids(window) == before


def test_a_drop_of_an_unknown_name_changes_nothing(window):
    load(window, NetworkSpec(CIFAR, ()))
    model = window.stack_view.stack_model
    assert not model.dropMimeData(kind_to_mime("Rocket block"), Qt.DropAction.CopyAction, 1, 0, QModelIndex())
    assert window.document.spec.layers == () and not window.document.modified


def test_the_filter_finds_presets_by_name_and_help(window, qtbot):
    load(window, NetworkSpec(CIFAR, ()))
    qtbot.keyClicks(window.palette.filter, "inception")
    assert window.palette.visible_kinds() == ["Inception block"]
    window.palette.filter.clear()
    qtbot.keyClicks(window.palette.filter, "shortcut")  # in the residual presets' help
    assert window.palette.visible_kinds() == ["Residual block", "Bottleneck block"]
    qtbot.keyClick(window.palette.filter, Qt.Key.Key_Return)
    assert window.document.spec.layers[0].name == "Residual block"
