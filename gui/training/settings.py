"""Settings forms generated from field tables: the run settings (TrainConfig) and the data choice (DataConfig).

A form edits a plain dict (the document extra "training" or "data"); each
field knows its widget, its range and when it matters (e.g. momentum only for
SGD and RMSprop), so irrelevant rows are hidden rather than ignored. The Dataset
list and the data rows each source shows come from the data source registry
(engine.data.sources), read when the form is built and on every change.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSpinBox, QWidget)

from engine.data.sources import SOURCES, DataSource
from engine.paths import datasets_dir
from gui.widgets import FloatSpinBox


@dataclass(frozen=True)
class Field:
    """One row of a settings form.

    kind: choice | int | float | lr | bool | text | path | floats | device.
    ``choices``: (label, value) pairs, or a function giving them when the form is built.
    ``when(values)`` says whether the row matters for the current values.
    """

    key: str
    label: str
    kind: str
    help: str = ""
    choices: tuple[tuple[str, object], ...] | Callable[[], tuple[tuple[str, object], ...]] = ()
    minimum: float = 0
    maximum: float = 1e9
    when: Callable[[dict], bool] = field(default=lambda values: True)
    section: str = ""
    placeholder: Callable[[], str] | None = None   # the grey text of an empty text field (e.g. a default folder)


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


def _is(key: str, *values) -> Callable[[dict], bool]:
    return lambda v: v.get(key) in values


def _flag(key: str) -> Callable[[dict], bool]:
    return lambda v: bool(v.get(key))


def _choices(*names: str, labels: dict | None = None) -> tuple[tuple[str, str], ...]:
    labels = labels or {}
    return tuple((labels.get(n, n), n) for n in names)


def source_choices() -> tuple[tuple[str, str], ...]:
    """The Dataset list: every registered data source, as the window labels it."""
    return tuple((source.label, source.name) for source in SOURCES.values())


def _source(test: Callable[[DataSource], bool]) -> Callable[[dict], bool]:
    """When the chosen data source (looked up in the registry at each change) passes ``test``."""
    def when(values: dict) -> bool:
        source = SOURCES.get(values.get("source"))
        return source is not None and test(source)
    return when


def _source_reads(setting: str) -> Callable[[dict], bool]:
    """When the chosen data source is one that reads ``setting`` (its own settings in the registry)."""
    return _source(lambda source: setting in source.own_settings)


_DOWNLOADS = _source(lambda source: source.download is not None)
_IMAGES = _source(lambda source: source.images)

DATA_FIELDS = (
    Field("source", "Dataset", "choice", "Where the samples come from", choices=source_choices),
    Field("root", "Folder", "path", "Folder holding (or receiving) the dataset files; empty: the default data "
          "folder", when=_DOWNLOADS, placeholder=lambda: f"{datasets_dir()} (default)"),
    Field("root", "Folder", "path", "A folder with one subfolder of pictures per class",
          when=_source(lambda source: source.root == "folder" and source.download is None)),
    Field("root", "CSV file", "path", "A CSV table: numeric feature columns and a label column",
          when=_source(lambda source: source.root == "file")),
    Field("download", "Download if missing", "bool", "Fetch the dataset into the folder when it is not there "
          "(its size is shown before it starts)", when=_DOWNLOADS),
    Field("label_column", "Label column", "text", "Name of the CSV column holding the target",
          when=_source_reads("label_column")),
    Field("image_size", "Image size", "int", "Images are resized to this many pixels per side (the built-in "
          "datasets are only enlarged, batch by batch: they stay at their own size in memory)", minimum=4,
          maximum=1024, when=_IMAGES),
    Field("grayscale", "Grayscale", "bool", "Convert images to one channel", when=_source_reads("grayscale")),
    Field("weights", "True weights w", "floats", "y = Xw + b + noise: one weight per feature, e.g. 2, -3.4",
          when=_source_reads("weights")),
    Field("bias", "True bias b", "float", "", minimum=-1e6, maximum=1e6, when=_source_reads("bias")),
    Field("samples", "Samples", "int", "", minimum=10, maximum=10_000_000, when=_source_reads("samples")),
    Field("noise", "Noise std", "float", "", minimum=0, maximum=1e6, when=_source_reads("noise")),
    Field("task", "Task", "choice", "What the network learns (auto: from the dataset)",
          choices=_choices("auto", "classification", "regression", "reconstruction",
                           labels={"auto": "Auto (from the data)", "reconstruction": "reconstruction (autoencoder)"})),
    Field("val_fraction", "Validation fraction", "float", "Share of the training samples held out for validation",
          maximum=0.9),
    Field("limit", "Use at most", "int", "Training samples to use (0 = all): quick trials", maximum=100_000_000),
    Field("normalize", "Normalise", "bool", "Scale inputs by the training set's mean and std"),
    Field("augment_crop_padding", "Random crop padding", "int", "Pad and randomly crop back each batch (0 = off)",
          maximum=64, when=_IMAGES),
    Field("augment_hflip", "Random horizontal flip", "bool", "", when=_IMAGES),
    Field("stream", "Stream from disk", "bool", "Read training images lazily (for folders too big for memory)",
          when=_source_reads("stream")),
    Field("seed", "Split seed", "int", "Seed of the train/validation split", maximum=2**31 - 1),
)

MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")
TRAIN_FIELDS = (
    Field("optimizer", "Optimizer", "choice", "", section="Optimizer", choices=_choices(
        "sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax",
        labels={"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad",
                "adadelta": "Adadelta", "adamax": "Adamax"})),
    Field("lr", "Learning rate", "lr", "Step size; arrows multiply or divide by 10", minimum=1e-8, maximum=1e6),
    Field("momentum", "Momentum", "float", "", maximum=0.999, when=_is("optimizer", *MOMENTUM_OPTIMIZERS)),
    Field("nesterov", "Nesterov", "bool", "", when=_is("optimizer", "sgd")),
    Field("amsgrad", "AMSGrad", "bool", "", when=_is("optimizer", "adam", "adamw")),
    Field("weight_decay", "Weight decay", "float", "Decoupled for AdamW, L2 for the others", maximum=1),
    Field("loss", "Loss", "choice", "auto: cross-entropy for classes, MSE for regression", section="Loss",
          choices=_choices("auto", "cross_entropy", "nll", "mse", "l1", "smooth_l1", "bce_with_logits", "bce",
                           labels={"auto": "Auto (from the task)", "cross_entropy": "Cross-entropy", "nll": "NLL",
                                   "mse": "MSE", "l1": "L1", "smooth_l1": "Smooth L1",
                                   "bce_with_logits": "BCE with logits", "bce": "BCE"})),
    Field("label_smoothing", "Label smoothing", "float", "", maximum=0.99, when=_is("loss", "auto", "cross_entropy")),
    Field("smooth_l1_beta", "Smooth L1 beta", "float", "", maximum=1e6, when=_is("loss", "smooth_l1")),
    Field("schedule", "Schedule", "choice", "How the learning rate changes over the run", section="Schedule",
          choices=_choices("none", "step", "cosine", "one_cycle", "plateau",
                           labels={"none": "Constant", "step": "Step decay", "cosine": "Cosine",
                                   "one_cycle": "One-cycle", "plateau": "Reduce on plateau"})),
    Field("step_size", "Step every (epochs)", "int", "", minimum=1, maximum=10_000, when=_is("schedule", "step")),
    Field("gamma", "Decay factor", "float", "Multiplies the learning rate at each cut", minimum=1e-6, maximum=1,
          when=_is("schedule", "step", "plateau")),
    Field("plateau_patience", "Plateau patience", "int", "Epochs without improvement before a cut",
          maximum=10_000, when=_is("schedule", "plateau")),
    Field("warmup_epochs", "Warm-up epochs", "int", "Linear warm-up from a small learning rate", maximum=10_000),
    Field("epochs", "Epochs", "int", "", section="Run", minimum=1, maximum=100_000),
    Field("batch_size", "Batch size", "int", "", minimum=1, maximum=1_000_000),
    Field("seed", "Seed", "int", "Same seed, same data, CPU: identical losses", maximum=2**31 - 1),
    Field("init", "Weight init", "choice", "", choices=_choices(
        "default", "xavier", "kaiming", "normal", "constant", labels={"default": "PyTorch default"})),
    Field("init_std", "Init std", "float", "", minimum=1e-8, maximum=1000, when=_is("init", "normal")),
    Field("init_value", "Init value", "float", "", minimum=-100, maximum=100, when=_is("init", "constant")),
    Field("l1", "L1 penalty", "float", "", section="Regularisation", maximum=10),
    Field("l2", "L2 penalty", "float", "", maximum=10),
    Field("grad_clip", "Gradient clip", "float", "Max gradient norm (0 = off)", maximum=1e6),
    Field("device", "Device", "device", "Where the tensors live", section="Hardware"),
    Field("amp", "Mixed precision", "choice", "", choices=_choices(
        "off", "bf16", "fp16", labels={"off": "Off (float32)", "bf16": "bfloat16", "fp16": "float16 + GradScaler"})),
    Field("channels_last", "channels_last", "bool", "Memory format that suits convolutions on GPUs"),
    Field("compile", "torch.compile", "bool", "Compile the model first (slow start, faster steps)"),
    Field("early_stopping", "Early stopping", "bool", "", section="Early stopping"),
    Field("early_stopping_metric", "Watch", "choice", "", choices=(
        ("validation loss", "val_loss"), ("validation accuracy", "val_acc"), ("training loss", "train_loss"),
        ("training accuracy", "train_acc")),
          when=_flag("early_stopping")),
    Field("patience", "Patience (epochs)", "int", "", minimum=1, maximum=10_000, when=_flag("early_stopping")),
    Field("min_delta", "Min improvement", "float", "", maximum=1e6, when=_flag("early_stopping")),
    Field("restore_best", "Restore best weights", "bool", "", when=_flag("early_stopping")),
)


def control_label(key: str) -> str | None:
    """A setting (``"data.download"``, ``"training.lr"``; see engine.controls) as the window names it in a
    message: its label on the Training tab, quoted; None for a setting the tab does not show."""
    section, _, name = key.partition(".")
    fields = {"data": DATA_FIELDS, "training": TRAIN_FIELDS}.get(section, ())
    label = next((f.label for f in fields if f.key == name), None)
    return f"“{label}”" if label else None


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


class ConfigForm(QWidget):
    """Edits a settings dict through a field table; emits ``edited(dict)`` with every user change."""

    edited = Signal(dict)

    def __init__(self, fields: tuple[Field, ...], defaults: dict, parent=None):
        super().__init__(parent)
        self.fields = fields
        self.defaults = dict(defaults)
        self._values = dict(defaults)
        self._loading = False
        self.layout_ = QFormLayout(self)
        self.layout_.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.widgets: list[tuple[Field, QWidget]] = []
        self._section_rows: dict[str, QLabel] = {}
        self._notes: dict[str, QLabel] = {}  # warnings under a field (set_note)
        for f in fields:
            if f.section:
                title = QLabel(f"<b>{f.section}</b>")
                self.layout_.addRow(title)
                self._section_rows[f.section] = title
            widget = self._make_widget(f)
            widget.setToolTip(f.help)
            label = QLabel(f.label)
            label.setToolTip(f.help)
            self.layout_.addRow(label, widget)
            self.widgets.append((f, widget))
        self.set_values(defaults)

    # -- widgets
    def _make_widget(self, f: Field) -> QWidget:
        if f.kind in ("choice", "device"):
            widget = QComboBox()
            widget.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            widget.setMinimumContentsLength(12)
            choices = device_choices() if f.kind == "device" else f.choices() if callable(f.choices) else f.choices
            for label, value in choices:
                widget.addItem(label, value)
            widget.currentIndexChanged.connect(lambda _i, f=f, w=widget: self._user_set(f, w.currentData()))
        elif f.kind == "int":
            widget = QSpinBox()
            widget.setRange(int(f.minimum), int(min(f.maximum, 2**31 - 1)))
            widget.setGroupSeparatorShown(True)
            widget.valueChanged.connect(lambda v, f=f: self._user_set(f, int(v)))
        elif f.kind in ("float", "lr"):
            widget = FloatSpinBox(f.minimum, f.maximum, log_steps=f.kind == "lr")
            widget.valueChanged.connect(lambda v, f=f: self._user_set(f, float(v)))
        elif f.kind == "bool":
            widget = QCheckBox()
            widget.toggled.connect(lambda v, f=f: self._user_set(f, bool(v)))
        elif f.kind == "path":
            widget = PathEdit()
            widget.pick_file = f.label.lower().startswith("csv")
            if f.placeholder is not None:
                widget.edit.setPlaceholderText(f.placeholder())
            widget.textChanged.connect(lambda v, f=f: self._user_set(f, v))
        elif f.kind == "text":
            widget = QLineEdit()
            widget.textChanged.connect(lambda v, f=f: self._user_set(f, v))
        elif f.kind == "floats":
            widget = QLineEdit()
            widget.textChanged.connect(lambda v, f=f: self._user_set_floats(f, v))
        else:
            raise AssertionError(f.kind)
        return widget

    def _show_value(self, f: Field, widget: QWidget, value) -> None:
        if f.kind in ("choice", "device"):
            index = widget.findData(value)
            if index < 0:  # a saved value this machine does not offer (e.g. cuda:1): keep it visible
                widget.addItem(f"{value} (not available here)", value)
                index = widget.count() - 1
            widget.setCurrentIndex(index)
        elif f.kind in ("int", "float", "lr"):
            widget.setValue(value)
        elif f.kind == "bool":
            widget.setChecked(bool(value))
        elif f.kind == "path":
            widget.edit.setText(str(value))
        elif f.kind == "text":
            widget.setText(str(value))
        elif f.kind == "floats":
            if _parse_floats(widget.text()) != tuple(value):
                widget.setText(", ".join(f"{v:g}" for v in value))

    # -- values
    def values(self) -> dict:
        return dict(self._values)

    def set_values(self, values: dict) -> None:
        """Show ``values`` (missing keys take the defaults) without emitting ``edited``."""
        self._values = {**self.defaults, **(values or {})}
        self._loading = True
        try:
            for f, widget in self.widgets:
                if f.key in self._values:
                    try:
                        self._show_value(f, widget, self._values[f.key])
                    except (TypeError, ValueError, OverflowError):
                        # a file's value this widget cannot hold ("abc" for a number): the widget shows
                        # the default, the bad value stays so the settings check names it
                        self._show_value(f, widget, self.defaults[f.key])
        finally:
            self._loading = False
        self._update_visibility()

    def widget(self, key: str) -> QWidget:
        """The (visible, when several share the key) widget editing ``key``."""
        candidates = [w for f, w in self.widgets if f.key == key]
        visible = [w for f, w in self.widgets if f.key == key and f.when(self._values)]
        return (visible or candidates)[0]

    def set_note(self, key: str, text: str) -> None:
        """Show ``text`` as a warning under the field editing ``key`` (and mark the field); '' removes it."""
        widget = self.widget(key)
        note = self._notes.get(key)
        if note is None:
            note = self._notes[key] = QLabel()
            note.setObjectName("fieldWarning")
            note.setWordWrap(True)
            row, _role = self.layout_.getWidgetPosition(widget)
            self.layout_.insertRow(row + 1, "", note)
        note.setText(text)
        self.layout_.setRowVisible(note, bool(text))
        widget.setToolTip(text or next(f.help for f, w in self.widgets if w is widget))
        if widget.property("warning") != bool(text):
            widget.setProperty("warning", bool(text))
            widget.style().unpolish(widget)
            widget.style().polish(widget)

    def _user_set(self, f: Field, value) -> None:
        if self._loading or self._values.get(f.key) == value:
            return
        self._values[f.key] = value
        self._sync_twins(f, value)
        self._update_visibility()
        self.edited.emit(self.values())

    def _user_set_floats(self, f: Field, text: str) -> None:
        parsed = _parse_floats(text)
        if parsed is not None:
            self._user_set(f, list(parsed))

    def _sync_twins(self, changed: Field, value) -> None:
        """Rows sharing a key (the root as folder or as CSV file) show the same value."""
        self._loading = True
        try:
            for f, widget in self.widgets:
                if f.key == changed.key and f is not changed:
                    self._show_value(f, widget, value)
        finally:
            self._loading = False

    def _update_visibility(self) -> None:
        for f, widget in self.widgets:
            self.layout_.setRowVisible(widget, f.when(self._values))


def _parse_floats(text: str) -> tuple[float, ...] | None:
    try:
        values = tuple(float(part) for part in text.replace(";", ",").split(",") if part.strip())
    except ValueError:
        return None
    return values if values and all(math.isfinite(v) for v in values) else None
