"""Small builders shared by the window tests."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt

from engine.spec import LayerSpec, NetworkSpec
from gui.document import DesignFile
from gui.stack_model import COL_LAYER, COL_NOTES, COL_SHAPE


def spec_of(input_shape, *layers) -> NetworkSpec:
    """A NetworkSpec from (kind, params) pairs or kind names."""
    made = [LayerSpec(item) if isinstance(item, str) else LayerSpec(item[0], item[1]) for item in layers]
    return NetworkSpec(tuple(input_shape), tuple(made))


def load(window, spec: NetworkSpec, name: str = "test") -> None:
    window.load_design(DesignFile(spec, name))


def kinds(window) -> list[str]:
    return [layer.kind for layer in window.document.spec.layers]


def ids(window) -> list[str]:
    return [layer.id for layer in window.document.spec.layers]


def cell(window, layer_index: int, column: int, role=Qt.ItemDataRole.DisplayRole):
    """What the stack view shows for layer ``layer_index`` (0-based) in ``column``."""
    model = window.stack_view.stack_model
    return model.data(model.index(layer_index + 1, column, QModelIndex()), role)


def shapes(window) -> list[str]:
    return [cell(window, i, COL_SHAPE) for i in range(len(window.document.spec.layers))]


def notes(window) -> list[str]:
    return [cell(window, i, COL_NOTES) for i in range(len(window.document.spec.layers))]


def labels(window) -> list[str]:
    return [cell(window, i, COL_LAYER) for i in range(len(window.document.spec.layers))]
