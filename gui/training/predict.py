"""The "Predict" tab: drop or open an image (or type a row of numbers) and see what the model predicts.

The input is prepared exactly like the training data (engine.predict: same decoding, resize, colours
and normalisation statistics); the tab shows the picture as the model sees it and the class
probabilities (or the output values for regression) as a bar chart with the class names. It uses
the controller's current weights (trained or loaded) and its data, loading the data first when needed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QFont, QPalette, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.data import IMAGE_EXTENSIONS
from engine.errors import LayerStudioError
from engine.predict import IMAGE, TABLE, InputFormat, Predictor, prepare_image, prepare_row
from engine.text import sentence
from engine.training import TrainConfig
from gui.training import controller as states
from gui.training.provenance import weights_note
from gui.training.sample_images import RIGHT, tensor_image
from gui.training.styles import ERROR_STYLE

PREVIEW_SIZE = 240
MAX_BARS = 20       # more classes than this: the most probable ones are shown
LABELED_BARS = 3    # the most probable classes get their percentage written above the bar
BAR_COLOR = (40, 110, 200)
IMAGE_FILTER = "Images (" + " ".join(f"*{suffix}" for suffix in IMAGE_EXTENSIONS) + ");;All files (*)"


def dropped_files(mime) -> list[str]:
    """Local file paths carried by a drag (URLs of files), in order."""
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()] if mime.hasUrls() else []


class ImageDrop(QLabel):
    """The input picture as the model sees it (enlarged, pixels kept sharp); says what to drop when empty."""

    def __init__(self):
        super().__init__()
        self.setAlignment(Qt.AlignCenter)
        self.setFixedSize(QSize(PREVIEW_SIZE, PREVIEW_SIZE))
        self.setFrameShape(QFrame.StyledPanel)
        self.setWordWrap(True)
        self.setStyleSheet("QLabel { border: 2px dashed #b8c0cc; border-radius: 6px; background: #fafbfc; "
                           "color: #5b6470; padding: 8px; }")
        self.clear_image()

    def clear_image(self) -> None:
        self.clear()
        self.setText("Drop an image here\nor use Open Image…")

    def show_image(self, image) -> None:
        pixmap = QPixmap.fromImage(image).scaled(PREVIEW_SIZE - 16, PREVIEW_SIZE - 16, Qt.KeepAspectRatio,
                                                 Qt.FastTransformation)
        self.setPixmap(pixmap)


class PredictPanel(QWidget):
    """Predict single inputs with the current weights; shows the prepared input and the probabilities."""

    predicted = Signal(object)   # engine.predict.PredictionResult
    failed = Signal(str)         # a sentence saying why there is no prediction
    activationsRequested = Signal(object, str, object, object)  # the prepared input, its name, mean, std

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.result = None
        self._prepared: tuple | None = None              # the last input predicted, as the model took it
        self._pending: tuple[str, str] | None = None   # (IMAGE or TABLE, path or text) waiting for the data
        self._last: tuple[str, str] | None = None      # the last input, predicted again with new weights
        self._stale = False
        self.setAcceptDrops(True)
        palette = self.palette()
        foreground = palette.color(QPalette.Text)

        self.open_action = QAction("Predict from Image…", self)
        self.open_action.setStatusTip("Open an image and predict its class with the current weights")
        self.open_action.triggered.connect(self.ask_image)

        self.drop = ImageDrop()
        self.seen_label = QLabel()
        self.seen_label.setWordWrap(True)
        self.open_button = QPushButton("Open Image…")
        self.open_button.setToolTip("Choose an image file to predict (or drop one on this tab)")
        self.open_button.clicked.connect(self.ask_image)
        image_box = QGroupBox("Image")
        image_layout = QVBoxLayout(image_box)
        image_layout.addWidget(self.drop, 0, Qt.AlignHCenter)
        image_layout.addWidget(self.seen_label)
        image_layout.addWidget(self.open_button, 0, Qt.AlignRight)

        self.row_edit = QLineEdit()
        self.row_edit.setPlaceholderText("e.g. 1.5, -2, 0.3")
        self.row_edit.setToolTip("One value per feature column, in the order of the training data")
        self.row_edit.returnPressed.connect(self.predict_typed_row)
        self.row_button = QPushButton("Predict")
        self.row_button.clicked.connect(self.predict_typed_row)
        row_line = QHBoxLayout()
        row_line.addWidget(self.row_edit, 1)
        row_line.addWidget(self.row_button)
        table_box = QGroupBox("Numbers (tabular data)")
        table_layout = QVBoxLayout(table_box)
        table_layout.addLayout(row_line)

        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        left = QVBoxLayout()
        left.addWidget(self.model_label)
        left.addWidget(image_box)
        left.addWidget(table_box)
        left.addStretch(1)
        left_widget = QWidget()
        left_widget.setLayout(left)
        left_widget.setFixedWidth(PREVIEW_SIZE + 110)

        self.headline = QLabel("No prediction yet.")
        headline_font = QFont(self.headline.font())
        headline_font.setPointSizeF(headline_font.pointSizeF() * 1.5)
        self.headline.setFont(headline_font)
        self.headline.setWordWrap(True)
        self.headline.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet(ERROR_STYLE)
        self.problem.hide()
        self.chart = pg.PlotWidget(background=palette.color(QPalette.Base))
        self.chart.setMenuEnabled(False)
        self.chart.setMouseEnabled(x=False, y=False)
        self.chart.hideButtons()
        for axis in ("left", "bottom"):
            self.chart.getAxis(axis).setPen(foreground)
            self.chart.getAxis(axis).setTextPen(foreground)
        self._foreground = foreground
        self.chart.hide()  # until the first prediction: empty axes say nothing
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush=BAR_COLOR)
        self.chart.addItem(self.bars)
        self._bar_texts: list[pg.TextItem] = []
        self._bar_names: list[str] = []
        self._bar_heights: list[float] = []
        self.activations_button = QPushButton("Activations…")
        self.activations_button.setToolTip("Show what the weights make of this input, layer by layer")
        self.activations_button.setEnabled(False)
        self.activations_button.clicked.connect(lambda: self.activationsRequested.emit(*self._prepared))
        headline = QHBoxLayout()
        headline.addWidget(self.headline, 1)
        headline.addWidget(self.activations_button, 0, Qt.AlignTop)
        right = QVBoxLayout()
        right.addLayout(headline)
        right.addWidget(self.problem)
        right.addWidget(self.chart, 1)
        right.addStretch(0)

        layout = QHBoxLayout(self)
        layout.addWidget(left_widget)
        layout.addLayout(right, 1)

        c = controller
        c.stateChanged.connect(self._state_changed)
        c.modelChanged.connect(self._model_changed)
        c.dataLoaded.connect(self._data_loaded)
        c.dataFailed.connect(self._data_failed)
        c.document.changed.connect(self.update_controls)  # weights of a design edited since: said below
        self.update_controls()

    # ------------------------------------------------------------------ asking
    def ask_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Predict from image", "", IMAGE_FILTER)
        if path:
            self.predict_image(path)

    def predict_typed_row(self) -> None:
        self.predict_row(self.row_edit.text())

    def predict_image(self, path: str | Path):
        """Predict an image file; the result now, or None (the data loads first, or a problem is shown)."""
        return self._request((IMAGE, str(path)))

    def predict_row(self, text: str):
        """Predict a typed row of numbers; the result now, or None (see predict_image)."""
        return self._request((TABLE, text))

    # ------------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, event) -> None:
        if dropped_files(event.mimeData()) and self.controller.state == states.IDLE:
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        files = dropped_files(event.mimeData())
        if files:
            event.acceptProposedAction()
            self.predict_image(files[0])

    # ------------------------------------------------------------------ predicting
    def _request(self, request: tuple[str, str]):
        controller = self.controller
        if controller.model is None:
            return self._fail("There are no weights yet: train the design (Training tab) or load weights "
                              "(File → Load Weights…) first.")
        if controller.state != states.IDLE:
            return self._fail("A run or an evaluation is going: predict when it has ended.")
        try:
            bundle = controller.cached_data(controller.data_config())
        except LayerStudioError as exc:
            return self._fail(str(exc))
        if bundle is None:  # the statistics and class names come from the data: load it, then predict
            self._pending = request
            self.headline.setText("Loading the data the weights were trained on…")
            self.problem.hide()
            if not controller.load_data():
                self._pending = None
                return self._fail("The data could not be loaded now: try again when the run has ended.")
            return None
        return self._predict(request, bundle)

    def _predict(self, request: tuple[str, str], bundle):
        kind, value = request
        self._last = request
        try:
            predictor = Predictor(self.controller.model_spec or self.controller.document.spec,
                                  self.controller.model, bundle, self._train_config())
            if kind == IMAGE:
                x = prepare_image(value, predictor.format)
                result = predictor.tensor(x, [Path(value).name])[0]
            else:
                x = prepare_row(value, predictor.format)
                result = predictor.tensor(x, [value.strip()])[0]
        except LayerStudioError as exc:  # the last result stays, named by its own input
            return self._fail(str(exc))
        self._prepared = (x, result.source, predictor.format.mean, predictor.format.std)
        self.activations_button.setEnabled(True)
        self._show_input(x[0] if kind == IMAGE else None, predictor)
        self.show_result(result)
        return result

    def _train_config(self) -> TrainConfig:
        try:
            return self.controller.train_config()
        except LayerStudioError:
            return TrainConfig()  # only the loss is read: how outputs become probabilities

    def _fail(self, text: str) -> None:
        text = sentence(text)
        self.problem.setText(text)
        self.problem.show()
        self.failed.emit(text)
        return None

    # ------------------------------------------------------------------ showing
    def _show_input(self, x, predictor) -> None:
        """The prepared image as the model sees it (a typed row leaves the picture empty)."""
        image = tensor_image(x, predictor.format.mean, predictor.format.std) if x is not None else None
        if image is None:
            self.drop.clear_image()
            self.seen_label.setText("")
            return
        self.drop.show_image(image)
        self.seen_label.setText(f"What the model sees: {predictor.format.describe()}, normalised like the "
                                "training data.")

    def show_result(self, result) -> None:
        self.result = result
        self.problem.hide()
        self.chart.show()
        for item in self._bar_texts:
            self.chart.removeItem(item)
        self._bar_texts = []
        self.headline.setText(self.headline_text())
        if result.classification:
            shown = sorted(range(len(result.scores)), key=lambda i: -result.scores[i])[:MAX_BARS]
            if len(result.scores) <= MAX_BARS:
                shown.sort()  # all classes fit: keep their own order
            heights = [100 * result.scores[i] for i in shown]
            names = [result.names[i] for i in shown]
            brushes = [pg.mkBrush(RIGHT if i == result.predicted else BAR_COLOR) for i in shown]
            self.chart.setTitle("Probability per class (%)" + (f", the {MAX_BARS} most probable"
                                                                if len(result.scores) > MAX_BARS else ""),
                                color=self._foreground.name())
            top = sorted(range(len(shown)), key=lambda k: -heights[k])[:LABELED_BARS]
            labels = {k: f"{heights[k]:.1f}%" for k in top}
            low, high = 0.0, 100.0
        else:
            heights, names = list(result.scores), list(result.names)
            brushes = [pg.mkBrush(BAR_COLOR)] * len(heights)
            self.chart.setTitle("Output values", color=self._foreground.name())
            labels = {k: f"{v:.4g}" for k, v in enumerate(heights)}
            low, high = min(0.0, *heights), max(0.0, *heights)
            pad = 0.1 * (high - low or 1.0)
            low, high = low - (pad if low < 0 else 0), high + pad
        self._bar_names, self._bar_heights = names, [float(h) for h in heights]
        positions = np.arange(len(heights))
        self.bars.setOpts(x=positions, height=heights, width=0.7, brushes=brushes)
        self.chart.getAxis("bottom").setTicks([[(i, name) for i, name in enumerate(names)]])
        self.chart.setXRange(-0.6, len(heights) - 0.4, padding=0)
        self.chart.setYRange(low, high * 1.08 if high > 0 else high, padding=0)
        for k, text in labels.items():
            item = pg.TextItem(text, color=self._foreground, anchor=(0.5, 1.0 if heights[k] >= 0 else 0.0))
            item.setPos(k, heights[k])
            self.chart.addItem(item)
            self._bar_texts.append(item)
        self.predicted.emit(result)

    def headline_text(self) -> str:
        """``Predicted <b>7</b> (98.1%) · seven.png``, or what to do while there is no prediction."""
        result = self.result
        if result is None:
            return "No prediction yet."
        if result.classification:
            return f"Predicted <b>{result.label}</b> ({100 * result.scores[result.predicted]:.1f}%) · {result.source}"
        return f"Predicted <b>{result.label}</b> · {result.source}"

    def bar_values(self) -> tuple[list[str], list[float]]:
        """The chart's class names and bar heights, left to right (what the user reads)."""
        return list(self._bar_names), list(self._bar_heights)

    # ------------------------------------------------------------------ following the controller
    def update_controls(self, *_args) -> None:
        controller = self.controller
        ready = controller.model is not None and controller.state == states.IDLE
        bundle = self._bundle()
        try:
            kind = InputFormat.of(bundle).kind if bundle is not None else None
        except LayerStudioError:
            kind = None
        for widget in (self.open_button, self.open_action):
            widget.setEnabled(ready and kind in (None, IMAGE))
        for widget in (self.row_button, self.row_edit):
            widget.setEnabled(ready and kind in (None, TABLE))
        if controller.model is None:
            self.model_label.setText("Train the design or load weights (File → Load Weights…), then drop an "
                                     "image here or type a row of numbers.")
        elif controller.state != states.IDLE:
            self.model_label.setText("Predictions wait until the run or evaluation has ended.")
        else:
            what = ""
            if bundle is not None:
                try:
                    what = f" The model takes {InputFormat.of(bundle).describe()} ({bundle.name})."
                except LayerStudioError as exc:
                    what = f" {sentence(str(exc))}"
            stale = weights_note(controller.model_origin, controller.document)
            self.model_label.setText("Drop an image on this tab, open one, or type a row of numbers; it is "
                                     "prepared like the training data." + what + (f" {stale}" if stale else ""))

    def _bundle(self):
        try:
            return self.controller.cached_data(self.controller.data_config())
        except LayerStudioError:
            return None

    def _state_changed(self, state: str) -> None:
        self.update_controls()
        if state == states.IDLE and self._pending is not None:  # the loading ended without data (stopped)
            self._pending = None
            self.headline.setText(self.headline_text())
        if state == states.IDLE and self._stale and self._last is not None and self._bundle() is not None:
            self._stale = False
            self._request(self._last)  # the same input, with the new weights

    def _model_changed(self) -> None:
        self._stale = True
        if self.controller.state == states.IDLE:
            self._state_changed(states.IDLE)
        self.update_controls()

    def _data_loaded(self, bundle) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and self.controller.state in (states.IDLE, states.LOADING):
            self._predict(pending, bundle)
        self.update_controls()

    def _data_failed(self, text: str) -> None:
        if self._pending is not None:
            self._pending = None
            self.headline.setText(self.headline_text())
            self._fail(text)
