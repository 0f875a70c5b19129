"""torchvision's classic models as designs: built by torchvision's own constructors on the meta device (no weights
exist), traced with ``torch.fx``, and the traced graph decomposed into series and parallel parts.

A chain of calls becomes a sequence; where the data forks and meets again in an ``add`` the parts become a residual
group (the longer path its body, the other its shortcut, a ReLU right after the sum its activation), in a
``torch.cat`` along channels a branches group. Consecutive layers under the same module path (``layer1``,
``features``) are gathered into a sequence group named after it. The layers themselves are read by
``engine.importing.mapping``, like every importer's, so what cannot be expressed is reported the same way.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, replace
from itertools import groupby

import torch
from torch import fx, nn
from torch.nn import functional as F  # noqa: N812 - PyTorch's own name

from engine import blocks
from engine.errors import SpecError
from engine.importing.mapping import (
    FUNCTIONAL,
    Hint,
    Imported,
    Mapping,
    Note,
    Unmapped,
    finish,
    layers_from_modules,
)
from engine.shapes import analyze

# name -> the constructor's arguments besides weights=None (GoogLeNet's auxiliary heads run only while training)
MODELS: dict[str, dict] = {
    "alexnet": {}, "vgg11": {}, "vgg16": {}, "resnet18": {}, "resnet34": {},
    "googlenet": {"aux_logits": False, "init_weights": False}, "mobilenet_v2": {},
}
DEFAULT_SHAPE = (3, 224, 224)  # what torchvision's classic models are made for
MERGES: dict[object, str] = {operator.add: "sum", torch.add: "sum", torch.cat: "concat"}
RELUS = (nn.ReLU,)


class NotSeriesParallelError(Exception):
    """The graph forks and meets in a way groups cannot hold; the message names the node."""


@dataclass(frozen=True)
class Item:
    """One module of the decomposed graph and the module path it was called under (its scope)."""

    module: nn.Module
    scope: tuple[str, ...]


def import_torchvision(name: str, input_shape: tuple[int, ...] | None = None) -> Imported:
    """torchvision's model ``name`` (e.g. ``resnet18``) as a design for ``input_shape`` (3x224x224 by default)."""
    import torchvision

    if name not in MODELS:
        raise SpecError(f"torchvision:{name} is not one of the models this imports: "
                        f"{', '.join(f'torchvision:{known}' for known in MODELS)}")
    with torch.device("meta"):
        model = getattr(torchvision.models, name)(weights=None, **MODELS[name]).eval()
    return trace_design(model, tuple(input_shape or DEFAULT_SHAPE), f"torchvision:{name}")


def trace_design(model: nn.Module, input_shape: tuple[int, ...], source: str) -> Imported:
    """A model (built on the meta device) as a design, through its torch.fx graph; SpecError naming the node where
    the graph forks and meets in a way groups cannot hold."""
    expected = sum(parameter.numel() for parameter in model.parameters())
    graph = fx.symbolic_trace(model).graph
    paths = {id(module): path for path, module in model.named_modules()}
    mapping = Mapping(lambda module: _locate(module, paths))
    try:
        modules = _Decomposer(graph, dict(model.named_modules()), mapping).modules()
    except NotSeriesParallelError as exc:
        raise SpecError(f"{source} cannot be held by groups: {exc}") from None
    imported = finish(layers_from_modules(modules, mapping), input_shape, mapping, source)
    got = analyze(imported.spec).params
    if got != expected:
        note = Note("the model", source, f"the model has {expected:,} parameters and the design {got:,}: the "
                    "parts listed above that could not be mapped hold the difference")
        imported = replace(imported, notes=(*imported.notes, note))
    return imported


def parameter_count(name: str) -> int:
    """How many parameters torchvision's own ``name`` has (built on the meta device)."""
    import torchvision

    with torch.device("meta"):
        model = getattr(torchvision.models, name)(weights=None, **MODELS[name])
    return sum(parameter.numel() for parameter in model.parameters())


def _locate(module: nn.Module, paths: dict[int, str]) -> tuple[str, str]:
    text = f"{type(module).__name__}({module.extra_repr()})"
    path = paths.get(id(module))
    return f"module {path}" if path else "the model", text if len(text) <= 80 else text[:76] + " ...)"


