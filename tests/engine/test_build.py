"""build_model: a plain nn.Sequential whose print-out and state_dict match hand-written PyTorch."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from engine import blocks, groups
from engine.build import build_model
from engine.errors import SpecError
from engine.io import apply_state_dict
from engine.spec import LayerSpec, NetworkSpec
from tests.engine.d2l_reference import D2LInception, D2LResidual, nin_block, vgg_block

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def design(input_shape, *layers) -> NetworkSpec:
    return NetworkSpec(input_shape, tuple(LayerSpec(kind, params, f"l{i}") for i, (kind, params) in enumerate(layers)))


LENET = design(
    (1, 28, 28),
    ("Conv2d", dict(out_channels=6, kernel_size=5, padding=2)), ("Sigmoid", {}),
    ("AvgPool2d", dict(kernel_size=2, stride=2)),
    ("Conv2d", dict(out_channels=16, kernel_size=5)), ("BatchNorm2d", {}), ("Sigmoid", {}),
    ("AvgPool2d", dict(kernel_size=2, stride=2)),
    ("Flatten", {}), ("Linear", dict(out_features=120)), ("Dropout", dict(p=0.5)), ("Sigmoid", {}),
    ("Linear", dict(out_features=84)), ("BatchNorm1d", {}), ("ReLU", {}), ("Linear", dict(out_features=10)),
)


def hand_written_lenet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Dropout(0.5), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.ReLU(), nn.Linear(84, 10))


def assert_same_weights_and_function(built: nn.Module, reference: nn.Module, x: torch.Tensor) -> None:
    """Same state_dict keys and shapes; strict loads both ways; then the same outputs."""
    ours, theirs = built.state_dict(), reference.state_dict()
    assert list(ours) == list(theirs)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    built.load_state_dict(theirs, strict=True)
    reference.load_state_dict(built.state_dict(), strict=True)
    built.eval(), reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(built(x), reference(x))


# --------------------------------------------------------------------------- tests

def test_print_reads_like_the_hand_written_model():
    assert str(build_model(LENET)) == str(hand_written_lenet())
    assert str(build_model(LENET)).startswith(
        "Sequential(\n  (0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))")


def test_state_dict_moves_both_ways_with_plain_pytorch():
    torch.manual_seed(0)
    assert_same_weights_and_function(build_model(LENET), hand_written_lenet(), torch.randn(3, 1, 28, 28))
    assert list(build_model(LENET).state_dict())[:3] == ["0.weight", "0.bias", "3.weight"]


def test_groups_compute_what_d2l_blocks_compute_with_the_same_weights():
    """The palette's prefilled groups against the book's blocks: the same parameter count and output shape, and with
    the book's weights loaded (its Residual and Inception name them conv1.., p1_1..: renamed as LayerStudio 1's
    blocks were, engine.legacy) the same outputs. VGG and NiN blocks are nn.Sequential: their keys are ours."""
    torch.manual_seed(0)
    spec = NetworkSpec((3, 16, 16), (
        groups.vgg_block(2, 8, id="vgg"), groups.nin_block(6, 3, 1, 1, id="nin"), groups.residual_block(6, id="r1"),
        groups.residual_block(10, 2, id="r2"), groups.inception_block(2, (3, 4), (2, 3), 2, id="inc"),
        LayerSpec("AdaptiveAvgPool2d", {"output_size": 1}), LayerSpec("Flatten"),
        LayerSpec("Linear", {"out_features": 5})))
    reference = nn.Sequential(
        vgg_block(2, 3, 8), nin_block(8, 6, kernel_size=3, strides=1, padding=1),
        D2LResidual(6, 6), D2LResidual(6, 10, use_1x1conv=True, strides=2),
        D2LInception(10, 2, (3, 4), (2, 3), 2), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(11, 5))
    model = build_model(spec)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    for ours, theirs in zip(model, reference, strict=True):
        assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    with torch.no_grad():
        for name, tensor in reference.state_dict().items():  # trained-looking values, statistics included
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if "running_var" in name else torch.randn_like(tensor))
    report = apply_state_dict(model, reference.state_dict(), spec)
    assert report.renamed == 2 * 14 + 2 + 12  # conv1, bn1, conv2, bn2 (5 tensors a BatchNorm) twice, conv3, Inception
    model.eval(), reference.eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))
    keys = model.state_dict()
    assert "2.shortcut.0.weight" not in keys and "3.shortcut.0.weight" in keys and "4.branches.1.2.weight" in keys


def test_groups_build_plain_modules():
    model = build_model(NetworkSpec((3, 8, 8), (groups.residual_block(4, 2, id="r"), groups.vgg_block(1, 4, id="v"),
                                                groups.inception_block(1, (1, 2), (1, 2), 1, id="i"))))
    residual, vgg, inception = model
    assert isinstance(residual, blocks.Residual) and [n for n, _ in residual.named_children()] == \
        ["body", "shortcut", "activation"]
    assert [type(m).__name__ for m in residual.body] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d"]
    assert isinstance(vgg, nn.Sequential) and [type(m).__name__ for m in vgg] == ["Conv2d", "ReLU", "MaxPool2d"]
    assert isinstance(inception, blocks.Branches) and len(inception.branches) == 4
    assert "(0): Residual(\n    (body): Sequential(\n      (0): Conv2d(3, 4, kernel_size=(3, 3)" in str(model)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_output_choice(kind, bidirectional):
    torch.manual_seed(0)
    params = dict(hidden_size=5, num_layers=2, bidirectional=bidirectional)
    every = build_model(design((7, 3), (kind, {**params, "output": "all"})))
    last = build_model(design((7, 3), (kind, {**params, "output": "last"})))
    reference = getattr(nn, kind)(3, 5, num_layers=2, bidirectional=bidirectional, batch_first=True)
    assert list(every.state_dict()) == ["0." + k for k in reference.state_dict()]
    every.load_state_dict(nn.Sequential(reference).state_dict(), strict=True)
    last.load_state_dict(every.state_dict(), strict=True)
    x = torch.randn(4, 7, 3)
    with torch.no_grad():
        expected, state = reference(x)
        torch.testing.assert_close(every(x), expected)
        # "last" is each direction's final hidden state (the backward one ends at position 0): h_n of the top layer
        h_n = state[0] if kind == "LSTM" else state
        final = torch.cat((h_n[-2], h_n[-1]), dim=-1) if bidirectional else h_n[-1]
        torch.testing.assert_close(last(x), final)
    width = 10 if bidirectional else 5
    assert every(x).shape == (4, 7, width) and last(x).shape == (4, width)
    assert "output='last'" in str(last)


def test_embedding_then_lstm_runs_on_tokens():
    model = build_model(design((12,), ("Embedding", dict(num_embeddings=50, embedding_dim=8)),
                               ("LSTM", dict(hidden_size=6)), ("Linear", dict(out_features=2))))
    assert model(torch.randint(0, 50, (3, 12))).shape == (3, 2)


def test_padding_presets_build_to_pytorch_modules():
    model = build_model(design((1, 9, 9), ("Conv2d", dict(kernel_size=4, padding="same")),
                               ("Conv2d", dict(kernel_size=3, padding="full")),
                               ("ConvTranspose2d", dict(kernel_size=3, stride=2, padding="same"))))
    assert model[0].padding == "same" and model[1].padding == (2, 2)
    assert model(torch.zeros(1, 1, 9, 9)).shape == (1, 16, 22, 22)


def test_frozen_layers_do_not_train():
    spec = design((4,), ("Linear", dict(out_features=3)), ("Linear", dict(out_features=2)))
    spec = spec.with_layer(LayerSpec("Linear", dict(out_features=3), "l0", frozen=True))
    model = build_model(spec)
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]


def test_broken_design_raises_spec_error_naming_the_layer():
    spec = design((1, 4, 4), ("Conv2d", dict(out_channels=2, kernel_size=3, padding=1)), ("ReLU", {}),
                  ("Conv2d", dict(kernel_size=5)), ("Flatten", {}))
    with pytest.raises(SpecError, match=r"^layer 2 \(Conv2d\): kernel 5 is larger than the padded input 4"):
        build_model(spec)


def test_spec_error_counts_the_other_broken_layers():
    spec = design((1, 4, 4), ("Conv2d", dict(kernel_size=5)), ("Mystery", {}), ("Embedding", {}))
    with pytest.raises(SpecError, match=r"^layer 0 \(Conv2d\): .* \(and 2 more layers with problems\)$"):
        build_model(spec)


def test_design_that_torch_would_misread_is_refused_too():
    with pytest.raises(SpecError, match=r"^layer 0 \(LSTM\): LSTM needs \(sequence, features\) input"):
        build_model(design((1, 28, 28), ("LSTM", {})))
