"""The Runs tab: every recorded training run (engine.history) in a sortable, filterable table; the selected runs'
curves, summary or side-by-side comparison below it; and what can be done with a run: open its design, load its
weights, delete it.

The table is a lazy model (gui/runs_model.py) that reads the history a page at a time, and the tab reads the
history only while it is shown (a run that ends meanwhile marks it stale), so neither opening the window nor a
history of thousands of runs makes anything wait.
"""
from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QEvent, QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.errors import SpecError
from engine.spec import NetworkSpec
from gui.runs_compare import RunCurves, comparison_html, run_label, summary_html
from gui.runs_model import COLUMNS, DATE_COLUMN, HISTORY_ERRORS, RunsModel

EMPTY_TEXT = ("No runs yet. Every run is recorded here when you press Train: select one to see its curves, or "
              "several to compare their curves, designs and settings.")
PICK_TEXT = "Select a run to see its curves and summary; select two or more (Ctrl+click) to compare them."
SELECTION_DELAY_MS = 30  # the curves follow the selection once a drag or a held arrow key pauses
COLUMN_WIDTHS = {"Design": 170, "Data": 130, "Reason": 120, "Date": 130}  # the others: OTHER_WIDTH
OTHER_WIDTH = 112
log = logging.getLogger(__name__)


class RunsTable(QTableView):
    """The runs table. Delete deletes the selected runs from here, before the window's Delete (layers) sees it."""

    deleteRequested = Signal()

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and event.key() == Qt.Key.Key_Delete:
            event.accept()  # the key comes to keyPressEvent instead of the window's Delete shortcut
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Delete and not event.modifiers():
            self.deleteRequested.emit()
            return
        super().keyPressEvent(event)


def _button(action: QAction) -> QToolButton:
    """A button for ``action``: its text without the shortcut's, its tip, and its enabled state."""
    button = QToolButton()
    button.setText(action.text().split("\t")[0])
    button.setToolTip(action.toolTip())
    button.setEnabled(action.isEnabled())
    button.clicked.connect(action.trigger)
    action.enabledChanged.connect(button.setEnabled)
    return button


