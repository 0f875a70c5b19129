"""Reading version 1 designs: their four fixed blocks (VGGBlock, NiNBlock, Residual, Inception) become the
prefilled groups the palette inserts today (engine.groups), with the same layers and parameter counts.

The old blocks' parameter schemas are kept here, only to check a version 1 file's values as strictly as before."""
from __future__ import annotations

from dataclasses import replace
from itertools import count
from typing import Any

from engine import groups, tree
from engine.errors import SpecError
from engine.layers.registry import LayerKind, P
from engine.spec import LayerSpec

_CHANNELS = (1, 100_000)


def _never(x, p):
    raise AssertionError("a version 1 block is converted to a group on read, never analysed or built")


def _legacy(name: str, *params) -> LayerKind:
    return LayerKind(name, "Blocks", "", params, _never, _never)


def _residual(p: dict, block_id: str) -> LayerSpec:
    """The old Residual projected its input whenever its stride was not 1, even where the body kept the shape
    (a 1x1 input), and otherwise only when the channels changed: a custom 1x1 shortcut for the first, the
    automatic one (which projects exactly when the shape changes) for the second, so the weights are the same."""
    block = groups.residual_block(p["out_channels"], p["stride"], id=block_id)
    if p["stride"] == 1:
        return block
    projection = LayerSpec("Conv2d", dict(out_channels=p["out_channels"], kernel_size=1, stride=p["stride"]),
                           f"{block_id[:48]}-proj")
    return replace(block.with_params(shortcut="custom"), shortcut=(projection,))


# Each old block's parameter schema (names, defaults and bounds as version 1 read them) and the group it becomes.
LEGACY_BLOCKS = {
    "VGGBlock": (_legacy("VGGBlock", P("num_convs", "int", 2, "", 1, 20), P("out_channels", "int", 64, "", *_CHANNELS)),
                 lambda p, i: groups.vgg_block(p["num_convs"], p["out_channels"], id=i)),
    "NiNBlock": (_legacy("NiNBlock", P("out_channels", "int", 96, "", *_CHANNELS),
                         P("kernel_size", "int", 3, "", 1, 1000),
                         P("stride", "int", 1, "", 1, 1000), P("padding", "int", 1, "", 0, 1000)),
                 lambda p, i: groups.nin_block(p["out_channels"], p["kernel_size"], p["stride"], p["padding"], id=i)),
    "Residual": (_legacy("Residual", P("out_channels", "int", 64, "", *_CHANNELS), P("stride", "int", 1, "", 1, 16)),
                 _residual),
    "Inception": (_legacy("Inception", *(P(name, "int", default, "", *_CHANNELS) for name, default in (
                      ("c1", 64), ("c2_reduce", 96), ("c2", 128), ("c3_reduce", 16), ("c3", 32), ("c4", 32)))),
                  lambda p, i: groups.inception_block(p["c1"], (p["c2_reduce"], p["c2"]), (p["c3_reduce"], p["c3"]),
                                                      p["c4"], id=i)),
}


def upgrade_layers(layers: list[Any]) -> list[Any]:
    """A version 1 design's layer list with each fixed block replaced by its group (other items untouched:
    LayerSpec.from_dict checks them). The block keeps its id; the layers inside get ids no other layer has."""
    from engine.spec import check_layer_id, coerce_params, new_id

    taken = {item.get("id") for item in layers if isinstance(item, dict) and isinstance(item.get("id"), str)}
    out = []
    for index, item in enumerate(layers):
        kind = item.get("kind") if isinstance(item, dict) else None
        if not isinstance(kind, str) or kind not in LEGACY_BLOCKS:
            out.append(item)
            continue
        where = f"layer {index} ({kind})"
        unknown = set(item) - {"id", "kind", "params", "frozen"}
        if unknown:
            raise SpecError(f"{where} has unknown field {sorted(map(str, unknown))[0]!r}: remove it")
        schema, make = LEGACY_BLOCKS[kind]
        params = item.get("params", {})
        if not isinstance(params, dict):
            raise SpecError(f"{where} field 'params' must be an object")
        layer_id = item.get("id", new_id())
        check_layer_id(layer_id, where)
        if not isinstance(item.get("frozen", False), bool):
            raise SpecError(f"{where} field 'frozen' must be true or false")
        group = _with_free_ids(make(coerce_params(schema, params, where), layer_id), taken)
        out.append(replace(group, frozen=item.get("frozen", False)).to_dict())
    return out


def _with_free_ids(block: LayerSpec, taken: set) -> LayerSpec:
    """``block`` with its inner layers numbered ``<block id>-1``, ``-2``, ... skipping every id in ``taken``
    (which then holds them too): the file's other layers may use ids like those."""
    prefix, numbers = block.id[:48], count(1)

    def fresh(layer: LayerSpec) -> LayerSpec:
        new = next(f"{prefix}-{n}" for n in numbers if f"{prefix}-{n}" not in taken)
        taken.add(new)
        return replace(layer, id=new)

    return replace(block, layers=tree.mapped(block.layers, fresh), shortcut=tree.mapped(block.shortcut, fresh))

# --------------------------------------------------------------------------- version 1 weights

# The old blocks' submodule names -> where the same tensor sits in the group that replaces them (engine.groups:
# residual_block's body conv, BN, ReLU, conv, BN and auto shortcut; inception_block's four sequence branches).
# VGGBlock and NiNBlock were nn.Sequential: their keys are the sequence group's already.
LEGACY_MODULES = {
    "conv1": "body.0", "bn1": "body.1", "conv2": "body.3", "bn2": "body.4", "conv3": "shortcut.0",  # Residual
    "p1_1": "branches.0.0", "p2_1": "branches.1.0", "p2_2": "branches.1.2",  # Inception
    "p3_1": "branches.2.0", "p3_2": "branches.2.2", "p4_2": "branches.3.1",
}
RENAMED_NOTE = "renamed {count} keys from LayerStudio 1 blocks"


def legacy_key(key: str) -> str:
    """A state_dict key of a version 1 block in the group layout: '3.conv1.weight' -> '3.body.0.weight'."""
    module, dot, tensor = key.rpartition(".")
    owner, _, last = module.rpartition(".")
    if not dot or last not in LEGACY_MODULES:
        return key
    return f"{owner}.{LEGACY_MODULES[last]}.{tensor}" if owner else f"{LEGACY_MODULES[last]}.{tensor}"


def renamed_legacy_keys(keys, wanted) -> dict[str, str]:
    """{old key: new key} for the keys of weights saved by LayerStudio 1 from a design with fixed blocks, when
    renaming makes them exactly ``wanted`` (the model's keys) and they are not already; else {} (nothing is
    guessed: a file that fits, or fits neither way, is left as it is)."""
    keys, wanted = list(keys), set(wanted)
    if set(keys) == wanted:
        return {}
    renamed = {key: legacy_key(key) for key in keys}
    if set(renamed.values()) != wanted or len(set(renamed.values())) != len(keys):
        return {}
    return {old: new for old, new in renamed.items() if old != new}
