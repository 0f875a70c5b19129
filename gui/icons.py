"""Icons: SVG files from resources/icons, plus small painted markers for categories and errors.

Painted icons need no icon theme, so they look the same on every platform
and offscreen (screenshots, tests).
"""
from __future__ import annotations

from functools import cache

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPainterPath, QPen, QPixmap

from resources import ROOT

ICONS = ROOT / "icons"

CATEGORY_COLORS = {
    "Input": "#5f6b7a",
    "Core": "#3b82c4",
    "Convolution": "#2f9e6e",
    "Pooling": "#1f8a99",
    "Normalization": "#8a63c9",
    "Dropout": "#9a7b4f",
    "Activation": "#d9822b",
    "Recurrent": "#c9509a",
    "Blocks": "#4b5fc1",
}
ERROR_COLOR = "#d32f2f"
WARNING_COLOR = "#b7791f"
SIZE = 16


@cache
def icon(name: str) -> QIcon:
    """resources/icons/<name>.svg, or an empty icon if there is none."""
    path = ICONS / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


def _canvas(scale: int = 2) -> tuple[QPixmap, QPainter]:
    pixmap = QPixmap(SIZE * scale, SIZE * scale)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.scale(scale, scale)
    return pixmap, painter


@cache
def category_icon(category: str) -> QIcon:
    """A rounded square in the category's colour."""
    pixmap, painter = _canvas()
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(CATEGORY_COLORS.get(category, "#777777")))
    painter.drawRoundedRect(QRectF(3, 3, 10, 10), 2.5, 2.5)
    painter.end()
    return QIcon(pixmap)


def _mark(painter: QPainter, text: str, center_y: float) -> None:
    font = QFont()
    font.setBold(True)
    font.setPixelSize(11)
    painter.setFont(font)
    painter.setPen(QPen(QColor("white")))
    painter.drawText(QRectF(0, center_y - 8, SIZE, 16), Qt.AlignmentFlag.AlignCenter, text)


@cache
def error_icon() -> QIcon:
    """A red disc with '!'."""
    pixmap, painter = _canvas()
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(ERROR_COLOR))
    painter.drawEllipse(QRectF(1.5, 1.5, 13, 13))
    _mark(painter, "!", 8)
    painter.end()
    return QIcon(pixmap)


@cache
def warning_icon() -> QIcon:
    """An amber triangle with '!'."""
    pixmap, painter = _canvas()
    path = QPainterPath(QPointF(8, 1.5))
    path.lineTo(15, 14.5)
    path.lineTo(1, 14.5)
    path.closeSubpath()
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor("#e0a100"))
    painter.drawPath(path)
    _mark(painter, "!", 9.5)
    painter.end()
    return QIcon(pixmap)