class RunsView(QWidget):
    """The Runs tab over ``history`` (a RunHistory). ``window`` (the MainWindow) opens designs; ``controller`` (a
    TrainingController) tells when runs start and end; ``weights`` (WeightsActions) loads weights as the File menu
    does. Without them the matching actions stay off."""

    def __init__(self, history, controller=None, window=None, weights=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("runsView")
        self.history = history
        self.controller = controller
        self.window_ = window
        self.weights = weights
        self.model = RunsModel(history, self)
        self.records: list = []  # RunRecords of the selected runs, in table order
        self._shown: list | None = None  # the records the curves and details show
        self._stale = True  # the history changed (or was never read) since the table last read it
        self._problem = ""  # why the history cannot be read, if it cannot

        self.filter = QLineEdit()
        self.filter.setObjectName("runsFilter")
        self.filter.setPlaceholderText("Filter by design, data, optimizer or reason")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.model.set_filter)
        self.count_label = QLabel()
        self.count_label.setObjectName("runsCount")
        self.refresh_action = self._action("Refresh", "Read the run history again", self.refresh)
        self.open_action = self._action("Open Design", "Open the run's design, with its training and data settings, "
                                        "as the window's design (Enter, double-click)", self.open_design)
        self.load_action = self._action("Load Weights", "Load the run's saved weights (checked first; nothing "
                                        "changes if they do not fit)", self.load_weights)
        self.delete_action = self._action("Delete Runs…\tDel", "Delete the selected runs from the history (their "
                                          "weight files stay)", self.delete_selected)
        self.actions_ = [self.open_action, self.load_action, self.delete_action, self.refresh_action]
        bar = QHBoxLayout()
        bar.addWidget(self.filter, 1)
        bar.addWidget(self.count_label)
        for action in self.actions_:
            bar.addWidget(_button(action))

        self.table = RunsTable()
        self.table.setObjectName("runsTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSortIndicator(DATE_COLUMN, Qt.SortOrder.DescendingOrder)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for column, spec in enumerate(COLUMNS):
            header.resizeSection(column, COLUMN_WIDTHS.get(spec.title, OTHER_WIDTH))
        self.table.setSortingEnabled(True)  # header clicks sort through the model (SQLite), never in Python
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.activated.connect(lambda _index: self.open_design())
        self.table.deleteRequested.connect(self.delete_selected)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)

        self.curves = RunCurves()
        self.details = QTextBrowser()
        self.details.setObjectName("runDetails")
        self.details.setOpenLinks(False)
        below = QSplitter(Qt.Orientation.Horizontal)
        below.addWidget(self.curves)
        below.addWidget(self.details)
        below.setStretchFactor(0, 3)
        below.setStretchFactor(1, 2)
        self.below = below
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(below)
        self._sized = False  # the splitters get their first sizes when the tab is first shown
        self.empty_label = QLabel(EMPTY_TEXT)
        self.empty_label.setObjectName("runsEmpty")
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.splitter)
        self.pages.addWidget(self.empty_label)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.pages, 1)

        self._selection_timer = QTimer(self)
        self._selection_timer.setSingleShot(True)
        self._selection_timer.setInterval(SELECTION_DELAY_MS)
        self._selection_timer.timeout.connect(self.show_selection)
        self.model.modelReset.connect(self._show_count)
        self.model.rowsInserted.connect(self._show_count)
        self.model.failed.connect(self._history_failed)
        if controller is not None:  # a run appears when it starts and shows its results once it ends
            controller.runStarted.connect(self.history_changed)
            controller.finished.connect(self.history_changed)
            controller.recorded.connect(self.outputs_recorded)
            controller.stateChanged.connect(self._update_actions)
        if window is not None:
            window.document.readOnlyChanged.connect(self._update_actions)
        self.show_selection()

    def _action(self, text: str, tip: str, slot) -> QAction:
        action = QAction(text, self)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda _=False: slot())
        return action

    # ------------------------------------------------------------------ reading the history
    def history_changed(self, *_args) -> None:
        """A run was recorded or changed: read the history now if the tab is shown, else when it is next shown."""
        self._stale = True
        if self.isVisible():
            self.refresh()

    def outputs_recorded(self) -> None:
        """A run's weights or checkpoint were saved: its record (not its table row) changed."""
        self.records = []
        self._shown = None
        self.history_changed()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._sized:
            self._sized = True
            self.splitter.setSizes([self.height() // 3, 2 * self.height() // 3])
            self.below.setSizes([3 * self.width() // 5, 2 * self.width() // 5])
        if self._stale:
            self.refresh()

    def refresh(self) -> None:
        """Read the history again, in the same order and filter, keeping the selected runs selected."""
        selected = self.selected_ids()
        self._stale = False
        self._problem = ""
        self.model.reload()
        self._select(selected)
        self.show_selection()

    def _select(self, run_ids: list[int]) -> None:
        selection = self.table.selectionModel()
        selection.clearSelection()
        rows = [row for row in map(self.model.row_of, run_ids) if row >= 0]
        for row in rows:
            selection.select(self.model.index(row, 0), QItemSelectionModel.SelectionFlag.Select
                             | QItemSelectionModel.SelectionFlag.Rows)
        if rows:  # Enter acts on the current row
            selection.setCurrentIndex(self.model.index(rows[0], 0), QItemSelectionModel.SelectionFlag.NoUpdate)

    def select_runs(self, run_ids: list[int]) -> None:
        """Select these runs (among those read so far) and show them at once."""
        self._select(run_ids)
        self.show_selection()

    def _history_failed(self, text: str) -> None:
        self._problem = text

    def _show_count(self, *_args) -> None:
        model = self.model
        empty = model.total == 0 and not model.filter_text
        self.empty_label.setText(self._problem or EMPTY_TEXT)
        self.pages.setCurrentWidget(self.empty_label if empty or self._problem else self.splitter)
        runs = f"{model.total:,} run{'s' if model.total != 1 else ''}"
        self.count_label.setText(f"{runs} match" if model.filter_text and model.total != 1 else
                                 f"{runs} matches" if model.filter_text else runs)

    # ------------------------------------------------------------------ the selection
    def selected_ids(self) -> list[int]:
        """The selected runs' ids, in table order."""
        return [run.id for run in self._selected_runs()]

    def _selected_runs(self) -> list:
        rows = sorted(index.row() for index in self.table.selectionModel().selectedRows())
        return [run for run in map(self.model.run_at, rows) if run is not None]

    def _selection_changed(self, *_args) -> None:
        self._selection_timer.start()

    def show_selection(self) -> None:
        """Show the selected runs: one run's curves and summary, or several runs' curves and comparison."""
        self._selection_timer.stop()
        known = {record.summary.id: record for record in self.records}
        records, problem = [], ""
        for run in self._selected_runs():
            record = known.get(run.id)
            if record is None or record.summary != run:  # read again only what changed (a run going on)
                try:
                    record = self.history.get(run.id)
                except KeyError:
                    continue  # deleted meanwhile (the CLI, another window): the next refresh drops its row
                except HISTORY_ERRORS as exc:
                    problem = str(exc)
                    break
            records.append(record)
        self.records = records
        if problem:
            self._shown = None
            self.details.setPlainText(problem)
        elif self._shown is None or [id(r) for r in records] != [id(r) for r in self._shown]:
            self._show(records)
        self._update_actions()

    def _show(self, records: list) -> None:
        self._shown = records
        self.curves.show_runs(records)
        self.curves.setVisible(bool(records))  # empty plots say nothing (and would cost a paint)
        if len(records) == 1:
            self.details.setHtml(summary_html(records[0]))
        elif records:
            self.details.setHtml(comparison_html(records))
        else:
            self.details.setPlainText(PICK_TEXT)

    def _update_actions(self, *_args) -> None:
        one = len(self.records) == 1
        idle = self.controller is None or not self.controller.busy
        can_open = self.window_ is not None and not self.window_.document.read_only
        self.open_action.setEnabled(one and can_open)
        self.load_action.setEnabled(one and idle and self.weights is not None and self._weights_file() is not None)
        self.delete_action.setEnabled(bool(self.records))

    def _weights_file(self) -> Path | None:
        """The one selected run's weights file, if it was saved and is still there."""
        path = self.records[0].weights_path if len(self.records) == 1 else None
        return Path(path) if path and Path(path).is_file() else None

    def _context_menu(self, position) -> None:
        menu = QMenu(self)
        for action in self.actions_:
            menu.addAction(action)
        menu.popup(self.table.viewport().mapToGlobal(position))

    # ------------------------------------------------------------------ actions
    def open_design(self) -> bool:
        """Make the selected run's design, with its training and data settings, the window's design (asking
        to save unsaved changes first, as Open does)."""
        from gui.document import DesignFile

        if len(self.records) != 1 or self.window_ is None:
            return False
        record = self.records[0]
        try:
            design = DesignFile.from_dict({**record.design, "training": record.training, "data": record.data_settings})
        except SpecError as exc:
            self.window_.show_error(f"Cannot open the design of run {run_label(record)}", str(exc))
            return False
        if not self.window_.may_replace_design():
            return False
        self.window_.load_design(design)
        self.window_.tabs.setCurrentIndex(0)  # the Design tab
        self.window_.show_message(f"Opened the design of run {run_label(record)}")
        return True

    def load_weights(self) -> bool:
        """Load the selected run's weights file through the File menu's Load Weights (which checks the fit). When
        the open design is not the run's, ask whether to open the run's design first."""
        from gui.training.provenance import design_key

        path = self._weights_file()
        if path is None or self.weights is None:
            return False
        record = self.records[0]
        if self.window_ is not None:
            try:
                same = design_key(NetworkSpec.from_dict(record.design)) == design_key(self.window_.document.spec)
            except SpecError:
                same = True  # cannot tell: the fit check says whether they fit
            if not same:
                answer = self._ask_which_design(record)
                if answer == QMessageBox.StandardButton.Cancel:
                    return False
                if answer == QMessageBox.StandardButton.Yes and not self.open_design():
                    return False
        return self.weights.load_weights_from(path)

    def _ask_which_design(self, record) -> QMessageBox.StandardButton:
        box = QMessageBox(QMessageBox.Icon.Question, "Load Weights",
                          f"The weights of run {run_label(record)} were trained on its own design, not the one "
                          "open now.", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
                          | QMessageBox.StandardButton.Cancel, self)
        box.setInformativeText("Open the run's design and load them into it, or try them on the open design "
                               "(nothing changes if they do not fit)?")
        box.button(QMessageBox.StandardButton.Yes).setText("Open Its Design and Load")
        box.button(QMessageBox.StandardButton.No).setText("Load into the Open Design")
        box.setDefaultButton(QMessageBox.StandardButton.Yes)
        return QMessageBox.StandardButton(box.exec())

    def delete_selected(self) -> int:
        """Delete the selected runs from the history after a question; returns how many were deleted."""
        ids = self.selected_ids()
        if not ids:
            return 0
        what = f"run {run_label(self.records[0])}" if len(ids) == 1 and self.records else f"these {len(ids)} runs"
        box = QMessageBox(QMessageBox.Icon.Warning, "Delete Runs", f"Delete {what} from the history?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        box.setInformativeText("Their curves and settings are gone for good; weight and checkpoint files stay "
                               "where they are.")
        box.button(QMessageBox.StandardButton.Yes).setText("Delete")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        if box.exec() != QMessageBox.StandardButton.Yes:
            return 0
        try:
            deleted = self.history.delete(ids)
        except HISTORY_ERRORS as exc:
            QMessageBox.warning(self, "Delete Runs", f"The runs were not deleted. {exc}")
            return 0
        self.table.selectionModel().clearSelection()
        self.refresh()
        if self.window_ is not None:
            self.window_.show_message(f"Deleted {deleted} run{'s' if deleted != 1 else ''} from the history")
        return deleted
