"""File dialogs remember the last folder per kind of file (gui.file_dialogs), through the real dialogs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog

from gui.file_dialogs import get_open_path, get_save_path, last_folder


class FileDialogs:
    """Answers each QFileDialog that opens: records the folder it starts in, then chooses the next
    path given to ``answer`` (a file name typed into the dialog) or cancels when there is none."""

    def __init__(self):
        self.answers: list[str | None] = []
        self.started_in: list[str] = []
        self._timer = QTimer()
        self._timer.setInterval(10)
        self._timer.timeout.connect(self._answer_open_dialogs)
        self._timer.start()

    def answer(self, *paths) -> None:
        self.answers.extend(str(p) if p is not None else None for p in paths)

    def _answer_open_dialogs(self) -> None:
        for dialog in QApplication.topLevelWidgets():
            if isinstance(dialog, QFileDialog) and dialog.isVisible():
                self.started_in.append(str(Path(dialog.directory().absolutePath())))
                path = self.answers.pop(0) if self.answers else None
                if path is None:
                    dialog.reject()
                    continue
                dialog.setDirectory(str(Path(path).parent))
                dialog.selectFile(Path(path).name)
                dialog.accept()

    def stop(self) -> None:
        self._timer.stop()


@pytest.fixture
def file_dialogs(qapp):
    dialogs = FileDialogs()
    yield dialogs
    dialogs.stop()


def test_open_and_save_as_start_where_the_last_design_dialog_was_left(window, tmp_path, file_dialogs):
    designs = tmp_path / "designs"
    designs.mkdir()
    file_dialogs.answer(designs / "mine")  # typed without a suffix
    assert window.save_as()
    saved = designs / "mine.json"
    assert json.loads(saved.read_text())["format"] == "layerstudio.design"
    assert file_dialogs.started_in == [str(Path.home())]  # the first time: the home folder

    file_dialogs.answer(saved)
    assert window.open_file()
    assert file_dialogs.started_in[-1] == str(designs)
    file_dialogs.answer(None)  # cancelled: nothing opened, nothing remembered
    assert not window.save_as()
    assert file_dialogs.started_in[-1] == str(designs) and last_folder("designs") == str(designs)


def test_each_kind_of_file_has_its_own_folder(window, tmp_path, file_dialogs):
    weights, designs = tmp_path / "weights", tmp_path / "designs"
    weights.mkdir()
    designs.mkdir()
    (weights / "net.pt").write_bytes(b"not read here")
    file_dialogs.answer(weights / "net.pt", designs / "net.json")
    assert get_open_path(window, "weights", "Load weights", "Weights (*.pt *.safetensors);;All files (*)") == str(
        weights / "net.pt")
    assert get_save_path(window, "designs", "Save design as", "Designs (*.json)", "net.json", ".json") == str(
        designs / "net.json")
    assert (last_folder("weights"), last_folder("designs")) == (str(weights), str(designs))
    assert file_dialogs.started_in == [str(Path.home())] * 2

    file_dialogs.answer(None, None)
    get_open_path(window, "weights", "Load weights", "Weights (*.pt)")
    get_open_path(window, "checkpoints", "Resume from checkpoint", "Checkpoints (*.pt)")
    assert file_dialogs.started_in[2:] == [str(weights), str(Path.home())]


def test_a_folder_that_is_gone_falls_back_to_home(window, tmp_path, file_dialogs):
    gone = tmp_path / "gone"
    gone.mkdir()
    file_dialogs.answer(gone / "a.json")
    assert get_save_path(window, "designs", "Save design as", "Designs (*.json)", "a.json", ".json")
    assert last_folder("designs") == str(gone)
    gone.rmdir()
    assert last_folder("designs") == str(Path.home())


def test_a_design_opened_from_the_recent_list_sets_the_design_folder(window, tmp_path):
    folder = tmp_path / "recent"
    folder.mkdir()
    assert window.save_to(folder / "r.json")
    assert last_folder("designs") == str(folder)
