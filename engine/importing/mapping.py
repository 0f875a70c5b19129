"""The one mapping from PyTorch modules to the design's layers, which every importer uses.

``layers_from_modules`` reads a tree of ``nn.Module`` instances (built on the meta device, so no weights exist)
into ``LayerSpec``s: a registry kind from the module's exact class, its parameters from the attributes PyTorch
keeps under the constructor's argument names (``engine.export.constructor_arguments``, the reader the exported
script is written with), ``nn.Sequential`` as a sequence group, ``engine.blocks.Residual`` and ``Branches`` as
residual and branches groups. A constructor argument the kind has no parameter for must keep its default, or the
module is left out with a sentence saying which argument; the input widths (in_features, in_channels, ...) are
not copied but checked against the analysed shapes once the design is whole (``finish``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import torch
from torch import nn

from engine import blocks, shape_modules
from engine.errors import LayerError, SpecError
from engine.export import MISSING, constructor_arguments
from engine.groups import auto_shortcut, group
from engine.layers import KINDS, LayerKind, build_layer
from engine.shapes import analyze, format_shape
from engine.spec import MAX_NAME, LayerSpec, NetworkSpec, coerce_params
from engine.tree import mapped

# Constructor arguments that are the input's width: the design takes them from the shape before the layer.
INPUT_ARGUMENTS = frozenset({"in_features", "in_channels", "num_features", "num_channels", "input_size",
                             "normalized_shape"})
# Arguments that change how a layer runs but not what it computes: dropped without a word.
SAME_RESULT = frozenset({"inplace"})
# Arguments the design has no setting for, but without which the layer is nearly the same: imported without them,
# noted where the output's shape then differs from PyTorch's (finish).
NEAREST = frozenset({"ceil_mode"})
# A kind parameter that PyTorch keeps under another name, or only as something to derive it from.
DERIVED: dict[tuple[str, str], Callable[[Any], object]] = {
    ("Unflatten", "sizes"): lambda m: tuple(m.unflattened_size),
    ("LayerNorm", "normalized_dims"): lambda m: len(m.normalized_shape),
    ("PReLU", "num_parameters"): lambda m: "single" if m.num_parameters == 1 else "per_channel",
}
DERIVED_ARGUMENTS = {"unflattened_size", "num_parameters"}  # read through DERIVED (num_parameters: checked later)
CHECKED = INPUT_ARGUMENTS | {"num_parameters"}  # compared with what the analysed shapes give (finish)
# torch.nn.functional (and torch.*) calls in a forward that are a layer: function name -> nn class name; the
# arguments after the input are bound to the class's constructor.
FUNCTIONAL = {"relu": "ReLU", "relu6": "ReLU6", "elu": "ELU", "leaky_relu": "LeakyReLU", "gelu": "GELU",
              "silu": "SiLU", "hardswish": "Hardswish", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax",
              "log_softmax": "LogSoftmax", "flatten": "Flatten", "max_pool1d": "MaxPool1d", "max_pool2d": "MaxPool2d",
              "avg_pool1d": "AvgPool1d", "avg_pool2d": "AvgPool2d", "adaptive_avg_pool2d": "AdaptiveAvgPool2d",
              "adaptive_max_pool2d": "AdaptiveMaxPool2d"}
ACTIVATIONS = {nn.ReLU: "ReLU", nn.Identity: "none"}  # a residual group's activation after the sum


@dataclass(frozen=True)
class Note:
    """Something an import left out or changed: where it is (``line 7``, ``layer1.0.conv1``), what it is (the
    call or module as written) and why, in a sentence."""

    where: str
    what: str
    reason: str
    left_out: bool = True

    def sentence(self) -> str:
        return f"{self.where[:1].upper()}{self.where[1:]}: {self.what}: {self.reason}"


@dataclass(frozen=True)
class Imported:
    """A design read from PyTorch, with what did not map (``notes``, in source order) and what it came from."""

    spec: NetworkSpec
    notes: tuple[Note, ...] = ()
    source: str = ""

    @property
    def left_out(self) -> tuple[Note, ...]:
        return tuple(note for note in self.notes if note.left_out)

    def summary(self) -> str:
        """One line: how many layers were read and how many parts were left out or changed."""
        analysis = analyze(self.spec)
        count = len(self.spec.all_layers())
        text = (f"Imported {self.source}: {count} layer{'s' if count != 1 else ''}, "
                f"{analysis.params:,} parameters, output {format_shape(analysis.output_shape)}")
        left, changed = len(self.left_out), len(self.notes) - len(self.left_out)
        if left:
            text += f"; {left} part{'s' if left != 1 else ''} could not be mapped"
        if changed:
            text += f"; {changed} part{'s' if changed != 1 else ''} changed"
        return text


class Hint(NamedTuple):
    """What an importer knows about a module beyond its settings: the layer's id and how many copies a repeated
    group's nn.Sequential holds (from the comments of the app's exported script), a group's name (a torchvision
    model's module path)."""

    id: str = ""
    copies: int = 0
    name: str = ""


