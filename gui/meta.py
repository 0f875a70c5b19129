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
    """One inner module of a block: attribute name, class, one-line repr, parameters, output shape."""

    name: str
    kind: str
    text: str
    params: int | None
    shape: tuple[int, ...] | None = None


PRELOAD = ("engine.build", "engine.export", "engine.training", "engine.data", "engine.io")


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
    """The inner layers of a block, built on the meta device; a meta forward pass records their output shapes."""
    import torch

    from engine.layers import build_layer

    shapes: dict[str, tuple[int, ...]] = {}
    with torch.device("meta"):
        module = build_layer(kind, tuple(in_shape), params)
        hooks = [child.register_forward_hook(_shape_recorder(name, shapes))
                 for name, child in module.named_children()]
        try:
            module(torch.empty((1, *in_shape)))
        except Exception:  # noqa: BLE001 - shapes are a bonus; the rows show without them
            log.debug("No inner shapes for %s on input %s", kind, in_shape, exc_info=True)
        finally:
            for hook in hooks:
                hook.remove()
    return [
        ChildRow(name, type(child).__name__, _one_line(child), sum(p.numel() for p in child.parameters()),
                 shapes.get(name))
        for name, child in module.named_children()
    ]


def _shape_recorder(name: str, shapes: dict):
    def record(_module, _inputs, output):
        if hasattr(output, "shape"):
            shapes[name] = tuple(output.shape[1:])

    return record


def model_text(spec) -> str:
    """print(model) of the built network (meta device, so even VGG costs no memory)."""
    import torch

    from engine.build import build_model

    with torch.device("meta"):
        return repr(build_model(spec))
