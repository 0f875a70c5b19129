"""analyze(): shapes, parameter and buffer counts equal real PyTorch; errors exactly where PyTorch fails."""
from __future__ import annotations

import math
import re
import warnings

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine import groups
from engine.build import build_model
from engine.errors import LayerError
from engine.layers import KINDS, PADDING_PRESETS, Param, suggest_hidden_sizes
from engine.shapes import analyze, format_count, format_shape, infer_layer
from engine.spec import LayerSpec, NetworkSpec
from tests.engine.group_designs import PRESET_PARAMS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- random stacks

# Small ranges keep every generated model tiny (the whole file runs in seconds).
SMALL_INTS = {
    "out_features": (1, 8), "out_channels": (1, 6), "hidden_size": (1, 5), "embedding_dim": (1, 5),
    "num_embeddings": (1, 8), "kernel_size": (1, 5), "stride": (1, 3), "dilation": (1, 2), "groups": (1, 3),
    "output_padding": (0, 2), "padding": (0, 3), "num_groups": (1, 4), "normalized_dims": (1, 3),
    "num_layers": (1, 2), "num_convs": (1, 2), "output_size": (1, 4), "start_dim": (-4, 4), "end_dim": (-4, 4),
    "dim": (-4, 4), "c1": (1, 3), "c2_reduce": (1, 3), "c2": (1, 3), "c3_reduce": (1, 3), "c3": (1, 3), "c4": (1, 3),
}
# Kinds that suit a sample of each rank; most draws follow these, the rest are any kind (to provoke errors).
SUITS = {
    1: ["Linear", "ReLU", "BatchNorm1d", "Dropout", "AlphaDropout", "LayerNorm", "Unflatten", "PReLU", "Softmax",
        "LogSoftmax", "GELU", "Identity", "Tanh", "Sigmoid", "GroupNorm", "LeakyReLU", "ELU", "SiLU", "Hardswish",
        "ReLU6", "Reshape", "Squeeze"],
    2: ["LSTM", "GRU", "Conv1d", "MaxPool1d", "AvgPool1d", "BatchNorm1d", "Flatten", "Linear", "LayerNorm", "GroupNorm",
        "Unflatten", "Softmax", "PReLU", "Dropout", "Reshape", "Permute", "Squeeze"],
    3: ["Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "BatchNorm2d",
        "GroupNorm", "Dropout2d", "vgg_block", "nin_block", "residual_block", "inception_block", "Flatten", "LayerNorm",
        "ReLU", "PReLU", "Softmax", "Conv2d", "Conv2d", "Conv2d", "ConvTranspose2d", "MaxPool2d", "nin_block",
        "inception_block", "residual_block", "Reshape", "Permute", "Squeeze"],
}
ALL_KINDS = sorted(kind for kind in KINDS if not KINDS[kind].is_group)  # groups: the palette's prefilled ones
INPUTS = {
    "image": st.tuples(st.integers(1, 4), st.integers(1, 16), st.integers(1, 16)),
    "features": st.tuples(st.integers(1, 16)),
    "sequence": st.tuples(st.integers(1, 6), st.integers(1, 8)),
    "signal": st.tuples(st.integers(1, 4), st.integers(1, 16)),
    "tokens": st.tuples(st.integers(1, 6)),
}


# Mostly the default for these, so deeper stacks stay valid; sometimes not, to provoke the errors.
MOSTLY_DEFAULT = {"groups", "num_groups", "output_padding", "dilation"}


def small_value(p: Param, draw) -> object:
    if p.name in MOSTLY_DEFAULT and draw(st.integers(0, 9)) < 7:
        return p.default
    if p.type == "int":
        low, high = SMALL_INTS.get(p.name, (p.min, p.min + 3))
        return draw(st.integers(max(low, p.min), min(high, p.max)))
    if p.type == "float":  # the bounds too: p 1 (drops everything) and momentum 0 are errors/warnings of their own
        middle = (p.min + p.max) / 2 if p.max < 100 else p.default
        return draw(st.sampled_from([p.default, p.default, p.min, p.max, middle]))
    if p.type == "bool":
        return draw(st.booleans())
    if p.type == "choice":
        return draw(st.sampled_from(p.choices))
    if p.type == "padding":
        return draw(st.integers(0, 3) | st.sampled_from(PADDING_PRESETS))
    if p.type == "ints":
        return tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    raise AssertionError(p.type)


