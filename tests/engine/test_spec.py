"""NetworkSpec / LayerSpec: JSON round trip, and malformed input -> SpecError naming layer and field."""
from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import SpecError
from engine.layers import KINDS, PADDING_PRESETS, Param
from engine.spec import FORMAT, MAX_INPUT_DIMENSION, VERSION, LayerSpec, NetworkSpec

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KIND_NAMES = sorted(KINDS)
LAYER_FIELDS = ("id", "kind", "params", "frozen")
FIELD_NAMES = st.from_regex(r"[a-z_]{1,12}", fullmatch=True)


# --------------------------------------------------------------------------- strategies

def valid_value(p: Param) -> st.SearchStrategy:
    """Any value the schema accepts for ``p``."""
    if p.type == "int":
        return st.integers(int(p.min), int(p.max))
    if p.type == "float":
        return st.floats(p.min, p.max, allow_nan=False)
    if p.type == "bool":
        return st.booleans()
    if p.type == "choice":
        return st.sampled_from(p.choices)
    if p.type == "ints":
        return st.lists(st.integers(int(p.min), int(p.max)), min_size=1, max_size=4).map(tuple)
    if p.type == "padding":
        return st.integers(int(p.min), int(p.max)) | st.sampled_from(PADDING_PRESETS)
    raise AssertionError(p.type)


def wrong_type_value(p: Param) -> st.SearchStrategy:
    """A value of a type the schema refuses for ``p`` (never a valid value)."""
    junk = st.none() | st.text(max_size=5) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
    if p.type == "int":
        return junk | st.booleans() | st.floats() | st.lists(st.integers(), max_size=2)
    if p.type == "float":
        return junk | st.booleans() | st.lists(st.floats(), max_size=2) | st.sampled_from([float("nan"), float("inf")])
    if p.type == "bool":
        return junk | st.integers() | st.floats()
    if p.type == "choice":
        return st.none() | st.integers() | st.text(max_size=8).filter(lambda s: s not in p.choices)
    if p.type == "ints":
        return junk | st.integers() | st.just([]) | st.lists(
            st.text(max_size=2), min_size=1, max_size=3
        )
    if p.type == "padding":
        not_a_preset = st.text(max_size=8).filter(lambda s: s not in PADDING_PRESETS)
        return st.none() | st.floats() | st.booleans() | st.lists(st.integers(), max_size=2) | not_a_preset
    raise AssertionError(p.type)


@st.composite
def layer_specs(draw, layer_id: str) -> LayerSpec:
    kind = KINDS[draw(st.sampled_from(KIND_NAMES))]
    params = {p.name: draw(valid_value(p)) for p in kind.params if draw(st.booleans())}
    return LayerSpec(kind.name, params, layer_id, draw(st.booleans()))


@st.composite
def network_specs(draw) -> NetworkSpec:
    # within the documented input bounds: each dimension and the values per sample
    shape = tuple(draw(st.lists(st.integers(1, 60), min_size=1, max_size=4)
                       | st.lists(st.integers(1, MAX_INPUT_DIMENSION), min_size=1, max_size=1)))
    ids = draw(st.lists(st.from_regex(r"[A-Za-z0-9_-]{1,10}", fullmatch=True), max_size=8, unique=True))
    return NetworkSpec(shape, tuple(draw(layer_specs(i)) for i in ids))


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)


