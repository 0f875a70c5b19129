"""Live training plots: loss, accuracy (or the regression metric) and learning rate.

Each curve is one ``PlotDataItem`` created once per run; events only append to
numpy buffers (gui/training/plot_data.py) and mark the run dirty, and a timer pushes
dirty buffers with ``setData``. The timer paces itself: at most 10 refreshes a second, fewer when a
refresh (pushing data and repainting) would take more than 0.5% of the CPU time the
process uses, so a large window, a slow or a busy machine does not slow training; while the plots
cannot be seen (another tab is in front) nothing is pushed, and showing them catches up. Previous runs
of the session stay on the plots, thin, grey-toned and under the current run,
each named by what differs from the run before it; the y axes follow the current
run only, so a diverged earlier run does not flatten them.
"""
from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QGraphicsItem, QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from gui.training.plot_data import RunData, peak_decimated
from gui.training.run_names import run_name

REFRESH_MS = 100  # the fastest refresh of the live curves
SLOWEST_REFRESH_MS = 1000
PLOT_CPU_BUDGET = 0.005  # share of the process's CPU time (of one core at most) the live plots may take in a run
# (0.5%: a refresh costs ~3-5 ms of the UI thread, so about one refresh a second while a run keeps a core busy;
# the curves stay live, and the window as a whole stays within 5% of the run's CPU time)
LEAST_BUSY_CORES = 0.1  # a paused run uses next to no CPU: refreshes then slow down to the slowest, not beyond
Y_MARGIN = 0.1  # the y range leaves this share of the data's span free above and below it
Y_FILL = 0.5  # ... and is kept while the current run's curves fill at least this share of it
LEGEND_Z = 1000  # legends draw above every curve
EPOCH_MARKER_PX = 6

CURRENT_COLORS = {
    "batch": (90, 120, 200, 70),
    "ema": (40, 80, 200),
    "train": (230, 120, 20),
    "val": (20, 150, 70),
    "lr": (140, 60, 170),
}


def refresh_interval_ms(cost_s: float, busy_cores: float = 1.0) -> int:
    """The pause after a refresh that took ``cost_s`` CPU seconds, so refreshes stay within the budget.

    ``busy_cores`` is the CPU time the process used per second lately (training, UI, all threads):
    the plots take PLOT_CPU_BUDGET of it, so on a loaded machine, where the training gets less, they
    refresh less too; counted as one core at most, so many training threads never buy the UI thread
    a busier second.
    """
    budget = PLOT_CPU_BUDGET * min(max(busy_cores, LEAST_BUSY_CORES), 1.0)
    return int(min(max(1000.0 * cost_s / budget, REFRESH_MS), SLOWEST_REFRESH_MS))


def earlier_run_color(number: int) -> QColor:
    """Grey with a faint tint per run: dimmed beside the current run's colours, yet told apart in a legend."""
    return QColor.fromHsvF(((number - 1) * 0.38) % 1.0, 0.22, 0.62, 0.85)