def factor_split(n: int, draw) -> tuple[int, ...]:
    """A random split of n into 1-3 factors, e.g. 12 -> (2, 3, 2)."""
    parts = []
    for _ in range(draw(st.integers(0, 2))):
        divisors = [d for d in range(1, n + 1) if n % d == 0]
        d = draw(st.sampled_from(divisors))
        parts.append(d)
        n //= d
    return (*parts, n)


def draw_layer(draw, shape, index: int) -> LayerSpec:
    rank = len(shape) if shape else 0
    if shape is not None and rank in SUITS and draw(st.integers(0, 9)) < 8:
        name = draw(st.sampled_from(SUITS[rank]))
        if name in PRESET_PARAMS:
            return getattr(groups, name)(**draw(PRESET_PARAMS[name]), id=f"L{index}")
        kind = KINDS[name]
    else:
        kind = KINDS[draw(st.sampled_from(ALL_KINDS))]
    params = {p.name: small_value(p, draw) for p in kind.params}
    if kind.name == "Unflatten" and shape and draw(st.integers(0, 9)) < 8:
        params["dim"] = draw(st.sampled_from([*range(1, rank + 1), -1]))
        params["sizes"] = factor_split(shape[params["dim"] - 1 if params["dim"] > 0 else -1], draw)
    if kind.name == "Flatten" and draw(st.booleans()):
        params.update(start_dim=1, end_dim=-1)
    if shape is not None and draw(st.integers(0, 9)) < 8:  # the shape layers mostly fit their input
        if kind.name == "Reshape":
            sizes = list(factor_split(math.prod(shape), draw))
            if draw(st.booleans()):
                sizes[draw(st.integers(0, len(sizes) - 1))] = -1
            params["shape"] = tuple(sizes)
        if kind.name == "Permute" and shape:
            params["dims"] = tuple(draw(st.permutations(range(1, rank + 1))))
        ones = [i + 1 for i, size in enumerate(shape) if size == 1]
        if kind.name == "Squeeze" and ones:
            dim = draw(st.sampled_from(ones))
            params["dim"] = draw(st.sampled_from([dim, dim - rank - 1]))  # counted from the front or the back
    return LayerSpec(kind.name, params, f"L{index}", frozen=draw(st.integers(0, 9)) == 0)


@st.composite
def stacks(draw) -> NetworkSpec:
    source = draw(st.sampled_from(["image", "image", *INPUTS]))
    spec = NetworkSpec(draw(INPUTS[source]))
    if source == "tokens":
        p = {"num_embeddings": draw(st.integers(1, 8)), "embedding_dim": draw(st.integers(1, 5))}
        spec = spec.inserted(0, LayerSpec("Embedding", p, "L0"))
    for i in range(len(spec.layers), draw(st.integers(1, 6))):
        shape = analyze(spec).output_shape
        spec = spec.inserted(i, draw_layer(draw, shape, i))
    return spec


def count(tensors) -> int:
    return sum(t.numel() for t in tensors)


def expected_error(row, layer: LayerSpec) -> LayerError:
    """The LayerError behind a row's error (a token layer out of place is the one error analyze adds itself)."""
    if KINDS[row.kind].tokens and row.index > 0:
        return LayerError(row.error)
    try:
        infer_layer(layer.kind, row.in_shape, layer.params)
    except LayerError as exc:
        return exc
    raise AssertionError(f"row {row.index} has an error but infer_layer raised none: {row.error}")


def run_torch(kind: str, in_shape, params: dict, x: torch.Tensor):
    """Raw PyTorch: construct the layer as the registry builds it, then forward a batch."""
    module = KINDS[kind].build(tuple(in_shape), params)
    return module, module(x)


def run_layer(layer: LayerSpec, in_shape, x: torch.Tensor):
    """A registry layer as run_torch builds it, a group as build_model does."""
    if not layer.is_group:
        return run_torch(layer.kind, in_shape, layer.params, x)
    module = build_model(NetworkSpec(tuple(in_shape), (layer,)))[0]
    return module, module(x)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(stacks())
