"""Normalization layer kinds: BatchNorm1d/2d, LayerNorm and GroupNorm, and the refusal of a
normalisation over a single value (its output would be constant)."""
from __future__ import annotations

from engine.errors import LayerError
from engine.layers.registry import (
    Inference,
    LayerKind,
    P,
    Shape,
    need_rank,
    prod,
    register,
    shape_tuple_text,
    weight_and_bias,
)

# BatchNorm refuses eps 0 while training, and the others divide by zero on a constant input.
EPS = P("eps", "float", 1e-5, "Added to the variance for numerical stability (must be > 0)", 1e-12, 1.0)

NORM_PARAMS = (
    EPS,
    P("momentum", "float", 0.1, "Weight of the current batch in the running statistics", 0.0, 1.0),
    P("affine", "bool", True, "Learn a scale (gamma) and shift (beta)"),
)


def _norm_macs(x: Shape, affine: bool) -> int:
    """One MAC per value to normalise, one more for the learned scale and shift (docs/macs.md)."""
    return prod(x) * (2 if affine else 1)


def _single_value(layer: str, what: str, x: Shape, fix: str) -> LayerError:
    """A per-sample normalisation over one value: x - mean is 0, so the output is constant and nothing
    before the layer learns. PyTorch runs it on a batch of two or more (torch_fails is False)."""
    return LayerError(f"{layer} normalises {what} over a single value, so its output is constant and no layer "
                      f"before it can learn: {fix}", x, torch_fails=False)


def _batchnorm_infer(ranks: tuple[int, ...], name: str, meaning: str):
    def infer(x, p):
        need_rank(x, ranks, name, meaning,
                  "use the BatchNorm that matches the input (1d after Linear, 2d after Conv2d)", keeps_shape=True)
        c = x[0]
        warnings, min_batch = [], 1
        if prod(x[1:]) == 1:  # a channel's values are batch x spatial: a batch of one would be a single value
            # Not a row warning: only the batch size decides (the trainer refuses 1, the window warns then).
            min_batch = 2
        if p["momentum"] == 0:
            warnings.append("momentum 0 never updates the running statistics, so evaluation normalises with "
                            "mean 0 and variance 1: raise momentum (0.1 is usual)")
        return Inference(x, 2 * c if p["affine"] else 0, 2 * c + 1, _norm_macs(x, p["affine"]),
                         warning="; ".join(warnings), min_batch=min_batch)

    return infer


def _batchnorm_build(cls_name: str):
    def build(x, p):
        from torch import nn

        return getattr(nn, cls_name)(x[0], eps=p["eps"], momentum=p["momentum"], affine=p["affine"])

    return build


register(LayerKind("BatchNorm1d", "Normalization",
                    "Batch normalization over features (after Linear) or (channels, length)",
                    NORM_PARAMS, _batchnorm_infer((1, 2), "BatchNorm1d", "(features) or (channels, length)"),
                    _batchnorm_build("BatchNorm1d"), init=weight_and_bias(1, True, when="affine")))
register(LayerKind("BatchNorm2d", "Normalization", "Batch normalization per channel of (channels, height, width)",
                    NORM_PARAMS, _batchnorm_infer((3,), "BatchNorm2d", "(channels, height, width)"),
                    _batchnorm_build("BatchNorm2d"), init=weight_and_bias(1, True, when="affine")))


def _layernorm_infer(x, p):
    n = p["normalized_dims"]
    if len(x) < n:  # PyTorch would be built over fewer dimensions than asked, and run
        raise LayerError(
            f"LayerNorm normalizes the last {n} dimensions but the input {shape_tuple_text(x)} has {len(x)}: "
            "lower normalized_dims",
            x, torch_fails=False,
        )
    elems = prod(x[-n:])
    if elems == 1:
        wider = next((k for k in range(n + 1, len(x) + 1) if prod(x[-k:]) > 1), None)
        fix = (f"set normalized_dims to {wider} so it normalises over {prod(x[-wider:])} values" if wider
               else "remove it: each sample holds a single value here")
        raise _single_value("LayerNorm", "each sample", x, fix)
    return Inference(x, 2 * elems if p["elementwise_affine"] else 0, 0, _norm_macs(x, p["elementwise_affine"]))


def _layernorm_build(x, p):
    from torch import nn

    return nn.LayerNorm(x[-p["normalized_dims"]:], eps=p["eps"], elementwise_affine=p["elementwise_affine"])


register(LayerKind(
    "LayerNorm", "Normalization", "Normalizes each sample over its last dimensions",
    (P("normalized_dims", "int", 1, "How many trailing dimensions to normalize over", 1, 8),
     EPS,
     P("elementwise_affine", "bool", True, "Learn a per-element scale and shift")),
    _layernorm_infer, _layernorm_build, init=weight_and_bias(1, True, when="elementwise_affine"),
))


def _groupnorm_infer(x, p):
    if not x:
        raise LayerError("GroupNorm needs channels to group, but each sample is a single value: remove the GroupNorm")
    c, g = x[0], p["num_groups"]
    if c % g:
        raise LayerError(f"GroupNorm: {c} channels are not divisible into {g} groups: "
                         f"set num_groups to a divisor of {c}", x)
    if c // g * prod(x[1:]) == 1:
        fewer = next(d for d in range(c // 2, 0, -1) if c % d == 0) if c > 1 else 0
        fix = (f"set num_groups to {fewer} so each group holds {c // fewer} channels" if fewer
               else "remove it: each sample holds a single value here")
        raise _single_value("GroupNorm", "each group", x, fix)
    return Inference(x, 2 * c if p["affine"] else 0, 0, _norm_macs(x, p["affine"]))


def _groupnorm_build(x, p):
    from torch import nn

    return nn.GroupNorm(p["num_groups"], x[0], eps=p["eps"], affine=p["affine"])


register(LayerKind(
    "GroupNorm", "Normalization", "Normalizes groups of channels per sample (independent of batch size)",
    (P("num_groups", "int", 2, "Number of channel groups; must divide the channels", 1, 100_000),
     EPS,
     P("affine", "bool", True, "Learn a per-channel scale and shift")),
    _groupnorm_infer, _groupnorm_build, key=("{num_groups}",), init=weight_and_bias(1, True, when="affine"),
))
