"""How fast the designer window follows an edit in a 100-layer design.

Times, in one process and side by side: a parameter change pushed through the
undo stack exactly as the inspector does (``document.edit_param``) until every
stack row, the inspector and the summary are updated and painted
(``processEvents``), against the bare ``engine.shapes.analyze`` of the same
edit. Two edits: a typical one (a conv's out_channels: three rows change) and
the worst case (the input size: every row's shape changes, nothing cached).
The same on a 100-layer design with nested groups (stages holding residual blocks, and an Inception block
whose branches are groups), every group expanded, plus a structural edit there (a layer added inside a
nested group, then undone: the stack's layout changes and keeps selection and expansion).
Goal: under 50 ms per edit. Run: ``python benchmarks/gui_edit_speed.py``.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from engine.groups import group, inception_block, residual_block
from engine.shapes import analyze, format_shape
from engine.spec import LayerSpec, NetworkSpec

REPEATS = 40
GOAL_MS = 50.0


def hundred_layers() -> NetworkSpec:
    """32 x (Conv 3x3 p1, BatchNorm2d, ReLU), then pooling and a classifier: 100 layers."""
    layers = []
    for _ in range(32):
        layers += [LayerSpec("Conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1}),
                   LayerSpec("BatchNorm2d"), LayerSpec("ReLU")]
    layers += [LayerSpec("MaxPool2d"), LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 64}),
               LayerSpec("Linear", {"out_features": 10})]
    return NetworkSpec((3, 32, 32), tuple(layers))


def nested_hundred_layers() -> NetworkSpec:
    """A stem (3 layers), 4 stages of 3 residual blocks (each 5 layers; 19 layers a stage with its groups), an
    Inception block (18 with its branch groups), pooling and a classifier: 100 layers, groups counted."""
    stem = [LayerSpec("Conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1}), LayerSpec("BatchNorm2d"),
            LayerSpec("ReLU")]
    stages = [group("sequence", [residual_block(16) for _ in range(3)], name=f"stage {i + 1}") for i in range(4)]
    head = [inception_block(4, (4, 8), (2, 4), 4), LayerSpec("AdaptiveAvgPool2d", {"output_size": 1}),
            LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 10})]
    return NetworkSpec((3, 32, 32), tuple(stem + stages + head))


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure(app, window, spec: NetworkSpec, name: str) -> dict[str, tuple[float, float]]:
    """Median times of the edits on ``spec`` (every group expanded): name -> (window updated, analyze only)."""
    from gui.document import DesignFile

    window.load_design(DesignFile(spec, name))
    window.stack_view.expandAll()
    app.processEvents()
    doc, model = window.document, window.stack_view.stack_model
    assert len(doc.spec.all_layers()) == 100
    convs = [layer for layer in doc.spec.all_layers() if layer.kind == "Conv2d"]
    first_conv = convs[len(convs) // 2].id  # deep inside a group when there are groups
    window.stack_view.select_ids([first_conv])
    app.processEvents()

    def shown_last_shape() -> str:
        return model.data(model.index(len(doc.spec.layers), 2))

    def gui_edit(apply, expected_last: str) -> float:
        start = time.perf_counter()
        apply()
        app.processEvents()
        elapsed = time.perf_counter() - start
        assert shown_last_shape() == expected_last and window.summary.values["Output"].text() == expected_last
        return elapsed

    results = {}
    # typical: out_channels of a conv (its row, the BatchNorm and the next conv change)
    gui, bare = [], []
    for i in range(REPEATS):
        value = 17 + i
        gui.append(gui_edit(lambda value=value: doc.edit_param(first_conv, "out_channels", value), "10"))
        spec = doc.spec.with_param(first_conv, "out_channels", value + 1000)
        start = time.perf_counter()
        analyze(spec)
        bare.append(time.perf_counter() - start)
    results["conv out_channels (3 rows change)"] = (median_ms(gui), median_ms(bare))

    # worst case: the input size, so every row's shape changes and no analysis is cached
    gui, bare = [], []
    for i in range(REPEATS):
        size = 40 + i
        expected = format_shape(analyze(doc.spec.with_input_shape((3, size, size))).output_shape)
        gui.append(gui_edit(lambda size=size: doc.edit_input_shape((3, size, size)), expected))
        spec = doc.spec.with_input_shape((3, size + 1000, size + 1000))
        start = time.perf_counter()
        analyze(spec)
        bare.append(time.perf_counter() - start)
    results["input size (all 100 rows change)"] = (median_ms(gui), median_ms(bare))

    # structural: a layer added next to the selected conv (in its group when nested), then undone
    gui, bare = [], []
    place = doc.spec.place(first_conv)
    for _ in range(REPEATS // 2):
        gui.append(gui_edit(lambda: doc.add_kind(place._replace(index=place.index + 1), "Identity"), "10"))
        gui.append(gui_edit(doc.undo_stack.undo, "10"))
        spec = doc.spec.inserted_at(place, LayerSpec("Identity"))
        start = time.perf_counter()
        analyze(spec)
        bare.append(time.perf_counter() - start)
    results["add a layer / undo (layout changes)"] = (median_ms(gui), median_ms(bare))
    assert window.stack_view.selected_ids() == [first_conv]
    doc.undo_stack.setClean()
    return results


def main() -> None:
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    app = QApplication.instance() or QApplication([])
    from gui.app import configure_application
    from gui.main_window import MainWindow

    configure_application(app)
    window = MainWindow(open_initial=False)
    window.resize(1920, 1080)
    window.show()
    worst = 0.0
    for title, spec in (("100-layer design, flat", hundred_layers()),
                        ("100-layer design with nested groups, all expanded", nested_hundred_layers())):
        results = measure(app, window, spec, "bench")
        print(f"{title}: median of {REPEATS} edits through the undo stack, window 1920x1080 offscreen")
        print(f"{'edit':36s} {'window updated':>15s} {'analyze only':>13s} {'ratio':>7s}")
        for name, (gui_ms, bare_ms) in results.items():
            print(f"{name:36s} {gui_ms:12.2f} ms {bare_ms:10.2f} ms {gui_ms / bare_ms:6.1f}x")
        print()
        worst = max([worst] + [gui_ms for gui_ms, _ in results.values()])
    print(f"goal: under {GOAL_MS:.0f} ms per edit -> {'met' if worst < GOAL_MS else 'NOT met'} (worst {worst:.2f} ms)")
    window.close()


if __name__ == "__main__":
    main()
