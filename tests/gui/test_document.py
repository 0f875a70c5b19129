"""DesignDocument and its undo commands, without a window."""
from __future__ import annotations

import json

import pytest

from engine.errors import SpecError
from engine.shapes import analyze
from engine.spec import LayerSpec, NetworkSpec
from gui.document import DesignDocument, DesignFile
from tests.gui.helpers import spec_of


@pytest.fixture
def doc(qapp):
    spec = spec_of((1, 28, 28), ("Conv2d", {"out_channels": 6, "kernel_size": 5, "padding": 2}), "ReLU",
                   "MaxPool2d", "Flatten", ("Linear", {"out_features": 10}))
    document = DesignDocument(spec)
    yield document
    document.deleteLater()


def layer_ids(doc):
    return [layer.id for layer in doc.spec.layers]


def test_analysis_is_cached_once_per_change(doc, qtbot):
    first = doc.analysis
    assert doc.analysis is first
    conv = doc.spec.layers[0].id
    with qtbot.waitSignal(doc.changed):
        doc.edit_param(conv, "kernel_size", 3)
    assert doc.analysis is not first
    assert doc.analysis == analyze(doc.spec)
    assert doc.analysis.row(conv).shape == (6, 30, 30)


def test_set_param_undo_redo_and_text(doc):
    conv = doc.spec.layers[0].id
    doc.edit_param(conv, "kernel_size", 3)
    assert doc.undo_stack.undoText() == "Set kernel_size"
    assert doc.modified
    doc.undo_stack.undo()
    assert doc.spec.layer(conv).params["kernel_size"] == 5
    assert not doc.modified
    doc.undo_stack.redo()
    assert doc.spec.layer(conv).params["kernel_size"] == 3


def test_quick_changes_of_one_value_merge_into_one_step(doc):
    conv = doc.spec.layers[0].id
    for value in (7, 8, 9, 10):
        doc.edit_param(conv, "out_channels", value)
    doc.edit_param(conv, "stride", 2)  # another parameter: its own step
    assert doc.undo_stack.count() == 2
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert doc.spec.layer(conv).params["out_channels"] == 6
    assert not doc.modified


def test_a_burst_that_returns_to_the_start_leaves_no_step(doc):
    conv = doc.spec.layers[0].id
    doc.edit_param(conv, "out_channels", 7)
    doc.edit_param(conv, "out_channels", 6)
    assert doc.undo_stack.count() == 0
    assert not doc.modified


def test_insert_remove_and_move_undo(doc):
    before = layer_ids(doc)
    new = doc.add_layers(1, [LayerSpec("BatchNorm2d")])
    assert layer_ids(doc) == before[:1] + new + before[1:]
    assert doc.undo_stack.undoText() == "Add BatchNorm2d"
    doc.delete_layers([before[0], before[2]])
    assert layer_ids(doc) == new + [before[1]] + before[3:]
    assert doc.undo_stack.undoText() == "Delete 2 layers"
    doc.undo_stack.undo()
    assert layer_ids(doc) == before[:1] + new + before[1:]
    doc.move_layers([before[4]], 0)
    assert layer_ids(doc)[0] == before[4]
    assert doc.undo_stack.undoText() == "Move Linear"
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert layer_ids(doc) == before


def test_move_several_layers_to_a_drop_position(doc):
    a, b, c, d, e = layer_ids(doc)
    doc.move_layers([a, c], 4)  # dropped between d and e
    assert layer_ids(doc) == [b, d, a, c, e]
    doc.move_layers([e], 0)
    assert layer_ids(doc) == [e, b, d, a, c]
    assert doc.shift_layers([b], +1)
    assert layer_ids(doc) == [e, d, b, a, c]
    assert not doc.shift_layers([e], -1)


def test_read_only_refuses_edits(doc, qtbot):
    conv = doc.spec.layers[0].id
    with qtbot.waitSignal(doc.readOnlyChanged) as blocker:
        doc.read_only = True
    assert blocker.args == [True]
    assert not doc.edit_param(conv, "kernel_size", 3)
    assert doc.add_kind(0, "ReLU") == []
    assert not doc.delete_layers([conv])
    assert doc.spec.layer(conv).params["kernel_size"] == 5


def test_extras_are_undoable_and_saved(doc, tmp_path, qtbot):
    with qtbot.waitSignal(doc.extrasChanged) as blocker:
        doc.set_extra("training", {"epochs": 3})
    assert blocker.args == ["training"]
    assert doc.modified
    path = tmp_path / "net.json"
    doc.save(path)
    assert not doc.modified
    data = json.loads(path.read_text())
    assert data["training"] == {"epochs": 3}
    other = DesignDocument()
    other.open(path)
    assert other.spec == doc.spec
    assert other.extras == {"training": {"epochs": 3}}
    assert other.path == path and not other.modified


def test_bad_files_raise_spec_error_and_keep_the_design(doc, tmp_path):
    before = doc.spec
    for name, text in (("junk.json", "{not json"), ("kind.json", json.dumps(
            {**NetworkSpec((3,)).to_dict(), "layers": [{"kind": "Nope"}]})), ("extra.json", json.dumps(
            {**NetworkSpec((3,)).to_dict(), "training": [1, 2]}))):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(SpecError):
            doc.open(path)
        assert doc.spec is before and doc.path is None


def test_template_carries_its_name_and_data_section():
    design = DesignFile.template("lenet")
    assert design.name == "lenet"
    assert design.extras["data"]["source"] == "mnist-sample"
    assert [layer.kind for layer in design.spec.layers][:2] == ["Conv2d", "Sigmoid"]