def test_random_stacks_match_pytorch_layer_by_layer(spec):
    analysis = analyze(spec)
    assert len(analysis.rows) == len(spec.layers)
    tokens = spec.layers and spec.layers[0].kind == "Embedding"
    x = torch.zeros((2, *spec.input_shape), dtype=torch.long if tokens else torch.float32)
    for row, layer in zip(analysis.rows, spec.layers, strict=True):
        if row.in_shape is None:  # unknown downstream of an error whose output is unknown
            assert row.shape is None and row.params is None
            event("unknown downstream")
            continue
        assert tuple(x.shape[1:]) == row.in_shape, f"row {row.index} ({row.label}) in_shape"
        if layer.is_group and any(inner.error for inner in row.walk()):  # an inner row says what is wrong
            event(f"error inside a group: {row.label}")
            assert row.shape is None or not row.error
            if row.shape is None:
                break
            x = torch.zeros((2, *row.shape))
            continue
        if row.error:
            error = expected_error(row, layer)
            event(f"error ({'torch fails' if error.torch_fails else 'torch misreads'}): {row.kind}")
            if error.torch_fails:
                with pytest.raises((RuntimeError, ValueError, IndexError, LayerError)):  # torch's, or the build's
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        run_torch(layer.kind, row.in_shape, layer.params, x)
            assert row.shape == error.shape
            if row.shape is not None:
                x = torch.zeros((2, *row.shape))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. LSTM dropout with one layer
            try:
                module, y = run_layer(layer, row.in_shape, x)
            except Exception as exc:  # pragma: no cover - the failure message is the point
                raise AssertionError(f"analyze passed row {row.index} ({row.label}, in {row.in_shape}) "
                                     f"but PyTorch fails: {exc}") from exc
        event(f"ok: {row.kind}")
        assert tuple(y.shape[1:]) == row.shape, f"row {row.index} ({row.label}) shape"
        # a batch of one: analysis knows every layer that cannot train on it (BatchNorm over one value per channel)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if row.min_batch > 1:
                event(f"needs a batch of {row.min_batch}: {row.kind}")
                with pytest.raises(ValueError, match="more than 1 value"):
                    module(x[:1])
            else:
                module(x[:1])
        assert count(module.parameters()) == row.params, f"row {row.index} ({row.label}) params"
        assert count(module.buffers()) == row.buffers, f"row {row.index} ({row.label}) buffers"
        assert row.trainable == (0 if layer.frozen else row.params)
        x = y
    if analysis.ok and spec.layers:
        event(f"whole stack ok, {len(spec.layers)} layers")
        x = torch.zeros((2, *spec.input_shape), dtype=torch.long if tokens else torch.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_model(spec)
            assert tuple(model(x).shape[1:]) == analysis.output_shape
        assert count(p for p in model.parameters() if p.requires_grad) == analysis.trainable
        assert count(model.parameters()) == analysis.params and count(model.buffers()) == analysis.buffers


# --------------------------------------------------------------------------- by example

def layer_of(kind: str, params: dict) -> LayerSpec:
    """A registry layer, or one of the palette's prefilled groups by its engine.groups function."""
    return getattr(groups, kind)(**params, id="x") if kind in PRESET_PARAMS else LayerSpec(kind, params, "x")


def one(kind: str, in_shape, **params):
    return analyze(NetworkSpec(in_shape, (layer_of(kind, params),))).rows[0]


def built(kind: str, in_shape, params: dict):
    return build_model(NetworkSpec(tuple(in_shape), (layer_of(kind, params),)))[0]


@pytest.mark.parametrize(
    "kind, in_shape, params, formula",
    [
        ("Conv2d", (1, 28, 28), dict(out_channels=6, kernel_size=5, padding=2),
         "H = floor((28 + 2*2 - 5)/1) + 1 = 28; W = floor((28 + 2*2 - 5)/1) + 1 = 28"),
        ("Conv2d", (3, 32, 20), dict(kernel_size=3, stride=2, dilation=2),
         "H = floor((32 + 2*0 - 2*(3-1) - 1)/2) + 1 = 14; W = floor((20 + 2*0 - 2*(3-1) - 1)/2) + 1 = 8"),
        ("Conv1d", (4, 100), dict(kernel_size=7, stride=3), "L = floor((100 + 2*0 - 7)/3) + 1 = 32"),
        ("MaxPool2d", (6, 28, 28), dict(),
         "H = floor((28 + 2*0 - 2)/2) + 1 = 14; W = floor((28 + 2*0 - 2)/2) + 1 = 14"),
        ("AvgPool2d", (6, 7, 7), dict(kernel_size=3, stride=2, padding=1),
         "H = floor((7 + 2*1 - 3)/2) + 1 = 4; W = floor((7 + 2*1 - 3)/2) + 1 = 4"),
        ("ConvTranspose2d", (8, 7, 7), dict(out_channels=4, kernel_size=4, stride=2, padding=1),
         "H = (7-1)*2 - 2*1 + 1*(4-1) + 0 + 1 = 14; W = (7-1)*2 - 2*1 + 1*(4-1) + 0 + 1 = 14"),
        ("Reshape", (1, 28, 28), dict(shape=(-1, 28)), "-1 = 784/28 = 28"),
    ],
)
def test_formulas_fill_in_the_numbers(kind, in_shape, params, formula):
    row = one(kind, in_shape, **params)
    assert row.formula == formula and not row.error


@pytest.mark.parametrize(
    "padding, kernel, dilation, expected",
    [("valid", 5, 1, 24), ("same", 5, 1, 28), ("same", 4, 1, 28), ("same", 2, 3, 28), ("full", 5, 1, 32),
     ("full", 3, 2, 32), (2, 5, 1, 28)],
)
def test_padding_presets(padding, kernel, dilation, expected):
    row = one("Conv2d", (1, 28, 28), out_channels=2, kernel_size=kernel, padding=padding, dilation=dilation)
    assert row.shape == (2, expected, expected) and not row.error
    module = KINDS["Conv2d"].build((1, 28, 28), LayerSpec("Conv2d", dict(out_channels=2, kernel_size=kernel,
                                                                    padding=padding, dilation=dilation)).params)
    assert tuple(module(torch.zeros(2, 1, 28, 28)).shape[1:]) == row.shape


def test_same_padding_explains_itself_and_refuses_stride():
    assert "padding 'same' keeps the size" in one("Conv2d", (1, 9, 9), kernel_size=4, padding="same").formula
    row = one("Conv2d", (1, 9, 9), kernel_size=3, stride=2, padding="same")
    assert row.error == "padding 'same' needs stride 1, got stride 2: set stride to 1 or give padding as a number"


@pytest.mark.parametrize(
    "kind, in_shape, params, message",
    [
        ("Conv2d", (1, 4, 4), dict(kernel_size=5),
         "kernel 5 is larger than the padded input 4: lower kernel_size or add padding"),
        ("Conv2d", (1, 6, 6), dict(kernel_size=3, dilation=3),
         "dilated kernel 7 is larger than the padded input 6: lower kernel_size or add padding"),
        ("LSTM", (1, 28, 28), dict(),
         "LSTM needs (sequence, features) input, got (1, 28, 28): add a Squeeze first (dim 1) to read it as 28 steps "
         "of 28 features"),
        ("GRU", (3, 8, 8), dict(), "GRU needs (sequence, features) input, got (3, 8, 8): add a Flatten or Reshape "
                                   "first to merge its dimensions into two"),
        ("LSTM", (784,), dict(), "LSTM needs (sequence, features) input, got (784,): add an Unflatten or Reshape "
                                 "first to split it into two dimensions"),
        ("Reshape", (1, 28, 28), dict(shape=(27, 28)), "Reshape shape (27, 28) holds 756 values but the input "
                                                       "(1, 28, 28) holds 784: make the sizes multiply to 784, or "
                                                       "write -1 for one of them"),
        ("Reshape", (1, 28, 28), dict(shape=(-1, 5)), "Reshape shape (-1, 5) cannot hold the input's 784 values: the "
                                                      "sizes besides -1 multiply to 5, which does not divide 784"),
        ("Reshape", (6,), dict(shape=(-1, -1)), "Reshape shape (-1, -1) has -1 in 2 places: write -1 in one place"),
        ("Reshape", (6,), dict(shape=(0, 6)), "Reshape shape (0, 6) has a size 0: give sizes of 1 or more"),
        ("Permute", (5, 7, 3), dict(dims=(2, 1)), "Permute dims (2, 1) are not an order of the sample's 3 dimensions "
                                                  "(5, 7, 3): list each of 1, 2, 3 once (the batch stays first), "
                                                  "e.g. (3, 2, 1)"),
        ("Permute", (5, 7), dict(dims=(2, 2)), "Permute dims (2, 2) are not an order of the sample's 2 dimensions"),
        ("Squeeze", (3, 1, 28), dict(dim=1), "Squeeze dim 1 has size 3 in the sample (3, 1, 28), not 1: set dim to 2, "
                                             "where it has size 1"),
        ("Squeeze", (3, 28), dict(dim=-1), "Squeeze dim -1 has size 28 in the sample (3, 28), not 1: remove the "
                                           "Squeeze (Flatten or Reshape merge dimensions of other sizes)"),
        ("Squeeze", (1, 28, 28), dict(dim=0), "Squeeze dim 0 is the batch dimension: set dim to 1..3 or -1"),
        ("Conv2d", (784,), dict(), "Conv2d needs (channels, height, width) input, got (784,): add an Unflatten first"),
        ("MaxPool2d", (1, 8, 8), dict(kernel_size=3, padding=2),
         "MaxPool2d padding 2 is more than half the kernel 3: lower padding to at most 1"),
        ("Conv2d", (3, 8, 8), dict(out_channels=4, groups=2),
         "Conv2d in_channels 3 is not divisible by groups 2: set groups to a divisor of 3"),
        ("GroupNorm", (6, 4, 4), dict(num_groups=4),
         "GroupNorm: 6 channels are not divisible into 4 groups: set num_groups to a divisor of 6"),
        ("Unflatten", (100,), dict(sizes=(1, 28, 28)),
         "Unflatten sizes (1, 28, 28) hold 784 values but dimension 1 has 100: make the sizes multiply to 100"),
        ("Softmax", (10,), dict(dim=2), "Softmax dim 2 is out of range for a 1-D sample"),
        ("ConvTranspose2d", (1, 4, 4), dict(stride=1, output_padding=1),
         "output_padding 1 must be smaller than stride 1 or dilation 1: lower output_padding"),
    ],
)
def test_errors_carry_a_fix_hint(kind, in_shape, params, message):
    assert one(kind, in_shape, **params).error.startswith(message)


def test_analysis_goes_on_past_an_error_when_the_shape_is_known():
    spec = NetworkSpec((6, 8, 8), (
        LayerSpec("GroupNorm", {"num_groups": 4}, "bad"),       # shape still known: (6, 8, 8)
        LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 3}, "c"),
        LayerSpec("Conv2d", {"kernel_size": 9}, "too-big"),     # output unknown
        LayerSpec("Flatten", {}, "f"),
        LayerSpec("Linear", {"out_features": 10}, "l"),
    ))
    rows = analyze(spec).rows
    assert rows[0].error and rows[0].shape == (6, 8, 8)
    assert not rows[1].error and rows[1].shape == (4, 6, 6) and rows[1].params == 4 * 6 * 9 + 4
    assert rows[2].error and rows[2].shape is None
    assert [(r.in_shape, r.shape, r.params, r.error) for r in rows[3:]] == [(None, None, None, "")] * 2
    analysis = analyze(spec)
    assert [r.layer_id for r in analysis.errors] == ["bad", "too-big"]
    assert not analysis.ok and analysis.output_shape is None


