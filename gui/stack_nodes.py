"""The shape of the layer stack's tree, as plain Python: one ``Node`` per row, keyed by layer id, built from a
design (``build_nodes``). gui.stack_model answers Qt from it; comparing two node lists (``shape_of``) tells it
whether an edit changed the tree's shape."""
from __future__ import annotations

INPUT_ID = ""  # the input row's key and layer id
SHORTCUT_KEY = "/shortcut"  # a Shortcut row's key: its group's id + this (ids never hold "/")


class Node:
    """One row's place in the tree: its parent node, its row there, its key (the layer id, INPUT_ID, or a
    Shortcut row's group id + SHORTCUT_KEY), the list its layer sits in (``container``: parent id, slot) and
    its child rows. ``tag`` is its position in the model's node list, the internal id of its indexes."""

    __slots__ = ("tag", "parent", "row", "key", "layer_id", "container", "branch", "children")

    def __init__(self, tag: int, parent: Node | None, row: int, key: str, layer_id: str | None,
                 container: tuple[str | None, str] = (None, "layers"), branch: bool = False):
        self.tag, self.parent, self.row, self.key, self.layer_id = tag, parent, row, key, layer_id
        self.container, self.branch = container, branch
        self.children: list[Node] = []


def build_nodes(spec) -> list[Node]:
    """The rows of ``spec`` as a node list: the root first (tag 0), then every row depth first."""
    nodes = [Node(0, None, -1, "\0root", None)]

    def add(parent: Node, key: str, layer_id: str | None, container=(None, "layers"), branch=False) -> Node:
        node = Node(len(nodes), parent, len(parent.children), key, layer_id, container, branch)
        nodes.append(node)
        parent.children.append(node)
        return node

    def add_layer(parent: Node, layer, container, branch: bool) -> None:
        node = add(parent, layer.id, layer.id, container, branch)
        if not layer.is_group:
            return
        branches = layer.params.get("mode") == "branches"
        for child in layer.layers:
            add_layer(node, child, (layer.id, "layers"), branches)
        if layer.params.get("mode") == "residual" and layer.params.get("shortcut") == "custom":
            header = add(node, layer.id + SHORTCUT_KEY, None, (layer.id, "shortcut"))
            for child in layer.shortcut:
                add_layer(header, child, (layer.id, "shortcut"), False)

    root = nodes[0]
    add(root, INPUT_ID, INPUT_ID)
    for layer in spec.layers:
        add_layer(root, layer, (None, "layers"), False)
    return nodes


def shape_of(nodes: list[Node]) -> list[tuple[str, int]]:
    """What decides the indexes of a node list: each row's key and its parent's tag."""
    return [(node.key, node.parent.tag if node.parent else -1) for node in nodes]
