"""Small designs built of groups, shared by the group tests: a ResNet-style and a GoogLeNet-style network
(residual, branches and repeated groups, nested) and one that uses every group setting at once."""
from __future__ import annotations

from engine.groups import dense_block, group, inception_block, residual_block
from engine.spec import LayerSpec, NetworkSpec


def L(kind: str, id: str, **params) -> LayerSpec:  # noqa: N802, A002 - design shorthand
    return LayerSpec(kind, params, id)


def resnet_style() -> NetworkSpec:
    """A stem, a repeated identity block, a strided block (1x1 projection) and a head: ResNet-18 in miniature."""
    return NetworkSpec((3, 16, 16), (
        group("sequence", [L("Conv2d", "stem-conv", out_channels=8, kernel_size=3, padding=1),
                           L("BatchNorm2d", "stem-bn"), L("ReLU", "stem-relu")], id="stem", name="stem"),
        group("sequence", [residual_block(8, id="same")], id="stage1", repeat=2),
        residual_block(16, stride=2, id="down"),
        group("residual", [L("Conv2d", "wide-conv", out_channels=16, kernel_size=3, padding=1),
                           L("BatchNorm2d", "wide-bn")], id="wide", shortcut="auto+bn", activation="ReLU"),
        L("AdaptiveAvgPool2d", "pool", output_size=1),
        L("Flatten", "flat"),
        L("Linear", "head", out_features=10),
    ))


def googlenet_style() -> NetworkSpec:
    """A stem, two Inception blocks (the second repeated), a dense block and a head: GoogLeNet in miniature."""
    return NetworkSpec((3, 16, 16), (
        L("Conv2d", "stem", out_channels=8, kernel_size=3, padding=1),
        L("ReLU", "stem-relu"),
        inception_block(4, (4, 6), (2, 3), 3, id="inc1"),
        group("sequence", [inception_block(4, (4, 4), (2, 4), 4, id="inc2")], id="twice", repeat=2),
        L("MaxPool2d", "pool1", kernel_size=3, stride=2, padding=1),
        dense_block(2, 4, id="dense"),
        L("AdaptiveAvgPool2d", "pool", output_size=1),
        L("Flatten", "flat"),
        L("Linear", "head", out_features=10),
    ))


def every_setting() -> NetworkSpec:
    """Each group setting once: custom shortcut, summed branches, a leaf branch, an empty branch, a frozen group,
    a named group, a repeated residual, a sequence inside a branch inside a residual."""
    inner = group("branches", [
        group("sequence", [L("Conv2d", "in-a", out_channels=6, kernel_size=3, padding=1), L("ReLU", "in-b")],
              id="in-seq"),
        L("Conv2d", "in-leaf", out_channels=6, kernel_size=1),
    ], id="in-sum", merge="sum")
    return NetworkSpec((4, 8, 8), (
        L("Conv2d", "c0", out_channels=6, kernel_size=3, padding=1),
        group("residual", [inner, L("BatchNorm2d", "res-bn")], id="res", name="custom",
              shortcut="custom", shortcut_layers=[L("Conv2d", "sc", out_channels=6, kernel_size=1)],
              activation="ReLU"),
        group("residual", [L("Conv2d", "rep-conv", out_channels=6, kernel_size=3, padding=1)], id="rep", repeat=3),
        LayerSpec("Group", {"mode": "sequence"}, "frozen", frozen=True,
                  layers=(L("Conv2d", "fz-conv", out_channels=5, kernel_size=3, stride=2, padding=1),
                          L("BatchNorm2d", "fz-bn"))),
        group("branches", [group("sequence", (), id="skip"), L("Conv2d", "grow", out_channels=3, kernel_size=3,
                                                                   padding=1)], id="cat"),
        L("Flatten", "flat"),
        group("residual", [L("Linear", "fc", out_features=12)], id="fc-res", shortcut="auto+bn"),
        L("Linear", "out", out_features=3),
    ))


DESIGNS = {"resnet": resnet_style, "googlenet": googlenet_style, "every": every_setting}
