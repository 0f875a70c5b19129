"""engine.export: the generated script rebuilds the same network as build_model, for every layer kind."""
from __future__ import annotations

import ast
import re

import pytest
import torch

from engine import groups
from engine.build import build_model
from engine.errors import SpecError
from engine.export import python_source
from engine.layers import KINDS
from engine.spec import LayerSpec, NetworkSpec
from engine.templates import load_template


def L(kind, **params):  # noqa: N802 - design shorthand
    return LayerSpec(kind, params)


IMAGE_DESIGN = NetworkSpec((3, 16, 16), (
    L("Conv2d", out_channels=8, kernel_size=3, padding="same"),
    L("BatchNorm2d", momentum=0.2),
    L("PReLU", num_parameters="per_channel"),
    L("Conv2d", out_channels=8, kernel_size=3, padding="full", dilation=2, groups=4, bias=False),
    L("GroupNorm", num_groups=4, eps=1e-3),
    L("Hardswish"),
    L("Conv2d", out_channels=8, kernel_size=3, padding="valid", stride=2),
    L("ConvTranspose2d", out_channels=6, kernel_size=3, stride=2, padding=1, output_padding=1),
    L("Dropout2d", p=0.1),
    groups.vgg_block(2, 8),
    groups.nin_block(8, 3, 1, 1),
    groups.residual_block(12, 2),
    groups.bottleneck_block(16, 4, 2),
    groups.inception_block(4, (4, 4), (2, 4), 4),
    groups.dense_block(2, 3),
    L("MaxPool2d", kernel_size=3, stride=1, padding=1),
    L("AvgPool2d", kernel_size=2, stride=1),
    L("AdaptiveMaxPool2d", output_size=2),
    L("AdaptiveAvgPool2d", output_size=2),
    L("Flatten", start_dim=2),
    L("Conv1d", out_channels=6, kernel_size=2, padding=1),
    L("BatchNorm1d"),
    L("MaxPool1d", kernel_size=2, stride=1),
    L("AvgPool1d", kernel_size=2, stride=1, padding=1),
    L("LayerNorm", normalized_dims=2, elementwise_affine=False),
    L("Flatten"),
    L("Linear", out_features=24, bias=False),
    L("Unflatten", dim=1, sizes=(4, 6)),
    L("Permute", dims=(2, 1)),
    L("Reshape", shape=(1, -1, 4)),
    L("Squeeze", dim=1),
    L("Flatten"),
    L("ReLU"), L("LeakyReLU", negative_slope=0.2), L("ReLU6"), L("ELU", alpha=0.5), L("GELU", approximate="tanh"),
    L("SiLU"), L("Sigmoid"), L("Tanh"), L("Identity"), L("Dropout", p=0.25), L("AlphaDropout", p=0.1),
    L("Linear", out_features=5),
    L("LogSoftmax", dim=-1),
    L("Softmax"),
))

TOKEN_DESIGN = NetworkSpec((7,), (
    L("Embedding", num_embeddings=50, embedding_dim=6),
    L("LSTM", hidden_size=5, num_layers=2, bidirectional=True, dropout=0.1, output="all"),
    L("GRU", hidden_size=4),
    LayerSpec("Linear", {"out_features": 3}, "head", frozen=True),
))


def run_script(source: str) -> dict:
    """Execute the script's definitions (not its __main__ part) and return its namespace."""
    namespace = {"__name__": "exported"}
    exec(compile(source, "exported_model.py", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("spec", [IMAGE_DESIGN, TOKEN_DESIGN], ids=["image", "tokens"])
def test_exported_model_is_the_built_model(spec):
    torch.manual_seed(0)
    built = build_model(spec).eval()
    source = python_source(spec)
    ast.parse(source)
    exported = run_script(source)["model"].eval()

    assert repr(exported) == repr(built)  # same classes with the same constructor arguments
    ours, theirs = built.state_dict(), exported.state_dict()
    assert list(ours) == list(theirs)
    assert [t.shape for t in ours.values()] == [t.shape for t in theirs.values()]
    exported.load_state_dict(ours, strict=True)
    assert [p.requires_grad for p in exported.parameters()] == [p.requires_grad for p in built.parameters()]
    if spec is TOKEN_DESIGN:
        x = torch.randint(0, 50, (3, *spec.input_shape))
    else:
        x = torch.randn(3, *spec.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), built(x))


def test_the_designs_above_cover_every_layer_kind():
    used = {layer.kind for spec in (IMAGE_DESIGN, TOKEN_DESIGN) for layer in spec.all_layers()}
    assert used == set(KINDS), f"add a layer of each new kind to a design here: {set(KINDS) - used}"


def test_script_reads_like_hand_written_pytorch():
    source = python_source(load_template("lenet"))
    assert "nn.Conv2d(1, 6, kernel_size=5, padding=2),  # 0: conv1 -> 6x28x28" in source
    assert "nn.Linear(120, 84)," in source
    assert "INPUT_SHAPE = (1, 28, 28)" in source
    assert "class " not in source and "functional" not in source  # no block classes when none are used
    assert 'if __name__ == "__main__":' in source


def test_block_classes_are_copied_once_from_engine_blocks():
    source = python_source(load_template("resnet18"))
    assert source.count("class Residual(nn.Module):") == 1 and "class Branches" not in source
    assert source.count("        Residual(  # ") == 8  # ResNet-18's eight blocks, nested in their stages
    assert "from engine" not in source  # standalone: needs torch only
    token_source = python_source(TOKEN_DESIGN)
    assert token_source.index("class _SequenceOutput") < token_source.index("class SequenceLSTM")
    assert "dtype=torch.long" in token_source
    assert "model[3].requires_grad_(False)" in token_source


def test_shape_layers_are_copied_in_and_called_as_written():
    """Reshape, Permute and Squeeze have no torch.nn class: the script defines engine.shape_modules' own."""
    source = python_source(IMAGE_DESIGN)
    for cls in ("Reshape", "Permute", "Squeeze"):
        assert source.count(f"class {cls}(nn.Module):") == 1
    for call in ("Permute((2, 1))", "Reshape((1, -1, 4))", "Squeeze(1)"):  # each on its own row, commented
        assert re.search(rf"\n    {re.escape(call)},  # \d+: ", source), call
    assert "from engine" not in source


def test_broken_design_is_not_exported():
    spec = NetworkSpec((1, 4, 4), (L("Conv2d", kernel_size=5),))
    with pytest.raises(SpecError, match="kernel 5"):
        python_source(spec)
