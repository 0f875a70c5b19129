"""The inspector's parameter tensors: for each, its state_dict name, shape, count, mean, std, min, max and a small
histogram of its values. Plain Qt (no torch): it shows ``engine.parameters.ParamStats`` it is given."""
from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QGridLayout, QGroupBox, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from engine.shapes import format_shape

BAR_COLOR = QColor("#4a7bd0")


class Histogram(QWidget):
    """A sparkline of bin counts from min to max: bars scaled to the tallest, drawn with QPainter."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.counts: tuple[int, ...] = ()
        self.setMinimumHeight(28)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(160, 28)

    def set_counts(self, counts) -> None:
        self.counts = tuple(counts)
        self.setToolTip(f"{sum(self.counts):,} values in {len(self.counts)} equal bins from min to max")
        self.update()

    def paintEvent(self, _event) -> None:
        if not self.counts:
            return
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().alternateBase())
        tallest = max(self.counts) or 1
        width = self.width() / len(self.counts)
        height = self.height() - 2
        for i, count in enumerate(self.counts):
            if count:
                bar = max(1.0, height * count / tallest)
                painter.fillRect(QRectF(i * width + 0.5, self.height() - 1 - bar, max(width - 1, 1.0), bar), BAR_COLOR)
        painter.end()


def _number(value: float) -> str:
    return f"{value:.3g}" if value else "0"


class ParameterView(QGroupBox):
    """The selected layer's parameter tensors, one block each, under a line saying which weights they are
    (trained, loaded, or the ones a run starts from). ``computeRequested``: the person asked for the statistics
    of a design too large to build on every edit."""

    computeRequested = Signal()

    def __init__(self, parent=None):
        super().__init__("Parameter tensors", parent)
        self.setObjectName("parameterView")
        layout = QVBoxLayout(self)
        layout.setSpacing(6)
        self.caption = QLabel()
        self.caption.setObjectName("help")
        self.caption.setWordWrap(True)
        layout.addWidget(self.caption)
        self.compute_button = QPushButton("Show statistics")
        self.compute_button.clicked.connect(self.computeRequested)
        layout.addWidget(self.compute_button)
        self.body = QWidget()
        self.grid = QGridLayout(self.body)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(8)
        self.grid.setVerticalSpacing(2)
        layout.addWidget(self.body)
        self.stats: list = []  # the ParamStats shown, in state_dict order
        self.numbers: list[QLabel] = []  # each tensor's mean, std, min and max as shown
        self.histograms: list[Histogram] = []

    def show_stats(self, stats, caption: str) -> None:
        """Show ``stats`` (ParamStats in state_dict order) under ``caption``."""
        self.caption.setText(caption)
        self.compute_button.hide()
        self._clear()
        self.stats = list(stats)
        row = 0
        for item in stats:
            name = QLabel(f"<b>{item.name}</b>")
            name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            size = QLabel(f"{format_shape(item.shape)} · {item.count:,}")
            size.setObjectName("caption")
            self.grid.addWidget(name, row, 0)
            self.grid.addWidget(size, row, 1, Qt.AlignmentFlag.AlignRight)
            numbers = QLabel(f"mean {_number(item.mean)}   std {_number(item.std)}\n"
                             f"min {_number(item.min)}   max {_number(item.max)}")
            numbers.setObjectName("value")
            numbers.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            numbers.setToolTip(f"mean {item.mean:.6g}, std {item.std:.6g}, min {item.min:.6g}, max {item.max:.6g}")
            histogram = Histogram()
            histogram.set_counts(item.histogram)
            self.grid.addWidget(numbers, row + 1, 0, 1, 2)
            self.grid.addWidget(histogram, row + 2, 0, 1, 2)
            self.numbers.append(numbers)
            self.histograms.append(histogram)
            self.grid.setRowMinimumHeight(row + 3, 6)  # a gap before the next tensor
            row += 4
        self.grid.setColumnStretch(0, 1)
        self.body.setVisible(bool(stats))

    def ask_to_compute(self, caption: str) -> None:
        """No statistics yet: ``caption`` says why, and Show statistics computes them."""
        self.caption.setText(caption)
        self._clear()
        self.body.hide()
        self.compute_button.show()

    def _clear(self) -> None:
        while self.grid.count():
            widget = self.grid.takeAt(0).widget()
            if widget is not None:
                widget.hide()  # gone from the view now; deleted once the event loop runs
                widget.deleteLater()
        self.stats, self.numbers, self.histograms = [], [], []
