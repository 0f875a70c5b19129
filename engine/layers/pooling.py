"""Pooling layer kinds: fixed max and average pools (1-D and 2-D) and the adaptive 2-D pools."""
from __future__ import annotations

from engine.errors import LayerError
from engine.layers.registry import Inference, LayerKind, P, need_rank, prod, register, spatial_axes, window_axis


def _pool_infer(dims: int, name: str):
    meaning = "(channels, length)" if dims == 1 else "(channels, height, width)"

    def infer(x, p):
        need_rank(x, (dims + 1,), name, meaning, "add an Unflatten first")
        k, s, pad = p["kernel_size"], p["stride"], p["padding"]
        sizes, formulas = [], []
        for axis, n in zip(spatial_axes(dims), x[1:], strict=True):
            out, formula = window_axis(axis, n, k, s, (pad, pad), 1, name)
            sizes.append(out)
            formulas.append(formula)
        shape = (x[0], *sizes)
        if 2 * pad > k:  # PyTorch refuses it; the size it would give is still known, so analysis goes on
            raise LayerError(f"{name} padding {pad} is more than half the kernel {k}: "
                             f"lower padding to at most {k // 2}", shape)
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
    register(LayerKind(_cls, "Pooling", _help, POOL_PARAMS, _pool_infer(_dims, _cls), _pool_build(_cls), key=POOL_KEY))


def adaptive_window_total(n: int, o: int) -> int:
    """Summed length of the ``o`` windows adaptive pooling lays over ``n`` values: window i spans
    floor(i*n/o) to ceil((i+1)*n/o), so the total is n when o divides n (kernel = stride = n/o)."""
    return sum(-(-(i + 1) * n // o) - i * n // o for i in range(o))


def _adaptive_infer(name: str):
    averages = "Avg" in name

    def infer(x, p):
        need_rank(x, (3,), name, "(channels, height, width)", "add an Unflatten first")
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
    register(LayerKind(_cls, "Pooling", _help, (P("output_size", "int", 1, "Output height and width", 1, 1000),),
                        _adaptive_infer(_cls), _adaptive_build(_cls), key=("{output_size}",)))
