"""Version 1 design files keep loading: their fixed blocks (VGGBlock, NiNBlock, Residual, Inception) become
groups with the weights the old blocks had (counted and run against the old classes, tests/engine/legacy_blocks.py),
bad old values are refused naming the layer, frozen is kept and every id stays unique."""
from __future__ import annotations

import json
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from engine.build import build_model
from engine.errors import SpecError
from engine.shapes import analyze
from engine.spec import VERSION, NetworkSpec
from engine.templates import load_design
from tests.engine import legacy_blocks as old

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = {"VGGBlock": "VGG block", "NiNBlock": "NiN block", "Residual": "Residual block", "Inception": "Inception block"}


def write_v1(folder, layers, input_shape=(3, 16, 16)):
    path = folder / "design.json"
    path.write_text(json.dumps({"format": "layerstudio.design", "version": 1, "input_shape": list(input_shape),
                                "layers": layers}, indent=2), encoding="utf-8")
    return path


def old_block(kind: str, in_channels: int, params: dict) -> nn.Module:
    """The version 1 block, with the old defaults for what the file leaves out."""
    if kind == "VGGBlock":
        return old.VGGBlock(in_channels, params.get("num_convs", 2), params.get("out_channels", 64))
    if kind == "NiNBlock":
        return old.NiNBlock(in_channels, params.get("out_channels", 96), params.get("kernel_size", 3),
                            params.get("stride", 1), params.get("padding", 1))
    if kind == "Residual":
        return old.Residual(in_channels, params.get("out_channels", 64), params.get("stride", 1))
    return old.Inception(in_channels, params.get("c1", 64), (params.get("c2_reduce", 96), params.get("c2", 128)),
                         (params.get("c3_reduce", 16), params.get("c3", 32)), params.get("c4", 32))


# Where the old blocks' named parts sit in the groups (VGGBlock and NiNBlock were Sequentials already)
PART_KEYS = {
    "Residual": {"conv1": "body.0", "bn1": "body.1", "conv2": "body.3", "bn2": "body.4", "conv3": "shortcut.0"},
    "Inception": {"p1_1": "branches.0.0", "p2_1": "branches.1.0", "p2_2": "branches.1.2", "p3_1": "branches.2.0",
                  "p3_2": "branches.2.2", "p4_2": "branches.3.1"},
}


def converted_state(kind: str, state: dict) -> dict:
    """An old block's state_dict under the converted group's keys."""
    parts = PART_KEYS.get(kind, {})
    out = {}
    for key, value in state.items():
        part, dot, rest = key.partition(".")
        out[f"{parts.get(part, part)}{dot}{rest}"] = value
    return out


def count(tensors) -> int:
    return sum(t.numel() for t in tensors)


V1_LAYERS = [
    {"id": "vgg", "kind": "VGGBlock", "params": {"num_convs": 2, "out_channels": 4}},
    {"id": "nin", "kind": "NiNBlock", "params": {"out_channels": 6, "kernel_size": 3, "stride": 1, "padding": 1}},
    {"id": "down", "kind": "Residual", "params": {"out_channels": 8, "stride": 2}},
    {"id": "same", "kind": "Residual", "params": {"out_channels": 8}},
    {"id": "inc", "kind": "Inception", "params": {"c1": 2, "c2_reduce": 3, "c2": 4, "c3_reduce": 1, "c3": 2, "c4": 2}},
    {"id": "flat", "kind": "Flatten", "params": {}},
    {"id": "out", "kind": "Linear", "params": {"out_features": 5}},
]


def test_a_version_1_design_loads_as_groups_that_compute_what_the_old_blocks_did(tmp_path):
    spec, _ = load_design(write_v1(tmp_path, V1_LAYERS))
    assert [layer.id for layer in spec.layers] == [item["id"] for item in V1_LAYERS]
    for layer, item in zip(spec.layers, V1_LAYERS, strict=True):
        if item["kind"] in NAMES:
            assert layer.is_group and layer.name == NAMES[item["kind"]]
    analysis = analyze(spec)
    assert analysis.ok, analysis.errors
    torch.manual_seed(0)
    blocks, channels = [], 3
    for layer, item in zip(spec.layers, V1_LAYERS, strict=True):
        if item["kind"] in NAMES:
            blocks.append(old_block(item["kind"], channels, item["params"]))
            assert analysis.row(layer.id).params == count(blocks[-1].parameters()), item["kind"]
            assert analysis.row(layer.id).buffers == count(blocks[-1].buffers()), item["kind"]
            channels = analysis.row(layer.id).shape[0]
    reference = nn.Sequential(*blocks, nn.Flatten(), nn.Linear(analysis.row("flat").shape[0], 5)).eval()
    model = build_model(spec).eval()
    state = {}
    for index, (item, module) in enumerate(zip(V1_LAYERS, reference, strict=True)):
        for key, value in converted_state(item["kind"], module.state_dict()).items():
            state[f"{index}.{key}"] = value
    assert sorted(state) == sorted(model.state_dict())
    model.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-6)


def test_a_converted_design_is_saved_as_version_2_and_reads_back_the_same(tmp_path):
    spec, _ = load_design(write_v1(tmp_path, V1_LAYERS))
    data = json.loads(spec.to_json())
    assert data["version"] == VERSION == 2
    assert NetworkSpec.from_json(spec.to_json()) == spec


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(NAMES)), data=st.data(),
       input_shape=st.tuples(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9)))
