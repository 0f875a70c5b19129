"""Edits of a design's layer tree: groups hold layers (``LayerSpec.layers``) and a residual group its custom
shortcut (``LayerSpec.shortcut``), so a layer lives at a ``Place``: its container and its index there.

Plain functions over tuples of frozen layers, each returning new tuples; ``NetworkSpec`` wraps them."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from engine.spec import LayerSpec

SLOTS = ("layers", "shortcut")  # a group's two lists of layers: its body (or branches) and its custom shortcut


class Place(NamedTuple):
    """Where a layer sits: inside group ``parent`` (None: the design's top level), in its ``slot`` list
    ("layers" or "shortcut"), at ``index``."""

    parent: str | None
    slot: str
    index: int  # type: ignore[assignment]  # the name reads best; tuple.index is not used on a Place


def walk(layers: tuple[LayerSpec, ...]) -> Iterator[tuple[LayerSpec, Place]]:
    """Every layer, depth first in order (a group before its layers, its body before its shortcut)."""
    for index, layer in enumerate(layers):
        yield layer, Place(None, "layers", index)
        yield from _walk_group(layer)


def _walk_group(layer: LayerSpec) -> Iterator[tuple[LayerSpec, Place]]:
    for slot in SLOTS:
        for index, child in enumerate(getattr(layer, slot)):
            yield child, Place(layer.id, slot, index)
            yield from _walk_group(child)


def find(layers: tuple[LayerSpec, ...], layer_id: str) -> tuple[LayerSpec, Place] | None:
    for layer, place in walk(layers):
        if layer.id == layer_id:
            return layer, place
    return None


def contents(layers: tuple[LayerSpec, ...], parent: str | None, slot: str = "layers") -> tuple[LayerSpec, ...]:
    """The list a place indexes into: the top level, or a group's body or shortcut. KeyError for an unknown parent."""
    if parent is None:
        return layers
    found = find(layers, parent)
    if found is None:
        raise KeyError(parent)
    return getattr(found[0], slot)


def mapped(layers: tuple[LayerSpec, ...], change: Callable[[LayerSpec], LayerSpec]) -> tuple[LayerSpec, ...]:
    """``layers`` with ``change`` applied to every layer, inner layers first (so a group sees its new children)."""
    out = []
    for layer in layers:
        if layer.layers or layer.shortcut:
            layer = replace(layer, layers=mapped(layer.layers, change), shortcut=mapped(layer.shortcut, change))
        out.append(change(layer))
    return tuple(out)


def with_contents(layers: tuple[LayerSpec, ...], parent: str | None, slot: str,
                  new: tuple[LayerSpec, ...]) -> tuple[LayerSpec, ...]:
    """``layers`` with the list at (parent, slot) replaced by ``new``."""
    if parent is None:
        return tuple(new)

    def change(layer: LayerSpec) -> LayerSpec:
        if layer.id != parent:
            return layer
        return replace(layer, layers=tuple(new)) if slot == "layers" else replace(layer, shortcut=tuple(new))

    return mapped(layers, change)


def removed(layers: tuple[LayerSpec, ...], layer_ids) -> tuple[LayerSpec, ...]:
    """``layers`` without the given layers, wherever they sit (a removed group takes its layers with it)."""
    ids = set(layer_ids)
    out = []
    for layer in layers:
        if layer.id in ids:
            continue
        if layer.layers or layer.shortcut:
            layer = replace(layer, layers=removed(layer.layers, ids), shortcut=removed(layer.shortcut, ids))
        out.append(layer)
    return tuple(out)


def inserted(layers: tuple[LayerSpec, ...], place: Place, new: tuple[LayerSpec, ...]) -> tuple[LayerSpec, ...]:
    """``layers`` with ``new`` inserted at ``place`` (an index past the end appends)."""
    items = contents(layers, place.parent, place.slot)
    index = max(0, min(place.index, len(items)))
    return with_contents(layers, place.parent, place.slot, items[:index] + tuple(new) + items[index:])


def outermost(layers: tuple[LayerSpec, ...], layer_ids) -> list[str]:
    """The given ids in design order, less those inside another given one (a group takes its layers along)."""
    chosen, covered, out = set(layer_ids), set(), []
    for layer, place in walk(layers):
        if place.parent in covered:
            covered.add(layer.id)
        elif layer.id in chosen:
            out.append(layer.id)
            covered.add(layer.id)
    return out


def moved(layers: tuple[LayerSpec, ...], layer_ids, place: Place) -> tuple[LayerSpec, ...]:
    """``layers`` with the given layers (in design order, each group with what it holds) taken out and put one
    after another at ``place``, whose index counts positions before the move (as a drop position does).
    ValueError when ``place`` lies inside one of them: a group cannot move into itself."""
    ids = outermost(layers, layer_ids)
    if place.parent is not None and {place.parent, *ancestors(layers, place.parent)} & set(ids):
        raise ValueError("a group cannot move into itself")
    found = [hit for hit in (find(layers, layer_id) for layer_id in ids) if hit is not None]
    before = sum(1 for _, at in found if (at.parent, at.slot) == (place.parent, place.slot) and at.index < place.index)
    rest = removed(layers, ids)
    return inserted(rest, place._replace(index=place.index - before), tuple(layer for layer, _ in found))


def ancestors(layers: tuple[LayerSpec, ...], layer_id: str) -> list[str]:
    """The ids of the groups around a layer, outermost first."""
    chain: list[str] = []
    found = find(layers, layer_id)
    while found is not None and found[1].parent is not None:
        chain.insert(0, found[1].parent)
        found = find(layers, found[1].parent)
    return chain


def step_text(parent: LayerSpec | None, slot: str, index: int) -> str:
    """One step of a layer's path as people read it: "3" (the Sequential's index), "branch 2" (counted from 1,
    as branches are named), "shortcut › 0"."""
    if slot == "shortcut":
        return f"shortcut › {index}"
    if parent is not None and parent.params.get("mode") == "branches":
        return f"branch {index + 1}"
    return str(index)


def walk_paths(layers: tuple[LayerSpec, ...], parent: LayerSpec | None = None,
               prefix: str = "") -> Iterator[tuple[LayerSpec, str]]:
    """Every layer with its path text (see ``step_text``), depth first."""
    for slot in SLOTS if parent is not None else ("layers",):
        for index, layer in enumerate(getattr(parent, slot) if parent is not None else layers):
            path = prefix + step_text(parent, slot, index)
            yield layer, path
            yield from walk_paths((), layer, path + " › ")


def path_text(layers: tuple[LayerSpec, ...], layer_id: str) -> str:
    """Where a layer sits, e.g. "8 › branch 2 › 1", the way errors name it."""
    return next(path for layer, path in walk_paths(layers) if layer.id == layer_id)
