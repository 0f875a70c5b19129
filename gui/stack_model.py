"""The layer stack as a Qt item model over the document: a tree, as the design is.

Row 0 is the input; then the top-level layers. A group's layers are its child rows (a branches group's children
are its branches, numbered "branch 1", "branch 2"), nested to any depth, each as editable as a top-level layer;
a residual group with a custom shortcut also has a "Shortcut" row holding the shortcut's layers.

The model keeps no copy of the design, only the shape of its tree (``Node``s, keyed by layer id). On
``document.changed`` it rebuilds that shape; when it differs (an add, delete, move, group, ungroup) it announces
one layout change and carries every persistent index (the view's selection, current row and expanded groups) to
the row with the same key, so they survive any edit, undo and redo. ``data()`` reads the document's cached
analysis.
"""
from __future__ import annotations

import uuid
from dataclasses import replace

from PySide6.QtCore import QAbstractItemModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont

from engine import tree
from engine.errors import SpecError
from engine.layers import KINDS
from engine.shapes import LayerRow, format_count, format_shape
from engine.tree import Place
from gui.editors import parse_ints
from gui.icons import ERROR_COLOR, WARNING_COLOR, category_icon, error_icon, warning_icon
from gui.mime import KIND_MIME, LAYERS_MIME, kind_from_mime, layers_from_mime, layers_to_mime
from gui.stack_nodes import INPUT_ID, Node, build_nodes, shape_of
from gui.wording import shapes_in_prose

COLUMNS = ("#", "Layer", "Output shape", "Params", "MACs", "Notes")
COL_INDEX, COL_LAYER, COL_SHAPE, COL_PARAMS, COL_MACS, COL_NOTES = range(len(COLUMNS))
LAYER_ID_ROLE = int(Qt.ItemDataRole.UserRole) + 1
MUTED = QColor("#7a828c")
BADGE_COLOR = "#2e7d32"  # a training health badge no advice names
# Roles as plain ints (Qt passes ints; comparing them is much cheaper than enum members on every paint).
DISPLAY, DECORATION, EDIT, TOOLTIP, FONT, ALIGNMENT, FOREGROUND = (
    int(r) for r in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.EditRole,
                     Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.FontRole, Qt.ItemDataRole.TextAlignmentRole,
                     Qt.ItemDataRole.ForegroundRole))
RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
F = Qt.ItemFlag
ROW_FLAGS = F.ItemIsEnabled | F.ItemIsSelectable
LAYER_FLAGS = ROW_FLAGS | F.ItemIsDragEnabled
GROUP_FLAGS = LAYER_FLAGS | F.ItemIsDropEnabled  # a drop on a group row adds to the end of the group
SHORTCUT_FLAGS = ROW_FLAGS | F.ItemIsDropEnabled
INPUT_SHAPE_FLAGS = ROW_FLAGS | F.ItemIsEditable
INPUT_HELP = "Shape of one input sample, without the batch dimension (e.g. 1x28x28 for MNIST)"
SHORTCUT_HELP = ("The residual group's custom shortcut: its layers carry the group's input to the sum "
                 "(none: the input itself). Drop layers here to add them.")


