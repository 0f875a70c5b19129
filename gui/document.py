"""The open design: one NetworkSpec, its file, its undo stack and its cached analysis.

Views never keep a copy of the design: they listen to ``changed`` and redraw
from ``spec`` and ``analysis``. Every user edit is a QUndoCommand (see
gui/commands.py) whose redo/undo call the ``apply_*`` methods here, so
"modified" is simply ``not undo_stack.isClean()``.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from engine import tree
from engine.errors import LayerError, SpecError
from engine.files import check_output_path, write_text_atomically
from engine.groups import PRESETS, auto_shortcut, group
from engine.layer_init import TensorInit
from engine.layers import KINDS
from engine.shapes import Analysis, analyze
from engine.spec import DESIGN_SUFFIXES, MAX_NAME, LayerSpec, NetworkSpec, check_input_shape, new_id
from engine.templates import load_design
from engine.tree import Place

EXTRA_KEYS = ("training", "data")
DEFAULT_INPUT_SHAPE = (1, 28, 28)


class DesignFile:
    """What a design file holds: the network plus its name, description and extras."""

    def __init__(self, spec: NetworkSpec, name: str = "", description: str = "", extras: dict | None = None):
        self.spec = spec
        self.name = name
        self.description = description
        self.extras = dict(extras or {})

    @classmethod
    def from_dict(cls, data, spec: NetworkSpec | None = None) -> DesignFile:
        """Parse a design file's top-level object (``spec`` if already parsed); SpecError on anything malformed."""
        spec = spec if spec is not None else NetworkSpec.from_dict(data)  # also checks 'name' and 'description'
        name, description = data.get("name", ""), data.get("description", "")
        extras = {}
        for key in EXTRA_KEYS:
            if key in data:
                if not isinstance(data[key], dict):
                    raise SpecError(f"field {key!r} must be an object of settings")
                extras[key] = data[key]
        return cls(spec, name, description, extras)

    @classmethod
    def read(cls, path: str | Path) -> DesignFile:
        """Read a JSON design file; SpecError with a sentence on any problem."""
        spec, data = load_design(Path(path))
        return cls.from_dict(data, spec)

    @classmethod
    def template(cls, name: str) -> DesignFile:
        """A bundled template (engine.templates) as an unsaved design."""
        spec, data = load_design(name)
        return cls.from_dict(data, spec)

    def write(self, path: str | Path) -> Path:
        """Write the design file as JSON (checked target, atomic replace); returns the path written."""
        target = check_output_path(Path(path), DESIGN_SUFFIXES, "design", SpecError)
        write_text_atomically(target, json.dumps(self.to_dict(), indent=2) + "\n", "design", SpecError)
        return target

    def to_dict(self) -> dict:
        data = self.spec.to_dict()
        if self.name:
            data["name"] = self.name
        if self.description:
            data["description"] = self.description
        for key in EXTRA_KEYS:
            if key in self.extras:
                data[key] = self.extras[key]
        return data


