"""The Activations window: what the current weights make of one sample, layer by layer.

Opened from the Results tab (a confusion cell's or the gallery's sample, or **Test sample** and **Activations…**)
and from the Predict tab (the input just predicted). At the top: the input as the model sees it, the first
convolution's filters and the class probabilities; then one row per layer: its output (a grid of channel images
for a convolution or pooling, bars for a Linear layer's values) and, for a layer with weights, their histogram.
The numbers come from ``engine.activations``, computed on a worker thread of the controller (which waits for it
when the window closes); each layer's grid is one tiled image, so a layer of 512 channels is still one item.
"""
from __future__ import annotations

import math
import threading

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QPalette, QPixmap
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from engine.activations import enlargement, filter_picture, picture, to_rgb
from engine.errors import LayerStudioError
from engine.shapes import format_shape
from engine.text import sentence
from gui.input_policy import scroll_instead
from gui.training import controller as states
from gui.training.sample_images import RIGHT, tensor_image
from gui.training.styles import ERROR_STYLE
from gui.training.worker import reporting
from gui.widgets import headline_label

BAR_COLOR = (40, 110, 200)
HISTOGRAM_COLOR = (120, 120, 130)
MAP_WIDTH = 860          # the width a layer's picture is laid out for; its height follows the picture's aspect
ROW_HEIGHTS = (90, 300)  # a layer's picture is never lower or higher than these (pixels)
BAR_HEIGHT = 150         # a row of bars (a Linear layer's values)
HISTOGRAM_WIDTH = 300
INPUT_SIZE = 150
WIDE_GRID = 16           # up to this many channels sit in one row; more make a grid about four times as wide as high


class StillPlot(pg.PlotWidget):
    """A plot that neither zooms nor pans: the mouse wheel over it scrolls the window around it."""

    def wheelEvent(self, event) -> None:  # noqa: N802 - the Qt method it overrides
        scroll_instead(self, event)


class ActivationsWorker(QObject):
    """Runs ``compute()`` (returning engine.activations.Activations) off the UI thread."""

    computed = Signal(object)
    failed = Signal(str)
    finished = Signal()

    def __init__(self, compute):
        super().__init__()
        self._compute = compute

    @Slot()
    def run(self) -> None:
        with reporting("computing the activations", self.failed.emit, self.finished.emit):
            self.computed.emit(self._compute())


