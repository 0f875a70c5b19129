"""Start-up stays torch-free, and an exception in a slot shows a dialog instead of killing the app."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

from PySide6.QtCore import QTimer

from gui.app import install_excepthook


def test_window_shows_without_importing_torch(tmp_path):
    script = textwrap.dedent(f"""
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtCore import QSettings
        from PySide6.QtWidgets import QApplication
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, {str(tmp_path)!r})
        app = QApplication([])
        from gui.app import configure_application
        from gui.main_window import MainWindow
        configure_application(app)
        window = MainWindow()
        window.show()
        app.processEvents()
        print(window.document.name, len(window.document.spec.layers), "torch" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["lenet", "9", "False"]


def test_an_exception_in_a_slot_shows_a_dialog_and_the_app_goes_on(window, qtbot, message_boxes, log_to_file):
    previous, previous_thread_hook = sys.excepthook, threading.excepthook
    install_excepthook(lambda: window)
    try:
        def broken_slot():
            raise ValueError("boom")

        QTimer.singleShot(0, broken_slot)
        qtbot.waitUntil(lambda: bool(message_boxes.texts))
    finally:
        sys.excepthook, threading.excepthook = previous, previous_thread_hook
    assert "ValueError: boom" in message_boxes.texts[0]
    assert f"(details in {log_to_file})" in message_boxes.texts[0]  # the dialog names the log file
    logged = log_to_file.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in logged and "in broken_slot" in logged and "ValueError: boom" in logged
    assert window.isVisible()
    window.document.edit_param(window.document.spec.layers[0].id, "kernel_size", 3)  # still editable
    assert window.document.modified
