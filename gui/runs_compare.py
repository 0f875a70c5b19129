"""What the Runs tab shows of the selected runs: their curves overlaid, one run's summary, and a side-by-side
comparison of several runs' designs (engine.design_diff) and settings.

The texts are rich text built from RunRecords (engine.history), so they are tested as text; the curves are one
pyqtgraph item per run and measure, made when the selection changes (the curves of finished runs never move).
"""
from __future__ import annotations

import html
import json
import math

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QVBoxLayout, QWidget

from engine.design_diff import diff_designs, diff_settings
from engine.errors import LayerStudioError, SpecError
from engine.layers import KINDS
from engine.shapes import format_count
from engine.spec import NetworkSpec
from engine.text import MISSING, duration_text, percent_text
from gui.runs_model import epochs_text, reason_text, started_text

RUN_COLORS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
              (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))  # one per compared run, in order
MAX_COMPARED = len(RUN_COLORS)  # runs overlaid and compared at once (the first ones of a larger selection)
COMPARED_FACTS = ("Data", "Epochs", "Best val acc", "Test acc", "Duration", "Reason", "Parameters")
INTEGER_EPOCHS = 12  # up to this many epochs the epoch axis ticks at every whole epoch
MEASURES = {"loss": ("val_loss", "train_loss"), "accuracy": ("val_acc", "train_acc")}  # solid, then dashed


def run_label(record) -> str:
    return f"#{record.summary.id} {record.summary.name}"


def run_color(position: int) -> QColor:
    return QColor(*RUN_COLORS[position % len(RUN_COLORS)])


class RunCurves(QWidget):
    """Loss and accuracy per epoch of the selected runs: one colour per run, validation solid, training dashed."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        palette = self.palette()
        background, foreground = palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(background)
        self.graphics.setToolTip("Solid: validation · dashed: training · mouse wheel: zoom · drag: pan")
        self.plots = {"loss": self.graphics.addPlot(row=0, col=0, title="Loss"),
                      "accuracy": self.graphics.addPlot(row=0, col=1, title="Accuracy")}
        self.plots["accuracy"].setLabel("left", "%")
        translucent = QColor(background.red(), background.green(), background.blue(), 210)
        for measure, plot in self.plots.items():  # legends where the curves usually are not: a loss falls
            plot.setLabel("bottom", "epoch")
            plot.setTitle(plot.titleLabel.text, color=foreground)
            plot.addLegend(offset=(-8, 8) if measure == "loss" else (-8, -8), labelTextColor=foreground,
                           labelTextSize="8pt", brush=translucent, verSpacing=-4)
        self.items: dict[int, list[pg.PlotDataItem]] = {}  # run id -> its curves (tests read them)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)

    def clear(self) -> None:
        for plot in self.plots.values():
            plot.clear()  # also empties its legend
        self.items = {}

    def show_runs(self, records: list) -> None:
        """Overlay the curves of ``records`` (RunRecords), in their order's colours."""
        self.clear()
        for position, record in enumerate(records[:MAX_COMPARED]):
            color = run_color(position)
            items = self.items.setdefault(record.summary.id, [])
            for measure, keys in MEASURES.items():
                scale = 100.0 if measure == "accuracy" else 1.0
                for key in keys:
                    x, y = _series(record.epochs, key, scale)
                    if not x:
                        continue
                    dashed = key.startswith("train")
                    pen = pg.mkPen(color, width=1 if dashed else 2,
                                   style=Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine)
                    name = None if dashed else run_label(record)  # one legend row per run
                    symbol = None if dashed or len(x) > 30 else "o"
                    items.append(self.plots[measure].plot(x, y, pen=pen, name=name, symbol=symbol, symbolSize=5,
                                                          symbolBrush=color, symbolPen=color))
        last = max((row["epoch"] for record in records for row in record.epochs), default=0)
        for plot in self.plots.values():
            axis = plot.getAxis("bottom")
            axis.setTickSpacing(1, 1) if last <= INTEGER_EPOCHS else axis.setTickSpacing()
            plot.enableAutoRange()


def _series(epochs: list[dict], key: str, scale: float) -> tuple[list[float], list[float]]:
    """The (epoch, value) points of one measure; missing and non-finite values left out."""
    points = [(row["epoch"], row[key] * scale) for row in epochs
              if isinstance(row.get(key), int | float) and math.isfinite(row[key])]
    return [float(x) for x, _ in points], [float(y) for _, y in points]


# ---------------------------------------------------------------------------------------------------- texts
def _cell(value) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _signed(n: int | None) -> str:
    if n is None:
        return "?"
    return "0" if n == 0 else ("+" if n > 0 else "−") + format_count(abs(n))


def _table(header: list[str], rows: list[list[str]], escaped: bool = False) -> str:
    def cells(tag: str, values: list[str]) -> str:
        return "".join(f"<{tag}>{v if escaped else html.escape(v)}</{tag}>" for v in values)

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f"<table cellspacing='0' cellpadding='3' border='1'><tr>{cells('th', header)}</tr>{body}</table>"


