"""Groups made easy: the automatic residual shortcut, a group's row label, and the prefilled groups the
palette's Blocks offer (VGG, NiN, residual, bottleneck, Inception, dense), each an ordinary group the user can
open and change. Version 1 designs' fixed blocks are converted to these (engine.legacy)."""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from engine.errors import LayerError
from engine.layers import KINDS
from engine.layers.group import GROUP
from engine.spec import LayerSpec, new_id

Shape = tuple[int, ...]
AUTO_CONV = {1: "Linear", 2: "Conv1d", 3: "Conv2d"}  # the 1x1 projection per sample rank
AUTO_NORM = {1: "BatchNorm1d", 2: "BatchNorm1d", 3: "BatchNorm2d"}
STRIDE_MAX = int(KINDS["Conv2d"].param("stride").max or 1)  # the projection's stride bound


def group(mode: str = "sequence", layers=(), *, id: str | None = None, name: str = "",  # noqa: A002
          shortcut_layers=(), **params) -> LayerSpec:
    """A Group layer; ``params`` are its settings (repeat, merge, shortcut, activation)."""
    return LayerSpec(GROUP, {"mode": mode, **params}, id or new_id(), layers=tuple(layers),
                     shortcut=tuple(shortcut_layers), name=name)


def group_label(layer: LayerSpec) -> str:
    """A group's row label: its name (or mode), how many times it repeats, its branches and merge."""
    p = layer.params
    text = layer.name or {"sequence": "Sequence", "residual": "Residual", "branches": "Branches"}[p["mode"]]
    if p["mode"] == "branches":
        count = len(layer.layers)
        text += f" ({count} branch{'es' if count != 1 else ''}, {p['merge']})"
    return text + (f" ×{p['repeat']}" if p["repeat"] > 1 else "")


# --------------------------------------------------------------------------- the automatic shortcut

def auto_shortcut(x: Shape, y: Shape, with_norm: bool, base_id: str) -> tuple[tuple[LayerSpec, ...], str]:
    """The layers that carry input ``x`` to the body's output ``y`` (none when equal: identity) and a description;
    LayerError when no 1x1 projection can (the rank changes, or no stride gives the body's size)."""
    if x == y:
        return (), "identity"
    rank = len(x)
    if rank != len(y) or rank not in AUTO_CONV:
        raise LayerError(f"The body turns {_shape(x)} into {_shape(y)}, which no 1x1 projection can follow: "
                         "set shortcut to custom and give it layers that do")
    stride = _stride(x[1:], y[1:])
    if stride is None:
        raise LayerError(f"The body turns {_shape(x)} into {_shape(y)}, a size no strided 1x1 convolution gives: "
                         "set shortcut to custom, or change the body's strides")
    conv = AUTO_CONV[rank]
    params = {"out_features": y[0]} if rank == 1 else {"out_channels": y[0], "kernel_size": 1, "stride": stride}
    layers = [LayerSpec(conv, params, f"{base_id[:50]}-proj")]
    text = f"1x1 conv{f', stride {stride}' if stride > 1 else ''}, {x[0]} -> {y[0]} channels"
    if rank == 1:
        text = f"Linear {x[0]} -> {y[0]}"
    if with_norm:
        layers.append(LayerSpec(AUTO_NORM[rank], {}, f"{base_id[:50]}-norm"))
        text += " + BatchNorm"
    return tuple(layers), text


