"""The Search tab's form: what to search (settings and the design's knobs), the objective, the budget, the pruner.

Every range is checked by the engine's own reading of a search space (engine.search_space.SearchSpace.from_dict),
so the window and space.json refuse the same things with the same sentence, shown under the row it is about.
The settings offered are those a search can draw (engine.search_space.declared_settings): the default space's
rows (learning rate, batch size, weight decay) to start with, any other by **Add a setting**.
"""
from __future__ import annotations

import math

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QRadioButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.errors import TrainingError
from engine.schema import Setting, when_text
from engine.search import OBJECTIVES as DIRECTIONS
from engine.search import PRUNERS as PRUNER_NAMES
from engine.search_space import (
    SearchSpace,
    activation_kinds,
    declared_settings,
    default_space,
    dropout_kinds,
    tries_zero,
    width_layers,
)
from gui.training.styles import ERROR_STYLE

OBJECTIVE_LABELS = {"val_loss": "validation loss", "val_acc": "validation accuracy"}
OBJECTIVES = {name: (OBJECTIVE_LABELS[name], direction == "maximize") for name, direction in DIRECTIONS.items()}
PRUNERS = tuple((name, name.capitalize()) for name in PRUNER_NAMES)  # Median, Hyperband, None
KNOB_DEFAULTS = {"width": (0.5, 2.0), "dropout": (0.0, 0.5), "repeat": (1, 3)}
DEFAULT_TRIALS, DEFAULT_MINUTES = 20, 10
WHERE = "The search space"


def log_names(space: SearchSpace) -> frozenset[str]:
    """The trial parameters drawn on a log scale (their plots' axes are logarithmic too)."""
    names = {name for name, span in space.settings.items() if not isinstance(span, list) and span[2]}
    return frozenset(names | ({"width"} if space.width is not None else set()))


def _number(text: str, what: str, integer: bool) -> float | int:
    """The number typed (a whole one as an int where the setting is whole: 32, 3.0); TrainingError if none."""
    try:
        value = float(text.strip())
    except ValueError:
        example = "like 32" if integer else "like 0.001 or 1e-3"
        raise TrainingError(f"{what} must be a number, {example}.") from None
    if not math.isfinite(value):
        raise TrainingError(f"{what} must be a finite number.")
    return int(value) if integer and value.is_integer() else value


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class ChoicesButton(QToolButton):
    """A button with a menu of checkable choices; its text lists those ticked."""

    changed = Signal()

    def __init__(self, choices, ticked, parent=None):
        super().__init__(parent)
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setMenu(QMenu(self))
        self.set_choices(choices, ticked)

    def set_choices(self, choices, ticked) -> None:
        self.menu().clear()
        for value, label in choices:
            action = QAction(label, self.menu())
            action.setCheckable(True)
            action.setChecked(value in ticked)
            action.setData(value)
            action.toggled.connect(self._toggled)
            self.menu().addAction(action)
        self._show()

    def ticked(self) -> list:
        return [a.data() for a in self.menu().actions() if a.isChecked()]

    def _toggled(self) -> None:
        self._show()
        self.changed.emit()

    def _show(self) -> None:
        labels = [a.text() for a in self.menu().actions() if a.isChecked()]
        self.setText(", ".join(labels) if labels else "choose…")


