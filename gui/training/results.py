"""The "Results" tab: test loss and accuracy, confusion matrix, per-class accuracy, sample predictions.

Clicking a confusion-matrix cell shows that cell's samples (true class row,
predicted class column) as images. Regression shows the metric and a
predicted-vs-true scatter.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPalette, QPixmap
from PySide6.QtWidgets import (QLabel, QListWidget, QListWidgetItem, QSplitter, QStackedWidget, QVBoxLayout, QWidget)

from gui.training.provenance import results_note

MAX_CELL_TEXT_CLASSES = 20
GRID_LIMIT = 64
ICON_SIZE = 56
WRONG = QColor(200, 30, 40)
RIGHT = QColor(30, 130, 60)


def sample_image(bundle, index: int, split: str = "test") -> QImage | None:
    """One sample of a bundle as a QImage (de-normalised), or None for non-image inputs."""
    x = getattr(bundle, f"{split}_x")[index]
    if x.dim() == 1 and math.isqrt(x.numel()) ** 2 == x.numel():  # flattened square grayscale (e.g. 784)
        side = math.isqrt(x.numel())
        x = x.view(1, side, side)
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        return None
    x = x.detach().float().cpu()
    if bundle.mean is not None and bundle.std is not None and len(bundle.mean) == x.shape[0]:
        mean = torch.tensor(bundle.mean).view(-1, 1, 1)
        std = torch.tensor(bundle.std).view(-1, 1, 1)
        x = x * std + mean
    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    height, width, channels = pixels.shape
    fmt = QImage.Format_Grayscale8 if channels == 1 else QImage.Format_RGB888
    return QImage(pixels.data, width, height, width * channels, fmt).copy()


class ClickableImage(pg.ImageItem):
    """An ImageItem that reports the (column, row) cell clicked."""

    cellClicked = Signal(int, int)

    def mouseClickEvent(self, event):  # noqa: N802 - pyqtgraph's name
        if event.button() == Qt.LeftButton:
            pos = event.pos()
            self.cellClicked.emit(int(math.floor(pos.x())), int(math.floor(pos.y())))
            event.accept()


class ResultsView(QWidget):
    """Shows the controller's last test evaluation."""

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.evaluation = None
        self.bundle = None
        self.selected_cell: tuple[int, int] | None = None
        palette = self.palette()
        self._background = palette.color(QPalette.Base)
        self._foreground = palette.color(QPalette.Text)

        self.summary = QLabel("No results yet: train the design, and its test results appear here.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        font = self.summary.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.summary.setFont(font)

        # classification page
        self.confusion_plot = self._plot("Confusion matrix")
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

        self.class_plot = self._plot("Accuracy per class (%)")
        self.class_plot.setYRange(0, 100)
        self.class_bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush=(40, 110, 200))
        self.class_plot.addItem(self.class_bars)

        self.samples_title = QLabel("Sample predictions")
        self.samples = QListWidget()
        self.samples.setViewMode(QListWidget.IconMode)
        self.samples.setIconSize(QSize(ICON_SIZE, ICON_SIZE))
        self.samples.setResizeMode(QListWidget.Adjust)
        self.samples.setMovement(QListWidget.Static)
        self.samples.setGridSize(QSize(ICON_SIZE + 44, ICON_SIZE + 36))
        self.samples.setWordWrap(True)
        self.samples.setSpacing(2)

        top = QSplitter(Qt.Horizontal)
        top.addWidget(self.confusion_plot)
        top.addWidget(self.class_plot)
        top.setSizes([500, 400])
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addWidget(self.samples_title)
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
        layout.addWidget(self.summary)
        layout.addWidget(self.pages, 1)
        controller.evaluated.connect(self.show_evaluation)
        for signal in (controller.evaluated, controller.modelChanged, controller.document.changed):
            signal.connect(self.refresh_stale)

    def refresh_stale(self, *_args) -> None:
        """Mark the results shown when they no longer belong to the open design or its current weights."""
        c = self.controller
        note = results_note(c.results_origin, c.model_origin, c.document) if self.evaluation is not None else ""
        self.stale_banner.setText(note)
        self.stale_banner.setVisible(bool(note))

    def _plot(self, title: str) -> pg.PlotWidget:
        plot = pg.PlotWidget(background=self._background)
        plot.setTitle(title, color=self._foreground.name())
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setPen(self._foreground)
            plot.getAxis(axis).setTextPen(self._foreground)
        plot.setMenuEnabled(False)
        return plot

    # ------------------------------------------------------------------ showing
    def show_evaluation(self, evaluation, bundle=None) -> None:
        self.evaluation = evaluation
        self.bundle = bundle if bundle is not None else self.controller.data
        self.selected_cell = None
        what = "Test" if evaluation.split == "test" else "Validation"  # data without a test split
        parts = [f"{what} loss <b>{evaluation.loss:.4g}</b>"]
        if evaluation.accuracy is not None:
            parts.append(f"accuracy <b>{100 * evaluation.accuracy:.2f}%</b>")
        if evaluation.count:
            parts.append(f"on {evaluation.count:,} {evaluation.split} samples")
        if evaluation.confusion is not None:
            self._show_classification(evaluation)
            self.pages.setCurrentIndex(1)
        elif self.bundle is not None and self.bundle.task == "regression":
            parts.append(f"RMSE <b>{math.sqrt(max(self._mse(evaluation), 0.0)):.4g}</b>")
            self._show_regression(evaluation)
            self.pages.setCurrentIndex(2)
        else:
            self.pages.setCurrentIndex(0)
        self.summary.setText(" · ".join(parts))

    @staticmethod
    def _mse(evaluation) -> float:
        if not evaluation.samples:
            return float("nan")
        return float(np.mean([(float(p.predicted) - float(p.target)) ** 2 for p in evaluation.samples]))

    def class_name(self, index: int) -> str:
        names = self.bundle.class_names if self.bundle is not None else []
        return names[index] if 0 <= index < len(names) else str(index)

    def _show_classification(self, evaluation) -> None:
        matrix = np.asarray(evaluation.confusion, dtype=float)
        classes = len(matrix)
        totals = matrix.sum(axis=1, keepdims=True)
        share = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
        self.confusion_image.setImage(np.sqrt(share).T, levels=(0, 1))  # sqrt: small confusions stay visible
        for item in self._cell_texts:
            self.confusion_plot.removeItem(item)
        self._cell_texts = []
        if classes <= MAX_CELL_TEXT_CLASSES:
            for row in range(classes):
                for col in range(classes):
                    count = int(matrix[row, col])
                    if count == 0:
                        continue
                    color = "w" if share[row, col] > 0.45 else self._foreground
                    text = pg.TextItem(str(count), color=color, anchor=(0.5, 0.5))
                    text.setPos(col + 0.5, row + 0.5)
                    self.confusion_plot.addItem(text)
                    self._cell_texts.append(text)
        ticks = [[(i + 0.5, self.class_name(i)) for i in range(classes)]]
        for axis in ("left", "bottom"):
            self.confusion_plot.getAxis(axis).setTicks(ticks)
        self.confusion_plot.setRange(xRange=(0, classes), yRange=(0, classes), padding=0.02)
        self._cell_marker.setVisible(False)

        per_class = [100.0 * a if a is not None and math.isfinite(a) else 0.0
                     for a in (evaluation.per_class_accuracy or [])]
        self.class_bars.setOpts(x=np.arange(len(per_class)), height=per_class, width=0.7)
        self.class_plot.getAxis("bottom").setTicks([[(i, self.class_name(i)) for i in range(len(per_class))]])
        self.class_plot.setXRange(-0.6, len(per_class) - 0.4, padding=0)
        self.class_plot.setYRange(0, 100)
        self.class_bars.setToolTip("\n".join(f"{self.class_name(i)}: {v:.1f}%" for i, v in enumerate(per_class)))

        self.samples_title.setText("Sample test predictions (red: wrong). Click a cell of the confusion matrix "
                                   "to see its samples.")
        self._fill_grid([(p.index, int(p.predicted), int(p.target)) for p in evaluation.samples])

    def select_cell(self, true_class: int, predicted_class: int) -> list[int]:
        """Show the test samples of one confusion cell; returns their indices."""
        evaluation = self.evaluation
        if evaluation is None or evaluation.confusion is None or evaluation.predicted is None:
            return []
        classes = len(evaluation.confusion)
        if not (0 <= true_class < classes and 0 <= predicted_class < classes):
            return []
        targets = getattr(self.bundle, f"{evaluation.split}_y").tolist() if self.bundle is not None else []
        indices = [i for i, (p, t) in enumerate(zip(evaluation.predicted, targets))
                   if p == predicted_class and t == true_class]
        self.selected_cell = (true_class, predicted_class)
        self._cell_marker.setRect(predicted_class, true_class, 1, 1)
        self._cell_marker.setVisible(True)
        what = "correct" if true_class == predicted_class else "misclassified"
        shown = min(len(indices), GRID_LIMIT)
        self.samples_title.setText(
            f"True {self.class_name(true_class)}, predicted {self.class_name(predicted_class)}: "
            f"{len(indices)} {what} sample{'s' if len(indices) != 1 else ''}"
            + (f" (first {shown} shown)" if shown < len(indices) else ""))
        self._fill_grid([(i, predicted_class, true_class) for i in indices[:GRID_LIMIT]])
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
