"""The designer window: palette, layer stack, inspector, summary footer, Code tab, files and layout.

Its commands (actions, menus, toolbar) are declared in gui/menus.py, the recent files in
gui/recent_files.py and the central tabs in gui/main_tabs.py; what the commands do is here.

The training GUI plugs in through ``add_tab``, ``add_file_actions``,
``add_close_guard``, ``train_button`` and ``exports.weights_source``; ``document`` is the same object for
the whole life of the window (New/Open replace its content).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMessageBox, QSplitter, QVBoxLayout, QWidget

from engine.errors import SpecError
from engine.spec import DESIGN_SUFFIXES
from engine.text import sentence
from gui.code_view import CodeView
from gui.dialogs import EMPTY, NewDesignDialog
from gui.document import DEFAULT_INPUT_SHAPE, DesignDocument, DesignFile
from gui.export_actions import ExportActions
from gui.file_dialogs import get_open_path, get_save_path
from gui.graph_view import GraphView
from gui.icons import icon
from gui.inspector import Inspector
from gui.main_tabs import MainTabs
from gui.menus import make_actions, make_menus, make_toolbar
from gui.palette import Palette
from gui.recent_files import add_recent, forget_recent, last_file, recent_files
from gui.stack_view import StackView
from gui.summary import SummaryBar

APP_NAME = "LayerStudio"
FIRST_TEMPLATE = "lenet"
FILE_FILTER = "LayerStudio designs (*.json);;All files (*)"
STATE_VERSION = 1
GRAPH_WINDOW_WIDTH = 1400  # the graph view shows beside the stack by default from this window width
GRAPH_MIN_WIDTH = 200


class MainWindow(QMainWindow):
    """The main window. ``closing`` is emitted once a close has been accepted.

    ``initial_path`` (a design file named on the command line) is opened first; one that cannot be read
    leaves the usual first design open and says why in a dialog once the window shows."""

    closing = Signal()

    def __init__(self, open_initial: bool = True, parent=None, initial_path: str | Path | None = None):
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowIcon(icon("layerstudio"))
        # No Qt parent: the document outlives the window's widgets, so nothing it emits while
        # being destroyed (QUndoStack clears itself) can reach a half-destroyed view.
        self.document = DesignDocument()
        self._close_guards: list[Callable[[], bool]] = []
        self.actions: dict[str, QAction] = {}

        self.stack_view = StackView(self.document)
        self.inspector = Inspector(self.document)
        self.palette = Palette()
        self.code_view = CodeView(self.document)
        self.graph_view = GraphView(self.document)
        self.graph_view.follow(self.stack_view)
        self.summary = SummaryBar(self.document)
        self.train_button = self.summary.train_button

        self.read_only_banner = QLabel("Training is running: the design is read-only until the run ends.")
        self.read_only_banner.setObjectName("readOnlyBanner")
        self.read_only_banner.hide()
        design_page = QWidget()
        design_page.setObjectName("designPage")
        design_layout = QVBoxLayout(design_page)
        design_layout.setContentsMargins(0, 0, 0, 0)
        design_layout.setSpacing(0)
        design_layout.addWidget(self.read_only_banner)
        self.design_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.design_splitter.setObjectName("designSplitter")
        self.design_splitter.addWidget(self.stack_view)
        self.design_splitter.addWidget(self.graph_view)
        self.design_splitter.setStretchFactor(0, 1)
        self.design_splitter.setStretchFactor(1, 1)
        self.graph_view.hide()  # until the first show decides (show_graph)
        design_layout.addWidget(self.design_splitter)

        self.tabs = MainTabs()
        self.tabs.setObjectName("mainTabs")
        self.tabs.setDocumentMode(True)
        central = QWidget()
        central_layout = QVBoxLayout(central)
        central_layout.setContentsMargins(0, 0, 0, 0)
        central_layout.setSpacing(0)
        central_layout.addWidget(self.tabs, 1)
        central_layout.addWidget(self.summary)
        self.setCentralWidget(central)

        self.palette_dock = self._dock("Layers", "paletteDock", self.palette, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.inspector_dock = self._dock("Inspector", "inspectorDock", self.inspector,
                                         Qt.DockWidgetArea.RightDockWidgetArea)
        self._full_width_pages: set[QWidget] = set()
        self._docks_set_aside: list[QDockWidget] = []
        self.tabs.currentChanged.connect(self._fit_docks_to_tab)
        make_actions(self)
        self.exports = ExportActions(self)  # File > Export; the training GUI gives it the trained weights
        self._file_actions_anchor = make_menus(self)
        make_toolbar(self)
        self.add_tab(design_page, "Design")
        self.add_tab(self.code_view, "Code")
        self.statusBar().setObjectName("statusBar")

        self.palette.kindActivated.connect(self.add_kind)
        self.stack_view.currentLayerChanged.connect(self.inspector.show_layer)
        self.stack_view.layerActivated.connect(self.focus_inspector)
        self.stack_view.message.connect(self.show_message)
        self.stack_view.selectionModel().selectionChanged.connect(self._update_edit_actions)
        self.inspector.message.connect(self.show_message)
        self.document.undo_stack.cleanChanged.connect(self._update_title)
        self.document.undo_stack.indexChanged.connect(self._update_undo_actions)
        self.document.fileChanged.connect(self._update_title)
        self.document.readOnlyChanged.connect(self._on_read_only)

        self.resize(1280, 800)
        self._graph_decided = False
        self._layout_restored = self._restore_window_state()
        self._update_title()
        self._update_undo_actions()
        self._update_edit_actions()
        if open_initial:
            self._open_initial_design(initial_path)

    # ------------------------------------------------------------------ construction
    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    # ------------------------------------------------------------------ hooks for the training GUI
    def add_tab(self, widget: QWidget, title: str, full_width: bool = False) -> int:
        """Add a main tab (Training, Results, …) with a View menu entry and a Ctrl+<n> shortcut.

        A ``full_width`` tab sets the design docks (palette, inspector) aside while it is shown,
        so its plots get the whole window; they come back on the Design and Code tabs."""
        index = self.tabs.add_page(widget, title)
        if full_width:
            self._full_width_pages.add(widget)
        action = QAction(f"{title} Tab", self)
        if index < 9:
            action.setShortcut(QKeySequence(f"Ctrl+{index + 1}"))
        action.triggered.connect(lambda _=False, w=widget: self.tabs.setCurrentWidget(w))
        self.view_menu.addAction(action)
        self.addAction(action)
        return index

    def add_file_actions(self, actions) -> None:
        """Put actions (e.g. Save weights, Load weights) in the File menu above Quit."""
        for action in actions:
            self.file_menu.insertAction(self._file_actions_anchor, action)
        self.file_menu.insertSeparator(self._file_actions_anchor)

    def add_close_guard(self, guard: Callable[[], bool]) -> None:
        """``guard()`` runs when the window is asked to close; returning False keeps it open."""
        self._close_guards.append(guard)

    # ------------------------------------------------------------------ editing
    def add_kind(self, kind: str) -> list[str]:
        """Append a new layer of ``kind`` after the selection (palette double-click / Enter)."""
        if self.document.read_only:
            self.show_message("The design is read-only while training runs")
            return []
        ids = self.stack_view.add_kind(kind)
        if ids:
            self.show_message(f"Added {kind}")
        return ids

    def undo(self) -> None:
        if not self.document.read_only:
            self.document.undo_stack.undo()

    def redo(self) -> None:
        if not self.document.read_only:
            self.document.undo_stack.redo()

    def _update_undo_actions(self, *_) -> None:
        stack, editable = self.document.undo_stack, not self.document.read_only
        undo, redo = self.actions["undo"], self.actions["redo"]
        undo.setText(f"Undo {stack.undoText()}".strip())
        redo.setText(f"Redo {stack.redoText()}".strip())
        undo.setEnabled(editable and stack.canUndo())
        redo.setEnabled(editable and stack.canRedo())

    def _update_edit_actions(self, *_) -> None:
        editable = not self.document.read_only
        has_selection = bool(self.stack_view.selected_ids())
        for key in ("cut", "duplicate", "delete", "move_up", "move_down", "group", "make_residual", "ungroup"):
            self.actions[key].setEnabled(editable and has_selection)
        self.actions["copy"].setEnabled(has_selection)
        self.actions["paste"].setEnabled(editable)

    def _on_read_only(self, read_only: bool) -> None:
        self.read_only_banner.setVisible(read_only)
        self.palette.setEnabled(not read_only)
        self.stack_view.set_read_only(read_only)
        for key in ("new", "open"):
            self.actions[key].setEnabled(not read_only)
        self.templates_menu.setEnabled(not read_only)
        self.recent_menu.setEnabled(not read_only)
        self._update_undo_actions()
        self._update_edit_actions()

    def show_graph(self, shown: bool) -> None:
        """Show or hide the graph view beside the stack (View > Graph View)."""
        self.graph_view.setVisible(shown)
        self.actions["graph_view"].setChecked(shown)
        if shown and self.design_splitter.sizes()[1] < GRAPH_MIN_WIDTH:  # half of the page, the first time
            self.design_splitter.setSizes([1, 1])

    def focus_inspector(self, *_) -> None:
        self.inspector_dock.show()
        self.inspector_dock.raise_()
        self.inspector.focus_first_editor()

    def focus_palette_filter(self) -> None:
        self.palette_dock.show()
        self.palette.filter.setFocus()
        self.palette.filter.selectAll()

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(sentence(text), 6000)

    # ------------------------------------------------------------------ files
    def _update_title(self, *_) -> None:
        self.setWindowTitle(f"{self.document.display_name()}[*] — {APP_NAME}")
        self.setWindowModified(self.document.modified)

    def load_design(self, design: DesignFile, path=None) -> None:
        """Show ``design`` (replacing the current one without asking) and select its first layer."""
        self.document.load(design, path)
        self._select_first_layer()
        self._update_title()

    def _select_first_layer(self) -> None:
        layers = self.document.spec.layers
        if layers:
            self.stack_view.select_ids([layers[0].id])
        else:
            self.stack_view.select_input()

    def maybe_save(self) -> bool:
        """Ask Save / Discard / Cancel when there are unsaved changes; True if it is fine to go on."""
        if not self.document.modified:
            return True
        box = QMessageBox(QMessageBox.Icon.Warning, APP_NAME,
                          f"Save the changes to {self.document.display_name()}?",
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                          | QMessageBox.StandardButton.Cancel, self)
        box.setInformativeText("Your changes are lost if you don't save them.")
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        answer = box.exec()
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def may_replace_design(self) -> bool:
        """Whether New / Open / a template may replace the design: never during a run (it is read-only
        then, and the run trains it); otherwise after the "save changes?" question."""
        if self.document.read_only:
            self.show_message("A run is going: the design cannot be replaced until it ends.")
            return False
        return self.maybe_save()

    def new_design(self) -> None:
        if not self.may_replace_design():
            return
        dialog = NewDesignDialog(self)
        if dialog.exec() != NewDesignDialog.DialogCode.Accepted:
            return
        self.new_from(dialog.choice())

    def new_from(self, template: str) -> None:
        """Replace the design with an empty one (EMPTY) or a template, without asking."""
        from engine.spec import NetworkSpec

        design = DesignFile(NetworkSpec(DEFAULT_INPUT_SHAPE)) if template == EMPTY else DesignFile.template(template)
        self.load_design(design)

    def open_template(self, name: str) -> None:
        if self.may_replace_design():
            self.new_from(name)
            self.show_message(f"Opened template {name}")

    def open_file(self, path: str | Path | None = None) -> bool:
        """Open a design file (asks for one when ``path`` is None); a bad file keeps the current design."""
        if not self.may_replace_design():
            return False
        if path is None:
            path = get_open_path(self, "designs", "Open design", FILE_FILTER)
            if not path:
                return False
        return self._read_and_show(path, self.show_error)

    def _read_and_show(self, path: str | Path, report: Callable[[str, str], None]) -> bool:
        """Show the design file ``path``; a file that cannot be read goes to ``report(title, sentence)``."""
        try:
            design = DesignFile.read(path)
        except SpecError as exc:
            report(f"Cannot open {Path(path).name}", str(exc))
            return False
        self.load_design(design, path)
        add_recent(path)
        self.show_message(f"Opened {path}")
        return True

    def recent_files(self) -> list[str]:
        """The recent design files, newest first (gui/recent_files.py)."""
        return recent_files()

    def open_recent(self, path: str) -> None:
        """Open a design from Open Recent; one that is gone leaves the list, with a dialog saying so."""
        if not Path(path).exists():
            forget_recent(path)
            self.show_error(f"Cannot open {Path(path).name}", f"the file {path} no longer exists")
            return
        self.open_file(path)

    def save(self) -> bool:
        if self.document.path is None:
            return self.save_as()
        return self.save_to(self.document.path)

    def save_as(self) -> bool:
        path = get_save_path(self, "designs", "Save design as", FILE_FILTER, f"{self.document.name or 'design'}.json",
                             DESIGN_SUFFIXES[0])
        if not path:
            return False
        return self.save_to(path)

    def save_to(self, path) -> bool:
        try:
            self.document.save(path)
        except SpecError as exc:
            self.show_error(f"Cannot save {Path(path).name}", str(exc))
            return False
        add_recent(path)
        self._update_title()
        self.show_message(f"Saved {path}")
        return True

    def show_error(self, title: str, reason: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, APP_NAME, title, QMessageBox.StandardButton.Ok, self)
        box.setInformativeText(sentence(reason))  # a file name that starts it stays as written
        box.setObjectName("errorMessage")
        box.exec()

    # ------------------------------------------------------------------ settings
    def _open_initial_design(self, path: str | Path | None = None) -> None:
        """The design file ``path`` when given and readable; else, on the first start, the LeNet template
        and on later starts the last design file, if it is still there. The error of a ``path`` that
        cannot be read shows once the window is up (a dialog before it would have no window to sit on)."""
        def report_later(title: str, sentence: str) -> None:
            QTimer.singleShot(0, self, lambda: self.show_error(title, sentence))

        if path is not None and self._read_and_show(path, report_later):
            return
        last = last_file()
        if last and Path(last).is_file():
            try:
                self.load_design(DesignFile.read(last), last)
                return
            except SpecError:
                pass
        self.new_from(FIRST_TEMPLATE)

    def _restore_window_state(self) -> bool:
        """Geometry, docks and column widths of the last run; False on the first start."""
        settings = QSettings()
        self._default_state = self.saveState(STATE_VERSION)
        geometry = settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = settings.value("window/state")
        restored = state is not None and self.restoreState(state, STATE_VERSION)
        self._graph_setting = settings.value("window/graphView")  # None on the first start: the width decides
        header = settings.value("window/stackHeader")
        if header is not None:
            self.stack_view.header().restoreState(header)
        return bool(restored)

    def _default_dock_sizes(self) -> None:
        self.resizeDocks([self.palette_dock, self.inspector_dock], [210, 350], Qt.Orientation.Horizontal)

    def _fit_docks_to_tab(self, index: int) -> None:
        """Hide the visible design docks on a full-width tab; bring exactly those back elsewhere."""
        if self.tabs.widget(index) in self._full_width_pages:
            if not self._docks_set_aside:
                self._docks_set_aside = [d for d in (self.palette_dock, self.inspector_dock) if d.isVisible()]
                for dock in self._docks_set_aside:
                    dock.hide()
        else:
            self._restore_set_aside_docks()

    def _restore_set_aside_docks(self) -> None:
        for dock in self._docks_set_aside:
            dock.show()
        self._docks_set_aside = []

    def save_window_state(self) -> None:
        self._restore_set_aside_docks()  # the saved layout is the design layout, whatever tab is shown
        settings = QSettings()
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/state", self.saveState(STATE_VERSION))
        settings.setValue("window/stackHeader", self.stack_view.header().saveState())
        settings.setValue("window/graphView", "true" if self.actions["graph_view"].isChecked() else "false")

    def reset_layout(self) -> None:
        self.restoreState(self._default_state, STATE_VERSION)
        self.palette_dock.show()
        self.inspector_dock.show()
        self._default_dock_sizes()

    def closeEvent(self, event) -> None:
        if not all(guard() for guard in self._close_guards) or not self.maybe_save():
            event.ignore()
            return
        self.save_window_state()
        self.closing.emit()
        event.accept()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._layout_restored:
            self._layout_restored = True
            self._default_dock_sizes()
        if not self._graph_decided:
            self._graph_decided = True
            setting = self._graph_setting
            self.show_graph(self.width() >= GRAPH_WINDOW_WIDTH if setting is None else str(setting).lower() == "true")
        if not self.stack_view.hasFocus():
            QTimer.singleShot(0, self.stack_view.setFocus)
