"""engine.design_diff: layers matched by id at any depth, with the parameter and MAC deltas engine.shapes counts."""
from __future__ import annotations

from dataclasses import replace

from engine.design_diff import diff_designs, diff_settings
from engine.shapes import analyze
from engine.tree import Place
from tests.engine.group_designs import L, every_setting, googlenet_style, resnet_style


def row(spec, layer_id):
    return next(r for r in analyze(spec).all_rows if r.layer_id == layer_id)


def test_the_same_design_has_no_differences():
    diff = diff_designs(resnet_style(), resnet_style())
    assert diff.same and diff.params_delta == 0 and diff.macs_delta == 0


def test_a_layer_changed_deep_inside_groups_is_found_by_id_with_its_own_deltas():
    before = every_setting()
    after = before.with_param("in-a", "out_channels", 9)  # residual › branches › sequence › conv
    diff = diff_designs(before, after)
    assert not diff.added and not diff.removed
    changed = {c.layer_id: c for c in diff.changed}
    assert set(changed) == {"in-a"}
    change = changed["in-a"]
    assert change.path.count("›") == 3 and change.kind == "Conv2d"
    assert (change.before["params"]["out_channels"], change.after["params"]["out_channels"]) == (6, 9)
    assert change.params_delta == row(after, "in-a").params - row(before, "in-a").params > 0
    assert change.macs_delta == row(after, "in-a").macs - row(before, "in-a").macs > 0
    assert diff.params_delta == analyze(after).params - analyze(before).params
    assert diff.macs_delta == analyze(after).macs - analyze(before).macs


def test_added_and_removed_layers_inside_groups_carry_their_whole_counts():
    before = googlenet_style()
    extra = L("Conv2d", "extra", out_channels=8, kernel_size=1)
    after = before.removed("pool1", "inc2-5").inserted_at(Place(None, "layers", 2), extra)  # inc2-5: 3 deep
    diff = diff_designs(before, after)
    assert [c.layer_id for c in diff.added] == ["extra"]
    assert diff.added[0].params_delta == row(after, "extra").params and diff.added[0].before is None
    removed = {c.layer_id: c for c in diff.removed}
    assert "pool1" in removed and removed["pool1"].params_delta == 0 and removed["pool1"].after is None
    assert removed["inc2-5"].path == "3 › 0 › branch 2 › 2" and removed["inc2-5"].kind == "Conv2d"
    assert removed["inc2-5"].params_delta == -row(before, "inc2-5").params < 0
    assert set(removed) == {"pool1", "inc2-5"} and not diff.changed


def test_a_moved_layer_with_the_same_settings_is_not_a_change_and_a_group_setting_is():
    before = resnet_style()
    after = before.moved("flat", 4).with_param("stage1", "repeat", 3)
    diff = diff_designs(before, after)
    assert [c.layer_id for c in diff.changed] == ["stage1"]
    assert diff.changed[0].params_delta == row(after, "stage1").params - row(before, "stage1").params > 0
    assert "layers" not in diff.changed[0].before  # the group's own fields; its layers are matched one by one


def test_frozen_counts_as_a_change():
    before = resnet_style()
    after = before.with_layer(replace(before.layer("head"), frozen=True))
    diff = diff_designs(before, after)
    assert [c.layer_id for c in diff.changed] == ["head"] and diff.changed[0].params_delta == 0
    assert diff.changed[0].after["frozen"] is True


def test_settings_differences_are_dotted_sorted_and_see_through_lists_and_tuples():
    a = {"training": {"lr": 0.1, "epochs": 5}, "data": {"source": "mnist", "weights": [1, 2]}}
    b = {"training": {"lr": 0.01, "epochs": 5, "seed": 3}, "data": {"source": "mnist", "weights": (1, 2)}}
    assert diff_settings(a, b) == [("training.lr", 0.1, 0.01), ("training.seed", None, 3)]
    assert diff_settings(a, a) == []