def summary_rows(record) -> list[tuple[str, str]]:
    """One run's facts as (label, text) pairs."""
    run = record.summary
    result = reason_text(run.reason) + (f": {run.message}" if run.message else "")
    rows = [("Design", run.name), ("Data", run.data), ("Started", started_text(run.started)),
            ("Optimizer", f"{run.optimizer}, learning rate {run.lr:g}"), ("Batch size", str(run.batch_size)),
            ("Epochs", epochs_text(run)), ("Best val acc", percent_text(run.best_val_acc)),
            ("Test acc", percent_text(run.test_acc)),
            ("Test loss", MISSING if run.test_loss is None else f"{run.test_loss:.4f}"),
            ("Duration", duration_text(run.duration_s)), ("Result", result), ("Device", run.device or MISSING),
            ("Parameters", MISSING if run.params is None else f"{run.params:,}"),
            ("Weights", record.weights_path or "not saved"), ("Checkpoint", record.checkpoint_path or "none")]
    return rows


def summary_html(record) -> str:
    """One run: what it was and how it ended."""
    rows = "".join(f"<tr><td><b>{html.escape(label)}</b></td><td>{html.escape(text)}</td></tr>"
                   for label, text in summary_rows(record))
    return f"<h3>Run {html.escape(run_label(record))}</h3><table cellpadding='2'>{rows}</table>"


def settings_of(record) -> dict:
    """A run's settings as compared: its training and data settings."""
    return {"training": record.training, "data": record.data_settings}


def settings_rows(records: list) -> list[list[str]]:
    """The settings that differ between the first run and any other: one row per dotted key, one value per run."""
    reference = settings_of(records[0])
    values: dict[str, list[str]] = {}
    for position, record in enumerate(records[1:], start=1):
        for key, before, after in diff_settings(reference, settings_of(record)):
            row = values.setdefault(key, [_cell(before)] + [None] * (len(records) - 1))
            row[position] = _cell(after)
    for row in values.values():  # a run that does not differ from the first has its value
        row[:] = [row[0] if value is None else value for value in row]
    return [[key, *row] for key, row in sorted(values.items())]


def short_label(kind: str, params: dict) -> str:
    """A layer as the layer stack names it (``Conv2d 8, k3, p1``); its kind when it cannot say more."""
    layer_kind = KINDS.get(kind)
    try:
        return layer_kind.short(params) if layer_kind is not None else kind
    except (LayerStudioError, KeyError, TypeError, ValueError):  # parameters of an older or damaged record
        return kind


def layer_change_text(change) -> str:
    """What changed in one layer: ``out_features 16 → 32``, or its kind for an added or removed layer."""
    before, after = change.before or {}, change.after or {}
    if not before or not after:
        return short_label(change.kind, (after or before).get("params") or {})
    parts = []
    if before.get("kind") != after.get("kind"):
        parts.append(f"{before.get('kind')} → {after.get('kind')}")
    old, new = before.get("params") or {}, after.get("params") or {}
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            parts.append(f"{key} {_cell(old.get(key))} → {_cell(new.get(key))}")
    for key in sorted((set(before) | set(after)) - {"id", "kind", "params", "layers", "shortcut"}):
        if before.get(key) != after.get(key):
            parts.append(f"{key} {_cell(before.get(key))} → {_cell(after.get(key))}")
    return "; ".join(parts) or "inside"


def design_diff_html(reference, record) -> str:
    """The design of ``record`` against the reference run's: layers added, removed and changed, with deltas."""
    title = f"{html.escape(run_label(record))} against {html.escape(run_label(reference))}"
    try:
        diff = diff_designs(NetworkSpec.from_dict(reference.design), NetworkSpec.from_dict(record.design))
    except SpecError as exc:
        return f"<p><b>{title}</b>: the designs cannot be compared ({html.escape(str(exc))}).</p>"
    rows = [[what, f"{change.path} {change.kind} ({change.layer_id})", layer_change_text(change),
             _signed(change.params_delta), _signed(change.macs_delta)]
            for what, changes in (("added", diff.added), ("removed", diff.removed), ("changed", diff.changed))
            for change in changes]
    totals = f"parameters {_signed(diff.params_delta)}, MACs {_signed(diff.macs_delta)}"
    if not rows:
        return f"<p><b>{title}</b>: the same layers ({totals}).</p>"
    table = _table(["", "Layer", "Change", "Δ params", "Δ MACs"], rows)
    differ = "1 layer differs" if len(rows) == 1 else f"{len(rows)} layers differ"
    return f"<p><b>{title}</b>: {differ} ({totals}).</p>{table}"


def comparison_html(records: list) -> str:
    """Several runs side by side: their results and the settings that differ in one table, then each design
    against the first run's."""
    shown = records[:MAX_COMPARED]
    header = ["", *(run_label(record) for record in shown)]
    per_run = [dict(summary_rows(record), Reason=reason_text(record.summary.reason)) for record in shown]
    facts = [[label, *(rows[label] for rows in per_run)] for label in COMPARED_FACTS]
    settings = settings_rows(shown)
    parts = [f"<h3>{len(shown)} runs compared</h3>"]
    if len(records) > len(shown):
        parts.append(f"<p>The first {len(shown)} of the {len(records)} selected runs are compared.</p>")
    parts.append(f"<p>Results, then the settings that differ{'' if settings else ' (none: the same settings)'}:</p>")
    parts.append(_table(header, facts + settings))
    parts.append("<h3>Designs</h3>")
    parts.extend(design_diff_html(shown[0], record) for record in shown[1:])
    return "".join(parts)
