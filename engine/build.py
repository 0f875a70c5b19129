"""Turn a design into a real ``nn.Sequential``.

The layers sit directly in the Sequential, so ``state_dict`` keys are
``0.weight``, ``1.bias``, ... exactly as a hand-written ``nn.Sequential`` of
the same layers gives: weights move freely between this app and plain PyTorch.
"""
from __future__ import annotations

from torch import nn

from engine.errors import SpecError
from engine.layers import build_layer
from engine.shapes import analyze
from engine.spec import NetworkSpec


def build_model(spec: NetworkSpec) -> nn.Sequential:
    """Build the network; raises SpecError naming the first broken layer."""
    analysis = analyze(spec)
    if not analysis.ok:
        first, *others = analysis.errors
        more = f" (and {len(others)} more layer{'s' if len(others) > 1 else ''} with problems)" if others else ""
        raise SpecError(f"layer {first.index} ({first.kind}): {first.error}{more}")
    modules = []
    for layer, row in zip(spec.layers, analysis.rows, strict=True):
        assert row.in_shape is not None  # a design without errors knows every shape
        module = build_layer(layer.kind, row.in_shape, layer.params)
        if layer.frozen:
            module.requires_grad_(False)
        modules.append(module)
    return nn.Sequential(*modules)