def _stride(sizes: Shape, targets: Shape) -> int | None:
    """The smallest stride s with ceil(n / s) == m (a 1x1 kernel's output size) on every axis, or None.

    Each axis allows the strides from ceil(n / m) up to ceil(n / (m - 1)) - 1 (unbounded when m is 1); a stride
    fits when it lies in all of them and within a convolution's own bound."""
    low, high = 1, STRIDE_MAX
    for n, m in zip(sizes, targets, strict=True):
        if not 1 <= m <= n:
            return None
        low = max(low, -(-n // m))
        if m > 1:
            high = min(high, -(-n // (m - 1)) - 1)
    return low if low <= high else None


def _shape(shape: Shape) -> str:
    return "x".join(map(str, shape))


# --------------------------------------------------------------------------- prefilled groups

def _ids(base: str | None):
    """Child ids derived from the group's: stable for templates, unique inside one design."""
    root = base or new_id()
    prefix, counter = root[:48], iter(range(1, 10_000))  # a child id stays within the 64 characters an id may have
    return root, lambda: f"{prefix}-{next(counter)}"


def _conv(next_id, out: int, kernel: int, stride: int = 1, padding: int = 0) -> LayerSpec:
    return LayerSpec("Conv2d", dict(out_channels=out, kernel_size=kernel, stride=stride, padding=padding), next_id())


def _relu(next_id) -> LayerSpec:
    return LayerSpec("ReLU", {}, next_id())


def _bn(next_id) -> LayerSpec:
    return LayerSpec("BatchNorm2d", {}, next_id())


def vgg_block(num_convs: int = 2, out_channels: int = 64, id: str | None = None) -> LayerSpec:  # noqa: A002
    """D2L's VGG block: num_convs x (3x3 conv, padding 1, ReLU), then a 2x2 max-pool."""
    root, next_id = _ids(id)
    layers = [layer for _ in range(num_convs) for layer in (_conv(next_id, out_channels, 3, padding=1), _relu(next_id))]
    layers.append(LayerSpec("MaxPool2d", dict(kernel_size=2, stride=2), next_id()))
    return group("sequence", layers, id=root, name="VGG block")


def nin_block(out_channels: int = 96, kernel_size: int = 3, stride: int = 1, padding: int = 1,
              id: str | None = None) -> LayerSpec:  # noqa: A002
    """D2L's NiN block: a conv, then two 1x1 convs, each followed by ReLU."""
    root, next_id = _ids(id)
    return group("sequence", [_conv(next_id, out_channels, kernel_size, stride, padding), _relu(next_id),
                              _conv(next_id, out_channels, 1), _relu(next_id),
                              _conv(next_id, out_channels, 1), _relu(next_id)], id=root, name="NiN block")


def residual_block(out_channels: int = 64, stride: int = 1, id: str | None = None) -> LayerSpec:  # noqa: A002
    """D2L's ResNet basic block: two 3x3 convs with BatchNorm, a shortcut (1x1 conv when the shape changes), ReLU."""
    root, next_id = _ids(id)
    body = [_conv(next_id, out_channels, 3, stride, 1), _bn(next_id), _relu(next_id),
            _conv(next_id, out_channels, 3, 1, 1), _bn(next_id)]
    return group("residual", body, id=root, name="Residual block", activation="ReLU")


def bottleneck_block(out_channels: int = 256, mid_channels: int = 64, stride: int = 1,
                     id: str | None = None) -> LayerSpec:  # noqa: A002
    """ResNet-50's bottleneck: 1x1 reduce, 3x3 (the stride), 1x1 expand, each with BatchNorm; the shortcut a
    1x1 conv with BatchNorm when the shape changes; ReLU after the sum."""
    root, next_id = _ids(id)
    body = [_conv(next_id, mid_channels, 1), _bn(next_id), _relu(next_id),
            _conv(next_id, mid_channels, 3, stride, 1), _bn(next_id), _relu(next_id),
            _conv(next_id, out_channels, 1), _bn(next_id)]
    return group("residual", body, id=root, name="Bottleneck block", shortcut="auto+bn", activation="ReLU")


def inception_block(c1: int = 64, c2: tuple[int, int] = (96, 128), c3: tuple[int, int] = (16, 32), c4: int = 32,
                    id: str | None = None) -> LayerSpec:  # noqa: A002
    """D2L's Inception block: 1x1, 1x1->3x3, 1x1->5x5 and pool->1x1 branches, concatenated along channels."""
    root, next_id = _ids(id)
    branches = [
        [_conv(next_id, c1, 1), _relu(next_id)],
        [_conv(next_id, c2[0], 1), _relu(next_id), _conv(next_id, c2[1], 3, padding=1), _relu(next_id)],
        [_conv(next_id, c3[0], 1), _relu(next_id), _conv(next_id, c3[1], 5, padding=2), _relu(next_id)],
        [LayerSpec("MaxPool2d", dict(kernel_size=3, stride=1, padding=1), next_id()), _conv(next_id, c4, 1),
         _relu(next_id)],
    ]
    return group("branches", [group("sequence", layers, id=next_id()) for layers in branches], id=root,
                 name="Inception block")


def dense_block(num_convs: int = 2, growth: int = 32, id: str | None = None) -> LayerSpec:  # noqa: A002
    """D2L's DenseNet block: num_convs times, (BatchNorm, ReLU, 3x3 conv of ``growth`` channels) concatenated to
    its own input: a branches group of an empty branch (the input) and the conv branch, repeated."""
    root, next_id = _ids(id)
    conv = group("sequence", [_bn(next_id), _relu(next_id), _conv(next_id, growth, 3, padding=1)], id=next_id())
    return group("branches", [group("sequence", (), id=next_id(), name="Input"), conv], id=root,
                 name="Dense block", repeat=num_convs)


class Preset(NamedTuple):
    """A palette entry that inserts a prefilled group."""

    name: str
    help: str
    make: Callable[[], LayerSpec]


PRESETS: dict[str, Preset] = {preset.name: preset for preset in (
    Preset("Group", "An empty group: add layers to it, then choose sequence, residual or branches",
           lambda: group("sequence")),
    Preset("VGG block", "Two 3x3 convolutions of 64 channels (padding 1), each followed by ReLU, then a 2x2 "
           "max-pool that halves H and W (VGG)", vgg_block),
    Preset("NiN block", "A 3x3 convolution of 96 channels, then two 1x1 convolutions, each followed by ReLU "
           "(Network in Network)", nin_block),
    Preset("Residual block", "ResNet's basic block: two 3x3 convolutions of 64 channels with BatchNorm, added to a "
           "shortcut (a 1x1 convolution when the shape changes), ReLU after the sum", residual_block),
    Preset("Bottleneck block", "ResNet-50's bottleneck: 1x1 to 64 channels, 3x3, 1x1 to 256 channels, each with "
           "BatchNorm, added to a shortcut (a 1x1 convolution with BatchNorm when the shape changes), ReLU after "
           "the sum", bottleneck_block),
    Preset("Inception block", "GoogLeNet's Inception block: four branches (1x1; 1x1 then 3x3; 1x1 then 5x5; 3x3 "
           "max-pool then 1x1) concatenated to 256 channels", inception_block),
    Preset("Dense block", "DenseNet's dense block: twice, BatchNorm, ReLU and a 3x3 convolution of 32 channels "
           "concatenated to its own input (branches: the input and the convolution, repeated)", dense_block),
)}
