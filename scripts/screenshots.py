"""Render the main window to PNG files (offscreen), for the README and for looking at the layout.

Writes docs/screenshots/designer-lenet-WxH.png (LeNet, one layer selected),
designer-error-WxH.png (a design with an error, the broken layer selected)
at 1280x800 and 1920x1080, plus designer-code, designer-blocks, designer-parameters (a Conv2d's initialisation
and parameter tensors after a one-epoch run on the bundled sample) and designer-cost (the Cost view) at 1280x800,
and designer-graph-resnet18 / designer-graph-googlenet (the graph view beside the stack) at 1440x900.
Settings go to a temporary folder, so the user's own are never touched.
Run: ``python scripts/screenshots.py [output folder]``.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # here, offscreen even when a display is set
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from PySide6.QtCore import QEventLoop  # noqa: E402 - after the offscreen platform is chosen
from PySide6.QtWidgets import QApplication  # noqa: E402

from scripts.shots import ROOT, open_window  # noqa: E402

SIZES = ((1280, 800), (1920, 1080))
GRAPH_SIZE = (1440, 900)


def settle(app: QApplication, rounds: int = 5) -> None:
    for _ in range(rounds):
        app.processEvents()


def main(out: Path) -> list[Path]:
    from engine.layer_init import TensorInit

    app, window, training = open_window(*SIZES[0])
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def settle_inspector() -> None:
        settle(app)
        while window.inspector.parameters_pending:  # the parameter statistics follow a selection after a pause
            app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents, 50)
        settle(app)

    def shoot(name: str, size) -> None:
        window.resize(*size)
        settle_inspector()
        path = out / f"{name}-{size[0]}x{size[1]}.png"
        window.grab().save(str(path))
        written.append(path)

    doc = window.document
    for size in SIZES:
        window.new_from("lenet")
        window.tabs.setCurrentIndex(0)
        window.stack_view.select_ids([doc.spec.layers[3].id])  # the second convolution: formula shown
        shoot("designer-lenet", size)

        window.new_from("lenet")
        doc.edit_param(doc.spec.layers[0].id, "padding", 0)  # 28 -> 24 -> ... -> 4: conv3's kernel 5 no longer fits
        window.stack_view.select_ids([doc.spec.layers[5].id])
        shoot("designer-error", size)

    window.new_from("lenet")
    window.tabs.setCurrentWidget(window.code_view)
    settle(app)
    window.code_view.refresh()
    shoot("designer-code", SIZES[0])

    window.new_from("resnet18")
    window.tabs.setCurrentIndex(0)
    stage = next(layer for layer in doc.spec.layers if layer.name == "b3")  # open a stage and its first block
    window.stack_view.select_ids([stage.layers[0].layers[0].id])  # its first convolution (the groups open)
    window.stack_view.expand(window.stack_view.stack_model.index_of(stage.layers[1].id))
    shoot("designer-blocks", SIZES[0])

    if training is not None:  # after a short run: the inspector's initialisation and trained parameter tensors
        window.new_from("lenet")
        doc.set_extra("training", {**(doc.extras.get("training") or {}), "epochs": 1})
        doc.set_extra("data", {**(doc.extras.get("data") or {}), "limit": 300})
        conv = doc.spec.layers[3].id
        doc.edit_init(conv, "weight", TensorInit("kaiming_normal"))
        training.panel.start_action.trigger()
        while training.controller.busy or training.controller.model is None:
            app.processEvents()
            time.sleep(0.01)
        window.tabs.setCurrentIndex(0)
        window.stack_view.select_ids([conv])
        settle_inspector()
        scroll = window.inspector.pages.currentWidget().verticalScrollBar()
        scroll.setValue(scroll.maximum())
        shoot("designer-parameters", SIZES[0])

    if training is not None and training.cost_view is not None:  # the Cost view on LeNet at batch 64 on the CPU
        cost = training.cost_view
        window.new_from("lenet")
        doc.extras["training"] = {"batch_size": 64, "device": "cpu"}
        window.tabs.setCurrentIndex(0)
        window.palette_dock.hide()  # the stack gets the palette's width for the cost columns
        cost.set_shown(True)
        while cost.measuring:
            app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents, 100)
        window.stack_view.select_ids([doc.spec.layers[3].id])
        shoot("designer-cost", SIZES[0])
        cost.set_shown(False)
        window.palette_dock.show()

    window.palette_dock.hide()  # the stack and the graph share the palette's width
    for name, selected in (("resnet18", (2, 0)), ("googlenet", (2, 0))):  # the graph view beside the stack
        window.new_from(name)
        window.tabs.setCurrentIndex(0)
        window.show_graph(True)
        window.resize(*GRAPH_SIZE)
        settle(app)
        window.graph_view.refresh()
        window.graph_view.fit_width()
        group, index = selected  # a layer inside a group: the stack selects it (or the group it can show)
        window.graph_view.layerClicked.emit(doc.spec.layers[group].layers[index].id)
        settle_inspector()
        graph = window.graph_view  # the selection's frame at the top of the graph
        graph.verticalScrollBar().setValue(int(graph.layout_.frame(doc.spec.layers[group].id).y * graph.zoom()) - 40)
        path = out / f"designer-graph-{name}.png"
        window.grab().save(str(path))
        written.append(path)
    window.palette_dock.show()

    doc.undo_stack.setClean()
    if training is not None:
        training.shutdown()
    window.close()
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    for path in main(target):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
