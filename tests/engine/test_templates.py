"""Every template reproduces its original network: the test writes the original in plain torch
(as the seed notes and Dive into Deep Learning do, independently of the registry) and compares
shapes, parameter counts and state_dict layout with what analyze and build_model give."""
from __future__ import annotations

import json
from itertools import pairwise

import pytest
import torch
from torch import nn

from engine.build import build_model
from engine.errors import SpecError
from engine.io import check_fit
from engine.shapes import analyze
from engine.spec import NetworkSpec
from engine.templates import TEACHING_ORDER, TemplateInfo, list_templates, load_design, load_template
from resources import TEMPLATES
from tests.engine.d2l_reference import D2LInception, D2LResidual, nin_block, vgg_block

NAMES = ("softmax-regression", "linear-regression", "mlp", "mlp-784-500", "cnn", "autoencoder", "cifar-cnn",
         "lenet", "lenet-d2l", "lenet-bn", "alexnet", "vgg", "nin", "resnet18", "googlenet", "rnn-mnist", "birnn-mnist")


# --------------------------------------------------------------------------- the originals, in plain torch

def resnet_block(input_channels, num_channels, num_residuals, first_block=False):
    blk = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(D2LResidual(input_channels, num_channels, use_1x1conv=True, strides=2))
        else:
            blk.append(D2LResidual(num_channels, num_channels))
    return blk


class NotesRNN(nn.Module):
    """Seed 003, 3.3: the notes' RNN (Many-to-One) as they write it, bidirectional as in 3.3.1 (where the Linear
    takes both directions, hidden_size * 2); the image goes in as their training loop gives it,
    ``images.view(-1, sequence_length, input_size)``."""

    def __init__(self, input_size=28, hidden_size=32, num_layers=2, num_classes=10, bidirectional=False):
        super().__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def forward(self, x):
        x = x.view(-1, 28, 28)
        directions = 2 if self.lstm.bidirectional else 1
        h0 = torch.zeros(self.num_layers * directions, x.size(0), self.hidden_size)
        c0 = torch.zeros(self.num_layers * directions, x.size(0), self.hidden_size)
        out, _ = self.lstm(x, (h0, c0))
        return self.fc(out[:, -1, :])  # decode the hidden state of the last time step


