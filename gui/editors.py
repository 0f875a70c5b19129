"""Typed editors for a layer parameter, made from the registry's Param schema.

Each editor emits ``edited(value)`` with a value the schema accepts (ints in
range, a known choice, a shape of positive integers), so any value a widget
allows is either valid or shown as an error on its layer by the analysis.
"""
from __future__ import annotations

import re

from PySide6.QtCore import QEvent, QPoint, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from engine.layer_init import STD, VALUE, TensorInit, methods_for
from engine.layers import PADDING_PRESETS, Param
from engine.spec import MAX_RANK
from gui.widgets import FloatSpinBox

INT_LIMIT = 2**31 - 1
SHAPE_SEPARATORS = re.compile(r"\s*[x×,\s]\s*")
INPUT_SHAPE_HINT = ("Write the input shape as CxHxW (channels x height x width), e.g. 1x28x28, "
                    "or as one number of features, e.g. 784.")


def parse_ints(text: str) -> tuple[int, ...]:
    """'1x28x28', '1, 28, 28', '(1 28 28)' -> (1, 28, 28); ValueError otherwise."""
    body = text.strip().strip("()[]").strip()
    if not body:
        raise ValueError("empty")
    return tuple(int(part) for part in SHAPE_SEPARATORS.split(body))


def format_ints(values) -> str:
    return "x".join(str(v) for v in values)


class ShapeValidator(QValidator):
    """Accepts 1..``max_len`` integers in [low, high] written like 1x28x28."""

    def __init__(self, low: int = 1, high: int = 1_000_000, max_len: int = MAX_RANK, parent=None):
        super().__init__(parent)
        self.low, self.high, self.max_len = low, high, max_len

    def check(self, text: str) -> QValidator.State:
        allowed = r"[\s()\[\]0-9x×,-]*" if self.low < 0 else r"[\s()\[\]0-9x×,]*"  # a minus where -1 is a value
        if not re.fullmatch(allowed, text):
            return QValidator.State.Invalid
        try:
            values = parse_ints(text)
        except ValueError:
            return QValidator.State.Intermediate
        if len(values) > self.max_len:
            return QValidator.State.Invalid
        if all(self.low <= v <= self.high for v in values):
            return QValidator.State.Acceptable
        return QValidator.State.Intermediate

    def validate(self, text: str, pos: int):
        return self.check(text), text, pos


class ShapeEdit(QLineEdit):
    """A line edit for a shape written like 1x28x28. While its text is not a shape (or a key is
    refused) it turns red and says what it expects: ``problem()``, its tooltip, ``problemChanged``."""

    problemChanged = Signal(str)

    def __init__(self, hint: str, low: int = 1, high: int = 1_000_000, parent=None):
        super().__init__(parent)
        self.hint = hint
        self.shape_validator = ShapeValidator(low, high, MAX_RANK, self)
        self.setValidator(self.shape_validator)
        self.setPlaceholderText("e.g. 1x28x28")
        self._problem = ""
        self.textChanged.connect(self.check)
        self.inputRejected.connect(self.show_hint)

    def is_shape(self) -> bool:
        return self.shape_validator.check(self.text()) == QValidator.State.Acceptable

    def problem(self) -> str:
        """The sentence saying what the field expects; "" while its text is a shape."""
        return self._problem

    def check(self, _text: str = "") -> None:
        """Say what the field expects, or nothing, for the text it holds now."""
        self._set_problem("" if self.is_shape() else self.hint)

    def show_hint(self) -> None:
        """Say what the field expects in a tooltip beside it (a key refused, Enter on a text that is not a shape)."""
        self._set_problem(self.hint)
        QToolTip.showText(self.mapToGlobal(QPoint(0, self.height())), self.hint, self)

    def _set_problem(self, problem: str) -> None:
        if problem == self._problem:
            return
        self._problem = problem
        self.setToolTip(problem)
        self.setProperty("invalid", bool(problem))
        self.style().unpolish(self)
        self.style().polish(self)
        self.problemChanged.emit(problem)


class ParamEditor(QWidget):
    """One parameter's editor; ``edited`` carries the new value, ``set_value`` never emits."""

    edited = Signal(object)

    def __init__(self, param: Param, parent=None):
        super().__init__(parent)
        self.param = param
        self.setToolTip(param.help)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self._layout = layout

    def value(self):
        raise NotImplementedError

    def set_value(self, value) -> None:
        raise NotImplementedError

    def focus_widget(self) -> QWidget:
        return self._layout.itemAt(0).widget()


def _int_spin(param: Param) -> QSpinBox:
    spin = QSpinBox()
    low = int(param.min) if param.min is not None else -INT_LIMIT
    high = int(param.max) if param.max is not None else INT_LIMIT
    spin.setRange(max(low, -INT_LIMIT), min(high, INT_LIMIT))
    spin.setKeyboardTracking(True)
    spin.setAccelerated(True)
    spin.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToNearestValue)
    return spin


