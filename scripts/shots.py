"""What the screenshot scripts share: the window on an offscreen screen with throwaway settings, and the size and
output folder each script takes (``--size WxH``, ``--out DIR``), a size other than the default naming its files."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "screenshots"
sys.path.insert(0, str(ROOT))  # this checkout's gui and engine, not an installed copy's
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from engine.openmp import use_passive_wait  # noqa: E402 - first, as in the app

use_passive_wait()  # before torch loads


from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402 - after the platform and the wait policy are set


def wait_for(signal, timeout_ms: int = 600_000, condition=lambda *args: True):
    """Run the event loop until ``signal`` fires with arguments that satisfy ``condition``; returns them."""
    loop, got = QEventLoop(), []

    def check(*args):
        if condition(*args) and not got:
            got.append(args)
            loop.quit()

    signal.connect(check)
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    signal.disconnect(check)
    if not got:
        raise SystemExit(f"timed out waiting for {signal}")
    return got[0]


def settle(ms: int = 300) -> None:
    """Let timers (plot refresh) and layouts run."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def save(widget, path: Path) -> Path:
    """Grab ``widget`` (with its children, as shown) into the PNG file ``path``; says where."""
    widget.grab().save(str(path))
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def add_size_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--size", default=default, help=f"window size WxH (default {default})")
    parser.add_argument("--out", default=str(SHOTS), help="folder for the PNG files (default docs/screenshots)")


def sized(args: argparse.Namespace, default: str) -> tuple[int, int, Path, str]:
    """(width, height, the output folder (made), the file-name suffix: "" at the default size, else "-WxH")."""
    width, height = (int(v) for v in args.size.lower().split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return width, height, out, "" if args.size.lower() == default else f"-{width}x{height}"


def open_window(width: int, height: int, open_initial: bool = True):
    """(app, window, training UI): the main window with its training tabs, shown at ``width`` x ``height``; its
    layout and recent files go to a temporary folder, so the user's own are never read or touched."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from gui.app import configure_application
    from gui.main_window import MainWindow
    from gui.training import install_training

    configure_application(app)
    window = MainWindow(open_initial=open_initial)
    window.resize(width, height)
    window.show()
    ui = getattr(window, "training", None) or install_training(window)
    return app, window, ui
