"""The parts of the window that need torch, built on the meta device (no memory, no weights).

torch is imported here lazily, on first use, so the window shows before the
~2 s torch import; ``preload_torch`` warms it up in a background thread.
"""
from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChildRow:
    """One inner step of a block: attribute name ("" for a function such as relu or the residual
    sum), kind (class or function), one-line description, parameters, output shape."""

    name: str
    kind: str
    text: str
    params: int | None
    shape: tuple[int, ...] | None = None


PRELOAD = ("engine.build", "engine.export", "engine.training.trainer", "engine.data.bundle", "engine.io")


def preload_torch(modules=PRELOAD) -> threading.Thread:
    """Import torch and the Qt-free engine modules that use it in a daemon thread.

    The import lock makes a later import of the same module in the GUI thread
    wait for this one instead of importing twice.
    """
    def load():
        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError:  # the Train button's own import reports it to the person
                log.warning("Preloading %s failed", name, exc_info=True)

    thread = threading.Thread(target=load, name="torch-preload", daemon=True)
    thread.start()
    return thread


def _one_line(module) -> str:
    return " ".join(line.strip() for line in repr(module).splitlines())


def block_children(kind: str, in_shape, params: dict) -> list[ChildRow]:
    """The inner steps of a block in the order data flows through them, built on the meta device.

    The block's forward is traced with torch.fx, so the steps are its layers in the order it calls
    them plus what it does between them (ReLU, the residual sum, the concatenation of branches);
    a meta run of the trace records each step's output shape. A forward that cannot be traced
    lists the inner layers in registration order instead."""
    import torch

    from engine.layers import build_layer

    with torch.device("meta"):
        module = build_layer(kind, tuple(in_shape), params)
        try:
            return _flow_steps(module, tuple(in_shape))
        except Exception:  # tracing is a bonus: the layers still show
            log.warning("cannot trace the forward of %s; listing its layers as registered", kind, exc_info=True)
            return [ChildRow(name, type(child).__name__, _one_line(child), _count(child))
                    for name, child in module.named_children()]


FUNCTION_KINDS = {"relu": "ReLU", "add": "Sum", "iadd": "Sum", "cat": "Concat"}


def _flow_steps(module, in_shape: tuple[int, ...]) -> list[ChildRow]:
    import torch
    from torch import fx

    graph = fx.symbolic_trace(module)
    shapes = _traced_shapes(graph, torch.empty((1, *in_shape)))
    refer: dict[str, str] = {}  # node name -> how later steps name its output
    rows, previous = [], None
    for node in graph.graph.nodes:
        sources = [refer[arg.name] for arg in node.all_input_nodes]
        if node.op in ("placeholder", "get_attr"):  # the block's input, or a tensor it holds
            refer[node.name] = "input" if node.op == "placeholder" else str(node.target)
            previous = node.name
            continue
        if node.op == "output":
            continue
        if node.op == "call_module":
            child = graph.get_submodule(node.target)
            elsewhere = [arg.name for arg in node.all_input_nodes] != [previous]
            text = (f"from {', '.join(sources)}: " if elsewhere else "") + _one_line(child)
            rows.append(ChildRow(node.target, type(child).__name__, text, _count(child), shapes.get(node.name)))
            refer[node.name] = node.target
        else:  # a function or tensor method between the layers
            op = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
            text = " + ".join(sources) if FUNCTION_KINDS.get(op) == "Sum" else f"{op}({', '.join(sources)})"
            rows.append(ChildRow("", FUNCTION_KINDS.get(op, op), text, 0, shapes.get(node.name)))
            refer[node.name] = text
        previous = node.name
    return rows


def _traced_shapes(graph, sample) -> dict[str, tuple[int, ...]]:
    """Each traced step's output shape (without the batch dimension), from a run on ``sample``."""
    from torch import fx

    shapes: dict[str, tuple[int, ...]] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, node):
            out = super().run_node(node)
            if hasattr(out, "shape"):
                shapes[node.name] = tuple(out.shape[1:])
            return out

    try:
        Recorder(graph).run(sample)
    except Exception:  # shapes are a bonus; the rows show without them
        log.warning("cannot run the traced block on the meta device", exc_info=True)
    return shapes


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def model_text(spec) -> str:
    """print(model) of the built network (meta device, so even VGG costs no memory)."""
    import torch

    from engine.build import build_model

    with torch.device("meta"):
        return repr(build_model(spec))
