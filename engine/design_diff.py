"""What changed between two designs (layers added, removed and changed, with their parameter and MAC deltas) and
between two runs' settings: the Runs tab's side-by-side diff and ``layerstudio runs compare``.

Layers are matched by their id at any depth (inside groups too), so a layer keeps its identity when it moves or
when layers around it change; a layer counts as changed when its own fields (kind, parameters, frozen, init, a
group's name) differ, not the layers inside it, which are matched on their own.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.shapes import LayerRow, analyze
from engine.spec import LayerSpec, NetworkSpec
from engine.tree import walk_paths


@dataclass(frozen=True)
class LayerChange:
    """One layer added (``before`` None), removed (``after`` None) or changed; deltas are after - before (None when
    a side's analysis has no figure, e.g. a layer after an error)."""

    path: str  # where it sits, e.g. "3 › 1" (in the later design; in the earlier one for a removed layer)
    layer_id: str
    kind: str
    before: dict | None
    after: dict | None
    params_delta: int | None
    macs_delta: int | None


@dataclass(frozen=True)
class DesignDiff:
    added: list[LayerChange] = field(default_factory=list)
    removed: list[LayerChange] = field(default_factory=list)
    changed: list[LayerChange] = field(default_factory=list)
    params_delta: int | None = None  # the whole design's (None when either analysis has no total)
    macs_delta: int | None = None

    @property
    def same(self) -> bool:
        """Whether the two designs have the same layers with the same settings."""
        return not (self.added or self.removed or self.changed)


def own_fields(layer: LayerSpec) -> dict:
    """A layer's own settings as its file holds them, without the layers inside a group."""
    data = layer.to_dict()
    data.pop("layers", None)
    data.pop("shortcut", None)
    return data


def _rows(spec: NetworkSpec) -> dict[str, LayerRow]:
    return {row.layer_id: row for row in analyze(spec).all_rows}


def _delta(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before


def diff_designs(a: NetworkSpec, b: NetworkSpec) -> DesignDiff:
    """What turns design ``a`` into design ``b``, in ``b``'s order (removed layers in ``a``'s)."""
    layers_a = {layer.id: (layer, path) for layer, path in walk_paths(a.layers)}
    layers_b = {layer.id: (layer, path) for layer, path in walk_paths(b.layers)}
    rows_a, rows_b = _rows(a), _rows(b)
    zero = LayerRow(0, "", "", "", None, None, params=0, macs=0)  # the figures of a layer that is not there
    added, removed, changed = [], [], []
    for layer_id, (layer, path) in layers_b.items():
        after, row_b = own_fields(layer), rows_b.get(layer_id, zero)
        if layer_id not in layers_a:
            added.append(LayerChange(path, layer_id, layer.kind, None, after, row_b.params, row_b.macs))
            continue
        before, row_a = own_fields(layers_a[layer_id][0]), rows_a.get(layer_id, zero)
        if before != after:
            changed.append(LayerChange(path, layer_id, layer.kind, before, after,
                                       _delta(row_b.params, row_a.params), _delta(row_b.macs, row_a.macs)))
    for layer_id, (layer, path) in layers_a.items():
        if layer_id not in layers_b:
            row_a = rows_a.get(layer_id, zero)
            removed.append(LayerChange(path, layer_id, layer.kind, own_fields(layer), None,
                                       None if row_a.params is None else -row_a.params,
                                       None if row_a.macs is None else -row_a.macs))
    total_a, total_b = analyze(a), analyze(b)
    return DesignDiff(added, removed, changed, _delta(total_b.params, total_a.params),
                      _delta(total_b.macs, total_a.macs))


def _flat(settings: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def diff_settings(a: dict, b: dict) -> list[tuple[str, object, object]]:
    """The settings whose values differ, as (dotted key, value in ``a``, value in ``b``), sorted by key; a setting
    one side lacks has None there. Lists and tuples with the same items are the same."""
    flat_a, flat_b = _flat(a), _flat(b)
    out = []
    for key in sorted(flat_a.keys() | flat_b.keys()):
        before, after = flat_a.get(key), flat_b.get(key)
        if _plain(before) != _plain(after):
            out.append((key, before, after))
    return out


def _plain(value):
    return list(value) if isinstance(value, tuple) else value