def test_every_problem_is_reported_at_once():
    spec = NetworkSpec((3, 8, 8), (
        LayerSpec("Conv2d", {"out_channels": 4, "groups": 2, "padding": 1}, "a"),  # 3 channels vs groups 2
        LayerSpec("Softmax", {"dim": 0}, "b"),                        # the batch dim, shape known
        LayerSpec("Dropout2d", {}, "c"),
        LayerSpec("LayerNorm", {"normalized_dims": 4}, "d"),         # more dims than the sample has
    ))
    analysis = analyze(spec)
    assert [r.layer_id for r in analysis.errors] == ["a", "b", "d"]
    assert analysis.output_shape == (4, 8, 8)


def test_embedding_only_first():
    ok = NetworkSpec((12,), (LayerSpec("Embedding", {"num_embeddings": 100, "embedding_dim": 8}, "e"),
                             LayerSpec("LSTM", {"hidden_size": 16}, "r")))
    rows = analyze(ok).rows
    assert rows[0].shape == (12, 8) and rows[0].params == 800 and rows[1].shape == (16,)
    bad = NetworkSpec((12,), (LayerSpec("Identity", {}, "i"), LayerSpec("Embedding", {}, "e")))
    assert "must be the first layer" in analyze(bad).rows[1].error


def test_frozen_layers_count_as_not_trainable():
    spec = NetworkSpec((1, 28, 28), (
        LayerSpec("Conv2d", {"out_channels": 6, "kernel_size": 5}, "c", frozen=True),
        LayerSpec("BatchNorm2d", {}, "bn"),
        LayerSpec("Flatten", {}, "f"),
        LayerSpec("Linear", {"out_features": 10}, "l"),
    ))
    analysis = analyze(spec)
    conv = 6 * 25 + 6
    assert analysis.row("c").params == conv and analysis.row("c").trainable == 0
    assert analysis.params == conv + 12 + (6 * 24 * 24 * 10 + 10)
    assert analysis.trainable == analysis.params - conv
    assert analysis.buffers == 13
    model = build_model(spec)
    assert count(p for p in model.parameters() if p.requires_grad) == analysis.trainable


