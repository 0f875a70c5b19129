"""The stack model stays a faithful, well-behaved Qt tree model through any series of edits, at any depth."""
from __future__ import annotations

import random

import pytest
from PySide6.QtCore import QModelIndex, QPersistentModelIndex

from engine.errors import SpecError
from engine.groups import PRESETS, group
from engine.layers import KINDS
from engine.spec import LayerSpec, NetworkSpec
from engine.tree import Place
from gui.document import DesignDocument
from gui.stack_model import COL_INDEX, COL_LAYER, INPUT_ID, LayerStackModel
from gui.stack_nodes import SHORTCUT_KEY

SIMPLE_KINDS = [name for name, kind in KINDS.items() if not kind.is_group]


def model_tree(model, parent=QModelIndex()) -> list:
    """[(key, [children...]), ...] as the model shows it."""
    rows = []
    for row in range(model.rowCount(parent)):
        index = model.index(row, 0, parent)
        assert model.parent(index) == parent
        rows.append((model.key(index), model_tree(model, index)))
    return rows


def spec_tree(layers) -> list:
    """The same from the design: a group's layers, then its Shortcut row when its shortcut is custom."""
    rows = []
    for layer in layers:
        children = spec_tree(layer.layers) if layer.is_group else []
        if layer.is_group and layer.params["mode"] == "residual" and layer.params["shortcut"] == "custom":
            children.append((layer.id + SHORTCUT_KEY, spec_tree(layer.shortcut)))
        rows.append((layer.id, children))
    return rows


def keys(tree_rows) -> list[str]:
    return [key for key, children in tree_rows for key in [key, *keys(children)]]


def random_place(doc: DesignDocument, rng: random.Random) -> Place:
    groups = [layer for layer in doc.spec.all_layers() if layer.is_group]
    if groups and rng.random() < 0.6:
        parent = rng.choice(groups)
        slot = rng.choice(("layers", "shortcut")) if parent.params["mode"] == "residual" else "layers"
        return Place(parent.id, slot, rng.randint(0, len(getattr(parent, slot))))
    return Place(None, "layers", rng.randint(0, len(doc.spec.layers)))


def random_edit(doc: DesignDocument, rng: random.Random) -> None:
    every = doc.spec.all_layers()
    choice = rng.randrange(11)
    if choice == 0 or not every:
        doc.add_layers(random_place(doc, rng), [LayerSpec(rng.choice(SIMPLE_KINDS)) for _ in range(rng.randint(1, 3))])
    elif choice == 1:
        doc.add_kind(random_place(doc, rng), rng.choice(list(PRESETS)))
    elif choice == 2:
        doc.delete_layers([layer.id for layer in rng.sample(every, rng.randint(1, min(3, len(every))))])
    elif choice == 3:
        try:
            doc.move_layers([layer.id for layer in rng.sample(every, rng.randint(1, min(3, len(every))))],
                            random_place(doc, rng))
        except SpecError:  # a group into itself
            pass
    elif choice == 4 and doc.undo_stack.canUndo():
        doc.undo_stack.undo()
    elif choice == 5 and doc.undo_stack.canRedo():
        doc.undo_stack.redo()
    elif choice == 6:
        layer = rng.choice(every)
        place = doc.spec.place(layer.id)
        siblings = doc.spec.contents(place.parent, place.slot)
        try:
            doc.group_layers([s.id for s in rng.sample(siblings, rng.randint(1, len(siblings)))],
                             rng.choice(("sequence", "residual")))
        except SpecError:
            pass
    elif choice == 7:
        groups = [layer for layer in every if layer.is_group]
        if groups:
            doc.ungroup(rng.choice(groups).id)
    elif choice == 8:
        groups = [layer for layer in every if layer.is_group]
        if groups:  # a mode or shortcut change adds or removes a Shortcut row
            chosen = rng.choice(groups)
            name, value = rng.choice([("mode", "residual"), ("mode", "branches"), ("mode", "sequence"),
                                      ("shortcut", "custom"), ("shortcut", "auto")])
            doc.edit_param(chosen.id, name, value)
    elif choice == 9:
        doc.edit_input_shape(rng.choice([(1, 28, 28), (3, 32, 32), (784,), (10, 16)]))
    else:
        layer = rng.choice(every)
        ints = [p for p in layer.layer_kind.params if p.type == "int" and p.name != "repeat"]
        if ints:
            p = rng.choice(ints)
            doc.edit_param(layer.id, p.name, rng.randint(int(p.min), min(int(p.max), 64)))


@pytest.mark.parametrize("seed", range(4))
def test_random_tree_edits_keep_the_model_in_step_with_the_document(qtmodeltester, seed):
    inner = group("residual", [LayerSpec("Conv2d", {"out_channels": 4, "padding": 1}), LayerSpec("ReLU")],
                  shortcut="custom", shortcut_layers=[LayerSpec("Identity")])
    doc = DesignDocument(NetworkSpec((1, 28, 28), (LayerSpec("Conv2d", {"out_channels": 4}), inner,
                                                   group("sequence", [LayerSpec("ReLU")]), LayerSpec("Flatten"),
                                                   LayerSpec("Linear", {"out_features": 10}))))
    model = LayerStackModel(doc)
    qtmodeltester.check(model, force_py=True)  # Qt's own model invariants, checked on every signal
    rng = random.Random(seed)
    for _ in range(50):
        watched = {key: QPersistentModelIndex(model.index_of(key)) for key in keys(model_tree(model))}
        random_edit(doc, rng)
        shown = model_tree(model)
        assert shown == [(INPUT_ID, [])] + spec_tree(doc.spec.layers)
        for key, persistent in watched.items():  # persistent indexes (selection, expansion) follow their row
            if key in keys(shown):
                assert persistent.isValid() and model.key(QModelIndex(persistent)) == key
            else:
                assert not persistent.isValid()
        for row in doc.analysis.all_rows:  # every layer row shows its own analysis, wherever it sits
            index = model.index_of(row.layer_id)
            assert model.data(index.siblingAtColumn(COL_LAYER)) == row.label
            branch = doc.spec.place(row.layer_id).parent
            in_branches = branch is not None and doc.spec.layer(branch).params["mode"] == "branches"
            number = model.data(index.siblingAtColumn(COL_INDEX))
            assert number == (f"branch {row.index + 1}" if in_branches else str(row.index))
    doc.deleteLater()
