"""The design: frozen dataclasses for a network and its layers, and their JSON form.

Everything that crosses a trust boundary (a file, the CLI) goes through
``NetworkSpec.from_dict`` / ``from_json``, which raise ``SpecError`` with a
sentence naming the layer and field, never a KeyError or TypeError.
"""
from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from engine import tree
from engine.errors import SpecError
from engine.files import parse_json
from engine.layer_init import LayerInit, TensorInit
from engine.layers import KINDS, PADDING_PRESETS, LayerKind, Param
from engine.tree import Place

FORMAT = "layerstudio.design"
VERSION = 2  # 2: groups (LayerSpec.layers); a version 1 file's fixed blocks are converted on read (engine.legacy)
DESIGN_SUFFIXES = (".json",)
MAX_DESIGN_BYTES = 10_000_000  # a design is a few kilobytes; a larger file is refused unread
MAX_RANK = 8
MAX_NAME = 64  # a group's name: one short line
# Bounds on one input sample, so nothing downstream (analysis, torch, the exported script) meets an overflow.
MAX_INPUT_DIMENSION = 1_000_000
MAX_INPUT_ELEMENTS = 2**24  # 16,777,216 values per sample, e.g. 3x2048x2048 fits
# Layer ids go into exported code (comments) and state_dict reports: a safe, short character set only.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
ID_RULE = "1 to 64 letters, digits, '_' or '-'"
# A design file may also carry its name, description, training config and dataset choice
# (a "project"); those parts belong to other modules and are read by them.
TOP_LEVEL_FIELDS = {"format", "version", "input_shape", "layers", "name", "description", "training", "data"}
WIDTH_PARAMS = ("out_features", "out_channels")  # the parameters that set a layer's output width


def new_id() -> str:
    """A short unique layer id."""
    return uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class LayerSpec:
    """One layer: its kind, its parameters (all of them, defaults filled in), a stable id, whether training
    leaves it as it is, and how its weight and bias start (engine.layer_init). A group (kind "Group") also holds
    its layers (its body, or one child per branch), a residual group its custom shortcut, and a name."""

    kind: str
    params: dict = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    frozen: bool = False
    init: LayerInit = LayerInit()
    layers: tuple[LayerSpec, ...] = ()
    shortcut: tuple[LayerSpec, ...] = ()
    name: str = ""

    def __post_init__(self):
        check_layer_id(self.id)
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "shortcut", tuple(self.shortcut))
        kind = KINDS.get(self.kind)
        params = {**kind.defaults(), **self.params} if kind is not None else dict(self.params)
        # Lists become tuples, so a spec edited with a list equals its JSON round trip
        # and its parameters can key the analysis cache.
        for name, value in params.items():
            if isinstance(value, list):
                params[name] = tuple(value)
        object.__setattr__(self, "params", params)

    @property
    def layer_kind(self) -> LayerKind:
        return KINDS[self.kind]

    @property
    def is_group(self) -> bool:
        kind = KINDS.get(self.kind)
        return kind is not None and kind.is_group

    def walk(self):
        """This layer's inner layers (body, then shortcut), depth first, with their places."""
        return tree._walk_group(self)

    def short(self) -> str:
        """Row label, e.g. ``Conv2d 6, k5, p2``."""
        return self.layer_kind.short(self.params)

    def with_params(self, **changes) -> LayerSpec:
        return replace(self, params={**self.params, **changes})

    def init_tensors(self) -> dict[str, int]:
        """The tensors this layer has that take an init ({"weight": 2, "bias": 1} for a Linear with a bias)."""
        kind = KINDS.get(self.kind)
        return kind.init_tensors(self.params) if kind is not None else {}

    def chosen_init(self) -> dict[str, TensorInit]:
        """The inits chosen for this layer's tensors; one kept for a bias since turned off is left out."""
        return self.init.chosen(self.init_tensors())

    def with_init(self, tensor: str, init: TensorInit) -> LayerSpec:
        return replace(self, init=self.init.with_tensor(tensor, init))

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind,
                               "params": {k: _jsonable(v) for k, v in self.params.items()}}
        if self.frozen:
            out["frozen"] = True
        init = self.init.to_dict(self.init_tensors())
        if init:  # left out when every tensor keeps the default: older designs read and write unchanged
            out["init"] = init
        if self.is_group:
            if self.name:
                out["name"] = self.name
            out["layers"] = [layer.to_dict() for layer in self.layers]
            if self.shortcut:
                out["shortcut"] = [layer.to_dict() for layer in self.shortcut]
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "layer") -> LayerSpec:
        if not isinstance(data, dict):
            raise SpecError(f"{where} must be an object with 'kind' and 'params', got {type(data).__name__}")
        unknown = set(data) - {"id", "kind", "params", "frozen", "init", "layers", "shortcut", "name"}
        if unknown:
            raise SpecError(f"{where} has unknown field {_first(unknown)}: remove it")
        if "kind" not in data:
            raise SpecError(f"{where} is missing field 'kind' (the layer type, e.g. \"Conv2d\")")
        kind_name = data["kind"]
        if not isinstance(kind_name, str):
            raise SpecError(f"{where} field 'kind' must be a layer type name such as \"Conv2d\", "
                            f"got {_show(kind_name)}")
        kind = KINDS.get(kind_name)
        if kind is None:
            raise SpecError(f"{where} field 'kind' names unknown kind {_show(kind_name)}: "
                            f"known kinds are {', '.join(KINDS)}")
        where = f"{where} ({kind_name})"
        params = data.get("params", {})
        if not isinstance(params, dict):
            raise SpecError(f"{where} field 'params' must be an object")
        layer_id = data.get("id", new_id())
        check_layer_id(layer_id, where)
        frozen = data.get("frozen", False)
        if not isinstance(frozen, bool):
            raise SpecError(f"{where} field 'frozen' must be true or false")
        params = coerce_params(kind, params, where)
        init = LayerInit.from_dict(data["init"], kind.init_tensors(params), where) if "init" in data else LayerInit()
        inner = {slot: _inner_layers(data, slot, kind, where) for slot in tree.SLOTS}
        name = data.get("name", "")
        if "name" in data:
            if not kind.is_group:
                raise SpecError(f"{where} has field 'name', which only a group has: remove it")
            _check_text(name, f"{where} field 'name'")
            if len(name) > MAX_NAME:
                raise SpecError(f"{where} field 'name' is {len(name)} characters long; a name is at most {MAX_NAME}")
        return cls(kind_name, params, layer_id, frozen, init, inner["layers"], inner["shortcut"], name)