def test_totals_and_activation_size():
    spec = NetworkSpec((784,), (LayerSpec("Linear", {"out_features": 512}, "a"), LayerSpec("BatchNorm1d", {}, "b"),
                                LayerSpec("Linear", {"out_features": 10}, "c")))
    analysis = analyze(spec)
    assert analysis.params == 784 * 512 + 512 + 1024 + 5130
    assert analysis.buffers == 1025
    assert analysis.macs == 784 * 512 + 2 * 512 + 5120
    assert analysis.size_mb == pytest.approx((analysis.params + analysis.buffers) * 4 / 1e6)
    assert analysis.row("a").activation_bytes == 512 * 4
    assert format_count(analysis.params) == "408k" and format_count(1_234_567) == "1.23M" and format_count(None) == "?"
    assert format_shape((1, 28, 28)) == "1x28x28" and format_shape(None) == "?"


def test_macs_of_conv_and_linear_match_pytorch_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    spec = NetworkSpec((3, 16, 16), (
        LayerSpec("Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1, "groups": 1}, "c"),
        LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 3, "stride": 2, "groups": 2}, "g"),
        LayerSpec("ConvTranspose2d", {"out_channels": 6, "kernel_size": 3, "stride": 2}, "t"),
        LayerSpec("Flatten", {}, "f"),
        LayerSpec("Linear", {"out_features": 10}, "l"),
    ))
    analysis = analyze(spec)
    model = build_model(spec)
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 16, 16))
    assert counter.get_total_flops() == 2 * analysis.macs


