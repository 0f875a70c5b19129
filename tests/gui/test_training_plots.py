"""The live training plots: earlier runs dimmed under the current one, y ranges that follow the current
run, the log-scale toggle, runs named by what differs, legends clear of grid lines, a self-pacing refresh."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from engine.data import DataConfig
from engine.training import BatchEnd, EpochEnd, TrainConfig
from gui.training.plots import PLOT_CPU_BUDGET, REFRESH_MS, SLOWEST_REFRESH_MS, TrainingPlots, refresh_interval_ms
from gui.training.run_names import run_name, run_settings
from tests.gui.test_training import TrainingArea, make_document

STEPS = 4


@pytest.fixture
def plots(qtbot):
    widget = TrainingPlots()
    qtbot.addWidget(widget)
    widget.resize(900, 650)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def feed_run(plots: TrainingPlots, label: str, losses, task: str = "classification", accuracy: float = 0.5,
             finish: bool = True) -> None:
    """One run of ``len(losses) / STEPS`` epochs: a BatchEnd per loss, an EpochEnd after every STEPS."""
    epochs = math.ceil(len(losses) / STEPS)
    plots.begin_run(label, task, steps_per_epoch=STEPS, epochs=epochs)
    for index, loss in enumerate(losses, start=1):
        epoch, step = (index - 1) // STEPS + 1, (index - 1) % STEPS + 1
        plots.add_batch(BatchEnd(epoch, step, STEPS, index, (loss,), 0.1, 100.0))
        if step == STEPS:
            plots.add_epoch(EpochEnd(epoch, epochs, loss, accuracy, loss, accuracy, 0.1, 1.0))
    plots.flush()
    if finish:
        plots.end_run()


def y_range(plot) -> tuple[float, float]:
    return tuple(plot.getViewBox().viewRange()[1])


def test_earlier_runs_are_thin_grey_and_drawn_under_the_current_run(plots):
    feed_run(plots, "first", [2.3, 1.9, 1.5, 1.2, 1.0, 0.9, 0.8, 0.7])
    feed_run(plots, "second", [2.2, 1.6, 1.1, 0.8, 0.6, 0.5, 0.45, 0.4], finish=False)
    archive = plots.runs[0].archive
    assert set(archive) == set(plots.live) - {"batch"}
    for name, item in archive.items():
        live = plots.live[name]
        assert item.isVisible() and item.parentItem() is live.parentItem()  # siblings: z decides the order
        assert item.zValue() < live.zValue()
        pen, live_pen = item.opts["pen"], live.opts["pen"]
        assert pen.widthF() <= 1 < live_pen.widthF()
        assert pen.color().hsvSaturationF() < 0.3 < live_pen.color().hsvSaturationF()  # grey-toned
        assert isinstance(item, pg.PlotCurveItem)  # a bare line: no epoch markers on earlier runs
    legend_texts = [label.text for _sample, label in plots.loss_legend.items]
    assert "run 1: first" in legend_texts


def test_an_earlier_runs_long_curve_keeps_its_peaks_in_a_few_thousand_points():
    from gui.training.plot_data import ARCHIVE_POINTS, peak_decimated

    steps = 100_003  # a long run's smoothed loss: one point per step
    x = np.arange(steps) / 1000.0
    y = 1.0 + 0.1 * np.sin(x)
    y[12_345], y[77_777], y[500:900] = 9.0, -3.0, np.nan  # a spike, a dip, a stretch without a loss
    xs, ys = peak_decimated(x, y)
    assert len(xs) == len(ys) <= ARCHIVE_POINTS + 100
    assert np.nanmax(ys) == 9.0 and np.nanmin(ys) == -3.0  # the extremes survive
    assert xs[0] == 0.0 and xs[-1] == x[-1] and np.all(np.diff(xs) >= 0)  # the whole span, in order
    short_x, short_y = peak_decimated(x[:50], y[:50])
    assert np.array_equal(short_x, x[:50]) and short_x is not x  # a short curve is kept whole (a copy)


def test_a_new_runs_title_leaves_the_plots_below_their_size(plots, qtbot):
    """The loss plot's title names each run; a long name must not re-divide the row below (the accuracy and
    learning-rate plots resized, re-rendered their axes and repainted at every run's start)."""
    feed_run(plots, "first", [2.3, 1.9, 1.5, 1.2])
    qtbot.wait(20)
    below = [plot.getViewBox().size() for plot in (plots.metric_plot, plots.lr_plot)]
    resized = []
    for plot in (plots.metric_plot, plots.lr_plot):
        plot.getViewBox().sigResized.connect(resized.append)
    feed_run(plots, "a much longer name: adam, lr 0.0003, batch 256, dropout 0.5, weight decay 1e-4",
             [2.2, 1.6, 1.1, 0.8])
    qtbot.wait(20)
    assert "a much longer name" in plots.loss_plot.titleLabel.text
    plots.clear()  # the title goes back to "Loss"
    qtbot.wait(20)
    assert resized == []
    assert [plot.getViewBox().size() for plot in (plots.metric_plot, plots.lr_plot)] == below


