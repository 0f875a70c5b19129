"""Block layer kinds: VGG, NiN, Residual and Inception, each one row in a design.

A block is counted as the layers inside it, each exactly as it would be standing alone, so a block's
parameters, buffers, MACs, warnings and smallest batch follow the same rules as the palette's layers
(docs/macs.md). The glue (the residual addition, the concatenation) adds no MACs, as a bias does not.
The nn.Module classes they build live in ``engine.blocks`` (plain classes the export copies as source)."""
from __future__ import annotations

from dataclasses import replace

from engine.errors import LayerError
from engine.layers.registry import KINDS, Inference, LayerKind, P, Shape, need_rank, register


def _conv(out: int, kernel: int, stride: int = 1, padding: int = 0) -> tuple[str, dict]:
    return "Conv2d", dict(out_channels=out, kernel_size=kernel, stride=stride, padding=padding)


RELU: tuple[str, dict] = ("ReLU", {})


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
    need_rank(x, (3,), name, "(channels, height, width)", "add an Unflatten first")


def _vgg_infer(x, p):
    _need_image(x, "VGG block")
    (h, w), n, out = x[1:], p["num_convs"], p["out_channels"]
    if h < 2 or w < 2:
        raise LayerError(f"VGG block halves the size but the input is only {h}x{w}: "
                         "remove a block or use a larger input")
    cost = _stage(x, *[_conv(out, 3, padding=1), RELU] * n, ("MaxPool2d", dict(kernel_size=2, stride=2)))
    return replace(cost, formula=f"{n} x conv 3x3 p1 keeps {h}x{w}; max-pool 2 -> {h // 2}x{w // 2}")


def _vgg_build(x, p):
    from engine.blocks import VGGBlock

    return VGGBlock(x[0], p["num_convs"], p["out_channels"])


register(LayerKind(
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


register(LayerKind(
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


register(LayerKind(
    "Residual", "Blocks",
    "ResNet basic block: two 3x3 convs with BatchNorm plus a shortcut (1x1 conv when the shape changes)",
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


register(LayerKind(
    "Inception", "Blocks", "GoogLeNet block: 1x1, 1x1->3x3, 1x1->5x5 and pool->1x1 branches, concatenated",
    (P("c1", "int", 64, "Channels of the 1x1 branch", 1, 100_000),
     P("c2_reduce", "int", 96, "1x1 reduction before the 3x3 branch", 1, 100_000),
     P("c2", "int", 128, "Channels of the 3x3 branch", 1, 100_000),
     P("c3_reduce", "int", 16, "1x1 reduction before the 5x5 branch", 1, 100_000),
     P("c3", "int", 32, "Channels of the 5x5 branch", 1, 100_000),
     P("c4", "int", 32, "Channels of the pooling branch", 1, 100_000)),
    _inception_infer, _inception_build, key=("{c1}", "{c2}", "{c3}", "{c4}"), is_block=True,
))
