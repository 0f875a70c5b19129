"""How long the graph view takes to follow an edit, against the analysis it draws.

Times, in one process and side by side, on a 100-layer design with nested groups (ResNet-style stages of
residual blocks, an Inception-style branches group, repeated sequences): ``engine.shapes.analyze`` of the
design, the layout alone (gui/graph_layout.py) and a full redraw of the view (layout + scene). Goal: a full
redraw well under 50 ms. Run: ``python benchmarks/graph_view_speed.py``.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication  # noqa: E402

import engine  # noqa: F401, E402 - before torch (OpenMP wait policy)
from engine.groups import group, inception_block, residual_block  # noqa: E402
from engine.shapes import analyze, clear_cache  # noqa: E402
from engine.spec import LayerSpec, NetworkSpec  # noqa: E402

REPEATS = 30
GOAL_MS = 50.0


def nested_design() -> NetworkSpec:
    """Stem, four stages of three residual blocks, an Inception block, a repeated sequence, a classifier."""
    layers = [LayerSpec("Conv2d", {"out_channels": 32, "kernel_size": 3, "padding": 1}), LayerSpec("BatchNorm2d"),
              LayerSpec("ReLU")]
    for stage, width in enumerate((32, 64, 128, 256)):
        blocks = [residual_block(width, stride=1 if stage == 0 or i else 2) for i in range(3)]
        layers.append(group("sequence", blocks, name=f"stage {stage + 1}"))
    layers.append(inception_block())
    layers.append(group("sequence", [LayerSpec("Conv2d", {"out_channels": 256, "kernel_size": 1}),
                                     LayerSpec("ReLU")], name="mix", repeat=2))
    layers += [LayerSpec("AdaptiveAvgPool2d"), LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 10})]
    return NetworkSpec((3, 32, 32), tuple(layers))


def median_ms(run) -> float:
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    app = QApplication.instance() or QApplication([])
    from gui.document import DesignDocument
    from gui.graph_layout import layout
    from gui.graph_view import GraphView

    spec = nested_design()
    doc = DesignDocument(spec)
    view = GraphView(doc)
    view.resize(600, 900)
    view.show()
    app.processEvents()
    count = len(doc.analysis.all_rows)

    def cold_analyze():
        clear_cache()
        analyze(spec)

    results = {
        "analyze (cold cache)": median_ms(cold_analyze),
        "analyze (cached, as after an edit)": median_ms(lambda: analyze(spec)),
        "layout only": median_ms(lambda: layout(doc.spec, doc.analysis, (), view.metrics)),
        "full redraw (layout + scene)": median_ms(view.refresh),
    }
    print(f"{count} rows ({len(view.layout_.boxes)} boxes, {len(view.layout_.frames)} frames), median of {REPEATS}")
    base = results["analyze (cold cache)"]
    for name, ms in results.items():
        print(f"{name:36s} {ms:8.2f} ms {ms / base:6.1f}x analyze")
    redraw = results["full redraw (layout + scene)"]
    print(f"goal: full redraw under {GOAL_MS:.0f} ms -> {'met' if redraw < GOAL_MS else 'NOT met'} ({redraw:.2f} ms)")
    view.close()


if __name__ == "__main__":
    main()
