"""The Training tab's Health view: each layer's training health over time as a heat map, one measure at a time,
with the advice the engine's rules gave (engine.training.health_rules) listed under it; and the short health
badge each layer row of the stack shows while a run goes.

Samples arrive at most twice a second (engine.training.health); the view appends them to one numpy buffer and a
timer pushes the buffer into one ImageItem, created once, only when something changed and the view is shown.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QTimer
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from engine.training import HealthSample, LayerHealth

REFRESH_MS = 500  # samples come at most twice a second: the heat map never needs to redraw more often
FIRST_CAPACITY = 256  # samples the buffer holds before it grows (doubling)
NOT_STARTED = "Train to see each layer's health here: gradients, updates, activations, dead and saturated units."
HEALTH_OFF = "Training health is off for this run: turn on Training health under Settings to record it."
NO_PROBLEMS = "No problems seen so far."


@dataclass(frozen=True)
class Measure:
    """One figure of LayerHealth the heat map can show."""

    field: str
    label: str
    log: bool = False  # shown as log10 (norms and ratios span orders of magnitude)
    fraction: bool = False  # 0..1, shown on a fixed 0-100% scale


MEASURES = (
    Measure("grad_norm", "Gradient norm", log=True),
    Measure("update_ratio", "Update / weight ratio", log=True),
    Measure("mean", "Activation mean"),
    Measure("std", "Activation standard deviation"),
    Measure("dead", "Dead units after ReLU", fraction=True),
    Measure("saturated", "Saturated units after Sigmoid/Tanh", fraction=True),
)
FIELDS = tuple(measure.field for measure in MEASURES)


def layer_values(layer: LayerHealth) -> list[float]:
    return [math.nan if (value := getattr(layer, field)) is None else value for field in FIELDS]


class HealthHistory:
    """A run's samples as one (samples x layers x measures) float array, grown by doubling."""

    def __init__(self):
        self.values = np.empty((0, 0, len(FIELDS)))
        self.steps = np.empty(0)
        self.count = 0
        self.layers: tuple[LayerHealth, ...] = ()

    def add(self, sample: HealthSample) -> None:
        if self.count == 0 or len(sample.layers) != self.values.shape[1]:
            self.values = np.full((FIRST_CAPACITY, len(sample.layers), len(FIELDS)), np.nan)
            self.steps = np.zeros(FIRST_CAPACITY)
            self.count = 0
        if self.count == len(self.values):
            self.values = np.concatenate([self.values, np.full_like(self.values, np.nan)])
            self.steps = np.concatenate([self.steps, np.zeros_like(self.steps)])
        self.values[self.count] = [layer_values(layer) for layer in sample.layers]
        self.steps[self.count] = sample.global_step
        self.layers = sample.layers
        self.count += 1

    def rows(self, measure: int) -> list[int]:
        """The layers the measure applies to (it has a value in some sample)."""
        seen = ~np.isnan(self.values[:self.count, :, measure])
        return [int(index) for index in np.flatnonzero(seen.any(axis=0))]