class Unmapped(nn.Module):
    """Stands in a model's module tree for a part an importer found no module for (a traced ``x * 2``), so it is
    reported in its place like a module that does not map."""

    def __init__(self, where: str, what: str, reason: str):
        super().__init__()
        self.where, self.what, self.reason = where, what, reason


class UnmappableError(Exception):
    """A module (or source call) that has no layer in the design; the message is the reason, a sentence."""


@dataclass
class Mapping:
    """The state of one import: notes in order, and each layer id's module and place, for the checks of ``finish``."""

    locate: Callable[[nn.Module], tuple[str, str]]  # module -> (where, what) for a note
    notes: list[Note] = field(default_factory=list)
    origin: dict[str, nn.Module] = field(default_factory=dict)
    unread: dict[int, set[str]] = field(default_factory=dict)  # id(module) -> input widths not given: not checked
    hints: dict[int, Hint] = field(default_factory=dict)  # id(module) -> its comment in an exported script
    frozen: set[int] = field(default_factory=set)  # id(module) of modules the file freezes (requires_grad_(False))
    used_ids: set[str] = field(default_factory=set)
    nearest: dict[int, list[str]] = field(default_factory=dict)  # id(module) -> NEAREST arguments left out
    order: dict[int, int] = field(default_factory=dict)  # id(module) -> its place in the model, to order notes
    placed: list[tuple[int, Note]] = field(default_factory=list)  # notes on modules, with their module's place

    def note(self, module: nn.Module, reason: str, left_out: bool = True) -> None:
        where, what = (module.where, module.what) if isinstance(module, Unmapped) else self.locate(module)
        self.placed.append((self.order.setdefault(id(module), len(self.order)), Note(where, what, reason, left_out)))

    def all_notes(self) -> tuple[Note, ...]:
        """The importer's own notes, then the notes on modules in the order the modules come in the model."""
        return (*self.notes, *(note for _, note in sorted(self.placed, key=lambda pair: pair[0])))


def kind_classes() -> dict[type, str]:
    """The exact module class each registry kind builds -> the kind's name (LSTM builds SequenceLSTM)."""
    table: dict[type, str] = {}
    for name, kind in KINDS.items():
        if kind.is_group:
            continue
        cls = (getattr(blocks, f"Sequence{name}", None) or getattr(shape_modules, name, None)
               or getattr(nn, name))
        table[cls] = name
    return table


KIND_CLASSES = kind_classes()


def layers_from_modules(modules: Sequence[nn.Module], mapping: Mapping) -> tuple[LayerSpec, ...]:
    """The layers for ``modules`` in order; a module that cannot be mapped is left out and noted."""
    layers = []
    for module in modules:
        try:
            layers.append(layer_from_module(module, mapping))
        except UnmappableError as exc:
            mapping.note(module, str(exc))
    return tuple(layers)


