"""The MAC convention of docs/macs.md: one rule per layer, the same inside a group (the palette's blocks) as standing
alone."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from engine import groups
from engine.build import build_model
from engine.layers import KINDS, adaptive_window_total
from engine.shapes import analyze, infer_layer
from engine.spec import LayerSpec, NetworkSpec
from tests.engine.group_designs import PRESET_PARAMS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DOC = Path(__file__).parents[2] / "docs" / "macs.md"
# The palette's prefilled groups, by the engine.groups function that makes them (docs/macs.md names them so).
BLOCKS = {name: getattr(groups, name) for name in ("vgg_block", "nin_block", "residual_block", "inception_block")}


def layer(kind: str, **params) -> LayerSpec:
    return BLOCKS[kind](**params, id="x") if kind in BLOCKS else LayerSpec(kind, params, "x")


def one(kind: str, in_shape, **params):
    return analyze(NetworkSpec(tuple(in_shape), (layer(kind, **params),))).rows[0]


def built(kind: str, in_shape, params: dict) -> nn.Module:
    return build_model(NetworkSpec(tuple(in_shape), (layer(kind, **params),)))[0]


def as_registry_layer(module: nn.Module) -> tuple[str, dict]:
    """The palette layer that builds to ``module``: what it would be standing alone."""
    def square(value):
        assert value[0] == value[1], f"{module} is not square"
        return value[0]

    if isinstance(module, nn.Conv2d):
        return "Conv2d", dict(out_channels=module.out_channels, kernel_size=square(module.kernel_size),
                              stride=square(module.stride), padding=square(module.padding),
                              dilation=square(module.dilation), groups=module.groups, bias=module.bias is not None)
    if isinstance(module, nn.BatchNorm2d):
        return "BatchNorm2d", dict(eps=module.eps, momentum=module.momentum, affine=module.affine)
    if isinstance(module, nn.MaxPool2d):
        return "MaxPool2d", dict(kernel_size=module.kernel_size, stride=module.stride, padding=module.padding)
    if isinstance(module, nn.ReLU):
        return "ReLU", {}
    raise AssertionError(f"map {type(module).__name__} to its palette layer here")


def inner_layers_standing_alone(kind: str, in_shape, params: dict) -> list:
    """Run the built block and infer each leaf module it calls as a standalone layer at its real input."""
    module = built(kind, in_shape, params)
    called: list[tuple[nn.Module, tuple]] = []
    for leaf in module.modules():
        if not list(leaf.children()) and not isinstance(leaf, nn.Sequential):  # an empty one: identity
            leaf.register_forward_pre_hook(lambda m, args: called.append((m, tuple(args[0].shape[1:]))))
    module(torch.zeros(2, *in_shape))
    inner = []
    for leaf, shape in called:
        kind_alone, params_alone = as_registry_layer(leaf)
        inner.append(infer_layer(kind_alone, shape, params_alone))
    return inner




@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_block_costs_exactly_its_inner_layers_counted_standing_alone(data):
    kind = data.draw(st.sampled_from(sorted(BLOCKS)))
    params = data.draw(PRESET_PARAMS[kind])
    in_shape = data.draw(st.tuples(st.integers(1, 5), st.integers(1, 9), st.integers(1, 9)))
    row = one(kind, in_shape, **params)
    if any(inner.error for inner in row.walk()):
        event("block refuses its input")
        return
    event(kind)
    inner = inner_layers_standing_alone(kind, in_shape, params)
    assert row.macs == sum(layer.macs for layer in inner)  # the glue (addition, concatenation) adds none
    assert row.params == sum(layer.params for layer in inner)
    assert row.buffers == sum(layer.buffers for layer in inner)
    assert row.min_batch == max(layer.min_batch for layer in inner)


def test_every_block_kind_is_covered_with_batch_norm_and_pooling_inside():
    kinds = {k: {type(m).__name__ for m in built(k, (3, 8, 8), {}).modules()} for k in BLOCKS}
    assert set(BLOCKS) == {p.make.__name__ for p in groups.PRESETS.values()} - {"<lambda>", "bottleneck_block",
                                                                                  "dense_block"}
    assert "BatchNorm2d" in kinds["residual_block"] and "MaxPool2d" in kinds["vgg_block"]
    assert "MaxPool2d" in kinds["inception_block"]
    residual = inner_layers_standing_alone("residual_block", (3, 8, 8), dict(out_channels=4, stride=2))
    assert sum(layer.macs for layer in residual) == one("residual_block", (3, 8, 8), out_channels=4, stride=2).macs
    assert sum(layer.macs for layer in residual if layer.buffers) == 2 * 2 * 4 * 4 * 4  # two BatchNorms, 2 per value


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 3), st.integers(1, 24), st.data())
def test_adaptive_pooling_counts_exactly_as_its_fixed_size_twin(channels, n, data):
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    o = data.draw(st.sampled_from(divisors) | st.integers(1, n))
    stride = n // o
    kernel = n - (o - 1) * stride
    x = torch.randn(2, channels, n, n)
    for adaptive, fixed in (("AdaptiveAvgPool2d", "AvgPool2d"), ("AdaptiveMaxPool2d", "MaxPool2d")):
        twin = dict(kernel_size=kernel, stride=stride, padding=0)
        same = torch.allclose(KINDS[adaptive].build((channels, n, n), {"output_size": o})(x),
                              KINDS[fixed].build((channels, n, n), twin)(x))
        if not same:  # no fixed pool lays the same windows (e.g. 7 -> 3)
            event("no fixed-size twin")
            continue
        event("twin" if n % o else "twin: o divides n")
        a, f = one(adaptive, (channels, n, n), output_size=o), one(fixed, (channels, n, n), **twin)
        assert a.shape == f.shape and a.macs == f.macs


def test_adaptive_windows_follow_pytorchs_start_and_end():
    # window i over n values spans floor(i*n/o) .. ceil((i+1)*n/o): 7 -> 3 gives 0..3, 2..5, 4..7
    assert adaptive_window_total(7, 3) == 3 + 3 + 3
    assert adaptive_window_total(2, 4) == 4  # upsampling: every window is one value
    assert all(adaptive_window_total(n, o) == n for n in range(1, 40) for o in range(1, n + 1) if n % o == 0)
    assert one("AdaptiveAvgPool2d", (2, 7, 5), output_size=3).macs == 2 * 9 * adaptive_window_total(5, 3)


def doc_examples() -> list[tuple[str, dict, tuple, int]]:
    """The worked-example table of docs/macs.md: (kind, params, input shape, MACs) per row."""
    rows = re.findall(r"^\| `(\w+)\((.*?)\)` \| ([\dx]+) \| ([\d,]+) \|", DOC.read_text(encoding="utf-8"), re.M)
    examples = []
    for kind, args, shape, macs in rows:
        call = ast.parse(f"f({args})", mode="eval").body
        params = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
        examples.append((kind, params, tuple(int(n) for n in shape.split("x")), int(macs.replace(",", ""))))
    return examples


def test_the_worked_examples_in_the_docs_are_what_the_code_counts():
    examples = doc_examples()
    assert len(examples) >= 20 and {kind for kind, *_ in examples} >= set(BLOCKS) | {"AdaptiveAvgPool2d", "LSTM"}
    for kind, params, shape, macs in examples:
        row = one(kind, shape, **params)
        assert not row.error and row.macs == macs, f"docs/macs.md: {kind}({params}) on {shape}"


@pytest.mark.parametrize("kind, in_shape, params", [
    ("GRU", (7, 5), dict(hidden_size=6, num_layers=2, bidirectional=True, output="all")),
    ("vgg_block", (3, 16, 16), dict(num_convs=2, out_channels=8)),
    ("nin_block", (3, 16, 16), dict(out_channels=6, kernel_size=5, stride=2, padding=1)),
    ("inception_block", (3, 8, 8), dict(c1=2, c2=(3, 4), c3=(2, 3), c4=2)),
    ("AdaptiveMaxPool2d", (3, 9, 9), dict(output_size=2)),
])
def test_layers_with_only_products_and_comparisons_match_torchs_flop_counter(kind, in_shape, params):
    module = built(kind, in_shape, params)
    with FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, *in_shape))
    assert counter.get_total_flops() == 2 * one(kind, in_shape, **params).macs
