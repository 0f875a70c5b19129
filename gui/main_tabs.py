"""The main window's central tabs (Design, Code, Training, …): a tab widget whose pages scroll."""
from __future__ import annotations

from PySide6.QtWidgets import QFrame, QScrollArea, QTabWidget, QWidget


class MainTabs(QTabWidget):
    """The central tabs. Each page sits in a scroll area, so a page wider than the space left
    between the docks scrolls instead of forcing the window wider than the screen; the page
    accessors (widget, currentWidget, indexOf, setCurrentWidget) deal in the pages themselves."""

    def add_page(self, page: QWidget, title: str) -> int:
        scroll = QScrollArea()
        scroll.setObjectName("pageScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(page)
        return self.addTab(scroll, title)

    @staticmethod
    def _page(holder: QWidget | None) -> QWidget | None:
        return holder.widget() if isinstance(holder, QScrollArea) and holder.objectName() == "pageScroll" else holder

    def widget(self, index: int) -> QWidget | None:
        return self._page(super().widget(index))

    def currentWidget(self) -> QWidget | None:
        return self._page(super().currentWidget())

    def indexOf(self, page: QWidget) -> int:
        for index in range(self.count()):
            if self.widget(index) is page or super().widget(index) is page:
                return index
        return -1

    def setCurrentWidget(self, page: QWidget) -> None:
        index = self.indexOf(page)
        if index >= 0:
            self.setCurrentIndex(index)

