"""The stack model stays a faithful, well-behaved Qt model through any series of edits."""
from __future__ import annotations

import random

import pytest
from PySide6.QtCore import QModelIndex, QPersistentModelIndex

from engine.layers import KINDS
from engine.spec import LayerSpec
from gui.document import DesignDocument
from gui.stack_model import COL_LAYER, LayerStackModel
from tests.gui.helpers import spec_of

SIMPLE_KINDS = [name for name, kind in KINDS.items() if not kind.is_block]


def model_ids(model) -> list[str]:
    return [model.layer_id(model.index(row, 0)) for row in range(1, model.rowCount())]


def random_edit(doc: DesignDocument, rng: random.Random) -> None:
    layers = doc.spec.layers
    choice = rng.randrange(7)
    if choice == 0 or not layers:
        doc.add_layers(rng.randint(0, len(layers)), [LayerSpec(rng.choice(SIMPLE_KINDS))
                                                    for _ in range(rng.randint(1, 3))])
    elif choice == 1:
        doc.delete_layers(rng.sample([layer.id for layer in layers], rng.randint(1, min(3, len(layers)))))
    elif choice == 2:
        doc.move_layers(rng.sample([layer.id for layer in layers], rng.randint(1, min(3, len(layers)))),
                        rng.randint(0, len(layers)))
    elif choice == 3 and doc.undo_stack.canUndo():
        doc.undo_stack.undo()
    elif choice == 4 and doc.undo_stack.canRedo():
        doc.undo_stack.redo()
    elif choice == 5:
        doc.edit_input_shape(rng.choice([(1, 28, 28), (3, 32, 32), (784,), (10, 16)]))
    else:
        layer = rng.choice(layers)
        ints = [p for p in layer.layer_kind.params if p.type == "int"]
        if ints:
            p = rng.choice(ints)
            doc.edit_param(layer.id, p.name, rng.randint(int(p.min), min(int(p.max), 64)))


@pytest.mark.parametrize("seed", range(4))
def test_random_edits_keep_the_model_in_step_with_the_document(qtmodeltester, seed):
    doc = DesignDocument(spec_of((1, 28, 28), ("Conv2d", {"out_channels": 4}), "ReLU", "Flatten",
                                 ("Linear", {"out_features": 10})))
    model = LayerStackModel(doc)
    qtmodeltester.check(model, force_py=True)  # Qt's own model invariants, checked on every signal
    rng = random.Random(seed)
    for _ in range(60):
        watched = {layer.id: QPersistentModelIndex(model.index_of(layer.id)) for layer in doc.spec.layers}
        random_edit(doc, rng)
        assert model_ids(model) == [layer.id for layer in doc.spec.layers]
        for layer_id, persistent in watched.items():  # persistent indexes (selection) follow their layer
            if layer_id in model_ids(model):
                assert persistent.isValid() and model.layer_id(QModelIndex(persistent)) == layer_id
            else:
                assert not persistent.isValid()
        labels = [model.data(model.index(row, COL_LAYER)) for row in range(1, model.rowCount())]
        assert labels == [row.label for row in doc.analysis.rows]
    doc.deleteLater()
