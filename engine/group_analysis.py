"""Analysis inside groups: a group's row holds its layers' rows and counts what they hold, plus its own
problems (branches that cannot be merged, a shortcut that does not match the body) with a fix.

A repeated group is walked once per repeat, each fed the last one's output; its inner rows show the first
repeat's shapes and the weights of all repeats (each has its own), and a problem met in a later repeat says
which. The glue (the sum, the concatenation) adds no weights and no MACs, as a bias adds none."""
from __future__ import annotations

from dataclasses import dataclass, replace

from engine.errors import LayerError
from engine.groups import auto_shortcut, group_label
from engine.shapes import LayerRow, Shape, _checked, _params_key, format_shape, infer_layer, leaf_row
from engine.spec import MAX_GROUP_DEPTH, LayerSpec
from engine.tree import step_text


@dataclass
class Walk:
    """One analysis pass; knows whether the design's first layer (the one fed the input) is still ahead."""

    input_problem: str = ""
    seen_leaf: bool = False
    depth: int = 0  # groups around the layer being analysed

    def chain(self, layers, shape: Shape | None, parent: LayerSpec | None, slot: str, prefix: str,
              frozen: bool) -> tuple[list[LayerRow], Shape | None]:
        """Rows of layers run one after another from ``shape``, and the last one's output."""
        rows = []
        for index, layer in enumerate(layers):
            row = self.row(layer, index, prefix + step_text(parent, slot, index), shape, frozen)
            rows.append(row)
            shape = row.shape
        return rows, shape

    def row(self, layer: LayerSpec, index: int, path: str, shape: Shape | None, frozen: bool) -> LayerRow:
        if layer.is_group:
            return self.group_row(layer, index, path, shape, frozen or layer.frozen)
        first, problem = not self.seen_leaf, self.input_problem
        self.seen_leaf, self.input_problem = True, ""
        return leaf_row(layer, index, path, shape, first, frozen, problem)

    def group_row(self, layer: LayerSpec, index: int, path: str, shape: Shape | None, frozen: bool) -> LayerRow:
        if self.depth >= MAX_GROUP_DEPTH:
            return LayerRow(index, layer.id, layer.kind, layer.name or layer.kind, shape, None, path=path,
                            error=f"Groups nest at most {MAX_GROUP_DEPTH} deep (a design file could not hold more): "
                                  "ungroup some of the groups around this one")
        self.depth += 1
        try:
            return self._group_row(layer, index, path, shape, frozen)
        finally:
            self.depth -= 1

    def _group_row(self, layer: LayerSpec, index: int, path: str, shape: Shape | None, frozen: bool) -> LayerRow:
        checked = _checked(layer.kind, layer.params, _params_key(layer.params))
        if isinstance(checked, str):
            children, _ = self.chain(layer.layers, None, layer, "layers", path + " › ", frozen)
            return LayerRow(index, layer.id, layer.kind, layer.name or layer.kind, shape, None, error=checked,
                            path=path, children=tuple(children))
        layer = replace(layer, params=checked)
        first = self.once(layer, index, path, shape, frozen)
        total, out = first, first.shape
        for repeat in range(2, checked["repeat"] + 1):
            if out is None:
                total = replace(total, shape=None, params=None, trainable=None, buffers=None, macs=None)
                break
            later = self.once(layer, index, path, out, frozen)
            total, out = _add_repeat(total, later, repeat), later.shape
        return replace(total, shape=out, label=group_label(layer))

    def once(self, layer: LayerSpec, index: int, path: str, shape: Shape | None, frozen: bool) -> LayerRow:
        """One repeat of a group: its rows, output and cost (children's plus the automatic shortcut's)."""
        mode, prefix = layer.params["mode"], path + " › "
        if mode == "branches":
            children = [self.row(child, i, prefix + step_text(layer, "layers", i), shape, frozen)
                        for i, child in enumerate(layer.layers)]
            out, problem, formula = _merge(layer.params["merge"], [row.shape for row in children], shape)
            return _group(layer, index, path, shape, out, children, (), problem, formula)
        children, out = self.chain(layer.layers, shape, layer, "layers", prefix, frozen)
        if mode == "sequence":
            return _group(layer, index, path, shape, out, children, (), "", "")
        return self.residual(layer, index, path, shape, out, children, frozen)

    def residual(self, layer, index, path, shape, body_out, children, frozen) -> LayerRow:
        p = layer.params
        total = "body(x) + shortcut(x)"
        sum_of = f"output = {total if p['activation'] == 'none' else p['activation'] + '(' + total + ')'}"
        if p["shortcut"] == "custom":
            rows, short_out = self.chain(layer.shortcut, shape, layer, "shortcut", path + " › ", frozen)
            row = _group(layer, index, path, shape, body_out, children, rows, "", sum_of + "; shortcut: custom")
            if body_out is None or short_out is None or short_out == body_out:
                return row
            return replace(row, shape=None, error=f"The shortcut gives {format_shape(short_out)} but the body gives "
                           f"{format_shape(body_out)}: the sum needs equal shapes, so change the shortcut's layers "
                           "(or set shortcut to auto)")
        row = _group(layer, index, path, shape, body_out, children, (), "", sum_of)
        if shape is None or body_out is None:
            return row
        try:
            projection, text = auto_shortcut(shape, body_out, p["shortcut"] == "auto+bn", layer.id)
        except LayerError as exc:
            return replace(row, shape=None, error=str(exc))
        costs = [infer_layer(spec.kind, x, spec.params) for spec, x in _fed(projection, shape)]
        params = sum(c.params for c in costs)
        return _add_cost(replace(row, formula=f"{sum_of}; shortcut: {text}"), params, 0 if frozen else params,
                         sum(c.buffers for c in costs), sum(c.macs for c in costs), max((c.min_batch for c in costs),
                                                                                        default=1))


