"""The Training tab's "Data" group: the data settings, Try it on the bundled sample, Preview data…,
Load data, what the chosen data is, and, when the design does not fit the loaded data, a note with
Fit design to data.

Kept apart from the run (gui/training/panel.py): what is here acts on the data choice and the design.
The panel keeps the data settings form in step with the design file (as it does the run settings),
derives the summary line with every other status line and sets it here.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from engine.errors import LayerStudioError
from gui.training.downloads import DownloadNote, confirm_download
from gui.training.fit import fit_design_to_data, fit_for, fit_problems, try_on_sample
from gui.training.preview import DataPreviewDialog
from gui.training.settings import ConfigForm
from gui.training.styles import ERROR_STYLE, NOTE_STYLE


class DataSection(QGroupBox):
    """The "Data" group around ``form`` (the data settings). ``dialog_parent`` (the Training tab) owns the
    dialogs it opens: the data preview and the question before a download."""

    fitted = Signal()  # Fit design to data ran (changed or not): the panel's lines follow

    def __init__(self, controller, form: ConfigForm, dialog_parent: QWidget):
        super().__init__("Data")
        self.controller = controller
        self.document = controller.document
        self.form = form
        self.dialog_parent = dialog_parent
        self.load_button = QPushButton("Load data")
        self.load_button.setToolTip("Load the chosen dataset now to see its size, shape and classes")
        self.download_note = DownloadNote(NOTE_STYLE)
        self.try_button = QPushButton("Try it on the bundled sample")
        self.try_button.setToolTip("Switch the data to the bundled MNIST sample and fit the design to it: input "
                                   "shape, classes, image size, no flips of digits (one undo step)")
        self.preview_button = QPushButton("Preview data…")
        self.preview_button.setToolTip("See sample images of every class, the class counts, the augmentation "
                                       "and a table's first rows")
        self.preview_dialog: DataPreviewDialog | None = None
        self._trying = False
        self.trial_note = QLabel()
        self.trial_note.setWordWrap(True)
        self.trial_note.hide()
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.fit_note = QLabel()
        self.fit_note.setWordWrap(True)
        self.fit_note.setStyleSheet(NOTE_STYLE)
        self.fit_button = QPushButton("Fit design to data")
        self.fit_button.setToolTip("Set the input shape to the data's and the last Linear's outputs to the number "
                                   "of classes (one undo step)")
        self.fit_box = QFrame()
        fit_layout = QVBoxLayout(self.fit_box)
        fit_layout.setContentsMargins(0, 0, 0, 0)
        fit_layout.addWidget(self.fit_note)
        fit_layout.addWidget(self.fit_button, 0, Qt.AlignRight)
        layout = QVBoxLayout(self)
        layout.addWidget(form)
        layout.addWidget(self.download_note)
        buttons = QHBoxLayout()
        buttons.addWidget(self.try_button)
        buttons.addStretch(1)
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.load_button)
        layout.addLayout(buttons)
        layout.addWidget(self.trial_note)
        layout.addWidget(self.summary)
        layout.addWidget(self.fit_box)
        self.load_button.clicked.connect(self.load_data)
        self.try_button.clicked.connect(self.try_sample)
        self.preview_button.clicked.connect(self.preview_data)
        self.fit_button.clicked.connect(self.fit_design)

    def refresh_download_note(self) -> None:
        self.download_note.refresh(self.form.values())

    def data_changed(self) -> None:
        """The data settings changed: the download note follows; the trial note stays only for Try's own change."""
        self.refresh_download_note()
        self.trial_note.setVisible(self._trying)   # the sentence belongs to the change that made it

    def set_busy(self, busy: bool) -> None:
        """A run or a loading is going: the buttons that would load other data are off."""
        self.load_button.setEnabled(not busy)
        self.try_button.setEnabled(not busy)

    def current_bundle(self):
        try:
            return self.controller.cached_data(self.controller.data_config())
        except LayerStudioError:
            return None

    def update_fit(self) -> None:
        bundle = self.current_bundle()
        problems = fit_problems(self.document.spec, bundle, self.document.analysis) if bundle is not None else []
        refusal = fit_for(self.document, bundle).refusal if problems else ""
        self.fit_note.setText(refusal or " ".join(problems))   # a refusal says what differs, and why it stays
        self.fit_box.setVisible(bool(problems))
        self.fit_button.setVisible(not refusal)
        self.fit_button.setEnabled(bool(problems) and not refusal and not self.document.read_only)

    def fit_design(self) -> bool:
        """The one-click fix: the design's input shape and outputs follow the loaded data."""
        bundle = self.current_bundle()
        changed = bundle is not None and fit_design_to_data(self.document, bundle)
        self.fitted.emit()
        return changed

    def try_sample(self) -> bool:
        """Try it on the bundled sample: the data and the design follow the sample in one undo step; the
        sentence under the buttons says what changed (or why the design cannot run on it)."""
        self._trying = True
        try:
            trial = try_on_sample(self.document)
        finally:
            self._trying = False
        self.trial_note.setText(trial.sentence)
        self.trial_note.setStyleSheet("" if trial.fit.ok else ERROR_STYLE)
        self.trial_note.show()
        return trial.changed

    def load_data(self) -> None:
        """Load data: after asking, the first time, before a download into the default data folder."""
        confirm_download(self.dialog_parent, self.form.values(), self.controller.load_data,
                         self.download_note.declined)

    def preview_data(self) -> DataPreviewDialog:
        """Open the data preview (loading the data first when needed, off the UI thread)."""
        if self.preview_dialog is None:
            self.preview_dialog = DataPreviewDialog(self.controller, self.dialog_parent)
        dialog = self.preview_dialog
        dialog.show()
        dialog.raise_()
        if self.current_bundle() is not None:
            dialog.refresh()
        else:
            confirm_download(self.dialog_parent, self.form.values(), dialog.refresh, lambda: dialog.view.show_text(
                "The dataset is not downloaded, so there is nothing to show yet."))
        return dialog
