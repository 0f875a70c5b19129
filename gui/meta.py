"""The parts of the window that need torch, built on the meta device (no memory, no weights).

torch is imported here lazily, on first use, so the window shows before the
~2 s torch import; ``preload_torch`` warms it up in a background thread.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class ChildRow:
    """One inner module of a block: attribute name, one-line repr, parameter count."""

    name: str
    text: str
    params: int | None


def preload_torch() -> threading.Thread:
    """Import torch (and the model builder) in a daemon thread; the import lock makes later imports wait for it."""
    def load():
        import engine.build  # noqa: F401 - imports torch

    thread = threading.Thread(target=load, name="torch-preload", daemon=True)
    thread.start()
    return thread


def _one_line(module) -> str:
    return " ".join(line.strip() for line in repr(module).splitlines())


def block_children(kind: str, in_shape, params: dict) -> list[ChildRow]:
    """The inner layers of a block, built on the meta device."""
    import torch

    from engine.layers import build_layer

    with torch.device("meta"):
        module = build_layer(kind, tuple(in_shape), params)
    return [
        ChildRow(name, _one_line(child), sum(p.numel() for p in child.parameters()))
        for name, child in module.named_children()
    ]


def model_text(spec) -> str:
    """print(model) of the built network (meta device, so even VGG costs no memory)."""
    import torch

    from engine.build import build_model

    with torch.device("meta"):
        return repr(build_model(spec))
