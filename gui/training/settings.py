"""Settings forms built from the settings' declarations (engine.schema): the run (TrainConfig), the data (DataConfig).

A form edits a plain dict (the document extra "training" or "data"). Each row is one declared setting:
its widget follows from the declaration (a choice, a whole number, a number whose arrows multiply by ten
on a log scale, a switch, a path, a list of numbers), its range is the declared one (so a file's value
is shown as it is, never clamped) and its row shows only when the setting matters (momentum only for SGD
and RMSprop). The Dataset list and the Folder / file row follow the data source registry (engine.data.sources).
"""
from __future__ import annotations

import json
import math
from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.data.sources import SOURCES
from engine.errors import LayerStudioError
from engine.paths import datasets_dir
from engine.schema import Setting, number, settings_of
from engine.settings import SECTIONS
from engine.training.tensorboard_log import default_folder, open_hint
from gui.widgets import FloatSpinBox

LOG_STEPS_TIP = "The arrows multiply or divide by 10."
PARSED_KEPT = 32  # settings sections whose reading parsed_settings remembers


_parsed: dict[tuple[type, str], tuple] = {}  # (kind, section as JSON) -> (config, None) or (None, its error)


def parsed_settings(kind, section: dict):
    """``kind.from_dict(section)`` (TrainConfig, DataConfig), remembered by the section's JSON text: the Training
    tab derives its lines from the settings several times per event of a run, and parsing is the dear part.
    Returns a copy (a caller's change stays its own); raises the parse's LayerStudioError again."""
    try:
        key = (kind, json.dumps(section, sort_keys=True))
    except (TypeError, ValueError):  # not JSON data (never from a form or a file): read it as it is
        return kind.from_dict(dict(section))
    outcome = _parsed.get(key)
    if outcome is None:
        try:
            outcome = (kind.from_dict(dict(section)), None)
        except LayerStudioError as exc:
            outcome = (None, exc)
        if len(_parsed) >= PARSED_KEPT:
            _parsed.clear()
        _parsed[key] = outcome
    config, error = outcome
    if error is not None:
        raise error.with_traceback(None)
    return replace(config)


