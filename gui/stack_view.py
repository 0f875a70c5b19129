"""The layer stack view: a QTreeView over LayerStackModel plus the edits that act on its selection.

Selection is the only state here, and it is kept as layer ids through the
model's row notifications, so it survives edits, undo and redo.
"""
from __future__ import annotations

from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLineEdit, QMenu, QStyledItemDelegate, QTreeView

from engine.errors import SpecError
from gui.editors import ShapeValidator
from gui.mime import layers_from_mime, layers_to_mime
from gui.stack_model import COL_INDEX, COL_LAYER, COL_MACS, COL_NOTES, COL_PARAMS, COL_SHAPE, INPUT_ID, LayerStackModel


class ShapeDelegate(QStyledItemDelegate):
    """In-place editor for the input shape: a line edit that only takes shapes like 1x28x28."""

    def createEditor(self, parent, option, index):  # noqa: N802 - Qt's name
        editor = QLineEdit(parent)
        editor.setValidator(ShapeValidator(1, 100_000, 8, editor))
        return editor


class StackView(QTreeView):
    """Shows the stack; ``currentLayerChanged(id)`` follows the current row (INPUT_ID for the input, None for none)."""

    currentLayerChanged = Signal(object)
    layerActivated = Signal(str)
    message = Signal(str)

    def __init__(self, document, parent=None):
        super().__init__(parent)
        self.document = document
        self.stack_model = LayerStackModel(document, self)
        self.setModel(self.stack_model)
        self.setObjectName("stack")
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setAllColumnsShowFocus(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setItemDelegateForColumn(COL_SHAPE, ShapeDelegate(self))
        self.setIndentation(14)
        header = self.header()
        header.setStretchLastSection(True)
        header.setSectionsMovable(False)
        for column, mode in ((COL_INDEX, QHeaderView.ResizeMode.Interactive),
                             (COL_LAYER, QHeaderView.ResizeMode.Interactive),
                             (COL_SHAPE, QHeaderView.ResizeMode.Interactive),
                             (COL_PARAMS, QHeaderView.ResizeMode.Interactive),
                             (COL_MACS, QHeaderView.ResizeMode.Interactive)):
            header.setSectionResizeMode(column, mode)
        for column, width in ((COL_INDEX, 56), (COL_LAYER, 230), (COL_SHAPE, 110), (COL_PARAMS, 80), (COL_MACS, 80)):
            header.resizeSection(column, width)
        self.context_actions: list = []
        self.customContextMenuRequested.connect(self._show_context_menu)
        self.selectionModel().currentRowChanged.connect(self._emit_current)
        self.stack_model.dropped.connect(self.select_ids)
        self.stack_model.modelReset.connect(self._emit_current)
        self.stack_model.rowsRemoved.connect(self._emit_current)
        self.doubleClicked.connect(self._on_double_clicked)
        self._last_current: object = object()

    # ------------------------------------------------------------------ selection
    def current_layer_id(self):
        index = self.currentIndex()
        return self.stack_model.layer_id(index) if index.isValid() else None

    def _emit_current(self, *_) -> None:
        current = self.current_layer_id()
        if current != self._last_current:
            self._last_current = current
            self.currentLayerChanged.emit(current)

    def selected_ids(self) -> list[str]:
        """Selected layers in stack order (the input row and inner layers excluded)."""
        chosen = {self.stack_model.layer_id(i) for i in self.selectionModel().selectedRows()
                  if not self.stack_model.is_child(i)}
        return [layer.id for layer in self.document.spec.layers if layer.id in chosen]

    def select_ids(self, ids) -> None:
        """Select these layers, make the first current and scroll to it."""
        selection = QItemSelection()
        for layer_id in ids:
            index = self.stack_model.index_of(layer_id)
            if index.isValid():
                selection.select(index, index.siblingAtColumn(COL_NOTES))
        if selection.isEmpty():
            return
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        first = self.stack_model.index_of(list(ids)[0])
        self.selectionModel().setCurrentIndex(first, QItemSelectionModel.SelectionFlag.NoUpdate)
        self.selectionModel().select(selection, flags)
        self.scrollTo(first)
        self._emit_current()

    def select_input(self) -> None:
        index = self.stack_model.index(0, 0)
        self.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                              | QItemSelectionModel.SelectionFlag.Rows)

    def insert_position(self) -> int:
        """Where new layers go: after the last selected layer; first if the input is selected; else at the end."""
        ids = self.selected_ids()
        if ids:
            return self.document.spec.index(ids[-1]) + 1
        if self.current_layer_id() == INPUT_ID:
            return 0
        return len(self.document.spec.layers)

    # ------------------------------------------------------------------ edits on the selection
    def add_kind(self, kind: str) -> list[str]:
        ids = self.document.add_kind(self.insert_position(), kind)
        self.select_ids(ids)
        return ids

    def delete_selected(self) -> bool:
        ids = self.selected_ids()
        if not ids:
            return False
        below = [layer.id for layer in self.document.spec.layers[self.document.spec.index(ids[-1]) + 1:]]
        above = [layer.id for layer in self.document.spec.layers[: self.document.spec.index(ids[0])]]
        if not self.document.delete_layers(ids):
            return False
        follow = below[:1] or above[-1:]
        if follow:
            self.select_ids(follow)
        else:
            self.select_input()
        return True

    def duplicate_selected(self) -> list[str]:
        ids = self.selected_ids()
        layers = [self.document.spec.layer(i) for i in ids]
        new = self.document.add_layers(self.insert_position(), layers, "Duplicate")
        self.select_ids(new)
        return new

    def copy_selected(self) -> bool:
        ids = self.selected_ids()
        if not ids:
            return False
        QGuiApplication.clipboard().setMimeData(layers_to_mime([self.document.spec.layer(i) for i in ids]))
        self.message.emit(f"Copied {len(ids)} layer{'s' if len(ids) > 1 else ''}")
        return True

    def cut_selected(self) -> bool:
        return self.copy_selected() and self.delete_selected()

    def paste(self) -> list[str]:
        try:
            layers, _ = layers_from_mime(QGuiApplication.clipboard().mimeData())
        except SpecError as exc:
            self.message.emit(f"Nothing pasted: {exc}")
            return []
        new = self.document.add_layers(self.insert_position(), layers, "Paste")
        self.select_ids(new)
        return new

    def move_selected(self, step: int) -> bool:
        ids = self.selected_ids()
        moved = self.document.shift_layers(ids, step)
        if moved:
            self.select_ids(ids)
        return moved

    # ------------------------------------------------------------------ events
    def _show_context_menu(self, position) -> None:
        index = self.indexAt(position)
        clicked_unselected = index.isValid() and not self.stack_model.is_child(index) and \
            not self.selectionModel().isRowSelected(index.row(), index.parent())
        if clicked_unselected and index.row() == 0:
            self.select_input()
        elif clicked_unselected:
            self.select_ids([self.stack_model.layer_id(index)])
        self.context_menu().exec(self.viewport().mapToGlobal(position))

    def context_menu(self) -> QMenu:
        """The right-click menu: the window's edit actions (None = separator)."""
        menu = QMenu(self)
        for action in self.context_actions:
            if action is None:
                menu.addSeparator()
            else:
                menu.addAction(action)
        return menu

    def _on_double_clicked(self, index) -> None:
        if not self.stack_model.is_child(index) and index.row() > 0:
            self.layerActivated.emit(self.stack_model.layer_id(index))

    def set_read_only(self, read_only: bool) -> None:
        self.setDragEnabled(not read_only)
        self.setAcceptDrops(not read_only)
