"""Undo commands: each edit of the design, reversible, calling DesignDocument.apply_*.

A burst of changes to one value (spin-box steps, typing "120") merges into
one undo step: commands with the same merge key made within
``MERGE_WINDOW_S`` of each other become one.
"""
from __future__ import annotations

import time

from PySide6.QtGui import QUndoCommand

MERGE_WINDOW_S = 1.5
SET_PARAM_ID, SET_INPUT_ID, SET_EXTRA_ID, SET_INIT_ID, SET_NAME_ID = 1001, 1002, 1003, 1004, 1005


class _MergingSet(QUndoCommand):
    """Sets one value from ``old`` to ``new``; merges with a quick follow-up on the same target."""

    merge_id = -1

    def __init__(self, doc, target, old, new, text: str):
        super().__init__(text)
        self.doc, self.target, self.old, self.new = doc, target, old, new
        self.stamp = time.monotonic()

    def id(self) -> int:  # Qt's name
        return self.merge_id

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, type(self)) or other.target != self.target:
            return False
        if other.stamp - self.stamp > MERGE_WINDOW_S:
            return False
        self.new, self.stamp = other.new, other.stamp
        self.setObsolete(self.new == self.old)
        return True

    def redo(self) -> None:
        self.apply(self.new)

    def undo(self) -> None:
        self.apply(self.old)

    def apply(self, value) -> None:
        raise NotImplementedError


class SetParam(_MergingSet):
    merge_id = SET_PARAM_ID

    def __init__(self, doc, layer_id: str, name: str, old, new):
        super().__init__(doc, (layer_id, name), old, new, f"Set {name}")

    def apply(self, value) -> None:
        layer_id, name = self.target
        self.doc.apply_param(layer_id, name, value)


class SetName(_MergingSet):
    """A group's name; typing a name is one undo step."""

    merge_id = SET_NAME_ID

    def __init__(self, doc, layer_id: str, old: str, new: str):
        super().__init__(doc, layer_id, old, new, "Rename group")

    def apply(self, value) -> None:
        self.doc.apply_name(self.target, value)


class ReplaceLayer(QUndoCommand):
    """One layer (a group with what it holds) replaced by an edited copy with the same id, as one undo step:
    e.g. a group's shortcut switched to custom together with the layers it starts from."""

    def __init__(self, doc, old, new, text: str):
        super().__init__(text)
        self.doc, self.old, self.new = doc, old, new

    def redo(self) -> None:
        self.doc.apply_layer(self.new)

    def undo(self) -> None:
        self.doc.apply_layer(self.old)


class SetInit(_MergingSet):
    """How one layer's weight or bias starts (an engine.layer_init.TensorInit). Steps of one method's number merge;
    a change of method is an undo step of its own."""

    merge_id = SET_INIT_ID

    def __init__(self, doc, layer_id: str, tensor: str, old, new):
        super().__init__(doc, (layer_id, tensor, old.method, new.method), old, new, f"Set {tensor} initialisation")

    def apply(self, value) -> None:
        layer_id, tensor, _old_method, _new_method = self.target
        self.doc.apply_init(layer_id, tensor, value)


class SetInputShape(_MergingSet):
    merge_id = SET_INPUT_ID

    def __init__(self, doc, old, new):
        super().__init__(doc, "input", tuple(old), tuple(new), "Set input shape")

    def apply(self, value) -> None:
        self.doc.apply_input_shape(value)


class SetExtra(_MergingSet):
    merge_id = SET_EXTRA_ID

    def __init__(self, doc, key: str, old, new, text: str = ""):
        super().__init__(doc, key, old, new, text or f"Change {key} settings")
        if text:  # a named step stands alone: nothing merges into it, it merges into nothing
            self.merge_id = -1

    def apply(self, value) -> None:
        self.doc.apply_extra(self.target, value)


class SetFrozen(QUndoCommand):
    def __init__(self, doc, layer_id: str, frozen: bool):
        super().__init__("Freeze layer" if frozen else "Unfreeze layer")
        self.doc, self.layer_id, self.frozen = doc, layer_id, frozen

    def redo(self) -> None:
        self.doc.apply_frozen(self.layer_id, self.frozen)

    def undo(self) -> None:
        self.doc.apply_frozen(self.layer_id, not self.frozen)


class ChangeLayers(QUndoCommand):
    """A change of the layer tree (add, delete, move, group, ungroup): the layers before and after, kept whole
    (frozen, so the two share every layer the edit did not touch)."""

    def __init__(self, doc, old_layers: tuple, new_layers: tuple, text: str):
        super().__init__(text)
        self.doc, self.old_layers, self.new_layers = doc, old_layers, new_layers

    def redo(self) -> None:
        self.doc.apply_layers(self.new_layers)

    def undo(self) -> None:
        self.doc.apply_layers(self.old_layers)


class ReplaceDesign(QUndoCommand):
    """The whole design (input shape and layer tree) and some of its settings sections swapped at once, as one
    undo step: e.g. "Apply best" of a search, which sets a trial's layers and its training settings together.
    ``old_extras``/``new_extras`` map a section name ("training") to its value (None: absent)."""

    def __init__(self, doc, old_spec, new_spec, old_extras: dict, new_extras: dict, text: str):
        super().__init__(text)
        self.doc, self.old_spec, self.new_spec = doc, old_spec, new_spec
        self.old_extras, self.new_extras = old_extras, new_extras

    def redo(self) -> None:
        self._apply(self.new_spec, self.new_extras)

    def undo(self) -> None:
        self._apply(self.old_spec, self.old_extras)

    def _apply(self, spec, extras: dict) -> None:
        for key, value in extras.items():
            self.doc.apply_extra(key, value)
        self.doc.apply_spec(spec)
