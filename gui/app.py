"""Start the window: application set-up, style, the crash dialog, then a fast first show."""
from __future__ import annotations

import atexit
import logging
import sys
import threading
import traceback

from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from engine.errors import LayerStudioError
from engine.log import close_logging, configure_logging, report_unexpected
from gui.input_policy import install_input_policy
from resources import ROOT

ORGANIZATION = "LayerStudio"
APPLICATION = "LayerStudio"
STYLE_SHEET = ROOT / "styles" / "light.qss"
log = logging.getLogger(__name__)


def configure_application(app: QCoreApplication) -> None:
    """Names (for QSettings), the input rules (gui.input_policy), the Fusion style, the app's style sheet
    and a clean clipboard exit."""
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    if isinstance(app, QApplication) and not app.property("layerstudioStyled"):
        app.setProperty("layerstudioStyled", True)
        atexit.register(_release_clipboard)
        install_input_policy(app)
        app.setStyle("Fusion")
        if STYLE_SHEET.exists():
            icons = (ROOT / "icons").as_posix()
            app.setStyleSheet(STYLE_SHEET.read_text(encoding="utf-8").replace("@ICONS@", icons))


def _release_clipboard() -> None:
    """Drop our QMimeData from the clipboard while Qt still runs: left there, PySide6
    frees it during interpreter shutdown and the process dies with a segmentation fault."""
    if QApplication.instance() is not None:
        QApplication.clipboard().clear()


def install_excepthook(parent_getter=lambda: None) -> None:
    """Log uncaught exceptions (e.g. in a slot) with their traceback and show them in a dialog that names
    the log file, instead of losing them; the app keeps running. Threads other than the UI thread only log."""
    showing = []

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            sys.__excepthook__(exc_type, exc, tb)
            return
        if isinstance(exc, LayerStudioError):  # a user error some slot forgot to catch: its sentence is the message
            log.warning("Uncaught: %s", exc, exc_info=(exc_type, exc, tb))
            summary = str(exc)
        else:
            summary = report_unexpected(exc.with_traceback(tb), "handling an event in the window", log)
        if showing or QApplication.instance() is None or threading.current_thread() is not threading.main_thread():
            return
        showing.append(True)
        try:
            box = QMessageBox(parent_getter())
            box.setIcon(QMessageBox.Icon.Critical)
            box.setWindowTitle(APPLICATION)
            if isinstance(exc, LayerStudioError):
                box.setText(summary)
            else:
                box.setText("Something went wrong, but your design is still open.")
                box.setInformativeText(summary)
                box.setDetailedText("".join(traceback.format_exception(exc_type, exc, tb)))
            box.exec()
        finally:
            showing.clear()

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        log.error("Uncaught exception in thread %s", getattr(args.thread, "name", "?"),
                  exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = hook
    threading.excepthook = thread_hook


def attach_training(window):
    """Add the Training/Results tabs and the weight actions (gui.training) to ``window``, then offer to resume
    a run that was going when LayerStudio last stopped."""
    from gui.training import install_training
    from gui.training.recovery import offer_to_resume

    ui = install_training(window)
    window.closing.connect(ui.shutdown)
    ui.recovery_offer = offer_to_resume(window, ui)  # a run LayerStudio did not end cleanly, if any
    return ui


def attach_training_when_ready(window) -> None:
    """Load torch in a background thread after the window is shown, then add the training tabs.

    The window shows in a fraction of torch's import time; until training is
    attached, the Train button is off and its tooltip says that PyTorch is still loading.
    """
    from gui.meta import preload_torch

    loader = preload_torch()
    window.show_message("Loading PyTorch…")
    window.summary.set_waiting_for("PyTorch is still loading.")
    poll = QTimer(window)
    poll.setInterval(100)

    def check():
        if loader.is_alive():
            return
        poll.stop()
        window.summary.set_waiting_for("")
        attach_training(window)
        window.show_message("Ready")

    poll.timeout.connect(check)
    poll.start()


def open_window(design: str | None = None):
    """Create and show the main window with ``design`` (a file named on the command line) or the usual first
    design; the training tabs are attached once torch has loaded behind it. The caller runs the event loop."""
    from gui.main_window import MainWindow

    window = MainWindow(initial_path=design)
    window.show()
    QTimer.singleShot(0, window, lambda: attach_training_when_ready(window))
    return window


def run_app(argv: list[str] | None = None, verbose: bool = False, design: str | None = None) -> int:
    """Create the application and the main window (opening ``design`` when given); show it first, load torch
    and training behind it.

    Unexpected errors go to the log file (``engine.log``); ``verbose`` also prints the log on stderr."""
    configure_logging(verbose=verbose)
    try:
        app = QApplication.instance() or QApplication(sys.argv if argv is None else argv)
        configure_application(app)
        window = None
        install_excepthook(lambda: window)  # before the window exists: a bug while opening it gets the dialog too
        window = open_window(design)
        return app.exec()
    finally:
        close_logging()
