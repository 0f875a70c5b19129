"""The Group kind: a layer that holds layers (``LayerSpec.layers``), so a design is a series-parallel graph.

Only its parameter schema lives here, so the palette, the inspector, design files and the CLI treat a group's
settings like any layer's. What a group does to a shape (``engine.group_analysis``) and the module it builds
(``engine.build``) depend on the layers inside it, which a registry ``infer(shape, params)`` never sees."""
from __future__ import annotations

from engine.layers.registry import LayerKind, P, register

GROUP = "Group"
MODES = ("sequence", "residual", "branches")
MERGES = ("concat", "sum")
SHORTCUTS = ("auto", "auto+bn", "custom")
GROUP_ACTIVATIONS = ("none", "ReLU")
MAX_REPEAT = 1000
# The settings each mode reads; the others keep their values in the file, unused (the inspector hides them).
MODE_PARAMS = {
    "sequence": ("mode", "repeat"),
    "residual": ("mode", "repeat", "shortcut", "activation"),
    "branches": ("mode", "repeat", "merge"),
}


def _not_a_leaf(x, p):
    raise AssertionError("a group is analysed by engine.group_analysis and built by engine.build")


register(LayerKind(
    GROUP, "Blocks",
    "A group of layers: a sequence (optionally repeated), a residual block (body + shortcut) or parallel branches",
    (P("mode", "choice", "sequence", "sequence: its layers in order; residual: body(x) + shortcut(x); "
       "branches: each child fed the same input, outputs merged", choices=MODES),
     P("repeat", "int", 1, "How many copies run one after another, each with its own weights", 1, MAX_REPEAT),
     P("merge", "choice", "concat", "branches: concatenate along channels (features) or sum", choices=MERGES),
     P("shortcut", "choice", "auto", "residual: auto is identity when the body keeps the shape, else a 1x1 "
       "convolution (auto+bn adds BatchNorm); custom uses the layers under Shortcut", choices=SHORTCUTS),
     P("activation", "choice", "none", "residual: the activation applied after the sum", choices=GROUP_ACTIVATIONS)),
    _not_a_leaf, _not_a_leaf, key=("{mode}", "?x{repeat}"), is_group=True,
))
