"""A design as a standalone PyTorch script: plain ``nn.Sequential`` source with the same state_dict keys.
Groups are written nested (``nn.Sequential``, ``Residual(body=..., shortcut=..., activation=...)``,
``Branches(..., merge=...)``), the two container classes copied in, so the script stands alone.

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

from engine import blocks, shape_modules
from engine.build import build_model, module_expression, module_paths
from engine.errors import SpecError
from engine.layer_init import init_source
from engine.shapes import ENTRY_ONLY, Analysis, analyze, format_shape
from engine.spec import LayerSpec, NetworkSpec

SCRIPT_SUFFIXES = (".py",)


def python_source(spec: NetworkSpec) -> str:
    """A runnable script defining ``model = nn.Sequential(...)`` for ``spec``; SpecError if it is broken."""
    analysis = analyze(spec)
    with torch.device("meta"):  # no weights allocated: only the modules' settings are read
        model = build_model(spec)
    classes = _block_classes(type(module) for module in model.modules())
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
    for layer, module in zip(spec.layers, model, strict=True):
        lines += _layer_source(layer, module, analysis, 1)
    lines.append(")")
    paths = module_paths(spec)
    for layer in spec.all_layers():
        if layer.frozen:
            lines += [f"{module_expression(path)}.requires_grad_(False)  # {layer.id} is frozen in the design"
                      for path in paths[layer.id]]
    inits = init_source(spec, _literal)
    if inits:
        lines += ["# each layer's own initialisation from the design (seeded alike: the app's starting weights)",
                  *inits]
    first = spec.first_leaf()
    takes_tokens = first is not None and first.kind == ENTRY_ONLY  # integer token indices
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


INDENT = "    "


def _layer_source(layer: LayerSpec, module: nn.Module, analysis: Analysis | None, depth: int) -> list[str]:
    """The lines writing one layer's module (a call ending in a comma), commented with its path, id and shape
    (only its id in a repeated group's later copies, whose shapes the analysis does not list)."""
    pad = INDENT * depth
    if analysis is None:
        comment = f"  # {layer.id}"
    else:
        row = analysis.row(layer.id)
        comment = f"  # {row.path}: {layer.id} -> {format_shape(row.shape)}"
    if not layer.is_group:
        return [f"{pad}{_call_source(module, layer.id)},{comment}"]
    if layer.params["repeat"] == 1:
        return _group_source(layer, module, analysis, depth, comment)
    lines = [f"{pad}nn.Sequential({comment}, {layer.params['repeat']} copies"]
    for number, copy in enumerate(module.children()):
        lines += _group_source(layer, copy, analysis if number == 0 else None, depth + 1, "")
    return lines + [f"{pad}),"]


def _group_source(layer: LayerSpec, module: nn.Module, analysis: Analysis | None, depth: int,
                  comment: str) -> list[str]:
    """One copy of a group: nn.Sequential(...), Residual(...) or Branches(...)."""
    pad, inner = INDENT * depth, INDENT * (depth + 1)
    if isinstance(module, blocks.Branches):
        lines = [f"{pad}Branches({comment}"]
        for child, branch in zip(layer.layers, module.branches.children(), strict=True):
            lines += _layer_source(child, branch, analysis, depth + 1)
        return lines + [f"{inner}merge={_literal(module.merge, layer.id, 'merge')},", f"{pad}),"]
    if isinstance(module, blocks.Residual):
        lines = [f"{pad}Residual({comment}", f"{inner}body=nn.Sequential("]
        for child, part in zip(layer.layers, module.body.children(), strict=True):
            lines += _layer_source(child, part, analysis, depth + 2)
        lines.append(f"{inner}),")
        lines.append(f"{inner}shortcut=nn.Sequential(")
        if layer.params["shortcut"] == "custom":
            for child, part in zip(layer.shortcut, module.shortcut.children(), strict=True):
                lines += _layer_source(child, part, analysis, depth + 2)
        else:
            lines += [f"{INDENT * (depth + 2)}{_call_source(part, layer.id)},  # automatic shortcut"
                      for part in module.shortcut.children()]
        lines.append(f"{inner}),")
        return lines + [f"{inner}activation={_call_source(module.get_submodule('activation'), layer.id)},", f"{pad}),"]
    if not layer.layers:
        return [f"{pad}nn.Sequential(),{comment}"]
    lines = [f"{pad}nn.Sequential({comment}"]
    for child, part in zip(layer.layers, module.children(), strict=True):
        lines += _layer_source(child, part, analysis, depth + 1)
    return lines + [f"{pad}),"]


SKIPPED_ARGUMENTS = {"self", "device", "dtype"}
COPIED_MODULES = (blocks.__name__, shape_modules.__name__)  # their classes are copied into the script
WINDOW_ARGUMENTS = {"kernel_size", "stride", "padding", "dilation", "output_padding", "output_size"}  # int or tuple


def constructor_arguments(module: nn.Module):
    """Each constructor argument of ``module``'s class with the value the module keeps for it, as
    (name, inspect.Parameter, value): ``bias`` as a bool, a window size (5, 5) as 5; the value is MISSING when the
    module keeps no attribute of that name. engine.importing reads modules back into layers with it too."""
    for name, param in inspect.signature(type(module).__init__).parameters.items():
        if name in SKIPPED_ARGUMENTS or name.startswith("_") or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name not in vars(module) and not hasattr(module, name):
            yield name, param, MISSING
            continue
        value = getattr(module, name)
        if name == "bias" and not isinstance(value, bool):
            value = value is not None
        if name in WINDOW_ARGUMENTS:
            value = _squeeze(value)
        yield name, param, value


MISSING = object()  # constructor_arguments: the module keeps no attribute for this argument


def _call_source(module: nn.Module, layer_id: str) -> str:
    """``nn.Conv2d(1, 6, kernel_size=(5, 5), padding=(2, 2))``, read back from the built module.

    Every constructor argument of torch.nn layers (and of engine.blocks classes) is kept as an
    attribute of the same name; ``bias`` is kept as a tensor or None. The first two required
    arguments go by position, the others by name; those equal to their default are left out.
    """
    parts: list[str] = []
    required_seen = 0
    for name, param, value in constructor_arguments(module):
        if value is MISSING:
            raise SpecError(f"layer {layer_id}: {type(module).__name__} keeps no {name!r} setting, "
                            "so it cannot be exported")
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
    if cls.__module__ in COPIED_MODULES:
        return cls.__name__
    raise SpecError(f"{cls.__module__}.{cls.__name__} is neither in torch.nn nor in engine.blocks or "
                    "engine.shape_modules: it cannot be exported")


def _block_classes(classes) -> list[type]:
    """engine.blocks and engine.shape_modules classes the script must define, bases first, each once."""
    needed: list[type] = []
    for cls in classes:
        for klass in reversed(cls.__mro__):
            if klass.__module__ in COPIED_MODULES and klass not in needed:
                needed.append(klass)
    return needed