def _float_spin(param: Param) -> FloatSpinBox:
    """Tiny defaults (like eps = 1e-5) step by factors of ten; others linearly, with a step suited to their range."""
    low = param.min if param.min is not None else -1e12
    high = param.max if param.max is not None else 1e12
    default = abs(param.default or 0.0)
    if high <= 1:
        step = 0.01 if default < 0.1 else 0.05
    else:
        step = 0.1 if high <= 100 else 1.0
    return FloatSpinBox(low, high, log_steps=0 < default < 1e-3, single_step=step)


class _SpinEditor(ParamEditor):
    """A spin-box editor; subclasses name the box to make and the value type."""

    make_spin = None
    convert = None

    def __init__(self, param: Param, parent=None):
        super().__init__(param, parent)
        self.spin = type(self).make_spin(param)
        self._layout.addWidget(self.spin)
        self.spin.valueChanged.connect(self.edited.emit)

    def value(self):
        return self.spin.value()

    def set_value(self, value) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(type(self).convert(value))
        self.spin.blockSignals(False)


class IntEditor(_SpinEditor):
    make_spin = staticmethod(_int_spin)
    convert = int


class FloatEditor(_SpinEditor):
    make_spin = staticmethod(_float_spin)
    convert = float


class BoolEditor(ParamEditor):
    def __init__(self, param: Param, parent=None):
        super().__init__(param, parent)
        self.box = QCheckBox()
        self._layout.addWidget(self.box)
        self._layout.addStretch(1)
        self.box.toggled.connect(self.edited.emit)

    def value(self):
        return self.box.isChecked()

    def set_value(self, value) -> None:
        self.box.blockSignals(True)
        self.box.setChecked(bool(value))
        self.box.blockSignals(False)


class ChoiceEditor(ParamEditor):
    def __init__(self, param: Param, parent=None):
        super().__init__(param, parent)
        self.combo = QComboBox()
        self.combo.addItems(list(param.choices))
        self._layout.addWidget(self.combo)
        self.combo.currentTextChanged.connect(self.edited.emit)

    def value(self):
        return self.combo.currentText()

    def set_value(self, value) -> None:
        self.combo.blockSignals(True)
        self.combo.setCurrentText(str(value))
        self.combo.blockSignals(False)


class IntsEditor(ParamEditor):
    """A tuple of integers typed as 1x28x28; emits only complete, valid tuples. While the text is
    not one, a line under the field says what it expects (``hint``)."""

    def __init__(self, param: Param, parent=None, low: int | None = None, high: int | None = None,
                 hint: str | None = None):
        super().__init__(param, parent)
        low = int(param.min) if low is None and param.min is not None else (low or 1)
        high = int(param.max) if high is None and param.max is not None else (high or 1_000_000)
        hint = hint or f"Write whole numbers from {low} to {high} joined by x, e.g. {format_ints(param.default)}."
        self.line = ShapeEdit(hint, low, high)
        self.validator = self.line.shape_validator
        self.problem = QLabel()
        self.problem.setObjectName("fieldProblem")
        self.problem.setWordWrap(True)
        self.problem.hide()
        column = QVBoxLayout()
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(self.line)
        column.addWidget(self.problem)
        self._layout.addLayout(column)
        self._current: tuple[int, ...] = ()
        self.line.textEdited.connect(self._on_text)
        self.line.editingFinished.connect(self._on_finished)
        self.line.problemChanged.connect(self._show_problem)
        # editingFinished does not come while the validator finds the text incomplete ("0x28x28", "1,,28"):
        # losing focus must still put the design's value back in the field
        self.line.installEventFilter(self)

    def focus_widget(self) -> QWidget:
        return self.line

    def eventFilter(self, watched, event) -> bool:
        if watched is self.line and event.type() == QEvent.Type.FocusOut:
            self._on_finished()
        return super().eventFilter(watched, event)

    def _show_problem(self, problem: str) -> None:
        self.problem.setText(problem)
        self.problem.setVisible(bool(problem))

    def _on_text(self, text: str) -> None:
        if self.line.is_shape():
            values = parse_ints(text)
            if values != self._current:
                self._current = values
                self.edited.emit(values)

    def _on_finished(self) -> None:
        """Leaving the field with an incomplete shape puts the last valid one back."""
        self.set_value(self._current)

    def value(self):
        return self._current

    def set_value(self, value) -> None:
        self._current = tuple(value)
        text = format_ints(self._current)
        if self.line.text() != text and not (self.line.hasFocus() and self._parses_to(self._current)):
            self.line.setText(text)
        self.line.check()  # a refused key may have shown the hint over a text that is a shape

    def _parses_to(self, values) -> bool:
        try:
            return parse_ints(self.line.text()) == tuple(values)
        except ValueError:
            return False


