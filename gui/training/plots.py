"""Live training plots: loss, accuracy (or the regression metric) and learning rate.

Each curve is one ``PlotDataItem`` created once per run; events only append to
numpy buffers and mark the run dirty, and a ~10 Hz timer pushes dirty buffers
with ``setData``. Previous runs of the session stay on the plots, dimmed, with
one legend entry each, so two runs can be compared.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QGraphicsItem, QHBoxLayout, QPushButton, QVBoxLayout, QWidget

REFRESH_MS = 100
EMA_BETA = 0.9  # smoothing of the batch loss (debiased, as TensorBoard does)

CURRENT_COLORS = {
    "batch": (90, 120, 200, 70),
    "ema": (40, 80, 200),
    "train": (230, 120, 20),
    "val": (20, 150, 70),
    "lr": (140, 60, 170),
}


class Series:
    """Growable x/y float buffers; ``x``/``y`` are views of the filled part."""

    def __init__(self, capacity: int = 256):
        self._x = np.empty(capacity)
        self._y = np.empty(capacity)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def x(self) -> np.ndarray:
        return self._x[: self._n]

    @property
    def y(self) -> np.ndarray:
        return self._y[: self._n]

    def extend(self, xs, ys) -> None:
        xs = np.asarray(xs, dtype=float)
        ys = np.asarray(ys, dtype=float)
        needed = self._n + len(xs)
        if needed > len(self._x):
            capacity = max(needed, 2 * len(self._x))
            self._x = np.resize(self._x, capacity)
            self._y = np.resize(self._y, capacity)
        self._x[self._n:needed] = xs
        self._y[self._n:needed] = ys
        self._n = needed


def _finite_or_nan(value) -> float:
    return float("nan") if value is None else float(value)


class RunData:
    """One run's numbers, fed by engine events: numpy buffers per curve plus the EMA state."""

    SERIES = ("batch", "ema", "train_loss", "val_loss", "train_metric", "val_metric", "lr")

    def __init__(self, number: int, label: str, task: str):
        self.number = number
        self.label = label
        self.task = task
        self.series = {name: Series() for name in self.SERIES}
        self.changed: set[str] = set()  # series with new points since the last push to the live curves
        self.archive: dict[str, pg.PlotDataItem] | None = None  # its dimmed curves, once it is a previous run
        self._ema = 0.0
        self._ema_count = 0

    def add_history(self, history: dict, steps_per_epoch: int) -> None:
        """Seed the per-epoch curves from a checkpoint's history (a resumed run)."""
        count = len(history.get("train_loss", []))
        epochs = np.arange(1, count + 1)
        for key in ("train_loss", "val_loss"):
            values = [_finite_or_nan(v) for v in history.get(key, [])][:count]
            self.series[key].extend(epochs[: len(values)], values)
        for key, name in (("train_acc", "train_metric"), ("val_acc", "val_metric")):
            values = [_finite_or_nan(v) for v in history.get(key, [])][:count]
            self.series[name].extend(epochs[: len(values)], self._metric_values(values, history, key))
        lrs = [_finite_or_nan(v) for v in history.get("lr", [])][:count]
        self.series["lr"].extend(epochs[: len(lrs)] * max(steps_per_epoch, 1), lrs)
        self.changed.update(self.SERIES)

    def _metric_values(self, values, history, key):
        if self.task == "classification":
            return [100.0 * v for v in values]
        loss_key = "val_loss" if key.startswith("val") else "train_loss"
        return [_finite_or_nan(v) for v in history.get(loss_key, [])][: len(values)]

    def add_batch(self, event) -> None:
        losses = [_finite_or_nan(v) for v in event.losses]
        if not losses:
            return
        per_epoch = max(event.steps_per_epoch, 1)
        steps = np.arange(event.global_step - len(losses) + 1, event.global_step + 1)
        self.series["batch"].extend(steps / per_epoch, losses)
        ema_values = []
        for loss in losses:
            if math.isfinite(loss):
                self._ema = EMA_BETA * self._ema + (1 - EMA_BETA) * loss
                self._ema_count += 1
            ema_values.append(self._ema / (1 - EMA_BETA ** self._ema_count) if self._ema_count else float("nan"))
        self.series["ema"].extend(steps / per_epoch, ema_values)
        lr = self.series["lr"]
        if not len(lr) or lr.y[-1] != event.lr:  # a constant rate need not redraw its plot at every refresh
            self.changed.add("lr")
        lr.extend([event.global_step], [event.lr])
        self.changed.update(("batch", "ema"))

    def add_epoch(self, event) -> None:
        x = [event.epoch]
        self.series["train_loss"].extend(x, [_finite_or_nan(event.train_loss)])
        self.series["val_loss"].extend(x, [_finite_or_nan(event.val_loss)])
        if self.task == "classification":
            train = None if event.train_acc is None else 100.0 * event.train_acc
            val = None if event.val_acc is None else 100.0 * event.val_acc
        else:
            train, val = event.train_loss, event.val_loss
        self.series["train_metric"].extend(x, [_finite_or_nan(train)])
        self.series["val_metric"].extend(x, [_finite_or_nan(val)])
        self.changed.update(("train_loss", "val_loss", "train_metric", "val_metric", "lr"))

    @property
    def dirty(self) -> bool:
        return bool(self.changed)

    def point_counts(self) -> dict[str, int]:
        return {name: len(series) for name, series in self.series.items()}


