"""The layer registry's machinery: what a layer kind declares and the helpers the kinds share.

``Param`` (one parameter's schema), ``Inference`` (what a layer does to one sample), ``LayerKind`` (one
registry entry), ``KINDS`` (every entry, in palette order) and ``register``; then the pieces several
categories use: ``prod``, shape text for messages, the rank check, padding presets and sliding-window
arithmetic, the batch-aware ``dim`` check, and the ``P`` schema shorthand. The kinds themselves live in
this package's category modules; ``engine.layers`` imports them all.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.errors import LayerError

Shape = tuple[int, ...]

PADDING_PRESETS = ("valid", "same", "full")
PARAM_TYPES = ("int", "float", "bool", "choice", "ints", "padding")
RANGED_TYPES = ("int", "float", "ints", "padding")  # every value of these has a declared min and max


@dataclass(frozen=True)
class Param:
    """One parameter of a layer kind: its type, default, range and help line."""

    name: str
    type: str
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inference:
    """What a layer does to one sample: output shape and its cost."""

    shape: Shape
    params: int = 0
    buffers: int = 0
    macs: int = 0
    formula: str = ""
    warning: str = ""
    min_batch: int = 1  # smallest training batch the layer can run on (BatchNorm with one value per channel: 2)


@dataclass(frozen=True)
class LayerKind:
    """A registry entry. ``key`` lists the short-form parts shown in a row,
    e.g. ``("{out_channels}", "k{kernel_size}", "?p{padding}")``; a leading
    ``?`` hides the part while the parameter has its default value."""

    name: str
    category: str
    help: str
    params: tuple[Param, ...]
    infer: Callable[[Shape, dict], Inference]
    build: Callable[[Shape, dict], Any]
    key: tuple[str, ...] = ()
    is_group: bool = False  # holds layers (engine.layers.group): analysed and built by the group machinery
    tokens: Callable[[dict], int] | None = None  # for a layer fed integer token indices: how many it accepts
    init: Callable[[dict], dict[str, int]] | None = None  # tensors that take a per-layer init (init_tensors)

    def init_tensors(self, params: dict) -> dict[str, int]:
        """The parameter tensors (``weight``, ``bias``) a layer of this kind with ``params`` has that a per-layer
        initialisation can fill, with their number of dimensions; empty for layers without weights (ReLU)."""
        return self.init({**self.defaults(), **params}) if self.init is not None else {}

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def short(self, params: dict) -> str:
        """Short form of the key parameters, e.g. ``Conv2d 6, k5, p2`` or ``VGGBlock 2x64``."""
        parts = []
        for part in self.key:
            template = part.lstrip("?")
            names = _PLACEHOLDER.findall(template)
            values = {name: params.get(name, self.param(name).default) for name in names}
            if part.startswith("?") and all(values[n] == self.param(n).default for n in names):
                continue
            if values.get("padding") is not None and isinstance(values["padding"], str):
                parts.append(values["padding"])  # a preset reads best alone: "Conv2d 16, k3, same"
                continue
            parts.append(_filled(template, values))
        return f"{self.name} {', '.join(parts)}" if parts else self.name


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _filled(template: str, values: dict[str, Any]) -> str:
    """``template`` with each ``{name}`` replaced by the short form of ``values[name]``."""
    return _PLACEHOLDER.sub(lambda m: _short_value(values[m.group(1)]), template)


def _short_value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return str(value)


KINDS: dict[str, LayerKind] = {}
CATEGORIES = ("Core", "Convolution", "Pooling", "Normalization", "Dropout", "Activation", "Recurrent", "Blocks")


def register(kind: LayerKind) -> None:
    """Add one kind to ``KINDS`` (palette order is registration order), checking its schema."""
    assert kind.category in CATEGORIES and kind.name not in KINDS
    assert all(p.type in PARAM_TYPES for p in kind.params)
    for p in kind.params:  # a value in a file is either in a declared range or refused (no overflow reaches torch)
        assert p.type not in RANGED_TYPES or None not in (p.min, p.max), f"{kind.name}.{p.name} needs a min and a max"
    KINDS[kind.name] = kind


def kinds_by_category() -> dict[str, list[LayerKind]]:
    """Registry entries grouped by category, in palette order."""
    return {c: [k for k in KINDS.values() if k.category == c] for c in CATEGORIES}


def build_layer(kind_name: str, in_shape: Shape, params: dict):
    """Build the nn.Module for one layer, after checking it fits ``in_shape``."""
    kind = KINDS[kind_name]
    full = {**kind.defaults(), **params}
    kind.infer(tuple(in_shape), full)
    return kind.build(tuple(in_shape), full)


# --------------------------------------------------------------------------- shared helpers

def prod(shape) -> int:
    return math.prod(shape) if shape else 1


def need_rank(x: Shape, ranks: tuple[int, ...], layer: str, meaning: str, hint: str, keeps_shape: bool = False) -> None:
    """Refuse a sample of the wrong rank. PyTorch may run such a layer anyway (it takes the
    batch for channels, or the sample for a batch) and silently misread the data, so
    ``torch_fails`` is False; a layer that keeps its input's shape still passes it on."""
    if len(x) not in ranks:
        raise LayerError(
            f"{layer} needs {meaning} input, got {shape_tuple_text(x)}: {hint}", x if keeps_shape else None,
            torch_fails=False,
        )


