"""Dropout layer kinds: Dropout, Dropout2d and AlphaDropout."""
from __future__ import annotations

from engine.errors import LayerError
from engine.layers.registry import Inference, LayerKind, P, register

DROP_P = P("p", "float", 0.5, "Probability of zeroing an element", 0.0, 1.0)


def _dropout_build(cls_name: str):
    def build(x, p):
        from torch import nn

        return getattr(nn, cls_name)(p["p"])

    return build


def _dropout_infer(name: str):
    def infer(x, p):
        if name == "Dropout2d" and len(x) != 3:
            raise LayerError("Dropout2d zeroes whole channels of (channels, height, width): use Dropout here", x,
                             torch_fails=False)
        if p["p"] == 1:  # PyTorch accepts it and passes on nothing but zeros while training
            raise LayerError(f"{name} p 1 drops every value while training, so no layer before it can learn: "
                             f"lower p below 1 (0.5 is usual)", x, torch_fails=False)
        return Inference(x)

    return infer


for _cls, _help in (
    ("Dropout", "Zeroes random elements during training (p = drop probability)"),
    ("Dropout2d", "Zeroes whole random channels of (channels, height, width)"),
    ("AlphaDropout", "Dropout that keeps mean and variance, for SELU networks"),
):
    register(LayerKind(_cls, "Dropout", _help, (DROP_P,), _dropout_infer(_cls), _dropout_build(_cls), key=("{p}",)))