def test_y_range_follows_the_current_run_not_a_diverged_earlier_one(plots, qtbot):
    diverged = [2.3, 40.0, 1e6, 1e12, 1e16, 1e16, float("inf"), float("nan")]
    feed_run(plots, "diverged", diverged, accuracy=0.1)
    normal = [2.3, 1.8, 1.2, 0.9, 0.7, 0.6, 0.55, 0.5]
    feed_run(plots, "normal", normal, accuracy=0.9, finish=False)
    low, high = y_range(plots.loss_plot)
    assert low <= 0.5 and 2.3 <= high < 3.0  # the current run fills the plot; 1e16 is off the top
    low, high = y_range(plots.metric_plot)
    assert 80 < low <= 90 <= high < 100  # accuracy of the current run only (the earlier run had 10%)
    plots.end_run()
    assert y_range(plots.loss_plot)[1] < 3.0  # idle after the run: still the last run's range

    plots.loss_plot.setYRange(0, 1e16)  # zoomed far out, then Auto-range fits the current run again
    qtbot.mouseClick(plots.auto_button, Qt.LeftButton)
    low, high = y_range(plots.loss_plot)
    assert low <= 0.5 and 2.3 <= high < 3.0


def test_y_range_grows_with_the_run_and_is_not_reset_at_every_refresh(plots):
    plots.begin_run("falling", "classification", steps_per_epoch=100, epochs=1)
    changes = []
    plots.loss_plot.getViewBox().sigYRangeChanged.connect(lambda _vb, rng: changes.append(tuple(rng)))
    losses = 0.5 + 2.0 * np.exp(-np.arange(100) / 30)
    for step, loss in enumerate(losses, start=1):
        plots.add_batch(BatchEnd(1, step, 100, step, (float(loss),), 0.1, 100.0))
        plots.flush()
    low, high = y_range(plots.loss_plot)
    assert low <= losses.min() and losses.max() <= high
    assert len(changes) < 30  # the range steps out with a margin instead of following every new point


def test_log_scale_button_shows_losses_in_decades_and_back(plots, qtbot):
    losses = [10.0, 3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 0.0]  # a loss of exactly 0 has no logarithm
    feed_run(plots, "first", [5.0] * 8)
    feed_run(plots, "falling", losses, finish=False)
    x_before = plots.loss_plot.getViewBox().viewRange()[0]
    qtbot.mouseClick(plots.log_button, Qt.LeftButton)
    assert plots.log_button.isChecked()
    earlier = plots.runs[0]
    assert plots.live["ema"].opts["logMode"][1]
    assert earlier.archive["ema"].yData == pytest.approx(np.log10(earlier.series["ema"].y))  # the earlier run too
    assert plots.loss_plot.getAxis("left").logMode
    low, high = y_range(plots.loss_plot)
    assert -2.6 < low <= -2.0 and 1.0 <= high < 1.6  # log10 units: 0.01 .. 10
    assert plots.loss_plot.getViewBox().viewRange()[0] == pytest.approx(x_before)  # still the run's span
    assert not plots.metric_plot.ctrl.logYCheck.isChecked()  # accuracy stays linear
    qtbot.mouseClick(plots.log_button, Qt.LeftButton)
    assert not plots.live["ema"].opts["logMode"][1]
    assert earlier.archive["ema"].yData == pytest.approx(earlier.series["ema"].y)
    low, high = y_range(plots.loss_plot)
    assert low <= 0.0 and 10.0 <= high < 12.5


def test_log_scale_covers_the_regression_metric(plots):
    plots.set_log_scale(True)
    feed_run(plots, "regression", [4.0, 1.0, 0.5, 0.1, 0.05, 0.02, 0.01, 0.005], task="regression")
    assert plots.loss_plot.ctrl.logYCheck.isChecked() and plots.metric_plot.ctrl.logYCheck.isChecked()
    feed_run(plots, "classes", [2.3] * 8, task="classification")
    assert plots.loss_plot.ctrl.logYCheck.isChecked() and not plots.metric_plot.ctrl.logYCheck.isChecked()


