"""The layer stack view: a QTreeView over LayerStackModel plus the edits that act on its selection.

Selection is the only state here, and it is kept as layer ids through the
model's row notifications, so it survives edits, undo and redo.
"""
from __future__ import annotations

from PySide6.QtCore import (
    QEvent,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTreeView,
)

from engine import tree
from engine.errors import SpecError
from engine.shapes import format_shape
from engine.tree import Place
from gui.document import what
from gui.editors import INPUT_SHAPE_HINT, ShapeEdit
from gui.icons import ERROR_COLOR
from gui.mime import layers_from_mime, layers_to_mime
from gui.stack_model import (
    COL_INDEX,
    COL_LAYER,
    COL_MACS,
    COL_NOTES,
    COL_PARAMS,
    COL_SHAPE,
    FOREGROUND,
    INPUT_ID,
    LayerStackModel,
)

EMPTY_HINT = "This design has no layers yet: double-click a layer in the palette or drag it here."
NOTE_PADDING = 4  # pixels around the note line of the current row
NOTE_CELL_MARGINS = 12  # pixels of a Notes cell that its text cannot use


class ShapeDelegate(QStyledItemDelegate):
    """Edits the input shape in place with a field that says what it expects."""

    def __init__(self, view: StackView):
        super().__init__(view)
        self.view = view

    def createEditor(self, parent, option, index):
        return ShapeEdit(INPUT_SHAPE_HINT, 1, 100_000, parent)

    def eventFilter(self, editor, event) -> bool:
        """Enter or leaving the field with a text that is not a shape keeps the input as it was: say why."""
        leaving = event.type() == QEvent.Type.FocusOut or (
            event.type() == QEvent.Type.KeyPress and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter))
        if leaving and isinstance(editor, ShapeEdit) and not editor.is_shape():
            editor.show_hint()
            shape = format_shape(self.view.document.spec.input_shape)
            self.view.message.emit(f"{INPUT_SHAPE_HINT} The input stays {shape}.")
        return super().eventFilter(editor, event)


