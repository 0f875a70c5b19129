"""The designer window's commands: every action declared once (text, shortcut, icon, tip), then placed
in the menu bar (File, Edit, View, Templates, Help) and the toolbar.

One table for the whole window, so a shortcut or a menu's order changes in one place; the window
(gui/main_window.py) holds what the actions do. The actions, menus and toolbar belong to the window
(their Qt parent), which keeps them in ``window.actions`` and its ``*_menu`` attributes.
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QToolBar

from engine.templates import list_templates
from gui.dialogs import help_dialog, show_about
from gui.icons import icon
from gui.recent_files import fill_recent_menu


def _shorten(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _action(window: QMainWindow, key: str, text: str, slot, shortcuts=(), tip: str = "") -> QAction:
    """A window action named ``key`` (also its icon's name in resources/icons), kept in ``window.actions``."""
    action = QAction(icon(key), text, window)
    if shortcuts:
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(f"{tip} ({action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"
                          if shortcuts else tip)
    action.triggered.connect(lambda _=False: slot())
    window.actions[key] = action
    return action


def make_actions(window: QMainWindow) -> None:
    """Every command of the window, in ``window.actions`` by key; the layer stack's context menu too."""
    keys = QKeySequence.StandardKey
    _action(window, "new", "&New…", window.new_design, [keys.New], tip="Start a new design from a template or empty")
    _action(window, "open", "&Open…", window.open_file, [keys.Open], tip="Open a design file")
    _action(window, "import", "&Import PyTorch…", lambda: _import_pytorch(window),
            tip="Open a PyTorch model (a .py file, a torchvision model or a state_dict) as a new design")
    _action(window, "save", "&Save", window.save, [keys.Save], tip="Save the design")
    _action(window, "save_as", "Save &As…", window.save_as, ["Ctrl+Shift+S"], tip="Save the design under a new name")
    _action(window, "quit", "&Quit", window.close, ["Ctrl+Q"], tip="Quit LayerStudio")
    _action(window, "undo", "Undo", window.undo, [keys.Undo], tip="Undo the last edit")
    _action(window, "redo", "Redo", window.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], tip="Redo the edit undone last")
    view = window.stack_view
    _action(window, "cut", "Cu&t", view.cut_selected, [keys.Cut], tip="Cut the selected layers")
    _action(window, "copy", "&Copy", view.copy_selected, [keys.Copy], tip="Copy the selected layers as JSON")
    _action(window, "paste", "&Paste", view.paste, [keys.Paste], tip="Paste layers after the selection")
    _action(window, "duplicate", "&Duplicate", view.duplicate_selected, ["Ctrl+D"],
            tip="Duplicate the selected layers")
    _action(window, "delete", "De&lete", view.delete_selected, [QKeySequence(Qt.Key.Key_Delete)],
            tip="Delete the selected layers")
    _action(window, "move_up", "Move &Up", lambda: view.move_selected(-1), ["Alt+Up"],
            tip="Move the selected layers up")
    _action(window, "move_down", "Move Do&wn", lambda: view.move_selected(+1), ["Alt+Down"],
            tip="Move the selected layers down")
    _action(window, "group", "&Group", view.group_selected, ["Ctrl+G"],
            tip="Wrap the selected layers in a group")
    _action(window, "make_residual", "Make &Residual", lambda: view.group_selected("residual"),
            tip="Wrap the selected layers in a residual group: their output plus a shortcut of their input")
    _action(window, "ungroup", "U&ngroup", view.ungroup_selected, ["Ctrl+Shift+G"],
            tip="Put the selected group's layers in its place")
    _action(window, "select_all", "Select &All", view.selectAll, [keys.SelectAll], tip="Select every layer")
    _action(window, "filter", "&Find Layer Kind…", window.focus_palette_filter, [keys.Find],
            tip="Filter the layer palette")
    _action(window, "expand", "&Expand Groups", view.expandAll, tip="Show the layers inside every group")
    _action(window, "collapse", "&Collapse Groups", view.collapseAll, tip="Hide the layers inside groups")
    _action(window, "graph_view", "&Graph View", lambda: window.show_graph(window.actions["graph_view"].isChecked()),
            ["Ctrl+Shift+R"], tip="Show the network as boxes and arrows beside the layer stack").setCheckable(True)
    _action(window, "reset_layout", "&Reset Layout", window.reset_layout,
            tip="Put the panels back where they started")
    _action(window, "help", "LayerStudio &Help", lambda: help_dialog(window).exec(), ["F1"],
            tip="How to use LayerStudio")
    _action(window, "about", "&About LayerStudio", lambda: show_about(window))
    actions = window.actions
    view.context_actions = [actions[k] for k in ("cut", "copy", "paste", "duplicate")] + [None] + [
        actions[k] for k in ("move_up", "move_down")] + [None] + [
        actions[k] for k in ("group", "make_residual", "ungroup")] + [None, actions["delete"]]