def settings_of(data=None, design="net", **training) -> dict:
    return run_settings(TrainConfig(**training).to_dict(), DataConfig(**(data or {})).to_dict(), design)


def test_run_names_say_what_differs_from_the_previous_run():
    first = settings_of()
    assert run_name(first, None) == "adam, lr 0.001, batch 64"
    second = settings_of(lr=0.01, batch_size=128)
    assert run_name(second, first) == "lr 0.01, batch 128"
    assert run_name(second, second) == "same settings"
    assert run_name(settings_of(lr=0.01, batch_size=128, momentum=0.5), second) == "same settings"  # Adam: no momentum
    assert run_name(settings_of(optimizer="sgd", momentum=0.5), first) == "sgd, momentum 0.5"
    assert run_name(settings_of(data={"limit": 500}), first) == "limit 500"
    assert run_name(settings_of(design="other"), first) == "other design"
    assert run_name(settings_of(nesterov=True, optimizer="sgd"), settings_of(optimizer="sgd")) == "nesterov on"
    many = settings_of(lr=0.1, batch_size=16, epochs=9, seed=3, weight_decay=0.01)
    assert run_name(many, first) == "lr 0.1, wd 0.01, epochs 9 +2 more"
    path = settings_of(data={"source": "folder", "root": "/home/someone/datasets/cats-and-dogs/train"})
    assert run_name(path, settings_of(data={"source": "folder"})).startswith("root …")


def test_plots_name_runs_from_their_settings(plots):
    plots.begin_run("", "classification", settings=settings_of())
    plots.end_run()
    plots.begin_run("", "classification", settings=settings_of(lr=0.01, batch_size=128))
    assert plots.loss_plot.titleLabel.text == "Loss · run 2: lr 0.01, batch 128"
    assert "run 1: adam, lr 0.001, batch 64" in [label.text for _sample, label in plots.loss_legend.items]


def test_the_training_tab_names_runs_by_their_settings(qtbot):
    ui = TrainingArea(qtbot, make_document(training={"epochs": 1, "batch_size": 32}))
    try:
        assert ui.run().reason == "completed"
        ui.doc.set_extra("training", dict(ui.doc.extras["training"], lr=0.01, batch_size=16))
        assert ui.run().reason == "completed"
        plots = ui.panel.plots
        assert plots.loss_plot.titleLabel.text == "Loss · run 2: lr 0.01, batch 16"
        assert "run 1: adam, lr 0.001, batch 32" in [label.text for _sample, label in plots.loss_legend.items]
    finally:
        ui.close()


def long_runs(image, color: QColor, x0: int, x1: int, y: int, longest: int = 0) -> int:
    """The longest horizontal run of pixels of exactly ``color`` in row ``y`` between x0 and x1."""
    run = 0
    for x in range(x0, x1):
        run = run + 1 if image.pixelColor(x, y).rgb() == color.rgb() else 0
        longest = max(longest, run)
    return longest