class PaddingEditor(ParamEditor):
    """A number of zeros per side, or a preset (valid / same / full)."""

    NUMBER = "number"

    def __init__(self, param: Param, parent=None):
        super().__init__(param, parent)
        self.spin = _int_spin(param)
        self.combo = QComboBox()
        self.combo.addItems([self.NUMBER, *PADDING_PRESETS])
        self.combo.setToolTip("valid = no padding, same = keep the size (stride 1), full = kernel-1 on each side")
        self._layout.addWidget(self.spin, 1)
        self._layout.addWidget(self.combo, 1)
        self.spin.valueChanged.connect(self._on_spin)
        self.combo.currentTextChanged.connect(self._on_combo)

    def _on_combo(self, text: str) -> None:
        self.spin.setEnabled(text == self.NUMBER)
        self.edited.emit(self.value())

    def _on_spin(self, _value: int) -> None:
        if self.combo.currentText() != self.NUMBER:
            self.combo.blockSignals(True)
            self.combo.setCurrentText(self.NUMBER)
            self.combo.blockSignals(False)
            self.spin.setEnabled(True)
        self.edited.emit(self.value())

    def value(self):
        preset = self.combo.currentText()
        return self.spin.value() if preset == self.NUMBER else preset

    def set_value(self, value) -> None:
        for widget in (self.spin, self.combo):
            widget.blockSignals(True)
        if isinstance(value, str):
            self.combo.setCurrentText(value)
        else:
            self.combo.setCurrentText(self.NUMBER)
            self.spin.setValue(int(value))
        self.spin.setEnabled(not isinstance(value, str))
        for widget in (self.spin, self.combo):
            widget.blockSignals(False)

    def apply_preset(self, preset: str) -> None:
        """Choose a preset as a user would (emits ``edited``)."""
        self.combo.setCurrentText(preset)


class InitEditor(QWidget):
    """How one tensor (weight or bias) starts: a method (engine.layer_init.METHODS, those its dimensions take) and,
    for normal and constant, its std or value beside it. ``edited`` carries a TensorInit; ``set_value`` never emits."""

    edited = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(8)  # "Kaiming uniform" elides before the inspector needs to scroll
        self.numbers = {"std": FloatSpinBox(STD.low, STD.high, log_steps=True),
                        "value": FloatSpinBox(VALUE.low, VALUE.high, single_step=0.1)}
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.combo, 2)
        for name, spin in self.numbers.items():
            spin.setToolTip(STD.help if name == "std" else "The value every element starts at")
            spin.setPrefix(f"{name} ")
            spin.setMinimumWidth(90)  # its range's longest text would widen the inspector past its dock
            spin.hide()
            layout.addWidget(spin, 1)
            spin.valueChanged.connect(self._emit)
        self.combo.currentIndexChanged.connect(self._emit)
        self._dims = -1
        self._current = TensorInit()
        self.set_dims(2)

    def set_dims(self, dims: int) -> None:
        """Offer the methods a tensor of ``dims`` dimensions takes (xavier and kaiming need 2 or more)."""
        if dims == self._dims:
            return
        self._dims = dims
        self.combo.blockSignals(True)
        self.combo.clear()
        for method in methods_for(dims):
            self.combo.addItem(method.label, method.name)
        self.combo.blockSignals(False)
        self.set_value(self._current)

    def value(self) -> TensorInit:
        method = self.combo.currentData() or "default"
        return TensorInit(method, std=self.numbers["std"].value(), value=self.numbers["value"].value())

    def set_value(self, init: TensorInit) -> None:
        self._current = init
        widgets = (self.combo, *self.numbers.values())
        for widget in widgets:
            widget.blockSignals(True)
        self.combo.setCurrentIndex(max(self.combo.findData(init.method), 0))
        self.numbers["std"].setValue(init.std)
        self.numbers["value"].setValue(init.value)
        for widget in widgets:
            widget.blockSignals(False)
        self._show_number(init.method)

    def _show_number(self, method: str) -> None:
        takes = TensorInit(method).spec.takes
        for name, spin in self.numbers.items():
            spin.setVisible(name == takes)

    def _emit(self, *_args) -> None:
        init = self.value()
        self._show_number(init.method)
        if init != self._current:
            self._current = init
            self.edited.emit(init)


EDITORS = {
    "int": IntEditor, "float": FloatEditor, "bool": BoolEditor,
    "choice": ChoiceEditor, "ints": IntsEditor, "padding": PaddingEditor,
}


def make_editor(param: Param, parent=None) -> ParamEditor:
    """The editor that fits ``param.type``."""
    return EDITORS[param.type](param, parent)
