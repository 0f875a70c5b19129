"""Files, title, templates and settings of the window."""
from __future__ import annotations

import json

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from engine.templates import list_templates
from gui.dialogs import EMPTY, NewDesignDialog
from gui.main_window import MainWindow
from tests.gui.helpers import kinds, shapes


def edit_first_conv(window, value=3):
    conv = window.document.spec.layers[0].id
    window.stack_view.select_ids([conv])
    window.inspector.editors["kernel_size"].spin.setValue(value)
    return conv


def test_save_and_open_round_trip(window, tmp_path):
    edit_first_conv(window)
    window.document.set_extra("training", {"epochs": 2, "lr": 0.01})
    path = tmp_path / "my-net.json"
    assert window.save_to(path)
    saved_spec, saved_extras = window.document.spec, dict(window.document.extras)
    data = json.loads(path.read_text())
    assert data["format"] == "layerstudio.design" and data["name"] == "lenet"
    assert data["training"] == {"epochs": 2, "lr": 0.01} and data["data"] == {"source": "mnist-sample"}
    window.new_from(EMPTY)
    assert kinds(window) == []
    assert window.open_file(path)
    assert window.document.spec == saved_spec
    assert window.document.extras == saved_extras
    assert window.windowTitle() == "my-net.json[*] — LayerStudio"
    assert not window.isWindowModified()
    assert shapes(window)[0] == "6x30x30"
    assert window.recent_files()[0] == str(path.resolve())



def test_open_recent_lists_designs_newest_first_and_drops_one_that_is_gone(window, tmp_path, message_boxes):
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    assert window.save_to(first) and window.save_to(second)
    window.recent_menu.aboutToShow.emit()
    entries = [a for a in window.recent_menu.actions() if not a.isSeparator()]
    assert [a.text() for a in entries] == ["second.json", "first.json", "Clear List"]
    assert entries[1].toolTip() == str(first.resolve())
    window.new_from(EMPTY)
    entries[1].trigger()
    assert window.document.path == first and not message_boxes.texts
    second.unlink()
    window.recent_menu.aboutToShow.emit()
    next(a for a in window.recent_menu.actions() if a.text() == "second.json").trigger()
    assert "Cannot open second.json" in message_boxes.texts[-1] and "no longer exists" in message_boxes.texts[-1]
    assert window.recent_files() == [str(first.resolve())]
    assert window.document.path == first  # the design shown stays
    window.recent_menu.aboutToShow.emit()
    next(a for a in window.recent_menu.actions() if a.text() == "Clear List").trigger()
    assert window.recent_files() == []
    window.recent_menu.aboutToShow.emit()
    empty = window.recent_menu.actions()
    assert [a.text() for a in empty] == ["No recent designs"] and not empty[0].isEnabled()

def test_title_shows_the_modified_mark(window, tmp_path):
    assert window.windowTitle() == "lenet[*] — LayerStudio"
    assert not window.isWindowModified()
    edit_first_conv(window)
    assert window.isWindowModified()
    window.undo()
    assert not window.isWindowModified()  # back to the saved state
    window.redo()
    assert window.isWindowModified()
    window.save_to(tmp_path / "a.json")
    assert not window.isWindowModified()
    assert window.windowTitle() == "a.json[*] — LayerStudio"


def test_a_malformed_file_shows_a_message_and_keeps_the_design(window, tmp_path, message_boxes):
    before_spec, before_title = window.document.spec, window.windowTitle()
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "layerstudio.design", "version": 1, "input_shape": [1, 28, 28], '
                      '"layers": [{"kind": "Conv9d"}]}')
    assert not window.open_file(broken)
    assert len(message_boxes.texts) == 1
    assert "Cannot open broken.json" in message_boxes.texts[0]
    assert "unknown kind 'Conv9d'" in message_boxes.texts[0]
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    assert not window.open_file(junk)
    assert "not valid JSON" in message_boxes.texts[1]
    assert window.document.spec is before_spec
    assert window.windowTitle() == before_title and window.document.path is None


def test_closing_with_unsaved_changes_asks(qtbot, message_boxes):
    window = MainWindow()
    window.show()
    edit_first_conv(window)
    message_boxes.answer = QMessageBox.StandardButton.Cancel
    assert not window.close()
    assert window.isVisible()
    assert "Save the changes to lenet?" in message_boxes.texts[-1]
    message_boxes.answer = QMessageBox.StandardButton.Discard
    assert window.close()
    window.deleteLater()


def test_new_dialog_lists_empty_and_every_template(window):
    dialog = NewDesignDialog(window)
    names = [dialog.list.item(i).data(256) for i in range(dialog.list.count())]
    assert names == [EMPTY] + [info.name for info in list_templates()]
    dialog.list.setCurrentRow(names.index("resnet18"))
    assert dialog.choice() == "resnet18"
    dialog.deleteLater()
    window.new_from(dialog.choice())
    assert window.document.spec.input_shape == (3, 32, 32)
    assert "Residual 64" in [layer.name for layer in window.document.spec.all_layers()]
    assert not window.isWindowModified()


def test_templates_menu_lists_every_template_with_its_description(window):
    actions = window.templates_menu.actions()
    infos = list_templates()
    assert [a.data() for a in actions] == [info.name for info in infos]
    assert all(info.description and info.description == a.toolTip() for a, info in zip(actions, infos, strict=True))
    next(a for a in actions if a.data() == "vgg").trigger()
    assert window.document.name == "vgg"
    assert window.summary.values["Errors"].text() == "none"


def test_geometry_dock_state_and_last_file_persist(qtbot, tmp_path):
    first = MainWindow()
    first.show()
    first.inspector_dock.hide()
    first.palette_dock.hide()
    first.layout().activate()
    first.resize(700, 500)  # fits the offscreen screen (800x600) once the docks are hidden, so restoring keeps it
    size = (first.width(), first.height())
    first.save_to(tmp_path / "kept.json")
    first.close()
    first.deleteLater()
    assert QSettings().value("window/geometry") is not None
    second = MainWindow()
    second.show()
    assert (second.width(), second.height()) == size
    assert not second.inspector_dock.isVisible() and not second.palette_dock.isVisible()
    assert second.document.path == tmp_path / "kept.json"  # not the first start any more
    second.close()
    second.deleteLater()


def test_settings_are_isolated_from_the_user(isolated_settings):
    settings = QSettings()
    assert settings.fileName().startswith(str(isolated_settings))