class RangeRow(QWidget):
    """[x] Label  [low] – [high]  [log]  with the row's problem under it."""

    changed = Signal()

    def __init__(self, label: str, low, high, log: bool | None = None, ticked: bool = False, tip: str = "",
                 lead: QWidget | None = None, integer: bool = False, parent=None):
        super().__init__(parent)
        self.integer = integer
        self.check = QCheckBox(label)
        self.check.setChecked(ticked)
        self.check.setToolTip(tip)
        self.lead = lead
        self.low, self.high = QLineEdit(_text(low)), QLineEdit(_text(high))
        for edit, end in ((self.low, "low"), (self.high, "high")):
            edit.setObjectName(end)
            edit.setMaximumWidth(80)
            edit.textChanged.connect(self.changed)
        self.log = QCheckBox("log")
        self.log.setChecked(bool(log))
        self.log.setToolTip("Draw values evenly on a logarithmic scale (0.001 is as likely as 0.01)")
        self.problem = QLabel()
        self.problem.setObjectName("rangeProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet(ERROR_STYLE)
        self.problem.hide()
        self.check.toggled.connect(self.changed)
        self.log.toggled.connect(self.changed)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(2)
        grid.addWidget(self.check, 0, 0)
        column = 1
        if lead is not None:
            grid.addWidget(lead, 0, column)
            column += 1
        grid.addWidget(self.low, 0, column)
        grid.addWidget(QLabel("to"), 0, column + 1)
        grid.addWidget(self.high, 0, column + 2)
        grid.addWidget(self.log, 0, column + 3)
        grid.setColumnStretch(0, 1)
        grid.addWidget(self.problem, 1, 0, 1, column + 4)
        self.log.setVisible(log is not None)  # once in the layout: shown before, a parentless widget is a window

    @property
    def ticked(self) -> bool:
        return self.check.isChecked() and self.check.isEnabled()

    def span(self) -> dict:
        """{"low", "high"[, "log"]} as typed; TrainingError when a number does not read."""
        span = {"low": _number(self.low.text(), "Low", self.integer),
                "high": _number(self.high.text(), "High", self.integer)}
        if not self.log.isHidden():
            span["log"] = self.log.isChecked()
        return span

    def show_problem(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.setVisible(bool(text))
        for edit in (self.low, self.high):
            edit.setStyleSheet("QLineEdit { border: 1px solid #b00020; }" if text else "")


class SpaceForm(QWidget):
    """What to search and how; ``changed`` on every edit. ``problems()`` lists the sentences shown."""

    changed = Signal()

    def __init__(self, document, parent=None):
        super().__init__(parent)
        self.document = document
        self.declared: dict[str, Setting] = declared_settings()
        self.rows: dict[str, QWidget] = {}  # setting name -> RangeRow or (choices) a QWidget with .check/.choices
        self._problems: list[str] = []

        settings_box = QGroupBox("Settings to search")
        self.settings_layout = QVBoxLayout(settings_box)
        self.settings_layout.setSpacing(4)
        self.add_setting = QComboBox()
        self.add_setting.setObjectName("addSetting")
        self.add_setting.activated.connect(self._add_chosen)
        self.settings_layout.addWidget(self.add_setting)
        training = self._training()
        for name, span in default_space(document.spec, training).settings.items():
            self._add_row(name, span, ticked=True)
        self._fill_add_setting()

        knobs_box = QGroupBox("Design knobs")
        knobs = QVBoxLayout(knobs_box)
        knobs.setSpacing(4)
        self.width_row = RangeRow("Width ×", *KNOB_DEFAULTS["width"],
                                  tip="Multiply every Linear and convolution output size (not the output layer's)")
        self.dropout_row = RangeRow("Dropout p", *KNOB_DEFAULTS["dropout"], tip="One p for every dropout layer")
        self.group_choice = QComboBox()
        self.group_choice.setObjectName("repeatGroup")
        self.repeat_row = RangeRow("Repeat", *KNOB_DEFAULTS["repeat"], lead=self.group_choice,
                                   tip="How many times the group chosen repeats", integer=True)
        self.activation_kind = QComboBox()
        self.activation_kind.setObjectName("activationKind")
        self.activation_choices = ChoicesButton([], [])
        self.activation_check = QCheckBox("Activation")
        self.activation_check.setToolTip("Replace every activation layer of one kind by one of the kinds ticked")
        activation = QHBoxLayout()
        activation.addWidget(self.activation_check, 1)
        activation.addWidget(self.activation_kind)
        activation.addWidget(QLabel("as"))
        activation.addWidget(self.activation_choices)
        self.activation_problem = QLabel()
        self.activation_problem.setStyleSheet(ERROR_STYLE)
        self.activation_problem.setWordWrap(True)
        self.activation_problem.hide()
        self.knob_note = QLabel()
        self.knob_note.setWordWrap(True)
        self.knob_note.setStyleSheet("QLabel { color: #5f6b7a; }")
        for row in (self.width_row, self.dropout_row, self.repeat_row):
            knobs.addWidget(row)
            row.changed.connect(self._edited)
        knobs.addLayout(activation)
        knobs.addWidget(self.activation_problem)
        knobs.addWidget(self.knob_note)
        self.activation_check.toggled.connect(self._edited)
        self.activation_choices.changed.connect(self._edited)
        self.activation_kind.currentIndexChanged.connect(self._edited)
        self.group_choice.currentIndexChanged.connect(self._edited)

        run_box = QGroupBox("Objective and budget")
        run = QFormLayout(run_box)
        self.objective_choice = QComboBox()
        for key, (label, _maximize) in OBJECTIVES.items():
            self.objective_choice.addItem(f"{label} ({'highest' if _maximize else 'lowest'})", key)
        self.by_trials, self.by_time = QRadioButton("Trials"), QRadioButton("Minutes")
        self.by_trials.setChecked(True)
        self._budget_group = QButtonGroup(self)
        self._budget_group.addButton(self.by_trials)
        self._budget_group.addButton(self.by_time)
        self.trials_spin, self.minutes_spin = QSpinBox(), QSpinBox()
        self.trials_spin.setRange(1, 10_000)
        self.trials_spin.setValue(DEFAULT_TRIALS)
        self.minutes_spin.setRange(1, 7 * 24 * 60)
        self.minutes_spin.setValue(DEFAULT_MINUTES)
        budget = QHBoxLayout()
        for widget in (self.by_trials, self.trials_spin, self.by_time, self.minutes_spin):
            budget.addWidget(widget)
        budget.addStretch(1)
        self.pruner_choice = QComboBox()
        for key, label in PRUNERS:
            self.pruner_choice.addItem(label, key)
        self.pruner_choice.setToolTip("Stop a trial early when its epoch reports are worse than the others' "
                                      "(Median: below the median at the same epoch; Hyperband: successive halving)")
        run.addRow("Objective", self.objective_choice)
        run.addRow("Budget", budget)
        run.addRow("Pruner", self.pruner_choice)
        for signal in (self.objective_choice.currentIndexChanged, self.pruner_choice.currentIndexChanged,
                       self.trials_spin.valueChanged, self.minutes_spin.valueChanged, self.by_trials.toggled):
            signal.connect(self._edited)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(settings_box)
        layout.addWidget(knobs_box)
        layout.addWidget(run_box)
        layout.addStretch(1)
        document.changed.connect(self.follow_design)
        self.follow_design()

    # ------------------------------------------------------------------ rows
    def _training(self) -> dict:
        return dict(self.document.extras.get("training") or {})

    def _add_row(self, name: str, span, ticked: bool) -> QWidget:
        s = self.declared[name]
        tip = s.help + (f" (only when {when_text(s)})" if s.when is not None else "")
        if s.type in (int, float):
            low, high, log = span
            zero = " (0 tried too)" if tries_zero(s) and log else ""
            row = RangeRow(f"{s.label}{zero}", low, high, log, ticked, tip, integer=s.type is int)
        else:
            row = QWidget()
            row.check = QCheckBox(s.label)
            row.check.setChecked(ticked)
            row.check.setToolTip(tip)
            row.choices = ChoicesButton(s.options(), span)
            line = QHBoxLayout(row)
            line.setContentsMargins(0, 0, 0, 0)
            line.addWidget(row.check, 1)
            line.addWidget(row.choices)
            row.check.toggled.connect(self._edited)
            row.choices.changed.connect(self._edited)
        if isinstance(row, RangeRow):
            row.changed.connect(self._edited)
        self.rows[name] = row
        self.settings_layout.insertWidget(self.settings_layout.count() - 1, row)
        return row

    def _default_span(self, name: str):
        """What a newly added setting's row starts with: its declared search range, else around its value now."""
        s = self.declared[name]
        value = {**self._training()}.get(name, s.default)
        if s.type is bool:
            return [False, True]
        if s.choices:
            return [value]
        if s.search is not None:
            return (*s.search, s.log)
        if s.log and value:
            return (max(s.low, value / 10), min(s.high, value * 10), True)
        if s.type is int:
            return (max(s.low, value // 2), min(s.high, max(value * 2, value + 2)), False)
        return (s.low, min(s.high, max(1.0, value * 10)), False)

    def _fill_add_setting(self) -> None:
        self.add_setting.blockSignals(True)
        self.add_setting.clear()
        self.add_setting.addItem("Add a setting to search…", None)
        for name, s in self.declared.items():
            if name not in self.rows:
                self.add_setting.addItem(s.label, name)
        self.add_setting.blockSignals(False)

    def _add_chosen(self, index: int) -> None:
        name = self.add_setting.itemData(index)
        if name is None:
            return
        self._add_row(name, self._default_span(name), ticked=True)
        self._fill_add_setting()
        self._edited()

    def add(self, name: str) -> QWidget:
        """Add the row of setting ``name`` (ticked) if it is not there; the row."""
        if name not in self.rows:
            self._add_chosen(self.add_setting.findData(name))
        return self.rows[name]

    # ------------------------------------------------------------------ the design's knobs
    def follow_design(self) -> None:
        """Offer the knobs the design has: width when it has a layer to widen, dropout when it has dropout, the
        design's groups for repeat, its activation kinds for activation."""
        spec = self.document.spec
        try:
            widths = bool(width_layers(spec))
        except (KeyError, ValueError, AttributeError):  # a design with errors: nothing to widen yet
            widths = False
        drops = any(layer.kind in dropout_kinds() for layer in spec.all_layers())
        groups = [layer for layer in spec.all_layers() if layer.is_group]
        acts = list(dict.fromkeys(layer.kind for layer in spec.all_layers() if layer.kind in activation_kinds()))
        self._refill(self.group_choice, [(g.params.get("name") or g.id, g.id) for g in groups])
        self._refill(self.activation_kind, [(kind, kind) for kind in acts])
        if not self.activation_choices.menu().actions():
            kinds = activation_kinds()
            self.activation_choices.set_choices([(k, k) for k in kinds], [k for k in ("ReLU", "GELU", "Tanh")
                                                                          if k in kinds])
        missing = []
        for check, present, what in ((self.width_row.check, widths, "no Linear or convolution layer to widen"),
                                     (self.dropout_row.check, drops, "no dropout layer"),
                                     (self.repeat_row.check, bool(groups), "no group"),
                                     (self.activation_check, bool(acts), "no activation layer")):
            check.setEnabled(present)
            if not present:
                missing.append(what)
        self.knob_note.setText(f"The design has {', '.join(missing)}." if missing else "")
        self.knob_note.setVisible(bool(missing))
        self._edited()

    @staticmethod
    def _refill(combo: QComboBox, items) -> None:
        current = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        for label, value in items:
            combo.addItem(label, value)
        index = combo.findData(current)
        combo.setCurrentIndex(index if index >= 0 else 0)
        combo.blockSignals(False)

    # ------------------------------------------------------------------ reading and checking
    def _edited(self, *_args) -> None:
        self._problems = self._check()
        self.changed.emit()

    def problems(self) -> list[str]:
        return list(self._problems)

    def _check(self) -> list[str]:
        """Check each ticked row on its own (its sentence under it), then that something is searched."""
        problems = []
        for name, row in self.rows.items():
            problem = self._row_problem(row, lambda span, name=name: {"settings": {name: span}})
            problems += [problem] if problem else []
        for row, knob in ((self.width_row, "width"), (self.dropout_row, "dropout")):
            problem = self._row_problem(row, lambda span, knob=knob: {knob: {k: span[k] for k in ("low", "high")}})
            problems += [problem] if problem else []
        group = self.group_choice.currentData()
        problem = self._row_problem(self.repeat_row, lambda span: {"repeat": {group: {
            k: span[k] for k in ("low", "high")}}})
        problems += [problem] if problem else []
        problem = ""
        if self.activation_check.isChecked() and self.activation_check.isEnabled():
            problem = "" if self.activation_choices.ticked() else "Activation: tick at least one kind to try."
        self.activation_problem.setText(problem)
        self.activation_problem.setVisible(bool(problem))
        problems += [problem] if problem else []
        if not problems and self._read().empty:
            problems.append("Tick at least one setting or design knob to search.")
        return problems

    def _row_problem(self, row, part) -> str:
        problem = ""
        if isinstance(row, RangeRow):
            if row.ticked:
                try:
                    SearchSpace.from_dict(part(row.span()), WHERE)
                except TrainingError as exc:
                    problem = str(exc)
            row.show_problem(problem)
        elif row.check.isChecked() and not row.choices.ticked():
            problem = f"{row.check.text()}: tick at least one choice."
        return problem

    def _read(self) -> SearchSpace:
        data: dict = {"settings": {}}
        for name, row in self.rows.items():
            if isinstance(row, RangeRow):
                if row.ticked:
                    data["settings"][name] = row.span()
            elif row.check.isChecked() and row.choices.ticked():
                data["settings"][name] = row.choices.ticked()
        for row, knob in ((self.width_row, "width"), (self.dropout_row, "dropout")):
            if row.ticked:
                span = row.span()
                data[knob] = {"low": span["low"], "high": span["high"]}
        if self.repeat_row.ticked and self.group_choice.currentData() is not None:
            span = self.repeat_row.span()
            data["repeat"] = {self.group_choice.currentData(): {"low": span["low"], "high": span["high"]}}
        if self.activation_check.isChecked() and self.activation_check.isEnabled() and self.activation_choices.ticked():
            data["activation"] = {self.activation_kind.currentData(): self.activation_choices.ticked()}
        return SearchSpace.from_dict(data, WHERE)

    def space(self) -> SearchSpace:
        """The space as the form sets it; TrainingError (a sentence) when a row is wrong."""
        if self._problems:
            raise TrainingError(self._problems[0])
        space = self._read()
        space.check(self.document.spec)
        return space

    def objective(self) -> str:
        return self.objective_choice.currentData()

    def pruner(self) -> str:
        return self.pruner_choice.currentData()

    def budget(self) -> tuple[int | None, float | None]:
        """(trials, timeout in seconds): one of them, as chosen."""
        if self.by_trials.isChecked():
            return self.trials_spin.value(), None
        return None, self.minutes_spin.value() * 60.0