def original(name: str) -> nn.Module:
    """The network as the seed notes / D2L write it (flat nn.Sequential where the original is one)."""
    if name == "softmax-regression":  # seed 001 / D2L 3.7
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    if name == "linear-regression":  # seed 001 / D2L 3.3
        return nn.Sequential(nn.Linear(2, 1))
    if name == "mlp":  # seed 000
        return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Dropout(),
                             nn.Linear(512, 10))
    if name == "mlp-784-500":  # seed 003, 3.1: fc1, relu, fc2 on images.view(-1, 28*28)
        return nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 10))
    if name == "cnn":  # seed 003, 3.2: layer1, layer2, fc after out.view(out.size(0), -1)
        return nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=5, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(7 * 7 * 32, 10))
    if name == "autoencoder":  # seed 003, 4: encoder then decoder
        return nn.Sequential(
            nn.Linear(28 * 28, 128), nn.Tanh(), nn.Linear(128, 64), nn.Tanh(), nn.Linear(64, 12), nn.Tanh(),
            nn.Linear(12, 3),
            nn.Linear(3, 12), nn.Tanh(), nn.Linear(12, 64), nn.Tanh(), nn.Linear(64, 128), nn.Tanh(),
            nn.Linear(128, 28 * 28), nn.Sigmoid())
    if name == "cifar-cnn":  # seed 004, Mynn.sequential1
        return nn.Sequential(
            nn.Conv2d(in_channels=3, out_channels=32, kernel_size=5, padding=2), nn.MaxPool2d(2),
            nn.Conv2d(in_channels=32, out_channels=32, kernel_size=5, padding=2), nn.MaxPool2d(2),
            nn.Conv2d(in_channels=32, out_channels=64, kernel_size=5, padding=2), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(1024, 64), nn.Linear(64, 10))
    if name == "lenet":  # seed 004, LeNet
        return nn.Sequential(
            nn.Conv2d(in_channels=1, out_channels=6, kernel_size=5, padding=2), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(in_channels=6, out_channels=16, kernel_size=5), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(in_channels=16, out_channels=120, kernel_size=5), nn.Flatten(),
            nn.Linear(120, 84), nn.Linear(84, 10))
    if name == "lenet-d2l":  # D2L 7.6: a Sigmoid after every layer but the last
        return nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
            nn.Linear(120, 84), nn.Sigmoid(),
            nn.Linear(84, 10))
    if name == "lenet-bn":  # seed 004, LeNet with batch normalization
        return nn.Sequential(
            nn.Conv2d(in_channels=1, out_channels=6, kernel_size=5, padding=2), nn.BatchNorm2d(6), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(in_channels=6, out_channels=16, kernel_size=5), nn.BatchNorm2d(16),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(in_channels=16, out_channels=120, kernel_size=5), nn.BatchNorm2d(120), nn.Flatten(),
            nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Linear(84, 10))
    if name == "alexnet":  # D2L 8.1
        return nn.Sequential(
            nn.Conv2d(1, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Flatten(),
            nn.Linear(6400, 4096), nn.ReLU(), nn.Dropout(p=0.5),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=0.5),
            nn.Linear(4096, 10))
    if name == "vgg":  # D2L 8.2 vgg(conv_arch)
        conv_blks, in_channels = [], 1
        for num_convs, out_channels in ((1, 16), (1, 32), (2, 64), (2, 128), (2, 128)):
            conv_blks.append(vgg_block(num_convs, in_channels, out_channels))
            in_channels = out_channels
        return nn.Sequential(
            *conv_blks, nn.Flatten(),
            nn.Linear(out_channels * 7 * 7, 4096), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(4096, 10))
    if name == "nin":  # D2L 8.3 / seed 004
        return nn.Sequential(
            nin_block(1, 96, kernel_size=11, strides=4, padding=0), nn.MaxPool2d(3, stride=2),
            nin_block(96, 256, kernel_size=5, strides=1, padding=2), nn.MaxPool2d(3, stride=2),
            nin_block(256, 384, kernel_size=3, strides=1, padding=1), nn.MaxPool2d(3, stride=2),
            nn.Dropout(0.5),
            nin_block(384, 10, kernel_size=3, strides=1, padding=1),
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
    if name == "googlenet":  # D2L 8.4, b1..b5 nested as in the book
        b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(),
                           nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        b2 = nn.Sequential(nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(),
                           nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(),
                           nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        b3 = nn.Sequential(D2LInception(192, 64, (96, 128), (16, 32), 32),
                           D2LInception(256, 128, (128, 192), (32, 96), 64),
                           nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        b4 = nn.Sequential(D2LInception(480, 192, (96, 208), (16, 48), 64),
                           D2LInception(512, 160, (112, 224), (24, 64), 64),
                           D2LInception(512, 128, (128, 256), (24, 64), 64),
                           D2LInception(512, 112, (144, 288), (32, 64), 64),
                           D2LInception(528, 256, (160, 320), (32, 128), 128),
                           nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        b5 = nn.Sequential(D2LInception(832, 256, (160, 320), (32, 128), 128),
                           D2LInception(832, 384, (192, 384), (48, 128), 128),
                           nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
        return nn.Sequential(b1, b2, b3, b4, b5, nn.Linear(1024, 10))
    if name == "resnet18":  # D2L 8.6's blocks with a CIFAR stem (3x3 conv, no max-pool), nested as in the book
        b1 = nn.Sequential(nn.Conv2d(3, 64, kernel_size=3, padding=1), nn.BatchNorm2d(64), nn.ReLU())
        b2 = nn.Sequential(*resnet_block(64, 64, 2, first_block=True))
        b3 = nn.Sequential(*resnet_block(64, 128, 2))
        b4 = nn.Sequential(*resnet_block(128, 256, 2))
        b5 = nn.Sequential(*resnet_block(256, 512, 2))
        return nn.Sequential(b1, b2, b3, b4, b5, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, 10))
    if name in ("rnn-mnist", "birnn-mnist"):  # seed 003, 3.3 and 3.3.1
        return NotesRNN(bidirectional=name == "birnn-mnist")
    raise AssertionError(name)


# Templates whose original is a flat nn.Sequential of torch layers (or of D2L's nn.Sequential blocks with the
# same layout as engine.blocks): their state_dict keys must match the original's exactly. The notes' RNN names
# its parts (lstm, fc): test_rnn_templates_hold_the_notes_weights compares those keys.
SAME_KEYS = set(NAMES) - {"resnet18", "googlenet", "rnn-mnist", "birnn-mnist"}
NAMED_LAYERS = {"rnn-mnist", "birnn-mnist"}  # originals whose layers are attributes with names, not a Sequential
# Big inputs: build and run on the meta device (shapes and counts, no memory or arithmetic).
ON_META = {"alexnet", "vgg", "nin", "googlenet"}

EXPECTED_OUTPUT = {"linear-regression": (1,), "autoencoder": (784,)}


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _output_shape(model: nn.Module, input_shape) -> tuple[int, ...]:
    model.eval()
    with torch.no_grad():
        return tuple(model(torch.zeros(1, *input_shape)).shape[1:])


@pytest.mark.parametrize("name", NAMES)
def test_template_reproduces_original(name):
    spec = load_template(name)
    device = torch.device("meta") if name in ON_META else torch.device("cpu")
    with device:
        torch.manual_seed(0)
        reference = original(name)
        built = build_model(spec)
        reference_out = _output_shape(reference, spec.input_shape)
        built_out = _output_shape(built, spec.input_shape)

    analysis = analyze(spec)
    assert analysis.ok, [row.error for row in analysis.errors]
    assert reference_out == EXPECTED_OUTPUT.get(name, (10,))
    assert analysis.output_shape == reference_out == built_out
    assert analysis.params == _count(reference) == _count(built)
    assert analysis.trainable == analysis.params

    ours, theirs = built.state_dict(), reference.state_dict()
    assert sorted(tuple(t.shape) for t in ours.values()) == sorted(tuple(t.shape) for t in theirs.values())
    # the book's Residual and Inception name their layers conv1.., p1_1..: renamed as LayerStudio 1's blocks were;
    # the notes' RNN class names its two layers (lstm, fc): test_rnn_templates_hold_the_notes_weights maps them
    assert check_fit(built, theirs, spec).ok or name in NAMED_LAYERS
    if name in SAME_KEYS:
        assert [tuple(t.shape) for t in ours.values()] == [tuple(t.shape) for t in theirs.values()]
        assert list(ours) == list(theirs)
        reference.load_state_dict(ours, strict=True)


@pytest.mark.parametrize("name", ["lenet", "lenet-d2l", "lenet-bn"])
def test_analysis_rows_match_the_layers_of_the_original(name):
    """Layer by layer (not only in total) for a flat original: each row's shape and params equal torch's."""
    spec = load_template(name)
    reference = original(name).eval()
    x = torch.zeros(2, *spec.input_shape)
    with torch.no_grad():
        for row, module in zip(analyze(spec).rows, reference, strict=True):
            x = module(x)
            assert row.shape == tuple(x.shape[1:]), row.label
            assert row.params == _count(module), row.label


def _as_notes_rnn(state: dict) -> dict:
    """A built rnn template's state_dict under the notes' names: rows (0), lstm (1), fc (2)."""
    names = {"1": "lstm", "2": "fc"}
    return {f"{names[key.split('.', 1)[0]]}.{key.split('.', 1)[1]}": tensor for key, tensor in state.items()}


@pytest.mark.parametrize("name", ["rnn-mnist", "birnn-mnist"])
def test_rnn_templates_hold_the_notes_weights(name):
    """The template's LSTM and Linear are the notes' nn.LSTM(28, 32, 2, batch_first=True) and nn.Linear, key for key
    (under the notes' names), shape for shape; with the same weights they read a digit alike. One difference in the
    bidirectional one: the app passes on each direction's final state, the backward direction's at position 0 (where
    it ends), while the notes' ``out[:, -1, :]`` takes the backward direction after it has read the last row only."""
    torch.manual_seed(0)
    built, notes = build_model(load_template(name)).eval(), original(name).eval()
    ours = _as_notes_rnn(built.state_dict())
    assert list(ours) == list(notes.state_dict())
    assert [t.shape for t in ours.values()] == [t.shape for t in notes.state_dict().values()]
    notes.load_state_dict(ours, strict=True)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        if name == "rnn-mnist":
            torch.testing.assert_close(built(x), notes(x))
            return
        passed_on = built[1](built[0](x))  # 3x64: forward then backward direction
        out, _ = notes.lstm(x.view(-1, 28, 28))
    torch.testing.assert_close(passed_on[:, :32], out[:, -1, :32])  # forward: its last step, as in the notes
    torch.testing.assert_close(passed_on[:, 32:], out[:, 0, 32:])  # backward: its last step, at position 0
    assert not torch.allclose(passed_on[:, 32:], out[:, -1, 32:])  # the notes' out[:, -1, :]


def test_every_template_file_is_listed_with_its_dataset():
    infos = list_templates()
    assert sorted(info.name for info in infos) == sorted(NAMES)
    assert {path.stem for path in TEMPLATES.glob("*.json")} == set(NAMES)
    assert [info.name for info in infos] == [n for n in TEACHING_ORDER if n in NAMES]
    assert infos[0].name == "linear-regression"
    for info in infos:
        assert isinstance(info, TemplateInfo)
        assert info.path == TEMPLATES / f"{info.name}.json"
        assert info.description and "\n" not in info.description
        assert info.dataset in {"mnist-sample", "fashion-mnist", "cifar10", "synthetic-regression"}
    assert {info.name: info.dataset for info in infos}["linear-regression"] == "synthetic-regression"
    assert {info.name: info.dataset for info in infos}["resnet18"] == "cifar10"


@pytest.mark.parametrize("name", NAMES)
def test_template_file_is_a_normal_design_file(name):
    spec, data = load_design(name)
    assert data["name"] == name
    assert isinstance(data["data"], dict) and data["data"]["source"]
    design_part = {key: data[key] for key in ("format", "version", "input_shape", "layers")}
    assert design_part == spec.to_dict()  # written in NetworkSpec.to_dict() form, every parameter spelled out
    ids = [layer.id for layer in spec.layers]
    assert all(layer_id.replace("_", "").isalnum() and not layer_id.isdigit() for layer_id in ids)


def test_the_two_lenets_say_which_is_which():
    """The notes' LeNet and D2L's differ only in activations: each description names its source and the other."""
    described = {info.name: info.description for info in list_templates()}
    assert "study notes" in described["lenet"] and "lenet-d2l" in described["lenet"]
    assert "Dive into Deep Learning" in described["lenet-d2l"] and "lenet is" in described["lenet-d2l"]
    sigmoids = {name: sum(layer.kind == "Sigmoid" for layer in load_template(name).layers)
                for name in ("lenet", "lenet-d2l")}
    assert sigmoids == {"lenet": 1, "lenet-d2l": 4}
    d2l = load_template("lenet-d2l").layers
    assert d2l[-1].kind == "Linear" and all(  # every conv and Linear but the last is followed by a Sigmoid
        after.kind == "Sigmoid" for layer, after in pairwise(d2l) if layer.kind in ("Conv2d", "Linear"))


def test_autoencoder_is_marked_for_reconstruction():
    spec, data = load_design("autoencoder")
    assert data["data"]["task"] == "reconstruction"
    assert analyze(spec).output_shape == spec.input_shape


def test_load_design_reads_a_json_path_and_keeps_every_section(tmp_path):
    spec = load_template("lenet")
    path = tmp_path / "my design.json"
    training = {"optimizer": "sgd", "lr": 0.9}
    path.write_text(json.dumps({**spec.to_dict(), "name": "mine", "training": training}))
    loaded, data = load_design(path)
    assert loaded == spec
    assert data["training"] == training and data["name"] == "mine"
    assert load_design(str(path))[0] == spec


def test_unknown_template_lists_the_known_names():
    with pytest.raises(SpecError) as info:
        load_template("lenet5")
    message = str(info.value)
    assert "lenet5" in message
    assert all(name in message for name in NAMES)


@pytest.mark.parametrize("content, expected", [
    (None, "does not exist"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    (b"\xff\xfe\x00garbage", "not UTF-8 text"),
    ('{"format": "layerstudio.design", "version": 1, "input_shape": [1, 28, 28], '
     '"layers": [{"kind": "Conv9d"}]}', "unknown kind 'Conv9d'"),
])
def test_unreadable_or_malformed_file_raises_spec_error_with_a_sentence(tmp_path, content, expected):
    path = tmp_path / "design.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(SpecError, match=expected) as info:
        load_design(path)
    assert "\n" not in str(info.value)


def test_a_folder_is_not_a_design(tmp_path):
    with pytest.raises(SpecError, match="folder"):
        load_design(tmp_path)


def test_spec_from_template_equals_spec_from_its_json_text():
    """The template file round-trips through the spec's own JSON reader too."""
    path = TEMPLATES / "resnet18.json"
    assert NetworkSpec.from_json(path.read_text()) == load_template("resnet18")