def device_choices() -> tuple[tuple[str, str], ...]:
    """What torch finds here: auto, each CUDA device with its name, MPS, CPU."""
    import torch

    choices = [("Auto (best available)", "auto")]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            choices.append((f"CUDA {index}: {torch.cuda.get_device_name(index)}", f"cuda:{index}"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        choices.append(("Apple GPU (MPS)", "mps"))
    choices.append(("CPU", "cpu"))
    return tuple(choices)


def control_label(key: str) -> str | None:
    """A setting (``"data.download"``, ``"training.lr"``; see engine.controls) as the window names it in a
    message: its label on the Training tab, quoted; None for a setting the tab does not show."""
    section, _, name = key.partition(".")
    cls = SECTIONS.get(section)
    label = next((s.label for s in settings_of(cls) if s.name == name), None) if cls is not None else None
    return f"“{label}”" if label else None


def tooltip(declared: Setting) -> str:
    """A row's tooltip: what it does and what it accepts."""
    parts = [declared.help]
    if declared.type in (int, float) and declared.low is not None:
        unit = f" {declared.unit}" if declared.unit else ""
        parts.append(f"From {number(declared.low)} to {number(declared.high)}{unit}.")
    if declared.log and declared.type is float:
        parts.append(LOG_STEPS_TIP)
    return " ".join(part if part.endswith(".") else part + "." for part in parts if part)


class PathEdit(QWidget):
    """A line edit with a Browse… button (a folder or a file)."""

    textChanged = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("choose…")
        self.button = QPushButton("Browse…")
        self.pick_file = False
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.button)
        self.button.clicked.connect(self._browse)
        self.edit.textChanged.connect(self.textChanged)

    def _browse(self) -> None:
        if self.pick_file:
            path, _ = QFileDialog.getOpenFileName(self, "Choose a CSV file", self.edit.text(), "CSV (*.csv);;All (*)")
        else:
            path = QFileDialog.getExistingDirectory(self, "Choose a folder", self.edit.text())
        if path:
            self.edit.setText(path)


class TensorBoardSwitch(QWidget):
    """The TensorBoard setting (a folder; empty: off): a check box that turns it on with the default folder in the
    user's data folder, the folder (Browse… picks another) and a line saying where the files go and how to open
    them. ``textChanged`` carries the setting's value."""

    textChanged = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.check = QCheckBox("Write event files")
        self.folder = PathEdit()
        self.folder.edit.setPlaceholderText(str(default_folder()))
        self.note = QLabel()
        self.note.setObjectName("hint")
        self.note.setWordWrap(True)
        self.note.setTextInteractionFlags(Qt.TextSelectableByMouse)  # the command can be copied
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for part in (self.check, self.folder, self.note):
            layout.addWidget(part)
        self.check.toggled.connect(self._toggled)
        self.folder.textChanged.connect(lambda _text: self._changed())
        self._show_state()

    def value(self) -> str:
        return (self.folder.edit.text().strip() or str(default_folder())) if self.check.isChecked() else ""

    def set_value(self, value: str) -> None:
        """Show the setting's value (a folder: on, with that folder; empty: off, the last folder kept)."""
        if value:
            self.folder.edit.setText(value)
        self.check.setChecked(bool(value))
        self._show_state()

    def _toggled(self, on: bool) -> None:
        if on and not self.folder.edit.text().strip():
            self.folder.edit.setText(str(default_folder()))
        self._changed()

    def _changed(self) -> None:
        self._show_state()
        self.textChanged.emit(self.value())

    def _show_state(self) -> None:
        folder = self.value()
        self.folder.setEnabled(bool(folder))
        self.note.setVisible(bool(folder))
        self.note.setText(f"Each run writes into a new subfolder of {folder}. To look at the runs, run: "
                          f"{open_hint(folder)}" if folder else "")


class ConfigForm(QWidget):
    """Edits a settings dict, one row per declared setting of ``cls``; emits ``edited(dict)`` with every user change."""

    edited = Signal(dict)

    def __init__(self, cls: type, parent=None):
        super().__init__(parent)
        self.settings = settings_of(cls)
        self.defaults = cls().to_dict()
        self._values = dict(self.defaults)
        self._loading = False
        self.layout_ = QFormLayout(self)
        self.layout_.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.widgets: list[tuple[Setting, QWidget]] = []
        self.labels: dict[str, QLabel] = {}
        self._section_rows: dict[str, QLabel] = {}
        self._notes: dict[str, QLabel] = {}  # warnings under a field (set_note)
        for declared in self.settings:
            if declared.section:
                title = QLabel(f"<b>{declared.section}</b>")
                self.layout_.addRow(title)
                self._section_rows[declared.section] = title
            widget = self._make_widget(declared)
            label = self.labels[declared.name] = QLabel(declared.label)
            for part in (widget, label):
                part.setToolTip(tooltip(declared))
            self.layout_.addRow(label, widget)
            self.widgets.append((declared, widget))
        self.set_values(self.defaults)

    # -- widgets
    def _make_widget(self, declared: Setting) -> QWidget:
        kind = declared.type
        if declared.choices or declared.widget == "device":
            widget = QComboBox()
            widget.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            widget.setMinimumContentsLength(12)
            choices = device_choices() if declared.widget == "device" else \
                tuple((label, value) for value, label in declared.options())
            for label, value in choices:
                widget.addItem(label, value)
            widget.currentIndexChanged.connect(lambda _i, d=declared, w=widget: self._user_set(d, w.currentData()))
        elif declared.widget == "path":
            widget = PathEdit()
            widget.textChanged.connect(lambda v, d=declared: self._user_set(d, v))
        elif declared.widget == "tensorboard":
            widget = TensorBoardSwitch()
            widget.textChanged.connect(lambda v, d=declared: self._user_set(d, v))
        elif kind is bool:
            widget = QCheckBox()
            widget.toggled.connect(lambda v, d=declared: self._user_set(d, bool(v)))
        elif kind is int:
            widget = QSpinBox()
            widget.setRange(int(declared.low), int(declared.high))  # declared ranges fit a spin box (a test checks)
            widget.setGroupSeparatorShown(True)
            widget.valueChanged.connect(lambda v, d=declared: self._user_set(d, int(v)))
        elif kind is float:
            widget = FloatSpinBox(declared.low, declared.high, log_steps=declared.log)
            widget.valueChanged.connect(lambda v, d=declared: self._user_set(d, float(v)))
        elif kind is list:
            widget = QLineEdit()
            widget.textChanged.connect(lambda v, d=declared: self._user_set_floats(d, v))
        else:
            widget = QLineEdit()
            widget.textChanged.connect(lambda v, d=declared: self._user_set(d, v))
        return widget

    def _show_value(self, declared: Setting, widget: QWidget, value) -> None:
        if isinstance(widget, QComboBox):
            index = widget.findData(value)
            if index < 0:  # a saved value this machine does not offer (e.g. cuda:1): keep it visible
                widget.addItem(f"{value} (not available here)", value)
                index = widget.count() - 1
            widget.setCurrentIndex(index)
        elif isinstance(widget, PathEdit):
            widget.edit.setText(str(value))
        elif isinstance(widget, TensorBoardSwitch):
            widget.set_value(str(value))
        elif isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, (QSpinBox, FloatSpinBox)):
            widget.setValue(value)
        elif declared.type is list:
            if _parse_floats(widget.text()) != tuple(value):
                widget.setText(", ".join(f"{v:g}" for v in value))
        else:
            widget.setText(str(value))

    # -- values
    def values(self) -> dict:
        return dict(self._values)

    def set_values(self, values: dict) -> None:
        """Show ``values`` (missing keys take the defaults) without emitting ``edited``."""
        self._values = {**self.defaults, **(values or {})}
        self._loading = True
        try:
            for declared, widget in self.widgets:
                if declared.name in self._values:
                    try:
                        self._show_value(declared, widget, self._values[declared.name])
                    except (TypeError, ValueError, OverflowError):
                        # a value this widget cannot hold ("abc" for a number): the widget shows the default,
                        # the bad value stays so the settings check names it
                        self._show_value(declared, widget, self.defaults[declared.name])
        finally:
            self._loading = False
        self._update_rows()

    def widget(self, key: str) -> QWidget:
        """The widget editing ``key``."""
        return next(w for declared, w in self.widgets if declared.name == key)

    def set_note(self, key: str, text: str) -> None:
        """Show ``text`` as a warning under the field editing ``key`` (and mark the field); '' removes it."""
        widget = self.widget(key)
        note = self._notes.get(key)
        if (note.text() if note is not None else "") == text:  # already shown (refresh asks at every event)
            return
        if note is None:
            note = self._notes[key] = QLabel()
            note.setObjectName("fieldWarning")
            note.setWordWrap(True)
            row, _role = self.layout_.getWidgetPosition(widget)
            self.layout_.insertRow(row + 1, "", note)
        note.setText(text)
        self.layout_.setRowVisible(note, bool(text))
        widget.setToolTip(text or tooltip(next(d for d, w in self.widgets if w is widget)))
        if widget.property("warning") != bool(text):
            widget.setProperty("warning", bool(text))
            widget.style().unpolish(widget)
            widget.style().polish(widget)

    def _user_set(self, declared: Setting, value) -> None:
        if self._loading or self._values.get(declared.name) == value:
            return
        self._values[declared.name] = value
        self._update_rows()
        self.edited.emit(self.values())

    def _user_set_floats(self, declared: Setting, text: str) -> None:
        parsed = _parse_floats(text)
        if parsed is not None:
            self._user_set(declared, list(parsed))

    def _update_rows(self) -> None:
        """Show the rows that matter for the current values; the Folder / file row says what this source reads."""
        for declared, widget in self.widgets:
            self.layout_.setRowVisible(widget, declared.applies(self._values))
            if isinstance(widget, PathEdit):
                self._follow_source(declared, widget)

    def _follow_source(self, declared: Setting, edit: PathEdit) -> None:
        source = SOURCES.get(self._values.get("source"))
        if source is None:
            return
        self.labels[declared.name].setText(source.root_title)
        edit.pick_file = source.root == "file"
        edit.edit.setPlaceholderText(f"{datasets_dir()} (default)" if source.download is not None else "choose…")
        for part in (edit, self.labels[declared.name]):
            part.setToolTip(source.root_help or declared.help)


def _parse_floats(text: str) -> tuple[float, ...] | None:
    try:
        values = tuple(float(part) for part in text.replace(";", ",").split(",") if part.strip())
    except ValueError:
        return None
    return values if values and all(math.isfinite(v) for v in values) else None
