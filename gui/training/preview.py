"""The data preview window: sample images per class with their counts, augmentation, a table's first rows.

It draws ``engine.preview.preview_data`` of the bundle the controller has loaded; when nothing is loaded yet
it asks the controller to load the chosen data (off the UI thread, the same loading as Load data) and
draws once the data arrives.
"""
from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QLabel,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.errors import LayerStudioError
from engine.preview import SPLITS, DataPreview, preview_data

THUMBNAIL = 56          # pixels per side a sample image is drawn at
SPLIT_WORDS = {"train": "train", "val": "validation", "test": "test"}


def pixmap_of(image: np.ndarray, side: int = THUMBNAIL) -> QPixmap:
    """A uint8 (H, W, C) array as a pixmap ``side`` pixels high: small images keep sharp pixels."""
    height, width, channels = image.shape
    data = np.ascontiguousarray(image if channels == 3 else image[..., 0])
    fmt = QImage.Format.Format_RGB888 if channels == 3 else QImage.Format.Format_Grayscale8
    qimage = QImage(data.data, width, height, data.strides[0], fmt).copy()   # copy: owns its pixels
    mode = Qt.TransformationMode.FastTransformation if height < side else Qt.TransformationMode.SmoothTransformation
    return QPixmap.fromImage(qimage.scaled(side * width // height, side, Qt.AspectRatioMode.KeepAspectRatio, mode))


def counts_text(preview: DataPreview, index: int | None) -> str:
    """``train 353 · validation 47 · test 100`` for one class (or all samples), leaving out empty splits."""
    parts = []
    for split in SPLITS:
        counts = preview.counts.get(split) or []
        count = counts[index] if index is not None and index < len(counts) else sum(counts)
        if count or split == "train":
            parts.append(f"{SPLIT_WORDS[split]} {count:,}")
    return " · ".join(parts)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class DataPreviewView(QWidget):
    """Draws one DataPreview; ``thumbnails`` maps each group title to its image labels (for tests)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body = QWidget()
        self.body_layout = QVBoxLayout(self.body)
        self.body_layout.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidget(self.body)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.header)
        layout.addWidget(scroll, 1)
        self.thumbnails: dict[str, list[QLabel]] = {}
        self.count_labels: dict[str, QLabel] = {}
        self.augment_rows: list[list[QLabel]] = []
        self.table: QTableWidget | None = None

    def show_text(self, text: str, error: bool = False) -> None:
        """A message instead of a preview (loading, or why there is none)."""
        self._clear()
        colour = "#b00020" if error else "#1f2328"
        self.header.setText(f"<span style='color:{colour}'>{html.escape(text)}</span>")

    def show_preview(self, preview: DataPreview) -> None:
        self._clear()
        notes = "".join(f"<br><span style='color:#7a5a00'>Note: {html.escape(note)}</span>" for note in preview.notes)
        self.header.setText(f"<b>{html.escape(preview.summary)}</b>{notes}")
        if preview.class_names or preview.groups:
            self.body_layout.addWidget(self._section("Samples per class" if preview.class_names else "Samples"))
            self.body_layout.addWidget(self._class_grid(preview))
        if preview.originals is not None:
            self.body_layout.addWidget(self._section(
                f"Augmentation while training: {preview.augment_text} "
                f"(each row: a training image, then what augmentation made of it)"))
            self.body_layout.addWidget(self._augment_grid(preview))
        if preview.columns:
            self.body_layout.addWidget(self._section(f"First {len(preview.rows)} training rows"))
            self.table = self._table(preview)
            self.body_layout.addWidget(self.table)
        self.body_layout.addStretch(1)

    # -- parts
    def _clear(self) -> None:
        while self.body_layout.count():
            item = self.body_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.thumbnails, self.count_labels, self.augment_rows, self.table = {}, {}, [], None

    @staticmethod
    def _section(title: str) -> QLabel:
        label = QLabel(f"<b>{html.escape(title)}</b>")
        label.setWordWrap(True)
        label.setContentsMargins(0, 8, 0, 2)
        return label

    def _class_grid(self, preview: DataPreview) -> QWidget:
        grid_widget = QWidget()
        grid = QGridLayout(grid_widget)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(4)
        titles = preview.class_names or [title for title, _images in preview.groups]
        images = dict(preview.groups)
        for row, title in enumerate(titles):
            index = row if preview.class_names else None
            label = QLabel(f"<b>{html.escape(title)}</b><br><span style='color:#57606a'>"
                           f"{html.escape(counts_text(preview, index))}</span>")
            label.setMinimumWidth(150)
            grid.addWidget(label, row, 0)
            self.count_labels[title] = label
            self.thumbnails[title] = []
            for column, image in enumerate(images.get(title, ())):
                thumbnail = QLabel()
                thumbnail.setPixmap(pixmap_of(image))
                grid.addWidget(thumbnail, row, column + 1)
                self.thumbnails[title].append(thumbnail)
        grid.setColumnStretch(grid.columnCount(), 1)
        return grid_widget

    def _augment_grid(self, preview: DataPreview) -> QWidget:
        grid_widget = QWidget()
        grid = QGridLayout(grid_widget)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(4)
        for row, (original, versions) in enumerate(zip(preview.originals, preview.augmented, strict=True)):
            labels = []
            for column, image in enumerate([original, *versions]):
                label = QLabel()
                label.setPixmap(pixmap_of(image))
                grid.addWidget(label, row, column + (1 if column else 0))
                labels.append(label)
            arrow = QLabel("→")
            arrow.setAlignment(Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(arrow, row, 1)
            self.augment_rows.append(labels)
        grid.setColumnStretch(grid.columnCount(), 1)
        return grid_widget

    @staticmethod
    def _table(preview: DataPreview) -> QTableWidget:
        table = QTableWidget(len(preview.rows), len(preview.columns))
        table.setHorizontalHeaderLabels(preview.columns)
        for row, values in enumerate(preview.rows):
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                if _is_number(value):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                table.setItem(row, column, item)
        table.resizeColumnsToContents()
        table.setMinimumHeight(min(420, table.horizontalHeader().height() + 26 * (len(preview.rows) + 1)))
        return table


class DataPreviewDialog(QDialog):
    """A window beside the main one showing the chosen data; follows the controller's loading."""

    def __init__(self, controller, parent=None):
        super().__init__(parent)
        self.controller = controller
        self.setWindowTitle("Data preview")
        self.resize(820, 640)
        self.view = DataPreviewView()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addWidget(buttons)
        self._waiting = False
        controller.dataLoaded.connect(self._loaded)
        controller.dataFailed.connect(self._failed)
        controller.dataStopped.connect(self._failed)
        controller.dataLoading.connect(self._loading)

    def refresh(self) -> None:
        """Show the chosen data: at once when it is loaded, otherwise once the controller has loaded it."""
        try:
            config = self.controller.data_config()
        except LayerStudioError as exc:
            self.view.show_text(f"The data settings have an error: {exc}", error=True)
            return
        bundle = self.controller.cached_data(config)
        if bundle is not None:
            self._waiting = False
            self.view.show_preview(preview_data(bundle))
            return
        self._waiting = True
        if self.controller.busy:
            self.view.show_text("The data is loading for the run: the preview follows once it is loaded.")
        elif self.controller.load_data():
            self.view.show_text("Loading the data…")

    def _loaded(self, bundle) -> None:
        if self._waiting or self.isVisible():
            self._waiting = False
            self.view.show_preview(preview_data(bundle))

    def _failed(self, text: str) -> None:
        if self._waiting:
            self._waiting = False
            self.view.show_text(text, error=True)

    def _loading(self, _fraction: float, text: str) -> None:
        if self._waiting:
            self.view.show_text(text)