def test_recurrent_param_counts_include_bidirectional_and_stacking():
    for kind in ("LSTM", "GRU"):
        row = one(kind, (7, 5), hidden_size=6, num_layers=3, bidirectional=True, output="all")
        reference = getattr(torch.nn, kind)(5, 6, num_layers=3, bidirectional=True)
        assert row.params == count(reference.parameters()) and row.shape == (7, 12)


def test_bad_parameter_values_are_row_errors_not_crashes():
    spec = NetworkSpec((1, 8, 8), (LayerSpec("Conv2d", {"stride": 0}, "s"), LayerSpec("Mystery", {}, "m")))
    rows = analyze(spec).rows
    assert "'stride'" in rows[0].error and rows[0].shape is None
    assert rows[1].in_shape is None and "unknown kind 'Mystery'" in rows[1].error  # reported below an unknown shape too


def test_suggest_hidden_sizes():
    assert suggest_hidden_sizes(784, 10) == {
        "2/3 of input + output": 533, "mean of input and output": 397, "geometric mean": 89,
    }
    assert min(suggest_hidden_sizes(1, 1).values()) >= 1


@pytest.mark.parametrize("kernel, stride, dilation", [(3, 1, 1), (4, 2, 1), (3, 2, 1), (1, 3, 1), (5, 2, 2), (2, 2, 1)])
def test_conv_transpose_same_padding_multiplies_by_stride(kernel, stride, dilation):
    params = dict(out_channels=3, kernel_size=kernel, stride=stride, dilation=dilation, padding="same")
    row = one("ConvTranspose2d", (2, 5, 7), **params)
    assert row.shape == (3, 5 * stride, 7 * stride) and not row.error
    assert row.formula.startswith(f"H = 5*{stride} = {5 * stride} (padding 'same'")
    module = KINDS["ConvTranspose2d"].build((2, 5, 7), LayerSpec("ConvTranspose2d", params).params)
    assert tuple(module(torch.zeros(2, 2, 5, 7)).shape[1:]) == row.shape


def test_conv_transpose_presets_that_cannot_work_say_why():
    assert one("ConvTranspose2d", (2, 5, 5), kernel_size=4, stride=1, padding="same").error == (
        "padding 'same' cannot keep input x stride with kernel 4 at stride 1: "
        "use an odd kernel_size or a stride of 2 or more")
    assert "no 'full' padding" in one("ConvTranspose2d", (2, 5, 5), padding="full").error
    assert one("ConvTranspose2d", (2, 5, 5), kernel_size=3, padding="valid").shape == (16, 11, 11)


