"""Layer registry: one entry per layer kind.

Each entry knows its category, its parameter schema, how to infer its output
shape / parameter count / MACs from the incoming shape (pure Python, no torch,
so analysis is fast), and how to build the real ``nn.Module``, filling
``in_features`` / ``in_channels`` / ``num_features`` / ``input_size`` from the
incoming shape. Shapes never include the batch dimension.

Adding a layer kind = adding one ``_register(...)`` call.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Callable

from engine.errors import LayerError

Shape = tuple[int, ...]

PADDING_PRESETS = ("valid", "same", "full")
PARAM_TYPES = ("int", "float", "bool", "choice", "ints", "padding")
RANGED_TYPES = ("int", "float", "ints", "padding")  # every value of these has a declared min and max


@dataclass(frozen=True)
class Param:
    """One parameter of a layer kind: its type, default, range and help line."""

    name: str
    type: str
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inference:
    """What a layer does to one sample: output shape and its cost."""

    shape: Shape
    params: int = 0
    buffers: int = 0
    macs: int = 0
    formula: str = ""
    warning: str = ""
    min_batch: int = 1  # smallest training batch the layer can run on (BatchNorm with one value per channel: 2)


@dataclass(frozen=True)
class LayerKind:
    """A registry entry. ``key`` lists the short-form parts shown in a row,
    e.g. ``("{out_channels}", "k{kernel_size}", "?p{padding}")``; a leading
    ``?`` hides the part while the parameter has its default value."""

    name: str
    category: str
    help: str
    params: tuple[Param, ...]
    infer: Callable[[Shape, dict], Inference]
    build: Callable[[Shape, dict], Any]
    key: tuple[str, ...] = ()
    is_block: bool = False
    tokens: Callable[[dict], int] | None = None  # for a layer fed integer token indices: how many it accepts

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def short(self, params: dict) -> str:
        """Short form of the key parameters, e.g. ``Conv2d 6, k5, p2`` or ``VGGBlock 2x64``."""
        parts = []
        for part in self.key:
            template = part.lstrip("?")
            names = _PLACEHOLDER.findall(template)
            values = {name: params.get(name, self.param(name).default) for name in names}
            if part.startswith("?") and all(values[n] == self.param(n).default for n in names):
                continue
            if values.get("padding") is not None and isinstance(values["padding"], str):
                parts.append(values["padding"])  # a preset reads best alone: "Conv2d 16, k3, same"
                continue
            parts.append(_PLACEHOLDER.sub(lambda m: _short_value(values[m.group(1)]), template))
        return f"{self.name} {', '.join(parts)}" if parts else self.name


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _short_value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return str(value)


KINDS: dict[str, LayerKind] = {}
CATEGORIES = ("Core", "Convolution", "Pooling", "Normalization", "Dropout", "Activation", "Recurrent", "Blocks")


def _register(kind: LayerKind) -> None:
    assert kind.category in CATEGORIES and kind.name not in KINDS
    assert all(p.type in PARAM_TYPES for p in kind.params)
    for p in kind.params:  # a value in a file is either in a declared range or refused (no overflow reaches torch)
        assert p.type not in RANGED_TYPES or None not in (p.min, p.max), f"{kind.name}.{p.name} needs a min and a max"
    KINDS[kind.name] = kind


def kinds_by_category() -> dict[str, list[LayerKind]]:
    """Registry entries grouped by category, in palette order."""
    return {c: [k for k in KINDS.values() if k.category == c] for c in CATEGORIES}


def build_layer(kind_name: str, in_shape: Shape, params: dict):
    """Build the nn.Module for one layer, after checking it fits ``in_shape``."""
    kind = KINDS[kind_name]
    full = {**kind.defaults(), **params}
    kind.infer(tuple(in_shape), full)
    return kind.build(tuple(in_shape), full)


# --------------------------------------------------------------------------- helpers

def prod(shape) -> int:
    return math.prod(shape) if shape else 1


def _need_rank(x: Shape, ranks: tuple[int, ...], layer: str, meaning: str, hint: str, keeps_shape: bool = False) -> None:
    """Refuse a sample of the wrong rank. PyTorch may run such a layer anyway (it takes the
    batch for channels, or the sample for a batch) and silently misread the data, so
    ``torch_fails`` is False; a layer that keeps its input's shape still passes it on."""
    if len(x) not in ranks:
        raise LayerError(
            f"{layer} needs {meaning} input, got {shape_tuple_text(x)}: {hint}", x if keeps_shape else None, torch_fails=False
        )


def shape_tuple_text(shape: Shape) -> str:
    """A shape as a tuple in messages, as Python prints it: (1, 28, 28), (784,)."""
    return str(tuple(shape))


def _same_shape(x: Shape, p: dict) -> Inference:
    return Inference(tuple(x))