def _import_pytorch(window: QMainWindow) -> None:
    from gui.import_dialog import import_pytorch  # torch.fx and the importers load when first used

    import_pytorch(window)


def _add_actions(window: QMainWindow, target, keys) -> None:
    """Add the named actions to a menu or toolbar; None is a separator."""
    for key in keys:
        if key is None:
            target.addSeparator()
        else:
            target.addAction(window.actions[key])


def make_menus(window: QMainWindow) -> QAction:
    """The menu bar; returns the File menu's separator above Quit, where the training GUI's file actions go."""
    bar = window.menuBar()
    window.file_menu = bar.addMenu("&File")
    for key in ("new", "open"):
        window.file_menu.addAction(window.actions[key])
    window.recent_menu = window.file_menu.addMenu("Open &Recent")
    window.recent_menu.aboutToShow.connect(lambda: fill_recent_menu(window.recent_menu, window.open_recent))
    window.file_menu.addAction(window.actions["import"])
    window.file_menu.addSeparator()
    window.file_menu.addAction(window.actions["save"])
    window.file_menu.addAction(window.actions["save_as"])
    window.export_menu = window.file_menu.addMenu("&Export")
    for action in window.exports.actions.values():
        window.export_menu.addAction(action)
    file_actions_anchor = window.file_menu.addSeparator()
    window.file_menu.addAction(window.actions["quit"])

    edit = bar.addMenu("&Edit")
    _add_actions(window, edit, ("undo", "redo", None, "cut", "copy", "paste", "duplicate", "delete", None,
                                "move_up", "move_down", None, "group", "make_residual", "ungroup", None,
                                "select_all", "filter"))

    window.view_menu = bar.addMenu("&View")
    window.view_menu.addAction(window.palette_dock.toggleViewAction())
    window.view_menu.addAction(window.inspector_dock.toggleViewAction())
    window.view_menu.addAction(window.actions["graph_view"])
    window.view_menu.addSeparator()
    window.view_menu.addAction(window.actions["expand"])
    window.view_menu.addAction(window.actions["collapse"])
    window.view_menu.addSeparator()
    window.view_menu.addAction(window.actions["reset_layout"])
    window.view_menu.addSeparator()  # the tabs' entries (MainWindow.add_tab) follow

    window.templates_menu = bar.addMenu("&Templates")
    window.templates_menu.setToolTipsVisible(True)
    for info in list_templates():
        action = window.templates_menu.addAction(f"{info.name}  —  {_shorten(info.description)}")
        action.setToolTip(info.description)
        action.setStatusTip(info.description)
        action.setData(info.name)
        action.triggered.connect(lambda _=False, name=info.name: window.open_template(name))

    help_menu = bar.addMenu("&Help")
    help_menu.addAction(window.actions["help"])
    help_menu.addAction(window.actions["about"])
    return file_actions_anchor


def make_toolbar(window: QMainWindow) -> None:
    toolbar = QToolBar("Main toolbar")
    toolbar.setObjectName("mainToolbar")
    toolbar.setMovable(False)
    toolbar.setIconSize(QSize(20, 20))
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
    _add_actions(window, toolbar, ("new", "open", "save", None, "undo", "redo", None, "duplicate", "delete",
                                   "move_up", "move_down"))
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
    window.toolbar = toolbar
