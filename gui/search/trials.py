"""The Search tab's trials: one row per trial (engine.search.TrialResult), updated as each trial reports."""
from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from engine.text import duration_text

COLUMNS = ("#", "State", "Value", "Parameters", "Epochs", "Duration", "Reason")
PARAMS_COLUMN, REASON_COLUMN = COLUMNS.index("Parameters"), COLUMNS.index("Reason")
STATE_COLORS = {"running": "#1565c0", "complete": "#2e7d32", "pruned": "#8d6e00", "failed": "#c62828"}


def format_number(value) -> str:
    """A parameter or objective value as a person reads it: 4 significant digits, integers whole."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value)}"
    return f"{value:.4g}"


def format_params(params: dict) -> str:
    return ", ".join(f"{name} {format_number(value)}" for name, value in params.items())


class TrialsModel(QAbstractTableModel):
    """The trials of the search so far, in trial order; a trial's later reports replace its row."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.trials: list = []          # TrialResult, by row
        self._rows: dict[int, int] = {}  # trial number -> row

    def clear(self) -> None:
        self.beginResetModel()
        self.trials, self._rows = [], {}
        self.endResetModel()

    def update(self, trial) -> None:
        """Add a new trial's row or replace the row of one already shown."""
        row = self._rows.get(trial.number)
        if row is None:
            row = len(self.trials)
            self.beginInsertRows(QModelIndex(), row, row)
            self.trials.append(trial)
            self._rows[trial.number] = row
            self.endInsertRows()
        else:
            self.trials[row] = trial
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.trials)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        trial, column = self.trials[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (str(trial.number), trial.state, format_number(trial.value) if trial.value is not None else "",
                    format_params(trial.values), str(trial.epoch) if trial.epoch else "",
                    duration_text(trial.duration_s), trial.reason)[column]
        if role == Qt.ItemDataRole.ToolTipRole and column in (PARAMS_COLUMN, REASON_COLUMN):
            return format_params(trial.values) if column == PARAMS_COLUMN else trial.reason or None
        if role == Qt.ItemDataRole.ForegroundRole and column == 1:
            return QBrush(QColor(STATE_COLORS.get(trial.state, "#000000")))
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (0, 2, 4, 5):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
