"""Where the graph view draws each layer: boxes, group frames and arrows computed from a design's analysis
rows as plain data (no Qt), so the layout can be tested without painting.

Top to bottom: the input, then every row; a group is a frame titled with its label around its layers; a
residual group's body is a column with the shortcut going around it on the right (an arrow, the custom
shortcut's layers, or the automatic projection) to a "+" node, then the activation; a branches group puts its
branches side by side from one fork to a merge node. Every arrow between layers is labelled with the shape it
carries. Each piece is laid out in its own coordinates (a ``Part``) and placed by its container, so groups nest
to any depth.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.shapes import Analysis, LayerRow, format_shape
from engine.spec import LayerSpec, NetworkSpec
from engine.tree import walk

GAP = 24          # vertical space between two pieces of a column: room for the arrow's shape label
PAD = 10          # inside a frame, around its contents
BRANCH_GAP = 18   # between two branches side by side
LANE_GAP = 28     # between a residual body and its shortcut
FORK_GAP = 16     # from a fork to the tops of what it feeds
MARGIN = 16       # around the whole drawing
MIN_BOX = 64      # narrowest layer box
H_PAD, V_PAD = 10, 5
DOT = 3           # radius of a fork
PLUS = 10         # radius of a "+" node
LABEL_GAP = 4     # from an arrow to its label


@dataclass(frozen=True)
class Metrics:
    """Text sizes: ``width(text)`` and ``line`` for box labels, ``small_width`` and ``small_line`` for arrow
    labels. The defaults approximate a 9-point font; the view passes its fonts' real metrics."""

    width: Callable[[str], float] = lambda text: 7.0 * len(text)
    line: float = 16.0
    small_width: Callable[[str], float] = lambda text: 6.0 * len(text)
    small_line: float = 13.0


@dataclass(frozen=True)
class Box:
    """A node. ``role``: "input", "output", "layer" (a layer's box; a collapsed group's too), "activation"
    (a residual group's activation), "merge" ("+" or "concat"), "auto" (an automatic shortcut), "fork".
    ``layer_id`` is the layer a click selects (the group for its merge, activation and shortcut nodes)."""

    role: str
    label: str
    x: float
    y: float
    w: float
    h: float
    layer_id: str | None = None
    error: str = ""
    tip: str = ""

    def moved(self, dx: float, dy: float) -> Box:
        return Box(self.role, self.label, self.x + dx, self.y + dy, self.w, self.h, self.layer_id, self.error, self.tip)


@dataclass(frozen=True)
class Frame:
    """A group drawn around its layers, titled at (x + title_x, y); ``repeat`` > 1 draws copies behind it."""

    layer_id: str
    title: str
    x: float
    y: float
    w: float
    h: float
    title_x: float
    depth: int
    repeat: int = 1
    error: str = ""
    tip: str = ""

    def moved(self, dx: float, dy: float) -> Frame:
        return Frame(self.layer_id, self.title, self.x + dx, self.y + dy, self.w, self.h, self.title_x, self.depth,
                     self.repeat, self.error, self.tip)


@dataclass(frozen=True)
class Edge:
    """An arrow along ``points`` (the last one gets the head); ``role`` "flow" or "shortcut"; ``label`` (a shape)
    written with its top left at ``label_at``."""

    points: tuple[tuple[float, float], ...]
    role: str = "flow"
    label: str = ""
    label_at: tuple[float, float] = (0.0, 0.0)
    head: bool = True

    def moved(self, dx: float, dy: float) -> Edge:
        return Edge(tuple((x + dx, y + dy) for x, y in self.points), self.role, self.label,
                    (self.label_at[0] + dx, self.label_at[1] + dy), self.head)


@dataclass(frozen=True)
class Layout:
    """The whole drawing: frames (outermost first), boxes and edges, in a width x height area."""

    boxes: tuple[Box, ...]
    frames: tuple[Frame, ...]
    edges: tuple[Edge, ...]
    width: float
    height: float

    def box(self, layer_id: str) -> Box:
        """The box of a layer (role "layer"); KeyError if it has none (a group drawn as a frame)."""
        for box in self.boxes:
            if box.role == "layer" and box.layer_id == layer_id:
                return box
        raise KeyError(layer_id)

    def frame(self, layer_id: str) -> Frame:
        for frame in self.frames:
            if frame.layer_id == layer_id:
                return frame
        raise KeyError(layer_id)


