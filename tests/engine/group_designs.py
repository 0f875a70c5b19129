"""Small designs built of groups, shared by the group tests: a ResNet-style and a GoogLeNet-style network
(residual, branches and repeated groups, nested) and one that uses every group setting at once; and hypothesis
arguments for the palette's prefilled groups."""
from __future__ import annotations

from hypothesis import strategies as st

from engine.groups import dense_block, group, inception_block, residual_block
from engine.spec import LayerSpec, NetworkSpec

_SIZE = st.integers(1, 3)
PRESET_PARAMS = {  # small arguments for the palette's prefilled groups (engine.groups), drawn by hypothesis
    "vgg_block": st.fixed_dictionaries({"num_convs": st.integers(1, 2), "out_channels": st.integers(1, 6)}),
    "nin_block": st.fixed_dictionaries({"out_channels": st.integers(1, 6), "kernel_size": st.integers(1, 5),
                                        "stride": st.integers(1, 3), "padding": st.integers(0, 3)}),
    "residual_block": st.fixed_dictionaries({"out_channels": st.integers(1, 6), "stride": st.integers(1, 3)}),
    "inception_block": st.fixed_dictionaries({"c1": _SIZE, "c2": st.tuples(_SIZE, _SIZE),
                                              "c3": st.tuples(_SIZE, _SIZE), "c4": _SIZE}),
}


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