def test_old_blocks_and_their_groups_agree_on_shape_and_weights(kind, data, input_shape):
    names = {"VGGBlock": ("num_convs", "out_channels"),
             "NiNBlock": ("out_channels", "kernel_size", "stride", "padding"),
             "Residual": ("out_channels", "stride"), "Inception": ("c1", "c2_reduce", "c2", "c3_reduce", "c3", "c4")}
    low = {"padding": 0}
    params = {name: data.draw(st.integers(low.get(name, 1), 4), label=name)
              for name in names[kind] if data.draw(st.booleans(), label=f"give {name}")}  # the rest: old defaults
    if kind == "Inception":  # the old defaults are wide: keep the test quick with small ones mostly
        params = {name: params.get(name, 2) for name in names[kind]} if data.draw(st.booleans()) else params
    spec = NetworkSpec.from_json(json.dumps({"format": "layerstudio.design", "version": 1,
                                             "input_shape": list(input_shape),
                                             "layers": [{"id": "b", "kind": kind, "params": params}]}))
    analysis = analyze(spec)
    block = old_block(kind, input_shape[0], params)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            out = block(torch.zeros(2, *input_shape))
    except RuntimeError:
        out = None
    assert analysis.ok == (out is not None), (analysis.errors[0].error if analysis.errors else "old block fails")
    if out is not None:
        assert analysis.output_shape == tuple(out.shape[1:])
        assert analysis.params == count(block.parameters()) and analysis.buffers == count(block.buffers())


@pytest.mark.parametrize("item, message", [
    ({"kind": "VGGBlock", "params": {"num_convs": 0}},
     "layer 1 (VGGBlock) parameter 'num_convs' must be an integer between 1 and 20, got 0"),
    ({"kind": "NiNBlock", "params": {"kernel_size": "3"}},
     "layer 1 (NiNBlock) parameter 'kernel_size' must be an integer"),
    ({"kind": "Residual", "params": {"stride": 17}},
     "layer 1 (Residual) parameter 'stride' must be an integer between"),
    ({"kind": "Inception", "params": {"c5": 1}}, "layer 1 (Inception) has unknown parameter 'c5'"),
    ({"kind": "Inception", "params": [1, 2]}, "layer 1 (Inception) field 'params' must be an object"),
    ({"kind": "VGGBlock", "frozen": "yes"}, "layer 1 (VGGBlock) field 'frozen' must be true or false"),
    ({"kind": "VGGBlock", "layers": []}, "layer 1 (VGGBlock) has unknown field 'layers'"),
    ({"kind": "NiNBlock", "id": "a b"}, "layer 1 (NiNBlock) field 'id' must be"),
])
def test_bad_old_values_are_refused_with_a_sentence_naming_the_layer(tmp_path, item, message):
    path = write_v1(tmp_path, [{"id": "first", "kind": "ReLU", "params": {}}, item])
    with pytest.raises(SpecError) as caught:
        load_design(path)
    assert message in str(caught.value)


def test_a_frozen_old_block_is_a_frozen_group(tmp_path):
    spec, _ = load_design(write_v1(tmp_path, [{"id": "r", "kind": "Residual", "params": {"out_channels": 4,
                                                                                          "stride": 2},
                                               "frozen": True}]))
    assert spec.layers[0].frozen
    analysis = analyze(spec)
    assert analysis.trainable == 0 < analysis.params
    assert not any(p.requires_grad for p in build_model(spec).parameters())


def test_ids_stay_unique_whatever_ids_the_file_uses(tmp_path):
    layers = [
        {"id": "b", "kind": "VGGBlock", "params": {"num_convs": 1, "out_channels": 4}},
        {"id": "b-1", "kind": "ReLU", "params": {}},  # the id the block's first inner layer would get
        {"id": "b-3", "kind": "Identity", "params": {}},
        {"id": "x" * 64, "kind": "NiNBlock", "params": {"out_channels": 4}},
        {"id": "x" * 63 + "y", "kind": "NiNBlock", "params": {"out_channels": 4}},  # the same first 48 characters
        {"kind": "Residual", "params": {"out_channels": 4}},  # no id: a new one
        {"id": "i", "kind": "Inception",
         "params": {"c1": 1, "c2_reduce": 1, "c2": 1, "c3_reduce": 1, "c3": 1, "c4": 1}},
    ]
    spec, _ = load_design(write_v1(tmp_path, layers))
    ids = [layer.id for layer in spec.all_layers()]
    assert len(ids) == len(set(ids))
    assert [layer.id for layer in spec.layers][:5] == [item["id"] for item in layers[:5]]  # each block keeps its id
    assert "b-1" not in [inner.id for inner, _ in spec.layers[0].walk()]
    assert analyze(spec).ok


@pytest.mark.parametrize("input_shape, params", [
    ((4, 1, 1), {"out_channels": 4, "stride": 2}),  # the body keeps the shape, yet the old block projected
    ((4, 1, 5), {"out_channels": 4, "stride": 3}),
    ((4, 6, 6), {"out_channels": 4, "stride": 1}),  # identity
    ((2, 6, 6), {"out_channels": 4, "stride": 1}),  # channels change: a 1x1 projection
])
def test_an_old_residual_keeps_its_projection_exactly_where_it_had_one(input_shape, params):
    spec = NetworkSpec.from_json(json.dumps({"format": "layerstudio.design", "version": 1,
                                             "input_shape": list(input_shape),
                                             "layers": [{"id": "r", "kind": "Residual", "params": params}]}))
    block = old_block("Residual", input_shape[0], params)
    model = build_model(spec)
    assert sorted(model.state_dict()) == sorted(f"0.{key}" for key in converted_state("Residual", block.state_dict()))
    assert analyze(spec).params == count(block.parameters())