@st.composite
def corrupted_designs(draw) -> tuple[dict, tuple[str, ...]]:
    """A valid design dict with one thing broken, and the words its SpecError must contain."""
    spec = draw(network_specs().filter(lambda s: len(s.layers) > 0))
    data = spec.to_dict()
    i = draw(st.integers(0, len(spec.layers) - 1))
    layer = data["layers"][i]
    kind = KINDS[layer["kind"]]
    at = rf"\blayer {i}\b"
    numeric = [p for p in kind.params if p.type == "int"]
    how = draw(st.sampled_from(
        ["unknown kind", "kind wrong type", "unknown layer field", "unknown param", "missing kind",
         "missing top field", "unknown top field", "wrong param type", "negative size", "bool for int",
         "bad input_shape", "params not object", "layer not object", "layers not list"]
    ))
    if how in ("wrong param type", "negative size", "bool for int") and not numeric:
        how = "unknown kind"
    if how == "unknown kind":
        layer["kind"] = draw(st.text(max_size=10).filter(lambda k: k not in KINDS))
        return data, (at, "'kind'")
    if how == "kind wrong type":
        layer["kind"] = draw(st.none() | st.integers() | st.lists(st.text(max_size=3), max_size=2))
        return data, (at, "'kind'")
    if how == "unknown layer field":
        name = draw(FIELD_NAMES.filter(lambda n: n not in LAYER_FIELDS))
        layer[name] = draw(json_like)
        return data, (at, repr(name))
    if how == "unknown param":
        name = draw(FIELD_NAMES.filter(lambda n: n not in layer["params"]))
        layer["params"][name] = draw(json_like)
        return data, (at, repr(name))
    if how == "missing kind":
        del layer["kind"]
        return data, (at, "'kind'")
    if how == "missing top field":
        name = draw(st.sampled_from(["format", "version", "input_shape", "layers"]))
        del data[name]
        return data, (repr(name),)
    if how == "unknown top field":
        name = draw(FIELD_NAMES.filter(
            lambda n: n not in data and n not in ("name", "description", "training", "data")))
        data[name] = draw(json_like)
        return data, (repr(name),)
    if how == "bad input_shape":
        data["input_shape"] = draw(
            st.lists(st.integers(max_value=0), min_size=1, max_size=3) | st.just([]) | json_like.filter(
                lambda v: not isinstance(v, list)
            ) | st.lists(st.booleans(), min_size=1, max_size=2)
        )
        return data, ("'input_shape'",)
    if how == "params not object":
        layer["params"] = draw(json_like.filter(lambda v: not isinstance(v, dict)))
        return data, (at, "'params'")
    if how == "layer not object":
        data["layers"][i] = draw(json_like.filter(lambda v: not isinstance(v, dict)))
        return data, (at,)
    if how == "layers not list":
        data["layers"] = draw(json_like.filter(lambda v: not isinstance(v, list)))
        return data, ("'layers'",)
    if how == "wrong param type":
        p = draw(st.sampled_from([p for p in kind.params]))
        layer["params"][p.name] = draw(wrong_type_value(p))
        return data, (at, repr(p.name))
    p = draw(st.sampled_from(numeric))
    if how == "negative size":
        layer["params"][p.name] = draw(st.integers(max_value=int(p.min) - 1))
    else:
        layer["params"][p.name] = draw(st.booleans())
    return data, (at, repr(p.name))


# --------------------------------------------------------------------------- round trip

@SETTINGS
@given(network_specs())
def test_random_valid_specs_survive_dict_round_trip(spec):
    again = NetworkSpec.from_dict(spec.to_dict())
    assert again == spec
    assert again.to_dict() == spec.to_dict()


@SETTINGS
@given(network_specs())
def test_random_valid_specs_survive_json_round_trip(spec):
    text = spec.to_json()
    json.loads(text)  # strict JSON, no NaN
    again = NetworkSpec.from_json(text)
    assert again == spec
    assert [layer.id for layer in again.layers] == [layer.id for layer in spec.layers]


def test_round_trip_keeps_frozen_flag_and_fills_defaults():
    spec = NetworkSpec((1, 28, 28), (LayerSpec("Conv2d", {"out_channels": 6}, "c1", frozen=True),))
    data = spec.to_dict()
    assert data["format"] == FORMAT and data["version"] == VERSION
    assert data["layers"][0]["frozen"] is True
    assert data["layers"][0]["params"]["kernel_size"] == KINDS["Conv2d"].param("kernel_size").default
    assert NetworkSpec.from_dict(data).layers[0].frozen


def test_list_params_equal_their_round_trip():
    spec = NetworkSpec((784,), (LayerSpec("Unflatten", {"sizes": [1, 28, 28]}, "u"),))
    assert spec.layers[0].params["sizes"] == (1, 28, 28)
    assert NetworkSpec.from_json(spec.to_json()) == spec