class PlotCanvas(pg.GraphicsLayoutWidget):
    """The plots' canvas; adds up the CPU time its repaints take, which paces the refresh."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.paint_cpu_s = 0.0

    def paintEvent(self, event) -> None:
        started = time.thread_time()
        try:
            super().paintEvent(event)
        finally:
            self.paint_cpu_s += time.thread_time() - started


class TrainingPlots(QWidget):
    """Three linked-in-time plots with Auto-range, Log scale and Clear buttons."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.runs: list[RunData] = []
        self.running = False
        palette = self.palette()
        background = palette.color(QPalette.Base)
        foreground = palette.color(QPalette.Text)
        self._foreground = foreground
        self._grid_color = QColor(background).darker(112)
        self._x_span = None  # (epochs, steps_per_epoch) the x axes were fitted to
        self.following: dict[pg.PlotItem, bool] = {}  # plots whose y range follows the current run
        self.graphics = PlotCanvas()
        self.graphics.setBackground(background)
        self.loss_plot = self._make_plot(self.graphics.ci, "Loss", "epoch", foreground, row=0, col=0)
        # The bottom row in a layout of its own: in one grid with the loss plot above them, each new run's title
        # (its width) re-divided the columns, so the two plots below resized and re-rendered at every run's start.
        bottom = self.graphics.addLayout(row=1, col=0)
        bottom.setContentsMargins(0, 0, 0, 0)
        self.metric_plot = self._make_plot(bottom, "Accuracy", "epoch", foreground, row=0, col=0)
        self.lr_plot = self._make_plot(bottom, "Learning rate", "step", foreground, row=0, col=1)
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
            legend.setZValue(LEGEND_Z)  # above every curve, earlier runs' included

        self.clear_button = QPushButton("Clear previous runs")
        self.clear_button.setToolTip("Remove the dimmed curves of earlier runs from the plots")
        self.clear_button.clicked.connect(self.clear)
        self.auto_button = QPushButton("Auto-range")
        self.auto_button.setToolTip("Fit every plot to the current run again after zooming (mouse wheel) or "
                                    "panning (drag)")
        self.auto_button.clicked.connect(self.auto_range)
        self.log_button = QPushButton("Log scale")
        self.log_button.setCheckable(True)
        self.log_button.setToolTip("Show losses on a logarithmic axis: a loss falling by orders of magnitude, "
                                   "or a run that diverged, stays readable")
        self.log_button.toggled.connect(self.set_log_scale)
        self.graphics.setToolTip("Mouse wheel: zoom · drag: pan · right-click: plot options · Auto-range: fit again")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.log_button)
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
        self.refresh_cost_s = 0.0  # CPU time of the previous refresh (pushing data and repainting)
        self._painted_s = 0.0  # self.graphics.paint_cpu_s at the previous refresh
        self._push_cpu_s = 0.0  # CPU time of the previous refresh's push
        self._clocks = (0.0, 0.0)  # (time.monotonic(), time.process_time()) at the previous refresh
        self._update_clear_button()

    def _make_live_curves(self) -> dict[str, pg.PlotDataItem]:
        """The current run's curves, created once for the widget's life (each run only sets their data).

        An epoch curve's markers are a ScatterPlotItem of their own (``self.markers``) that only ever gains the new
        epochs' points: as a PlotDataItem symbol they were all rebuilt at every push and every change of the y
        range, half of what a refresh cost. The legend shows a sample with line and marker.
        """
        def epoch_curve(plot: pg.PlotItem, color: str, name: str, key: str) -> pg.PlotDataItem:
            rgb = CURRENT_COLORS[color]
            line = plot.plot(pen=pg.mkPen(rgb, width=2))
            self.markers[key] = pg.ScatterPlotItem(size=EPOCH_MARKER_PX, brush=pg.mkBrush(rgb), pen=None)
            plot.getViewBox().addItem(self.markers[key], ignoreBounds=True)
            # never shown in a plot; a point of data, so its marker style reaches the scatter the legend draws
            sample = pg.PlotDataItem([0.0], [0.0], pen=pg.mkPen(rgb, width=2), symbol="o",
                                     symbolSize=EPOCH_MARKER_PX, symbolBrush=rgb, symbolPen=None)
            plot.legend.addItem(sample, name)
            return line

        self.markers: dict[str, pg.ScatterPlotItem] = {}
        self._marked: dict[str, int] = {}  # points of each epoch series the markers hold

        return {
            "batch": self.loss_plot.plot(pen=pg.mkPen(CURRENT_COLORS["batch"], width=1), name="batch"),
            "ema": self.loss_plot.plot(pen=pg.mkPen(CURRENT_COLORS["ema"], width=2), name="smoothed"),
            "train_loss": epoch_curve(self.loss_plot, "train", "train", "train_loss"),
            "val_loss": epoch_curve(self.loss_plot, "val", "validation", "val_loss"),
            "train_metric": epoch_curve(self.metric_plot, "train", "train", "train_metric"),
            "val_metric": epoch_curve(self.metric_plot, "val", "validation", "val_metric"),
            # filled down to 0, so a constant learning rate still gets a readable axis that starts at 0
            "lr": self.lr_plot.plot(pen=pg.mkPen(CURRENT_COLORS["lr"], width=2)),
        }

    def _make_archive(self, run: RunData) -> dict[str, pg.PlotCurveItem]:
        """Dimmed copies of a finished run's curves (no batch loss), hidden until the next run starts.

        Thin and grey-toned, drawn under the current run's curves, and left out of the auto-range:
        the axes follow the current run, so an earlier run that diverged does not flatten them.
        Bare curves (no epoch markers: each marker layer costs every repaint more than all the lines
        together), decimated once (``peak_decimated``) since they never change: a PlotDataItem, which
        clips and downsamples at each repaint, cost 4-5x more to make (~10 ms of UI thread per run).
        They go straight into the view box: PlotItem.addItem also rebuilds its menu's list of every
        curve, a cost that grew with each run kept.
        """
        color = earlier_run_color(run.number)
        archive = {}
        for name in run.series:
            if name == "batch":
                continue
            item = pg.PlotCurveItem(pen=pg.mkPen(color, width=1, style=Qt.DashLine if "train" in name else
                                                 Qt.SolidLine), connect="finite")
            item.setZValue(-1)  # under the live curves (z 0)
            item.setVisible(False)
            self.plot_of(name).getViewBox().addItem(item, ignoreBounds=True)
            archive[name] = item
            self._show_archived(run, name, item)
        return archive

    def _show_archived(self, run: RunData, name: str, item: pg.PlotCurveItem) -> None:
        """Give an earlier run's curve its data, in the units its plot shows now (log10 on a log scale)."""
        x, y = peak_decimated(run.series[name].x, run.series[name].y)
        item.setData(x, self._shown_y(name, y))

    def _shown_y(self, name: str, y: np.ndarray) -> np.ndarray:
        """``y`` as the view box of ``name``'s plot holds it: log10 on a log scale (values <= 0 left out)."""
        if not self.plot_of(name).ctrl.logYCheck.isChecked():
            return y
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(y > 0, np.log10(y), np.nan)

    def _make_plot(self, layout: pg.GraphicsLayout, title: str, x_label: str, foreground: QColor,
                   **position) -> pg.PlotItem:
        plot = layout.addPlot(**position)
        plot.setTitle(title, color=foreground.name())
        plot.setLabel("bottom", x_label)
        # An opaque grid on major ticks only: a translucent grid on every tick level made each repaint
        # ~5x slower (software rendering), which the UI thread pays at every refresh during a run.
        plot.showGrid(x=True, y=True, alpha=1.0)
        plot.setClipToView(True)
        plot.setDownsampling(auto=True, mode="peak")
        # Axes that only ever widen, without SI prefixes: otherwise a new tick label ("2" -> "1.5") resized
        # the axis, re-laid out the whole canvas and repainted it two or three times per refresh.
        for axis in ("left", "bottom"):
            item = plot.getAxis(axis)
            item.setPen(self._grid_color)
            item.setTextPen(foreground)
            item.setStyle(maxTickLevel=0, autoReduceTextSpace=False)
            item.enableAutoSIPrefix(False)
            # The axes draw the grid: below the view box (z -100) it passes under the curves and the legend
            # instead of striking through them.
            item.setZValue(-1000)
        self.following[plot] = True
        plot.getViewBox().sigRangeChangedManually.connect(lambda _axes, plot=plot: self.following.update({plot: False}))
        return plot

    def plot_of(self, series_name: str) -> pg.PlotItem:
        if series_name == "lr":
            return self.lr_plot
        return self.metric_plot if "metric" in series_name else self.loss_plot

    def loss_plots(self) -> tuple[pg.PlotItem, ...]:
        """The plots that show losses (the log-scale ones): the metric plot too for a regression run."""
        current = self.current
        regression = current is not None and current.task != "classification"
        return (self.loss_plot, self.metric_plot) if regression else (self.loss_plot,)

    @property
    def current(self) -> RunData | None:
        return self.runs[-1] if self.runs else None

    def begin_run(self, label: str, task: str, history: dict | None = None, steps_per_epoch: int = 1,
                  epochs: int = 0, settings: dict | None = None) -> RunData:
        """Dim the previous run and start fresh curves; ``history`` seeds a resumed run's epochs.

        ``settings`` (``run_names.run_settings``) name the run by what differs from the previous
        run when ``label`` is empty. With ``epochs`` the x axes span the whole run from the start, so
        they do not re-scale (and re-render their ticks) at every refresh; the y axes follow the run.
        """
        previous = self.current
        if previous is not None:
            if previous.archive is None:
                previous.archive = self._make_archive(previous)
            for item in previous.archive.values():
                item.setVisible(True)
            self.loss_legend.addItem(previous.archive["ema"], f"run {previous.number}: {previous.label}")
            self.metric_legend.addItem(previous.archive["val_metric"], f"run {previous.number}")  # a narrow plot
        if not label and settings is not None:
            label = run_name(settings, previous.settings if previous is not None else None)
        run = RunData(previous.number + 1 if previous else 1, label, task, settings)
        self.runs.append(run)
        classification = task == "classification"
        self.loss_plot.setTitle(f"Loss · run {run.number}: {label}" if label else "Loss",
                                color=self._foreground.name())
        self.metric_plot.setTitle("Accuracy" if classification else "Loss per epoch (regression metric)",
                                  color=self._foreground.name())
        unit = "%" if classification else "loss"
        if self.metric_plot.getAxis("left").labelText != unit:  # setting it again re-renders the axis
            self.metric_plot.setLabel("left", unit)
        self._apply_log_scale()
        if history:
            run.add_history(history, steps_per_epoch)
        self._clear_live()  # the previous run's data leaves the live curves now
        if epochs:
            self._fit_x_to_run(epochs, steps_per_epoch)
        self.running = True
        self._start_refresh()
        self._update_clear_button()
        return run

    def continue_run(self, epochs: int = 0, steps_per_epoch: int = 1) -> RunData | None:
        """Keep feeding the current run's curves (resuming the run shown), its x axes widened to ``epochs``."""
        run = self.current
        if epochs:
            self._fit_x_to_run(epochs, steps_per_epoch)
        if run is not None and run.archive is not None:
            self._remove_archive(run)
        self.running = run is not None
        if self.running:
            self._start_refresh()
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

    def _start_refresh(self) -> None:
        """Look for the run's first points every REFRESH_MS, so they show at once; flush paces the rest."""
        self._painted_s = self.graphics.paint_cpu_s
        self._push_cpu_s = 0.0
        self._clocks = (time.monotonic(), time.process_time())
        self.timer.setInterval(REFRESH_MS)
        self.timer.start()

    def flush(self) -> None:
        """Push the current run's buffers to the live curves, if anything changed since the last push.

        Then pace the timer: the previous refresh took ``c`` CPU seconds (its push and the repaints
        that followed), so the next one comes about ``c / PLOT_CPU_BUDGET`` later
        (``refresh_interval_ms``). After a run's first push, ``c`` is what the plots cost since the run
        began, its first full repaint included: an overestimate, which a second refresh corrects.
        """
        run = self.current
        if run is None or not run.dirty:  # nothing new (events come a few times a second): the pace stays
            return
        if self.window().isVisible() and not self.isVisible():  # another tab is in front: showEvent catches up
            return
        started = time.thread_time()
        for name in run.changed:
            series = run.series[name]
            self.live[name].setData(series.x, series.y)
            if name in self.markers:
                self._mark(name, series)
        for plot in {self.plot_of(name) for name in run.changed}:
            self.follow_y(plot)
        run.changed.clear()
        painted, self._painted_s = self.graphics.paint_cpu_s - self._painted_s, self.graphics.paint_cpu_s
        self.refresh_cost_s = self._push_cpu_s + painted  # the previous refresh, with the repaints it caused
        self._push_cpu_s = time.thread_time() - started
        clocks = (time.monotonic(), time.process_time())
        busy_cores = (clocks[1] - self._clocks[1]) / max(clocks[0] - self._clocks[0], 1e-3)
        self._clocks = clocks
        self.timer.setInterval(refresh_interval_ms(self.refresh_cost_s, busy_cores))

    def _mark(self, name: str, series, again: bool = False) -> None:
        """Give the markers of epoch series ``name`` its points not marked yet (all of them ``again``)."""
        markers = self.markers[name]
        start = 0 if again else self._marked.get(name, 0)
        if start == 0:
            markers.clear()
        x, y = series.x[start:], self._shown_y(name, series.y[start:])
        shown = np.isfinite(x) & np.isfinite(y)
        if shown.any():
            markers.addPoints(x=x[shown], y=y[shown])
        self._marked[name] = len(series)

    def _clear_live(self) -> None:
        for item in self.live.values():
            item.setData([], [])
        for markers in self.markers.values():
            markers.clear()
        self._marked.clear()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.flush()  # what arrived while the plots were hidden

    def _fit_x_to_run(self, epochs: int, steps_per_epoch: int) -> None:
        self._x_span = (epochs, max(steps_per_epoch, 1))
        for plot, low, high in ((self.loss_plot, 0, epochs), (self.metric_plot, 0.9, epochs),
                                (self.lr_plot, 0, epochs * max(steps_per_epoch, 1))):
            plot.setXRange(low, high, padding=0.02)
            self.following[plot] = True
            self.follow_y(plot, refit=True)
            plot.getViewBox().prepareForPaint()  # the new range applied now: one repaint shows it (see follow_y)

    def follow_y(self, plot: pg.PlotItem, refit: bool = False) -> None:
        """Fit the y range to the current run's curves (earlier runs do not count), unless the user zoomed.

        The range is kept while the curves stay inside it and fill at least Y_FILL of it: a new range
        re-renders the axis and re-clips every curve of the plot, the dearest part of a refresh.
        """
        run = self.current
        if not self.following.get(plot) or run is None:
            return
        log = plot.ctrl.logYCheck.isChecked()
        extents = [extent for name, series in run.series.items()
                   if self.plot_of(name) is plot and (extent := series.y_extent(log)) is not None]
        if plot is self.lr_plot and extents:
            extents.append((0.0, 0.0))  # the learning rate is filled down to 0: its axis starts there
        if not extents:
            return
        lows, highs = zip(*extents, strict=True)
        low, high = min(lows), max(highs)
        shown_low, shown_high = plot.getViewBox().viewRange()[1]
        if not refit and shown_low <= low and high <= shown_high and high - low >= Y_FILL * (shown_high - shown_low):
            return
        span = high - low or abs(high) or 1.0
        plot.setYRange(low - Y_MARGIN * span, high + Y_MARGIN * span, padding=0)
        # The view applies a new range when it is next painted, and its curves then recompute what they show
        # (clipped to the view, downsampled) and ask for a second repaint; applied now, one repaint does.
        plot.getViewBox().prepareForPaint()

    def set_log_scale(self, on: bool) -> None:
        """Losses on a logarithmic y axis (the Log scale button); the x axes keep the run's span."""
        if self.log_button.isChecked() != on:
            self.log_button.setChecked(on)  # toggled() calls back here
            return
        self._apply_log_scale()

    def _apply_log_scale(self) -> None:
        on = self.log_button.isChecked()
        for plot in (self.loss_plot, self.metric_plot):
            wanted = on and plot in self.loss_plots()
            if plot.ctrl.logYCheck.isChecked() != wanted:
                plot.setLogMode(y=wanted)  # the live curves and the axis; also turns pyqtgraph's auto-range on
                for run in self.runs:
                    for name, item in (run.archive or {}).items():
                        if self.plot_of(name) is plot:
                            self._show_archived(run, name, item)
                current = self.current
                for name in self.markers:
                    if self.plot_of(name) is plot and current is not None:
                        self._mark(name, current.series[name], again=True)
                self.auto_range()

    def _remove_archive(self, run: RunData) -> None:
        for name, item in (run.archive or {}).items():
            self.plot_of(name).getViewBox().removeItem(item)
            for legend in self.legends:
                legend.removeItem(item)
        run.archive = None

    def clear(self) -> None:
        """Remove previous runs (and the last one too when nothing is running)."""
        keep = [self.current] if self.running and self.current else []
        for run in self.runs:
            if run not in keep:
                self._remove_archive(run)
        self.runs = keep
        if not keep:
            self._clear_live()
            self.loss_plot.setTitle("Loss", color=self._foreground.name())
        self._update_clear_button()

    def auto_range(self) -> None:
        """Fit every plot to the current run again (the Auto-range button): its x span, its y values."""
        if self._x_span is not None:
            self._fit_x_to_run(*self._x_span)
            return
        for plot in self.following:
            self.following[plot] = True
            plot.enableAutoRange(axis="x")
            self.follow_y(plot, refit=True)

    def _update_clear_button(self) -> None:
        removable = len(self.runs) - (1 if self.running else 0)
        self.clear_button.setEnabled(removable > 0)