def layer_from_module(module: nn.Module, mapping: Mapping) -> LayerSpec:
    """One module as a layer or group; UnmappableError with the reason when the design has nothing for it."""
    mapping.order.setdefault(id(module), len(mapping.order))
    cls = type(module)
    if cls is Unmapped:
        raise UnmappableError(module.reason)
    if cls is nn.Sequential:
        children = layers_from_modules(list(module.children()), mapping)
        copies = mapping.hints[id(module)].copies if id(module) in mapping.hints else 0
        if copies > 1 and len(children) == copies and children[0].is_group \
                and len({repr(design_form(child)) for child in children}) == 1:  # a repeated group, as exported
            return _remember(replace(children[0], params={**children[0].params, "repeat": copies}), module, mapping)
        return _remember(group("sequence", children), module, mapping)
    if cls is blocks.Residual:
        activation = ACTIVATIONS.get(type(module.activation))
        if activation is None:
            raise UnmappableError("a residual group's activation is ReLU or none, not "
                                  f"{type(module.activation).__name__}")
        body = layers_from_modules(_parts(module.body), mapping)
        shortcut = layers_from_modules(_parts(module.shortcut), mapping)
        layer = group("residual", body, shortcut_layers=shortcut, shortcut="custom", activation=activation)
        return _remember(layer, module, mapping)
    if cls is blocks.Branches:
        branches = layers_from_modules(list(module.get_submodule("branches").children()), mapping)
        return _remember(group("branches", branches, merge=module.merge), module, mapping)
    kind = KIND_CLASSES.get(cls)
    if kind is None:
        raise UnmappableError(no_kind(cls))
    return _remember(LayerSpec(kind, _params(module, KINDS[kind], mapping)), module, mapping)


def _parts(module) -> list[nn.Module]:
    """A residual body's or shortcut's modules: a Sequential's children, or the one module."""
    return list(module) if type(module) is nn.Sequential else [module]


def _remember(layer: LayerSpec, module: nn.Module, mapping: Mapping) -> LayerSpec:
    """The layer with the id its comment gives (when still free) and frozen as the file says; its module noted."""
    hint = mapping.hints.get(id(module))
    if hint is not None and hint.id and hint.id not in mapping.used_ids:
        layer = replace(layer, id=hint.id)
    if hint is not None and hint.name and layer.is_group:
        layer = replace(layer, name=hint.name[:MAX_NAME])
    if id(module) in mapping.frozen:
        layer = replace(layer, frozen=True)
    mapping.used_ids.add(layer.id)
    mapping.origin[layer.id] = module
    return layer


def no_kind(cls: type) -> str:
    if cls in (nn.LSTM, nn.GRU):
        return (f"nn.{cls.__name__} returns (output, state), which no next layer can take; the design's "
                f"{cls.__name__} layer (batch-first, passing on the last step or all steps) replaces it: add it "
                "from the palette")
    name = cls.__name__ if cls.__module__.startswith("torch.nn") else f"{cls.__module__}.{cls.__name__}"
    return f"{name} has no layer kind in the design: add the nearest layer by hand, or leave it out"


def _params(module: nn.Module, kind: LayerKind, mapping: Mapping) -> dict:
    """The kind's parameters read from the module; UnmappableError when an argument has no setting in the design."""
    names = {p.name for p in kind.params}
    for name, param, value in constructor_arguments(module):
        if name in names or name in INPUT_ARGUMENTS or name in DERIVED_ARGUMENTS or name in SAME_RESULT:
            continue
        if name == "bias" and getattr(module, "weight", None) is None:
            continue  # a normalisation's affine turned off takes its bias too: the kind's affine setting says it
        if value is MISSING or _same(value, param.default):
            continue
        if name in NEAREST:
            mapping.nearest.setdefault(id(module), []).append(f"{name}={value!r}")
            continue
        raise UnmappableError(f"{name}={value!r} has no setting in the design's {kind.name}, which keeps the "
                              f"default {param.default!r}")
    read = {name: value for name, _, value in constructor_arguments(module)}
    params = {}
    for p in kind.params:
        derive = DERIVED.get((kind.name, p.name))
        value = derive(module) if derive else read.get(p.name, getattr(module, p.name, MISSING))
        if value is MISSING:
            continue
        if isinstance(value, tuple) and p.type not in ("ints",):
            raise UnmappableError(f"{p.name} {value} differs between axes; the design's {kind.name} takes one "
                                  f"{p.name} for every axis")
        params[p.name] = value
    try:
        return coerce_params(kind, params, f"the design's {kind.name}")
    except SpecError as exc:
        raise UnmappableError(str(exc)) from None


