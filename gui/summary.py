"""The summary footer: totals of the design's analysis and the Train button."""
from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from engine.shapes import format_count, format_shape
from gui.icons import icon

FIELDS = ("Parameters", "Trainable", "Size", "MACs", "Output", "Errors")


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
        self.train_button = QPushButton(icon("train"), "  Train")
        self.train_button.setObjectName("trainButton")
        self.train_button.setMinimumWidth(120)
        layout.addWidget(self.train_button)
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
        can_train = analysis.ok and bool(analysis.rows)
        self.train_button.setEnabled(can_train)
        self.train_button.setToolTip("Train this network" if can_train else
                                     "Fix the errors in the design first" if errors else "Add layers first")
