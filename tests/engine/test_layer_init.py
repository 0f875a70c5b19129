"""Per-layer initialisation (engine.layer_init) and parameter statistics (engine.parameters).

The inits are checked against ``torch.nn.init`` on the same seed, tensor for tensor; the design keeps them through
JSON (and older designs read and write unchanged); bad values in a file are refused with a sentence naming the
layer and field; a run applies them after the global init; the exported script builds the same starting weights.
"""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn

from engine.build import module_paths
from engine.data import DataConfig, load_data
from engine.errors import SpecError
from engine.export import python_source
from engine.layer_init import GLOBAL_METHODS, METHODS, LayerInit, TensorInit, methods_for
from engine.layers import KINDS
from engine.parameters import HISTOGRAM_BINS, initial_model, parameter_stats
from engine.spec import LayerSpec, NetworkSpec
from engine.templates import list_templates, load_template
from engine.training import INITS, TrainConfig, Trainer

SEED = 7
FAN_METHODS = [name for name, m in METHODS.items() if m.needs_fans]
ANY_TENSOR = [name for name, m in METHODS.items() if not m.needs_fans]


def chosen(method: str) -> TensorInit:
    """A method with a number other than its default, so the number is seen to reach torch."""
    return TensorInit(method, std=0.05, value=-0.25)


def torch_reference(module: nn.Module, weight: str, bias: str, seed: int = SEED) -> nn.Module:
    """``module`` rebuilt from ``seed`` and filled by plain torch.nn.init calls, written out by hand."""
    calls = {
        "default": None,
        "xavier_uniform": lambda t: nn.init.xavier_uniform_(t),
        "xavier_normal": lambda t: nn.init.xavier_normal_(t),
        "kaiming_uniform": lambda t: nn.init.kaiming_uniform_(t, nonlinearity="relu"),
        "kaiming_normal": lambda t: nn.init.kaiming_normal_(t, nonlinearity="relu"),
        "normal": lambda t: nn.init.normal_(t, 0.0, 0.05),
        "constant": lambda t: nn.init.constant_(t, -0.25),
        "zeros": lambda t: nn.init.zeros_(t),
    }
    assert set(calls) == set(METHODS), "a new method needs its plain-torch reference here"
    torch.manual_seed(seed)
    rebuilt = copy.deepcopy(module)
    rebuilt.reset_parameters()  # draws as construction does
    for name, method in (("weight", weight), ("bias", bias)):
        if calls[method] is not None:
            calls[method](getattr(rebuilt, name))
    return rebuilt


@pytest.mark.parametrize("weight", list(METHODS))
@pytest.mark.parametrize("kind, params, shape", [
    ("Linear", {"out_features": 30}, (40,)),
    ("Conv2d", {"out_channels": 8, "kernel_size": 3}, (4, 9, 9)),
])
def test_each_weight_method_gives_torch_nn_inits_tensor_on_the_same_seed(kind, params, shape, weight):
    bias = "normal" if weight == "constant" else "constant"
    layer = LayerSpec(kind, params).with_init("weight", chosen(weight)).with_init("bias", chosen(bias))
    spec = NetworkSpec(shape, (layer,))
    model = initial_model(spec, TrainConfig(seed=SEED))
    torch.manual_seed(SEED)
    reference = torch_reference(model[0], weight, bias)
    assert torch.equal(model[0].weight, reference.weight)
    assert torch.equal(model[0].bias, reference.bias)
    stats = {s.name: s for s in parameter_stats(model, 0)}
    for name, tensor in (("0.weight", reference.weight), ("0.bias", reference.bias)):
        assert stats[name].shape == tuple(tensor.shape) and stats[name].count == tensor.numel()
        assert stats[name].mean == pytest.approx(tensor.mean().item(), abs=1e-6)
        assert stats[name].std == pytest.approx(tensor.std().item(), abs=1e-6)
        assert (stats[name].min, stats[name].max) == (tensor.min().item(), tensor.max().item())
        assert sum(stats[name].histogram) == tensor.numel() and len(stats[name].histogram) == HISTOGRAM_BINS


@pytest.mark.parametrize("bias", ANY_TENSOR)
def test_each_bias_method_gives_torch_nn_inits_tensor_and_the_numbers_reach_torch(bias):
    spec = NetworkSpec((50,), (LayerSpec("Linear", {"out_features": 400}).with_init("bias", chosen(bias)),))
    model = initial_model(spec, TrainConfig(seed=SEED))
    reference = torch_reference(model[0], "default", bias)
    assert torch.equal(model[0].weight, reference.weight) and torch.equal(model[0].bias, reference.bias)
    stats = parameter_stats(model, 0)[1]
    if bias == "normal":  # 400 draws: the std chosen, not torch's default of 1
        assert 0.04 < stats.std < 0.06 and abs(stats.mean) < 0.01
    elif bias in ("constant", "zeros"):
        assert stats.min == stats.max == (-0.25 if bias == "constant" else 0.0)


