"""The layer palette: every registry kind, grouped by category, with a filter box.

The Group kind appears as the prefilled groups of ``engine.groups.PRESETS`` (an empty Group, VGG block, ...), so
the Blocks category lists those. Double-click or Enter asks for the entry to be added (``kindActivated`` with the
kind's or the preset's name); dragging one carries that name as mime data the stack accepts at a position.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from engine.groups import PRESETS
from engine.layers import kinds_by_category
from gui.icons import category_icon
from gui.mime import kind_to_mime

KIND_ROLE = Qt.ItemDataRole.UserRole + 1


def _entries(kinds) -> list[tuple[str, str]]:
    """(name, help) of a category's palette entries: each kind, the Group kind as its prefilled groups."""
    out = []
    for kind in kinds:
        out += [(p.name, p.help) for p in PRESETS.values()] if kind.is_group else [(kind.name, kind.help)]
    return out


class KindTree(QTreeWidget):
    """The tree of kinds; drags carry the kind name."""

    def mimeData(self, items):
        kinds = [item.data(0, KIND_ROLE) for item in items if item.data(0, KIND_ROLE)]
        return kind_to_mime(kinds[0]) if kinds else None

    def mimeTypes(self):
        from gui.mime import KIND_MIME

        return [KIND_MIME]


class Palette(QWidget):
    kindActivated = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("palette")
        self.setMinimumWidth(170)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter layers…")
        self.filter.setToolTip("Type part of a name, e.g. conv or norm; Enter adds the first match, "
                               "Down moves into the list")
        self.filter.setClearButtonEnabled(True)
        self.tree = KindTree()
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(False)
        self.tree.setIndentation(10)
        self.tree.setUniformRowHeights(True)
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree)
        self._items: dict[str, QTreeWidgetItem] = {}
        self._populate()
        self.filter.textChanged.connect(self.apply_filter)
        self.filter.returnPressed.connect(self._activate_first_visible)
        self.filter.installEventFilter(self)
        self.tree.itemActivated.connect(self._on_activated)

    def _populate(self) -> None:
        bold = QFont()
        bold.setBold(True)
        for category, kinds in kinds_by_category().items():
            if not kinds:
                continue
            group = QTreeWidgetItem(self.tree, [category])
            group.setFont(0, bold)
            group.setFlags(Qt.ItemFlag.ItemIsEnabled)
            group.setToolTip(0, f"{category} layers")
            for name, help_text in _entries(kinds):
                item = QTreeWidgetItem(group, [name])
                item.setData(0, KIND_ROLE, name)
                item.setIcon(0, category_icon(category))
                item.setToolTip(0, f"<b>{name}</b><br>{help_text}<br><i>Double-click or drag into the stack</i>")
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled)
                self._items[name] = item
        self.tree.expandAll()

    def item(self, kind: str) -> QTreeWidgetItem:
        return self._items[kind]

    def visible_kinds(self) -> list[str]:
        return [name for name, item in self._items.items() if not item.isHidden()]

    def apply_filter(self, text: str) -> None:
        """Show the kinds whose name, category or help contains every word typed."""
        words = text.lower().split()
        for index in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(index)
            shown = 0
            for child_index in range(group.childCount()):
                item = group.child(child_index)
                haystack = f"{item.text(0)} {group.text(0)} {item.toolTip(0)}".lower()
                visible = all(word in haystack for word in words)
                item.setHidden(not visible)
                shown += visible
            group.setHidden(shown == 0)

    def _activate_first_visible(self) -> None:
        visible = self.visible_kinds()
        if visible:
            self.kindActivated.emit(visible[0])

    def _on_activated(self, item: QTreeWidgetItem, _column: int) -> None:
        kind = item.data(0, KIND_ROLE)
        if kind:
            self.kindActivated.emit(kind)

    def eventFilter(self, watched, event) -> bool:
        """Down arrow in the filter box moves into the list."""
        if watched is self.filter and isinstance(event, QKeyEvent) and event.type() == QKeyEvent.Type.KeyPress:
            if event.key() == Qt.Key.Key_Down:
                visible = self.visible_kinds()
                if visible:
                    self.tree.setCurrentItem(self._items[visible[0]])
                    self.tree.setFocus()
                    return True
        return super().eventFilter(watched, event)