@dataclass
class Part:
    """A piece laid out in its own coordinates: w x h, entered at (axis, top), left at (axis, bottom)."""

    w: float = 0.0
    h: float = 0.0
    axis: float = 0.0
    top: float = 0.0
    bottom: float = 0.0
    items: list = field(default_factory=list)  # Box, Frame and Edge in this part's coordinates
    parts: list = field(default_factory=list)  # (x, y, Part) placed inside

    def place(self, part: Part, x: float, y: float) -> None:
        self.parts.append((x, y, part))

    def flatten(self, dx: float, dy: float, out: list) -> None:
        out.extend(item.moved(dx, dy) for item in self.items)
        for x, y, part in self.parts:
            part.flatten(dx + x, dy + y, out)


def layout(spec: NetworkSpec, analysis: Analysis, collapsed=frozenset(), metrics: Metrics = Metrics()) -> Layout:
    """Lay out the design whose analysis is ``analysis``; groups whose ids are in ``collapsed`` are one box."""
    return _Layouter(spec, collapsed, metrics).design(analysis)


def shortcut_text(formula: str) -> str:
    """What a residual row's formula says its automatic shortcut is ("identity", "1x1 conv, stride 2, ..."), or ''."""
    _, found, text = formula.partition("shortcut: ")
    return text if found else ""


