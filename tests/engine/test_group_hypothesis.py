"""Random nested groups checked against real PyTorch: for a design the analysis calls sound, build_model runs it
with the analysis's output shape and counts, and every row (at any depth) has the shape torch gives at its module;
for a design the analysis calls broken on an error torch cannot run either, a plain run in torch fails too."""
from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.build import build_model, module_paths
from engine.errors import LayerError
from engine.groups import auto_shortcut
from engine.layers import KINDS
from engine.shapes import LayerRow, analyze, infer_layer
from engine.spec import LayerSpec, NetworkSpec

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- random designs

def leaf(draw, ids) -> LayerSpec:
    kind = draw(st.sampled_from(["Conv2d", "Conv2d", "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d", "ReLU",
                                 "Identity", "Flatten", "Linear"]))
    params: dict = {}
    if kind == "Conv2d":
        params = dict(out_channels=draw(st.sampled_from([2, 2, 3])), kernel_size=draw(st.integers(1, 3)),
                      stride=draw(st.sampled_from([1, 1, 1, 2])), padding=draw(st.sampled_from([0, 1, 1, "same"])))
        if params["padding"] == "same":
            params["stride"] = 1
    elif kind in ("MaxPool2d", "AvgPool2d"):
        params = dict(kernel_size=draw(st.integers(1, 3)), stride=draw(st.sampled_from([1, 1, 2])),
                      padding=draw(st.integers(0, 1)))
    elif kind == "Linear":
        params = dict(out_features=draw(st.integers(1, 4)))
    return LayerSpec(kind, params, f"L{next(ids)}", frozen=draw(st.integers(0, 9)) == 0)


def node(draw, ids, depth: int) -> LayerSpec:
    if depth >= 3 or draw(st.integers(0, 9)) < 2 + 2 * depth:  # a group: 6 in 10 at the top, 4 in 10 inside one
        return leaf(draw, ids)
    mode = draw(st.sampled_from(["sequence", "residual", "branches"]))
    layer_id = f"G{next(ids)}"
    sizes = [0, 1, 2, 2, 3] if mode != "residual" else [1, 2, 2, 3]  # an empty branches group is an error
    children = [node(draw, ids, depth + 1) for _ in range(draw(st.sampled_from(sizes)))]
    params = dict(mode=mode, repeat=draw(st.sampled_from([1, 1, 1, 2, 3])))
    shortcut: list[LayerSpec] = []
    if mode == "branches":
        params["merge"] = draw(st.sampled_from(["concat", "concat", "sum"]))
    if mode == "residual":
        params["shortcut"] = draw(st.sampled_from(["auto", "auto", "auto+bn", "custom"]))
        params["activation"] = draw(st.sampled_from(["none", "ReLU"]))
        if params["shortcut"] == "custom":
            shortcut = [leaf(draw, ids) for _ in range(draw(st.integers(0, 2)))]
    return LayerSpec("Group", params, layer_id, frozen=draw(st.integers(0, 9)) == 0, layers=tuple(children),
                     shortcut=tuple(shortcut))


@st.composite
def nested_designs(draw) -> NetworkSpec:
    ids = itertools.count()
    shape = (draw(st.integers(1, 3)), draw(st.integers(2, 12)), draw(st.integers(2, 12)))
    return NetworkSpec(shape, tuple(node(draw, ids, 1) for _ in range(draw(st.integers(1, 4)))))


# --------------------------------------------------------------------------- plain torch, layer by layer

def run_layer(layer: LayerSpec, x: torch.Tensor) -> torch.Tensor:
    """What torch does with ``layer`` on ``x``: each registry layer built for the shape it really meets."""
    if not layer.is_group:
        return KINDS[layer.kind].build(tuple(x.shape[1:]), layer.params)(x)
    for _ in range(layer.params["repeat"]):
        x = run_once(layer, x)
    return x


