"""A design as a standalone PyTorch script: plain ``nn.Sequential`` source with the same state_dict keys.

The constructor calls are not rewritten per layer kind: ``build_model`` runs once (on the meta
device, so no weights are allocated) while the calls it makes are recorded, and the script repeats
exactly those calls. Block classes from ``engine.blocks`` are copied in with ``inspect.getsource``.
So the registry stays the one place that knows how a layer is built.
"""
from __future__ import annotations

import ast
import inspect
import sys
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engine import blocks
from engine.build import build_model
from engine.errors import SpecError
from engine.shapes import ENTRY_ONLY, analyze, format_shape
from engine.spec import NetworkSpec


@dataclass(frozen=True)
class ConstructorCall:
    """The class a layer was built from and the arguments its ``__init__`` received."""

    cls: type
    function: Any  # the __init__ that ran first (the most derived one)
    arguments: dict


def python_source(spec: NetworkSpec) -> str:
    """A runnable script defining ``model = nn.Sequential(...)`` for ``spec``; SpecError if it is broken."""
    analysis = analyze(spec)
    model, calls = _recorded_build(spec)
    classes = _block_classes(type(module) for module in model)
    lines = [
        '"""A LayerStudio design as plain PyTorch (written by `layerstudio export`)."""',
        "import torch",
        "from torch import nn",
    ]
    if classes:
        lines.append("from torch.nn import functional as F")
    for cls in classes:
        lines += ["", "", inspect.getsource(cls).rstrip()]
    lines += [
        "", "",
        f"# input: one sample is {format_shape(spec.input_shape)}; a batch adds a leading dimension N",
        f"INPUT_SHAPE = {tuple(spec.input_shape)!r}",
        "model = nn.Sequential(",
    ]
    for index, (layer, row, module) in enumerate(zip(spec.layers, analysis.rows, model)):
        call = _call_source(calls[id(module)], layer.id)
        lines.append(f"    {call},  # {index}: {layer.id} -> {format_shape(row.shape)}")
    lines.append(")")
    for index, layer in enumerate(spec.layers):
        if layer.frozen:
            lines.append(f"model[{index}].requires_grad_(False)  # {layer.id} is frozen in the design")
    takes_tokens = bool(spec.layers) and spec.layers[0].kind == ENTRY_ONLY  # integer token indices
    zeros = "torch.zeros(1, *INPUT_SHAPE" + (", dtype=torch.long)" if takes_tokens else ")")
    lines += [
        "",
        'if __name__ == "__main__":',
        "    print(model)",
        "    model.eval()",
        "    with torch.no_grad():",
        f"        output = model({zeros})",
        '    print("output shape per sample:", tuple(output.shape[1:]))',
        "",
    ]
    return "\n".join(lines)


def _recorded_build(spec: NetworkSpec) -> tuple[nn.Sequential, dict[int, ConstructorCall]]:
    """build_model(spec) on the meta device, with the first ``__init__`` call of every module recorded."""
    calls: dict[int, ConstructorCall] = {}
    keep_alive = []  # ids are only unique while the objects live

    def record(frame, event, _arg):
        if event != "call" or frame.f_code.co_name != "__init__":
            return
        module = frame.f_locals.get("self")
        if isinstance(module, nn.Module) and id(module) not in calls:
            function = _init_function(type(module), frame.f_code)
            if function is not None:
                calls[id(module)] = ConstructorCall(type(module), function, dict(frame.f_locals))
                keep_alive.append(module)

    previous = sys.getprofile()
    sys.setprofile(record)  # per thread: other threads building models are not affected
    try:
        with torch.device("meta"):
            model = build_model(spec)
    finally:
        sys.setprofile(previous)
    return model, calls


def _init_function(cls: type, code) -> Any:
    """The ``__init__`` in ``cls``'s MRO whose code is running, or None for a wrapper."""
    for klass in cls.__mro__:
        function = klass.__dict__.get("__init__")
        if getattr(function, "__code__", None) is code:
            return function
    return None


def _call_source(call: ConstructorCall, layer_id: str) -> str:
    """``nn.Conv2d(1, 6, kernel_size=5, padding=2)``: the first two required arguments by position,
    the others by name, arguments equal to their default left out."""
    parts: list[str] = []
    required_seen = 0
    for name, param in inspect.signature(call.function).parameters.items():
        if name == "self":
            continue
        value = call.arguments.get(name, param.default)
        if param.kind is param.VAR_POSITIONAL:
            parts += [_literal(v, layer_id, name) for v in value]
        elif param.kind is param.VAR_KEYWORD:
            parts += [f"{key}={_literal(v, layer_id, key)}" for key, v in value.items()]
        elif param.default is param.empty:
            required_seen += 1
            positional = param.kind is not param.KEYWORD_ONLY and required_seen <= 2
            parts.append(_literal(value, layer_id, name) if positional else f"{name}={_literal(value, layer_id, name)}")
        elif not _same(value, param.default):
            parts.append(f"{name}={_literal(value, layer_id, name)}")
    return f"{_class_reference(call.cls)}({', '.join(parts)})"


def _same(value, default) -> bool:
    return type(value) is type(default) and value == default


def _literal(value, layer_id: str, name: str) -> str:
    """``repr`` of a plain constant, checked to read back as the same value."""
    text = repr(value)
    try:
        ok = ast.literal_eval(text) == value
    except (ValueError, SyntaxError):
        ok = False
    if not ok:
        raise SpecError(f"layer {layer_id}: argument {name}={text} cannot be written as Python source")
    return text


def _class_reference(cls: type) -> str:
    if getattr(nn, cls.__name__, None) is cls:
        return f"nn.{cls.__name__}"
    if cls.__module__ == blocks.__name__:
        return cls.__name__
    raise SpecError(f"{cls.__module__}.{cls.__name__} is neither in torch.nn nor in engine.blocks: it cannot be exported")


def _block_classes(classes) -> list[type]:
    """engine.blocks classes the script must define, bases first, each once."""
    needed: list[type] = []
    for cls in classes:
        for klass in reversed(cls.__mro__):
            if klass.__module__ == blocks.__name__ and klass not in needed:
                needed.append(klass)
    return needed