class _Layouter:
    def __init__(self, spec: NetworkSpec, collapsed, metrics: Metrics):
        self.layers: dict[str, LayerSpec] = {layer.id: layer for layer, _ in walk(spec.layers)}
        self.collapsed = frozenset(collapsed)
        self.m = metrics
        self.depth = 0

    # ------------------------------------------------------------------ the design
    def design(self, analysis: Analysis) -> Layout:
        first = format_shape(analysis.input_shape)
        pieces = [(self.box("input", f"Input {first}", None, tip=f"Input: {first} per sample"), first)]
        pieces += [(self.part(row), format_shape(row.shape)) for row in analysis.rows]
        pieces.append((self.box("output", "Output", None, tip="The network's output"), ""))
        whole = self.column(pieces)
        items: list = []
        whole.flatten(MARGIN, MARGIN, items)
        return Layout(tuple(i for i in items if isinstance(i, Box)), tuple(i for i in items if isinstance(i, Frame)),
                      tuple(i for i in items if isinstance(i, Edge)), whole.w + 2 * MARGIN, whole.h + 2 * MARGIN)

    # ------------------------------------------------------------------ pieces
    def box(self, role: str, label: str, layer_id: str | None, error: str = "", tip: str = "") -> Part:
        lines = label.split("\n")
        w = max(MIN_BOX if role in ("layer", "activation", "auto") else 0,
                max(self.m.width(line) for line in lines) + 2 * H_PAD)
        h = len(lines) * self.m.line + 2 * V_PAD
        return Part(w, h, w / 2, 0, h, [Box(role, label, 0, 0, w, h, layer_id, error, tip)])

    def node(self, role: str, label: str, layer_id: str | None, error: str = "", tip: str = "") -> Part:
        """A fork (a dot) or a merge ("+" in a circle, "concat" in a pill)."""
        if role == "fork":
            w = h = 2 * DOT
        elif label == "+":
            w = h = 2 * PLUS
        else:
            w, h = self.m.width(label) + 2 * H_PAD, self.m.line + 2 * V_PAD
        return Part(w, h, w / 2, 0, h, [Box(role, label, 0, 0, w, h, layer_id, error, tip)])

    def part(self, row: LayerRow) -> Part:
        layer = self.layers.get(row.layer_id)
        tip = _tip(row)
        if layer is None or not layer.is_group:
            return self.box("layer", row.label, row.layer_id, row.error, tip)
        if row.layer_id in self.collapsed:
            return self.box("layer", "▸ " + row.label, row.layer_id, row.error, tip + "\nDouble-click to open")
        self.depth += 1
        mode = layer.params.get("mode")
        if mode == "residual":
            inner = self.residual(row, layer)
        elif mode == "branches":
            inner = self.branches(row, layer)
        else:
            inner = self.chain(row.children)
        self.depth -= 1
        repeat = layer.params.get("repeat")
        return self.framed(inner, row, repeat if isinstance(repeat, int) else 1, tip)

    def framed(self, inner: Part, row: LayerRow, repeat: int, tip: str) -> Part:
        """``inner`` in a frame titled with the group's label, the title kept clear of the arrow down the axis."""
        title_w = self.m.width(row.label)
        title_h = self.m.line + 4
        shift, title_x = 0.0, PAD
        if PAD + title_w + PAD > PAD + inner.axis:                    # the title would cross the arrow ...
            if inner.axis + 2 * PAD + title_w <= inner.w:             # ... so write it right of the arrow
                title_x = PAD + inner.axis + PAD
            else:                                                     # ... or move the contents right of it
                shift = title_w + PAD - inner.axis
        w = max(2 * PAD + shift + inner.w, title_x + title_w + PAD)
        h = title_h + inner.h + PAD
        part = Part(w, h, PAD + shift + inner.axis, title_h + inner.top, title_h + inner.bottom)
        part.items.append(Frame(row.layer_id, row.label, 0, 0, w, h, title_x, self.depth, repeat, row.error, tip))
        part.place(inner, PAD + shift, title_h)
        return part

    def column(self, pieces: list[tuple[Part, str]]) -> Part:
        """Parts one below the other on one axis, each arrow labelled with the shape its part gives."""
        if not pieces:
            part = Part(2 * DOT, GAP, DOT, 0, GAP)
            part.items.append(Edge(((DOT, 0), (DOT, GAP)), head=False))
            return part
        left = max(p.axis for p, _ in pieces)
        right = max(max(p.w - p.axis for p, _ in pieces),
                    max(LABEL_GAP + self.m.small_width(label) for _, label in pieces[:-1]) if len(pieces) > 1 else 0)
        whole = Part(left + right, 0, left)
        y, previous = 0.0, None
        for part, label in pieces:
            if previous is not None:
                above, above_y, above_label = previous
                whole.items.append(Edge(((left, above_y + above.bottom), (left, y + part.top)), label=above_label,
                                        label_at=(left + LABEL_GAP, above_y + above.h + 2)))
            whole.place(part, left - part.axis, y)
            previous = (part, y, label)
            y += part.h + GAP
        whole.h = y - GAP
        whole.top = pieces[0][0].top
        whole.bottom = previous[1] + previous[0].bottom
        return whole

    def chain(self, rows) -> Part:
        return self.column([(self.part(row), format_shape(row.shape)) for row in rows])

    def residual(self, row: LayerRow, layer: LayerSpec) -> Part:
        """Fork, body column, the shortcut around it on the right, "+", then the activation."""
        body = self.chain(row.children)
        summed = format_shape(row.children[-1].shape if row.children else row.in_shape)
        lane = self.shortcut(row, layer)
        ax = body.axis
        part = Part(axis=ax)
        part.items.append(self.node("fork", "", row.layer_id).items[0].moved(ax - DOT, -DOT))
        part.place(body, 0, FORK_GAP)
        part.items.append(Edge(((ax, 0), (ax, FORK_GAP + body.top))))
        tall = max(body.h, lane.h if lane else 0)
        plus_y = FORK_GAP + tall + GAP
        plus = self.node("merge", "+", row.layer_id, tip="Sum: body(x) + shortcut(x)")
        part.place(plus, ax - PLUS, plus_y)
        cy = plus_y + PLUS
        part.items.append(Edge(((ax, FORK_GAP + body.bottom), (ax, plus_y)), label=summed,
                               label_at=(ax + LABEL_GAP, FORK_GAP + body.h + 2)))
        lane_left = body.w + LANE_GAP
        if lane is None:
            lane_x, right = lane_left, lane_left + LABEL_GAP
            part.items.append(Edge(((ax, 0), (lane_x, 0), (lane_x, cy), (ax + PLUS, cy)), "shortcut"))
        else:
            lane_x = lane_left + lane.axis
            lane_y = FORK_GAP + (body.h - lane.h) / 2 if lane.h < body.h else FORK_GAP
            part.place(lane, lane_left, lane_y)
            out = format_shape(row.shortcut[-1].shape) if row.shortcut else summed
            part.items.append(Edge(((ax, 0), (lane_x, 0), (lane_x, lane_y + lane.top)), "shortcut"))
            part.items.append(Edge(((lane_x, lane_y + lane.bottom), (lane_x, cy), (ax + PLUS, cy)), "shortcut",
                                   out, (lane_x + LABEL_GAP, lane_y + lane.h + 2)))
            right = lane_left + max(lane.w, lane.axis + LABEL_GAP + self.m.small_width(out))
        bottom = plus_y + 2 * PLUS
        activation = layer.params.get("activation", "none")
        if activation != "none":
            act = self.box("activation", str(activation), row.layer_id, tip=f"{activation} after the sum")
            act_y = bottom + GAP
            part.place(act, ax - act.axis, act_y)
            part.items.append(Edge(((ax, bottom), (ax, act_y)), label=summed, label_at=(ax + LABEL_GAP, bottom + 2)))
            bottom = act_y + act.h
        part.w = max(right, ax + LABEL_GAP + self.m.small_width(summed))
        part.h = part.bottom = bottom
        return part

    def shortcut(self, row: LayerRow, layer: LayerSpec) -> Part | None:
        """The shortcut's own drawing: the custom layers, the automatic projection's box, or None (identity)."""
        if layer.params.get("shortcut") == "custom":
            return self.chain(row.shortcut) if row.shortcut else None
        text = shortcut_text(row.formula)
        if not text or text == "identity":
            return None
        label = "auto: " + text.replace(", ", "\n").replace(" + ", "\n+ ")
        return self.box("auto", label, row.layer_id, tip=f"Automatic shortcut: {text}")

    def branches(self, row: LayerRow, layer: LayerSpec) -> Part:
        """The branches side by side under one fork, each arrow into the merge node labelled with its shape."""
        placed, x = [], 0.0
        for child in row.children:
            branch = self.branch(child)
            label = format_shape(child.shape)
            right = max(branch.w - branch.axis, LABEL_GAP + self.m.small_width(label))
            placed.append((branch, x, label))
            x += branch.axis + right + BRANCH_GAP
        if not placed:
            placed.append((self.column([]), 0.0, ""))
            x = 2 * DOT + BRANCH_GAP
        axes = [bx + b.axis for b, bx, _ in placed]
        ax = (axes[0] + axes[-1]) / 2
        merge = self.node("merge", "+" if layer.params.get("merge") == "sum" else "concat", row.layer_id, row.error,
                          tip=row.formula or row.error)
        part = Part(max(x - BRANCH_GAP, ax + merge.w / 2), axis=ax)
        part.items.append(self.node("fork", "", row.layer_id).items[0].moved(ax - DOT, -DOT))
        tall = max(b.h for b, _, _ in placed)
        merge_y = FORK_GAP + tall + GAP
        cy = merge_y + merge.h / 2
        part.place(merge, ax - merge.axis, merge_y)
        for (branch, bx, label), axis in zip(placed, axes, strict=True):
            part.place(branch, bx, FORK_GAP)
            entry, exit_y = FORK_GAP + branch.top, FORK_GAP + branch.bottom
            at = (axis + LABEL_GAP, FORK_GAP + branch.h + 2)
            if abs(axis - ax) < 0.5:
                part.items.append(Edge(((ax, 0), (ax, entry))))
                part.items.append(Edge(((ax, exit_y), (ax, merge_y)), label=label, label_at=at))
            else:
                side = merge.w / 2 if axis > ax else -merge.w / 2
                part.items.append(Edge(((ax, 0), (axis, 0), (axis, entry))))
                part.items.append(Edge(((axis, exit_y), (axis, cy), (ax + side, cy)), label=label, label_at=at))
        part.h = part.bottom = merge_y + merge.h
        return _shifted(part, merge.w / 2 - ax)

    def branch(self, row: LayerRow) -> Part:
        """One branch: an unnamed, plain sequence is just its column (a frame would only repeat "Sequence")."""
        layer = self.layers.get(row.layer_id)
        plain = (layer is not None and layer.is_group and not layer.name and not row.error
                 and layer.params.get("mode") == "sequence" and layer.params.get("repeat") == 1
                 and row.layer_id not in self.collapsed)
        return self.chain(row.children) if plain else self.part(row)


def _shifted(part: Part, dx: float) -> Part:
    """``part`` moved right by ``dx`` inside a wider part (when something hangs out on the left), else itself."""
    if dx <= 0:
        return part
    outer = Part(part.w + dx, part.h, part.axis + dx, part.top, part.bottom)
    outer.place(part, dx, 0)
    return outer


def _tip(row: LayerRow) -> str:
    """A box's tooltip: where the layer sits, its label, output shape, formula and any problem."""
    lines = [f"{row.path}: {row.label}", f"Output {format_shape(row.shape)}"]
    if row.formula:
        lines.append(row.formula)
    if row.error:
        lines.append(row.error)
    elif row.warning:
        lines.append(row.warning)
    return "\n".join(lines)
