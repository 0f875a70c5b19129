"""The inspector: typed editors for the current layer, its shapes, formula, errors and hints.

Editors are built from the registry's Param schema when the shown layer
changes; on every document change the values, shapes and formula are
refreshed from the document's analysis. Each edit goes through the undo stack
(``document.edit_param``, ``document.edit_init``), so a burst of spin-box steps
is one undo step. A layer with a weight or bias gets an Initialisation box (per
tensor, engine.layer_init) and, once the training GUI has installed a parameter
source (torch loaded), its parameter tensors' statistics (gui.parameter_view).

A group (kind Group) shows a Name field and only the settings its mode reads (engine.layers.group.MODE_PARAMS),
its formula says what it computes; it has no tensors of its own, so no Initialisation box.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.groups import group_label
from engine.layer_init import TENSORS
from engine.layers import KINDS, Param, suggest_hidden_sizes
from engine.layers.group import MODE_PARAMS
from engine.shapes import LayerRow, format_shape
from engine.spec import MAX_INPUT_DIMENSION, MAX_NAME
from gui.editors import INPUT_SHAPE_HINT, InitEditor, IntsEditor, ParamEditor, make_editor
from gui.icons import CATEGORY_COLORS
from gui.parameter_view import ParameterView
from gui.stack_model import INPUT_HELP, INPUT_ID
from gui.wording import shapes_in_prose

INPUT_PARAM = Param("input_shape", "ints", (1, 28, 28), INPUT_HELP, 1, MAX_INPUT_DIMENSION)
PARAMETERS_DELAY_MS = 80  # the parameter statistics follow an edit after this pause (a burst of edits: once)
LAYER_TRAINABLE_TIP = "Uncheck to freeze this layer: its weights are not updated in training"
GROUP_TRAINABLE_TIP = ("Uncheck to freeze this group: every layer inside it, at any depth, keeps its weights in "
                       "training, whatever its own Trainable box says")
NAME_TIP = (f"The group's name, shown in the stack instead of its mode (at most {MAX_NAME} characters); "
            "leave it empty for none")


def _label(text: str = "", object_name: str = "", wrap: bool = True) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(wrap)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if object_name:
        label.setObjectName(object_name)
    return label


class Inspector(QWidget):
    """Shows one layer (by id), the input (INPUT_ID) or nothing (None)."""

    message = Signal(str)

    def __init__(self, document, parent=None):
        super().__init__(parent)
        self.setObjectName("inspector")
        self.setMinimumWidth(280)
        self.document = document
        self.layer_id: str | None = None
        self._shown_kind: str | None = None
        self.editors: dict[str, ParamEditor] = {}
        self.name_edit: QLineEdit | None = None  # a group's Name field, while a group is shown
        self.suggestion_buttons: list[QPushButton] = []
        self.parameter_source = None  # gui.training.parameter_source.ParameterSource, once torch has loaded
        self._parameters_stale = False  # an edit came while the inspector was hidden
        # The statistics may build the design's starting model (up to ~60 ms): after the edit has been drawn, once
        # for a burst of edits, never on the edit's own path.
        self._parameters_timer = QTimer(self, singleShot=True, interval=PARAMETERS_DELAY_MS)
        self._parameters_timer.timeout.connect(self._show_parameters)

        self.pages = QStackedWidget()
        self.empty_page = _label("Select a layer in the stack to see and edit its parameters.", "hint")
        self.empty_page.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.pages.addWidget(self.empty_page)
        self.pages.addWidget(self._make_layer_page())
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.pages)
        document.changed.connect(self.refresh)
        document.readOnlyChanged.connect(self._on_read_only)

    # ------------------------------------------------------------------ layout
    def _make_layer_page(self) -> QWidget:
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        # titles wrap; a very narrow dock scrolls
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        body = QWidget()
        body.setObjectName("inspectorBody")
        layout = QVBoxLayout(body)
        layout.setContentsMargins(8, 10, 8, 10)  # 8: LeNet fits beside a vertical scroll bar
        layout.setSpacing(8)

        self.title = _label("", "inspectorTitle")
        self.category = _label("", "categoryChip", wrap=False)
        title_row = QHBoxLayout()
        title_row.addWidget(self.title, 1)
        title_row.addWidget(self.category)
        layout.addLayout(title_row)
        self.help = _label("", "help")
        layout.addWidget(self.help)

        self.error = _label("", "errorBox")
        self.warning = _label("", "warningBox")
        layout.addWidget(self.error)
        layout.addWidget(self.warning)

        self.shape_box = QGroupBox("Shape")
        grid = QGridLayout(self.shape_box)
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(4)
        self.in_shape = _label("", "value", wrap=False)
        self.out_shape = _label("", "value", wrap=False)
        self.params_text = _label("", "value")
        self.macs_text = _label("", "value", wrap=False)
        for row, (name, widget) in enumerate((("Input", self.in_shape), ("Output", self.out_shape),
                                              ("Parameters", self.params_text), ("MACs", self.macs_text))):
            grid.addWidget(_label(name, "caption", wrap=False), row, 0)
            grid.addWidget(widget, row, 1)
        grid.setColumnStretch(1, 1)
        self.formula = _label("", "formula")  # wraps: a group's shortcut line is longer than the dock is wide
        grid.addWidget(self.formula, 4, 0, 1, 2)
        layout.addWidget(self.shape_box)

        self.params_box = QGroupBox("Parameters")
        self.form = QFormLayout(self.params_box)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.form.setHorizontalSpacing(10)
        self.form.setVerticalSpacing(6)
        layout.addWidget(self.params_box)

        self.trainable = QCheckBox("Trainable")
        self.trainable.setToolTip(LAYER_TRAINABLE_TIP)
        self.trainable.toggled.connect(self._on_trainable)
        layout.addWidget(self.trainable)

        self.init_box = QGroupBox("Initialisation")
        self.init_box.setToolTip("How this layer's weight and bias start when a run begins (after the Training "
                                 "tab's Weight init); saved in the design and written into the exported script")
        init_form = QFormLayout(self.init_box)
        init_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        init_form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.init_editors: dict[str, InitEditor] = {}
        self.init_labels: dict[str, QLabel] = {}
        for tensor in TENSORS:
            editor = InitEditor()
            editor.edited.connect(lambda init, tensor=tensor: self._on_init(tensor, init))
            self.init_labels[tensor] = QLabel(tensor)
            init_form.addRow(self.init_labels[tensor], editor)
            self.init_editors[tensor] = editor
        layout.addWidget(self.init_box)

        self.parameter_view = ParameterView()
        self.parameter_view.computeRequested.connect(self._compute_parameters)
        self.parameter_view.hide()
        layout.addWidget(self.parameter_view)

        self.suggest_box = QGroupBox("Hidden size suggestions")
        suggest_layout = QVBoxLayout(self.suggest_box)
        suggest_layout.setSpacing(4)
        self.suggest_note = _label("", "help")
        suggest_layout.addWidget(self.suggest_note)
        self.suggest_buttons_layout = QVBoxLayout()
        self.suggest_buttons_layout.setSpacing(4)
        suggest_layout.addLayout(self.suggest_buttons_layout)
        layout.addWidget(self.suggest_box)
        layout.addStretch(1)
        scroll.setWidget(body)
        return scroll

    # ------------------------------------------------------------------ showing a layer
    def _known(self, layer_id) -> bool:
        """Whether the design has a layer with this id, at any depth."""
        try:
            self.document.spec.layer(layer_id)
        except KeyError:
            return False
        return True

    def show_layer(self, layer_id) -> None:
        """Show the layer with this id (at any depth), the input (INPUT_ID), or nothing (None)."""
        if layer_id is not None and layer_id != INPUT_ID and not self._known(layer_id):
            layer_id = None
        self.layer_id = layer_id
        if layer_id is None:
            self._shown_kind = None
            self.pages.setCurrentIndex(0)
            return
        kind = "Input" if layer_id == INPUT_ID else self.document.spec.layer(layer_id).kind
        if kind != self._shown_kind or layer_id == INPUT_ID:
            self._build_editors(kind)
        self.pages.setCurrentIndex(1)
        self.refresh()

    def _build_editors(self, kind: str) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self.editors = {}
        self.name_edit = None
        params = (INPUT_PARAM,) if kind == "Input" else KINDS[kind].params
        if kind != "Input" and KINDS[kind].is_group:
            self.name_edit = QLineEdit()
            self.name_edit.setMaxLength(MAX_NAME)
            self.name_edit.setToolTip(NAME_TIP)
            self.name_edit.setPlaceholderText("No name: the stack shows its mode")
            self.name_edit.textEdited.connect(self._on_name)
            label = QLabel("name")
            label.setToolTip(NAME_TIP)
            self.form.addRow(label, self.name_edit)
        for param in params:
            editor = make_editor(param) if kind != "Input" else IntsEditor(param, high=100_000, hint=INPUT_SHAPE_HINT)
            editor.edited.connect(lambda value, name=param.name: self._on_edited(name, value))
            label = QLabel(param.name)
            label.setToolTip(param.help)
            self.form.addRow(label, editor)
            self.editors[param.name] = editor
        self._shown_kind = kind
        self.params_box.setVisible(bool(params))
        self.params_box.setEnabled(not self.document.read_only)

    def refresh(self) -> None:
        """Update every value, shape, formula and note from the document."""
        if self.layer_id is None:
            return
        spec = self.document.spec
        if self.layer_id == INPUT_ID:
            self._refresh_input()
            return
        if not self._known(self.layer_id):
            self.show_layer(None)
            return
        layer = spec.layer(self.layer_id)
        if layer.kind != self._shown_kind:
            self._build_editors(layer.kind)
        row = self.document.analysis.row(self.layer_id)
        kind = KINDS[layer.kind]
        self.title.setText(f"{row.path or row.index}. {group_label(layer) if layer.is_group else layer.short()}")
        self._set_category(kind.category)
        self.help.setText(kind.help)
        for name, editor in self.editors.items():
            if editor.value() != layer.params[name]:
                editor.set_value(layer.params[name])
        if layer.is_group:
            self._refresh_group(layer)
        self.trainable.blockSignals(True)
        self.trainable.setChecked(not layer.frozen)
        self.trainable.blockSignals(False)
        self.trainable.setVisible(bool(row.params) or layer.frozen)
        self.trainable.setToolTip(GROUP_TRAINABLE_TIP if layer.is_group else LAYER_TRAINABLE_TIP)
        self._show_row(row)
        self._refresh_init(layer)
        self._refresh_suggestions(layer, row)
        self.refresh_parameters()

    def _refresh_group(self, layer) -> None:
        """Only the settings the group's mode reads; its name; a note on custom shortcut layers left unused."""
        shown = MODE_PARAMS[layer.params["mode"]]
        for name, editor in self.editors.items():
            self.form.setRowVisible(editor, name in shown)
        if self.name_edit is not None:
            if self.name_edit.text() != layer.name:
                self.name_edit.setText(layer.name)
        mode, shortcut = layer.params["mode"], layer.params["shortcut"]
        if layer.shortcut and (mode != "residual" or shortcut != "custom"):
            count = f"{len(layer.shortcut)} layer{'s' if len(layer.shortcut) != 1 else ''}"
            why = f"while shortcut is {shortcut}" if mode == "residual" else "outside residual mode"
            self.help.setText(f"{self.help.text()}. Its custom shortcut ({count}) stays in the design, unused "
                              f"{why}.")

    def _refresh_input(self) -> None:
        spec = self.document.spec
        self.title.setText("Input")
        self._set_category("Input")
        self.help.setText(INPUT_HELP + ".")
        editor = self.editors["input_shape"]
        if editor.value() != spec.input_shape:
            editor.set_value(spec.input_shape)
        self.error.hide()
        self.warning.hide()
        self.in_shape.setText("—")
        self.out_shape.setText(format_shape(spec.input_shape))
        self.params_text.setText("—")
        self.macs_text.setText("—")
        self.formula.hide()
        self.trainable.hide()
        self.init_box.hide()
        self.parameter_view.hide()
        self.suggest_box.hide()

    def _set_category(self, category: str) -> None:
        self.category.setText(category)
        self.category.setStyleSheet(f"background: {CATEGORY_COLORS.get(category, '#777')};")

    def _show_row(self, row: LayerRow) -> None:
        self.error.setVisible(bool(row.error))
        self.error.setText(f"<b>Error:</b> {shapes_in_prose(row.error or '')}")
        self.warning.setVisible(bool(row.warning))
        self.warning.setText(f"<b>Warning:</b> {shapes_in_prose(row.warning or '')}")
        self.in_shape.setText(format_shape(row.in_shape))
        self.out_shape.setText(format_shape(row.shape))
        if row.params is None:
            self.params_text.setText("?")
        else:
            frozen = "" if row.trainable or not row.params else "  (frozen)"
            buffers = f"  + {row.buffers:,} buffers" if row.buffers else ""
            self.params_text.setText(f"{row.params:,}{frozen}{buffers}")
        self.macs_text.setText("?" if row.macs is None else f"{row.macs:,}")
        self.formula.setVisible(bool(row.formula))
        self.formula.setText(row.formula.replace("; ", "\n"))

    # ------------------------------------------------------------------ initialisation and parameter tensors
    def _refresh_init(self, layer) -> None:
        tensors = layer.init_tensors()
        self.init_box.setVisible(bool(tensors))
        for tensor, editor in self.init_editors.items():
            has = tensor in tensors
            editor.setVisible(has)
            self.init_labels[tensor].setVisible(has)
            if has:
                editor.set_dims(tensors[tensor])
                if editor.value() != getattr(layer.init, tensor):
                    editor.set_value(getattr(layer.init, tensor))

    def set_parameter_source(self, source) -> None:
        """Show parameter statistics from ``source`` (a ParameterSource); the training GUI installs it."""
        self.parameter_source = source
        self.refresh_parameters()

    def refresh_parameters(self, *_args) -> None:
        """Redraw the selected layer's parameter statistics soon (after an edit, a run, loaded weights, new
        settings)."""
        self._parameters_timer.start()

    @property
    def parameters_pending(self) -> bool:
        """Whether a redraw of the parameter statistics is still to come."""
        return self._parameters_timer.isActive()

    def _show_parameters(self) -> None:
        view = self.parameter_view
        if not self.isVisible():  # hidden (a full-width tab, a closed dock): redrawn when shown again
            self._parameters_stale = True
            return
        self._parameters_stale = False
        if self.parameter_source is None or self.layer_id in (None, INPUT_ID):
            view.hide()
            return
        row = self.document.analysis.row(self.layer_id)
        if not row.params:
            view.hide()
            return
        stats, caption = self.parameter_source.stats(row.layer_id)
        if stats is None:
            view.ask_to_compute(caption)
        else:
            view.show_stats(stats, caption)
        view.show()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._parameters_stale:
            self.refresh_parameters()

    def _compute_parameters(self) -> None:
        if self.parameter_source is not None:
            self.parameter_source.request()
            self.refresh_parameters()

    # ------------------------------------------------------------------ Linear hidden-size hints
    def _refresh_suggestions(self, layer, row: LayerRow) -> None:
        n_in = row.in_shape[-1] if row.in_shape else None
        n_out = self._network_output(layer.id) if layer.kind == "Linear" else None
        visible = n_in is not None and n_out is not None
        self.suggest_box.setVisible(visible)
        if not visible:
            return
        self.suggest_note.setText(f"For a hidden layer between {n_in} inputs and the network's {n_out} outputs. "
                                  "Click one to use it.")
        suggestions = suggest_hidden_sizes(n_in, n_out)
        while len(self.suggestion_buttons) < len(suggestions):
            button = QPushButton()
            button.setObjectName("suggestion")
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            button.clicked.connect(lambda _=False, b=button: self._apply_suggestion(b.property("hiddenSize")))
            self.suggest_buttons_layout.addWidget(button)
            self.suggestion_buttons.append(button)
        for button, (label, size) in zip(self.suggestion_buttons, suggestions.items(), strict=True):
            button.setText(f"{size}   ({label})")
            button.setProperty("hiddenSize", size)
            button.setEnabled(not self.document.read_only and size != layer.params["out_features"])

    def _network_output(self, layer_id: str) -> int | None:
        """The output width a hidden Linear leads to: the last Linear's out_features after it, in the order layers
        run (NetworkSpec.output_layer); None if there is none or parallel branches come between."""
        output = self.document.spec.output_layer(("out_features",), after=layer_id)
        return output.width if output else None

    def _apply_suggestion(self, size: int) -> None:
        if self.layer_id and self.layer_id != INPUT_ID:
            self.document.edit_param(self.layer_id, "out_features", int(size))

    # ------------------------------------------------------------------ edits
    def _on_edited(self, name: str, value) -> None:
        if self.layer_id == INPUT_ID:
            self.document.edit_input_shape(value)
        elif self.layer_id is not None:
            self.document.edit_param(self.layer_id, name, value)

    def _on_name(self, text: str) -> None:
        if self.layer_id and self.layer_id != INPUT_ID:
            self.document.edit_name(self.layer_id, text)

    def _on_init(self, tensor: str, init) -> None:
        if self.layer_id and self.layer_id != INPUT_ID:
            self.document.edit_init(self.layer_id, tensor, init)

    def _on_trainable(self, checked: bool) -> None:
        if self.layer_id and self.layer_id != INPUT_ID:
            self.document.edit_frozen(self.layer_id, not checked)

    def _on_read_only(self, read_only: bool) -> None:
        self.params_box.setEnabled(not read_only)
        self.trainable.setEnabled(not read_only)
        self.init_box.setEnabled(not read_only)
        for button in self.suggestion_buttons:
            button.setEnabled(not read_only)

    def focus_first_editor(self) -> None:
        if self.editors:
            next(iter(self.editors.values())).focus_widget().setFocus()
