"""engine.importing.state_dict: a design proposed from a bare state_dict's keys and shapes, completed by the person,
then the file's weights load into it by the proposal's layer ids."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.build import build_model
from engine.cli import main
from engine.errors import SpecError
from engine.importing.state_dict import UNKNOWABLE, propose, propose_from_file
from engine.io import load_weights
from engine.shapes import analyze
from engine.spec import LayerSpec
from engine.templates import load_design


def d2l_lenet() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10))


def test_lenet_weights_propose_a_chain_that_once_completed_loads_them(tmp_path, one_torch_thread):
    lenet = d2l_lenet().eval()
    path = tmp_path / "lenet.pt"
    torch.save(lenet.state_dict(), path)
    imported = propose_from_file(path, (1, 28, 28))
    spec = imported.spec
    assert [(layer.id, layer.short()) for layer in spec.layers if layer.kind != "Flatten"] == [
        ("0", "Conv2d 6, k5"), ("3", "Conv2d 16, k5"), ("7", "Linear 120"), ("9", "Linear 84"), ("11", "Linear 10")]
    assert [layer.kind for layer in spec.layers][2] == "Flatten"  # where a convolution meets a Linear
    assert imported.notes[0].reason == UNKNOWABLE and not imported.notes[0].left_out
    # the first Linear's 400 inputs are checked against what the chain gives without the pooling
    assert imported.notes[1].sentence() == ("Keys 7.*: weight 120x400, bias 120: in_features is 400 as written, but "
                                            "its input is 6400 here, so the design uses 6400")
    # the person completes it: padding, activations and pooling; the weights then load by layer id
    pool = {"kernel_size": 2, "stride": 2}
    completed = spec.with_param("0", "padding", 2)
    completed = completed.inserted(1, LayerSpec("Sigmoid"), LayerSpec("AvgPool2d", pool))
    completed = completed.inserted(4, LayerSpec("Sigmoid"), LayerSpec("AvgPool2d", pool))
    completed = completed.inserted(8, LayerSpec("Sigmoid"))
    completed = completed.inserted(10, LayerSpec("Sigmoid"))
    assert analyze(completed).ok
    model = build_model(completed).eval()
    report = load_weights(model, path, completed)
    assert report.ok
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(x), lenet(x))


class EveryKind(nn.Module):
    """Each layer a state_dict can show, and one it cannot."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.depthwise = nn.Conv2d(8, 8, 3, groups=8)
        self.norm = nn.GroupNorm(1, 8)
        self.slope = nn.PReLU(8)
        self.volume = nn.Conv3d(8, 8, 1)
        self.head = nn.Linear(8, 6)
        self.bn1 = nn.BatchNorm1d(6, affine=False)
        self.layer_norm = nn.LayerNorm(6)
        self.rnn = nn.LSTM(6, 5, num_layers=2, bidirectional=True)
        self.gru = nn.GRU(10, 4)


def test_each_kind_of_weights_is_proposed_and_what_fits_none_is_listed():
    model = EveryKind()
    imported = propose(model.state_dict(), "every.pt", (3, 9, 9))
    kinds = [layer.kind for layer in imported.spec.layers]
    assert kinds == ["Conv2d", "BatchNorm2d", "Conv2d", "GroupNorm", "PReLU", "Flatten", "Linear", "BatchNorm1d",
                     "LayerNorm", "LSTM", "GRU"]
    depthwise = imported.spec.layers[2]
    assert depthwise.params["groups"] == 8 and not imported.spec.layers[0].params["bias"]
    lstm = imported.spec.layers[9].params
    assert (lstm["hidden_size"], lstm["num_layers"], lstm["bidirectional"]) == (5, 2, True)
    left_out = imported.left_out
    assert [note.where for note in left_out] == ["keys volume.*"]
    assert left_out[0].what == "weight 8x8x1x1x1, bias 8"
    assert "fit no layer kind" in left_out[0].reason
    # without the model's pooling the Linear meets 8x5x5 values, not the 8 its weights take: said, not hidden
    assert [note.reason for note in imported.notes if note.where == "keys head.*"] == [
        "in_features is 8 as written, but its input is 200 here, so the design uses 200"]


def test_the_input_shape_is_asked_for_when_the_weights_do_not_tell_it(tmp_path, capsys):
    state = nn.Sequential(nn.Conv2d(3, 4, 3)).state_dict()
    with pytest.raises(SpecError, match="conv.pt starts with a layer whose input size the weights do not tell"):
        propose(state, "conv.pt")
    path = tmp_path / "conv.pt"
    torch.save(state, path)
    assert main(["import", str(path), "-o", str(tmp_path / "conv.json")]) == 1
    assert "give the shape of one input sample with --input-shape" in capsys.readouterr().err
    # a first Linear tells it
    torch.save(nn.Sequential(nn.Linear(7, 2)).state_dict(), path)
    assert main(["import", str(path), "-o", str(tmp_path / "mlp.json")]) == 0
    assert load_design(tmp_path / "mlp.json")[0].input_shape == (7,)
    assert "Changed: The file: conv.pt: a state_dict holds only the layers with weights" in capsys.readouterr().out


def test_files_that_are_not_state_dicts_are_refused_with_a_sentence(tmp_path):
    path = tmp_path / "empty.pt"
    torch.save({}, path)
    with pytest.raises(SpecError, match="empty.pt holds no tensors"):
        propose_from_file(path)
