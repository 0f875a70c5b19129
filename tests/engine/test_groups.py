"""Groups by example: every inner layer's row, errors that name their path and say the fix, the automatic
shortcut, repeats, empty and frozen groups, the built modules' keys, and the exported script."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch
from torch import nn

from engine import tree
from engine.blocks import Branches, Residual
from engine.build import build_model, module_expression, module_paths
from engine.errors import SpecError
from engine.export import python_source
from engine.groups import PRESETS, group
from engine.shapes import analyze, infer_layer
from engine.spec import LayerSpec, NetworkSpec
from tests.engine.group_designs import DESIGNS, L

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def count(tensors) -> int:
    return sum(t.numel() for t in tensors)


def conv(id: str, out: int, kernel: int = 3, **params) -> LayerSpec:  # noqa: A002
    return L("Conv2d", id, out_channels=out, kernel_size=kernel, **params)


# --------------------------------------------------------------------------- rows inside groups

@pytest.mark.parametrize("name", DESIGNS)
def test_every_inner_layer_has_its_row_with_path_shape_and_costs(name):
    spec = DESIGNS[name]()
    analysis = analyze(spec)
    assert analysis.ok
    paths = dict((layer.id, path) for layer, path in tree.walk_paths(spec.layers))
    assert [row.layer_id for row in analysis.all_rows] == [layer.id for layer in spec.all_layers()]
    model = build_model(spec)
    modules = module_paths(spec)
    for layer in spec.all_layers():
        row = analysis.row(layer.id)
        assert row.path == paths[layer.id] == tree.path_text(spec.layers, layer.id)
        assert row.index == spec.place(layer.id).index
        assert row.shape is not None and row.params is not None and row.macs is not None
        if not layer.is_group:  # a leaf's row is the layer analysed alone on its input
            alone = infer_layer(layer.kind, row.in_shape, layer.params)
            assert (row.shape, row.formula) == (alone.shape, alone.formula)
            copies = [model.get_submodule(path) for path in modules[layer.id]]
            assert row.params == sum(count(m.parameters()) for m in copies)
            assert row.buffers == sum(count(m.buffers()) for m in copies)
    assert [row.layer_id for row in analysis.rows] == [layer.id for layer in spec.layers]
    assert analysis.params == count(model.parameters()) and analysis.buffers == count(model.buffers())


def test_an_error_inside_a_branch_names_its_path_and_build_model_says_it():
    spec = NetworkSpec((3, 8, 8), (
        conv("c", 4, padding=1), L("ReLU", "r"),
        group("branches", [conv("b1", 2, 1),
                           group("sequence", [conv("b2a", 2, 1), conv("b2b", 2, 9)], id="b2")], id="br"),
    ))
    row = analyze(spec).row("b2b")
    assert row.path == "2 › branch 2 › 1"
    assert "kernel 9" in row.error
    assert [r.layer_id for r in analyze(spec).errors] == ["b2b"]
    with pytest.raises(SpecError, match=re.escape("layer 2 › branch 2 › 1 (Conv2d): ")):
        build_model(spec)


def test_concat_of_branches_of_different_sizes_says_which_by_how_much_and_the_padding_that_fixes_it():
    def design(padding):
        branches = [conv("same", 4, padding=1), conv("valid", 2, padding=padding)]
        return NetworkSpec((3, 8, 8), (group("branches", branches, id="cat"),))

    row = analyze(design(0)).row("cat")
    assert row.shape is None
    assert "branch 2 gives 6x6, 2 smaller in height, 2 smaller in width than 8x8" in row.error
    assert "add padding 1" in row.error
    fixed = analyze(design(1))  # the fix it names works
    assert fixed.ok and fixed.output_shape == (6, 8, 8)
    with pytest.raises(RuntimeError):  # and torch agrees it was broken
        torch.cat([nn.Conv2d(3, 4, 3, padding=1)(torch.zeros(1, 3, 8, 8)), nn.Conv2d(3, 2, 3)(torch.zeros(1, 3, 8, 8))],
                  1)


def test_concat_of_branches_larger_in_one_side_and_smaller_in_the_other_names_both():
    swap = group("sequence", [L("Flatten", "f", start_dim=2), L("Unflatten", "u", dim=2, sizes=(4, 8))], id="swap")
    row = analyze(NetworkSpec((2, 8, 4), (group("branches", [L("Identity", "keep"), swap], id="cat"),))).row("cat")
    assert "branch 2 gives 4x8, 4 smaller in height, 4 larger in width than 8x4" in row.error
    assert "change its layers' kernel sizes, strides or padding" in row.error  # no padding fixes a larger side
    odd = NetworkSpec((2, 8, 8), (group("branches", [L("Identity", "keep"), conv("s", 2, padding=2, stride=2)],
                                        id="cat"),))
    row = analyze(odd).row("cat")
    assert "branch 2 gives 5x5, 3 smaller in height, 3 smaller in width than 8x8" in row.error
    assert "change its layers' kernel sizes, strides or padding" in row.error  # an odd gap: no padding fits


def test_summed_branches_of_different_shapes_name_the_odd_branch():
    spec = NetworkSpec((3, 8, 8), (group("branches", [conv("a", 4, padding=1), conv("b", 5, padding=1),
                                                      conv("c", 5, padding=1)], id="sum", merge="sum"),))
    row = analyze(spec).row("sum")
    assert row.shape is None
    assert "branch 1 gives 4x8x8 where branch 2 gives 5x8x8" in row.error
    assert "change their layers' channels" in row.error
    ok = analyze(spec.with_param("a", "out_channels", 5))
    assert ok.ok and ok.output_shape == (5, 8, 8) and ok.row("sum").formula == "sum of 3 branches of 5x8x8"


def test_branches_of_different_rank_are_an_error():
    spec = NetworkSpec((3, 4, 4), (group("branches", [L("Flatten", "f"), L("Identity", "i")], id="br"),))
    assert "differ in rank" in analyze(spec).row("br").error


def test_a_custom_shortcut_that_does_not_match_the_body_is_the_groups_error():
    spec = NetworkSpec((3, 8, 8), (group("residual", [conv("body", 4, padding=1)], id="res", shortcut="custom",
                                         shortcut_layers=[conv("sc", 4, 1, stride=2)]),))
    analysis = analyze(spec)
    row = analysis.row("res")
    assert row.error.startswith("The shortcut gives 4x4x4 but the body gives 4x8x8")
    assert analysis.row("sc").path == "0 › shortcut › 0" and analysis.row("sc").shape == (4, 4, 4)
    with pytest.raises(SpecError, match=re.escape("layer 0 (Group): The shortcut gives 4x4x4")):
        build_model(spec)
    fixed = spec.with_param("sc", "stride", 1)
    assert analyze(fixed).ok
    model = build_model(fixed)
    assert list(model.state_dict()) == ["0.body.0.weight", "0.body.0.bias", "0.shortcut.0.weight", "0.shortcut.0.bias"]


def test_an_empty_custom_shortcut_is_the_identity():
    spec = NetworkSpec((4, 6, 6), (group("residual", [conv("body", 4, padding=1)], id="res", shortcut="custom"),))
    model = build_model(spec).eval()
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model[0].body(x) + x, rtol=0, atol=0)


# --------------------------------------------------------------------------- the automatic shortcut

@pytest.mark.parametrize("x, body, shortcut, extra_params, extra_buffers, text", [
    ((4, 8, 8), conv("b", 4, padding=1), "auto", 0, 0, "identity"),
    ((4, 8, 8), conv("b", 6, padding=1, stride=2), "auto", 4 * 6 + 6, 0, "1x1 conv, stride 2, 4 -> 6 channels"),
    ((4, 9, 7), conv("b", 4, padding=1, stride=3), "auto", 4 * 4 + 4, 0, "1x1 conv, stride 3, 4 -> 4 channels"),
    ((4, 8, 8), conv("b", 6, padding=1), "auto+bn", 4 * 6 + 6 + 2 * 6, 2 * 6 + 1, "4 -> 6 channels + BatchNorm"),
    ((5,), L("Linear", "b", out_features=3), "auto", 5 * 3 + 3, 0, "Linear 5 -> 3"),
    ((5,), L("Linear", "b", out_features=3), "auto+bn", 5 * 3 + 3 + 6, 7, "Linear 5 -> 3 + BatchNorm"),
    ((3, 10), L("Conv1d", "b", out_channels=2, kernel_size=3, stride=2), "auto", 3 * 2 + 2, 0,
     "1x1 conv, stride 3, 3 -> 2 channels"),  # 10 -> 4: a 1x1 kernel needs stride 3 where a 3 wide one needs 2
    ((2, 2, 20), L("AvgPool2d", "b", kernel_size=2, stride=2), "auto", 2 * 2 + 2, 0,
     "1x1 conv, stride 2, 2 -> 2 channels"),
])
def test_automatic_shortcut_counts_and_builds_what_it_says(x, body, shortcut, extra_params, extra_buffers, text):
    spec = NetworkSpec(x, (group("residual", [body], id="res", shortcut=shortcut),))
    analysis = analyze(spec)
    row, inner = analysis.row("res"), analysis.row("b")
    assert analysis.ok, analysis.errors
    assert text in row.formula
    assert row.params == inner.params + extra_params and row.buffers == inner.buffers + extra_buffers
    model = build_model(spec)
    assert count(model.parameters()) == row.params and count(model.buffers()) == row.buffers
    assert tuple(model(torch.randn(2, *x)).shape[1:]) == row.shape == inner.shape


def test_automatic_shortcut_finds_a_stride_that_fits_every_side():
    # 2x2x20 -> 2x1x2: stride 2 gives 1x10, only a stride of 10 to 19 gives 1x2
    body = [L("Flatten", "f", start_dim=2), L("MaxPool1d", "p", kernel_size=20, stride=20),
            L("Unflatten", "u", dim=2, sizes=(1, 2))]
    spec = NetworkSpec((2, 2, 20), (group("residual", body, id="res"),))
    analysis = analyze(spec)
    assert analysis.ok, analysis.errors[0].error
    assert "stride 10" in analysis.row("res").formula
    model = build_model(spec)
    assert tuple(model(torch.randn(2, 2, 2, 20)).shape) == (2, 2, 1, 2)


@pytest.mark.parametrize("x, body, words", [
    ((4, 8, 8), L("ConvTranspose2d", "b", out_channels=4, kernel_size=2, stride=2), "no strided 1x1 convolution"),
    ((4, 8, 8), L("Flatten", "b"), "no 1x1 projection"),
    ((4, 9, 9), group("sequence", [L("Flatten", "f", start_dim=2), L("Unflatten", "u", dim=2, sizes=(3, 27))],
                      id="b"), "no strided 1x1 convolution"),  # 9 -> 3 needs stride 3 or 4; 9 -> 27 none
])
def test_automatic_shortcut_that_cannot_follow_the_body_is_an_error_with_a_fix(x, body, words):
    spec = NetworkSpec(x, (group("residual", [body], id="res"),))
    row = analyze(spec).row("res")
    assert words in row.error and "set shortcut to custom" in row.error
    assert row.shape is None
    with pytest.raises(SpecError, match="layer 0 "):
        build_model(spec)


# --------------------------------------------------------------------------- repeat

def test_repeat_gives_each_copy_its_own_weights_and_counts_them_all():
    spec = NetworkSpec((3, 16, 16), (conv("c", 4, padding=1),
                                     group("sequence", [conv("down", 4, padding=1, stride=2), L("BatchNorm2d", "bn")],
                                           id="rep", repeat=3)))
    analysis = analyze(spec)
    once = 4 * 4 * 9 + 4 + 2 * 4
    assert analysis.row("rep").params == 3 * once
    assert analysis.row("down").params == 3 * (4 * 4 * 9 + 4)  # inner rows: every copy's weights
    assert analysis.row("down").shape == (4, 8, 8)  # and the first copy's shape
    assert analysis.row("rep").shape == (4, 2, 2)  # shapes flow from copy to copy
    assert analysis.row("rep").label.endswith("×3")
    model = build_model(spec)
    assert [name for name, _ in model.named_parameters()][2:5] == ["1.0.0.weight", "1.0.0.bias", "1.0.1.weight"]
    assert "1.2.0.weight" in model.state_dict()
    weights = [model.get_submodule(path).weight for path in module_paths(spec)["down"]]
    assert len(weights) == 3 and len({w.data_ptr() for w in weights}) == 3
    assert count(model.parameters()) == analysis.params
    assert tuple(model(torch.randn(2, 3, 16, 16)).shape[1:]) == (4, 2, 2)


def test_an_error_only_in_a_later_repeat_says_which():
    spec = NetworkSpec((2, 5, 5), (group("sequence", [conv("shrink", 2)], id="rep", repeat=3),))
    analysis = analyze(spec)
    row = analysis.row("shrink")
    assert row.shape == (2, 3, 3)  # the first copy is fine
    assert row.error.startswith("In repeat 3: ") and "kernel 3" in row.error
    assert analysis.row("rep").shape is None and analysis.row("rep").params is None
    with pytest.raises(SpecError, match=re.escape("layer 0 › 0 (Conv2d): In repeat 3: ")):
        build_model(spec)
    assert analyze(spec.with_param("rep", "repeat", 2)).output_shape == (2, 1, 1)


def test_a_merge_problem_only_in_a_later_repeat_says_which():
    # a strided padded conv rounds up, a pool rounds down: equal on 6x6 (3x3 both), not on 3x3 (2x2 and 1x1)
    spec = NetworkSpec((2, 6, 6), (group("branches", [conv("up", 2, padding=1, stride=2),
                                                      L("AvgPool2d", "down", kernel_size=2, stride=2)],
                                         id="br", repeat=2),))
    analysis = analyze(spec)
    row = analysis.row("br")
    assert row.error.startswith("In repeat 2: Concatenated branches must agree")
    assert "branch 2 gives 1x1, 1 smaller in height, 1 smaller in width than 2x2" in row.error
    assert row.shape is None and [r.layer_id for r in analysis.errors] == ["br"]
    assert analysis.row("up").shape == (2, 3, 3) and not analysis.row("up").error
    assert analyze(spec.with_param("br", "repeat", 1)).ok


# --------------------------------------------------------------------------- empty and frozen groups

def test_an_empty_sequence_group_is_the_identity():
    spec = NetworkSpec((3, 5, 5), (group("sequence", [], id="empty", repeat=2), conv("c", 2)))
    analysis = analyze(spec)
    assert analysis.ok and analysis.row("empty").shape == (3, 5, 5) and analysis.row("empty").params == 0
    model = build_model(spec)
    x = torch.randn(1, 3, 5, 5)
    assert torch.equal(model[0](x), x)


def test_branches_with_no_branch_are_an_error():
    spec = NetworkSpec((3, 5, 5), (group("branches", [], id="none"),))
    row = analyze(spec).row("none")
    assert "at least one branch" in row.error
    with pytest.raises(SpecError, match="layer 0 "):
        build_model(spec)


def test_a_frozen_group_trains_nothing_inside_it_and_builds_frozen():
    body = (conv("a", 6, padding=1, stride=2), L("BatchNorm2d", "bn"))
    frozen = LayerSpec("Group", {"mode": "residual", "shortcut": "auto+bn", "repeat": 2}, "g", frozen=True, layers=body)
    spec = NetworkSpec((4, 8, 8), (frozen, L("Flatten", "f"), L("Linear", "out", out_features=2)))
    analysis = analyze(spec)
    assert all(analysis.row(i).trainable == 0 for i in ("g", "a", "bn")) and analysis.row("g").params > 0
    model = build_model(spec)
    assert all(not p.requires_grad for p in model[0].parameters())  # the automatic shortcut too
    assert all(p.requires_grad for p in model[2].parameters())
    assert analysis.trainable == count(p for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- Embedding

def test_an_embedding_inside_a_group_must_still_be_the_first_leaf():
    first = NetworkSpec((6,), (group("sequence", [L("Embedding", "emb", num_embeddings=9, embedding_dim=4),
                                                  L("Flatten", "f")], id="g"), L("Linear", "out", out_features=2)))
    assert analyze(first).ok
    model = build_model(first)
    assert tuple(model(torch.randint(0, 9, (2, 6))).shape) == (2, 2)
    assert "dtype=torch.long" in python_source(first)  # the script's sample run feeds token indices
    later = NetworkSpec((6,), (L("Identity", "i"), group("sequence", [L("Embedding", "emb", num_embeddings=9,
                                                                                  embedding_dim=4)], id="g")))
    row = analyze(later).row("emb")
    assert "must be the first layer" in row.error and row.path == "1 › 0"
    branch = NetworkSpec((6,), (group("branches", [L("Embedding", "e1", num_embeddings=9, embedding_dim=4),
                                                   L("Embedding", "e2", num_embeddings=9, embedding_dim=4)], id="g"),))
    assert not analyze(branch).row("e1").error and "first layer" in analyze(branch).row("e2").error


# --------------------------------------------------------------------------- the built modules

def test_state_dict_keys_are_stable_and_readable():
    spec = NetworkSpec((3, 8, 8), (
        conv("c0", 4, padding=1), L("ReLU", "r1"), L("BatchNorm2d", "b2"),
        group("sequence", [conv("rc", 4, padding=1)], id="rep", repeat=2),
        group("residual", [conv("body", 8, padding=1)], id="res"),
        L("ReLU", "r5"), L("Identity", "i6"),
        group("branches", [conv("p0", 2, 1), group("sequence", [conv("p1", 2, 1)], id="seq")], id="br"),
    ))
    keys = list(build_model(spec).state_dict())
    for key in ("3.0.0.weight", "3.1.0.weight", "4.body.0.weight", "4.shortcut.0.weight", "7.branches.0.weight",
                "7.branches.1.0.weight"):
        assert key in keys
    assert keys == list(build_model(spec).state_dict())  # the same every build
    text = str(build_model(spec))
    assert "(4): Residual(\n    (body): Sequential(" in text and "(7): Branches(\n    (branches): ModuleList(" in text


@pytest.mark.parametrize("name", DESIGNS)
def test_module_paths_name_the_modules_built_for_each_layer(name):
    spec = DESIGNS[name]()
    model = build_model(spec)
    paths = module_paths(spec)
    assert set(paths) == {layer.id for layer in spec.all_layers()}
    for layer in spec.all_layers():
        for path in paths[layer.id]:
            module = eval(module_expression(path), {"model": model})  # noqa: S307 - our own expression
            assert module is model.get_submodule(path)
            if layer.is_group:
                mode = layer.params["mode"]
                expected = nn.Sequential if layer.params["repeat"] > 1 or mode == "sequence" else \
                    Residual if mode == "residual" else Branches
                assert type(module) is expected
            else:
                assert type(module).__name__ in (layer.kind, f"Sequence{layer.kind}")


def test_every_preset_is_a_fresh_group_that_builds():
    for preset in PRESETS.values():
        one, two = preset.make(), preset.make()
        assert one.is_group
        ids = [layer.id for layer in (one, *(inner for inner, _ in one.walk()))]
        assert not set(ids) & {layer.id for layer in (two, *(inner for inner, _ in two.walk()))}
        assert len(ids) == len(set(ids))
        spec = NetworkSpec((8, 16, 16), (one,))
        if preset.name != "Group":
            analysis = analyze(spec)
            assert analysis.ok, (preset.name, analysis.errors)
            assert count(build_model(spec).parameters()) == analysis.params


# --------------------------------------------------------------------------- export

def exec_script(source: str) -> dict:
    namespace = {"__name__": "exported"}
    exec(compile(source, "exported_model.py", "exec"), namespace)  # noqa: S102 - the script under test
    return namespace


@pytest.mark.parametrize("name", DESIGNS)
def test_exported_script_rebuilds_the_nested_model_exactly(name):
    spec = DESIGNS[name]()
    torch.manual_seed(0)
    built = build_model(spec)
    with torch.no_grad():  # running statistics away from their defaults, so loading them matters
        for module in built.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    built.eval()
    source = python_source(spec)
    assert "from engine" not in source and "import engine" not in source
    exported = exec_script(source)["model"].eval()
    assert repr(exported) == repr(built)
    ours, theirs = built.state_dict(), exported.state_dict()
    assert list(ours) == list(theirs) and [t.shape for t in ours.values()] == [t.shape for t in theirs.values()]
    exported.load_state_dict(ours, strict=True)
    assert [p.requires_grad for p in exported.parameters()] == [p.requires_grad for p in built.parameters()]
    x = torch.randn(3, *spec.input_shape)
    with torch.no_grad():
        assert torch.equal(exported(x), built(x))


def test_exported_script_runs_alone(tmp_path):
    spec = DESIGNS["every"]()
    script = tmp_path / "model.py"
    script.write_text(python_source(spec), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # engine is installed (editable) here: make any import of it fail, so the script must stand alone
    runner = "import sys, runpy; sys.modules['engine'] = None; runpy.run_path(sys.argv[1], run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", runner, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"output shape per sample: {analyze(spec).output_shape}" in done.stdout
    assert "Residual(" in done.stdout and "Branches(" in done.stdout


# --------------------------------------------------------------------------- templates

def test_every_template_loads_and_analyses_sound():
    from engine.templates import list_templates, load_template

    names = [info.name for info in list_templates()]
    assert {"resnet18", "googlenet"} <= set(names)
    for name in names:
        analysis = analyze(load_template(name))
        assert analysis.ok, (name, [(row.path, row.error) for row in analysis.errors])


@pytest.mark.parametrize("name, params", [("resnet18", 11_176_970), ("googlenet", 5_977_530)])
def test_nested_templates_have_the_d2l_originals_parameter_counts(name, params):
    from engine.templates import load_template

    spec = load_template(name)
    assert any(layer.is_group for layer in spec.layers)
    analysis = analyze(spec)
    assert analysis.params == params
    with torch.device("meta"):
        assert count(build_model(spec).parameters()) == params


def test_layers_of_a_shortcut_not_in_use_build_nothing_and_are_not_mistaken_for_the_automatic_one():
    kept = LayerSpec("Conv2d", {"out_channels": 6, "kernel_size": 1}, "kept", frozen=True)
    for settings in ({"mode": "residual", "shortcut": "auto"}, {"mode": "sequence"}):
        spec = NetworkSpec((4, 6, 6), (LayerSpec("Group", settings, "g", layers=(conv("body", 6, padding=1),),
                                                 shortcut=(kept,)),))
        assert module_paths(spec)["kept"] == []
        source = python_source(spec)
        assert "requires_grad_(False)" not in source  # the automatic projection stays trainable
        model = build_model(spec)
        assert all(p.requires_grad for p in model.parameters())
        exported = exec_script(source)["model"]
        assert list(exported.state_dict()) == list(model.state_dict())