def _inner_layers(data: dict, slot: str, kind: LayerKind, where: str) -> tuple[LayerSpec, ...]:
    """A group's ``layers`` or ``shortcut`` list, each layer read with its place in the message."""
    if slot not in data:
        return ()
    if not kind.is_group:
        raise SpecError(f"{where} has field {slot!r}, which only a group has: remove it")
    items = data[slot]
    if not isinstance(items, list):
        raise SpecError(f"{where} field {slot!r} must be a list of layers, got {_show(items)}")
    inner = "shortcut › " if slot == "shortcut" else ""
    return tuple(LayerSpec.from_dict(item, f"{where} › {inner}layer {i}") for i, item in enumerate(items))


class OutputLayer(NamedTuple):
    """The layer that sets a network's output width, and the parameter that does (out_features, out_channels)."""

    layer: LayerSpec
    param: str

    @property
    def width(self) -> int:
        return self.layer.params[self.param]


@dataclass(frozen=True)
class NetworkSpec:
    """A network: the shape of one input sample (no batch dimension) and its layers in order."""

    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        object.__setattr__(self, "layers", tuple(self.layers))

    # -- queries
    def index(self, layer_id: str) -> int:
        for i, layer in enumerate(self.layers):
            if layer.id == layer_id:
                return i
        raise KeyError(layer_id)

    def layer(self, layer_id: str) -> LayerSpec:
        """The layer with this id, at any depth; KeyError if there is none."""
        found = tree.find(self.layers, layer_id)
        if found is None:
            raise KeyError(layer_id)
        return found[0]

    def place(self, layer_id: str) -> Place:
        """Where the layer with this id sits (its group, list and index); KeyError if there is none."""
        found = tree.find(self.layers, layer_id)
        if found is None:
            raise KeyError(layer_id)
        return found[1]

    def contents(self, parent: str | None, slot: str = "layers") -> tuple[LayerSpec, ...]:
        """The layers at the top level (parent None) or in a group's body or shortcut."""
        return tree.contents(self.layers, parent, slot)

    def all_layers(self) -> list[LayerSpec]:
        """Every layer, groups and the layers inside them, depth first."""
        return [layer for layer, _ in tree.walk(self.layers)]

    def output_layer(self, params: tuple[str, ...] = WIDTH_PARAMS, after: str | None = None) -> OutputLayer | None:
        """The last layer with one of ``params`` (after layer ``after`` when given), or None.

        By default the layer whose width the network's output follows (a Linear's out_features, a conv's
        out_channels); ``params=("out_features",)`` finds the last Linear."""
        start = 0 if after is None else self.index(after) + 1
        for layer in reversed(self.layers[start:]):
            for name in params:
                if name in layer.params:
                    return OutputLayer(layer, name)
        return None

    # -- edits: each returns a new spec
    def with_input_shape(self, shape) -> NetworkSpec:
        return replace(self, input_shape=tuple(shape))

    def with_layer(self, layer: LayerSpec) -> NetworkSpec:
        """Replace the layer that has ``layer.id``, at any depth (a group keeps the layers it is given)."""
        self.place(layer.id)  # KeyError for an unknown id, as before groups
        return replace(self, layers=tree.mapped(self.layers, lambda old: layer if old.id == layer.id else old))

    def with_param(self, layer_id: str, name: str, value) -> NetworkSpec:
        return self.with_layer(self.layer(layer_id).with_params(**{name: value}))

    def with_init(self, layer_id: str, tensor: str, init: TensorInit) -> NetworkSpec:
        return self.with_layer(self.layer(layer_id).with_init(tensor, init))

    def inserted(self, index: int, *layers: LayerSpec) -> NetworkSpec:
        return replace(self, layers=self.layers[:index] + tuple(layers) + self.layers[index:])

    def inserted_at(self, place: Place, *layers: LayerSpec) -> NetworkSpec:
        """``layers`` inserted at ``place`` (inside a group's body or shortcut, or at the top level)."""
        return replace(self, layers=tree.inserted(self.layers, place, layers))

    def removed(self, *layer_ids: str) -> NetworkSpec:
        """Without these layers, wherever they sit (a removed group takes its layers with it)."""
        return replace(self, layers=tree.removed(self.layers, layer_ids))

    def with_contents(self, parent: str | None, slot: str, layers) -> NetworkSpec:
        """The list at (parent, slot) replaced by ``layers``."""
        return replace(self, layers=tree.with_contents(self.layers, parent, slot, tuple(layers)))

    def moved(self, layer_id: str, new_index: int) -> NetworkSpec:
        layers = list(self.layers)
        layer = layers.pop(self.index(layer_id))
        layers.insert(new_index, layer)
        return replace(self, layers=tuple(layers))

    # -- serialisation
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "input_shape": list(self.input_shape),
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> NetworkSpec:
        if not isinstance(data, dict):
            raise SpecError(f"a design must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - TOP_LEVEL_FIELDS
        if unknown:
            raise SpecError(f"design has unknown field {_first(unknown)}: remove it")
        if "format" not in data:
            raise SpecError(f"not a LayerStudio design: field 'format' is missing (it should be {FORMAT!r})")
        for required in ("version", "input_shape", "layers"):
            if required not in data:
                raise SpecError(f"design is missing field {required!r}")
        if data["format"] != FORMAT:
            raise SpecError(f"not a LayerStudio design: field 'format' must be {FORMAT!r}")
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise SpecError(f"field 'version' must be a positive integer, got {_show(version)}")
        if version > VERSION:
            raise SpecError(f"design version {version} is newer than this LayerStudio understands ({VERSION}): "
                            "update LayerStudio")
        for name in ("name", "description"):
            if name in data:
                _check_text(data[name], f"field {name!r}")
        check_input_shape(data.get("input_shape"))
        shape = data["input_shape"]
        layers = data.get("layers")
        if not isinstance(layers, list):
            raise SpecError(f"field 'layers' must be a list of layers, got {_show(layers)}")
        if version == 1:
            from engine.legacy import upgrade_layers

            layers = upgrade_layers(layers)
        specs = tuple(LayerSpec.from_dict(item, f"layer {i}") for i, item in enumerate(layers))
        seen: set[str] = set()
        for layer, path in tree.walk_paths(specs):
            if layer.id in seen:
                raise SpecError(f"layer {path} ({layer.kind}) repeats id "
                                f"{_show(layer.id)}: ids must be unique")
            seen.add(layer.id)
        return cls(tuple(shape), specs)

    @classmethod
    def from_json(cls, text: str | bytes) -> NetworkSpec:
        """A design from JSON text (UTF-8 bytes too), with the same checks as a design file."""
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode("utf-8-sig")
            except UnicodeDecodeError:
                raise SpecError("A design file must be UTF-8 text: save it as UTF-8 JSON") from None
        if not isinstance(text, str):
            raise SpecError(f"A design must be JSON text, got {type(text).__name__}")
        if len(text) > MAX_DESIGN_BYTES:
            raise SpecError(f"The design text is too long ({len(text):,} characters; a design is at most "
                            f"{MAX_DESIGN_BYTES:,}): check what was given")
        return cls.from_dict(parse_json(text, "design", SpecError, "The text"))


def check_layer_id(layer_id: Any, where: str = "Layer") -> None:
    """SpecError unless ``layer_id`` is 1 to 64 of ``A-Z a-z 0-9 _ -``: ids reach exported code and messages."""
    if not isinstance(layer_id, str) or not ID_PATTERN.fullmatch(layer_id):
        raise SpecError(f"{where} field 'id' must be {ID_RULE}, got {_show(layer_id)}")


def _check_text(value: Any, where: str) -> None:
    """A name or description: any text that can be written as UTF-8 (no lone surrogates)."""
    if not isinstance(value, str):
        raise SpecError(f"{where} must be text, got {_show(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SpecError(f"{where} holds a lone surrogate (character {exc.start + 1}), which is not valid "
                        "Unicode text: retype it") from None


def check_input_shape(shape: Any) -> None:
    """SpecError unless ``shape`` (one sample's) is 1 to MAX_RANK positive whole numbers, each at most
    MAX_INPUT_DIMENSION and together at most MAX_INPUT_ELEMENTS values: the design file and the window's
    editors share these bounds, so a design the window makes can always be read back."""
    if (not isinstance(shape, (list, tuple)) or not shape or len(shape) > MAX_RANK
            or not all(_is_int(n) and n >= 1 for n in shape)):
        raise SpecError(
            f"field 'input_shape' must be a list of 1 to {MAX_RANK} positive integers, e.g. [1, 28, 28], "
            f"got {_show(shape)}"
        )
    if max(shape) > MAX_INPUT_DIMENSION or math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise SpecError(f"field 'input_shape' {_show(shape)} is too large: each dimension may be at most "
                        f"{MAX_INPUT_DIMENSION:,} and one sample at most {MAX_INPUT_ELEMENTS:,} values")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value, limit: int = 40) -> str:
    """repr of a user's value, shortened so a junk file cannot flood the message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first(names) -> str:
    """The first of some (possibly non-string) field names, for a message."""
    return _show(sorted(names, key=str)[0])


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


def coerce_params(kind: LayerKind, params: dict, where: str) -> dict:
    """Check parameter names, types and ranges against the kind's schema; fill defaults."""
    by_name = {p.name: p for p in kind.params}
    for name in params:
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            raise SpecError(f"{where} has unknown parameter {name!r} (known: {known})")
    return {p.name: _coerce(p, params[p.name], where) if p.name in params else p.default for p in kind.params}