class ActivationsView(QWidget):
    """A window of its own showing one sample's activations; ``show_test_sample`` and ``show_input`` fill it."""

    shown = Signal(object)   # the Activations now shown
    failed = Signal(str)     # a sentence: why nothing new is shown

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent, Qt.Window)
        self.controller = controller
        self.activations = None
        self._pending: int | None = None     # a test sample waiting for the data to load
        self._busy = threading.Event()       # a computation is running (one at a time)
        self._stats: tuple = (None, None)    # the input's normalisation (mean, std), to show it as a picture
        self.setWindowTitle("Activations")
        self.resize(1280, 800)
        palette = self.palette()
        self._background = palette.color(QPalette.Base)
        self._foreground = palette.color(QPalette.Text)

        self.headline = headline_label("Pick a sample in the Results tab (Test sample, a cell, or a picture of the "
                                       "gallery) or predict an input in the Predict tab.", 1.3)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet(ERROR_STYLE)
        self.problem.hide()
        self.body = QWidget()
        self.rows = QGridLayout(self.body)
        self.rows.setColumnStretch(0, 1)
        self.rows.setHorizontalSpacing(12)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self.body)
        layout = QVBoxLayout(self)
        layout.addWidget(self.headline)
        layout.addWidget(self.problem)
        layout.addWidget(self.scroll, 1)
        controller.dataLoaded.connect(self._data_loaded)
        controller.dataFailed.connect(self._data_failed)

    # ------------------------------------------------------------------ asking
    def show_test_sample(self, index: int) -> bool:
        """Compute and show test sample ``index`` (the validation split's without a test split) with the current
        weights; the data is loaded first when needed. True when the computation (or the loading) started."""
        self._raise()
        bundle = self._ready()
        if bundle is False:
            return False
        if bundle is None:
            self._pending = index
            self.headline.setText("Loading the data the weights were trained on…")
            if not self.controller.load_data():
                self._pending = None
                return self._fail("The data could not be loaded now: try again when the run has ended.")
            return True
        return self._compute_sample(index, bundle)

    def _compute_sample(self, index: int, bundle) -> bool:
        from engine.activations import sample_activations

        spec, model, config = self._model()
        self._stats = (bundle.mean, bundle.std)
        return self._start(lambda: sample_activations(spec, model, bundle, index, config),
                           f"Computing the activations of sample {index}…")

    def show_input(self, x, source: str, mean=None, std=None) -> bool:
        """Compute and show a prepared input ``x`` (1, *input_shape as the data gives it), e.g. Predict's."""
        from engine.activations import record_activations
        from engine.evaluation import make_objective

        self._raise()
        bundle = self._ready()
        if bundle is None:
            return self._fail("The data is not loaded: predict the input in the Predict tab first.")
        if bundle is False:
            return False
        spec, model, config = self._model()
        self._stats = (mean, std)

        def compute():
            prepared = x.reshape(1, *spec.input_shape)
            objective = make_objective(spec, bundle, config)
            names = bundle.class_names if objective.classification else ()
            return record_activations(spec, model, prepared, objective, names, source)

        return self._start(compute, f"Computing the activations of {source}…")

    def _raise(self) -> None:
        self.show()
        self.raise_()
        self.activateWindow()

    def _ready(self):
        """The loaded data (None when it must be loaded first), or False when the weights cannot be looked at now."""
        controller = self.controller
        if controller.model is None:
            self._fail("There are no weights yet: train the design (Training tab) or load weights "
                       "(File → Load Weights…) first.")
            return False
        if controller.state != states.IDLE or self._busy.is_set():
            self._fail("A run, an evaluation or another sample is going: look at this one when it has ended.")
            return False
        try:
            return controller.cached_data(controller.data_config())
        except LayerStudioError as exc:
            self._fail(str(exc))
            return False

    def _model(self):
        from engine.training import TrainConfig

        controller = self.controller
        try:
            config = controller.train_config()
        except LayerStudioError:
            config = TrainConfig()  # only the loss is read: how outputs become probabilities
        return controller.model_spec or controller.document.spec, controller.model, config

    def _start(self, compute, text: str) -> bool:
        self.headline.setText(text)
        self.problem.hide()
        self._busy.set()
        worker = ActivationsWorker(compute)
        worker.computed.connect(self.show_activations)
        worker.failed.connect(self._fail)
        worker.finished.connect(self._busy.clear)
        if not self.controller.launch_helper(worker, stop=lambda: None):  # one forward pass: nothing to stop
            self._busy.clear()  # the window is closing
            return False
        return True

    def _fail(self, text: str) -> bool:
        text = sentence(text)
        self.problem.setText(text)
        self.problem.show()
        if self.activations is None or self.headline.text().endswith("…"):
            self.headline.setText(self._headline_text())
        self.failed.emit(text)
        return False

    def _data_loaded(self, bundle) -> None:
        index, self._pending = self._pending, None
        if index is not None and self.controller.model is not None:  # the controller is still winding the loading up
            self._compute_sample(index, bundle)

    def _data_failed(self, text: str) -> None:
        if self._pending is not None:
            self._pending = None
            self._fail(text)

    # ------------------------------------------------------------------ showing
    def show_activations(self, activations) -> None:
        """Lay out the rows for ``activations`` (an engine.activations.Activations)."""
        self.activations = activations
        self.problem.hide()
        self.headline.setText(self._headline_text())
        self.setWindowTitle(f"Activations — {activations.source}")
        while self.rows.count():
            item = self.rows.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self._add_top_row(activations)
        histograms = {h.index: h for h in activations.histograms}
        for layer in activations.layers:
            title = f"<b>{layer.index}</b>&nbsp; {layer.label} &nbsp;→&nbsp; {format_shape(layer.output.shape)}"
            histogram = histograms.get(layer.index)
            last = layer is activations.layers[-1] and activations.probabilities is not None
            self._add_row(title, self._output_plot(layer.output, activations.class_names if last else ()),
                          self._histogram_plot(histogram) if histogram is not None else None)
        self.rows.setRowStretch(self.rows.rowCount(), 1)
        self.shown.emit(activations)

    def _headline_text(self) -> str:
        a = self.activations
        if a is None:
            return "No activations yet."
        parts = [a.source[:1].upper() + a.source[1:]]
        names = a.class_names
        if a.target is not None:
            true = a.target
            named = isinstance(true, int) and 0 <= true < len(names)
            parts.append(f"true <b>{names[true] if named else f'{true:.4g}'}</b>")
        if a.predicted is not None:
            name = names[a.predicted] if a.predicted < len(names) else str(a.predicted)
            parts.append(f"predicted <b>{name}</b> ({100 * a.probabilities[a.predicted]:.1f}%)")
        return " · ".join(parts)

    def _add_top_row(self, a) -> None:
        top = QWidget()
        line = QHBoxLayout(top)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self._titled("Input", self._input_label(a.input)))
        if a.filters is not None:
            plot = self._image_plot(filter_picture(a.filters, enlargement(a.filters[0, 0])))
            plot.setFixedSize(260, INPUT_SIZE + 20)
            line.addWidget(self._titled(f"Filters of layer {a.filters_layer} ({format_shape(a.filters.shape)}): "
                                        "a row per output channel", plot))
        if a.probabilities is not None:
            line.addWidget(self._titled("Probability per class (%)", self._probability_plot(a)), 1)
        else:
            line.addStretch(1)
        self.rows.addWidget(top, 0, 0, 1, 2)

    def _titled(self, title: str, body: QWidget) -> QWidget:
        pane = QWidget()
        layout = QVBoxLayout(pane)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        label = QLabel(title)
        label.setWordWrap(True)
        layout.addWidget(label)
        layout.addWidget(body, 1)
        return pane

    def _input_label(self, x) -> QLabel:
        import torch

        label = QLabel()
        label.setFixedSize(INPUT_SIZE, INPUT_SIZE)
        label.setAlignment(Qt.AlignCenter)
        image = tensor_image(torch.from_numpy(x), *self._stats)
        if image is None:  # a row of numbers
            label.setText(", ".join(f"{v:.3g}" for v in np.asarray(x).reshape(-1)[:12]))
            label.setWordWrap(True)
        else:
            label.setPixmap(QPixmap.fromImage(image).scaled(INPUT_SIZE, INPUT_SIZE, Qt.KeepAspectRatio,
                                                             Qt.FastTransformation))
        return label

    def _add_row(self, title: str, output: QWidget, histogram: QWidget | None) -> None:
        row = self.rows.rowCount()
        label = QLabel(title)
        self.rows.addWidget(label, row, 0)
        if histogram is not None:
            self.rows.addWidget(QLabel("Weights (count per value)"), row, 1)
        self.rows.addWidget(output, row + 1, 0)
        if histogram is not None:
            histogram.setFixedSize(HISTOGRAM_WIDTH, max(output.height(), ROW_HEIGHTS[0]))
            self.rows.addWidget(histogram, row + 1, 1, Qt.AlignTop)

    def _plot(self) -> pg.PlotWidget:
        plot = StillPlot(background=self._background)
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setPen(self._foreground)
            plot.getAxis(axis).setTextPen(self._foreground)
        return plot

    def _image_plot(self, grid) -> pg.PlotWidget:
        """One tiled picture, pixels square and sharp, no axes."""
        plot = self._plot()
        for axis in ("left", "bottom"):
            plot.hideAxis(axis)
        plot.invertY(True)
        plot.setAspectLocked(True)
        item = pg.ImageItem(to_rgb(grid).transpose(1, 0, 2))
        plot.addItem(item)
        height, width = grid.shape
        plot.setRange(xRange=(0, width), yRange=(0, height), padding=0.01)
        return plot

    def _output_plot(self, output, class_names=()) -> pg.PlotWidget:
        """A layer's output: channel images side by side, or bars for values (and for 1x1 channels), named by
        ``class_names`` when they are a classifier's outputs."""
        if output.ndim >= 2 and math.prod(output.shape[-2:]) > 1:
            count = math.prod(output.shape[:-2]) if output.ndim > 2 else 1
            columns = count if count <= WIDE_GRID else math.ceil(math.sqrt(count * 4 * output.shape[-2] /
                                                                            output.shape[-1]))
            grid = picture(output, enlargement(output), columns=columns)
            plot = self._image_plot(grid)
            plot.setFixedHeight(int(min(max(MAP_WIDTH * grid.shape[0] / grid.shape[1], ROW_HEIGHTS[0]),
                                        ROW_HEIGHTS[1])))
        else:
            plot = self._bar_plot(np.asarray(output, dtype=float).reshape(-1), class_names)
            plot.setFixedHeight(BAR_HEIGHT)
        return plot

    def _bar_plot(self, values, names=()) -> pg.PlotWidget:
        plot = self._plot()
        plot.addItem(pg.BarGraphItem(x=np.arange(len(values)), height=values, width=0.8, brush=BAR_COLOR,
                                     pen=None))
        plot.setXRange(-0.6, len(values) - 0.4, padding=0)
        if len(names) == len(values) and len(values) <= 30:
            plot.getAxis("bottom").setTicks([[(k, str(name)) for k, name in enumerate(names)]])
            plot.getAxis("bottom").setLabel("class (outputs before the probabilities)")
        else:
            plot.getAxis("bottom").setLabel("value number")
        return plot

    def _histogram_plot(self, histogram) -> pg.PlotWidget:
        plot = self._plot()
        edges, counts = histogram.edges, histogram.counts
        plot.addItem(pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=counts, brush=HISTOGRAM_COLOR, pen=None))
        if histogram.nonfinite:
            plot.setTitle(f"{histogram.nonfinite:,} not finite", color="#b00020")
        plot.setToolTip(f"{histogram.total:,} weights of layer {histogram.index} ({histogram.label}), "
                        f"from {edges[0]:.3g} to {edges[-1]:.3g}")
        return plot

    def _probability_plot(self, a) -> pg.PlotWidget:
        plot = self._plot()
        p = 100 * np.asarray(a.probabilities, dtype=float)
        brushes = [pg.mkBrush(RIGHT if k == a.predicted else BAR_COLOR) for k in range(len(p))]
        plot.addItem(pg.BarGraphItem(x=np.arange(len(p)), height=p, width=0.7, brushes=brushes, pen=None))
        names = a.class_names or [str(k) for k in range(len(p))]
        if len(p) <= 30:
            plot.getAxis("bottom").setTicks([[(k, str(names[k])) for k in range(len(p))]])
        plot.setXRange(-0.6, len(p) - 0.4, padding=0)
        plot.setYRange(0, 100, padding=0.02)
        plot.setFixedHeight(INPUT_SIZE + 20)
        return plot

    def bar_heights(self) -> list[float]:
        """The probability bars as shown, in percent (what the user reads)."""
        return [] if self.activations is None or self.activations.probabilities is None else \
            [100 * float(p) for p in self.activations.probabilities]