class TrainingPlots(QWidget):
    """Three linked-in-time plots with a Clear button for previous runs."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.runs: list[RunData] = []
        self.running = False
        palette = self.palette()
        background = palette.color(QPalette.Base)
        foreground = palette.color(QPalette.Text)
        self._foreground = foreground
        self._grid_color = QColor(background).darker(112)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(background)
        self.loss_plot = self._make_plot("Loss", "epoch", foreground, row=0, col=0, colspan=2)
        self.metric_plot = self._make_plot("Accuracy", "epoch", foreground, row=1, col=0)
        self.lr_plot = self._make_plot("Learning rate", "step", foreground, row=1, col=1)
        self.metric_plot.setLabel("left", "%")
        self.graphics.ci.layout.setRowStretchFactor(0, 3)
        self.graphics.ci.layout.setRowStretchFactor(1, 2)
        # Compact legends in the corners the curves usually leave free (a falling loss, a rising accuracy);
        # they can be dragged elsewhere. The learning-rate plot's title says it all.
        translucent = QColor(background.red(), background.green(), background.blue(), 210)
        self.loss_legend = self.loss_plot.addLegend(offset=(-8, 8), labelTextColor=foreground, colCount=2,
                                                    labelTextSize="8pt", brush=translucent, verSpacing=-4)
        self.metric_legend = self.metric_plot.addLegend(offset=(-8, -8), labelTextColor=foreground,
                                                        labelTextSize="8pt", brush=translucent, verSpacing=-4)
        self.legends = (self.loss_legend, self.metric_legend)
        for legend in self.legends:  # repainted from a pixmap when the curves under it change
            legend.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

        self.clear_button = QPushButton("Clear previous runs")
        self.clear_button.setToolTip("Remove the dimmed curves of earlier runs from the plots")
        self.clear_button.clicked.connect(self.clear)
        self.auto_button = QPushButton("Auto-range")
        self.auto_button.setToolTip("Fit every plot to its data again after zooming (mouse wheel) or panning (drag)")
        self.auto_button.clicked.connect(self.auto_range)
        self.graphics.setToolTip("Mouse wheel: zoom · drag: pan · right-click: plot options · Auto-range: fit again")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.auto_button)
        buttons.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics, 1)
        layout.addLayout(buttons)

        self.live = self._make_live_curves()
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.flush)
        self._update_clear_button()

    def _make_live_curves(self) -> dict[str, pg.PlotDataItem]:
        """The current run's curves, created once for the widget's life (each run only sets their data)."""
        def epoch_curve(plot: pg.PlotItem, color: str, name: str) -> pg.PlotDataItem:
            rgb = CURRENT_COLORS[color]
            return plot.plot(pen=pg.mkPen(rgb, width=2), symbol="o", symbolSize=6, symbolBrush=rgb,
                             symbolPen=None, name=name)

        return {
            "batch": self.loss_plot.plot(pen=pg.mkPen(CURRENT_COLORS["batch"], width=1), name="batch"),
            "ema": self.loss_plot.plot(pen=pg.mkPen(CURRENT_COLORS["ema"], width=2), name="smoothed"),
            "train_loss": epoch_curve(self.loss_plot, "train", "train"),
            "val_loss": epoch_curve(self.loss_plot, "val", "validation"),
            "train_metric": epoch_curve(self.metric_plot, "train", "train"),
            "val_metric": epoch_curve(self.metric_plot, "val", "validation"),
            # filled down to 0, so a constant learning rate still gets a readable axis that starts at 0
            "lr": self.lr_plot.plot(pen=pg.mkPen(CURRENT_COLORS["lr"], width=2), fillLevel=0.0,
                                    brush=(*CURRENT_COLORS["lr"], 40)),
        }

    def _make_archive(self, run: RunData) -> dict[str, pg.PlotDataItem]:
        """Dimmed copies of a finished run's curves (no batch loss), hidden until the next run starts.

        Made when the run ends, while the UI is idle, so starting the next run costs almost nothing.
        """
        color = pg.intColor(run.number - 1, hues=8, alpha=150)
        archive = {}
        for name, series in run.series.items():
            if name == "batch":
                continue
            pen = pg.mkPen(color, width=1.5, style=Qt.DashLine if "train" in name else Qt.SolidLine)
            symbol = {"symbol": "o", "symbolSize": 4, "symbolBrush": color, "symbolPen": None} \
                if name in ("train_loss", "val_loss", "train_metric", "val_metric") else {}
            item = pg.PlotDataItem(series.x.copy(), series.y.copy(), pen=pen, **symbol)
            item.setVisible(False)
            self.plot_of(name).addItem(item)
            archive[name] = item
        return archive

    def _make_plot(self, title: str, x_label: str, foreground: QColor, **position) -> pg.PlotItem:
        plot = self.graphics.addPlot(**position)
        plot.setTitle(title, color=foreground.name())
        plot.setLabel("bottom", x_label)
        # An opaque grid on major ticks only: a translucent grid on every tick level made each repaint
        # ~5x slower (software rendering), which the UI thread pays at every refresh during a run.
        plot.showGrid(x=True, y=True, alpha=1.0)
        plot.setClipToView(True)
        plot.setDownsampling(auto=True, mode="peak")
        for axis in ("left", "bottom"):
            item = plot.getAxis(axis)
            item.setPen(self._grid_color)
            item.setTextPen(foreground)
            item.setStyle(maxTickLevel=0)
        return plot

    def plot_of(self, series_name: str) -> pg.PlotItem:
        if series_name == "lr":
            return self.lr_plot
        return self.metric_plot if "metric" in series_name else self.loss_plot

    @property
    def current(self) -> RunData | None:
        return self.runs[-1] if self.runs else None

    def begin_run(self, label: str, task: str, history: dict | None = None, steps_per_epoch: int = 1,
                  epochs: int = 0) -> RunData:
        """Dim the previous run and start fresh curves; ``history`` seeds a resumed run's epochs.

        With ``epochs`` the x axes span the whole run from the start, so they do not re-scale (and
        re-render their ticks) at every refresh; the y axes keep auto-ranging.
        """
        previous = self.current
        if previous is not None:
            if previous.archive is None:
                previous.archive = self._make_archive(previous)
            for item in previous.archive.values():
                item.setVisible(True)
            self.loss_legend.addItem(previous.archive["ema"], f"run {previous.number}: {previous.label}")
            self.metric_legend.addItem(previous.archive["val_metric"], f"run {previous.number}")  # a narrow plot
        run = RunData(previous.number + 1 if previous else 1, label, task)
        self.runs.append(run)
        classification = task == "classification"
        self.metric_plot.setTitle("Accuracy" if classification else "Loss per epoch (regression metric)",
                                  color=self._foreground.name())
        self.metric_plot.setLabel("left", "%" if classification else "loss")
        if history:
            run.add_history(history, steps_per_epoch)
        run.changed.update(RunData.SERIES)  # clears the live curves of the previous run's data
        if epochs:
            self._fit_x_to_run(epochs, start_epoch=0, steps_per_epoch=steps_per_epoch)
        self.running = True
        self.timer.start()
        self._update_clear_button()
        return run

    def continue_run(self, epochs: int = 0, steps_per_epoch: int = 1) -> RunData | None:
        """Keep feeding the current run's curves (resuming the run shown), its x axes widened to ``epochs``."""
        run = self.current
        if epochs:
            self._fit_x_to_run(epochs, start_epoch=0, steps_per_epoch=steps_per_epoch)
        if run is not None and run.archive is not None:
            self._remove_archive(run)
        self.running = run is not None
        if self.running:
            self.timer.start()
        return run

    def add_batch(self, event) -> None:
        if self.current is not None:
            self.current.add_batch(event)

    def add_epoch(self, event) -> None:
        if self.current is not None:
            self.current.add_epoch(event)

    def end_run(self) -> None:
        self.running = False
        self.timer.stop()
        self.flush()
        if self.current is not None and self.current.archive is None:
            self.current.archive = self._make_archive(self.current)
        self._update_clear_button()

    def flush(self) -> None:
        """Push the current run's buffers to the live curves, if anything changed since the last push."""
        run = self.current
        if run is None or not run.dirty:
            return
        for name in run.changed:
            series = run.series[name]
            self.live[name].setData(series.x, series.y)
        run.changed.clear()

    def _fit_x_to_run(self, epochs: int, start_epoch: int, steps_per_epoch: int) -> None:
        for plot, low, high in ((self.loss_plot, 0, epochs), (self.metric_plot, max(start_epoch, 1) - 0.1, epochs),
                                (self.lr_plot, 0, epochs * max(steps_per_epoch, 1))):
            plot.setXRange(low, high, padding=0.02)
            plot.enableAutoRange(axis="y")

    def _remove_archive(self, run: RunData) -> None:
        for name, item in (run.archive or {}).items():
            self.plot_of(name).removeItem(item)  # also takes it out of the legend
        run.archive = None

    def clear(self) -> None:
        """Remove previous runs (and the last one too when nothing is running)."""
        keep = [self.current] if self.running and self.current else []
        for run in self.runs:
            if run not in keep:
                self._remove_archive(run)
        self.runs = keep
        if not keep:
            for item in self.live.values():
                item.setData([], [])
        self._update_clear_button()

    def auto_range(self) -> None:
        for plot in (self.loss_plot, self.metric_plot, self.lr_plot):
            plot.enableAutoRange()

    def _update_clear_button(self) -> None:
        removable = len(self.runs) - (1 if self.running else 0)
        self.clear_button.setEnabled(removable > 0)
