"""Weights saved by LayerStudio 1 from a design with fixed blocks load into the groups that replaced them, and a
weights report names the inner layers of groups by their path."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.build import build_model
from engine.errors import WeightsError
from engine.groups import residual_block
from engine.io import check_fit, load_weights, save_checkpoint
from engine.legacy import legacy_key
from engine.spec import FORMAT, LayerSpec, NetworkSpec
from tests.engine import legacy_blocks  # LayerStudio 1's blocks, as they wrote their state_dict keys

pytestmark = pytest.mark.usefixtures("one_torch_thread")


VERSION_1 = {"format": FORMAT, "version": 1, "input_shape": [3, 8, 8], "layers": [
    {"id": "vgg", "kind": "VGGBlock", "params": {"num_convs": 1, "out_channels": 4}},
    {"id": "res1", "kind": "Residual", "params": {"out_channels": 4}},
    {"id": "res2", "kind": "Residual", "params": {"out_channels": 6, "stride": 2}},
    {"id": "inc", "kind": "Inception", "params": {"c1": 2, "c2_reduce": 2, "c2": 3, "c3_reduce": 1, "c3": 2, "c4": 2}},
    {"id": "flat", "kind": "Flatten", "params": {}},
    {"id": "head", "kind": "Linear", "params": {"out_features": 3}},
]}


def old_model() -> nn.Sequential:
    """What LayerStudio 1 built for VERSION_1, with trained-looking (random, non-default) weights and statistics."""
    torch.manual_seed(0)
    model = nn.Sequential(legacy_blocks.VGGBlock(3, 1, 4), legacy_blocks.Residual(4, 4),
                          legacy_blocks.Residual(4, 6, stride=2), legacy_blocks.Inception(6, 2, (2, 3), (1, 2), 2),
                          nn.Flatten(), nn.Linear(9 * 2 * 2, 3))
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if "running_var" in name else torch.randn_like(tensor))
    return model.eval()


def test_a_version_1_weights_file_loads_into_the_converted_design_and_computes_the_same(tmp_path):
    old = old_model()
    path = tmp_path / "trained.pt"
    torch.save(old.state_dict(), path)                      # the real file format LayerStudio 1 wrote
    assert {"1.conv1.weight", "2.conv3.bias", "3.p4_2.weight", "0.0.weight"} <= set(old.state_dict())

    spec = NetworkSpec.from_dict(VERSION_1)
    model = build_model(spec).eval()
    report = load_weights(model, path, spec)
    renamed = sum(1 for key in old.state_dict() if legacy_key(key) != key)
    assert renamed == 14 + 16 + 12  # Residual (conv1, bn1, conv2, bn2), with conv3, Inception; VGG keys unchanged
    assert report.ok and report.renamed == renamed
    assert report.text() == f"The weights fit the design ({len(old.state_dict())} tensors; renamed {renamed} keys " \
                            "from LayerStudio 1 blocks)."
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), old(x))


def test_keys_that_fit_neither_layout_are_not_renamed_and_the_report_names_inner_layers(tmp_path):
    state = old_model().state_dict()
    state["1.conv2.weight"] = torch.zeros(4, 4, 1, 1)        # a shape the design's layer does not have
    del state["3.p1_1.bias"]
    spec = NetworkSpec.from_dict(VERSION_1)
    report = check_fit(build_model(spec), state, spec)
    assert report.renamed == 0 and "1.conv1.weight" in report.unexpected   # nothing guessed
    assert "1.body.3.weight" in report.missing

    state = old_model().state_dict()                          # renamed, then one tensor does not fit
    state["1.conv2.weight"] = torch.zeros(4, 4, 1, 1)
    path = tmp_path / "wrong.pt"
    torch.save(state, path)
    model = build_model(spec)
    with pytest.raises(WeightsError) as info:
        load_weights(model, path, spec)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("The weights do not fit this design (1 with another shape; renamed 42 keys from "
                               "LayerStudio 1 blocks)")
    assert lines[1:] == ["  layer 1 › 3 (Conv2d):",
                         "    1.body.3.weight has shape 4x4x1x1 in the file but 4x4x3x3 in the design"]


def test_a_mismatch_inside_a_repeated_group_names_the_layer_its_path_and_the_copy():
    block = residual_block(4, id="res")
    spec = NetworkSpec((4, 4, 4), (LayerSpec("Identity", {}, "first"), block.with_params(repeat=2)))
    model = build_model(spec)
    state = model.state_dict()
    assert "1.1.body.0.weight" in state
    state["1.1.body.0.weight"] = torch.zeros(4, 4, 1, 1)
    state["1.0.shortcut.0.weight"] = torch.zeros(4, 4, 1, 1)   # the identity shortcut has no weights
    lines = check_fit(model, state, spec).text().splitlines()
    assert lines[1:] == ["  layer 1 (Residual block ×2):",
                         "    1.0.shortcut.0.weight (4x4x1x1) is in the file but not in the design",
                         "  layer 1 › 0, copy 2 of 2 (Conv2d):",
                         "    1.1.body.0.weight has shape 4x4x1x1 in the file but 4x4x3x3 in the design"]


def as_saved_by_version_1(checkpoint: dict, model: nn.Module) -> dict:
    """A checkpoint of the converted design as LayerStudio 1 wrote it: its blocks' keys, in their registration
    order (conv1, conv2, conv3, bn1, bn2), and the optimizer's parameters in that order too."""
    old_keys = list(old_model().state_dict())
    new_of = {key: legacy_key(key) for key in old_keys}
    names = [name for name, _ in model.named_parameters()]
    group = checkpoint["optimizer"]["param_groups"][0]
    id_of = dict(zip(names, group["params"], strict=True))
    group["params"] = [id_of[new_of[key]] for key in old_keys if new_of[key] in id_of]
    checkpoint["model"] = {key: checkpoint["model"][new_of[key]] for key in old_keys}
    return checkpoint


def test_a_version_1_checkpoint_resumes_the_run_exactly(tmp_path):
    from engine.data import DataConfig, load_data
    from engine.io import read_checkpoint
    from engine.training import TrainConfig, Trainer

    design = {**VERSION_1, "input_shape": [1, 28, 28]}
    design["layers"] = [*VERSION_1["layers"][:-1], {"id": "head", "kind": "Linear", "params": {"out_features": 10}}]
    spec = NetworkSpec.from_dict(design)
    data = load_data(DataConfig(limit=48, val_fraction=0.25))
    config = TrainConfig(optimizer="adam", epochs=2, batch_size=12, device="cpu", seed=1)
    straight = Trainer(spec, data, config)
    assert straight.run().reason == "completed"
    first = Trainer(spec, data, config)
    steps = iter(range(10**6))
    assert first.run(should_stop=lambda: next(steps) >= first.steps_per_epoch + 1).reason == "stopped"
    save_checkpoint(tmp_path / "v1.ckpt", as_saved_by_version_1(first.checkpoint(), first.model))
    saved = read_checkpoint(tmp_path / "v1.ckpt")
    assert "1.conv1.weight" in saved["model"] and "1.body.0.weight" not in saved["model"]

    resumed = Trainer(spec, data, config)
    resumed.load_checkpoint(saved)
    assert resumed.notes[-1] == "The checkpoint's weights were renamed 42 keys from LayerStudio 1 blocks."
    assert resumed.run().reason == "completed"
    assert resumed.history == straight.history
    for key, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