def run_chain(layers, x: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        x = run_layer(layer, x)
    return x


def run_once(layer: LayerSpec, x: torch.Tensor) -> torch.Tensor:
    p = layer.params
    if p["mode"] == "sequence":
        return run_chain(layer.layers, x)
    if p["mode"] == "branches":
        outputs = [run_layer(child, x) for child in layer.layers]
        return torch.cat(outputs, dim=1) if p["merge"] == "concat" else sum(outputs[1:], outputs[0])
    y = run_chain(layer.layers, x)
    if p["shortcut"] == "custom":
        s = run_chain(layer.shortcut, x)
    else:  # a LayerError when no projection exists: there is nothing to run
        s = run_chain(auto_shortcut(tuple(x.shape[1:]), tuple(y.shape[1:]), p["shortcut"] == "auto+bn", layer.id)[0], x)
    y = y + s
    return torch.relu(y) if p["activation"] == "ReLU" else y


def in_running_order(rows) -> list[LayerRow]:
    """Rows as torch meets them: a group's inner rows before its own (its merge or sum comes after them)."""
    out: list[LayerRow] = []
    for row in rows:
        out += in_running_order(row.children + row.shortcut)
        out.append(row)
    return out


def torch_must_fail(row: LayerRow, layer: LayerSpec) -> bool:
    """Whether PyTorch cannot run what this row's error describes (False: it may run, misreading the design)."""
    if row.error.startswith("In repeat"):
        return False  # its input (a later copy's) is not in the row
    if not layer.is_group:
        try:
            infer_layer(layer.kind, row.in_shape, layer.params)
        except LayerError as exc:
            return exc.torch_fails
        raise AssertionError(f"row {row.path} has an error but infer_layer raised none: {row.error}")
    # concatenation needs equal sizes and ranks and some branch; the automatic shortcut needs a projection.
    # A sum of unequal shapes may broadcast, so torch may run it.
    return row.error.startswith(("Concatenated", "A branches group needs", "The body turns")) or (
        "differ in rank" in row.error and layer.params["merge"] == "concat")


def count(tensors) -> int:
    return sum(t.numel() for t in tensors)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nested_designs())
def test_random_nested_groups_match_pytorch_row_by_row(spec):
    analysis = analyze(spec)
    assert [row.layer_id for row in analysis.all_rows] == [layer.id for layer in spec.all_layers()]
    x = torch.randn(2, *spec.input_shape)
    if not analysis.ok:
        first = next(row for row in in_running_order(analysis.rows) if row.error)
        if first.in_shape is not None and torch_must_fail(first, spec.layer(first.layer_id)):
            event(f"broken: torch fails too ({'group' if first.children or first.kind == 'Group' else 'leaf'})")
            with pytest.raises((RuntimeError, ValueError, IndexError, LayerError)):
                with warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore")
                    run_chain(spec.layers, x)
        else:
            event("broken: torch may run it")
        return
    event(f"sound, {'1-4' if len(analysis.all_rows) < 5 else '5-9' if len(analysis.all_rows) < 10 else '10+'} rows")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(spec)
    seen: dict[str, tuple] = {}

    def record(layer_id: str):
        def hook(module, args, out) -> None:
            seen.setdefault(layer_id, (tuple(args[0].shape[1:]), tuple(out.shape[1:])))
        return hook

    modules = dict(model.named_modules())
    for layer_id, paths in module_paths(spec).items():  # the first copy's module in a repeated group
        modules[paths[0]].register_forward_hook(record(layer_id))
    with torch.no_grad():
        y = model(x)
        reference = run_chain(spec.layers, x)
    assert tuple(y.shape[1:]) == tuple(reference.shape[1:]) == analysis.output_shape
    for row in analysis.all_rows:
        assert seen[row.layer_id] == (row.in_shape, row.shape), f"row {row.path} ({row.label})"
    assert count(model.parameters()) == analysis.params
    assert count(model.buffers()) == analysis.buffers
    assert count(p for p in model.parameters() if p.requires_grad) == analysis.trainable
