"""docs/layers.md, written from the layer registry: every kind, its parameters and their ranges.

The registry is the one declaration; this page only prints it, and a test keeps the page current.
Regenerate with ``python -m engine.layer_reference > docs/layers.md``.
"""
from __future__ import annotations

from engine.groups import PRESETS
from engine.layers import PADDING_PRESETS, RANGED_TYPES, Param, kinds_by_category
from engine.spec import MAX_RANK

HEADER = """# Layers and their parameters

Every layer in the palette, with each parameter's type, default and allowed range. A design file
(or an edit) with a value outside its range is refused with a sentence naming the layer and the
parameter; nothing outside these ranges reaches PyTorch. Shapes such as `in_features` and
`in_channels` are not parameters: they come from the incoming shape.

This page is generated from the registry in `engine/layers/` by `python -m engine.layer_reference`.
"""


def _number(x) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


def _allowed(p: Param) -> str:
    if p.type == "bool":
        return "true or false"
    if p.type == "choice":
        return " or ".join(f"`{c}`" for c in p.choices)
    assert p.type in RANGED_TYPES
    span = f"{_number(p.min)} to {_number(p.max)}"
    if p.type == "ints":
        return f"1 to {MAX_RANK} integers, each {span}"
    if p.type == "padding":
        return f"{span}, or " + ", ".join(f"`{preset}`" for preset in PADDING_PRESETS)
    return span


def _default(p: Param) -> str:
    if isinstance(p.default, bool):
        return str(p.default).lower()
    if isinstance(p.default, tuple):
        return "[" + ", ".join(map(str, p.default)) + "]"
    if isinstance(p.default, str):
        return f"`{p.default}`"
    return _number(p.default)


def reference() -> str:
    """The whole page as Markdown."""
    lines = [HEADER]
    for category, kinds in kinds_by_category().items():
        lines.append(f"## {category}\n")
        for kind in kinds:
            lines.append(f"**{kind.name}**: {kind.help}\n")
            if not kind.params:
                lines.append("No parameters.\n")
                continue
            lines.append("| Parameter | Type | Default | Allowed | Meaning |\n| --- | --- | --- | --- | --- |")
            lines += [f"| `{p.name}` | {p.type} | {_default(p)} | {_allowed(p)} | {p.help} |" for p in kind.params]
            lines.append("")
            if kind.is_group:
                lines += _presets()
    return "\n".join(lines)


def _presets() -> list[str]:
    """The palette's prefilled groups (engine.groups.PRESETS): ordinary groups with layers already in them."""
    lines = ["The palette's Blocks insert groups with their layers already in place; each opens and changes like "
             "any group:\n"]
    lines += [f"- **{preset.name}**: {' '.join(preset.help.split())}" for preset in PRESETS.values()]
    return [*lines, ""]


if __name__ == "__main__":
    print(reference(), end="")
