"""Convolution layer kinds: Conv1d, Conv2d and ConvTranspose2d, with their padding presets."""
from __future__ import annotations

from engine.errors import LayerError
from engine.layers.registry import (
    BIAS,
    Inference,
    LayerKind,
    P,
    need_rank,
    prod,
    register,
    resolve_padding,
    spatial_axes,
    weight_and_bias,
    window_axis,
)


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
        raise LayerError(f"{layer} in_channels {c} is not divisible by groups {g}: set groups to a divisor of {c}",
                         out_shape)
    if out % g:
        raise LayerError(f"{layer} out_channels {out} is not divisible by groups {g}: "
                         f"set groups to a divisor of {out}", out_shape)


def _conv_infer(dims: int):
    name = f"Conv{dims}d"
    meaning = "(channels, length)" if dims == 1 else "(channels, height, width)"
    hint = "add an Unflatten first" if dims == 2 else "add an Unflatten first, e.g. to (1, length)"

    def infer(x, p):
        need_rank(x, (dims + 1,), name, meaning, hint)
        k, s, d = p["kernel_size"], p["stride"], p["dilation"]
        pad = resolve_padding(p["padding"], k, d, s, name)
        sizes, formulas = [], []
        for axis, n in zip(spatial_axes(dims), x[1:], strict=True):
            out, formula = window_axis(axis, n, k, s, pad[:2], d, name)
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

register(LayerKind("Conv1d", "Convolution", "1-D convolution over (channels, length), e.g. for sequences",
                    _conv_params(16), _conv_infer(1), _conv_build(1), key=CONV_KEY,
                    init=weight_and_bias(3)))
register(LayerKind("Conv2d", "Convolution", "2-D convolution over (channels, height, width) images",
                    _conv_params(16), _conv_infer(2), _conv_build(2), key=CONV_KEY,
                    init=weight_and_bias(4)))


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
    need_rank(x, (3,), "ConvTranspose2d", "(channels, height, width)", "add an Unflatten first")
    k, s, d = p["kernel_size"], p["stride"], p["dilation"]
    pad, op = _convt_padding(p)
    if op >= max(s, d):
        raise LayerError(
            f"output_padding {op} must be smaller than stride {s} or dilation {d}: lower output_padding"
        )
    sizes, formulas = [], []
    for axis, n in zip("HW", x[1:], strict=True):
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


register(LayerKind(
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
    _convt_infer, _convt_build, key=CONV_KEY, init=weight_and_bias(4),
))
