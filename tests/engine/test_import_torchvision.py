"""engine.importing.torchvision_models: torchvision's classic models traced with torch.fx on the meta device, as
designs with the same parameters; what groups cannot express is reported."""
from __future__ import annotations

import pytest
import torch

from engine.build import build_model
from engine.errors import SpecError
from engine.importing import import_model
from engine.importing.torchvision_models import MODELS, import_torchvision
from engine.shapes import analyze


def torchvision_count(name: str) -> int:
    import torchvision

    with torch.device("meta"):
        model = getattr(torchvision.models, name)(weights=None, **MODELS[name])
    return sum(parameter.numel() for parameter in model.parameters())


def groups_of(spec, mode: str):
    return [layer for layer in spec.all_layers() if layer.is_group and layer.params["mode"] == mode]


@pytest.mark.parametrize("name", list(MODELS))
def test_each_classic_model_imports_with_torchvisions_parameter_count(name):
    imported = import_torchvision(name)
    analysis = analyze(imported.spec)
    assert analysis.ok and analysis.output_shape == (1000,)
    assert analysis.params == torchvision_count(name)
    assert imported.spec.input_shape == (3, 224, 224)
    assert imported.left_out == ()
    if name != "googlenet":
        assert imported.notes == ()


def test_resnet_blocks_become_residual_groups_inside_named_stages():
    spec = import_torchvision("resnet18").spec
    assert [layer.name for layer in spec.layers if layer.is_group] == ["layer1", "layer2", "layer3", "layer4"]
    blocks = groups_of(spec, "residual")
    assert len(blocks) == 8 and all(block.params["activation"] == "ReLU" for block in blocks)
    assert [block.name for block in blocks[:3]] == ["layer1.0", "layer1.1", "layer2.0"]
    # the downsampling blocks keep torchvision's 1x1 convolution without bias, and its BatchNorm, as a shortcut
    custom = [block for block in blocks if block.params["shortcut"] == "custom"]
    assert len(custom) == 3
    assert [(layer.kind, layer.params.get("bias")) for layer in custom[0].shortcut] == [("Conv2d", False),
                                                                                      ("BatchNorm2d", None)]
    assert all(block.params["shortcut"] == "auto" and not block.shortcut for block in blocks if block not in custom)


def test_googlenet_inception_blocks_are_four_branches_and_ceil_mode_is_reported():
    imported = import_torchvision("googlenet")
    inception = groups_of(imported.spec, "branches")
    assert len(inception) == 9 and all(len(block.layers) == 4 and block.params["merge"] == "concat"
                                       for block in inception)
    assert inception[0].name == "inception3a"
    assert [note.sentence() for note in imported.notes] == [
        "Module maxpool1: MaxPool2d(kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=True): ceil_mode=True "
        "has no setting in the design and is left out, so the design gives 64x55x55 here where PyTorch's layer gives "
        "64x56x56",
        "Module maxpool4: MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=True): ceil_mode=True "
        "has no setting in the design and is left out, so the design gives 832x6x6 here where PyTorch's layer gives "
        "832x7x7"]


def test_mobilenet_inverted_residuals_add_without_activation():
    spec = import_torchvision("mobilenet_v2").spec
    blocks = groups_of(spec, "residual")
    assert len(blocks) == 10 and {block.params["activation"] for block in blocks} == {"none"}
    depthwise = [layer for layer in spec.all_layers() if layer.kind == "Conv2d" and layer.params["groups"] > 1]
    assert len(depthwise) == 17


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_the_design_computes_what_torchvision_computes(name, one_torch_thread):
    """torchvision's own weights load into the design by order and give the same output (a small input)."""
    import torchvision

    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)(weights=None).eval()
    ours = build_model(import_torchvision(name, (3, 32, 32)).spec).eval()
    values = list(theirs.state_dict().values())
    keys = list(ours.state_dict())
    assert [tuple(v.shape) for v in values] == [tuple(v.shape) for v in ours.state_dict().values()]
    ours.load_state_dict(dict(zip(keys, values, strict=True)))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


def test_unknown_models_are_named_with_the_known_ones():
    with pytest.raises(SpecError, match="torchvision:resnet50 is not one of the models this imports: "
                                        "torchvision:alexnet, torchvision:vgg11"):
        import_model("torchvision:resnet50")


class Scaled(torch.nn.Module):
    """A chain with an operation the design has no layer for, and a layer the registry lacks."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.norm = torch.nn.InstanceNorm2d(4)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x):
        x = self.norm(self.conv(x)) * 2
        return self.head(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


class Tangled(torch.nn.Module):
    """DenseNet-like reuse: one output feeds a later layer and the final concatenation."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 3, 1), torch.nn.Conv2d(3, 3, 1)

    def forward(self, x):
        y = self.a(x)
        return torch.cat([y, self.b(y), x], 1)


def test_what_a_traced_model_cannot_express_is_reported():
    from engine.importing.torchvision_models import trace_design

    with torch.device("meta"):
        model = Scaled()
    imported = trace_design(model, (3, 8, 8), "scaled")
    assert [layer.kind for layer in imported.spec.layers] == ["Conv2d", "AdaptiveAvgPool2d", "Flatten", "Linear"]
    first, second = (note.sentence() for note in imported.notes)
    assert first.startswith("Module norm: InstanceNorm2d(4, eps=1e-05, ")
    assert first.endswith("): InstanceNorm2d has no layer kind in the design: add the nearest layer by hand, or leave "
                          "it out")
    assert second == "The model: mul = mul(norm, 2): mul has no layer in the design and is left out"
    with torch.device("meta"):
        tangled = Tangled()
    with pytest.raises(SpecError, match="tangled cannot be held by groups: the output of a is used again further on"):
        trace_design(tangled, (3, 4, 4), "tangled")