class LayerStackModel(QAbstractItemModel):
    """Rows of the stack; ``dropped(ids)`` tells the view which layers a drop added or moved; ``message(text)``
    says why a drop was refused."""

    dropped = Signal(list)
    message = Signal(str)

    def __init__(self, document, parent=None):
        super().__init__(parent)
        self.document = document
        self.source_token = uuid.uuid4().hex  # tells our own drags (moves) from others (copies)
        self._nodes = build_nodes(document.spec)
        self._shape = shape_of(self._nodes)
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
        self._rows = {row.layer_id: with_batch_warning(row, batch_size) for row in doc.analysis.all_rows}
        self._by_key = {node.key: node for node in self._nodes}
        self._cells: dict[str, dict[int, tuple]] = {}

    def _node(self, index: QModelIndex) -> Node | None:
        """The node of a row; None for no row (an invalid index's internal id is 0, the root's tag). One call into
        Qt, as the view asks this thousands of times a paint."""
        try:
            node = self._nodes[index.internalId()]
        except IndexError:
            return None
        return node if node.tag else None

    def _index(self, node: Node, column: int = 0) -> QModelIndex:
        return self.createIndex(node.row, column, node.tag)

    def layer_id(self, index: QModelIndex) -> str | None:
        """The layer id of a row; INPUT_ID for the input row; None for a Shortcut row or no row."""
        node = self._node(index)
        return None if node is None else node.layer_id

    def key(self, index: QModelIndex) -> str | None:
        """What a row stands for, stable across edits: its layer id, INPUT_ID, or a Shortcut row's key."""
        node = self._node(index)
        return None if node is None else node.key

    def index_of(self, key: str, column: int = 0) -> QModelIndex:
        """The row of a layer id (any depth), INPUT_ID, or a Shortcut row's key."""
        node = self._by_key.get(key)
        return QModelIndex() if node is None else self._index(node, column)

    def is_shortcut_row(self, index: QModelIndex) -> bool:
        node = self._node(index)
        return node is not None and node.layer_id is None

    def place_after(self, index: QModelIndex) -> Place:
        """Where a new layer goes for this current row: after a layer in its list, at the end of a Shortcut
        row's list, first for the input, at the end of the design for no row."""
        node = self._node(index)
        if node is None:
            return Place(None, "layers", len(self.document.spec.layers))
        if node.layer_id is None:
            return Place(*node.container, len(node.children))
        if node.layer_id == INPUT_ID:
            return Place(None, "layers", 0)
        return Place(*node.container, self.position(node))

    @staticmethod
    def position(node: Node) -> int:
        """The index after ``node`` in its list (the top level counts the input row, which is not a layer)."""
        return node.row if node.parent is not None and node.parent.tag == 0 else node.row + 1

    # ------------------------------------------------------------------ structure
    def index(self, row: int, column: int, parent: QModelIndex = QModelIndex()) -> QModelIndex:
        if column < 0 or column >= self.columnCount() or row < 0:
            return QModelIndex()
        node = self._node(parent) if parent.isValid() else self._nodes[0]
        if node is None or row >= len(node.children) or (parent.isValid() and parent.column() != 0):
            return QModelIndex()
        return self.createIndex(row, column, node.children[row].tag)

    def parent(self, index: QModelIndex = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        node = self._node(index)
        if node is None or node.parent is None or node.parent.tag == 0:
            return QModelIndex()
        return self._index(node.parent)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        if not parent.isValid():
            return len(self._nodes[0].children)
        node = self._node(parent)
        return 0 if node is None or parent.column() != 0 else len(node.children)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return len(COLUMNS) + (len(self._extra.titles) if self._extra is not None else 0)

    def hasChildren(self, parent: QModelIndex = QModelIndex()) -> bool:
        return self.rowCount(parent) > 0

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
            self._emit_all_changed(first=len(COLUMNS))

    # ------------------------------------------------------------------ following the document
    def _on_changed(self) -> None:
        nodes = build_nodes(self.document.spec)
        shape = shape_of(nodes)
        if shape != self._shape:
            self._relayout(nodes, shape)
        else:  # the same rows at the same places (tags too): only what they show may differ (a branch number)
            self._nodes = nodes
        self._refresh_lookups()
        self._emit_all_changed()

    def _relayout(self, nodes: list[Node], shape) -> None:
        """Take the new tree, moving every persistent index to the row with the same key (gone: invalid)."""
        self.layoutAboutToBeChanged.emit()
        by_key = {node.key: node for node in nodes}
        old, new = [], []
        for persistent in self.persistentIndexList():
            index = QModelIndex(persistent)
            node = self._node(index)
            if node is None:
                continue
            moved = by_key.get(node.key)
            old.append(index)
            new.append(QModelIndex() if moved is None else self.createIndex(moved.row, index.column(), moved.tag))
        self._nodes, self._shape = nodes, shape
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()

    def _on_extras_changed(self, key: str) -> None:
        if key == "training":  # the batch size decides the BatchNorm rows' warning
            self._refresh_lookups()
            self._emit_all_changed()

    def _emit_all_changed(self, *_, first: int = 0, last: int | None = None) -> None:
        """Every row's cells changed (from column ``first`` to ``last``). One signal, for the top-level rows: a
        view repaints its whole viewport on a change of many rows, the open groups' rows with it, and a signal
        per group cost about 0.5 ms each (a 100-layer design with 22 groups: over 10 ms an edit)."""
        last = self.columnCount() - 1 if last is None else last
        self.dataChanged.emit(self.index(0, first), self.index(self.rowCount() - 1, last))

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
        self._emit_all_changed(first=COL_NOTES, last=COL_NOTES)

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
        node = self._node(index)
        if node is None:
            return None
        if role == LAYER_ID_ROLE:
            return node.layer_id
        layer_id, column = node.layer_id, index.column()
        if layer_id == INPUT_ID:
            return self._input_data(column, role)
        if layer_id is None:
            return self._shortcut_data(node, column, role)
        if column >= len(COLUMNS):
            return self._extra.data(layer_id, column - len(COLUMNS), role) if self._extra else None
        if self._badges and column == COL_NOTES and layer_id in self._badges and \
                role in (DISPLAY, FOREGROUND, TOOLTIP):
            return self._badge_data(layer_id, role)
        cells = self._cells.get(layer_id)
        if cells is None:
            row = self._rows.get(layer_id)
            if row is None:  # a layer the analysis did not reach (its group's settings are wrong)
                return self.document.spec.layer(layer_id).kind if role == DISPLAY and column == COL_LAYER else None
            cells = self._cells[layer_id] = self._layer_cells(row, node)
        if role == TOOLTIP:
            return self._tooltip(self._rows[layer_id])
        values = cells.get(role)
        return None if values is None else values[column]

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

    def _shortcut_data(self, node: Node, column: int, role):
        """The Shortcut row of a residual group: its label, and the shape it gives the sum."""
        if role == DISPLAY:
            if column == COL_LAYER:
                return "Shortcut" if node.children else "Shortcut (identity: drop layers here)"
            if column == COL_SHAPE:
                group = self._rows.get(node.container[0])
                inner = [self._rows.get(child.layer_id) for child in node.children]
                shape = inner[-1].shape if inner and inner[-1] is not None else (
                    None if inner or group is None else group.in_shape)
                return format_shape(shape)
            return None
        if role == TOOLTIP:
            return SHORTCUT_HELP
        if role == FOREGROUND:
            return QBrush(MUTED)
        if role == FONT and column == COL_LAYER:
            font = QFont()
            font.setItalic(True)
            return font
        return None

    @staticmethod
    def _layer_cells(row: LayerRow, node: Node) -> dict[int, tuple]:
        """Everything a layer row shows, per role and column, computed once per change. A collapsed group
        cannot show its layers' errors, so its Notes cell counts them and says where the first is."""
        inside = [inner for inner in row.walk() if inner.error and inner is not row] if row.children else []
        note = row.error or row.warning
        if not row.error and inside:
            count = f"{len(inside)} error{'s' if len(inside) > 1 else ''}"
            note = f"{count} inside: {inside[0].path}: {inside[0].error}"
        display = (
            f"branch {node.row + 1}" if node.branch else str(row.index), row.label, format_shape(row.shape),
            "" if row.params == 0 else format_count(row.params),
            "" if row.macs == 0 else format_count(row.macs),
            shapes_in_prose(note),
        )
        if row.error or inside:
            marker = error_icon()
        elif row.warning:
            marker = warning_icon()
        else:
            marker = category_icon(KINDS[row.kind].category)
        muted, none = QBrush(MUTED), None
        notes = QBrush(QColor(ERROR_COLOR if row.error or inside else WARNING_COLOR))
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
        if "›" in row.path:
            parts.append(f"At {row.path}")
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

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        editable = not self.document.read_only
        node = self._node(index)
        if node is None:
            return F.ItemIsDropEnabled if editable and not index.isValid() else F.NoItemFlags
        if node.layer_id == INPUT_ID:
            return INPUT_SHAPE_FLAGS if editable and index.column() == COL_SHAPE else ROW_FLAGS
        if not editable:
            return ROW_FLAGS
        if node.layer_id is None:
            return SHORTCUT_FLAGS
        return GROUP_FLAGS if node.children or self._is_group(node.layer_id) else LAYER_FLAGS

    def _is_group(self, layer_id: str) -> bool:
        row = self._rows.get(layer_id)
        return row is not None and KINDS[row.kind].is_group

    def setData(self, index: QModelIndex, value, role=Qt.ItemDataRole.EditRole) -> bool:
        """Only the input shape is edited in place."""
        node = self._node(index)
        if role != Qt.ItemDataRole.EditRole or node is None or node.layer_id != INPUT_ID or \
                index.column() != COL_SHAPE:
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
        """The dragged layers (a group with its layers; a layer inside a dragged group goes along with it)."""
        ids = tree.outermost(self.document.spec.layers, {self.layer_id(i) for i in indexes} - {INPUT_ID, None})
        return layers_to_mime([self.document.spec.layer(i) for i in ids], self.source_token)

    def drop_place(self, row: int, parent: QModelIndex) -> Place:
        """Where a drop at (row, parent) inserts: between rows at that place in their list; on a group or a
        Shortcut row at the end of its list; on a layer after it; on the input first."""
        node = self._node(parent)
        if node is None:
            top = len(self.document.spec.layers)
            return Place(None, "layers", top if row < 0 else max(0, min(row - 1, top)))
        if node.layer_id == INPUT_ID:
            return Place(None, "layers", 0)
        if node.layer_id is None:  # a Shortcut row
            return Place(*node.container, len(node.children) if row < 0 else row)
        if row >= 0 or self._is_group(node.layer_id):
            count = len([child for child in node.children if child.layer_id is not None])
            return Place(node.layer_id, "layers", count if row < 0 else min(row, count))
        return Place(*node.container, self.position(node))

    def _dragged_ids(self, data) -> list[str] | None:
        """The ids a drop of ``data`` would move (our own drag), or None for a copy or a new layer."""
        if not data.hasFormat(LAYERS_MIME):
            return None
        try:
            layers, source = layers_from_mime(data)
        except SpecError:
            return None
        return [layer.id for layer in layers] if source == self.source_token else None

    def canDropMimeData(self, data, action, row, column, parent) -> bool:
        if self.document.read_only or not (data.hasFormat(KIND_MIME) or data.hasFormat(LAYERS_MIME)):
            return False
        moving = self._dragged_ids(data) if action == Qt.DropAction.MoveAction else None
        if moving:  # never into itself
            target = self.drop_place(row, parent).parent
            if target is not None and {target, *tree.ancestors(self.document.spec.layers, target)} & set(moving):
                return False
        return True

    def dropMimeData(self, data, action, row, column, parent) -> bool:
        """A palette kind or preset inserts a new layer; our own layers move (MoveAction) or are copied."""
        if action == Qt.DropAction.IgnoreAction:
            return True
        if not self.canDropMimeData(data, action, row, column, parent):
            return False
        place = self.drop_place(row, parent)
        kind = kind_from_mime(data)
        if kind is not None:
            ids = self.document.add_kind(place, kind)  # a kind or a preset's name; [] for any other
        else:
            try:
                layers, source = layers_from_mime(data)
            except SpecError:
                return False
            known = {layer.id for layer in self.document.spec.all_layers()}
            ids = [layer.id for layer in layers]
            is_move = source == self.source_token and action == Qt.DropAction.MoveAction and set(ids) <= known
            if is_move:
                try:
                    self.document.move_layers(ids, place)
                except SpecError as exc:
                    self.message.emit(str(exc))
                    return False
            else:
                ids = self.document.add_layers(place, layers, "Drop")
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
