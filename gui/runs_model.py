"""The Runs tab's table: a lazy Qt model over the run history (engine.history.RunHistory).

Only the rows scrolled into view are read: the model asks the history for one page at a time
(``canFetchMore``/``fetchMore``), and sorting or filtering asks SQLite again instead of sorting
rows in Python, so the tab opens and sorts as fast with thousands of runs as with ten.
"""
from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, Signal

from engine.errors import LayerStudioError
from engine.text import duration_text, percent_text

PAGE_SIZE = 200  # rows read from the history at a time
REASON_WORDS = {"completed": "completed", "early_stopped": "stopped early", "stopped": "stopped by you",
                "diverged": "diverged", "out_of_memory": "out of memory", "error": "failed", "": "running"}
log = logging.getLogger(__name__)
HISTORY_ERRORS = (LayerStudioError, sqlite3.Error, OSError)  # what reading a damaged or locked history can raise


def started_text(started: str) -> str:
    """An ISO time as ``2025-03-01 14:05`` (as stored when it does not parse)."""
    try:
        return datetime.fromisoformat(started).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return started


def epochs_text(run) -> str:
    return str(run.epochs) if run.epochs_done == run.epochs else f"{run.epochs_done} of {run.epochs}"


def reason_text(reason: str) -> str:
    return REASON_WORDS.get(reason, reason.replace("_", " "))


@dataclass(frozen=True)
class Column:
    """A table column: its title, the RunSummary field it shows and sorts by, and how a value reads."""

    title: str
    field: str
    text: Callable[[object], str]  # RunSummary -> cell text
    number: bool = False  # right-aligned


COLUMNS = (
    Column("Design", "name", lambda run: run.name),
    Column("Data", "data", lambda run: run.data),
    Column("Optimizer", "optimizer", lambda run: run.optimizer),
    Column("LR", "lr", lambda run: f"{run.lr:g}", number=True),
    Column("Batch", "batch_size", lambda run: str(run.batch_size), number=True),
    Column("Epochs", "epochs_done", epochs_text, number=True),
    Column("Best val acc", "best_val_acc", lambda run: percent_text(run.best_val_acc), number=True),
    Column("Test acc", "test_acc", lambda run: percent_text(run.test_acc), number=True),
    Column("Duration", "duration_s", lambda run: duration_text(run.duration_s), number=True),
    Column("Reason", "reason", lambda run: reason_text(run.reason)),
    Column("Date", "started", lambda run: started_text(run.started)),
)
DATE_COLUMN = len(COLUMNS) - 1
DISPLAY, ALIGNMENT = Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.TextAlignmentRole
SHOWN_ROLES = frozenset((DISPLAY, ALIGNMENT, Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.UserRole))
RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


class RunsModel(QAbstractTableModel):
    """Runs of a RunHistory matching a filter text, in one order, read a page at a time.

    ``failed(sentence)`` says when the history cannot be read (the table then shows no rows).
    """

    failed = Signal(str)

    def __init__(self, history, parent: QObject | None = None, page_size: int = PAGE_SIZE):
        super().__init__(parent)
        self.history = history
        self.page_size = page_size
        self.filter_text = ""
        self.order_by, self.descending = "started", True
        self.total = 0  # runs matching the filter
        self.runs: list = []  # the RunSummary rows read so far, in order
        self.loaded = False  # nothing is read before the first reload: sorting or filtering before it only sets

    # ------------------------------------------------------------------ reading
    def reload(self) -> None:
        """Read the first page again (after a filter, a sort, a run recorded or runs deleted)."""
        self.beginResetModel()
        self.runs = []
        self.loaded = True
        try:
            self.total = self.history.count(self.filter_text)
            self.runs = self._page(0)
        except HISTORY_ERRORS as exc:
            log.warning("The run history could not be read: %s", exc)
            self.total = 0
            self.failed.emit(f"The run history could not be read: {exc}")
        self.endResetModel()

    def _page(self, offset: int) -> list:
        return self.history.list(self.filter_text, order_by=self.order_by, descending=self.descending,
                                 limit=self.page_size, offset=offset)

    def canFetchMore(self, parent=QModelIndex()) -> bool:
        return not parent.isValid() and len(self.runs) < self.total

    def fetchMore(self, parent=QModelIndex()) -> None:
        if parent.isValid():
            return
        try:
            page = self._page(len(self.runs))
        except HISTORY_ERRORS as exc:
            log.warning("The run history could not be read: %s", exc)
            self.total = len(self.runs)  # nothing more to fetch until a reload
            self.failed.emit(f"The run history could not be read: {exc}")
            return
        if not page:
            self.total = len(self.runs)  # runs were deleted elsewhere meanwhile
            return
        self.beginInsertRows(QModelIndex(), len(self.runs), len(self.runs) + len(page) - 1)
        self.runs.extend(page)
        self.endInsertRows()

    def fetch_until(self, row: int) -> None:
        """Read pages until ``row`` is loaded (or the runs end)."""
        while row >= len(self.runs) and self.canFetchMore():
            before = len(self.runs)
            self.fetchMore()
            if len(self.runs) == before:
                break

    def set_filter(self, text: str) -> None:
        text = text.strip()
        if text != self.filter_text:
            self.filter_text = text
            if self.loaded:
                self.reload()

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(COLUMNS):
            return
        self.order_by = COLUMNS[column].field
        self.descending = order == Qt.SortOrder.DescendingOrder
        if self.loaded:
            self.reload()

    # ------------------------------------------------------------------ rows
    def run_at(self, row: int):
        return self.runs[row] if 0 <= row < len(self.runs) else None

    def row_of(self, run_id: int) -> int:
        """The row of the run ``run_id`` among the rows read so far; -1 when it is not among them."""
        return next((row for row, run in enumerate(self.runs) if run.id == run_id), -1)

    # ------------------------------------------------------------------ Qt model
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.runs)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section].title
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if role not in SHOWN_ROLES:  # the view asks for a dozen roles per cell per paint: most are not ours
            return None
        run = self.run_at(index.row()) if index.isValid() else None
        if run is None:
            return None
        column = COLUMNS[index.column()]
        if role == DISPLAY:
            return column.text(run)
        if role == ALIGNMENT:
            return RIGHT if column.number else None
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"Run #{run.id}: {run.message}" if run.message else f"Run #{run.id}"
        return run.id  # UserRole
