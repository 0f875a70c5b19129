"""Core layer kinds: Linear, the shape layers (Flatten, Unflatten, Reshape, Permute, Squeeze) and Identity, and the
rules of thumb for a hidden Linear's width.

Dimensions are counted as in PyTorch with the batch included, so 1 is a sample's first dimension (Flatten's
start_dim, Unflatten's and Squeeze's dim, Permute's dims); a shape parameter (Unflatten's sizes, Reshape's shape)
is per sample, the batch left out."""
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
    if not x:  # a batch of single values: PyTorch takes only dims 0 and -1 there (the batch itself, left as it is)
        raise LayerError("Flatten needs dimensions to flatten, but each sample is a single value: remove the Flatten",
                         x, torch_fails=not {p["start_dim"], p["end_dim"]} <= {0, -1})
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


def _reshape_infer(x, p):
    shape, total = tuple(p["shape"]), prod(x)
    given = shape_tuple_text(shape)
    if shape.count(-1) > 1:
        raise LayerError(f"Reshape shape {given} has -1 in {shape.count(-1)} places: write -1 in one place at "
                         "most (its size is worked out from the others) and give the other sizes")
    bad = [s for s in shape if s < -1 or s == 0]
    if bad:
        raise LayerError(f"Reshape shape {given} has a size {bad[0]}: give sizes of 1 or more, or -1 in one place")
    known = prod(s for s in shape if s != -1)
    if -1 not in shape:
        if known != total:
            raise LayerError(f"Reshape shape {given} holds {known} values but the input {shape_tuple_text(x)} holds "
                             f"{total}: make the sizes multiply to {total}, or write -1 for one of them")
        return Inference(shape)
    if total % known:
        raise LayerError(f"Reshape shape {given} cannot hold the input's {total} values: the sizes besides -1 "
                         f"multiply to {known}, which does not divide {total}; change them so they do")
    return Inference(tuple(total // known if s == -1 else s for s in shape),
                     formula=f"-1 = {total}/{known} = {total // known}")


def _reshape_build(x, p):
    from engine.shape_modules import Reshape

    return Reshape(tuple(p["shape"]))


register(LayerKind(
    "Reshape", "Core", "Gives each sample a new shape holding the same values, e.g. 784 -> 28x28 for an LSTM",
    (P("shape", "ints", (28, 28), "New shape of each sample (the batch stays); -1 in one place is worked out "
                                  "from the others", -1, 1_000_000),),
    _reshape_infer, _reshape_build, key=("{shape}",),
))


def _permute_infer(x, p):
    dims, rank = tuple(p["dims"]), len(x)
    if not x:
        raise LayerError("Permute needs a sample with dimensions to reorder, but each sample is a single value: "
                         "remove the Permute")
    if sorted(dims) != list(range(1, rank + 1)):
        each = ", ".join(map(str, range(1, rank + 1)))
        raise LayerError(f"Permute dims {shape_tuple_text(dims)} are not an order of the sample's {rank} "
                         f"dimension{'s' if rank > 1 else ''} {shape_tuple_text(x)}: list each of {each} once "
                         f"(the batch stays first), e.g. {shape_tuple_text(tuple(range(rank, 0, -1)))}")
    return Inference(tuple(x[d - 1] for d in dims))


def _permute_build(x, p):
    from engine.shape_modules import Permute

    return Permute(tuple(p["dims"]))


register(LayerKind(
    "Permute", "Core", "Reorders each sample's dimensions, e.g. (sequence, features) -> (features, sequence)",
    (P("dims", "ints", (2, 1), "The sample's dimensions in their new order (1 = first after the batch)", 1, 8),),
    _permute_infer, _permute_build, key=("{dims}",),
))


def _squeeze_infer(x, p):
    if not x:
        raise LayerError("Squeeze needs a dimension of size 1, but each sample is a single value: remove the Squeeze")
    dim = batched_dim(p["dim"], len(x), "dim", "Squeeze")
    if x[dim] != 1:
        ones = [str(i + 1) for i, size in enumerate(x) if size == 1]
        fix = (f"set dim to {' or '.join(ones)}, where it has size 1" if ones else
               "remove the Squeeze (Flatten or Reshape merge dimensions of other sizes)")
        # PyTorch leaves a dimension of another size in place without a word, so the layers after it misread it
        raise LayerError(f"Squeeze dim {p['dim']} has size {x[dim]} in the sample {shape_tuple_text(x)}, not 1: "
                         f"{fix}", torch_fails=False)
    return Inference(x[:dim] + x[dim + 1 :])


def _squeeze_build(x, p):
    from engine.shape_modules import Squeeze

    return Squeeze(p["dim"])


register(LayerKind(
    "Squeeze", "Core", "Drops a dimension of size 1, e.g. 1x28x28 -> 28x28: 28 steps of 28 features for an LSTM",
    (P("dim", "int", 1, "Dimension of size 1 to drop (1 = first after the batch, -1 = last)", -8, 8),),
    _squeeze_infer, _squeeze_build, key=("?dim={dim}",),
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