def test_the_global_setting_runs_methods_of_the_same_table():
    assert set(GLOBAL_METHODS) | {"default"} == set(INITS) and set(GLOBAL_METHODS.values()) <= set(METHODS)


def test_fan_methods_are_offered_only_for_tensors_of_two_or_more_dimensions():
    assert [m.name for m in methods_for(1)] == ANY_TENSOR
    assert [m.name for m in methods_for(2)] == list(METHODS)
    assert KINDS["Linear"].init_tensors({"bias": False}) == {"weight": 2}
    assert KINDS["BatchNorm2d"].init_tensors({"affine": False}) == {}
    assert KINDS["ReLU"].init_tensors({}) == {} and KINDS["MaxPool2d"].init_tensors({}) == {}


def test_every_kind_with_a_weight_or_bias_declares_the_tensors_torch_builds():
    """The registry's ``init`` names exactly the weight and bias a built layer has, with their dimensions (blocks and
    recurrent layers hold other tensors: their inner layers take the global init only)."""
    shapes = {"Conv1d": (3, 12), "Embedding": (5,), "LayerNorm": (4, 6), "GroupNorm": (4, 6, 6), "Linear": (6,),
              "BatchNorm1d": (6,), "PReLU": (4, 6, 6)}
    for kind in KINDS.values():
        if kind.is_group or kind.category == "Recurrent" and kind.name != "Embedding":
            continue
        module = kind.build(shapes.get(kind.name, (4, 8, 8)), kind.defaults())
        built = {name: p.dim() for name, p in module.named_parameters(recurse=False) if name in ("weight", "bias")}
        assert kind.init_tensors({}) == built, kind.name


# --------------------------------------------------------------------------- the design file

def design_with_inits() -> NetworkSpec:
    conv = LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 3}, "conv")
    norm = LayerSpec("BatchNorm2d", {}, "norm")
    head = LayerSpec("Linear", {"out_features": 5, "bias": False}, "head")
    return NetworkSpec((2, 6, 6), (
        conv.with_init("weight", TensorInit("kaiming_normal")).with_init("bias", TensorInit("constant", value=0.1)),
        norm.with_init("weight", TensorInit("normal", std=0.02)).with_init("bias", TensorInit("zeros")),
        LayerSpec("ReLU"), LayerSpec("Flatten"),
        head.with_init("weight", TensorInit("xavier_uniform")).with_init("bias", TensorInit("constant", value=3.0)),
    ))


def test_inits_round_trip_through_json_and_only_chosen_ones_are_written():
    spec = design_with_inits()
    data = json.loads(spec.to_json())
    assert data["layers"][0]["init"] == {"weight": {"method": "kaiming_normal"},
                                         "bias": {"method": "constant", "value": 0.1}}
    assert data["layers"][1]["init"] == {"weight": {"method": "normal", "std": 0.02}, "bias": {"method": "zeros"}}
    assert "init" not in data["layers"][2]
    assert data["layers"][4]["init"] == {"weight": {"method": "xavier_uniform"}}  # no bias: its init is not written
    again = NetworkSpec.from_json(spec.to_json())
    assert again.to_json() == spec.to_json()
    assert [layer.chosen_init() for layer in again.layers] == [layer.chosen_init() for layer in spec.layers]


@pytest.mark.parametrize("name", [info.name for info in list_templates()])
def test_designs_without_inits_read_and_write_byte_for_byte_as_before(name):
    spec = load_template(name)
    text = spec.to_json()
    assert '"init"' not in text
    assert NetworkSpec.from_json(text).to_json() == text
    assert all(layer.init == LayerInit() for layer in NetworkSpec.from_json(text).layers)


def test_a_default_init_is_the_same_layer_as_none():
    layer = LayerSpec("Linear", {}, "fc")
    assert layer.with_init("weight", TensorInit("default")) == layer
    assert TensorInit("normal", std=0.3, value=9.0) == TensorInit("normal", std=0.3)  # value is not normal's


def _with_init(init) -> dict:
    data = NetworkSpec((3,), (LayerSpec("ReLU", {}, "act"), LayerSpec("Linear", {"out_features": 2}, "fc"),)).to_dict()
    data["layers"][1]["init"] = init
    return data