def test_project_sections_are_ignored_by_the_spec():
    data = NetworkSpec((2,), (LayerSpec("Linear", {"out_features": 1}, "l"),)).to_dict()
    data.update(name="regression", description="y = Xw + b", training={"lr": 0.03}, data={"source": "csv"})
    assert NetworkSpec.from_dict(data).layers[0].params["out_features"] == 1


# ------------------------------------------------------------------------ junk never escapes as anything but SpecError

def _only_spec_error(call, *args):
    try:
        call(*args)
    except SpecError as exc:
        assert str(exc).strip(), "a SpecError must carry a message"
        return exc
    return None


@SETTINGS
@given(json_like)
def test_arbitrary_json_values_raise_only_spec_error(value):
    assert _only_spec_error(NetworkSpec.from_dict, value) is not None


@SETTINGS
@given(st.lists(json_like, max_size=4), st.lists(st.integers(-3, 40), min_size=1, max_size=3))
def test_junk_layers_raise_only_spec_error(layers, shape):
    _only_spec_error(NetworkSpec.from_dict, {"format": FORMAT, "version": 1, "input_shape": shape, "layers": layers})


@SETTINGS
@given(st.sampled_from(KIND_NAMES), st.data())
def test_junk_param_values_raise_only_spec_error(kind_name, data):
    params = {p.name: data.draw(json_like) for p in KINDS[kind_name].params}
    design = {"format": FORMAT, "version": 1, "input_shape": [3, 8, 8],
              "layers": [{"kind": kind_name, "params": params}]}
    _only_spec_error(NetworkSpec.from_dict, design)


@SETTINGS
@given(st.text(max_size=60) | st.binary(max_size=30).map(bytes))
def test_arbitrary_text_raises_only_spec_error(text):
    _only_spec_error(NetworkSpec.from_json, text)


@SETTINGS
@given(corrupted_designs())
def test_one_corrupted_field_gives_spec_error_naming_layer_and_field(case):
    data, expected = case
    with pytest.raises(SpecError) as info:
        NetworkSpec.from_dict(data)
    message = str(info.value)
    for fragment in expected:
        assert re.search(fragment, message) if fragment.startswith(r"\b") else fragment in message, (fragment, message)
    # the same corruption read from a file gives the same error
    with pytest.raises(SpecError):
        NetworkSpec.from_json(json.dumps(data, allow_nan=True))


@SETTINGS
@given(st.text(max_size=40).filter(lambda t: not _parses(t)))
def test_non_json_text_says_so(text):
    with pytest.raises(SpecError, match="JSON"):
        NetworkSpec.from_json(text)


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- messages, by example

def _design(*layers, shape=(1, 28, 28)) -> dict:
    return {"format": FORMAT, "version": 1, "input_shape": list(shape), "layers": list(layers)}


@pytest.mark.parametrize(
    "design, message",
    [
        (_design({"kind": "Conv2d", "params": {"kernel_size": -3}}),
         "layer 0 (Conv2d) parameter 'kernel_size' must be an integer between 1 and 1000, got -3"),
        (_design({"kind": "Conv2d"}, {"kind": "Linear", "params": {"out_features": True}}),
         "layer 1 (Linear) parameter 'out_features' must be an integer, got True"),
        (_design({"kind": "Conv2D"}),
         "layer 0 field 'kind' names unknown kind 'Conv2D': known kinds are Linear, "),
        (_design({"params": {}}), "layer 0 is missing field 'kind'"),
        (_design({"kind": "ReLU", "colour": "red"}), "layer 0 has unknown field 'colour': remove it"),
        (_design({"kind": "Dropout", "params": {"rate": 0.5}}),
         "layer 0 (Dropout) has unknown parameter 'rate' (known: p)"),
        (_design({"kind": "Dropout", "params": {"p": "half"}}),
         "layer 0 (Dropout) parameter 'p' must be a number, got 'half'"),
        (_design({"kind": "Dropout", "params": {"p": 1.5}}),
         "layer 0 (Dropout) parameter 'p' must be a number between 0 and 1, got 1.5"),
        (_design({"kind": "Conv2d", "params": {"padding": "half"}}),
         "layer 0 (Conv2d) parameter 'padding' must be a number or one of valid, same, full, got 'half'"),
        (_design({"kind": "LSTM", "params": {"output": "first"}}),
         "layer 0 (LSTM) parameter 'output' must be one of last, all, got 'first'"),
        (_design({"kind": "ReLU", "id": "a"}, {"kind": "ReLU", "id": "a"}),
         "layer 1 (ReLU) repeats id 'a': ids must be unique"),
        (_design(shape=(1, -28, 28)), "field 'input_shape' must be a list of 1 to 8 positive integers"),
        ({"format": FORMAT, "version": 1, "input_shape": [4]}, "design is missing field 'layers'"),
        ({"version": 1, "input_shape": [4], "layers": []}, "not a LayerStudio design: field 'format' is missing"),
        ({**_design(), "version": 7},
         "design version 7 is newer than this LayerStudio understands (2): update LayerStudio"),
        ([1, 2], "a design must be a JSON object, got list"),
    ],
)
def test_messages_name_layer_and_field(design, message):
    with pytest.raises(SpecError) as info:
        NetworkSpec.from_dict(design)
    assert str(info.value).startswith(message)