@pytest.mark.parametrize(
    "kind, params, label",
    [("Conv2d", dict(out_channels=6, kernel_size=5, padding=2), "Conv2d 6, k5, p2"),
     ("Conv2d", dict(padding="same", stride=1), "Conv2d 16, k3, same"),
     ("Group", dict(mode="sequence", repeat=3), "Sequence ×3"),
     ("MaxPool2d", dict(), "MaxPool2d 2, s2"),
     ("Unflatten", dict(sizes=(1, 28, 28)), "Unflatten 1x28x28"),
     ("Reshape", dict(shape=(-1, 28)), "Reshape -1x28"),
     ("Squeeze", dict(), "Squeeze"),
     ("Squeeze", dict(dim=-3), "Squeeze dim=-3"),
     ("Dropout", dict(p=0.25), "Dropout 0.25"),
     ("ReLU", dict(), "ReLU")],
)
def test_row_labels(kind, params, label):
    assert one(kind, (1, 28, 28), **params).label == label


# ----------------------------------------------------------------------------- designs torch accepts that cannot learn

def forward(kind: str, in_shape, params: dict, x: torch.Tensor) -> torch.Tensor:
    module = KINDS[kind].build(tuple(in_shape), LayerSpec(kind, params).params)
    with torch.no_grad():
        return module(x)


@pytest.mark.parametrize(
    "kind, in_shape, params",
    [("GroupNorm", (4,), dict(num_groups=4)),           # after a Linear: one channel per group, no spatial
     ("GroupNorm", (6, 1, 1), dict(num_groups=6)),      # after global pooling
     ("GroupNorm", (5,), dict(num_groups=5)),           # 5 is prime: the fix is one group
     ("GroupNorm", (1,), dict(num_groups=1)),           # a single value per sample: nothing to fix with num_groups
     ("LayerNorm", (5, 1), dict(normalized_dims=1)),    # the last dimension holds one value
     ("LayerNorm", (3, 1, 1), dict(normalized_dims=2)),
     ("LayerNorm", (1,), dict())],
)
def test_normalising_over_a_single_value_is_an_error_with_a_fix_that_works(kind, in_shape, params):
    row = one(kind, in_shape, **params)
    assert row.error.startswith(f"{kind} normalises each ")
    assert "over a single value, so its output is constant" in row.error
    assert row.shape == tuple(in_shape)  # analysis goes on below it
    # PyTorch runs it and gives the same output whatever the input: nothing before it can learn
    torch.manual_seed(0)
    a, b = (forward(kind, in_shape, params, torch.randn(3, *in_shape) * 10) for _ in range(2))
    torch.testing.assert_close(a, b, atol=1e-3, rtol=0)
    fix = re.search(r"set (\w+) to (\d+)", row.error)
    if fix is None:
        assert "remove it: each sample holds a single value" in row.error and math.prod(in_shape) == 1
    else:
        fixed = one(kind, in_shape, **{**params, fix[1]: int(fix[2])})
        assert not fixed.error and not fixed.warning


@pytest.mark.parametrize(
    "kind, in_shape, params",
    [("BatchNorm1d", (8,), {}), ("BatchNorm1d", (4, 1), {}), ("BatchNorm2d", (4, 1, 1), {}),
     ("residual_block", (3, 1, 1), dict(out_channels=4)),
     ("residual_block", (3, 2, 2), dict(out_channels=4, stride=2))],
)
def test_batch_norm_over_one_value_per_channel_needs_a_batch_of_two(kind, in_shape, params):
    row = one(kind, in_shape, **params)
    assert not row.error and row.min_batch == 2
    assert not row.warning  # a correct design at any batch size above 1: the batch size decides, not the row
    module = built(kind, in_shape, params)
    module(torch.randn(2, *in_shape))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        module(torch.randn(1, *in_shape))
    spec = NetworkSpec(in_shape, (layer_of(kind, params),))
    assert analyze(spec).min_batch == 2


@pytest.mark.parametrize("kind, in_shape",
                         [("BatchNorm1d", (4, 2)), ("BatchNorm2d", (4, 2, 1)), ("residual_block", (3, 2, 2))])
def test_batch_norm_with_more_than_one_value_per_channel_trains_on_a_batch_of_one(kind, in_shape):
    row = one(kind, in_shape)
    assert row.min_batch == 1 and not row.warning
    built(kind, in_shape, {})(torch.randn(1, *in_shape))


def test_batch_norm_momentum_zero_warns_that_running_statistics_never_move():
    row = one("BatchNorm2d", (3, 4, 4), momentum=0.0)
    assert not row.error and row.warning.startswith("momentum 0 never updates the running statistics")
    module = KINDS["BatchNorm2d"].build((3, 4, 4), LayerSpec("BatchNorm2d", {"momentum": 0.0}).params)
    module(torch.randn(4, 3, 4, 4) + 5)
    assert torch.equal(module.running_mean, torch.zeros(3)) and torch.equal(module.running_var, torch.ones(3))


