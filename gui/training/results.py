"""The "Results" tab: test loss and accuracy, confusion matrix, per-class metrics, sample predictions.

**Evaluate** (F7) evaluates the current weights, trained or loaded, on the test split without
training. The confusion matrix shows counts or row percentages (**Row %**); clicking a cell shows
that cell's samples (true class row, predicted class column) as images, and **All samples** goes
back to the whole gallery. The per-class table lists samples, precision, recall and F1. **Activations…** shows
what the weights make of the test sample in the spin box beside it (a cell or a picture clicked picks its sample;
double-clicking a picture shows it at once).
Regression shows the metric and a predicted-vs-true scatter.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QBrush, QFont, QIcon, QKeySequence, QPalette, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.evaluation import macro_average
from engine.text import sentence
from gui.training import controller as states
from gui.training.provenance import results_note
from gui.training.sample_images import RIGHT, WRONG, sample_image
from gui.widgets import headline_label

MAX_CELL_TEXT_CLASSES = 20
GRID_LIMIT = 64
METRIC_COLUMNS = ("Class", "Samples", "Precision", "Recall", "F1")
EVALUATE_KEY = "F7"
ICON_SIZE = 56


class ClickableImage(pg.ImageItem):
    """An ImageItem that reports the (column, row) cell clicked."""

    cellClicked = Signal(int, int)

    def mouseClickEvent(self, event):
        if event.button() == Qt.LeftButton:
            pos = event.pos()
            self.cellClicked.emit(int(math.floor(pos.x())), int(math.floor(pos.y())))
            event.accept()


class NumberItem(QTableWidgetItem):
    """A table cell that sorts by its number (NaN last), whatever text it shows."""

    def __init__(self, text: str, value: float, align=Qt.AlignRight):
        super().__init__(text)
        self.value = value
        self.setTextAlignment(align | Qt.AlignVCenter)

    def __lt__(self, other):  # Qt's sort order
        mine, theirs = self.value, getattr(other, "value", math.nan)
        if math.isnan(theirs):
            return not math.isnan(mine)
        return not math.isnan(mine) and mine < theirs


def percent(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


class ResultsView(QWidget):
    """Shows the controller's last evaluation, after a run or from Evaluate."""

    activationsRequested = Signal(int)  # a test sample for the Activations window (gui.training.activations_view)

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.evaluation = None
        self.bundle = None
        self.selected_cell: tuple[int, int] | None = None
        self._pending_draw = None  # the pictures of an evaluation that came while another tab was in front
        palette = self.palette()
        self._background = palette.color(QPalette.Base)
        self._foreground = palette.color(QPalette.Text)

        self.summary = headline_label("No results yet: train the design, or load weights and Evaluate, and the test "
                                      "results appear here.", 1.15)
        self.evaluate_action = QAction("Evaluate", self)
        self.evaluate_action.setShortcut(QKeySequence(EVALUATE_KEY))
        self.evaluate_action.setShortcutContext(Qt.WindowShortcut)
        self.evaluate_action.setStatusTip("Evaluate the current weights (trained or loaded) on the test split")
        self.evaluate_action.triggered.connect(self.evaluate_or_stop)
        self.evaluate_button = QToolButton()
        self.evaluate_button.setDefaultAction(self.evaluate_action)
        self.evaluate_button.setToolButtonStyle(Qt.ToolButtonTextOnly)
        self.evaluate_button.setMinimumWidth(120)
        self.sample_spin = QSpinBox()  # the sample Activations… shows: typed, or picked in the matrix or gallery
        self.sample_spin.setRange(0, 9_999_999)
        self.sample_spin.setPrefix("Test sample ")
        self.sample_spin.setToolTip("The test sample Activations… shows; clicking a cell or a picture below picks one")
        self.activations_button = QPushButton("Activations…")
        self.activations_button.setToolTip("Show what the current weights make of this test sample, layer by layer "
                                           "(double-click a picture below to go there at once)")
        self.activations_button.clicked.connect(lambda: self.activationsRequested.emit(self.sample_spin.value()))
        header = QHBoxLayout()
        header.addWidget(self.summary, 1)
        for widget in (self.sample_spin, self.activations_button, self.evaluate_button):
            header.addWidget(widget, 0, Qt.AlignTop)

        # classification page
        self.confusion_plot = self._plot()
        self.confusion_plot.invertY(True)
        self.confusion_plot.setLabel("left", "true class")
        self.confusion_plot.setLabel("bottom", "predicted class")
        self.confusion_image = ClickableImage()
        self.confusion_image.setColorMap(pg.colormap.get("CET-L17"))
        self.confusion_image.cellClicked.connect(lambda col, row: self.select_cell(row, col))
        self.confusion_plot.addItem(self.confusion_image)
        self._cell_texts: list[pg.TextItem] = []
        self._cell_marker = pg.QtWidgets.QGraphicsRectItem(0, 0, 1, 1)
        self._cell_marker.setPen(pg.mkPen(WRONG, width=3))
        self._cell_marker.setVisible(False)
        self.confusion_plot.addItem(self._cell_marker)
        self.row_percent = QCheckBox("Row %")
        self.row_percent.setToolTip("Show each cell as a share of its true class (the row) instead of a count")
        self.row_percent.toggled.connect(self._redraw_confusion)
        confusion = self._pane("Confusion matrix", self.confusion_plot, self.row_percent)

        self.class_table = QTableWidget(0, len(METRIC_COLUMNS))
        self.class_table.setHorizontalHeaderLabels(METRIC_COLUMNS)
        self.class_table.verticalHeader().setVisible(False)
        self.class_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.class_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.class_table.setAlternatingRowColors(True)
        self.class_table.setSortingEnabled(True)
        table_header = self.class_table.horizontalHeader()
        table_header.setSectionResizeMode(QHeaderView.Stretch)
        table_header.setSectionResizeMode(0, QHeaderView.ResizeToContents)
        table_header.setSortIndicator(0, Qt.AscendingOrder)
        for column, tip in ((2, "Of the samples predicted as this class, the share that are this class"),
                            (3, "Of the samples of this class, the share predicted as it (its accuracy)"),
                            (4, "The harmonic mean of precision and recall")):
            self.class_table.horizontalHeaderItem(column).setToolTip(tip)
        per_class = self._pane("Per class", self.class_table)

        self.samples_title = QLabel("Sample predictions")
        self.samples_title.setWordWrap(True)
        self.all_samples_button = QPushButton("All samples")
        self.all_samples_button.setToolTip("Back to the whole gallery of test predictions")
        self.all_samples_button.clicked.connect(self.show_all_samples)
        self.all_samples_button.hide()
        self.samples = QListWidget()
        self.samples.setViewMode(QListWidget.IconMode)
        self.samples.setIconSize(QSize(ICON_SIZE, ICON_SIZE))
        self.samples.setResizeMode(QListWidget.Adjust)
        self.samples.setMovement(QListWidget.Static)
        self.samples.setGridSize(QSize(ICON_SIZE + 44, ICON_SIZE + 36))
        self.samples.setWordWrap(True)
        self.samples.setSpacing(2)
        self.samples.itemClicked.connect(lambda item: self.sample_spin.setValue(item.data(Qt.UserRole)))
        self.samples.itemActivated.connect(lambda item: self.activationsRequested.emit(item.data(Qt.UserRole)))

        top = QSplitter(Qt.Horizontal)
        top.addWidget(confusion)
        top.addWidget(per_class)
        top.setSizes([560, 440])
        samples_header = QHBoxLayout()
        samples_header.addWidget(self.samples_title, 1)
        samples_header.addWidget(self.all_samples_button)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addLayout(samples_header)
        bottom_layout.addWidget(self.samples)
        classification = QSplitter(Qt.Vertical)
        classification.addWidget(top)
        classification.addWidget(bottom)
        classification.setSizes([450, 300])

        # regression page
        self.scatter_plot = self._plot("Predicted vs true (test samples)")
        self.scatter_plot.setLabel("bottom", "true")
        self.scatter_plot.setLabel("left", "predicted")
        self.scatter = pg.ScatterPlotItem(size=6, brush=(40, 110, 200, 150), pen=None)
        self.identity_line = pg.PlotDataItem(pen=pg.mkPen((120, 120, 120), style=Qt.DashLine))
        self.scatter_plot.addItem(self.identity_line)
        self.scatter_plot.addItem(self.scatter)

        self.empty = QLabel("")
        self.pages = QStackedWidget()
        self.pages.addWidget(self.empty)
        self.pages.addWidget(classification)
        self.pages.addWidget(self.scatter_plot)

        self.stale_banner = QLabel()  # results of a design edited since (or of replaced weights)
        self.stale_banner.setObjectName("staleBanner")
        self.stale_banner.setWordWrap(True)
        self.stale_banner.hide()

        layout = QVBoxLayout(self)
        layout.addWidget(self.stale_banner)
        layout.addLayout(header)
        layout.addWidget(self.pages, 1)
        controller.evaluated.connect(self.show_evaluation)
        controller.evaluationFailed.connect(self._evaluation_failed)
        controller.stateChanged.connect(self.update_evaluate_action)
        controller.modelChanged.connect(self.update_evaluate_action)
        controller.dataLoading.connect(self._progress)
        self.update_evaluate_action()
        for signal in (controller.evaluated, controller.modelChanged, controller.document.changed):
            signal.connect(self.refresh_stale)

    def refresh_stale(self, *_args) -> None:
        """Mark the results shown when they no longer belong to the open design or its current weights."""
        c = self.controller
        note = results_note(c.results_origin, c.model_origin, c.document) if self.evaluation is not None else ""
        self.stale_banner.setText(note)
        self.stale_banner.setVisible(bool(note))

    def heightForWidth(self, width: int) -> int:
        """None: the tab's scroll area would otherwise take the wrapping summary as a reason to ask every
        plot for its preferred height and scroll the page; the plots share the height the tab has."""
        return -1

    def _plot(self, title: str = "") -> pg.PlotWidget:
        plot = pg.PlotWidget(background=self._background)
        if title:
            plot.setTitle(title, color=self._foreground.name())
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setPen(self._foreground)
            plot.getAxis(axis).setTextPen(self._foreground)
        plot.setMenuEnabled(False)
        return plot

    @staticmethod
    def _pane(title: str, body: QWidget, tool: QWidget | None = None) -> QWidget:
        """A titled pane: a bold title line (with an optional control at its right) above ``body``."""
        pane = QWidget()
        layout = QVBoxLayout(pane)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        line = QHBoxLayout()
        label = QLabel(title)
        bold = QFont(label.font())
        bold.setBold(True)
        label.setFont(bold)
        line.addWidget(label, 1)
        if tool is not None:
            line.addWidget(tool)
        layout.addLayout(line)
        layout.addWidget(body, 1)
        return pane

    # ------------------------------------------------------------------ Evaluate
    def update_evaluate_action(self, *_args) -> None:
        """Evaluate with weights and nothing running; Stop Evaluating while it runs."""
        controller = self.controller
        evaluating = controller.state == states.EVALUATING
        self.evaluate_action.setText("Stop Evaluating" if evaluating else "Evaluate")
        self.evaluate_action.setEnabled(evaluating or controller.can_evaluate)
        if evaluating:
            tip = "Stop the evaluation at the next batch"
        elif controller.model is None:
            tip = "Train the design or load weights (File menu) first, then evaluate them on the test split"
        else:
            tip = "Evaluate the current weights on the test split, without training"
        self.evaluate_action.setToolTip(f"{tip} ({EVALUATE_KEY})")

    def evaluate_or_stop(self) -> bool:
        """What Evaluate does: start an evaluation, or stop the one running; True when one started."""
        if self.controller.state == states.EVALUATING:
            self.controller.stop_evaluation()
            return False
        started = self.controller.evaluate()
        if started:
            self.summary.setText("Evaluating the current weights…")
        return started

    def _progress(self, fraction: float, text: str) -> None:
        if self.controller.state == states.EVALUATING:
            self.summary.setText(text)

    def _evaluation_failed(self, text: str) -> None:
        self.summary.setText(sentence(text))

    # ------------------------------------------------------------------ showing
    def show_evaluation(self, evaluation, bundle=None) -> None:
        self.evaluation = evaluation
        self.bundle = bundle if bundle is not None else self.controller.data
        self.selected_cell = None
        what = "Test" if evaluation.split == "test" else "Validation"  # data without a test split
        parts = [f"{what} loss <b>{evaluation.loss:.4g}</b>"]
        if evaluation.accuracy is not None:
            parts.append(f"accuracy <b>{100 * evaluation.accuracy:.2f}%</b>")
        metrics = evaluation.class_metrics()
        if metrics:
            parts.append(f"macro F1 <b>{percent(macro_average(m.f1 for m in metrics))}</b>")
        if evaluation.count:
            parts.append(f"on {evaluation.count:,} {evaluation.split} samples")
            self.sample_spin.setMaximum(evaluation.count - 1)
        self.sample_spin.setPrefix(f"{what} sample ")
        self._pending_draw = None
        if evaluation.confusion is not None:
            self._fill_class_table(evaluation)
            self._draw_when_seen(self._draw_classification)
            self.pages.setCurrentIndex(1)
        elif self.bundle is not None and self.bundle.task == "regression":
            parts.append(f"RMSE <b>{math.sqrt(max(self._mse(evaluation), 0.0)):.4g}</b>")
            self._draw_when_seen(lambda: self._show_regression(evaluation))
            self.pages.setCurrentIndex(2)
        else:
            self.pages.setCurrentIndex(0)
        self.summary.setText(" · ".join(parts))

    def _draw_when_seen(self, draw) -> None:
        """Draw the pictures now if the tab can be seen (or stands alone), else when it is shown: a run that ends
        with another tab in front does not pay for a matrix and a grid of images nobody sees yet (~0.2 s of the
        UI thread for 10 classes and 500 samples)."""
        if self.window().isVisible() and not self.isVisible():
            self._pending_draw = draw
            return
        self._pending_draw = None
        draw()

    def _draw_pending(self) -> None:
        if self._pending_draw is not None:
            draw, self._pending_draw = self._pending_draw, None
            draw()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._draw_pending()

    @staticmethod
    def _mse(evaluation) -> float:
        if not evaluation.samples:
            return float("nan")
        return float(np.mean([(float(p.predicted) - float(p.target)) ** 2 for p in evaluation.samples]))

    def class_name(self, index: int) -> str:
        names = self.bundle.class_names if self.bundle is not None else []
        return names[index] if 0 <= index < len(names) else str(index)

    def _draw_classification(self) -> None:
        self._redraw_confusion()
        self.show_all_samples()

    def _redraw_confusion(self, *_args) -> None:
        """The matrix as colours (share of the row, square-rooted so small confusions stay visible) and,
        up to MAX_CELL_TEXT_CLASSES classes, each cell's count or, with Row %, its share of the row."""
        evaluation = self.evaluation
        if evaluation is None or evaluation.confusion is None:
            return
        matrix = np.asarray(evaluation.confusion, dtype=float)
        classes = len(matrix)
        totals = matrix.sum(axis=1, keepdims=True)
        share = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
        self.confusion_image.setImage(np.sqrt(share).T, levels=(0, 1))
        for item in self._cell_texts:
            self.confusion_plot.removeItem(item)
        self._cell_texts = []
        rows = self.row_percent.isChecked()
        if classes <= MAX_CELL_TEXT_CLASSES:
            for row in range(classes):
                for col in range(classes):
                    count = int(matrix[row, col])
                    if count == 0:
                        continue
                    color = "w" if share[row, col] > 0.45 else self._foreground
                    text = pg.TextItem(f"{100 * share[row, col]:.0f}%" if rows else str(count), color=color,
                                       anchor=(0.5, 0.5))
                    text.setPos(col + 0.5, row + 0.5)
                    self.confusion_plot.addItem(text)
                    self._cell_texts.append(text)
        self.confusion_image.setToolTip("Cells show the share of each true class (row) in %" if rows else
                                        "Cells count test samples; click one to see them")
        ticks = [[(i + 0.5, self.class_name(i)) for i in range(classes)]]
        for axis in ("left", "bottom"):
            self.confusion_plot.getAxis(axis).setTicks(ticks)
        self.confusion_plot.setRange(xRange=(0, classes), yRange=(0, classes), padding=0.02)

    def cell_texts(self) -> list[str]:
        """The numbers written on the confusion matrix, row by row (what the user reads)."""
        return [item.textItem.toPlainText() for item in self._cell_texts]

    def _fill_class_table(self, evaluation) -> None:
        table = self.class_table
        table.setSortingEnabled(False)
        metrics = evaluation.class_metrics() or []
        table.setRowCount(len(metrics))
        for row, metric in enumerate(metrics):
            cells = [NumberItem(self.class_name(row), row, Qt.AlignLeft),  # sorts in class order
                     NumberItem(f"{metric.support:,}", metric.support)]
            cells += [NumberItem(percent(value), value) for value in (metric.precision, metric.recall, metric.f1)]
            for column, item in enumerate(cells):
                table.setItem(row, column, item)
        table.setSortingEnabled(True)  # sorted again as the user last chose (class order at first)

    def class_table_rows(self) -> list[list[str]]:
        """The table's texts as shown, row by row."""
        table = self.class_table
        return [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]

    def show_all_samples(self) -> None:
        """The whole gallery of test predictions (the way back from one cell's samples)."""
        evaluation = self.evaluation
        self.selected_cell = None
        self._cell_marker.setVisible(False)
        self.all_samples_button.hide()
        if evaluation is None or evaluation.confusion is None:
            return
        self.samples_title.setText(f"Sample {evaluation.split} predictions (red: wrong). Click a cell of the "
                                   "confusion matrix to see its samples.")
        self._fill_grid([(p.index, int(p.predicted), int(p.target)) for p in evaluation.samples])

    def select_cell(self, true_class: int, predicted_class: int) -> list[int]:
        """Show the test samples of one confusion cell; returns their indices."""
        self._draw_pending()  # the matrix and the whole gallery first, as a user clicking a cell has seen them
        evaluation = self.evaluation
        if evaluation is None or evaluation.confusion is None or evaluation.predicted is None:
            return []
        classes = len(evaluation.confusion)
        if not (0 <= true_class < classes and 0 <= predicted_class < classes):
            return []
        targets = getattr(self.bundle, f"{evaluation.split}_y").tolist() if self.bundle is not None else None
        pairs = zip(evaluation.predicted, targets, strict=True) if targets is not None else ()
        indices = [i for i, (p, t) in enumerate(pairs) if p == predicted_class and t == true_class]
        self.selected_cell = (true_class, predicted_class)
        self._cell_marker.setRect(predicted_class, true_class, 1, 1)
        self._cell_marker.setVisible(True)
        self.all_samples_button.show()
        what = "correct" if true_class == predicted_class else "misclassified"
        shown = min(len(indices), GRID_LIMIT)
        self.samples_title.setText(
            f"True {self.class_name(true_class)}, predicted {self.class_name(predicted_class)}: "
            f"{len(indices)} {what} sample{'s' if len(indices) != 1 else ''}"
            + (f" (first {shown} shown)" if shown < len(indices) else ""))
        self._fill_grid([(i, predicted_class, true_class) for i in indices[:GRID_LIMIT]])
        if indices:
            self.sample_spin.setValue(indices[0])
        return indices

    def _fill_grid(self, rows: list[tuple[int, int, int]]) -> None:
        self.samples.clear()
        for index, predicted, target in rows:
            item = QListWidgetItem(f"pred {self.class_name(predicted)}\ntrue {self.class_name(target)}")
            item.setForeground(QBrush(RIGHT if predicted == target else WRONG))
            item.setToolTip(f"{self.evaluation.split} sample {index}")
            item.setData(Qt.UserRole, index)
            image = sample_image(self.bundle, index, self.evaluation.split) if self.bundle is not None else None
            if image is not None:
                pixmap = QPixmap.fromImage(image).scaled(ICON_SIZE, ICON_SIZE, Qt.KeepAspectRatio,
                                                         Qt.FastTransformation)
                item.setIcon(QIcon(pixmap))
            self.samples.addItem(item)

    def _show_regression(self, evaluation) -> None:
        true = np.array([float(p.target) for p in evaluation.samples])
        predicted = np.array([float(p.predicted) for p in evaluation.samples])
        self.scatter.setData(true, predicted)
        if len(true):
            finite = np.concatenate([true, predicted])
            finite = finite[np.isfinite(finite)]
            low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
            self.identity_line.setData([low, high], [low, high])
