"""The summary footer: totals of the design's analysis and the Train button.

The Train button is the Training tab's Train action once the training GUI is attached
(``QToolButton.setDefaultAction``): one name, one enabled state, one tooltip saying why not.
Before that it follows the design alone, and ``waiting_for`` says what it still waits for.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from engine.shapes import format_count, format_shape
from gui.icons import icon
from gui.wording import shapes_in_prose

FIELDS = ("Parameters", "Trainable", "Size", "MACs", "Output", "Errors")
TRAIN_TIP = "Train the design on the chosen data (F5)"


def train_blocker(analysis) -> str:
    """Why the design cannot be trained as it is ('' when it can): a disabled Train button's tooltip."""
    if not analysis.rows:
        return "Add layers first."
    if analysis.errors:
        row = analysis.errors[0]
        return shapes_in_prose(f"The design has an error at layer {row.index} ({row.kind}): {row.error.rstrip('.')}.")
    return ""


class SummaryBar(QFrame):
    """Parameters, trainable, size (MB), MACs, output shape, error count; Train is off while errors exist."""

    def __init__(self, document, parent=None):
        super().__init__(parent)
        self.setObjectName("summary")
        self.document = document
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 12, 6)
        layout.setSpacing(22)
        self.values: dict[str, QLabel] = {}
        for name in FIELDS:
            cell = QWidget()
            cell_layout = QVBoxLayout(cell)
            cell_layout.setContentsMargins(0, 0, 0, 0)
            cell_layout.setSpacing(0)
            caption = QLabel(name.upper())
            caption.setObjectName("summaryCaption")
            value = QLabel()
            value.setObjectName("summaryValue")
            cell_layout.addWidget(caption)
            cell_layout.addWidget(value)
            layout.addWidget(cell)
            self.values[name] = value
        layout.addStretch(1)
        self.train_button = QToolButton()
        self.train_button.setObjectName("trainButton")
        self.train_button.setIcon(icon("train"))
        self.train_button.setText("Train")
        self.train_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.train_button.setMinimumWidth(120)
        self.train_button.ensurePolished()  # the style sheet's padding counts in the height below
        # as tall without its icon (a run shows "Training…" alone): a footer that changed height re-laid out and
        # repainted the whole window at each run's start and end
        self.train_button.setMinimumHeight(self.train_button.sizeHint().height())
        layout.addWidget(self.train_button)
        self.waiting_for = ""  # e.g. "PyTorch is still loading." until the training GUI is attached
        document.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        analysis = self.document.analysis
        at_least = "" if analysis.complete else "≥ "  # layers below an error have unknown costs
        self.values["Parameters"].setText(f"{at_least}{analysis.params:,}")
        self.values["Trainable"].setText(f"{at_least}{analysis.trainable:,}")
        self.values["Size"].setText(f"{at_least}{analysis.size_mb:.2f} MB")
        self.values["MACs"].setText(at_least + format_count(analysis.macs))
        self.values["Output"].setText(format_shape(analysis.output_shape))
        errors = len(analysis.errors)
        error_label = self.values["Errors"]
        error_label.setText("none" if not errors else str(errors))
        error_label.setProperty("bad", bool(errors))
        error_label.style().unpolish(error_label)
        error_label.style().polish(error_label)
        if self.train_button.defaultAction() is None:  # not yet the Train action: follows the design alone
            reason = train_blocker(analysis) or self.waiting_for
            self.train_button.setEnabled(not reason)
            self.train_button.setToolTip(reason or TRAIN_TIP)

    def add_line(self, widget: QWidget) -> None:
        """Show ``widget`` (e.g. the Cost view's line) after the totals, left of the Train button."""
        self.layout().insertWidget(len(FIELDS), widget, 1)

    def set_waiting_for(self, reason: str) -> None:
        """Keep Train off, saying ``reason`` ('' when nothing is awaited any more)."""
        self.waiting_for = reason
        self.refresh()
