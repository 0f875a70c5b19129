"""Moving layers inside and across groups (engine.tree.moved, NetworkSpec.moved_to)."""
from __future__ import annotations

import pytest

from engine.groups import group
from engine.spec import LayerSpec, NetworkSpec
from engine.tree import Place, outermost


def design() -> NetworkSpec:
    inner = group("sequence", [LayerSpec("ReLU", id="r2")], id="inner")
    outer = group("residual", [LayerSpec("Conv2d", id="c1"), inner, LayerSpec("ReLU", id="r1")], id="outer",
                  shortcut_layers=[LayerSpec("Conv2d", id="s1")], shortcut="custom")
    return NetworkSpec((3, 8, 8), (LayerSpec("Conv2d", id="a"), outer, LayerSpec("Flatten", id="f")))


def ids(layers) -> list[str]:
    return [layer.id for layer in layers]


def test_outermost_keeps_design_order_and_drops_layers_inside_a_chosen_group():
    spec = design()
    assert outermost(spec.layers, ["f", "r2", "outer", "a"]) == ["a", "outer", "f"]
    assert outermost(spec.layers, ["r2", "c1"]) == ["c1", "r2"]


def test_a_move_within_one_list_counts_the_place_before_the_move():
    spec = design().moved_to(Place("outer", "layers", 3), "c1")  # dropped after r1
    assert ids(spec.contents("outer")) == ["inner", "r1", "c1"]
    spec = spec.moved_to(Place(None, "layers", 0), "f")
    assert ids(spec.layers) == ["f", "a", "outer"]


def test_layers_move_across_groups_and_into_a_shortcut():
    spec = design().moved_to(Place("inner", "layers", 0), "a", "f")
    assert ids(spec.layers) == ["outer"]
    assert ids(spec.contents("inner")) == ["a", "f", "r2"]
    spec = spec.moved_to(Place("outer", "shortcut", 1), "r2")
    assert ids(spec.contents("outer", "shortcut")) == ["s1", "r2"]
    assert ids(spec.contents("inner")) == ["a", "f"]
    assert len(spec.all_layers()) == len(design().all_layers())  # nothing lost, nothing doubled


def test_a_group_moves_with_its_layers_and_never_into_itself():
    spec = design().moved_to(Place(None, "layers", 0), "inner", "r2")  # r2 goes along inside its group
    assert ids(spec.layers) == ["inner", "a", "outer", "f"] and ids(spec.layers[0].layers) == ["r2"]
    for place in (Place("outer", "layers", 0), Place("inner", "layers", 0), Place("outer", "shortcut", 0)):
        with pytest.raises(ValueError):
            design().moved_to(place, "outer")
