"""The graph view: the design drawn as boxes and arrows beside the layer stack (View > Graph View).

It keeps no copy of the design: after every ``document.changed`` it lays out ``document.spec`` and
``document.analysis`` again (gui/graph_layout.py) and redraws the scene, once for a burst of changes and
never while hidden. A click on a box selects that layer in the stack, and the stack's selection is
highlighted here. Ctrl+wheel, Ctrl+= and Ctrl+- zoom, Ctrl+0 fits the width; double-clicking a group's
title folds it into one box and back.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen, QPolygonF, QTransform
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
)

from engine.tree import ancestors
from gui.graph_layout import Box, Frame, Layout, Metrics, layout
from gui.icons import ERROR_COLOR
from gui.stack_model import INPUT_ID

ID_KEY = 0          # QGraphicsItem.data key holding the layer id a click selects
TITLE_KEY = 1       # ... holding the group id on a frame's title (a double-click folds the group)
LOOK_KEY = 2        # ... holding the key of a selectable box's or frame's usual look (GraphView._looks)
ZOOM_STEP = 1.25
ZOOM_RANGE = (0.1, 4.0)
CLICK_SLOP = 4      # pixels a press may move and still be a click

TEXT, MUTED, EDGE, SHORTCUT = QColor("#1f2933"), QColor("#66707a"), QColor("#5f6b7a"), QColor("#2f7d4f")
BOX_FILL, BOX_LINE = QColor("#ffffff"), QColor("#8792a2")
ERROR, ERROR_FILL = QColor(ERROR_COLOR), QColor("#fdecea")
SELECTED, SELECTED_FILL = QColor("#1e6fd9"), QColor("#e3eefc")
FRAME_FILLS = (QColor(75, 95, 193, 18), QColor(47, 158, 110, 20))  # alternate with the depth
FILLS = {"input": QColor("#eef1f4"), "output": QColor("#eef1f4"), "merge": QColor("#fff4de"),
         "auto": QColor("#e9f5ee"), "activation": QColor("#fff4de"), "fork": EDGE}
ARROW = 6.0


class GraphView(QGraphicsView):
    """Draws the open design; ``layerClicked(id)`` when a box or frame is clicked (INPUT_ID for the input)."""

    layerClicked = Signal(str)

    def __init__(self, document, parent=None):
        super().__init__(parent)
        self.setObjectName("graphView")
        self.document = document
        self.setScene(QGraphicsScene(self))
        self.scene().setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)  # rebuilt on every change
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setBackgroundBrush(QColor("#fbfbfc"))
        self.font_ = QFont(self.font())
        self.font_.setPointSizeF(self.font().pointSizeF() * 0.92)
        self.small_font = QFont(self.font())
        self.small_font.setPointSizeF(max(6.0, self.font().pointSizeF() * 0.85))
        self.title_font = QFont(self.font_)
        self.title_font.setBold(True)
        self.metrics = _metrics(self.font_, self.small_font, self.title_font)
        self.layout_: Layout | None = None
        self.collapsed: set[str] = set()
        self.selected: set[str] = set()
        self._current: str | None = None
        # The usual (pen, brush, is a box, has an error) of selectable items by look key. Items are found through the
        # scene, never kept: a Python reference to an item outliving its scene crashes when it is released.
        self._looks: dict[str, tuple] = {}
        self._stale = True
        self._fitted_loads = -1  # the document.loads the zoom was last fitted for
        self._press = None
        self._stack = None  # the stack view it follows (follow)
        self._fitting = True  # the zoom follows the view's width until the user zooms
        self._timer = QTimer(self, singleShot=True, interval=0)
        self._timer.timeout.connect(self.refresh)
        document.changed.connect(self.schedule)

    # ------------------------------------------------------------------ drawing
    def schedule(self) -> None:
        """Redraw once the current burst of changes is over; a hidden view redraws when it shows."""
        self._stale = True
        if self.isVisible():
            self._timer.start()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self._timer.start()

    def refresh(self) -> None:
        """Lay out the design and draw it now."""
        self._timer.stop()
        self._stale = False
        self.layout_ = layout(self.document.spec, self.document.analysis, self.collapsed, self.metrics)
        scene = self.scene()
        scene.clear()
        for frame in self.layout_.frames:
            self._draw_frame(frame)
        self._draw_edges(self.layout_)
        for box in self.layout_.boxes:
            self._draw_box(box)
        scene.setSceneRect(0, 0, self.layout_.width, self.layout_.height)
        self._paint_selection()
        if self._fitted_loads != self.document.loads:  # another design: fit its width
            self._fitted_loads = self.document.loads
            self.fit_width()
        elif self._fitting:
            self._fit()

    def _draw_frame(self, frame: Frame) -> None:
        scene = self.scene()
        rect = QRectF(frame.x, frame.y, frame.w, frame.h)
        line = ERROR if frame.error else BOX_LINE
        if frame.repeat > 1:  # copies stacked behind the frame
            for step in (2, 1):
                shadow = scene.addRect(rect.translated(4 * step, 4 * step), QPen(line, 1), QBrush(QColor("#ffffff")))
                shadow.setData(ID_KEY, frame.layer_id)
        item = scene.addRect(rect, QPen(line, 1.2 if frame.error else 1), QBrush(FRAME_FILLS[frame.depth % 2]))
        item.setData(ID_KEY, frame.layer_id)
        item.setToolTip(frame.tip)
        title = QGraphicsSimpleTextItem(frame.title, item)
        title.setFont(self.title_font)
        title.setBrush(ERROR if frame.error else TEXT)
        title.setPos(frame.x + frame.title_x, frame.y + 2)
        title.setData(TITLE_KEY, frame.layer_id)
        title.setToolTip(frame.tip + "\nDouble-click the title to fold the group")
        self._remember_look(item, f"frame {frame.depth % 2} {bool(frame.error)}", False, bool(frame.error))

    def _draw_edges(self, layout_: Layout) -> None:
        paths = {"flow": QPainterPath(), "shortcut": QPainterPath()}
        heads = {"flow": QPainterPath(), "shortcut": QPainterPath()}
        scene = self.scene()
        for edge in layout_.edges:
            path = paths[edge.role]
            points = [QPointF(x, y) for x, y in edge.points]
            path.moveTo(points[0])
            for point in points[1:]:
                path.lineTo(point)
            if edge.head:
                heads[edge.role].addPolygon(_arrow_head(points[-2], points[-1]))
            if edge.label:
                text = scene.addSimpleText(edge.label, self.small_font)
                text.setBrush(MUTED)
                text.setPos(*edge.label_at)
        for role, color in (("flow", EDGE), ("shortcut", SHORTCUT)):
            pen = QPen(color, 1.3)
            if role == "shortcut":
                pen.setStyle(Qt.PenStyle.DashLine)
            scene.addPath(paths[role], pen)
            scene.addPath(heads[role], QPen(color, 1), QBrush(color))

    def _draw_box(self, box: Box) -> None:
        scene = self.scene()
        rect = QRectF(box.x, box.y, box.w, box.h)
        fill = ERROR_FILL if box.error else FILLS.get(box.role, BOX_FILL)
        pen = QPen(ERROR if box.error else BOX_LINE, 1.5 if box.error else 1)
        if box.role == "fork" or box.label == "+":
            item: QGraphicsItem = scene.addEllipse(rect, pen, QBrush(fill))
        else:
            item = scene.addRect(rect, pen, QBrush(fill))
        layer_id = INPUT_ID if box.role == "input" else box.layer_id
        if layer_id is not None:
            item.setData(ID_KEY, layer_id)
        if box.tip:
            item.setToolTip(box.tip)
        if box.role in ("layer", "input"):
            self._remember_look(item, f"{box.role} {bool(box.error)}", True, bool(box.error))
        if box.label and box.role != "fork":
            text = QGraphicsSimpleTextItem(box.label, item)
            text.setFont(self.font_)
            text.setBrush(ERROR if box.error else TEXT)
            bounds = text.boundingRect()
            text.setPos(box.x + (box.w - bounds.width()) / 2, box.y + (box.h - bounds.height()) / 2)

    # ------------------------------------------------------------------ selection
    def show_selected(self, ids, current: str | None = None) -> None:
        """Highlight the boxes (or frames) of these layers and scroll to ``current`` (else the first)."""
        self.selected = set(ids) - {None}
        self._current = current if current is not None else next(iter(ids), None)
        self._paint_selection()
        rects = [item.sceneBoundingRect() for item, layer_id, _ in self._selectable() if layer_id == self._current]
        if self._current is not None and rects:
            rect = rects[0]
            self.ensureVisible(QRectF(rect.x(), rect.y(), min(rect.width(), 200), min(rect.height(), 120)), 20, 20)

    def _remember_look(self, item, key: str, is_box: bool, error: bool) -> None:
        self._looks.setdefault(key, (item.pen(), item.brush(), is_box, error))
        item.setData(LOOK_KEY, key)

    def _selectable(self):
        """(item, layer id, usual look) of every box and frame that shows a selection."""
        for item in self.scene().items():
            key = item.data(LOOK_KEY)
            if key is not None:
                yield item, item.data(ID_KEY), self._looks[key]

    def _paint_selection(self) -> None:
        for item, layer_id, (pen, brush, is_box, error) in self._selectable():
            chosen = layer_id in self.selected  # a selected error stays red, drawn thicker
            item.setPen(QPen(ERROR if error else SELECTED, 3 if error else 2.5) if chosen else pen)
            if is_box:
                item.setBrush(QBrush(SELECTED_FILL) if chosen and not error else brush)

    def follow(self, stack) -> None:
        """Keep in step with a stack view (gui/stack_view.py): a click here selects there, its selection shows here.
        Connected to methods, so nothing reaches this view once it is gone."""
        self._stack = stack
        stack.currentLayerChanged.connect(self._from_stack)
        stack.selectionModel().selectionChanged.connect(self._from_stack)
        self.layerClicked.connect(self._to_stack)

    def _from_stack(self, *_) -> None:
        ids = list(self._stack.selected_ids())
        current = self._stack.current_layer_id()
        self.show_selected(ids + ([current] if current is not None else []), current)

    def _to_stack(self, layer_id: str) -> None:
        """Select the clicked layer in the stack, else the innermost group around it that the stack shows."""
        if layer_id == INPUT_ID:
            self._stack.select_input()
            return
        for candidate in [layer_id, *reversed(ancestors(self.document.spec.layers, layer_id))]:
            self._stack.select_ids([candidate])
            if self._stack.current_layer_id() == candidate:
                return

    # ------------------------------------------------------------------ zoom
    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, scale: float) -> None:
        """Zoom to ``scale`` (1 = life size); the zoom then stays as chosen when the view is resized."""
        self._fitting = False
        self._scale(scale)

    def _scale(self, scale: float) -> None:
        scale = min(max(scale, ZOOM_RANGE[0]), ZOOM_RANGE[1])
        self.setTransform(QTransform.fromScale(scale, scale))

    def fit_width(self) -> None:
        """Show the whole width of the drawing (never larger than life) from its top, and keep it fitted as
        the view is resized until the user zooms."""
        self._fitting = True
        self._fit()
        self.verticalScrollBar().setValue(self.verticalScrollBar().minimum())

    def _fit(self) -> None:
        width = self.scene().sceneRect().width()
        available = self.viewport().width() - 4
        self._scale(min(1.0, available / width) if width > 0 else 1.0)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fitting:
            self._fit()

    def wheelEvent(self, event) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.set_zoom(self.zoom() * (ZOOM_STEP if event.angleDelta().y() > 0 else 1 / ZOOM_STEP))
            event.accept()
        else:
            super().wheelEvent(event)

    def keyPressEvent(self, event) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            key = event.key()
            if key in (Qt.Key.Key_Equal, Qt.Key.Key_Plus):
                self.set_zoom(self.zoom() * ZOOM_STEP)
                return
            if key == Qt.Key.Key_Minus:
                self.set_zoom(self.zoom() / ZOOM_STEP)
                return
            if key == Qt.Key.Key_0:
                self.fit_width()
                return
        super().keyPressEvent(event)

    # ------------------------------------------------------------------ clicks
    def mousePressEvent(self, event) -> None:
        self._press = event.position()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        press, self._press = self._press, None
        if press is not None and (event.position() - press).manhattanLength() <= CLICK_SLOP:
            layer_id = self._data_at(event.position(), ID_KEY)
            if layer_id is not None:
                self.layerClicked.emit(layer_id)

    def mouseDoubleClickEvent(self, event) -> None:
        group = self._data_at(event.position(), TITLE_KEY)
        if group is None:
            layer_id = self._data_at(event.position(), ID_KEY)
            group = layer_id if layer_id in self.collapsed else None
        if group is not None:
            self.toggle_group(group)
            return
        super().mouseDoubleClickEvent(event)

    def toggle_group(self, layer_id: str) -> None:
        """Fold a group into one box, or open it again."""
        self.collapsed ^= {layer_id}
        self.refresh()

    def _data_at(self, position, key: int):
        """The ``key`` data of the topmost item under a viewport position (or of the item it sits on)."""
        for item in self.items(position.toPoint()):
            while item is not None:
                value = item.data(key)
                if value is not None:
                    return value
                item = item.parentItem()
        return None


def _arrow_head(start: QPointF, end: QPointF) -> QPolygonF:
    """A small triangle at ``end`` pointing away from ``start``."""
    dx, dy = end.x() - start.x(), end.y() - start.y()
    length = max((dx * dx + dy * dy) ** 0.5, 1e-6)
    ux, uy = dx / length, dy / length
    back = QPointF(end.x() - ux * ARROW, end.y() - uy * ARROW)
    side = QPointF(-uy * ARROW / 2, ux * ARROW / 2)
    return QPolygonF([end, back + side, back - side, end])


def _metrics(font: QFont, small: QFont, title: QFont) -> Metrics:
    """The layout's text sizes from the view's fonts (each text measured once)."""
    box, label, bold = QFontMetricsF(font), QFontMetricsF(small), QFontMetricsF(title)
    cache: dict[tuple[int, str], float] = {}

    def measure(metrics: QFontMetricsF, which: int):
        def width(text: str) -> float:
            key = (which, text)
            if key not in cache:
                cache[key] = metrics.horizontalAdvance(text)
            return cache[key]
        return width

    return Metrics(measure(bold, 0), box.height(), measure(label, 1), label.height())
