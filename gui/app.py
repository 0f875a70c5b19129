"""Start the window: application set-up, style, the crash dialog, then a fast first show."""
from __future__ import annotations

import sys
import traceback

from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from engine.errors import LayerStudioError
from resources import ROOT

ORGANIZATION = "LayerStudio"
APPLICATION = "LayerStudio"
STYLE_SHEET = ROOT / "styles" / "light.qss"


def configure_application(app: QCoreApplication) -> None:
    """Names (for QSettings), the Fusion style and the app's style sheet."""
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    if isinstance(app, QApplication):
        app.setStyle("Fusion")
        if STYLE_SHEET.exists():
            app.setStyleSheet(STYLE_SHEET.read_text(encoding="utf-8"))


def install_excepthook(parent_getter=lambda: None) -> None:
    """Show uncaught exceptions (e.g. in a slot) in a dialog instead of losing them; the app keeps running."""
    showing = []

    def hook(exc_type, exc, tb):
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(text)
        if showing or QApplication.instance() is None:
            return
        showing.append(True)
        try:
            box = QMessageBox(parent_getter())
            box.setIcon(QMessageBox.Icon.Critical)
            box.setWindowTitle(APPLICATION)
            if isinstance(exc, LayerStudioError):
                box.setText(str(exc))
            else:
                box.setText("Something went wrong, but your design is still open.")
                box.setInformativeText(f"{exc_type.__name__}: {exc}")
                box.setDetailedText(text)
            box.exec()
        finally:
            showing.clear()

    sys.excepthook = hook


def run_app(argv: list[str] | None = None) -> int:
    """Create the application and the main window; torch loads in the background once it is shown."""
    app = QApplication.instance() or QApplication(sys.argv if argv is None else argv)
    configure_application(app)
    from gui.main_window import MainWindow

    window = MainWindow()
    install_excepthook(lambda: window)
    window.show()

    def warm_up():
        from gui.meta import preload_torch

        preload_torch()

    QTimer.singleShot(300, warm_up)
    return app.exec()