def test_json_syntax_error_gives_position():
    with pytest.raises(SpecError, match=r"not valid JSON \(line 2, column \d+: Expecting"):
        NetworkSpec.from_json('{"format": "layerstudio.design",\n "version": }')


def test_junk_values_are_shortened_in_messages():
    with pytest.raises(SpecError) as info:
        NetworkSpec.from_dict(_design({"kind": "Linear", "params": {"out_features": "x" * 10_000}}))
    assert len(str(info.value)) < 200


def test_edits_return_new_specs():
    a, b, c = (LayerSpec("Dropout", {}, i) for i in "abc")
    spec = NetworkSpec((4,), (a, b))
    assert spec.inserted(1, c).layers == (a, c, b)
    assert spec.removed("a").layers == (b,)
    assert spec.moved("a", 1).layers == (b, a)
    assert spec.with_param("a", "p", 0.2).layer("a").params == {"p": 0.2}
    assert spec.layers == (a, b) and a.params == {"p": 0.5}
    assert spec.index("b") == 1


def test_output_layer_is_the_last_layer_that_sets_a_width():
    """One answer for "which layer sets the output width": fitting resizes it, the inspector's hints read it."""
    layers = (LayerSpec("Linear", {"out_features": 64}, "hidden"), LayerSpec("ReLU", {}, "act"),
              LayerSpec("Linear", {"out_features": 32}, "out"), LayerSpec("Unflatten", {"sizes": (2, 4, 4)}, "grid"),
              LayerSpec("ConvTranspose2d", {"out_channels": 3}, "up"), LayerSpec("Sigmoid", {}, "squash"))
    spec = NetworkSpec((10,), layers)
    assert spec.output_layer() == (layers[4], "out_channels") and spec.output_layer().width == 3
    last_linear = spec.output_layer(("out_features",))
    assert (last_linear.layer.id, last_linear.param, last_linear.width) == ("out", "out_features", 32)
    assert spec.output_layer(("out_features",), after="hidden").layer.id == "out"
    assert spec.output_layer(("out_features",), after="out") is None  # nothing after the last Linear
    assert NetworkSpec((10,), (LayerSpec("ReLU", {}),)).output_layer() is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("[" * 100_000, "too deep to be a design"),
        ('{"a": ' + "1" * 5000 + "}", "a whole number has 5000 digits"),
        (b"\xff\xfe", "must be UTF-8"),
        (None, "must be JSON text"),
        ("", "not valid JSON"),
    ],
    ids=["deep-nesting", "5000-digit-number", "not-utf8", "none", "empty"],
)
def test_unreadable_text_gives_spec_error(text, message):
    with pytest.raises(SpecError, match=message):
        NetworkSpec.from_json(text)


def test_huge_number_for_a_float_parameter_is_refused_not_overflowing():
    with pytest.raises(SpecError, match=r"layer 0 \(Dropout\) parameter 'p' must be a finite number"):
        NetworkSpec.from_dict(_design({"kind": "Dropout", "params": {"p": 10**400}}))