class NoteRowDelegate(QStyledItemDelegate):
    """The delegate of the current row while it has a note too long for the Notes column: the row
    grows a line below its cells, where the note is written whole from the Layer column to the edge.

    Only that row gets it (``setItemDelegateForRow``): every other row keeps Qt's own delegate, so
    painting the stack runs no Python per cell."""

    def __init__(self, view: StackView):
        super().__init__(view)
        self.view = view

    def sizeHint(self, option, index):
        size = super().sizeHint(option, index)
        text = self.view.note_text(index)
        if text:
            size.setHeight(size.height() + self.view.note_height(text))
        return size

    def paint(self, painter: QPainter, option, index) -> None:
        text = self.view.note_text(index)
        if not text:
            super().paint(painter, option, index)
            return
        note = self.view.note_height(text)
        background = QStyleOptionViewItem(option)  # the cell's background (selection) goes under the note too
        self.initStyleOption(background, index)
        background.text, background.icon = "", QIcon()
        background.features &= ~QStyleOptionViewItem.ViewItemFeature.HasDecoration
        self.view.style().drawControl(QStyle.ControlElement.CE_ItemViewItem, background, painter, self.view)
        if index.column() != COL_NOTES:
            line = QStyleOptionViewItem(option)
            line.rect = QRect(option.rect.x(), option.rect.y(), option.rect.width(), option.rect.height() - note)
            super().paint(painter, line, index)
            return
        # the Notes cell comes last in the row: write the note across the row, under the cells
        color = self.view.stack_model.data(index, FOREGROUND)
        painter.save()
        painter.setPen(color.color() if color is not None else QColor(ERROR_COLOR))
        painter.drawText(self.view.note_rect(option.rect, text), Qt.TextFlag.TextWordWrap, text)
        painter.restore()


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
        # Rows share one height (Qt then measures one row, not every row after each edit: 4x faster for 100 layers),
        # except while the current row grows a line for its note (_place_note_row).
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
        self._note_delegate = NoteRowDelegate(self)
        self._note_row = -1  # the row number that has the note delegate
        self._note_index = QPersistentModelIndex()  # and the row itself
        self._note_timer = QTimer(self, singleShot=True, interval=0)
        self._note_timer.timeout.connect(self._place_note_row)
        self._empty_hint = QLabel(EMPTY_HINT, self.viewport())
        self._empty_hint.setObjectName("hint")
        self._empty_hint.setWordWrap(True)
        self._empty_hint.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self._empty_hint.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)  # drops reach the stack
        self.setIndentation(14)
        self.setTreePosition(COL_LAYER)  # groups open in the Layer column; # stays a column of plain numbers
        header = self.header()
        header.setStretchLastSection(True)
        header.setSectionsMovable(False)
        for column, mode in ((COL_INDEX, QHeaderView.ResizeMode.Interactive),
                             (COL_LAYER, QHeaderView.ResizeMode.Interactive),
                             (COL_SHAPE, QHeaderView.ResizeMode.Interactive),
                             (COL_PARAMS, QHeaderView.ResizeMode.Interactive),
                             (COL_MACS, QHeaderView.ResizeMode.Interactive)):
            header.setSectionResizeMode(column, mode)
        for column, width in ((COL_INDEX, 64), (COL_LAYER, 270), (COL_SHAPE, 110), (COL_PARAMS, 80), (COL_MACS, 80)):
            header.resizeSection(column, width)
        self.context_actions: list = []
        self.customContextMenuRequested.connect(self._show_context_menu)
        self.selectionModel().currentRowChanged.connect(self._emit_current)
        for change in (self.selectionModel().currentRowChanged, header.sectionResized, self.stack_model.dataChanged,
                       self.stack_model.rowsInserted, self.stack_model.rowsRemoved, self.stack_model.layoutChanged,
                       self.stack_model.modelReset):
            change.connect(lambda *_: self._note_timer.start())
        document.changed.connect(self._show_empty_hint)
        self._show_empty_hint()
        self.stack_model.dropped.connect(self.select_ids)
        self.stack_model.message.connect(self.message)
        self.stack_model.modelReset.connect(self._emit_current)
        self.stack_model.rowsRemoved.connect(self._emit_current)
        self.stack_model.layoutChanged.connect(self._emit_current)
        self.doubleClicked.connect(self._on_double_clicked)
        self._last_current: object = object()

    # ------------------------------------------------------------------ the current row's note, the empty hint
    def note_text(self, index: QModelIndex) -> str:
        """The note (error or warning) that the row of ``index`` writes on a line of its own: only the
        current top-level row has one, when its Notes cell is too narrow to show the note whole."""
        current = self.currentIndex()
        if (not index.isValid() or index.row() != current.row() or index.parent() != current.parent()
                or not self.stack_model.layer_id(index)):
            return ""
        text = self.stack_model.data(index.siblingAtColumn(COL_NOTES)) or ""
        fits = self.fontMetrics().horizontalAdvance(text) + NOTE_CELL_MARGINS <= self.columnWidth(COL_NOTES)
        return "" if fits else text

    def note_rect(self, row_rect: QRect, text: str) -> QRect:
        """Where the note of a row drawn in ``row_rect`` goes: its last line(s), from the Layer column to the edge."""
        left = self.columnViewportPosition(COL_LAYER) + NOTE_PADDING
        width = max(40, self.viewport().width() - left - NOTE_PADDING)
        bounds = self.fontMetrics().boundingRect(QRect(0, 0, width, 10_000), Qt.TextFlag.TextWordWrap, text)
        return QRect(left, row_rect.bottom() + 1 - bounds.height() - NOTE_PADDING, width, bounds.height())

    def note_height(self, text: str) -> int:
        """How much taller a row gets for writing ``text`` on its note line."""
        return self.note_rect(QRect(), text).height() + NOTE_PADDING

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._note_timer.start()  # changes while hidden (a run's health badges, from the Training tab) placed now

    def _place_note_row(self) -> None:
        """Give the note delegate to the current row if it has a note to write, and resize the rows (not while the
        view is hidden: ``showEvent`` places it then)."""
        if not self.isVisible():
            return
        current = self.currentIndex().siblingAtColumn(0)
        noted = current if self.note_text(current) else QModelIndex()
        row = noted.row() if noted.isValid() else -1
        old, self._note_row = self._note_row, row
        earlier, self._note_index = QModelIndex(self._note_index), QPersistentModelIndex(noted)
        if self.uniformRowHeights() == noted.isValid():
            self.setUniformRowHeights(not noted.isValid())
        if old != row:  # Qt gives a delegate to a row number (in every list): note_text answers for one row only
            if old >= 0:
                self.setItemDelegateForRow(old, None)
            if row >= 0:
                self.setItemDelegateForRow(row, self._note_delegate)
        for index in (earlier, noted):  # the rows' heights follow
            if index.isValid():
                self.dataChanged(index, index.siblingAtColumn(COL_NOTES))

    def dataChanged(self, top_left: QModelIndex, bottom_right: QModelIndex, roles=()) -> None:
        """Repaint changed rows without asking each for its height again: every row has the same
        height but the note row, whose height ``_place_note_row`` refreshes alone. (Qt's tree view
        measures every changed row, which was most of the time an edit took in a 100-layer design.)"""
        if top_left.row() == bottom_right.row() and self._note_row == top_left.row() \
                and top_left.siblingAtColumn(0) == QModelIndex(self._note_index):
            super().dataChanged(top_left, bottom_right, list(roles))
        else:
            QAbstractItemView.dataChanged(self, top_left, bottom_right, list(roles))

    def empty_hint(self) -> str:
        """What the stack says under the input row while the design has no layers ("" once it has one)."""
        return self._empty_hint.text() if self._empty_hint.isVisibleTo(self) else ""

    def _show_empty_hint(self) -> None:
        self._empty_hint.setVisible(not self.document.spec.layers)
        self._place_empty_hint()

    def _place_empty_hint(self) -> None:
        if self._empty_hint.isVisibleTo(self):
            top = self.visualRect(self.stack_model.index(0, 0)).bottom() + 24
            width = max(0, self.viewport().width() - 48)
            self._empty_hint.setGeometry(24, top, width, self._empty_hint.heightForWidth(width))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place_empty_hint()

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
        """Selected layers, at any depth, in design order (the input and Shortcut rows excluded)."""
        chosen = {self.stack_model.layer_id(i) for i in self.selectionModel().selectedRows()} - {INPUT_ID, None}
        if not chosen:
            return []
        return [layer.id for layer in self.document.spec.all_layers() if layer.id in chosen]

    def select_ids(self, ids) -> None:
        """Select these layers (any depth: their groups open), make the first current and scroll to it."""
        selection = QItemSelection()
        for layer_id in ids:
            index = self.stack_model.index_of(layer_id)
            if index.isValid():
                selection.select(index, index.siblingAtColumn(self.stack_model.columnCount() - 1))
        if selection.isEmpty():
            return
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        first = self.stack_model.index_of(list(ids)[0])
        self.selectionModel().setCurrentIndex(first, QItemSelectionModel.SelectionFlag.NoUpdate)
        self.selectionModel().select(selection, flags)
        self.scrollTo(first)  # opens the groups around it
        self._emit_current()

    def select_input(self) -> None:
        index = self.stack_model.index(0, 0)
        self.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                              | QItemSelectionModel.SelectionFlag.Rows)

    def insert_place(self) -> Place:
        """Where new layers go: after the last selected layer in its group (or top level); at the end of a
        selected Shortcut row; first if the input is selected; else at the end of the design."""
        ids = self.selected_ids()
        if ids:
            return self.stack_model.place_after(self.stack_model.index_of(ids[-1]))
        return self.stack_model.place_after(self.currentIndex())

    # ------------------------------------------------------------------ edits on the selection
    def add_kind(self, kind: str) -> list[str]:
        ids = self.document.add_kind(self.insert_place(), kind)
        self.select_ids(ids)
        return ids

    def delete_selected(self) -> bool:
        ids = tree.outermost(self.document.spec.layers, self.selected_ids())
        if not ids:
            return False
        follow = self._neighbour(ids)
        if not self.document.delete_layers(ids):
            return False
        if follow:
            self.select_ids([follow])
        else:
            self.select_input()
        return True

    def _neighbour(self, ids: list[str]) -> str | None:
        """The layer to select once ``ids`` are gone: the next one in the last one's list, else the one
        before the first, else the group they sat in."""
        spec, chosen = self.document.spec, set(ids)
        last, first = spec.place(ids[-1]), spec.place(ids[0])
        after = [layer.id for layer in spec.contents(last.parent, last.slot)[last.index + 1:] if layer.id not in chosen]
        before = [layer.id for layer in spec.contents(first.parent, first.slot)[: first.index]
                  if layer.id not in chosen]
        return (after[:1] or before[-1:] or [first.parent])[0]

    def duplicate_selected(self) -> list[str]:
        ids = tree.outermost(self.document.spec.layers, self.selected_ids())
        layers = [self.document.spec.layer(i) for i in ids]
        new = self.document.add_layers(self.insert_place(), layers, "Duplicate")
        self.select_ids(new)
        return new

    def copy_selected(self) -> bool:
        ids = tree.outermost(self.document.spec.layers, self.selected_ids())
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
        new = self.document.add_layers(self.insert_place(), layers, "Paste")
        self.select_ids(new)
        return new

    def move_selected(self, step: int) -> bool:
        ids = self.selected_ids()
        moved = self.document.shift_layers(ids, step)
        if moved:
            self.select_ids(tree.outermost(self.document.spec.layers, ids))
        return moved

    def group_selected(self, mode: str = "sequence") -> str | None:
        """Wrap the selected layers in a new group of ``mode`` (Group, Make residual); open and select it."""
        try:
            group_id = self.document.group_layers(self.selected_ids(), mode)
        except SpecError as exc:
            self.message.emit(str(exc))
            return None
        self.select_ids([group_id])
        self.expand(self.stack_model.index_of(group_id))
        return group_id

    def ungroup_selected(self) -> list[str]:
        """Put the selected group's layers in its place, saying what changes for a residual, branches or
        repeated group."""
        groups = [i for i in self.selected_ids() if self.document.spec.layer(i).is_group]
        if not groups:
            self.message.emit("Select a group to ungroup it")
            return []
        layer = self.document.spec.layer(groups[0])
        try:
            ids = self.document.ungroup(layer.id)
        except SpecError as exc:
            self.message.emit(str(exc))
            return []
        self.message.emit(ungroup_note(layer))
        if ids:
            self.select_ids(ids)
        return ids

    # ------------------------------------------------------------------ events
    def _show_context_menu(self, position) -> None:
        index = self.indexAt(position)
        if index.isValid() and not self.selectionModel().isRowSelected(index.row(), index.parent()):
            flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
            self.selectionModel().setCurrentIndex(index.siblingAtColumn(0), flags)
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
        layer_id = self.stack_model.layer_id(index)
        if layer_id:
            self.layerActivated.emit(layer_id)

    def set_read_only(self, read_only: bool) -> None:
        self.setDragEnabled(not read_only)
        self.setAcceptDrops(not read_only)


def ungroup_note(layer) -> str:
    """What ungrouping ``layer`` changes, in a sentence for the status bar."""
    p, label = layer.params, what([layer])
    changes = []
    if p.get("mode") == "residual":
        changes.append("its layers now run in sequence without the shortcut sum"
                       + (" (its shortcut layers are left out)" if layer.shortcut else ""))
    elif p.get("mode") == "branches":
        changes.append("its branches now run one after another instead of side by side, unmerged")
    if p.get("repeat", 1) > 1:
        changes.append(f"they run once instead of {p['repeat']} times")
    detail = "; ".join(changes) if changes else "its layers keep running as before"
    return f"Ungrouped {label}: {detail}. Undo puts the group back"
