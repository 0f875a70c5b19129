"""Turn a design into a real ``nn.Sequential``.

The layers sit directly in the Sequential, so ``state_dict`` keys are ``0.weight``, ``1.bias``, ... exactly as a
hand-written ``nn.Sequential`` of the same layers gives: weights move freely between this app and plain PyTorch.
A group builds plain modules too: an ``nn.Sequential`` for a sequence (one per repeat, inside another when it
repeats), and ``engine.blocks.Residual`` (``4.body.0.weight``, ``4.shortcut.0.weight``) or ``Branches``
(``7.branches.1.0.weight``).
"""
from __future__ import annotations

from torch import nn

from engine.blocks import Branches, Residual
from engine.errors import SpecError
from engine.groups import auto_shortcut
from engine.layers import build_layer
from engine.shapes import Shape, analyze, infer_layer
from engine.spec import LayerSpec, NetworkSpec


def build_model(spec: NetworkSpec) -> nn.Sequential:
    """Build the network; raises SpecError naming the first broken layer."""
    analysis = analyze(spec)
    if not analysis.ok:
        first, *others = analysis.errors
        more = f" (and {len(others)} more layer{'s' if len(others) > 1 else ''} with problems)" if others else ""
        raise SpecError(f"layer {first.path} ({first.kind}): {first.error}{more}")
    modules, _ = _chain(spec.layers, tuple(spec.input_shape))
    return nn.Sequential(*modules)


def _chain(layers: tuple[LayerSpec, ...], shape: Shape) -> tuple[list[nn.Module], Shape]:
    modules = []
    for layer in layers:
        module, shape = _build(layer, shape)
        modules.append(module)
    return modules, shape


def _build(layer: LayerSpec, shape: Shape) -> tuple[nn.Module, Shape]:
    """One layer's module and output shape (the design is known to be sound)."""
    if layer.is_group:
        copies = []
        for _ in range(layer.params["repeat"]):
            module, shape = _build_group(layer, shape)
            copies.append(module)
        module = copies[0] if len(copies) == 1 else nn.Sequential(*copies)
    else:
        module = build_layer(layer.kind, shape, layer.params)
        shape = infer_layer(layer.kind, shape, layer.params).shape
    if layer.frozen:
        module.requires_grad_(False)
    return module, shape


def _build_group(layer: LayerSpec, shape: Shape) -> tuple[nn.Module, Shape]:
    """One repeat of a group."""
    p = layer.params
    if p["mode"] == "branches":
        built = [_build(child, shape) for child in layer.layers]
        shapes = [out for _, out in built]
        out = shapes[0] if p["merge"] == "sum" else (sum(s[0] for s in shapes),) + shapes[0][1:]
        return Branches(*(module for module, _ in built), merge=p["merge"]), out
    body, out = _chain(layer.layers, shape)
    if p["mode"] == "sequence":
        return nn.Sequential(*body), out
    if p["shortcut"] == "custom":
        shortcut, _ = _chain(layer.shortcut, shape)
    else:
        shortcut, _ = _chain(auto_shortcut(shape, out, p["shortcut"] == "auto+bn", layer.id)[0], shape)
    activation = nn.ReLU() if p["activation"] == "ReLU" else nn.Identity()
    return Residual(nn.Sequential(*body), nn.Sequential(*shortcut), activation), out


def module_paths(spec: NetworkSpec) -> dict[str, list[str]]:
    """Each layer id -> the dotted names of the modules built for it in ``build_model(spec)`` (``"4.body.0"``);
    several for a layer inside a repeated group, one per copy; none for the layers of a shortcut that is not in use
    (set to auto, or in a group that is not residual), which build nothing."""
    paths: dict[str, list[str]] = {}

    def visit(layer: LayerSpec, names: list[str]) -> None:
        paths[layer.id] = names
        if not layer.is_group:
            return
        repeat = layer.params["repeat"]
        copies = names if repeat == 1 else [f"{name}.{r}" for name in names for r in range(repeat)]
        mode = layer.params["mode"]
        body = {"sequence": "", "residual": "body.", "branches": "branches."}[mode]
        for index, child in enumerate(layer.layers):
            visit(child, [f"{name}.{body}{index}" for name in copies])
        used = mode == "residual" and layer.params["shortcut"] == "custom"  # kept, but unbuilt, otherwise
        for index, child in enumerate(layer.shortcut):
            visit(child, [f"{name}.shortcut.{index}" for name in copies] if used else [])

    for index, layer in enumerate(spec.layers):
        visit(layer, [str(index)])
    return paths


def module_expression(path: str, root: str = "model") -> str:
    """Python for the module at a dotted name: "3.body.0" -> ``model[3].body[0]``."""
    return root + "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in path.split("."))
