"""The layer stack as a Qt item model over the document.

Row 0 is the input; rows 1..n are the layers; a block row has its inner
layers as read-only children, built on the meta device only when expanded.
The model keeps no copy of the design: on ``document.changed`` it tells the
views which rows were removed, moved or inserted (so selection and expansion
survive) and that every row's data changed; ``data()`` reads the document's
cached analysis.
"""
from __future__ import annotations

import uuid
from dataclasses import replace

from PySide6.QtCore import QAbstractItemModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont

from engine.errors import SpecError
from engine.layers import KINDS
from engine.shapes import LayerRow, format_count, format_shape
from gui.editors import parse_ints
from gui.icons import ERROR_COLOR, WARNING_COLOR, category_icon, error_icon, warning_icon
from gui.meta import ChildRow, block_children
from gui.mime import KIND_MIME, LAYERS_MIME, kind_from_mime, layers_from_mime, layers_to_mime
from gui.wording import shapes_in_prose

COLUMNS = ("#", "Layer", "Output shape", "Params", "MACs", "Notes")
COL_INDEX, COL_LAYER, COL_SHAPE, COL_PARAMS, COL_MACS, COL_NOTES = range(len(COLUMNS))
LAYER_ID_ROLE = int(Qt.ItemDataRole.UserRole) + 1
INPUT_ID = ""  # the LAYER_ID_ROLE of the input row
MUTED = QColor("#7a828c")
BADGE_COLOR = "#2e7d32"  # a training health badge no advice names
# Roles as plain ints (Qt passes ints; comparing them is much cheaper than enum members on every paint).
DISPLAY, DECORATION, EDIT, TOOLTIP, FONT, ALIGNMENT, FOREGROUND = (
    int(r) for r in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.EditRole,
                     Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.FontRole, Qt.ItemDataRole.TextAlignmentRole,
                     Qt.ItemDataRole.ForegroundRole))
RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
F = Qt.ItemFlag
CHILD_FLAGS = F.ItemIsEnabled
ROW_FLAGS = F.ItemIsEnabled | F.ItemIsSelectable
LAYER_FLAGS = ROW_FLAGS | F.ItemIsDragEnabled
INPUT_SHAPE_FLAGS = ROW_FLAGS | F.ItemIsEditable
INPUT_HELP = "Shape of one input sample, without the batch dimension (e.g. 1x28x28 for MNIST)"


