"""Two input rules for the whole application, in one event filter so that every widget follows them.

- The mouse wheel changes a spin box or a combo box only while it has keyboard focus (click or
  Tab into it first). Otherwise the wheel scrolls the panel around it, so scrolling down a
  settings column never changes a setting on the way. The wheel also never gives them focus.
- Undo and redo keys (Ctrl+Z, Ctrl+Shift+Z, Ctrl+Y) go to a text field only when the field has
  typing of its own to undo or redo; otherwise they reach the window's Undo/Redo, wherever the
  focus is.
"""
from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt
from PySide6.QtGui import QKeySequence, QWheelEvent
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

WHEEL_GUARDED = (QAbstractSpinBox, QComboBox)  # widgets whose value the wheel changes
WHEEL, SHORTCUT_OVERRIDE, POLISH = QEvent.Type.Wheel, QEvent.Type.ShortcutOverride, QEvent.Type.Polish
UNDO, REDO = QKeySequence.StandardKey.Undo, QKeySequence.StandardKey.Redo


class InputPolicy(QObject):
    """The application's event filter for the rules above (installed by ``install_input_policy``)."""

    def eventFilter(self, watched, event) -> bool:
        kind = event.type()
        if kind == WHEEL:
            return isinstance(watched, WHEEL_GUARDED) and not watched.hasFocus() and scroll_instead(watched, event)
        if kind == SHORTCUT_OVERRIDE:
            return _pass_undo_to_window(watched, event)
        if kind == POLISH and isinstance(watched, WHEEL_GUARDED) and watched.focusPolicy() == Qt.FocusPolicy.WheelFocus:
            watched.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        return False


def install_input_policy(app: QCoreApplication) -> InputPolicy:
    """Install the rules once on ``app`` (a second call returns the installed filter)."""
    existing = app.findChild(InputPolicy)
    if existing is not None:
        return existing
    policy = InputPolicy(app)
    app.installEventFilter(policy)
    return policy


def scroll_instead(widget: QWidget, event: QWheelEvent) -> bool:
    """Give the wheel to the nearest enclosing scroll area that can still scroll; always True (taken)."""
    area = _enclosing_scroll_area(widget)
    while area is not None:
        viewport = area.viewport()
        forwarded = QWheelEvent(viewport.mapFromGlobal(event.globalPosition()), event.globalPosition(),
                                event.pixelDelta(), event.angleDelta(), event.buttons(), event.modifiers(),
                                event.phase(), event.inverted(), event.source(), event.pointingDevice())
        forwarded.setAccepted(False)
        QCoreApplication.sendEvent(viewport, forwarded)
        if forwarded.isAccepted():  # the scroll bar moved
            break
        area = _enclosing_scroll_area(area)
    return True


def _enclosing_scroll_area(widget: QWidget) -> QAbstractScrollArea | None:
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QAbstractScrollArea):
        parent = parent.parentWidget()
    return parent


def _pass_undo_to_window(watched, event) -> bool:
    """Refuse an undo/redo key to a text field that has nothing of its own to undo/redo, so the
    shortcut (the window's Undo/Redo) gets it; the field keeps the keys while it has typing to undo."""
    undo = event.matches(UNDO)
    if not undo and not event.matches(REDO):
        return False
    focus = QApplication.focusWidget()
    field = _text_field(focus if focus is not None else watched)
    if field is None or _has_own_step(field, undo):
        return False
    event.ignore()
    return True


def _text_field(widget) -> QWidget | None:
    """The widget holding the typed text of ``widget`` (a spin box's or editable combo's line edit)."""
    if isinstance(widget, QAbstractSpinBox):
        return widget.findChild(QLineEdit)
    if isinstance(widget, QComboBox):
        return widget.lineEdit()
    if isinstance(widget, (QLineEdit, QPlainTextEdit, QTextEdit)):
        return widget
    return None


def _has_own_step(field: QWidget, undo: bool) -> bool:
    if isinstance(field, QLineEdit):
        return field.isUndoAvailable() if undo else field.isRedoAvailable()
    if field.isReadOnly():
        return False
    document = field.document()
    return document.isUndoAvailable() if undo else document.isRedoAvailable()