class HealthView(QWidget):
    """Layers-by-time heat map of the chosen measure, and the run's advice."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.history = HealthHistory()
        self.advice: tuple[str, ...] = ()
        self._dirty = False
        palette = self.palette()
        foreground = palette.color(QPalette.Text)
        self.measure_box = QComboBox()
        for measure in MEASURES:
            self.measure_box.addItem(measure.label)
        self.measure_box.setToolTip("The measure the heat map shows, for each layer it applies to")
        self.measure_box.currentIndexChanged.connect(self._measure_changed)
        self.note = QLabel(NOT_STARTED)
        self.note.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.measure_box)
        top.addWidget(self.note, 1)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(palette.color(QPalette.Base))
        self.plot = self.graphics.addPlot()
        self.plot.setLabel("bottom", "step")
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.invertY(True)  # the first layer on top, as in the stack
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).setTextPen(foreground)
        self.image = pg.ImageItem()
        self.plot.addItem(self.image)
        self.color_bar = pg.ColorBarItem(colorMap=pg.colormap.get("viridis"), interactive=False, width=14)
        self.color_bar.setImageItem(self.image, insert_in=self.plot)
        self.color_bar.getAxis("right").setTextPen(foreground)

        self.advice_label = QLabel()
        self.advice_label.setWordWrap(True)
        self.advice_label.setTextInteractionFlags(self.advice_label.textInteractionFlags()
                                                  | pg.QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.advice_label)
        self._show_advice()

        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.flush)
        self.timer.start()

    # ------------------------------------------------------------------ the run
    def begin_run(self, recording: bool) -> None:
        self.history = HealthHistory()
        self.advice = ()
        self.note.setText("Waiting for the first measured batch…" if recording else HEALTH_OFF)
        self.image.clear()
        self._show_advice()

    def add_sample(self, sample: HealthSample) -> None:
        self.history.add(sample)
        self._dirty = True
        if sample.advice != self.advice:
            self.advice = sample.advice
            self._show_advice()

    def flush(self) -> None:
        """Push the buffer to the heat map when it changed and can be seen (the timer's tick)."""
        if self._dirty and self.isVisible():
            self._draw()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.flush()

    def _measure_changed(self) -> None:
        self._dirty = True
        self.flush()

    # ------------------------------------------------------------------ drawing
    def _draw(self) -> None:
        self._dirty = False
        history, measure_index = self.history, self.measure_box.currentIndex()
        measure = MEASURES[measure_index]
        rows = history.rows(measure_index) if history.count else []
        if not rows:
            self.image.clear()
            if history.count:
                self.note.setText(f"No layer of this design has a {measure.label.lower()} to show.")
            return
        values = history.values[:history.count, rows, measure_index]
        if measure.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.log10(np.where(values > 0, values, np.nan))
        finite = values[np.isfinite(values)]
        if measure.fraction:
            levels = (0.0, 1.0)
        elif finite.size:
            low, high = float(finite.min()), float(finite.max())
            levels = (low, high if high > low else low + 1.0)
        else:
            levels = (0.0, 1.0)
        self.image.setImage(values, autoLevels=False)
        self.color_bar.setLevels(levels)
        first, last = float(history.steps[0]), float(history.steps[history.count - 1])
        self.image.setRect(QRectF(first, -0.5, max(last - first, 1.0), len(rows)))
        self.plot.getAxis("left").setTicks([[(i, f"{history.layers[row].index} {history.layers[row].kind}")
                                             for i, row in enumerate(rows)]])
        self.plot.setRange(xRange=(first, first + max(last - first, 1.0)), yRange=(-0.5, len(rows) - 0.5),
                           padding=0)
        scale = "log10 of the value" if measure.log else ("0 to 100%" if measure.fraction else "the value")
        self.note.setText(f"{measure.label} of each layer over the run ({scale}), from {history.count} measured "
                          f"batches up to step {int(last)}.")

    def _show_advice(self) -> None:
        if not self.advice:
            text = NO_PROBLEMS if self.history.count else ""
            self.advice_label.setText(text)
            return
        items = "".join(f"<li>{html.escape(sentence[:1].upper() + sentence[1:])}</li>" for sentence in self.advice)
        self.advice_label.setText(f"<b>Advice</b><ul style='margin-left: 12px; -qt-list-indent: 0'>{items}</ul>")


def badges(sample: HealthSample) -> dict[int, tuple[str, str, bool]]:
    """Each layer's health badge for its row in the stack, by layer index: (short text, tooltip, whether advice
    names the layer). ReLUs show their dead units, Sigmoid/Tanh their saturated ones, layers with weights their
    gradient norm; the rest none."""
    shown = {}
    for layer in sample.layers:
        if layer.dead is not None:
            text = f"dead {100 * layer.dead:.0f}%"
        elif layer.saturated is not None:
            text = f"saturated {100 * layer.saturated:.0f}%"
        elif layer.grad_norm is not None:
            text = f"grad {layer.grad_norm:.1e}"
        else:
            continue
        advice = [sentence for sentence in sample.advice if sentence.startswith(f"{layer.name}:")]
        figures = ", ".join(f"{measure.label.lower()} {value:.3g}" for measure, value
                            in zip(MEASURES, layer_values(layer), strict=True) if not math.isnan(value))
        tooltip = "\n".join([*(a[:1].upper() + a[1:] for a in advice), f"At step {sample.global_step}: {figures}"])
        shown[layer.index] = (f"● {text}", tooltip, bool(advice))
    return shown