def _fed(layers: tuple[LayerSpec, ...], shape: Shape):
    """Each layer with the shape it is fed, in a chain from ``shape``."""
    for layer in layers:
        yield layer, shape
        shape = infer_layer(layer.kind, shape, layer.params).shape


def _sum(values):
    return None if any(v is None for v in values) else sum(values)


def _group(layer, index, path, shape, out, children, shortcut, problem, formula) -> LayerRow:
    """A group's row for one repeat: the sum of its rows' costs (unknown if any is)."""
    rows = list(children) + list(shortcut)
    known = out is not None and not problem
    return LayerRow(
        index, layer.id, layer.kind, group_label(layer), shape, out if known else None,
        _sum([r.params for r in rows]), _sum([r.trainable for r in rows]), _sum([r.buffers for r in rows]),
        _sum([r.macs for r in rows]), formula, problem, min_batch=max((r.min_batch for r in rows), default=1),
        path=path, children=tuple(children), shortcut=tuple(shortcut), group=layer.params)


def _add_cost(row: LayerRow, params: int, trainable: int, buffers: int, macs: int, min_batch: int) -> LayerRow:
    def add(a, b):
        return None if a is None else a + b

    return replace(row, params=add(row.params, params), trainable=add(row.trainable, trainable),
                   buffers=add(row.buffers, buffers), macs=add(row.macs, macs),
                   min_batch=max(row.min_batch, min_batch))


def _add_repeat(total: LayerRow, later: LayerRow, repeat: int) -> LayerRow:
    """``total`` (the rows of the repeats so far) with a later repeat's costs added and its problems noted."""
    def add(a, b):
        return None if a is None or b is None else a + b

    error = total.error or (f"In repeat {repeat}: {later.error}" if later.error else "")
    return replace(
        total, params=add(total.params, later.params), trainable=add(total.trainable, later.trainable),
        buffers=add(total.buffers, later.buffers), macs=add(total.macs, later.macs), error=error,
        warning=total.warning or later.warning, min_batch=max(total.min_batch, later.min_batch),
        children=tuple(_add_repeat(a, b, repeat) for a, b in zip(total.children, later.children, strict=True)),
        shortcut=tuple(_add_repeat(a, b, repeat) for a, b in zip(total.shortcut, later.shortcut, strict=True)))


def _merge(merge: str, shapes: list[Shape | None], x: Shape | None) -> tuple[Shape | None, str, str]:
    """(output, problem, formula) of merging branch outputs by concatenation along the first sample dimension
    (channels, or features) or by a sum."""
    if not shapes:
        return None, "A branches group needs at least one branch: add a layer or a group to it", ""
    if any(shape is None for shape in shapes):
        return None, "", ""
    known: list[Shape] = [s for s in shapes if s is not None]
    ranks = {len(s) for s in known}
    if len(ranks) > 1 or 0 in ranks:
        listing = ", ".join(f"branch {i + 1} gives {format_shape(s)}" for i, s in enumerate(known))
        return None, (f"The branches' outputs differ in rank ({listing}): {merge} needs every branch to give the same "
                      "number of dimensions; add a Flatten or Unflatten to the odd one"), ""
    if merge == "sum":
        if len(set(known)) > 1:
            widest = max(known, key=lambda s: (s[1:], s[0]))
            listing = ", ".join(f"branch {i + 1} gives {format_shape(s)}" for i, s in enumerate(known) if s != widest)
            return None, (f"Summed branches must give equal shapes, but {listing} where branch "
                          f"{known.index(widest) + 1} gives {format_shape(widest)}: change their layers' channels, "
                          "strides or padding"), ""
        return known[0], "", f"sum of {len(known)} branches of {format_shape(known[0])}"
    rests = [s[1:] for s in known]
    if len(set(rests)) > 1:
        return None, _concat_problem(known), ""
    out = (sum(s[0] for s in known),) + rests[0]
    parts = " + ".join(str(s[0]) for s in known)
    kept = "H, W kept" if len(out) == 3 else f"{format_shape(out[1:])} kept" if len(out) > 1 else "features joined"
    return out, "", f"channels = {parts} = {out[0]}; {kept}"


def _concat_problem(shapes: list[Shape]) -> str:
    """Which branches' sizes differ from the largest, by how much, and the padding that would fix it."""
    target = max((s[1:] for s in shapes), key=lambda rest: rest)
    fixes = []
    for i, shape in enumerate(shapes):
        if shape[1:] == target:
            continue
        gaps = [t - n for t, n in zip(target, shape[1:], strict=True)]
        if all(gap >= 0 and gap % 2 == 0 for gap in gaps):
            pad = {gap // 2 for gap in gaps if gap}
            how = f"add padding {pad.pop()} to its last convolution or pooling" if len(pad) == 1 else \
                "pad it on each side by half the difference"
        else:
            how = "change its layers' kernel sizes, strides or padding"
        fixes.append(f"branch {i + 1} gives {format_shape(shape[1:])}, {_gap_text(gaps)} than "
                     f"{format_shape(target)} ({how})")
    return "Concatenated branches must agree in every size but the channels: " + "; ".join(fixes)


def _gap_text(gaps: list[int]) -> str:
    names = ("height", "width") if len(gaps) == 2 else ("length",) if len(gaps) == 1 else \
        tuple(f"size {i + 2}" for i in range(len(gaps)))
    parts = [f"{abs(g)} {'smaller' if g > 0 else 'larger'} in {name}" for g, name in zip(gaps, names, strict=True)
             if g]
    return ", ".join(parts)
