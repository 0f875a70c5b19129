"""Activation layer kinds: the element-wise ones (ReLU, GELU, ...), PReLU, and Softmax/LogSoftmax over a dim."""
from __future__ import annotations

from engine.errors import LayerError
from engine.layers.registry import Inference, LayerKind, P, batched_dim, register, same_shape, weight_and_bias


def _activation(name: str, help_: str, params=(), kwargs=lambda p: {}, key=()):
    def build(x, p):
        from torch import nn

        return getattr(nn, name)(**kwargs(p))

    register(LayerKind(name, "Activation", help_, tuple(params), same_shape, build, key=key))


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


register(LayerKind(
    "PReLU", "Activation", "Leaky ReLU whose negative slope is learned",
    (P("num_parameters", "choice", "single", "One slope for all, or one per channel",
       choices=("single", "per_channel")),),
    _prelu_infer, _prelu_build, key=("?{num_parameters}",), init=weight_and_bias(1, bias=False),
))


def _softmax_infer(x, p):
    batched_dim(p["dim"], len(x), "dim", "Softmax", shape=x)
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
    register(LayerKind(_cls, "Activation", _help,
                       (P("dim", "int", 1, "Dimension that sums to 1 (1 = first after the batch)", -8, 8),),
                       _softmax_infer, _softmax_build(_cls), key=("?dim={dim}",)))
