"""Core layer kinds: Linear, Flatten, Unflatten and Identity, and the rules of thumb for a hidden Linear's width."""
from __future__ import annotations

import math
from fractions import Fraction

from engine.errors import LayerError
from engine.layers.registry import (
    BIAS,
    Inference,
    LayerKind,
    P,
    batched_dim,
    prod,
    register,
    same_shape,
    shape_tuple_text,
    weight_and_bias,
)


def _linear_infer(x, p):
    if not x:
        raise LayerError("Linear needs at least one input dimension: check the input shape")
    fin, fout = x[-1], p["out_features"]
    warning = ""
    if len(x) > 1:
        warning = (
            f"Linear acts on the last dimension only ({fin} features); "
            f"add a Flatten first to use all {prod(x)} inputs"
        )
    params = fin * fout + (fout if p["bias"] else 0)
    return Inference(x[:-1] + (fout,), params, 0, prod(x[:-1]) * fin * fout, warning=warning)


def _linear_build(x, p):
    from torch import nn

    return nn.Linear(x[-1], p["out_features"], bias=p["bias"])


register(LayerKind(
    "Linear", "Core", "Fully connected layer: y = xW^T + b on the last dimension",
    (P("out_features", "int", 10, "Number of output features", 1, 1_000_000), BIAS),
    _linear_infer, _linear_build, key=("{out_features}",), init=weight_and_bias(2),
))


def _flatten_infer(x, p):
    if not x:
        return Inference(x)
    start = batched_dim(p["start_dim"], len(x), "start_dim", "Flatten")
    end = batched_dim(p["end_dim"], len(x), "end_dim", "Flatten")
    if start > end:
        raise LayerError(f"Flatten start_dim {p['start_dim']} comes after end_dim {p['end_dim']}: swap them")
    return Inference(x[:start] + (prod(x[start : end + 1]),) + x[end + 1 :])


def _flatten_build(x, p):
    from torch import nn

    return nn.Flatten(p["start_dim"], p["end_dim"])


register(LayerKind(
    "Flatten", "Core", "Flattens dimensions into one, e.g. (C, H, W) -> (C*H*W) before a Linear",
    (P("start_dim", "int", 1, "First dimension to flatten (1 = first after the batch)", -8, 8),
     P("end_dim", "int", -1, "Last dimension to flatten (-1 = last)", -8, 8)),
    _flatten_infer, _flatten_build,
))


def _unflatten_infer(x, p):
    dim = batched_dim(p["dim"], len(x), "dim", "Unflatten") if x else 0
    sizes = tuple(p["sizes"])
    if not x:
        raise LayerError("Unflatten needs at least one dimension to split")
    if prod(sizes) != x[dim]:
        raise LayerError(
            f"Unflatten sizes {shape_tuple_text(sizes)} hold {prod(sizes)} values but dimension {p['dim']} "
            f"has {x[dim]}: make the sizes multiply to {x[dim]}"
        )
    return Inference(x[:dim] + sizes + x[dim + 1 :])


def _unflatten_build(x, p):
    from torch import nn

    return nn.Unflatten(p["dim"], tuple(p["sizes"]))


register(LayerKind(
    "Unflatten", "Core", "Splits one dimension into several, e.g. 784 -> (1, 28, 28)",
    (P("dim", "int", 1, "Dimension to split (1 = first after the batch)", -8, 8),
     P("sizes", "ints", (1, 28, 28), "New sizes; they must multiply to the old size", 1, 1_000_000)),
    _unflatten_infer, _unflatten_build, key=("{sizes}",),
))


def _identity_build(x, p):
    from torch import nn

    return nn.Identity()


register(LayerKind("Identity", "Core", "Passes its input through unchanged (a placeholder)", (), same_shape,
                   _identity_build))


def suggest_hidden_sizes(n_in: int, n_out: int) -> dict[str, int]:
    """The three rules of thumb for a hidden Linear layer's width, in exact integer arithmetic
    (sizes of any magnitude; a float would overflow past 10^308)."""
    product = n_in * n_out
    root = math.isqrt(product)
    return {
        "2/3 of input + output": max(1, round(Fraction(2 * n_in, 3) + n_out)),
        "mean of input and output": max(1, round(Fraction(n_in + n_out, 2))),
        "geometric mean": max(1, root + (product - root * root > root)),  # sqrt rounded to nearest
    }