@pytest.mark.parametrize("init, words", [
    ([], "layer 1 (Linear) field 'init' must be an object"),
    ({"kernel": {"method": "zeros"}}, "layer 1 (Linear) field 'init' names 'kernel'"),
    ({"weight": "xavier_uniform"}, "layer 1 (Linear) field 'init.weight' must be an object"),
    ({"weight": {}}, "layer 1 (Linear) field 'init.weight' is missing 'method'"),
    ({"weight": {"method": "he"}}, "layer 1 (Linear) field 'init.weight.method' must be one of default, xavier"),
    ({"weight": {"method": None}}, "field 'init.weight.method' must be one of"),
    ({"bias": {"method": "kaiming_uniform"}}, "field 'init.bias.method' is kaiming_uniform, which needs a tensor of 2 "
                                              "or more dimensions, and the bias has 1: choose one of default, normal"),
    ({"weight": {"method": "normal", "std": 0}}, "field 'init.weight.std' must be a number between 1e-08 and 1000"),
    ({"weight": {"method": "normal", "std": 1e400}}, "field 'init.weight.std' must be a number between"),
    ({"weight": {"method": "normal", "std": "0.1"}}, "field 'init.weight.std' must be a number, got '0.1'"),
    ({"weight": {"method": "normal", "std": True}}, "field 'init.weight.std' must be a number, got True"),
    ({"bias": {"method": "constant", "value": -1001}}, "field 'init.bias.value' must be a number between -1000 and"),
    ({"bias": {"method": "constant", "std": 0.1}}, "field 'init.bias' has 'std', but method constant takes only "
                                                   "'value': remove it"),
    ({"bias": {"method": "zeros", "value": 0}}, "method zeros takes no number: remove it"),
])
def test_bad_inits_in_a_design_file_are_refused_naming_layer_and_field(init, words):
    with pytest.raises(SpecError) as caught:
        NetworkSpec.from_dict(_with_init(init))
    assert words in str(caught.value)


def test_an_init_on_a_layer_without_that_tensor_is_refused():
    data = _with_init({"weight": {"method": "zeros"}})
    data["layers"][0]["init"] = {"weight": {"method": "zeros"}}
    with pytest.raises(SpecError, match=r"layer 0 \(ReLU\) field 'init' is for layers with weights"):
        NetworkSpec.from_dict(data)
    data = _with_init({"bias": {"method": "zeros"}})
    data["layers"][1]["params"]["bias"] = False
    with pytest.raises(SpecError, match=r"layer 1 \(Linear\) field 'init' names 'bias', but this layer has only "
                                        r"'weight'"):
        NetworkSpec.from_dict(data)


def test_a_missing_number_takes_the_global_settings_default():
    spec = NetworkSpec.from_dict(_with_init({"weight": {"method": "normal"}}))
    assert spec.layers[1].init.weight.std == TrainConfig().init_std


# --------------------------------------------------------------------------- a run and the exported script

def test_a_run_applies_each_layers_init_after_the_global_init():
    data = load_data(DataConfig(source="synthetic-regression", samples=64))
    first = LayerSpec("Linear", {"out_features": 16}, "first").with_init("weight", TensorInit("constant", value=0.5))
    spec = NetworkSpec((2,), (first, LayerSpec("ReLU"), LayerSpec("Linear", {"out_features": 1}, "last")))
    config = TrainConfig(epochs=1, seed=SEED, init="constant", init_value=-0.75)
    model = Trainer(spec, data, config).model
    assert torch.all(model[0].weight == 0.5)  # the layer's own choice wins over the global one
    assert torch.all(model[0].bias == 0) and torch.all(model[2].weight == -0.75)  # the global init elsewhere
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 initial_model(spec, config).state_dict().values(), strict=True))


def test_the_exported_script_starts_from_the_apps_weights_on_the_same_seed():
    spec = design_with_inits()
    source = python_source(spec)
    assert "nn.init.kaiming_normal_(model[0].weight, nonlinearity='relu')  # conv weight" in source
    assert "nn.init.constant_(model[0].bias, val=0.1)  # conv bias" in source
    assert "nn.init.normal_(model[1].weight, std=0.02)" in source and "nn.init.zeros_(model[1].bias)" in source
    assert "model[4].bias" not in source  # the head has no bias
    torch.manual_seed(SEED)
    namespace = {"__name__": "exported"}
    exec(compile(source, "exported_model.py", "exec"), namespace)
    ours = initial_model(spec, TrainConfig(seed=SEED)).state_dict()
    theirs = namespace["model"].state_dict()
    assert list(ours) == list(theirs)
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    assert torch.all(theirs["0.bias"] == 0.1) and not math.isclose(theirs["0.weight"].std().item(), 0.0)


def test_parameter_stats_name_what_state_dict_names():
    spec = load_template("resnet18")
    model = initial_model(NetworkSpec((3, 32, 32), spec.layers))
    keys = list(model.state_dict())
    params = dict(model.named_parameters())
    for index in range(len(spec.layers)):
        names = [s.name for s in parameter_stats(model, index)]
        assert names == [k for k in keys if k.split(".")[0] == str(index) and k in params]
    design = NetworkSpec((3, 32, 32), spec.layers)
    paths = module_paths(design)
    inner = [layer for layer in design.all_layers() if not layer.is_group and layer.init_tensors()]
    assert len(inner) == 35  # ResNet-18's convolutions, BatchNorms and head, at any depth (auto shortcuts aside)
    for layer in design.all_layers():
        names = [s.name for s in parameter_stats(model, layer.id, design)]
        assert names == [k for k in keys if k in params and any(k.startswith(p + ".") for p in paths[layer.id])]
    shortcuts = [k for k in params if ".shortcut." in k]  # the automatic 1x1 projections: their group's
    assert len(shortcuts) == 3 * 2
    assert sum(len(parameter_stats(model, layer.id, design)) for layer in inner) == len(params) - len(shortcuts)
