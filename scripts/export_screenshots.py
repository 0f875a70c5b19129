"""Render File > Export (offscreen) to docs/screenshots: export-menu.png, the window on LeNet with the File menu open
and its Export submenu beside it, the ONNX entry highlighted and its tip in the status bar; export-dialog.png, the
file dialog it opens (its title says which weights go in); export-refused.png, the dialog naming a layer ONNX
cannot write.

Menus are windows of their own, so each is grabbed and painted onto the window's picture where it opened.
Settings go to a temporary folder, so the user's own are never touched.
Run: ``python scripts/export_screenshots.py [output folder]``.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # here, offscreen even when a display is set
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from PySide6.QtCore import QPoint, QRect, Qt, QTimer  # noqa: E402 - after the offscreen platform is chosen
from PySide6.QtGui import QColor, QFont, QPainter, QPixmap  # noqa: E402
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QMessageBox  # noqa: E402

from scripts.shots import ROOT, open_window  # noqa: E402

SIZE = (1280, 800)


def settle(app: QApplication, rounds: int = 10) -> None:
    for _ in range(rounds):
        app.processEvents()


def with_title(dialog: QDialog) -> QPixmap:
    """The dialog's picture under a strip with its window title (offscreen windows have no title bar)."""
    body = dialog.grab()
    strip = 30
    picture = QPixmap(body.width(), body.height() + strip)
    picture.fill(QColor("#dfe3e8"))
    painter = QPainter(picture)
    font = QFont(dialog.font())
    font.setBold(True)
    painter.setFont(font)
    painter.drawText(QRect(12, 0, body.width() - 24, strip), Qt.AlignmentFlag.AlignVCenter, dialog.windowTitle())
    painter.drawPixmap(0, strip, body)
    painter.end()
    return picture


def shoot_dialog(app: QApplication, kind: type, path: Path, open_it) -> None:
    """Run ``open_it()``, which shows a modal dialog of ``kind``; save that dialog's picture, then close it."""
    def grab() -> None:
        dialog = next((w for w in app.topLevelWidgets() if isinstance(w, kind) and w.isVisible()), None)
        if dialog is None:
            QTimer.singleShot(50, grab)
            return
        settle(app)
        with_title(dialog).save(str(path))
        dialog.done(QDialog.DialogCode.Rejected)

    QTimer.singleShot(50, grab)
    open_it()


def main(out: Path) -> list[Path]:
    app, window, _ui = open_window(*SIZE)
    window.new_from("lenet")
    settle(app)

    bar = window.menuBar()
    file_menu, export_menu = window.file_menu, window.export_menu
    file_at = bar.mapToGlobal(bar.actionGeometry(file_menu.menuAction()).bottomLeft())
    file_menu.popup(file_at)
    settle(app)
    file_menu.setActiveAction(export_menu.menuAction())
    export_at = file_menu.mapToGlobal(file_menu.actionGeometry(export_menu.menuAction()).topRight())
    export_menu.popup(export_at)
    settle(app)
    onnx = window.exports.actions["onnx"]
    export_menu.setActiveAction(onnx)
    window.statusBar().showMessage(onnx.statusTip())
    settle(app)

    picture = window.grab()
    painter = QPainter(picture)
    origin = window.mapToGlobal(QPoint(0, 0))
    for menu in (file_menu, export_menu):
        painter.drawPixmap(menu.pos() - origin, menu.grab())
    painter.end()
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "export-menu.png", out / "export-dialog.png", out / "export-refused.png"]
    picture.save(str(written[0]))
    export_menu.hide()
    file_menu.hide()
    settle(app)

    shoot_dialog(app, QFileDialog, written[1], lambda: window.exports.ask("onnx"))
    from engine.spec import LayerSpec, NetworkSpec
    from gui.document import DesignFile

    window.load_design(DesignFile(NetworkSpec((3, 8, 7), (
        LayerSpec("Conv2d", {"out_channels": 4}, "conv"), LayerSpec("AdaptiveAvgPool2d", {"output_size": 4}, "pool"))),
        "pooled"))
    shoot_dialog(app, QMessageBox, written[2],
                 lambda: window.exports.export_to("onnx", Path(tempfile.mkdtemp()) / "net.onnx"))
    window.document.undo_stack.setClean()
    window.training.controller.shutdown()
    window.close()
    return written


if __name__ == "__main__":
    print(*main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"), sep="\n")