class LayerStackModel(QAbstractItemModel):
    """Rows of the stack; ``dropped(ids)`` tells the view which layers a drop added or moved."""

    dropped = Signal(list)

    def __init__(self, document, parent=None):
        super().__init__(parent)
        self.document = document
        self.source_token = uuid.uuid4().hex  # tells our own drags (moves) from others (copies)
        self._ids = [layer.id for layer in document.spec.layers]
        self._children: dict[str, tuple[tuple, list[ChildRow]]] = {}
        self._tag_of: dict[str, int] = {}
        self._id_of_tag: dict[int, str] = {}
        self._extra = None  # extra columns after the built-in ones (set_extra_columns), e.g. the Cost view's
        self._badges: dict[str, tuple[str, str, bool]] = {}  # layer id -> training health badge (set_badges)
        self._refresh_lookups()
        document.changed.connect(self._on_changed)
        document.readOnlyChanged.connect(self._emit_all_changed)
        document.extrasChanged.connect(self._on_extras_changed)

    # ------------------------------------------------------------------ lookups
    def _refresh_lookups(self) -> None:
        doc = self.document
        batch_size = (doc.extras.get("training") or {}).get("batch_size")
        self._rows = {row.layer_id: with_batch_warning(row, batch_size) for row in doc.analysis.rows}
        self._layers = {layer.id: layer for layer in doc.spec.layers}
        self._row_of = {layer_id: i + 1 for i, layer_id in enumerate(self._ids)}
        self._cells: dict[str, dict[int, tuple]] = {}

    def _tag(self, layer_id: str) -> int:
        if layer_id not in self._tag_of:
            tag = len(self._tag_of) + 1
            self._tag_of[layer_id], self._id_of_tag[tag] = tag, layer_id
        return self._tag_of[layer_id]

    def layer_id(self, index: QModelIndex) -> str | None:
        """Layer id of a top-level row (or of a child's block); INPUT_ID for the input row."""
        if not index.isValid():
            return None
        if index.internalId():
            return self._id_of_tag.get(index.internalId())
        return INPUT_ID if index.row() == 0 else self._ids[index.row() - 1]

    def index_of(self, layer_id: str, column: int = 0) -> QModelIndex:
        row = 0 if layer_id == INPUT_ID else self._row_of.get(layer_id)
        return QModelIndex() if row is None else self.index(row, column)

    def is_child(self, index: QModelIndex) -> bool:
        return index.isValid() and index.internalId() != 0

    # ------------------------------------------------------------------ structure
    def index(self, row: int, column: int, parent: QModelIndex = QModelIndex()) -> QModelIndex:
        if column < 0 or column >= self.columnCount() or row < 0:
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, 0) if row <= len(self._ids) else QModelIndex()
        if parent.internalId() or parent.row() == 0:
            return QModelIndex()
        layer_id = self._ids[parent.row() - 1]
        kids = self._children.get(layer_id)
        if kids is None or row >= len(kids[1]):
            return QModelIndex()
        return self.createIndex(row, column, self._tag(layer_id))

    def parent(self, index: QModelIndex = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        if not index.isValid() or not index.internalId():
            return QModelIndex()
        row = self._row_of.get(self._id_of_tag.get(index.internalId(), ""))
        return QModelIndex() if row is None else self.createIndex(row, 0, 0)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        if not parent.isValid():
            return len(self._ids) + 1
        if parent.column() != 0 or parent.internalId() or parent.row() == 0:
            return 0
        kids = self._children.get(self._ids[parent.row() - 1])
        return len(kids[1]) if kids else 0

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return len(COLUMNS) + (len(self._extra.titles) if self._extra is not None else 0)

    # ------------------------------------------------------------------ extra columns
    def set_extra_columns(self, columns) -> None:
        """Show ``columns`` after the built-in ones (None: remove them). ``columns.titles`` names them;
        ``columns.header(column, role)`` and ``columns.data(layer_id, column, role)`` answer for their header and
        layer rows (``column`` counted from 0 among them); call ``extra_columns_changed`` when the answers change."""
        if self._extra is not None:
            self.beginRemoveColumns(QModelIndex(), len(COLUMNS), self.columnCount() - 1)
            self._extra = None
            self.endRemoveColumns()
        if columns is not None and columns.titles:
            self.beginInsertColumns(QModelIndex(), len(COLUMNS), len(COLUMNS) + len(columns.titles) - 1)
            self._extra = columns
            self.endInsertColumns()

    def extra_columns_changed(self) -> None:
        if self._extra is not None:
            self.dataChanged.emit(self.index(0, len(COLUMNS)), self.index(len(self._ids), self.columnCount() - 1))

    def hasChildren(self, parent: QModelIndex = QModelIndex()) -> bool:
        if not parent.isValid():
            return True
        if parent.column() != 0 or parent.internalId() or parent.row() == 0:
            return False
        layer = self._layers.get(self._ids[parent.row() - 1])
        return False  # groups: the tree helper makes these real rows (issue 12)

    def canFetchMore(self, parent: QModelIndex) -> bool:
        return self.hasChildren(parent) and parent.isValid() and self._ids[parent.row() - 1] not in self._children

    def fetchMore(self, parent: QModelIndex) -> None:
        """Build the block on the meta device and list its inner layers."""
        if not self.canFetchMore(parent):
            return
        layer_id = self._ids[parent.row() - 1]
        key, kids = self._compute_children(layer_id)
        self.beginInsertRows(parent, 0, len(kids) - 1)
        self._children[layer_id] = (key, kids)
        self.endInsertRows()

    def _block_key(self, layer_id: str) -> tuple:
        layer, row = self._layers[layer_id], self._rows[layer_id]
        return layer.kind, row.in_shape, tuple(sorted(layer.params.items())), bool(row.error)

    def _compute_children(self, layer_id: str) -> tuple[tuple, list[ChildRow]]:
        key = self._block_key(layer_id)
        layer, row = self._layers[layer_id], self._rows[layer_id]
        if row.in_shape is None or row.error:
            return key, [ChildRow("", "", "cannot build this block until its error is fixed", None)]
        return key, block_children(layer.kind, row.in_shape, layer.params)

    # ------------------------------------------------------------------ following the document
    def _on_changed(self) -> None:
        new_ids = [layer.id for layer in self.document.spec.layers]
        if new_ids != self._ids:
            self._restructure(new_ids)
        self._refresh_lookups()
        self._refresh_children()
        self._emit_all_changed()

    def _on_extras_changed(self, key: str) -> None:
        if key == "training":  # the batch size decides the BatchNorm rows' warning
            self._refresh_lookups()
            self._emit_all_changed()

    def _emit_all_changed(self, *_) -> None:
        self.dataChanged.emit(self.index(0, 0), self.index(len(self._ids), self.columnCount() - 1))

    def _restructure(self, new_ids: list[str]) -> None:
        """Announce removals, then a reorder, then insertions, so views keep selection and expansion."""
        new_set, old_set = set(new_ids), set(self._ids)
        if not new_set & old_set:
            self.beginResetModel()
            self._ids = list(new_ids)
            self._children.clear()
            self._row_of = {layer_id: i + 1 for i, layer_id in enumerate(self._ids)}
            self.endResetModel()
            return
        # 1. removals, bottom up, in contiguous runs
        row = len(self._ids) - 1
        while row >= 0:
            if self._ids[row] in new_set:
                row -= 1
                continue
            last = row
            while row >= 0 and self._ids[row] not in new_set:
                row -= 1
            self.beginRemoveRows(QModelIndex(), row + 2, last + 1)
            for layer_id in self._ids[row + 1 : last + 1]:
                self._children.pop(layer_id, None)
            del self._ids[row + 1 : last + 1]
            self._row_of = {layer_id: i + 1 for i, layer_id in enumerate(self._ids)}
            self.endRemoveRows()
        # 2. reorder the survivors
        target = [layer_id for layer_id in new_ids if layer_id in old_set]
        if target != self._ids:
            self._reorder(target)
        # 3. insertions, top down, in contiguous runs
        row = 0
        while row < len(new_ids):
            if row < len(self._ids) and self._ids[row] == new_ids[row]:
                row += 1
                continue
            first = row
            while row < len(new_ids) and new_ids[row] not in old_set:
                row += 1
            if row == first:  # cannot happen after the reorder above; stay correct if it ever does
                self.beginResetModel()
                self._ids = list(new_ids)
                self._children.clear()
                self.endResetModel()
                return
            self.beginInsertRows(QModelIndex(), first + 1, row)
            self._ids[first:first] = new_ids[first:row]
            self._row_of = {layer_id: i + 1 for i, layer_id in enumerate(self._ids)}
            self.endInsertRows()

    def _reorder(self, target: list[str]) -> None:
        self.layoutAboutToBeChanged.emit()
        new_row = {layer_id: i + 1 for i, layer_id in enumerate(target)}
        old, new = [], []
        for persistent in self.persistentIndexList():
            index = QModelIndex(persistent)
            if index.isValid() and not index.internalId() and index.row() > 0:
                old.append(index)
                new.append(self.createIndex(new_row[self._ids[index.row() - 1]], index.column(), 0))
        self._ids = list(target)
        self._row_of = dict(new_row)
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()

    def _refresh_children(self) -> None:
        """Rebuild the inner layers of expanded blocks whose input or parameters changed."""
        for layer_id, (key, kids) in list(self._children.items()):
            if layer_id not in self._layers:
                del self._children[layer_id]
                continue
            if key == self._block_key(layer_id):
                continue
            parent = self.index_of(layer_id)
            self.beginRemoveRows(parent, 0, len(kids) - 1)
            self._children[layer_id] = (key, [])
            self.endRemoveRows()
            new_key, new_kids = self._compute_children(layer_id)
            self.beginInsertRows(parent, 0, len(new_kids) - 1)
            self._children[layer_id] = (new_key, new_kids)
            self.endInsertRows()

    # ------------------------------------------------------------------ data
    def headerData(self, section, orientation, role=DISPLAY):
        if orientation == Qt.Orientation.Horizontal and section >= len(COLUMNS) and self._extra is not None:
            return self._extra.header(section - len(COLUMNS), role)
        if orientation == Qt.Orientation.Horizontal:
            if role == DISPLAY:
                return COLUMNS[section]
            if role == ALIGNMENT and section in (COL_PARAMS, COL_MACS):
                return RIGHT
        return None

    def set_badges(self, badges: dict[str, tuple[str, str, bool]]) -> None:
        """Badges in the Notes cells while a run goes (gui.training.health_view): layer id -> (text, tooltip,
        alarming); an empty dict takes them away."""
        if badges == self._badges:
            return
        self._badges = badges
        if self._ids:
            self.dataChanged.emit(self.index(1, COL_NOTES), self.index(len(self._ids), COL_NOTES))

    def _badge_data(self, layer_id: str, role):
        """A health badge's text, colour and tooltip, after the row's own note."""
        text, tooltip, alarming = self._badges[layer_id]
        row = self._rows.get(layer_id)
        note = shapes_in_prose(row.error or row.warning) if row is not None else ""
        if role == DISPLAY:
            return f"{text} · {note}" if note else text
        if role == FOREGROUND:
            return QBrush(QColor(ERROR_COLOR if alarming else BADGE_COLOR))
        if role == TOOLTIP:
            return tooltip
        return None

    def data(self, index: QModelIndex, role=DISPLAY):
        if not index.isValid():
            return None
        if role == LAYER_ID_ROLE:
            return self.layer_id(index)
        if index.internalId():
            return self._child_data(index, role)
        if index.row() == 0:
            return self._input_data(index.column(), role)
        layer_id = self._ids[index.row() - 1]
        if index.column() >= len(COLUMNS):
            return self._extra.data(layer_id, index.column() - len(COLUMNS), role) if self._extra else None
        if self._badges and index.column() == COL_NOTES and layer_id in self._badges and \
                role in (DISPLAY, FOREGROUND, TOOLTIP):
            return self._badge_data(layer_id, role)
        cells = self._cells.get(layer_id)
        if cells is None:
            row = self._rows.get(layer_id)
            if row is None:
                return None
            cells = self._cells[layer_id] = self._layer_cells(row)
        if role == TOOLTIP:
            return self._tooltip(self._rows[layer_id])
        values = cells.get(role)
        return None if values is None else values[index.column()]

    def _input_data(self, column: int, role):
        shape = format_shape(self.document.spec.input_shape)
        if role == DISPLAY:
            return {COL_INDEX: "in", COL_LAYER: "Input", COL_SHAPE: shape}.get(column)
        if role == EDIT and column == COL_SHAPE:
            return shape
        if role == DECORATION and column == COL_LAYER:
            return category_icon("Input")
        if role == TOOLTIP:
            return INPUT_HELP + ". Double-click the shape to edit it."
        if role == FOREGROUND and column == COL_INDEX:
            return QBrush(MUTED)
        if role == FONT and column == COL_LAYER:
            font = QFont()
            font.setBold(True)
            return font
        return None

    @staticmethod
    def _layer_cells(row: LayerRow) -> dict[int, tuple]:
        """Everything a layer row shows, per role and column, computed once per change."""
        display = (
            str(row.index), row.label, format_shape(row.shape),
            "" if row.params == 0 else format_count(row.params),
            "" if row.macs == 0 else format_count(row.macs),
            shapes_in_prose(row.error or row.warning),
        )
        if row.error:
            marker = error_icon()
        elif row.warning:
            marker = warning_icon()
        else:
            marker = category_icon(KINDS[row.kind].category)
        muted, none = QBrush(MUTED), None
        notes = QBrush(QColor(ERROR_COLOR if row.error else WARNING_COLOR))
        foreground = (
            muted,
            QBrush(QColor(ERROR_COLOR)) if row.error else none,
            muted if row.shape is None else none,
            muted if row.trainable == 0 and row.params else none,
            none,
            notes,
        )
        return {
            DISPLAY: display,
            DECORATION: (None, marker, None, None, None, None),
            FOREGROUND: foreground,
            ALIGNMENT: (None, None, None, RIGHT, RIGHT, None),
        }

    def _tooltip(self, row: LayerRow) -> str:
        parts = [KINDS[row.kind].help]
        if row.formula:
            parts.append(row.formula.replace("; ", "\n"))
        if row.params:
            frozen = "" if row.trainable else " (frozen)"
            parts.append(f"{row.params:,} parameters{frozen}")
        if row.error:
            parts.append("Error: " + row.error)
        if row.warning:
            parts.append("Warning: " + row.warning)
        return shapes_in_prose("\n".join(parts))

    def _child_data(self, index: QModelIndex, role):
        kids = self._children.get(self._id_of_tag.get(index.internalId(), ""))
        if kids is None or index.row() >= len(kids[1]):
            return None
        child = kids[1][index.row()]
        if role == DISPLAY:  # a layer "conv1: Conv2d", a step between layers "ReLU", or a message
            label = f"{child.name}: {child.kind}" if child.name else child.kind or child.text
            return {COL_LAYER: label, COL_SHAPE: "" if child.shape is None else format_shape(child.shape),
                    COL_PARAMS: "" if not child.params else format_count(child.params),
                    COL_NOTES: child.text if child.kind else ""}.get(index.column())
        if role == TOOLTIP:
            return child.text
        if role == FOREGROUND:
            return QBrush(MUTED)
        if role == ALIGNMENT and index.column() == COL_PARAMS:
            return RIGHT
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        editable = not self.document.read_only
        if not index.isValid():
            return F.ItemIsDropEnabled if editable else F.NoItemFlags
        if index.internalId():
            return CHILD_FLAGS
        if index.row() == 0:
            return INPUT_SHAPE_FLAGS if editable and index.column() == COL_SHAPE else ROW_FLAGS
        return LAYER_FLAGS if editable else ROW_FLAGS

    def setData(self, index: QModelIndex, value, role=Qt.ItemDataRole.EditRole) -> bool:
        """Only the input shape is edited in place."""
        if role != Qt.ItemDataRole.EditRole or index.internalId() or index.row() != 0 or index.column() != COL_SHAPE:
            return False
        try:
            shape = parse_ints(str(value))
        except ValueError:
            return False
        if not shape or len(shape) > 8 or min(shape) < 1:
            return False
        self.document.edit_input_shape(shape)
        return True

    # ------------------------------------------------------------------ drag and drop
    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction | Qt.DropAction.MoveAction

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction | Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:
        return [LAYERS_MIME, KIND_MIME, "text/plain"]

    def mimeData(self, indexes) -> object:
        ids = {self.layer_id(i) for i in indexes if i.isValid() and not i.internalId()} - {INPUT_ID, None}
        layers = [layer for layer in self.document.spec.layers if layer.id in ids]
        return layers_to_mime(layers, self.source_token)

    def drop_position(self, row: int, parent: QModelIndex) -> int:
        """Layer index that a drop at (row, parent) inserts before."""
        if parent.isValid():  # dropped on an item: after it (on a child: after its block)
            top = parent.parent() if parent.internalId() else parent
            return top.row()
        if row < 0:
            return len(self._ids)
        return max(0, row - 1)

    def canDropMimeData(self, data, action, row, column, parent) -> bool:
        if self.document.read_only or (parent.isValid() and row >= 0):
            return False  # no drops between a block's inner layers
        return data.hasFormat(KIND_MIME) or data.hasFormat(LAYERS_MIME)

    def dropMimeData(self, data, action, row, column, parent) -> bool:
        """A palette kind inserts a new layer; our own layers move (MoveAction) or are copied."""
        if action == Qt.DropAction.IgnoreAction:
            return True
        if not self.canDropMimeData(data, action, row, column, parent):
            return False
        position = self.drop_position(row, parent)
        kind = kind_from_mime(data)
        if kind is not None:
            ids = self.document.add_kind(position, kind)  # a kind or a preset's name; [] for any other
        else:
            try:
                layers, source = layers_from_mime(data)
            except SpecError:
                return False
            spec_ids = {layer.id for layer in self.document.spec.layers}
            ids = [layer.id for layer in layers]
            is_move = source == self.source_token and action == Qt.DropAction.MoveAction and set(ids) <= spec_ids
            if is_move:
                self.document.move_layers(ids, position)
            else:
                ids = self.document.add_layers(position, layers, "Drop")
        if ids:
            self.dropped.emit(ids)
        return bool(ids)


def with_batch_warning(row: LayerRow, batch_size) -> LayerRow:
    """``row``, warning too when the chosen batch size is below what the layer trains on (the trainer refuses it)."""
    if type(batch_size) is not int or batch_size >= row.min_batch:
        return row
    note = (f"batch size {batch_size} is too small: this layer needs training batches of {row.min_batch} or more "
            f"(it normalises over the batch); raise Batch size on the Training tab")
    return replace(row, warning="; ".join(part for part in (row.warning, note) if part))