def _coerce(p: Param, value, where: str):
    def fail(expected: str):
        raise SpecError(f"{where} parameter {p.name!r} must be {expected}, got {_show(value)}")

    def check_range(v, what):
        low = p.min if p.min is not None else -math.inf
        high = p.max if p.max is not None else math.inf
        if not low <= v <= high:
            fail(f"{what} between {_num(low)} and {_num(high)}")
        return v

    if p.type == "int":
        if not _is_int(value):
            fail("an integer")
        return check_range(value, "an integer")
    if p.type == "float":
        if not (_is_int(value) or isinstance(value, float)):
            fail("a number")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            fail("a finite number")
        return check_range(number, "a number")
    if p.type == "bool":
        if not isinstance(value, bool):
            fail("true or false")
        return value
    if p.type == "choice":
        if value not in p.choices:
            fail("one of " + ", ".join(p.choices))
        return value
    if p.type == "ints":
        if (not isinstance(value, (list, tuple)) or not value or len(value) > MAX_RANK
                or not all(_is_int(v) for v in value)):
            fail(f"a list of 1 to {MAX_RANK} integers")
        return tuple(check_range(v, "integers") for v in value)
    if p.type == "padding":
        if isinstance(value, str):
            if value not in PADDING_PRESETS:
                fail("a number or one of " + ", ".join(PADDING_PRESETS))
            return value
        if not _is_int(value):
            fail("a number or one of " + ", ".join(PADDING_PRESETS))
        return check_range(value, "a number")
    raise AssertionError(p.type)