@pytest.mark.parametrize("kind, in_shape", [("Dropout", (6,)), ("Dropout2d", (2, 3, 3)), ("AlphaDropout", (6,))])
def test_dropout_of_every_value_is_an_error(kind, in_shape):
    row = one(kind, in_shape, p=1.0)
    assert row.error.startswith(f"{kind} p 1 drops every value while training") and row.shape == in_shape
    assert not one(kind, in_shape, p=0.99).error
    module = KINDS[kind].build(tuple(in_shape), {"p": 1.0})
    out = module(torch.randn(4, *in_shape))
    assert torch.equal(out, torch.zeros_like(out)) or out.unique().numel() == 1  # nothing of the input is left


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_recurrent_dropout_of_every_value_between_layers_is_an_error(kind):
    row = one(kind, (5, 3), hidden_size=4, num_layers=2, dropout=1.0)
    assert row.error.startswith(f"{kind} dropout 1 drops every value between its stacked layers")
    assert row.shape == (4,)
    assert not one(kind, (5, 3), hidden_size=4, num_layers=1, dropout=1.0).error  # a warning says it does nothing


@pytest.mark.parametrize("kind", [k for k in KINDS if KINDS[k].tokens])
def test_layers_fed_token_indices_must_come_first(kind):
    spec = NetworkSpec((12,), (LayerSpec("Identity", {}, "i"), LayerSpec(kind, {}, "t")))
    assert analyze(spec).rows[1].error == (
        f"{kind} needs integer token indices, so it must be the first layer: move it to the top")
    first = NetworkSpec((12,), (LayerSpec(kind, {}, "t"),))
    assert analyze(first).ok


# --------------------------------------------------------------------------- numbers past what torch can count

def test_outputs_and_weights_past_torchs_int64_count_are_errors_and_stop_the_numbers_growing():
    upsample = LayerSpec("ConvTranspose2d", {"out_channels": 100_000, "kernel_size": 1000, "stride": 1000}).params
    layers = [LayerSpec("ConvTranspose2d", upsample, f"t{i}") for i in range(6)]
    spec = NetworkSpec((1, 1000, 1000), (*layers, LayerSpec("Flatten", {}, "f"), LayerSpec("Linear", {}, "l")))
    analysis = analyze(spec)
    bad = analysis.errors[0]
    assert bad.error.startswith("This layer's output would hold ")
    assert "more than PyTorch can count (2^63 - 1)" in bad.error
    assert bad.shape is None and all(r.shape is None for r in analysis.rows[bad.index:])
    assert all(math.prod(r.shape) < 2**63 for r in analysis.rows if r.shape)
    assert format_count(analysis.macs) and f"{analysis.size_mb:.2f}"

    wide = NetworkSpec((10**13,), (LayerSpec("Linear", {"out_features": 1_000_000}, "l"),))  # 10^19 weights
    row = analyze(wide).rows[0]
    assert row.error.startswith("This layer's weights would hold ") and row.shape is None
    assert not analyze(wide.with_input_shape((10**12,))).rows[0].error  # 10^18 still counts in int64
    huge_input = NetworkSpec((2**40, 2**40), (LayerSpec("ReLU", {}, "r"),))
    assert "input shape holds more values than PyTorch can count" in analyze(huge_input).rows[0].error


def test_a_batch_of_single_values_is_refused_by_flatten_and_groupnorm_with_a_sentence():
    """After a Squeeze that leaves each sample a single value, Flatten passed analysis although PyTorch fails,
    and GroupNorm's check crashed the analysis itself (IndexError) instead of marking the row."""
    squeezed = (LayerSpec("ReLU", id="a"), LayerSpec("Squeeze", {"dim": 1}, id="b"))
    for layer in (LayerSpec("Flatten", id="c"), LayerSpec("GroupNorm", {"num_groups": 2}, id="c")):
        row = analyze(NetworkSpec((1,), (*squeezed, layer))).rows[-1]
        assert row.in_shape == () and "each sample is a single value" in row.error and layer.kind in row.error
    whole_batch = LayerSpec("Flatten", {"start_dim": 0, "end_dim": -1}, id="c")
    row = analyze(NetworkSpec((1,), (*squeezed, whole_batch))).rows[-1]
    assert row.error and row.shape == ()  # PyTorch takes this one (it flattens the batch alone): the shape goes on
