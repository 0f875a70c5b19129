"""`layerstudio [--verbose] [DESIGN.json]` opens the window (on that design); anything else is a command.

The window is created through the same function the console script uses (gui.app.open_window), on
real design files; the console script itself runs in fresh processes (`python -m gui.launch`).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from PySide6.QtCore import QSettings

from engine.controls import control
from engine.templates import load_design
from gui.app import open_window
from gui.launch import WindowRequest, window_request
from tests.gui.test_training_window import RUN_TIMEOUT_MS, tab_titles, training_ui
from tests.processes import process_env, run


def close(window) -> None:
    window.document.undo_stack.setClean()  # nothing to ask on close
    window.close()
    window.deleteLater()


def test_one_design_file_opens_the_window_and_anything_else_is_a_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train").write_text("{}")                      # a file named like a command
    (tmp_path / "notes.txt").write_text("{}")
    assert window_request([]) == WindowRequest(None, verbose=False)
    assert window_request(["--verbose"]) == WindowRequest(None, verbose=True)
    assert window_request(["my-design.json"]) == WindowRequest("my-design.json")
    assert window_request(["My Design.JSON", "--verbose"]) == WindowRequest("My Design.JSON", verbose=True)
    assert window_request(["--verbose", "designs/net"]) == WindowRequest("designs/net", verbose=True)
    assert window_request(["notes.txt"]) == WindowRequest("notes.txt")   # an existing file: the window says what it is
    assert window_request(["./train"]) == WindowRequest("./train")
    for command in (["train"], ["train", "lenet"], ["summary", "x.json"], ["templates"], ["--version"], ["-h"],
                    ["lenet"], ["x.json", "y.json"], ["--verbose", "summary", "lenet"]):
        assert window_request(command) is None, command


def test_a_design_named_on_the_command_line_opens_in_the_window(tmp_path, qtbot):
    spec, design = load_design("cnn")
    path = tmp_path / "my cnn.json"
    path.write_text(json.dumps({**design, "name": "my cnn"}))
    window = open_window(str(path))
    try:
        qtbot.waitExposed(window)
        assert window.document.path is not None and window.document.path.resolve() == path.resolve()
        assert window.document.spec == spec and window.document.name == "my cnn"
        assert not window.document.modified
        assert QSettings().value("lastFile") == str(path.resolve())   # and in Open Recent, as File → Open does
        qtbot.waitUntil(lambda: "Training" in tab_titles(window), timeout=RUN_TIMEOUT_MS)  # torch loads behind it
    finally:
        close(window)


@pytest.mark.parametrize("content, sentence", [
    ("{this is not json", "is not valid JSON"),
    ('{"format": "layerstudio.design", "version": 1, "input_shape": [1, 28, 28], "layers": [{"kind": "Nope"}]}',
     "Nope"),
])
def test_a_design_that_does_not_load_shows_the_usual_first_design_and_says_why(tmp_path, qtbot, message_boxes,
                                                                              content, sentence):
    path = tmp_path / "broken design.json"
    path.write_text(content)
    window = open_window(str(path))
    try:
        qtbot.waitUntil(lambda: bool(message_boxes.texts))
        assert message_boxes.texts[0].startswith("Cannot open broken design.json\n")
        assert sentence in message_boxes.texts[0]
        assert window.isVisible() and window.document.name == "lenet" and window.document.path is None
        qtbot.waitUntil(lambda: "Training" in tab_titles(window), timeout=RUN_TIMEOUT_MS)  # and goes on as usual
    finally:
        close(window)


def test_the_window_names_settings_by_their_labels(window, qtbot, tmp_path):
    ui = training_ui(window)
    assert control("data.download") == "“Download if missing”"
    window.document.set_extra("data", {"source": "mnist", "root": str(tmp_path)})
    with qtbot.waitSignal(ui.controller.dataFailed, timeout=RUN_TIMEOUT_MS) as failed:
        assert ui.controller.load_data()
    qtbot.waitUntil(lambda: not ui.controller.busy)
    assert failed.args[0].endswith("or turn on “Download if missing”.") and "--download" not in failed.args[0]


def test_a_design_file_that_does_not_exist_is_one_line_on_the_terminal(tmp_path):
    done = run("gui.launch", "missing design.json", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == ("Error: missing design.json does not exist: check the path, or run layerstudio alone "
                           "to open the window\n")


def test_version_through_the_console_script(tmp_path):
    done = run("gui.launch", "--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("LayerStudio ") and done.stderr == ""


def test_the_console_script_opens_the_design_in_the_window(tmp_path):
    """The whole path: main(["--verbose", DESIGN]) -> run_app -> the event loop, quit once the window shows."""
    _, design = load_design("mlp")
    path = tmp_path / "net.json"
    path.write_text(json.dumps({**design, "name": "from the command line"}))
    script = textwrap.dedent(f"""
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtCore import QSettings, QTimer
        from PySide6.QtWidgets import QApplication
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, {str(tmp_path / "settings")!r})
        app = QApplication([])

        def report():
            window = next(w for w in app.topLevelWidgets() if w.objectName() == "mainWindow")
            print(window.isVisible(), window.document.name, len(window.document.spec.layers), window.document.path)
            window.document.undo_stack.setClean()
            app.quit()

        QTimer.singleShot(0, report)
        from gui.launch import main
        sys.exit(main(["--verbose", {str(path)!r}]))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=process_env(LAYERSTUDIO_HOME=str(tmp_path)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"True from the command line {len(design['layers'])} {path}"
    assert "Traceback" not in done.stderr