class _Decomposer:
    """Turns a traced graph into modules: leaf modules, and nn.Sequential, Residual and Branches holding them."""

    def __init__(self, graph: fx.Graph, modules: dict[str, nn.Module], mapping: Mapping):
        self.nodes = list(graph.nodes)
        self.order = {node: index for index, node in enumerate(self.nodes)}
        self.named, self.mapping = modules, mapping
        self.dominators: dict[fx.Node, frozenset[fx.Node]] = {}
        for node in self.nodes:
            inputs = _inputs(node)
            common = frozenset.intersection(*(self.dominators[i] for i in inputs)) if inputs else frozenset()
            self.dominators[node] = common | {node}

    def modules(self) -> list[nn.Module]:
        start = next(node for node in self.nodes if node.op == "placeholder")
        output = next(node for node in self.nodes if node.op == "output")
        end = output.args[0]
        if not isinstance(end, fx.Node):
            raise NotSeriesParallelError("its forward returns more than one tensor")
        return [item.module for item in self._nested(self._chain(start, end), 0)]

    def _chain(self, start: fx.Node, end: fx.Node) -> list[Item]:
        """The items that turn ``start``'s value into ``end``'s, walking back from ``end``."""
        items: list[Item] = []
        node, jumped = end, True
        while node is not start:
            if self.order[node] < self.order[start]:
                raise NotSeriesParallelError(f"{node.name} is reached from outside the part that starts at "
                                             f"{start.name}")
            if not jumped and len(node.users) > 1:
                raise NotSeriesParallelError(f"the output of {node.name} is used again further on")
            inputs = _inputs(node)
            activation = self._residual_activation(node)
            merge = node if activation is None else inputs[0]
            if node.op == "call_function" and node.target in MERGES or activation is not None:
                fork = self._fork(merge)
                items.append(self._merge(merge, fork, activation))
                node, jumped = fork, True
                continue
            if len(inputs) != 1:
                raise NotSeriesParallelError(f"{node.name} takes {len(inputs)} inputs")
            items.append(Item(self._module(node), _scope(node)))
            node, jumped = inputs[0], False
        items.reverse()
        return items

    def _residual_activation(self, node: fx.Node) -> nn.Module | None:
        """A ReLU right after a sum of two paths is the residual group's activation: that ReLU, else None."""
        inputs = _inputs(node)
        if len(inputs) != 1 or len(inputs[0].users) != 1 or MERGES.get(inputs[0].target) != "sum":
            return None
        module = self._module(node)
        return module if type(module) in RELUS else None

    def _fork(self, merge: fx.Node) -> fx.Node:
        """Where the paths a merge joins split: the nearest node every path to it passes through."""
        return max(self.dominators[merge] - {merge}, key=self.order.__getitem__)

    def _merge(self, merge: fx.Node, fork: fx.Node, activation: nn.Module | None) -> Item:
        scope = _scope(merge)
        inputs = _inputs(merge)
        if MERGES[merge.target] == "concat":
            dim = merge.args[1] if len(merge.args) > 1 else merge.kwargs.get("dim", 0)
            if dim != 1:
                raise NotSeriesParallelError(f"{merge.name} concatenates along dim {dim}; a branches group joins "
                                             "along dim 1")
        paths = [self._nested(self._chain(fork, node), len(scope)) for node in inputs]
        if MERGES[merge.target] == "concat":
            container: nn.Module = blocks.Branches(*(_one(path) for path in paths), merge="concat")
        elif len(paths) == 2:
            body, shortcut = sorted(paths, key=len, reverse=True)
            container = blocks.Residual(_sequence(body), _sequence(shortcut),
                                        activation if activation is not None else nn.Identity())
        else:
            container = blocks.Branches(*(_one(path) for path in paths), merge="sum")
        self.mapping.hints[id(container)] = Hint(name=".".join(scope))
        return Item(container, scope)

    def _module(self, node: fx.Node) -> nn.Module:
        """The module a call node runs; for a function (F.relu, torch.flatten) the nn layer with its arguments;
        for a call the design has no layer for, an Unmapped that says so where it stands."""
        if node.op == "call_module":
            return self.named[str(node.target)]
        name = getattr(node.target, "__name__", str(node.target))
        owner_is_torch = node.op == "call_function" and node.target in (getattr(torch, name, None),
                                                                        getattr(F, name, None))
        if owner_is_torch and name in FUNCTIONAL:
            arguments = list(node.args[1:])
            with torch.device("meta"):
                module = getattr(nn, FUNCTIONAL[name])(*arguments, **{k: v for k, v in node.kwargs.items()
                                                                      if k != "inplace"})
            self.mapping.hints[id(module)] = Hint()
            return module
        scope = ".".join(_scope(node))
        written = ", ".join(str(argument) for argument in node.args)
        return Unmapped(f"module {scope}" if scope else "the model", f"{node.name} = {name}({written})",
                        f"{name} has no layer in the design and is left out")

    def _nested(self, items: list[Item], depth: int) -> list[Item]:
        """Consecutive items under the same module path gathered into a sequence named after it (a path holding
        one item keeps the item; a group holding only one group is that group)."""
        out: list[Item] = []
        for key, run in groupby(items, key=lambda item: item.scope[depth] if len(item.scope) > depth else None):
            group = list(run)
            if key is None or len(group) == 1:
                out += group
                continue
            scope = group[0].scope[:depth + 1]
            inner = self._nested(group, depth + 1)
            if len(inner) == 1 and type(inner[0].module) is nn.Sequential:
                container = inner[0].module
            else:
                container = nn.Sequential(*(item.module for item in inner))
            self.mapping.hints[id(container)] = Hint(name=".".join(scope))
            out.append(Item(container, scope))
        return out


def _one(path: list[Item]) -> nn.Module:
    """A branch: its one module, or a sequence of its modules (none: the input itself)."""
    return path[0].module if len(path) == 1 else nn.Sequential(*(item.module for item in path))


def _sequence(path: list[Item]) -> nn.Sequential:
    """A residual body or shortcut: the path's modules (a path gathered into one sequence: that sequence)."""
    if len(path) == 1 and type(path[0].module) is nn.Sequential:
        return path[0].module
    return nn.Sequential(*(item.module for item in path))


def _inputs(node: fx.Node) -> list[fx.Node]:
    return list(node.all_input_nodes)


def _scope(node: fx.Node) -> tuple[str, ...]:
    """The module path a node was called under: ``layer1.0.conv1`` for a module, ``layer1.0`` for its add."""
    if node.op == "call_module":
        return tuple(str(node.target).split("."))
    stack = node.meta.get("nn_module_stack") or {}
    last = list(stack)[-1] if stack else ""
    return tuple(last.split(".")) if last else ()