class DesignDocument(QObject):
    """The design being edited in one window.

    Signals: ``changed`` after every spec change (analysis already updated),
    ``readOnlyChanged(bool)``, ``extrasChanged(str key)`` (also emitted for
    every extra key when a file is loaded), ``fileChanged`` when the path or
    name changes (load, save as).
    """

    changed = Signal()
    readOnlyChanged = Signal(bool)
    extrasChanged = Signal(str)
    fileChanged = Signal()

    def __init__(self, spec: NetworkSpec | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self._spec = spec or NetworkSpec(DEFAULT_INPUT_SHAPE)
        self._analysis = analyze(self._spec)
        self._read_only = False
        self.path: Path | None = None
        self.name = ""
        self.description = ""
        self.extras: dict = {}
        self.loads = 0  # how many designs New / Open / a template put here: tells an edit from another design
        self.undo_stack = QUndoStack(self)
        # QUndoStack clears itself (and emits) when destroyed; by then its listeners may be gone.
        stack = self.undo_stack
        self.destroyed.connect(lambda *_: stack.blockSignals(True))

    # ------------------------------------------------------------------ state
    @property
    def spec(self) -> NetworkSpec:
        return self._spec

    @property
    def analysis(self) -> Analysis:
        """engine.shapes.analyze of the current spec, computed once per change."""
        return self._analysis

    @property
    def modified(self) -> bool:
        return not self.undo_stack.isClean()

    @property
    def read_only(self) -> bool:
        return self._read_only

    @read_only.setter
    def read_only(self, value: bool) -> None:
        if bool(value) != self._read_only:
            self._read_only = bool(value)
            self.readOnlyChanged.emit(self._read_only)

    def display_name(self) -> str:
        """File name when saved, else the design's name, else 'Untitled'."""
        if self.path is not None:
            return self.path.name
        return self.name or "Untitled"

    # ------------------------------------------------------------------ primitive changes (called by undo commands)
    def _set_spec(self, spec: NetworkSpec) -> None:
        analysis = analyze(spec)  # first, so a failure leaves spec and analysis in step
        self._spec, self._analysis = spec, analysis
        self.changed.emit()

    def apply_param(self, layer_id: str, name: str, value) -> None:
        self._set_spec(self._spec.with_param(layer_id, name, value))

    def apply_frozen(self, layer_id: str, frozen: bool) -> None:
        self._set_spec(self._spec.with_layer(replace(self._spec.layer(layer_id), frozen=frozen)))

    def apply_name(self, layer_id: str, name: str) -> None:
        self._set_spec(self._spec.with_layer(replace(self._spec.layer(layer_id), name=name)))

    def apply_layer(self, layer: LayerSpec) -> None:
        """Replace the layer with ``layer.id`` (at any depth) by ``layer``, with what it holds."""
        self._set_spec(self._spec.with_layer(layer))

    def apply_init(self, layer_id: str, tensor: str, init: TensorInit) -> None:
        self._set_spec(self._spec.with_init(layer_id, tensor, init))

    def apply_input_shape(self, shape) -> None:
        self._set_spec(self._spec.with_input_shape(shape))

    def apply_layers(self, layers) -> None:
        """Replace the layer tree (an add, delete, move, group or ungroup, or its undo)."""
        self._set_spec(replace(self._spec, layers=tuple(layers)))

    def apply_spec(self, spec: NetworkSpec) -> None:
        """Replace the whole design (a search's best trial, or its undo)."""
        self._set_spec(spec)

    def apply_extra(self, key: str, value: dict | None) -> None:
        if value is None:
            self.extras.pop(key, None)
        else:
            self.extras[key] = value
        self.extrasChanged.emit(key)

    # ------------------------------------------------------------------ user edits (undoable)
    def _push(self, command) -> bool:
        if self._read_only:
            return False
        self.undo_stack.push(command)
        return True

    def edit_param(self, layer_id: str, name: str, value) -> bool:
        from gui.commands import ReplaceLayer, SetParam

        layer = self._spec.layer(layer_id)
        old = layer.params[name]
        if old == value:
            return False
        if layer.is_group and name == "shortcut" and value == "custom" and not layer.shortcut:
            # start from the layers auto used, in the same undo step: the design keeps working
            start = replace(layer.with_params(shortcut=value), shortcut=self._auto_shortcut(layer))
            return self._push(ReplaceLayer(self, layer, start, "Set shortcut to custom"))
        return self._push(SetParam(self, layer_id, name, old, value))

    def _auto_shortcut(self, layer: LayerSpec) -> tuple[LayerSpec, ...]:
        """The layers (fresh ids) a residual group's automatic shortcut uses for its analysed input and body
        output; none (the identity) when those are unknown or no projection fits."""
        row = self._analysis.row(layer.id)
        body = row.children[-1].shape if row.children else row.in_shape
        if layer.params["mode"] != "residual" or row.in_shape is None or body is None:
            return ()
        try:
            return auto_shortcut(row.in_shape, body, layer.params["shortcut"] == "auto+bn", new_id())[0]
        except LayerError:
            return ()

    def edit_name(self, layer_id: str, name: str) -> bool:
        """Rename a group (at most engine.spec.MAX_NAME characters; "" for none); typing is one undo step."""
        from gui.commands import SetName

        layer = self._spec.layer(layer_id)
        if not layer.is_group or layer.name == name or len(name) > MAX_NAME:
            return False
        return self._push(SetName(self, layer_id, layer.name, name))

    def edit_frozen(self, layer_id: str, frozen: bool) -> bool:
        from gui.commands import SetFrozen

        if self._spec.layer(layer_id).frozen == frozen:
            return False
        return self._push(SetFrozen(self, layer_id, frozen))

    def edit_init(self, layer_id: str, tensor: str, init: TensorInit) -> bool:
        """Choose how the layer's ``tensor`` (weight or bias) starts; a quick run of changes is one undo step."""
        from gui.commands import SetInit

        old = getattr(self._spec.layer(layer_id).init, tensor)
        if old == init:
            return False
        return self._push(SetInit(self, layer_id, tensor, old, init))

    def edit_input_shape(self, shape) -> bool:
        """Change the input shape; False (no change) when it is the same or outside a design file's bounds."""
        from gui.commands import SetInputShape

        shape = tuple(shape)
        if shape == self._spec.input_shape:
            return False
        try:
            check_input_shape(shape)
        except SpecError:
            return False
        return self._push(SetInputShape(self, self._spec.input_shape, shape))

    def _change_layers(self, layers: tuple[LayerSpec, ...], text: str) -> bool:
        """Push one undoable change of the layer tree; False when read-only or nothing changes."""
        from gui.commands import ChangeLayers

        layers = tuple(layers)
        return layers != self._spec.layers and self._push(ChangeLayers(self, self._spec.layers, layers, text))

    def place(self, where: Place | int) -> Place | None:
        """``where`` as a Place (an int is a top-level index), or None when it names no group of this design."""
        if not isinstance(where, Place):
            return Place(None, "layers", max(0, min(int(where), len(self._spec.layers))))
        if where.parent is None:
            return where
        try:
            parent = self._spec.layer(where.parent)
        except KeyError:
            return None
        return where if parent.is_group and where.slot in tree.SLOTS else None

    def add_layers(self, where: Place | int, layers, verb: str = "Add") -> list[str]:
        """Insert copies of ``layers`` at ``where`` (a Place, or a top-level index); every copy, and every layer
        inside a copied group, gets a fresh id. Returns the new top ids."""
        fresh = tuple(renewed(layer) for layer in layers)
        place = self.place(where)
        if not fresh or place is None:
            return []
        spec = self._spec.inserted_at(place, *fresh)
        return [layer.id for layer in fresh] if self._change_layers(spec.layers, f"{verb} {what(fresh)}") else []

    def add_kind(self, where: Place | int, kind: str) -> list[str]:
        """Add a layer of ``kind``, or a prefilled group named by an engine.groups preset ("VGG block")."""
        preset = PRESETS.get(kind)
        if preset is not None:
            return self.add_layers(where, [preset.make()])
        return self.add_layers(where, [LayerSpec(kind)]) if kind in KINDS else []

    def delete_layers(self, layer_ids) -> bool:
        """Delete these layers at any depth (a group with every layer inside it)."""
        ids = tree.outermost(self._spec.layers, layer_ids)
        if not ids:
            return False
        return self._change_layers(self._spec.removed(*ids).layers,
                                   f"Delete {what([self._spec.layer(i) for i in ids])}")

    def move_layers(self, layer_ids, where: Place | int) -> bool:
        """Move the given layers, one after another in design order (a group with its layers), to ``where``.

        ``where`` counts positions before the move (as a drop position does), so ``move_layers([a], 0)`` puts
        ``a`` first. SpecError when ``where`` lies inside a moved group."""
        ids = tree.outermost(self._spec.layers, layer_ids)
        place = self.place(where)
        if not ids or place is None:
            return False
        try:
            spec = self._spec.moved_to(place, *ids)
        except ValueError:
            raise SpecError("A group cannot move into itself: drop it outside its own layers") from None
        return self._change_layers(spec.layers, f"Move {what([self._spec.layer(i) for i in ids])}")

    def shift_layers(self, layer_ids, step: int) -> bool:
        """Move the given layers one place up (step -1) or down (+1) in their group (they must share one)."""
        ids = tree.outermost(self._spec.layers, layer_ids)
        places = [self._spec.place(i) for i in ids]
        if not places or len({(p.parent, p.slot) for p in places}) > 1:
            return False
        first, last = places[0], places[-1]
        size = len(self._spec.contents(first.parent, first.slot))
        if step < 0:
            return first.index > 0 and self.move_layers(ids, first._replace(index=first.index - 1))
        return last.index < size - 1 and self.move_layers(ids, last._replace(index=last.index + 2))

    def group_layers(self, layer_ids, mode: str = "sequence") -> str:
        """Wrap these layers (they must share one group, or the top level) in a new group of ``mode`` at the
        first one's place; returns its id. SpecError with a sentence when they cannot be wrapped."""
        ids = tree.outermost(self._spec.layers, layer_ids)
        if not ids:
            raise SpecError("Select the layers to group first")
        places = [self._spec.place(i) for i in ids]
        if len({(p.parent, p.slot) for p in places}) > 1:
            raise SpecError("The selected layers sit in different groups: select layers of one group "
                            "(or of the top level) to group them")
        parent, slot = places[0].parent, places[0].slot
        items = self._spec.contents(parent, slot)
        chosen = [items[p.index] for p in places]
        wrapper = group(mode, chosen)
        rest = [layer for layer in items if layer.id not in set(ids)]
        new = rest[: places[0].index] + [wrapper] + rest[places[0].index:]
        verb = "Make residual of" if mode == "residual" else "Group"
        if not self._change_layers(self._spec.with_contents(parent, slot, new).layers, f"{verb} {what(chosen)}"):
            raise SpecError("The design is read-only while training runs")
        return wrapper.id

    def ungroup(self, group_id: str) -> list[str]:
        """Put a group's layers (its branches, for a branches group) in its place; returns their ids.
        SpecError when ``group_id`` is not a group."""
        layer = self._spec.layer(group_id)
        if not layer.is_group:
            raise SpecError(f"{layer.kind} is not a group: select a group to ungroup it")
        place = self._spec.place(group_id)
        items = self._spec.contents(place.parent, place.slot)
        new = items[: place.index] + layer.layers + items[place.index + 1:]
        if not self._change_layers(self._spec.with_contents(place.parent, place.slot, new).layers,
                                   f"Ungroup {what([layer])}"):
            raise SpecError("The design is read-only while training runs")
        return [child.id for child in layer.layers]

    def set_extra(self, key: str, value: dict | None, text: str = "") -> None:
        """Store a file section another module owns (e.g. "training", "data"); undoable, marks modified.
        With ``text`` the change is an undo step of its own under that name (e.g. "Use learning rate 0.003"),
        never merged with the quick edits of the form around it."""
        from gui.commands import SetExtra

        if self.extras.get(key) == value:
            return
        self.undo_stack.push(SetExtra(self, key, self.extras.get(key), value, text))

    def replace_design(self, spec: NetworkSpec, extras: dict, text: str) -> bool:
        """Set the design and the settings sections in ``extras`` (e.g. {"training": {...}}) as one undo step
        named ``text``; False when read-only or nothing changes."""
        from gui.commands import ReplaceDesign

        old_extras = {key: self.extras.get(key) for key in extras}
        if spec == self._spec and old_extras == extras:
            return False
        return self._push(ReplaceDesign(self, self._spec, spec, old_extras, dict(extras), text))

    # ------------------------------------------------------------------ files
    def load(self, design: DesignFile, path: str | Path | None = None) -> None:
        """Replace the whole design (New / Open / template); clears undo history."""
        self.undo_stack.clear()
        self.loads += 1
        self.path = Path(path) if path is not None else None
        self.name = design.name
        self.description = design.description
        self.extras = dict(design.extras)
        self._set_spec(design.spec)
        self.undo_stack.setClean()
        for key in EXTRA_KEYS:
            self.extrasChanged.emit(key)
        self.fileChanged.emit()

    def open(self, path: str | Path) -> None:
        """Load a design file; on SpecError the current design is kept unchanged."""
        self.load(DesignFile.read(path), path)

    def design_file(self) -> DesignFile:
        return DesignFile(self._spec, self.name, self.description, self.extras)

    def save(self, path: str | Path | None = None) -> None:
        """Write the design (and its extras) as JSON, then mark it clean."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("save() needs a path for a design that was never saved")
        target = self.design_file().write(target)
        renamed = target != self.path
        self.path = target
        self.undo_stack.setClean()
        if renamed:
            self.fileChanged.emit()


def renewed(layer: LayerSpec) -> LayerSpec:
    """A copy of ``layer`` with a fresh id for it and for every layer inside it (a pasted group is new)."""
    return tree.mapped((layer,), lambda inner: replace(inner, id=new_id()))[0]


def what(layers) -> str:
    """How an undo step names the layers it changes: "Conv2d", "Residual block", "residual group", "3 layers"."""
    if len(layers) != 1:
        return f"{len(layers)} layers"
    layer = layers[0]
    return (layer.name or f"{layer.params.get('mode', 'sequence')} group") if layer.is_group else layer.kind
