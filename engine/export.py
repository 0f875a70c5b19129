"""A design as a standalone PyTorch script: plain ``nn.Sequential`` source with the same state_dict keys.

The constructor calls are not rewritten per layer kind: ``build_model`` runs once (on the meta
device, so no weights are allocated) and each module's constructor arguments are read back from
the attributes PyTorch keeps under the same names. Block classes from ``engine.blocks``
are copied in with ``inspect.getsource``. So the registry stays the one place that knows how a layer is built.

No design text becomes code: every value is written with ``repr`` and read back with ``ast.literal_eval``
to check it (``_literal``), and the only user text in the script, the layer ids in comments, holds
nothing but ``A-Z a-z 0-9 _ -`` (``engine.spec.ID_PATTERN``, checked whenever a LayerSpec is made).
"""
from __future__ import annotations

import ast
import inspect

import torch
from torch import nn

from engine import blocks
from engine.build import build_model
from engine.errors import SpecError
from engine.layer_init import init_source
from engine.shapes import ENTRY_ONLY, analyze, format_shape
from engine.spec import NetworkSpec

SCRIPT_SUFFIXES = (".py",)


def python_source(spec: NetworkSpec) -> str:
    """A runnable script defining ``model = nn.Sequential(...)`` for ``spec``; SpecError if it is broken."""
    analysis = analyze(spec)
    with torch.device("meta"):  # no weights allocated: only the modules' settings are read
        model = build_model(spec)
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
        f"INPUT_SHAPE = {_literal(tuple(spec.input_shape), 'input', 'INPUT_SHAPE')}",
        "model = nn.Sequential(",
    ]
    for index, (layer, row, module) in enumerate(zip(spec.layers, analysis.rows, model, strict=True)):
        call = _call_source(module, layer.id)
        lines.append(f"    {call},  # {index}: {layer.id} -> {format_shape(row.shape)}")
    lines.append(")")
    for index, layer in enumerate(spec.layers):
        if layer.frozen:
            lines.append(f"model[{index}].requires_grad_(False)  # {layer.id} is frozen in the design")
    inits = init_source(spec, _literal)
    if inits:
        lines += ["# each layer's own initialisation from the design (seeded alike: the app's starting weights)",
                  *inits]
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


SKIPPED_ARGUMENTS = {"self", "device", "dtype"}
WINDOW_ARGUMENTS = {"kernel_size", "stride", "padding", "dilation", "output_padding", "output_size"}  # int or tuple


def _call_source(module: nn.Module, layer_id: str) -> str:
    """``nn.Conv2d(1, 6, kernel_size=(5, 5), padding=(2, 2))``, read back from the built module.

    Every constructor argument of torch.nn layers (and of engine.blocks classes) is kept as an
    attribute of the same name; ``bias`` is kept as a tensor or None. The first two required
    arguments go by position, the others by name; those equal to their default are left out.
    """
    parts: list[str] = []
    required_seen = 0
    for name, param in inspect.signature(type(module).__init__).parameters.items():
        if name in SKIPPED_ARGUMENTS or name.startswith("_") or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name not in vars(module) and not hasattr(module, name):
            raise SpecError(f"layer {layer_id}: {type(module).__name__} keeps no {name!r} setting, "
                            "so it cannot be exported")
        value = getattr(module, name)
        if name == "bias" and not isinstance(value, bool):
            value = value is not None
        if name in WINDOW_ARGUMENTS:
            value = _squeeze(value)
        if param.default is param.empty:
            required_seen += 1
            positional = param.kind is not param.KEYWORD_ONLY and required_seen <= 2
            parts.append(_literal(value, layer_id, name) if positional else f"{name}={_literal(value, layer_id, name)}")
        elif not _same(value, param.default):
            parts.append(f"{name}={_literal(value, layer_id, name)}")
    return f"{_class_reference(type(module))}({', '.join(parts)})"


def _squeeze(value):
    """(5, 5) -> 5, so calls read as a person writes them."""
    if isinstance(value, tuple) and value and len(set(value)) == 1 and isinstance(value[0], int):
        return value[0]
    return value


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
    raise SpecError(f"{cls.__module__}.{cls.__name__} is neither in torch.nn nor in engine.blocks: "
                    "it cannot be exported")


def _block_classes(classes) -> list[type]:
    """engine.blocks classes the script must define, bases first, each once."""
    needed: list[type] = []
    for cls in classes:
        for klass in reversed(cls.__mro__):
            if klass.__module__ == blocks.__name__ and klass not in needed:
                needed.append(klass)
    return needed