def _resolve_padding(padding, k: int, d: int, s: int, layer: str) -> tuple[int, int, str]:
    """(left, right, label) padding for one axis; label is the user's preset or ''."""
    if padding == "valid":
        return 0, 0, "valid"
    if padding == "same":
        if s != 1:
            raise LayerError(
                f"padding 'same' needs stride 1, got stride {s}: set stride to 1 or give padding as a number"
            )
        total = d * (k - 1)
        return total // 2, total - total // 2, "same"
    if padding == "full":
        return d * (k - 1), d * (k - 1), "full"
    return padding, padding, ""


def _window_axis(axis: str, n: int, k: int, s: int, pad: tuple[int, int], d: int, what: str) -> tuple[int, str]:
    """Output size of one sliding-window axis and its formula with numbers filled in."""
    left, right = pad
    eff = d * (k - 1) + 1
    if n + left + right < eff:
        kernel = f"kernel {k}" if d == 1 else f"dilated kernel {eff}"
        raise LayerError(
            f"{kernel} is larger than the padded input {n + left + right}: lower kernel_size or add padding"
        )
    out = (n + left + right - eff) // s + 1
    padded = f"{n} + 2*{left}" if left == right else f"{n} + {left} + {right}"
    window = f"{k}" if d == 1 else f"{d}*({k}-1) - 1"
    formula = f"{axis} = floor(({padded} - {window})/{s}) + 1 = {out}"
    return out, formula


def _spatial_axes(dims: int) -> str:
    return "L" if dims == 1 else "HW"


# --------------------------------------------------------------------------- params

def P(name, type_, default, help_="", min_=None, max_=None, choices=()):  # noqa: N802 - schema shorthand
    return Param(name, type_, default, help_, min_, max_, tuple(choices))


BIAS = P("bias", "bool", True, "Learn an additive bias")
DROP_P = P("p", "float", 0.5, "Probability of zeroing an element", 0.0, 1.0)


# --------------------------------------------------------------------------- core

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


_register(LayerKind(
    "Linear", "Core", "Fully connected layer: y = xW^T + b on the last dimension",
    (P("out_features", "int", 10, "Number of output features", 1, 1_000_000), BIAS),
    _linear_infer, _linear_build, key=("{out_features}",),
))


def _dim_range(rank: int) -> str:
    return "1" if rank == 1 else f"1..{rank}"


def _batched_dim(dim: int, rank: int, name: str, layer: str, shape: Shape | None = None) -> int:
    """Index into the per-sample shape of a dim given with the batch counted (dim 1 = first sample dim).

    ``shape`` is the layer's output shape if it is known despite a bad dim (Softmax keeps its input's)."""
    full = rank + 1
    if not -full <= dim < full:
        raise LayerError(
            f"{layer} {name} {dim} is out of range for a {rank}-D sample (batch included: -{full}..{full - 1}): "
            f"set {name} to {_dim_range(rank)} or -1", shape
        )
    if dim % full == 0:  # PyTorch accepts it and mixes the samples of a batch
        raise LayerError(f"{layer} {name} {dim} is the batch dimension: set {name} to {_dim_range(rank)} or -1",
                         shape, torch_fails=False)
    return dim % full - 1


def _flatten_infer(x, p):
    if not x:
        return Inference(x)
    start = _batched_dim(p["start_dim"], len(x), "start_dim", "Flatten")
    end = _batched_dim(p["end_dim"], len(x), "end_dim", "Flatten")
    if start > end:
        raise LayerError(f"Flatten start_dim {p['start_dim']} comes after end_dim {p['end_dim']}: swap them")
    return Inference(x[:start] + (prod(x[start : end + 1]),) + x[end + 1 :])


def _flatten_build(x, p):
    from torch import nn

    return nn.Flatten(p["start_dim"], p["end_dim"])


_register(LayerKind(
    "Flatten", "Core", "Flattens dimensions into one, e.g. (C, H, W) -> (C*H*W) before a Linear",
    (P("start_dim", "int", 1, "First dimension to flatten (1 = first after the batch)", -8, 8),
     P("end_dim", "int", -1, "Last dimension to flatten (-1 = last)", -8, 8)),
    _flatten_infer, _flatten_build,
))


def _unflatten_infer(x, p):
    dim = _batched_dim(p["dim"], len(x), "dim", "Unflatten") if x else 0
    sizes = tuple(p["sizes"])
    if not x:
        raise LayerError("Unflatten needs at least one dimension to split")
    if prod(sizes) != x[dim]:
        raise LayerError(
            f"Unflatten sizes {shape_tuple_text(sizes)} hold {prod(sizes)} values but dimension {p['dim']} has {x[dim]}: "
            f"make the sizes multiply to {x[dim]}"
        )
    return Inference(x[:dim] + sizes + x[dim + 1 :])


