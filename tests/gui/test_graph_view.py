"""The graph view: boxes for every layer at any depth, branches side by side, shortcuts around their body,
shapes on the arrows, errors in red, selection shared with the stack both ways, and redrawing after edits
(once per burst, never while hidden)."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPointF, Qt

from engine.groups import group, inception_block, residual_block
from engine.shapes import analyze, format_shape
from engine.spec import LayerSpec, NetworkSpec
from engine.tree import ancestors
from gui.document import DesignDocument, DesignFile
from gui.graph_layout import layout
from gui.graph_view import ERROR, ID_KEY, LOOK_KEY, SELECTED, TITLE_KEY, GraphView
from tests.gui.helpers import load


def conv(out: int, kernel: int = 3, padding: int = 1, stride: int = 1) -> LayerSpec:
    return LayerSpec("Conv2d", {"out_channels": out, "kernel_size": kernel, "padding": padding, "stride": stride})


def nested() -> NetworkSpec:
    """Groups four deep: a residual whose body holds a branches group whose branch is a repeated sequence
    holding a named sequence; the residual has a custom shortcut."""
    inner = group("sequence", [conv(8), LayerSpec("ReLU")], name="inner")
    repeated = group("sequence", [inner], repeat=2)
    branches = group("branches", [repeated, conv(8, 1, 0), group("sequence", ())], merge="sum", name="fan")
    residual = group("residual", [branches, LayerSpec("BatchNorm2d")], name="res", shortcut="custom",
                     shortcut_layers=[conv(8, 1, 0)], activation="ReLU")
    tail = (LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 10}))
    return NetworkSpec((8, 16, 16), (conv(8), residual, *tail))


def drawn_ids(spec: NetworkSpec) -> tuple[set, set]:
    drawing = layout(spec, analyze(spec))
    return {b.layer_id for b in drawing.boxes if b.role == "layer"}, {f.layer_id for f in drawing.frames}


@pytest.mark.parametrize("spec", [nested(), DesignFile.template("resnet18").spec,
                                  DesignFile.template("googlenet").spec], ids=["nested", "resnet18", "googlenet"])
def test_every_layer_has_a_box_and_every_group_a_frame(spec):
    boxes, frames = drawn_ids(spec)
    analysis = analyze(spec)
    leaves = {r.layer_id for r in analysis.all_rows if not spec.layer(r.layer_id).is_group}
    groups = {r.layer_id for r in analysis.all_rows if spec.layer(r.layer_id).is_group}
    assert boxes == leaves
    unframed = groups - frames  # only unnamed plain sequences used as branches go without a frame
    for layer_id in unframed:
        layer = spec.layer(layer_id)
        parent = spec.layer(ancestors(spec.layers, layer_id)[-1])
        assert not layer.name and layer.params["mode"] == "sequence" and parent.params["mode"] == "branches"
    assert frames <= groups


def test_branches_sit_side_by_side_from_one_fork_to_the_merge():
    spec = NetworkSpec((3, 32, 32), (inception_block(),))
    drawing = layout(spec, analyze(spec))
    firsts = [drawing.box(branch.layers[0].id) for branch in spec.layers[0].layers]
    assert len({b.y for b in firsts}) == 1, "every branch starts at the fork's height"
    xs = [b.x for b in firsts]
    assert xs == sorted(xs) and len(set(xs)) == 4
    for left, right in zip(firsts, firsts[1:], strict=False):
        assert left.x + left.w < right.x, "branches do not overlap"
    merge = next(b for b in drawing.boxes if b.role == "merge")
    assert merge.label == "concat" and merge.y > max(drawing.box(b.layers[-1].id).y for b in spec.layers[0].layers)
    fork = next(b for b in drawing.boxes if b.role == "fork")
    assert all(b.y > fork.y for b in firsts)
    out = analyze(spec).rows[0].children
    labels = {e.label for e in drawing.edges}
    assert {format_shape(r.shape) for r in out} <= labels, "each branch's arrow into the merge carries its shape"


def test_a_residual_shortcut_goes_around_its_body():
    spec = NetworkSpec((3, 32, 32), (residual_block(16, stride=2), residual_block(16)))
    drawing = layout(spec, analyze(spec))
    projecting, identity = spec.layers
    body = [drawing.box(layer.id) for layer in projecting.layers]
    auto = [b for b in drawing.boxes if b.role == "auto"]
    assert len(auto) == 1 and "1x1 conv" in auto[0].label and auto[0].layer_id == projecting.id
    assert auto[0].x > max(b.x + b.w for b in body), "the projection sits right of the body"
    shortcuts = [e for e in drawing.edges if e.role == "shortcut"]
    assert len(shortcuts) == 3  # fork -> projection -> "+" and the identity's one arrow
    identity_body = [drawing.box(layer.id) for layer in identity.layers]
    arrow = next(e for e in shortcuts if e.points[0][1] < identity_body[0].y and e.points[-1][1] > identity_body[-1].y)
    assert max(x for x, _ in arrow.points) > max(b.x + b.w for b in identity_body)
    pluses = [b for b in drawing.boxes if b.role == "merge" and b.label == "+"]
    assert len(pluses) == 2 and [b.label for b in drawing.boxes if b.role == "activation"] == ["ReLU", "ReLU"]


def test_a_custom_shortcut_draws_its_layers_beside_the_body():
    spec = nested()
    drawing = layout(spec, analyze(spec))
    residual = spec.layers[1]
    short = drawing.box(residual.shortcut[0].id)
    assert short.x > drawing.box(residual.layers[1].id).x + drawing.box(residual.layers[1].id).w
    assert drawing.frame(residual.layers[0].layers[0].id).repeat == 2


def test_arrows_carry_the_shapes_between_layers():
    spec = NetworkSpec((1, 28, 28), (conv(6, 5, 2), LayerSpec("ReLU"), LayerSpec("Flatten")))
    drawing = layout(spec, analyze(spec))
    assert [e.label for e in drawing.edges] == ["1x28x28", "6x28x28", "6x28x28", "4704"]


@pytest.fixture
def graph(window, qtbot):
    window.show_graph(True)
    qtbot.waitUntil(lambda: window.graph_view.layout_ is not None and not window.graph_view._stale)
    return window.graph_view


def scene_items(graph, layer_id):
    """The box or frame drawn for a layer."""
    return [i for i in graph.scene().items() if i.data(ID_KEY) == layer_id and i.data(LOOK_KEY) is not None]


def click(qtbot, graph, box):
    point = QPointF(box.x + box.w / 2, box.y + box.h / 2)
    graph.centerOn(point)
    qtbot.mouseClick(graph.viewport(), Qt.MouseButton.LeftButton, pos=graph.mapFromScene(point))


def test_the_menu_toggles_the_graph_beside_the_stack(window, qtbot):
    assert not window.graph_view.isVisible()  # 1280 wide: the stack keeps the room
    window.actions["graph_view"].trigger()
    assert window.graph_view.isVisible() and window.design_splitter.sizes()[1] > 100
    window.actions["graph_view"].trigger()
    assert not window.graph_view.isVisible()


def test_error_rows_are_red(window, graph, qtbot):
    bad = group("branches", [conv(8), conv(8, 3, 0)], name="cannot merge")
    load(window, NetworkSpec((1, 28, 28), (bad, LayerSpec("Embedding"))))  # Embedding below a layer: an error
    qtbot.waitUntil(lambda: graph.layout_ is not None and len(graph.layout_.frames) == 1)
    broken = window.document.spec.layers[1].id
    assert window.document.analysis.row(broken).error
    (box,) = scene_items(graph, broken)
    assert box.pen().color() == ERROR
    assert [c.brush().color() for c in box.childItems()] == [ERROR]
    fine = scene_items(graph, bad.layers[0].id)[0]
    assert fine.pen().color() != ERROR and fine.childItems()[0].brush().color() != ERROR
    (frame,) = scene_items(graph, bad.id)
    assert frame.pen().color() == ERROR and "Concatenated branches" in frame.toolTip()
    assert bad.id in graph.selected, "selected, and still red"
    window.stack_view.select_ids([broken])
    assert frame.pen().color() == ERROR and box.pen().color() == ERROR


def test_clicking_a_box_selects_the_layer_in_the_stack_and_back(window, graph, qtbot):
    doc = window.document
    second = doc.spec.layers[2].id
    click(qtbot, graph, graph.layout_.box(second))
    assert window.stack_view.current_layer_id() == second
    assert second in graph.selected and scene_items(graph, second)[0].pen().color() == SELECTED

    window.stack_view.select_ids([doc.spec.layers[5].id])
    assert graph.selected >= {doc.spec.layers[5].id} and second not in graph.selected
    assert scene_items(graph, second)[0].pen().color() != SELECTED
    assert scene_items(graph, doc.spec.layers[5].id)[0].pen().color() == SELECTED

    click(qtbot, graph, next(b for b in graph.layout_.boxes if b.role == "input"))
    assert window.stack_view.current_layer_id() == ""


def test_clicking_a_layer_inside_a_group_selects_it_or_its_group(window, graph, qtbot):
    load(window, DesignFile.template("resnet18").spec)
    qtbot.waitUntil(lambda: len(graph.layout_.frames) > 5)
    residual = window.document.spec.layers[2].layers[0]
    inner = residual.layers[3].id
    click(qtbot, graph, graph.layout_.box(inner))
    current = window.stack_view.current_layer_id()
    assert current in [inner, *ancestors(window.document.spec.layers, inner)]
    assert current in graph.selected


def test_edits_redraw_once_per_burst(window, graph, qtbot):
    doc = window.document
    first = doc.spec.layers[0].id
    before = graph.layout_
    doc.edit_param(first, "out_channels", 7)
    doc.edit_param(first, "out_channels", 9)
    assert graph.layout_ is before, "no redraw inside the burst"
    qtbot.waitUntil(lambda: graph.layout_ is not before)
    assert graph.layout_.box(first).label == doc.analysis.row(first).label == "Conv2d 9, k5, p2"
    assert "9x28x28" in {e.label for e in graph.layout_.edges}

    count = len(graph.layout_.boxes)
    doc.add_kind(1, "ReLU")
    qtbot.waitUntil(lambda: len(graph.layout_.boxes) == count + 1)
    doc.delete_layers([first])
    qtbot.waitUntil(lambda: len(graph.layout_.boxes) == count)
    with pytest.raises(KeyError):
        graph.layout_.box(first)
    assert not scene_items(graph, first)


def test_a_hidden_graph_does_not_redraw_until_shown(window, graph, qtbot):
    window.show_graph(False)
    before = graph.layout_
    window.document.edit_param(window.document.spec.layers[0].id, "out_channels", 11)
    qtbot.wait(20)
    assert graph.layout_ is before
    window.show_graph(True)
    qtbot.waitUntil(lambda: graph.layout_ is not before)
    assert graph.layout_.box(window.document.spec.layers[0].id).label.startswith("Conv2d 11")


def test_zoom_keys_and_fit_width(window, graph, qtbot):
    load(window, DesignFile.template("googlenet").spec)
    qtbot.waitUntil(lambda: len(graph.layout_.frames) > 5)
    fitted = graph.zoom()
    assert graph.scene().sceneRect().width() * fitted <= graph.viewport().width()
    graph.setFocus()
    qtbot.keyClick(graph, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert graph.zoom() > fitted
    qtbot.keyClick(graph, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(graph, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert graph.zoom() < fitted
    qtbot.keyClick(graph, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert graph.zoom() == pytest.approx(fitted)


def test_double_clicking_a_group_title_folds_it(window, graph, qtbot):
    load(window, NetworkSpec((3, 32, 32), (residual_block(16), LayerSpec("Flatten"))))
    qtbot.waitUntil(lambda: len(graph.layout_.frames) == 1)
    block = window.document.spec.layers[0]
    frame = graph.layout_.frame(block.id)
    title = next(i for i in graph.scene().items() if i.data(TITLE_KEY) == block.id)
    point = title.sceneBoundingRect().center()
    graph.centerOn(point)
    qtbot.mouseDClick(graph.viewport(), Qt.MouseButton.LeftButton, pos=graph.mapFromScene(point))
    assert graph.layout_.box(block.id).label.startswith("▸") and not graph.layout_.frames
    with pytest.raises(KeyError):
        graph.layout_.box(block.layers[0].id)
    assert frame.title in graph.layout_.box(block.id).label
    graph.toggle_group(block.id)
    assert graph.layout_.frame(block.id) and graph.layout_.box(block.layers[0].id)


def test_a_bare_graph_view_draws_a_document(qtbot):
    doc = DesignDocument(nested())
    view = GraphView(doc)
    qtbot.addWidget(view)
    view.resize(500, 700)
    view.show()
    qtbot.waitUntil(lambda: view.layout_ is not None)
    assert {b.layer_id for b in view.layout_.boxes if b.role == "layer"} == drawn_ids(doc.spec)[0]