def shape_tuple_text(shape: Shape) -> str:
    """A shape as a tuple in messages, as Python prints it: (1, 28, 28), (784,)."""
    return str(tuple(shape))


def same_shape(x: Shape, p: dict) -> Inference:
    return Inference(tuple(x))


def resolve_padding(padding, k: int, d: int, s: int, layer: str) -> tuple[int, int, str]:
    """(left, right, label) padding for one axis; label is the user's preset or ''."""
    if padding == "valid":
        return 0, 0, "valid"
    if padding == "same":
        if s != 1:
            raise LayerError(
                f"padding 'same' needs stride 1, got stride {s}: set stride to 1 or give padding as a number"
            )
        total = d * (k - 1)
        return total // 2, total - total // 2, "same"
    if padding == "full":
        return d * (k - 1), d * (k - 1), "full"
    return padding, padding, ""


def window_axis(axis: str, n: int, k: int, s: int, pad: tuple[int, int], d: int, what: str) -> tuple[int, str]:
    """Output size of one sliding-window axis and its formula with numbers filled in."""
    left, right = pad
    eff = d * (k - 1) + 1
    if n + left + right < eff:
        kernel = f"kernel {k}" if d == 1 else f"dilated kernel {eff}"
        raise LayerError(
            f"{kernel} is larger than the padded input {n + left + right}: lower kernel_size or add padding"
        )
    out = (n + left + right - eff) // s + 1
    padded = f"{n} + 2*{left}" if left == right else f"{n} + {left} + {right}"
    window = f"{k}" if d == 1 else f"{d}*({k}-1) - 1"
    formula = f"{axis} = floor(({padded} - {window})/{s}) + 1 = {out}"
    return out, formula


def spatial_axes(dims: int) -> str:
    return "L" if dims == 1 else "HW"


def _dim_range(rank: int) -> str:
    return "1" if rank == 1 else f"1..{rank}"


def batched_dim(dim: int, rank: int, name: str, layer: str, shape: Shape | None = None) -> int:
    """Index into the per-sample shape of a dim given with the batch counted (dim 1 = first sample dim).

    ``shape`` is the layer's output shape if it is known despite a bad dim (Softmax keeps its input's)."""
    full = rank + 1
    if not -full <= dim < full:
        raise LayerError(
            f"{layer} {name} {dim} is out of range for a {rank}-D sample (batch included: -{full}..{full - 1}): "
            f"set {name} to {_dim_range(rank)} or -1", shape
        )
    if dim % full == 0:  # PyTorch accepts it and mixes the samples of a batch
        raise LayerError(f"{layer} {name} {dim} is the batch dimension: set {name} to {_dim_range(rank)} or -1",
                         shape, torch_fails=False)
    return dim % full - 1


# --------------------------------------------------------------------------- params

def P(name, type_, default, help_="", min_=None, max_=None, choices=()):  # noqa: N802 - schema shorthand
    return Param(name, type_, default, help_, min_, max_, tuple(choices))


BIAS = P("bias", "bool", True, "Learn an additive bias")


def weight_and_bias(weight_dims: int, bias: bool | str = "bias", when: str = "") -> Callable[[dict], dict[str, int]]:
    """A LayerKind's ``init``: a weight of ``weight_dims`` dimensions and a 1-D bias while ``bias`` holds (True, or
    the name of the bool parameter that turns it on); nothing while the bool parameter ``when`` is off (affine)."""
    def tensors(p: dict) -> dict[str, int]:
        if when and not p[when]:
            return {}
        return {"weight": weight_dims, **({"bias": 1} if bias is True or (bias and p[bias]) else {})}

    return tensors