def _unflatten_build(x, p):
    from torch import nn

    return nn.Unflatten(p["dim"], tuple(p["sizes"]))


_register(LayerKind(
    "Unflatten", "Core", "Splits one dimension into several, e.g. 784 -> (1, 28, 28)",
    (P("dim", "int", 1, "Dimension to split (1 = first after the batch)", -8, 8),
     P("sizes", "ints", (1, 28, 28), "New sizes; they must multiply to the old size", 1, 1_000_000)),
    _unflatten_infer, _unflatten_build, key=("{sizes}",),
))


def _identity_build(x, p):
    from torch import nn

    return nn.Identity()


_register(LayerKind("Identity", "Core", "Passes its input through unchanged (a placeholder)", (), _same_shape, _identity_build))


# --------------------------------------------------------------------------- convolution

def _conv_params(default_out):
    return (
        P("out_channels", "int", default_out, "Number of output channels (filters)", 1, 100_000),
        P("kernel_size", "int", 3, "Side of the square kernel", 1, 1000),
        P("stride", "int", 1, "Step between kernel positions", 1, 1000),
        P("padding", "padding", 0, "Zeros added on each side, or a preset: valid (0), same (keep size), full", 0, 1000),
        P("dilation", "int", 1, "Spacing between kernel elements", 1, 1000),
        P("groups", "int", 1, "Split channels into groups convolved separately", 1, 100_000),
        BIAS,
    )


def _check_groups(c: int, p: dict, layer: str, out_shape=None) -> None:
    g, out = p["groups"], p["out_channels"]
    if c % g:
        raise LayerError(f"{layer} in_channels {c} is not divisible by groups {g}: set groups to a divisor of {c}", out_shape)
    if out % g:
        raise LayerError(f"{layer} out_channels {out} is not divisible by groups {g}: set groups to a divisor of {out}", out_shape)


def _conv_infer(dims: int):
    name = f"Conv{dims}d"
    meaning = "(channels, length)" if dims == 1 else "(channels, height, width)"
    hint = "add an Unflatten first" if dims == 2 else "add an Unflatten first, e.g. to (1, length)"

    def infer(x, p):
        _need_rank(x, (dims + 1,), name, meaning, hint)
        k, s, d = p["kernel_size"], p["stride"], p["dilation"]
        pad = _resolve_padding(p["padding"], k, d, s, name)
        sizes, formulas = [], []
        for axis, n in zip(_spatial_axes(dims), x[1:]):
            out, formula = _window_axis(axis, n, k, s, pad[:2], d, name)
            if pad[2] == "same":
                formula = f"{axis} = {out} (padding 'same' keeps the size at stride 1)"
            sizes.append(out)
            formulas.append(formula)
        shape = (p["out_channels"], *sizes)
        _check_groups(x[0], p, name, shape)
        per_out = x[0] // p["groups"] * k**dims
        params = p["out_channels"] * per_out + (p["out_channels"] if p["bias"] else 0)
        return Inference(shape, params, 0, prod(shape) * per_out, "; ".join(formulas))

    return infer


def _conv_build(dims: int):
    def build(x, p):
        from torch import nn

        cls = nn.Conv1d if dims == 1 else nn.Conv2d
        padding = p["padding"]
        if padding == "full":
            padding = p["dilation"] * (p["kernel_size"] - 1)
        return cls(x[0], p["out_channels"], p["kernel_size"], stride=p["stride"], padding=padding,
                   dilation=p["dilation"], groups=p["groups"], bias=p["bias"])

    return build


CONV_KEY = ("{out_channels}", "k{kernel_size}", "?s{stride}", "?p{padding}", "?d{dilation}", "?g{groups}")

_register(LayerKind("Conv1d", "Convolution", "1-D convolution over (channels, length), e.g. for sequences",
                    _conv_params(16), _conv_infer(1), _conv_build(1), key=CONV_KEY))
_register(LayerKind("Conv2d", "Convolution", "2-D convolution over (channels, height, width) images",
                    _conv_params(16), _conv_infer(2), _conv_build(2), key=CONV_KEY))