def _same(value, default) -> bool:
    return value == default and type(value) is type(default)


# --------------------------------------------------------------------------- the whole design

def finish(layers: tuple[LayerSpec, ...], input_shape: tuple[int, ...], mapping: Mapping,
           source: str) -> Imported:
    """The design from the mapped layers: each residual shortcut that equals the automatic one set to auto, and
    each layer's input width (in_features, in_channels, ...) as written compared with the analysed shape."""
    spec = NetworkSpec(tuple(input_shape), layers)
    analysis = analyze(spec)
    spec = NetworkSpec(spec.input_shape, mapped(spec.layers, lambda layer: _auto_shortcut(layer, analysis)))
    analysis = analyze(spec)
    for row in analysis.all_rows:
        module = mapping.origin.get(row.layer_id)
        layer = spec.layer(row.layer_id)
        if module is None or layer.is_group or row.in_shape is None or row.error:
            continue
        with torch.device("meta"):
            built = build_layer(layer.kind, row.in_shape, layer.params)
        written = {name: value for name, _, value in constructor_arguments(module)}
        for name, _, value in constructor_arguments(built):
            if name not in CHECKED or name in mapping.unread.get(id(module), ()):
                continue
            if name in written and written[name] is not MISSING and written[name] != value:
                mapping.note(module, f"{name} is {_text(written[name])} as written, but its input is "
                                     f"{format_shape(row.in_shape)} here, so the design uses {_text(value)}",
                             left_out=False)
        if id(module) in mapping.nearest and row.shape is not None:
            theirs = _output_shape(module, row.in_shape)
            if theirs != row.shape:
                mapping.note(module, f"{' and '.join(mapping.nearest[id(module)])} has no setting in the design and "
                                     f"is left out, so the design gives {format_shape(row.shape)} here where "
                                     f"PyTorch's layer gives {format_shape(theirs)}", left_out=False)
    return Imported(spec, mapping.all_notes(), source)


def _output_shape(module: nn.Module, in_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """What PyTorch's own module gives one sample of ``in_shape`` (on the meta device: nothing is computed)."""
    try:
        with torch.no_grad():
            return tuple(module(torch.empty((1, *in_shape), device="meta")).shape[1:])
    except Exception:  # noqa: BLE001 - a module that cannot take this input: its shape is unknown
        return None


def _text(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _auto_shortcut(layer: LayerSpec, analysis) -> LayerSpec:
    """A residual group whose custom shortcut is exactly what auto (or auto+bn) gives, set to that: the design the
    app exported comes back as it was."""
    if not layer.is_group or layer.params["mode"] != "residual" or layer.params["shortcut"] != "custom":
        return layer
    row = analysis.row(layer.id)
    body_out = _body_shape(row)
    if row.in_shape is None or body_out is None:
        return layer
    for choice, with_norm in (("auto", False), ("auto+bn", True)):
        try:
            automatic, _ = auto_shortcut(row.in_shape, body_out, with_norm, layer.id)
        except LayerError:  # no automatic shortcut fits: the custom one stays
            return layer
        if _same_layers(automatic, layer.shortcut):
            return replace(layer, params={**layer.params, "shortcut": choice}, shortcut=())
    return layer


def _body_shape(row):
    """The shape a residual group's body gives (its row's shape is after the sum, the same when it fits)."""
    return row.children[-1].shape if row.children else row.in_shape


def _same_layers(a: tuple[LayerSpec, ...], b: tuple[LayerSpec, ...]) -> bool:
    return [design_form(layer) for layer in a] == [design_form(layer) for layer in b]


def design_form(layer: LayerSpec) -> dict:
    """A layer as its file holds it, without ids: what two imports of the same model agree on."""
    data = layer.to_dict()
    data.pop("id")
    for slot in ("layers", "shortcut"):
        if slot in data:
            data[slot] = [design_form(child) for child in getattr(layer, slot)]
    return data