def test_legends_are_not_struck_through_by_grid_lines(plots, qtbot):
    feed_run(plots, "first", [2.0] * 8)
    feed_run(plots, "second", list(np.linspace(2.5, 0.2, 8)), finish=False)
    view = plots.graphics
    grid = plots._grid_color
    legend = plots.loss_legend
    box = view.mapFromScene(legend.sceneBoundingRect()).boundingRect()
    image = view.viewport().grab().toImage()
    # a grid row of the loss plot: the grid colour across most of the plot's width, left of the legend
    plot_rect = view.mapFromScene(plots.loss_plot.getViewBox().sceneBoundingRect()).boundingRect()
    rows = [y for y in range(plot_rect.top() + 2, plot_rect.bottom() - 2)
            if long_runs(image, grid, plot_rect.left(), box.left() - 2, y) > 0.5 * (box.left() - plot_rect.left())]
    assert rows, "no horizontal grid line found in the loss plot"
    # move the legend over that grid line, then look inside it
    legend.anchor((1, 0), (1, 0), offset=(-8, rows[0] - plot_rect.top() - box.height() // 2))
    qtbot.waitUntil(lambda: view.mapFromScene(legend.sceneBoundingRect()).boundingRect().top() != box.top())
    box = view.mapFromScene(legend.sceneBoundingRect()).boundingRect()
    assert box.top() + 2 < rows[0] < box.bottom() - 2
    image = view.viewport().grab().toImage()
    assert long_runs(image, grid, plot_rect.left(), box.left() - 2, rows[0]) > 20  # the line is there...
    assert long_runs(image, grid, box.left() + 2, box.right() - 2, rows[0]) < 10  # ...but not over the legend


def test_refresh_paces_itself_by_what_a_refresh_costs(plots, qtbot):
    assert refresh_interval_ms(0.0) == REFRESH_MS  # cheap refreshes: 10 a second
    assert refresh_interval_ms(1.0) == SLOWEST_REFRESH_MS  # never slower than once a second
    cost = 0.4 * SLOWEST_REFRESH_MS / 1000 * PLOT_CPU_BUDGET  # in between: in proportion to the cost...
    assert refresh_interval_ms(cost) == pytest.approx(0.4 * SLOWEST_REFRESH_MS, abs=1)
    # ...and to how little CPU the process gets (a loaded machine), but never more than one core's worth
    assert refresh_interval_ms(cost, busy_cores=0.5) == pytest.approx(0.8 * SLOWEST_REFRESH_MS, abs=1)
    assert refresh_interval_ms(cost, busy_cores=8.0) == refresh_interval_ms(cost, busy_cores=1.0)
    feed_run(plots, "first", list(np.linspace(2.5, 0.2, 8)), finish=False)  # its first refresh, then three more
    for step in range(9, 12):
        plots.add_batch(BatchEnd(3, step - 8, STEPS, step, (0.2,), 0.1, 100.0))
        plots.graphics.viewport().repaint()
        plots.flush()
    assert plots.refresh_cost_s > 0  # the push and the repaint were measured...
    assert plots.timer.interval() >= refresh_interval_ms(plots.refresh_cost_s)  # ...and set the pace (busy <= 1)
    plots.end_run()


def test_first_points_show_at_once_and_the_next_refresh_is_paced(plots, qtbot):
    """The run's first points are pushed at the next quick tick; that push is paced by what the plots cost since
    the run began (its first full repaint included), so a run does not start with ten refreshes a second."""
    before = plots.graphics.paint_cpu_s
    plots.begin_run("first", "classification", steps_per_epoch=STEPS, epochs=3)
    plots.graphics.viewport().repaint()  # the run's first repaint (new title, x axes fitted to the run)
    first_repaint = plots.graphics.paint_cpu_s - before
    assert plots.timer.isActive() and plots.timer.interval() == REFRESH_MS  # waiting for the first points
    plots.add_batch(BatchEnd(1, 1, STEPS, 1, (2.3,), 0.1, 100.0))
    qtbot.waitUntil(lambda: len(plots.live["batch"].getData()[0] or ()) == 1, timeout=1000)
    assert plots.refresh_cost_s >= first_repaint > 0  # the first repaint counts...
    assert plots.timer.interval() >= refresh_interval_ms(plots.refresh_cost_s)  # ...and sets the pace at once
    plots.end_run()


def test_progress_line_always_shows_the_last_batch_of_the_run(qtbot):
    ui = TrainingArea(qtbot, make_document(training={"epochs": 2}))
    shown = []

    def last_batch(event) -> None:  # connected after the panel's own slot: sees what it showed
        if event.global_step == 2 * event.steps_per_epoch:
            shown.append((ui.panel.progress.value(), ui.panel.progress_label.text(), event.steps_per_epoch))

    ui.controller.batchEnded.connect(last_batch)
    try:
        assert ui.run().reason == "completed"
        value, text, steps = shown[0]
        assert value == ui.panel.progress.maximum() and f"Epoch 2/2 · step {steps}/{steps}" in text
        assert ui.panel.plots.current.point_counts()["batch"] == 2 * steps  # every batch reached the plots
    finally:
        ui.close()


def test_zooming_with_the_mouse_stops_following_until_auto_range(plots, qtbot):
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    feed_run(plots, "first", [2.3, 1.8, 1.2, 0.9], finish=False)
    view = plots.graphics
    center = view.mapFromScene(plots.loss_plot.getViewBox().sceneBoundingRect().center())
    wheel = QWheelEvent(QPointF(center), QPointF(view.viewport().mapToGlobal(center)), QPoint(0, 0), QPoint(0, 240),
                        Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), wheel)  # zoom in
    zoomed = y_range(plots.loss_plot)
    assert not plots.following[plots.loss_plot] and zoomed[1] - zoomed[0] < 2.0
    for step in range(5, 9):
        plots.add_batch(BatchEnd(2, step - 4, STEPS, step, (5.0,), 0.1, 100.0))
    plots.flush()
    assert y_range(plots.loss_plot) == pytest.approx(zoomed)  # the user's view stays put
    qtbot.mouseClick(plots.auto_button, Qt.LeftButton)
    low, high = y_range(plots.loss_plot)
    assert plots.following[plots.loss_plot] and low <= 0.9 and 5.0 <= high
    plots.end_run()


def test_hidden_plots_push_nothing_and_catch_up_when_shown(qtbot):
    """Another tab in front of the curves (the Health view, another window tab): no curve is redrawn for it."""
    from PySide6.QtWidgets import QLabel, QTabWidget

    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    plots = TrainingPlots()
    tabs.addTab(plots, "Loss and accuracy")
    tabs.addTab(QLabel("something else"), "Other")
    tabs.resize(900, 650)
    tabs.show()
    qtbot.waitExposed(tabs)
    feed_run(plots, "first", [2.3, 1.8, 1.2, 0.9], finish=False)
    shown = len(plots.live["batch"].xData)  # the data given (getData() is what the view clips it to)
    assert shown == 4
    tabs.setCurrentIndex(1)
    for step in range(5, 9):
        plots.add_batch(BatchEnd(2, step - 4, STEPS, step, (0.5,), 0.1, 100.0))
    plots.flush()
    assert len(plots.live["batch"].xData) == shown and plots.current.dirty  # held while hidden
    tabs.setCurrentIndex(0)
    assert len(plots.live["batch"].xData) == 8 and not plots.current.dirty  # showing the tab catches up
    plots.end_run()


def test_progress_bar_moves_with_the_next_paint_not_at_once(qtbot):
    """A progress step is drawn in the window's next paint pass: QProgressBar's own setValue repaints at once at
    every visible change, which cost the UI thread a paint per progress line during a run."""
    from PySide6.QtCore import QEvent, QObject

    from gui.widgets import FractionBar

    paints = []

    class Paints(QObject):
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint:
                paints.append(obj.value())
            return False

    bar = FractionBar()
    qtbot.addWidget(bar)
    counter = Paints()
    bar.installEventFilter(counter)
    bar.resize(400, 20)
    bar.show()
    qtbot.waitUntil(lambda: bool(paints))  # its first paint
    paints.clear()
    for step in range(1, 6):
        bar.set_fraction(step / 10)
    assert bar.value() == FractionBar.STEPS // 2 and paints == []  # set, not painted yet...
    qtbot.waitUntil(lambda: bool(paints))
    assert set(paints) == {FractionBar.STEPS // 2}  # ...then painted at the last value, the steps between skipped
    bar.removeEventFilter(counter)


def test_epoch_markers_gain_only_the_new_epochs_and_follow_the_log_scale(plots, monkeypatch):
    """Each epoch curve's markers hold one point per epoch; a new epoch adds its point (nothing is rebuilt), and
    the log scale re-marks them in the log10 values the view box holds."""
    feed_run(plots, "first", [2.0, 1.0, 0.5, 0.25] * STEPS, finish=False)
    markers = plots.markers["val_loss"]
    values = list(plots.current.series["val_loss"].y)
    assert len(values) == 4 and list(markers.data["y"]) == pytest.approx(values)
    rebuilt = []
    monkeypatch.setattr(markers, "clear", lambda: rebuilt.append(True))
    plots.add_epoch(EpochEnd(5, 5, 0.2, 0.9, 0.125, 0.9, 0.1, 1.0))
    plots.flush()
    assert rebuilt == [] and list(markers.data["y"]) == pytest.approx(values + [0.125])
    monkeypatch.undo()
    plots.set_log_scale(True)
    assert list(markers.data["y"]) == pytest.approx(np.log10(values + [0.125]).tolist())
    assert plots.markers["val_metric"].data["y"][-1] == pytest.approx(90.0)  # accuracy stays linear
    plots.end_run()


def test_epochs_faster_than_twice_a_second_show_the_latest_one_at_most_twice_a_second(area, qtbot, monkeypatch):
    """Each epoch's figures go to the plots at once; the status lines show an epoch at most every
    PROGRESS_REFRESH_S (as the progress line shows a batch), the latest of those that came meanwhile."""
    from gui.training import controller as states
    from gui.training import panel as panel_module

    ui = area()
    panel, clock = ui.panel, [100.0]
    monkeypatch.setattr(panel_module, "time", type("Clock", (), {"monotonic": staticmethod(lambda: clock[0])}))
    panel.plots.begin_run("", "classification", steps_per_epoch=STEPS, epochs=30)
    monkeypatch.setattr(ui.controller, "state", states.RUNNING)

    def epoch(number: int) -> None:
        ui.controller.epochEnded.emit(EpochEnd(number, 30, 1.0 / number, 0.5, 1.0, 0.5, 0.1, 0.01))

    epoch(1)
    assert panel.status_label.text().startswith("Epoch 1/30")  # the first shows at once
    for number in range(2, 11):  # nine more within the same half second
        epoch(number)
    assert panel.status_label.text().startswith("Epoch 1/30") and panel._epoch_timer.isActive()
    assert len(panel.plots.current.series["train_loss"]) == 10  # the plots have every epoch already
    qtbot.waitUntil(lambda: panel.status_label.text().startswith("Epoch 10/30"), timeout=2000)  # the latest
    assert not panel._epoch_timer.isActive()
    clock[0] += 2 * panel_module.PROGRESS_REFRESH_S
    epoch(11)
    assert panel.status_label.text().startswith("Epoch 11/30")  # a slower epoch shows at once


def test_a_real_run_of_short_epochs_plots_them_all_and_ends_on_the_last(area):
    from gui.training import controller as states

    ui = area(make_document(training={"epochs": 30, "batch_size": 32}, data={"limit": 64, "val_fraction": 0.5}))
    panel, shown = ui.panel, []
    ui.controller.stateChanged.connect(lambda state: shown.append(panel.status_label.text())
                                       if state == states.STOPPING else None)
    result = ui.run()
    assert result.reason == "completed"
    assert panel.plots.current.point_counts()["train_loss"] == 30  # every epoch reached the plots
    assert shown and shown[0].startswith("Epoch 30/30")  # the last epoch is shown as the run winds down
    assert ui.controller.state == states.IDLE and not panel._epoch_timer.isActive()


def test_new_status_texts_re_lay_out_nothing_unless_the_lines_need_another_height(qtbot):
    """The Training tab's status lines change several times a second during a run: a text that fits the lines
    it has re-lays out nothing around them (each QLabel text in a layout re-laid out the whole tab); one that
    needs another line makes room, and so does a line shown or hidden."""
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

    from gui.widgets import LabelStack

    layouts = []

    class Layouts(QObject):
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.LayoutRequest:
                layouts.append(obj)
            return False

    column = QWidget()
    qtbot.addWidget(column)
    progress, status, below = QLabel("Ready."), QLabel("Device: cpu"), QLabel("below")
    for label in (progress, status):
        label.setWordWrap(True)
    layout = QVBoxLayout(column)
    layout.addWidget(LabelStack(progress, status))
    layout.addWidget(below)
    layout.addStretch(1)
    column.resize(300, 300)
    column.show()
    qtbot.waitExposed(column)
    qtbot.wait(20)  # the first layout's follow-ups
    top = below.y()
    assert status.y() > progress.y() + progress.height() - 1 and status.width() == progress.width() > 250
    counter = Layouts()
    column.installEventFilter(counter)
    for step in range(1, 6):
        progress.setText(f"Epoch 1/5 · step {step}/57 · ETA 0:0{step}")
        status.setText(f"Epoch {step}/5 · train loss 0.{step}")
        qtbot.wait(5)
    assert layouts == [] and below.y() == top
    assert progress.text() == "Epoch 1/5 · step 5/57 · ETA 0:05" and progress.isVisible()
    progress.setText("A long line of progress that cannot fit in three hundred pixels and wraps onto more lines " * 2)
    qtbot.waitUntil(lambda: below.y() > top)  # the label below moved down to make room
    assert progress.height() == progress.heightForWidth(progress.width()) and status.y() > progress.height()
    grown = below.y()
    status.hide()
    qtbot.waitUntil(lambda: below.y() < grown)
    font = progress.font()
    font.setPointSizeF(2 * font.pointSizeF())
    progress.setFont(font)  # same text, another font: measured again
    qtbot.waitUntil(lambda: progress.height() == progress.heightForWidth(progress.width()) and below.y() > grown)
    column.removeEventFilter(counter)
