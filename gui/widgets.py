"""Small widgets shared by the window's views: a headline, a message label, a progress bar of fractions, a label that
elides, labels that change often, a float spin box that takes 1e-3."""
from __future__ import annotations

import math
import re

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QDoubleSpinBox, QLabel, QProgressBar, QSizePolicy, QWidget


def message_label(text: str = "") -> QLabel:
    """A wrapping label whose text can be selected and copied (a status or an error sentence)."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    return label


def headline_label(text: str, scale: float) -> QLabel:
    """A view's wrapping, selectable headline in a font ``scale`` times the usual size."""
    label = message_label(text)
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * scale)
    label.setFont(font)
    return label


class FractionBar(QProgressBar):
    """A progress bar without text, set from a fraction of the work done (0 to 1) in steps of 0.1%."""

    STEPS = 1000

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setRange(0, self.STEPS)
        self.setTextVisible(False)

    def set_fraction(self, fraction: float) -> None:
        """Show ``fraction`` with the window's next paint. QProgressBar.setValue repaints at once (and, for a
        top-level window, flushes it to the screen) at every visible change: during a run the UI thread paid that
        at each progress line; with updates off for the call, enabling them again schedules an ordinary update."""
        value = int(min(max(fraction, 0.0), 1.0) * self.STEPS)
        if value == self.value():
            return
        self.setUpdatesEnabled(False)
        self.setValue(value)
        self.setUpdatesEnabled(True)


class ElidedLabel(QLabel):
    """A one-line label that never asks for more width than it gets: a text too long for it ends
    in "…" and shows whole in the tooltip, so the widgets beside it (a Copy button) stay in view."""

    def __init__(self, text: str = "", parent=None):
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:
        self._full = text
        self._fit()

    def text(self) -> str:
        """The whole text, not the part shown."""
        return self._full

    def is_elided(self) -> bool:
        return super().text() != self._full

    def sizeHint(self) -> QSize:
        return QSize(self.fontMetrics().horizontalAdvance(self._full) + 4, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight,
                                              max(0, self.contentsRect().width()))
        super().setText(shown)
        self.setToolTip(self._full if shown != self._full else "")


class LabelStack(QWidget):
    """Wrapping labels one under the other, placed by hand: status lines whose texts change several times a
    second during a run. In a layout, each new text of a QLabel re-lays out every layout above it even when
    its size stays the same (about 1 ms in the Training tab, the plots' canvas included); here a new text
    re-lays out the window only when the lines' height changes."""

    def __init__(self, *labels: QLabel, spacing: int = 6):
        super().__init__()
        self.labels = labels
        self._spacing = spacing
        self._height = -1
        self._heights: dict[QLabel, tuple[tuple[str, int, str], int]] = {}
        for label in labels:
            label.setParent(self)
        policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)

    def _shown(self) -> list[QLabel]:
        return [label for label in self.labels if label.isVisibleTo(self)]

    def _label_height(self, label: QLabel, width: int) -> int:
        """The label's height at ``width``, measured once per text, width and font (a wrapped label lays its text
        out to answer)."""
        key = (label.text(), width, label.font().key())
        kept = self._heights.get(label)
        if kept is None or kept[0] != key:
            height = label.heightForWidth(width)
            kept = self._heights[label] = key, height if height >= 0 else label.sizeHint().height()
        return kept[1]

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        shown = self._shown()
        return sum(self._label_height(label, width) for label in shown) + self._spacing * max(0, len(shown) - 1)

    def sizeHint(self) -> QSize:
        width = max((label.sizeHint().width() for label in self._shown()), default=0)
        return QSize(width, self.heightForWidth(width))

    def minimumSizeHint(self) -> QSize:
        width = max((label.minimumSizeHint().width() for label in self._shown()), default=0)
        return QSize(width, self.heightForWidth(width))

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:  # a label's text or visibility changed
            self._place()
            return True
        return super().event(event)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place()

    def _place(self) -> None:
        top, width = 0, self.width()
        for label in self._shown():
            height = self._label_height(label, width)
            label.setGeometry(0, top, width, height)
            top += height + self._spacing
        height = max(0, top - self._spacing)
        if height != self._height:  # only then do the layouts above have anything to do
            self._height = height
            self.updateGeometry()


class FloatSpinBox(QDoubleSpinBox):
    """A float spin box that shows values as typed, compactly (1e-05, 0.001, 0.9), and takes scientific text.

    ``log_steps``: the arrows multiply by ten (a learning rate, a tiny eps); otherwise they add
    ``single_step``, or a step that adapts to the value's decimals when none is given. Letters other than
    an exponent's e are refused as typed; a number outside the range waits as unfinished input."""

    def __init__(self, minimum: float, maximum: float, log_steps: bool = False, single_step: float | None = None,
                 parent=None):
        super().__init__(parent)
        self.setDecimals(12)
        self.setRange(minimum, maximum)
        self.log_steps = log_steps
        if single_step is None:
            self.setStepType(QDoubleSpinBox.StepType.AdaptiveDecimalStepType)
        else:
            self.setSingleStep(single_step)

    def textFromValue(self, value: float) -> str:
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        stripped = text.strip()
        if not re.fullmatch(r"[-+0-9.eE]*", stripped):
            return QValidator.State.Invalid, text, pos
        try:
            value = float(stripped)
        except ValueError:
            return QValidator.State.Intermediate, text, pos
        if math.isfinite(value) and self.minimum() <= value <= self.maximum():
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Intermediate, text, pos

    def stepBy(self, steps: int) -> None:
        if self.log_steps and self.value() > 0:
            self.setValue(min(self.maximum(), max(self.minimum(), self.value() * 10.0**steps)))
        else:
            super().stepBy(steps)