def _convt_padding(p: dict) -> tuple[int, int]:
    """(padding, output_padding) for nn.ConvTranspose2d from the user's padding and output_padding.

    Presets: 'valid' crops nothing; 'same' gives output = input x stride (as in Keras/TensorFlow),
    reached with a padding and an extra output_padding. 'full' has no transposed meaning
    (padding 0 already gives the full output)."""
    k, s, d, padding, op = p["kernel_size"], p["stride"], p["dilation"], p["padding"], p["output_padding"]
    if padding == "valid":
        return 0, op
    if padding == "full":
        raise LayerError("ConvTranspose2d has no 'full' padding (valid already gives the full output): "
                         "use valid, same or a number")
    if padding == "same":
        if op:
            raise LayerError("padding 'same' sets output_padding itself: set output_padding to 0")
        trim = d * (k - 1) + 1 - s  # 2*padding - output_padding must equal this
        pad = max(0, (trim + 1) // 2)
        extra = 2 * pad - trim
        if extra >= max(s, d):
            raise LayerError(f"padding 'same' cannot keep input x stride with kernel {k} at stride {s}: "
                             f"use an odd kernel_size or a stride of 2 or more")
        return pad, extra
    return padding, op


def _convt_infer(x, p):
    _need_rank(x, (3,), "ConvTranspose2d", "(channels, height, width)", "add an Unflatten first")
    k, s, d = p["kernel_size"], p["stride"], p["dilation"]
    pad, op = _convt_padding(p)
    if op >= max(s, d):
        raise LayerError(
            f"output_padding {op} must be smaller than stride {s} or dilation {d}: lower output_padding"
        )
    sizes, formulas = [], []
    for axis, n in zip("HW", x[1:]):
        out = (n - 1) * s - 2 * pad + d * (k - 1) + op + 1
        formula = f"{axis} = ({n}-1)*{s} - 2*{pad} + {d}*({k}-1) + {op} + 1 = {out}"
        if p["padding"] == "same":
            formula = f"{axis} = {n}*{s} = {out} (padding 'same': input x stride)"
        formulas.append(formula)
        if out <= 0:
            # at exactly 0 PyTorch returns an empty tensor instead of failing
            raise LayerError(f"ConvTranspose2d output {axis} would be {out}: lower padding or raise kernel_size/stride",
                             torch_fails=out < 0)
        sizes.append(out)
    shape = (p["out_channels"], *sizes)
    _check_groups(x[0], p, "ConvTranspose2d", shape)
    per_in = p["out_channels"] // p["groups"] * k * k
    params = x[0] * per_in + (p["out_channels"] if p["bias"] else 0)
    return Inference(shape, params, 0, prod(x) * per_in, "; ".join(formulas))


def _convt_build(x, p):
    from torch import nn

    pad, op = _convt_padding(p)
    return nn.ConvTranspose2d(x[0], p["out_channels"], p["kernel_size"], stride=p["stride"], padding=pad,
                              output_padding=op, groups=p["groups"], bias=p["bias"], dilation=p["dilation"])


_register(LayerKind(
    "ConvTranspose2d", "Convolution", "Transposed 2-D convolution: upsamples (channels, height, width)",
    (P("out_channels", "int", 16, "Number of output channels", 1, 100_000),
     P("kernel_size", "int", 2, "Side of the square kernel", 1, 1000),
     P("stride", "int", 2, "Upsampling step", 1, 1000),
     P("padding", "padding", 0, "Rows/columns cropped from each side of the output, or a preset: "
       "valid (none), same (output = input x stride)", 0, 1000),
     P("output_padding", "int", 0, "Extra rows/columns added to one side of the output", 0, 1000),
     P("dilation", "int", 1, "Spacing between kernel elements", 1, 1000),
     P("groups", "int", 1, "Split channels into groups", 1, 100_000),
     BIAS),
    _convt_infer, _convt_build, key=CONV_KEY,
))


# --------------------------------------------------------------------------- pooling

def _pool_infer(dims: int, name: str):
    meaning = "(channels, length)" if dims == 1 else "(channels, height, width)"

    def infer(x, p):
        _need_rank(x, (dims + 1,), name, meaning, "add an Unflatten first")
        k, s, pad = p["kernel_size"], p["stride"], p["padding"]
        sizes, formulas = [], []
        for axis, n in zip(_spatial_axes(dims), x[1:]):
            out, formula = _window_axis(axis, n, k, s, (pad, pad), 1, name)
            sizes.append(out)
            formulas.append(formula)
        shape = (x[0], *sizes)
        if 2 * pad > k:  # PyTorch refuses it; the size it would give is still known, so analysis goes on
            raise LayerError(f"{name} padding {pad} is more than half the kernel {k}: lower padding to at most {k // 2}",
                             shape)
        return Inference(shape, 0, 0, prod(shape) * k**dims if name.startswith("Avg") else 0, "; ".join(formulas))

    return infer


def _pool_build(cls_name: str):
    def build(x, p):
        from torch import nn

        return getattr(nn, cls_name)(p["kernel_size"], stride=p["stride"], padding=p["padding"])

    return build


POOL_PARAMS = (
    P("kernel_size", "int", 2, "Side of the pooling window", 1, 1000),
    P("stride", "int", 2, "Step between windows (usually = kernel_size)", 1, 1000),
    P("padding", "int", 0, "Implicit padding on each side (at most half the kernel)", 0, 500),
)
POOL_KEY = ("{kernel_size}", "s{stride}", "?p{padding}")  # stride always: PyTorch defaults it to the kernel

for _cls, _dims, _help in (
    ("MaxPool1d", 1, "Max over windows of (channels, length)"),
    ("MaxPool2d", 2, "Max over windows of (channels, height, width): halves H and W at kernel 2, stride 2"),
    ("AvgPool1d", 1, "Average over windows of (channels, length)"),
    ("AvgPool2d", 2, "Average over windows of (channels, height, width), as in LeNet"),
):
    _register(LayerKind(_cls, "Pooling", _help, POOL_PARAMS, _pool_infer(_dims, _cls), _pool_build(_cls), key=POOL_KEY))


def adaptive_window_total(n: int, o: int) -> int:
    """Summed length of the ``o`` windows adaptive pooling lays over ``n`` values: window i spans
    floor(i*n/o) to ceil((i+1)*n/o), so the total is n when o divides n (kernel = stride = n/o)."""
    return sum(-(-(i + 1) * n // o) - i * n // o for i in range(o))


def _adaptive_infer(name: str):
    averages = "Avg" in name

    def infer(x, p):
        _need_rank(x, (3,), name, "(channels, height, width)", "add an Unflatten first")
        o = p["output_size"]
        # counted like the fixed pools (docs/macs.md): an average costs one MAC per value of its window
        macs = x[0] * adaptive_window_total(x[1], o) * adaptive_window_total(x[2], o) if averages else 0
        return Inference((x[0], o, o), macs=macs, formula=f"H, W = {o} whatever the input ({x[1]}x{x[2]})")

    return infer


def _adaptive_build(cls_name: str):
    def build(x, p):
        from torch import nn

        return getattr(nn, cls_name)(p["output_size"])

    return build


for _cls, _help in (
    ("AdaptiveAvgPool2d", "Averages each channel down to a fixed output size (global pooling at size 1)"),
    ("AdaptiveMaxPool2d", "Max-pools each channel down to a fixed output size"),
):
    _register(LayerKind(_cls, "Pooling", _help, (P("output_size", "int", 1, "Output height and width", 1, 1000),),
                        _adaptive_infer(_cls), _adaptive_build(_cls), key=("{output_size}",)))


# --------------------------------------------------------------------------- normalization

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
        _need_rank(x, ranks, name, meaning, "use the BatchNorm that matches the input (1d after Linear, 2d after Conv2d)",
                   keeps_shape=True)
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


_register(LayerKind("BatchNorm1d", "Normalization", "Batch normalization over features (after Linear) or (channels, length)",
                    NORM_PARAMS, _batchnorm_infer((1, 2), "BatchNorm1d", "(features) or (channels, length)"),
                    _batchnorm_build("BatchNorm1d")))
_register(LayerKind("BatchNorm2d", "Normalization", "Batch normalization per channel of (channels, height, width)",
                    NORM_PARAMS, _batchnorm_infer((3,), "BatchNorm2d", "(channels, height, width)"),
                    _batchnorm_build("BatchNorm2d")))


def _layernorm_infer(x, p):
    n = p["normalized_dims"]
    if len(x) < n:  # PyTorch would be built over fewer dimensions than asked, and run
        raise LayerError(
            f"LayerNorm normalizes the last {n} dimensions but the input {shape_tuple_text(x)} has {len(x)}: lower normalized_dims",
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


_register(LayerKind(
    "LayerNorm", "Normalization", "Normalizes each sample over its last dimensions",
    (P("normalized_dims", "int", 1, "How many trailing dimensions to normalize over", 1, 8),
     EPS,
     P("elementwise_affine", "bool", True, "Learn a per-element scale and shift")),
    _layernorm_infer, _layernorm_build,
))


def _groupnorm_infer(x, p):
    c, g = x[0], p["num_groups"]
    if c % g:
        raise LayerError(f"GroupNorm: {c} channels are not divisible into {g} groups: set num_groups to a divisor of {c}", x)
    if c // g * prod(x[1:]) == 1:
        fewer = next(d for d in range(c // 2, 0, -1) if c % d == 0) if c > 1 else 0
        fix = (f"set num_groups to {fewer} so each group holds {c // fewer} channels" if fewer
               else "remove it: each sample holds a single value here")
        raise _single_value("GroupNorm", "each group", x, fix)
    return Inference(x, 2 * c if p["affine"] else 0, 0, _norm_macs(x, p["affine"]))


def _groupnorm_build(x, p):
    from torch import nn

    return nn.GroupNorm(p["num_groups"], x[0], eps=p["eps"], affine=p["affine"])


_register(LayerKind(
    "GroupNorm", "Normalization", "Normalizes groups of channels per sample (independent of batch size)",
    (P("num_groups", "int", 2, "Number of channel groups; must divide the channels", 1, 100_000),
     EPS,
     P("affine", "bool", True, "Learn a per-channel scale and shift")),
    _groupnorm_infer, _groupnorm_build, key=("{num_groups}",),
))


# --------------------------------------------------------------------------- dropout

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
    _register(LayerKind(_cls, "Dropout", _help, (DROP_P,), _dropout_infer(_cls), _dropout_build(_cls), key=("{p}",)))


# --------------------------------------------------------------------------- activations

def _activation(name: str, help_: str, params=(), kwargs=lambda p: {}, key=()):
    def build(x, p):
        from torch import nn

        return getattr(nn, name)(**kwargs(p))

    _register(LayerKind(name, "Activation", help_, tuple(params), _same_shape, build, key=key))


_activation("ReLU", "max(0, x): the default hidden activation")
_activation("LeakyReLU", "x if x > 0 else slope*x: keeps a small gradient for negatives",
            (P("negative_slope", "float", 0.01, "Slope for negative inputs", 0.0, 10.0),),
            lambda p: {"negative_slope": p["negative_slope"]}, ("?{negative_slope}",))
_activation("ReLU6", "min(max(0, x), 6), as in MobileNet")
_activation("ELU", "x if x > 0 else alpha*(exp(x)-1): smooth for negatives",
            (P("alpha", "float", 1.0, "Saturation value for negative inputs", 0.0, 100.0),),
            lambda p: {"alpha": p["alpha"]}, ("?{alpha}",))
_activation("GELU", "x * Phi(x): the Transformer activation",
            (P("approximate", "choice", "none", "Exact (none) or tanh approximation", choices=("none", "tanh")),),
            lambda p: {"approximate": p["approximate"]}, ("?{approximate}",))
_activation("SiLU", "x * sigmoid(x) (Swish)")
_activation("Hardswish", "Piecewise-linear Swish, as in MobileNetV3")
_activation("Sigmoid", "1 / (1 + exp(-x)): squashes to (0, 1), as in the original LeNet")
_activation("Tanh", "Squashes to (-1, 1), centred at 0")


def _prelu_infer(x, p):
    if p["num_parameters"] == "single":
        return Inference(x, 1)
    if not x:
        raise LayerError("PReLU per channel needs a channel dimension: use num_parameters single")
    return Inference(x, x[0])


def _prelu_build(x, p):
    from torch import nn

    return nn.PReLU(1 if p["num_parameters"] == "single" else x[0])


_register(LayerKind(
    "PReLU", "Activation", "Leaky ReLU whose negative slope is learned",
    (P("num_parameters", "choice", "single", "One slope for all, or one per channel", choices=("single", "per_channel")),),
    _prelu_infer, _prelu_build, key=("?{num_parameters}",),
))


def _softmax_infer(x, p):
    _batched_dim(p["dim"], len(x), "dim", "Softmax", shape=x)
    return Inference(x)


def _softmax_build(cls_name: str):
    def build(x, p):
        from torch import nn

        return getattr(nn, cls_name)(dim=p["dim"])

    return build


for _cls, _help in (
    ("Softmax", "Turns scores into probabilities summing to 1 (don't use before CrossEntropyLoss)"),
    ("LogSoftmax", "log(softmax(x)), numerically stable; pair with NLLLoss"),
):
    _register(LayerKind(_cls, "Activation", _help, (P("dim", "int", 1, "Dimension that sums to 1 (1 = first after the batch)", -8, 8),),
                        _softmax_infer, _softmax_build(_cls), key=("?dim={dim}",)))


# --------------------------------------------------------------------------- recurrent

def _embedding_infer(x, p):
    return Inference(x + (p["embedding_dim"],), p["num_embeddings"] * p["embedding_dim"])


def _embedding_build(x, p):
    from torch import nn

    return nn.Embedding(p["num_embeddings"], p["embedding_dim"])


_register(LayerKind(
    "Embedding", "Recurrent", "Looks up a learned vector for each integer token; must come first",
    (P("num_embeddings", "int", 1000, "Vocabulary size (largest token index + 1)", 1, 10_000_000),
     P("embedding_dim", "int", 32, "Length of each token's vector", 1, 100_000)),
    _embedding_infer, _embedding_build, key=("{num_embeddings}", "{embedding_dim}"),
    tokens=lambda p: p["num_embeddings"],
))


def _recurrent_infer(name: str, gates: int):
    def infer(x, p):
        _need_rank(x, (2,), name, "(sequence, features)", "add a Flatten or Unflatten first")
        seq, feat = x
        h, layers = p["hidden_size"], p["num_layers"]
        dirs = 2 if p["bidirectional"] else 1
        params, macs, fin = 0, 0, feat
        for _ in range(layers):
            per_dir = gates * (fin * h + h * h + 2 * h)
            params += dirs * per_dir
            macs += dirs * seq * gates * (fin * h + h * h)
            fin = h * dirs
        shape = (seq, h * dirs) if p["output"] == "all" else (h * dirs,)
        if p["dropout"] == 1 and layers > 1:
            raise LayerError(f"{name} dropout 1 drops every value between its stacked layers while training, so only "
                             f"the top layer can learn: lower dropout below 1", shape, torch_fails=False)
        warning = "dropout only acts between stacked layers: raise num_layers or set it to 0" if p["dropout"] and layers == 1 else ""
        return Inference(shape, params, 0, macs, warning=warning)

    return infer


def _recurrent_build(name: str):
    def build(x, p):
        from engine import blocks

        cls = getattr(blocks, f"Sequence{name}")
        return cls(x[1], p["hidden_size"], num_layers=p["num_layers"], bidirectional=p["bidirectional"],
                   dropout=p["dropout"], output=p["output"])

    return build


def _recurrent_params():
    return (
        P("hidden_size", "int", 64, "Size of the hidden state", 1, 100_000),
        P("num_layers", "int", 1, "Stacked recurrent layers", 1, 100),
        P("bidirectional", "bool", False, "Also read the sequence backwards (doubles the output)"),
        P("dropout", "float", 0.0, "Dropout between stacked layers", 0.0, 1.0),
        P("output", "choice", "last", "Pass on the last time step only, or all time steps", choices=("last", "all")),
    )


RNN_HINT = {"LSTM": "Long short-term memory over (sequence, features)", "GRU": "Gated recurrent unit over (sequence, features)"}
for _cls, _gates in (("LSTM", 4), ("GRU", 3)):
    _register(LayerKind(_cls, "Recurrent", RNN_HINT[_cls], _recurrent_params(), _recurrent_infer(_cls, _gates),
                        _recurrent_build(_cls), key=("{hidden_size}", "?x{num_layers}", "?bi={bidirectional}", "?{output}")))


# --------------------------------------------------------------------------- blocks
#
# A block is counted as the layers inside it, each exactly as it would be standing alone, so a block's
# parameters, buffers, MACs, warnings and smallest batch follow the same rules as the palette's layers
# (docs/macs.md). The glue (the residual addition, the concatenation) adds no MACs, as a bias does not.

def _conv(out: int, kernel: int, stride: int = 1, padding: int = 0) -> tuple[str, dict]:
    return "Conv2d", dict(out_channels=out, kernel_size=kernel, stride=stride, padding=padding)


RELU = ("ReLU", {})


def _total(shape: Shape, parts, formula: str = "") -> Inference:
    """Parts run inside one block, summed; ``shape`` is the block's output."""
    warnings = dict.fromkeys(part.warning for part in parts if part.warning)
    return Inference(shape, sum(part.params for part in parts), sum(part.buffers for part in parts),
                     sum(part.macs for part in parts), formula, "; ".join(warnings),
                     max((part.min_batch for part in parts), default=1))


def _step(x: Shape, layer: tuple[str, dict]) -> Inference:
    """One registry layer inside a block, inferred as if it stood alone."""
    kind, params = layer
    try:
        return KINDS[kind].infer(x, {**KINDS[kind].defaults(), **params})
    except LayerError as exc:  # an inner layer's output shape is not the block's
        raise LayerError(str(exc), None, exc.torch_fails) from None


def _stage(x: Shape, *layers: tuple[str, dict]) -> Inference:
    """Registry layers one after another inside a block, summed."""
    parts = []
    for layer in layers:
        parts.append(_step(x, layer))
        x = parts[-1].shape
    return _total(x, parts)


def _need_image(x, name):
    _need_rank(x, (3,), name, "(channels, height, width)", "add an Unflatten first")


def _vgg_infer(x, p):
    _need_image(x, "VGG block")
    (h, w), n, out = x[1:], p["num_convs"], p["out_channels"]
    if h < 2 or w < 2:
        raise LayerError(f"VGG block halves the size but the input is only {h}x{w}: remove a block or use a larger input")
    cost = _stage(x, *[_conv(out, 3, padding=1), RELU] * n, ("MaxPool2d", dict(kernel_size=2, stride=2)))
    return replace(cost, formula=f"{n} x conv 3x3 p1 keeps {h}x{w}; max-pool 2 -> {h // 2}x{w // 2}")


def _vgg_build(x, p):
    from engine.blocks import VGGBlock

    return VGGBlock(x[0], p["num_convs"], p["out_channels"])


_register(LayerKind(
    "VGGBlock", "Blocks", "VGG block: num_convs x (conv 3x3, pad 1, ReLU), then max-pool 2 (halves H and W)",
    (P("num_convs", "int", 2, "Number of 3x3 convolutions", 1, 20),
     P("out_channels", "int", 64, "Channels of every convolution", 1, 100_000)),
    _vgg_infer, _vgg_build, key=("{num_convs}x{out_channels}",), is_block=True,
))


def _nin_infer(x, p):
    _need_image(x, "NiN block")
    out = p["out_channels"]
    head = _step(x, _conv(out, p["kernel_size"], p["stride"], p["padding"]))
    tail = _stage(head.shape, RELU, _conv(out, 1), RELU, _conv(out, 1), RELU)
    return _total(tail.shape, (head, tail), head.formula)


def _nin_build(x, p):
    from engine.blocks import NiNBlock

    return NiNBlock(x[0], p["out_channels"], p["kernel_size"], p["stride"], p["padding"])


_register(LayerKind(
    "NiNBlock", "Blocks", "Network-in-Network block: conv, ReLU, then two 1x1 convs with ReLU",
    (P("out_channels", "int", 96, "Channels of the three convolutions", 1, 100_000),
     P("kernel_size", "int", 3, "Side of the first convolution's kernel", 1, 1000),
     P("stride", "int", 1, "Stride of the first convolution", 1, 1000),
     P("padding", "int", 1, "Padding of the first convolution", 0, 1000)),
    _nin_infer, _nin_build, key=("{out_channels}", "k{kernel_size}", "?s{stride}", "?p{padding}"), is_block=True,
))


def _residual_infer(x, p):
    _need_image(x, "Residual block")
    c, out, s = x[0], p["out_channels"], p["stride"]
    main = _stage(x, _conv(out, 3, s, 1), ("BatchNorm2d", {}), RELU, _conv(out, 3, 1, 1), ("BatchNorm2d", {}))
    project = s != 1 or c != out
    parts = [main, _stage(x, _conv(out, 1, s))] if project else [main]
    parts.append(_stage(main.shape, RELU))  # after the addition
    h, w = main.shape[1:]
    shortcut = "1x1 conv projection" if project else "identity"
    formula = (f"H = floor(({x[1]} + 2*1 - 3)/{s}) + 1 = {h}; W = floor(({x[2]} + 2*1 - 3)/{s}) + 1 = {w}; "
               f"shortcut: {shortcut}")
    return _total(main.shape, parts, formula)


def _residual_build(x, p):
    from engine.blocks import Residual

    return Residual(x[0], p["out_channels"], p["stride"])


_register(LayerKind(
    "Residual", "Blocks", "ResNet basic block: two 3x3 convs with BatchNorm plus a shortcut (1x1 conv when the shape changes)",
    (P("out_channels", "int", 64, "Channels of the block's output", 1, 100_000),
     P("stride", "int", 1, "Stride of the first conv (2 halves H and W)", 1, 16)),
    _residual_infer, _residual_build, key=("{out_channels}", "?s{stride}"), is_block=True,
))


def _inception_infer(x, p):
    _need_image(x, "Inception block")
    c1, c2r, c2, c3r, c3, c4 = (p[k] for k in ("c1", "c2_reduce", "c2", "c3_reduce", "c3", "c4"))
    branches = (
        _stage(x, _conv(c1, 1), RELU),
        _stage(x, _conv(c2r, 1), RELU, _conv(c2, 3, padding=1), RELU),
        _stage(x, _conv(c3r, 1), RELU, _conv(c3, 5, padding=2), RELU),
        _stage(x, ("MaxPool2d", dict(kernel_size=3, stride=1, padding=1)), _conv(c4, 1), RELU),
    )
    out = c1 + c2 + c3 + c4
    return _total((out, *x[1:]), branches, f"channels = {c1} + {c2} + {c3} + {c4} = {out}; H, W kept")


def _inception_build(x, p):
    from engine.blocks import Inception

    return Inception(x[0], p["c1"], (p["c2_reduce"], p["c2"]), (p["c3_reduce"], p["c3"]), p["c4"])


_register(LayerKind(
    "Inception", "Blocks", "GoogLeNet block: 1x1, 1x1->3x3, 1x1->5x5 and pool->1x1 branches, concatenated",
    (P("c1", "int", 64, "Channels of the 1x1 branch", 1, 100_000),
     P("c2_reduce", "int", 96, "1x1 reduction before the 3x3 branch", 1, 100_000),
     P("c2", "int", 128, "Channels of the 3x3 branch", 1, 100_000),
     P("c3_reduce", "int", 16, "1x1 reduction before the 5x5 branch", 1, 100_000),
     P("c3", "int", 32, "Channels of the 5x5 branch", 1, 100_000),
     P("c4", "int", 32, "Channels of the pooling branch", 1, 100_000)),
    _inception_infer, _inception_build, key=("{c1}", "{c2}", "{c3}", "{c4}"), is_block=True,
))


# --------------------------------------------------------------------------- hidden sizes

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
