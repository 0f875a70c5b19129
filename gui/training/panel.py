"""The "Training" tab: data choice, run settings, Start/Pause/Stop, progress, status and live plots."""
from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QFrame, QGroupBox, QHBoxLayout, QLabel, QMessageBox, QProgressBar, QPushButton,
                               QScrollArea, QSplitter, QToolButton, QVBoxLayout, QWidget)

from engine.data import DataConfig
from engine.errors import LayerStudioError
from engine.training import TrainConfig
from gui.training import controller as states
from gui.training.fit import fit_design_to_data, fit_problems
from gui.training.plots import TrainingPlots
from gui.training.run_names import run_settings
from gui.training.settings import DATA_FIELDS, TRAIN_FIELDS, ConfigForm

NOTE_STYLE = "QLabel { background: #fff4ce; color: #5c4300; border: 1px solid #e0c36a; border-radius: 3px; padding: 4px; }"
ERROR_STYLE = "QLabel { color: #b00020; }"
PROGRESS_REFRESH_S = 0.5  # the progress bar and line show a batch at most twice a second (each repaints at once)

FAILURE_TITLES = {
    "diverged": "Training diverged",
    "out_of_memory": "Out of memory",
    "error": "Training failed",
}
FAILURE_HINTS = {
    "diverged": "Lower the learning rate (Settings → Learning rate), or add gradient clipping, and start again.",
    "out_of_memory": "Lower the batch size (Settings → Batch size), or use a smaller design, and start again.",
    "error": "Fix the cause above and start again.",
}


def sentence(text: str) -> str:
    """The engine's message as a sentence: capital first letter, final full stop."""
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if not text or text.endswith((".", "!", "?")) else text + "."


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class RunProgress:
    """Epoch/step/ETA bookkeeping of the running job; paused time does not count toward the ETA."""

    def __init__(self):
        self.started = None
        self.total_steps = 1
        self.first_step = 0
        self.done_steps = 0
        self.active_seconds = 0.0
        self._since = None

    def begin(self, event) -> None:
        self.started = event
        self.first_step = event.start_epoch * event.steps_per_epoch
        self.total_steps = max((event.epochs - event.start_epoch) * event.steps_per_epoch, 1)
        self.done_steps = 0
        self.active_seconds = 0.0
        self._since = time.monotonic()

    def set_paused(self, paused: bool) -> None:
        if paused and self._since is not None:
            self.active_seconds += time.monotonic() - self._since
            self._since = None
        elif not paused and self._since is None and self.started is not None:
            self._since = time.monotonic()

    def update(self, event) -> None:
        self.done_steps = max(event.global_step - self.first_step, 0)

    @property
    def fraction(self) -> float:
        return min(self.done_steps / self.total_steps, 1.0)

    def eta(self) -> float | None:
        elapsed = self.active_seconds + (time.monotonic() - self._since if self._since is not None else 0.0)
        if self.done_steps <= 0:
            return None
        return elapsed / self.done_steps * (self.total_steps - self.done_steps)


class TrainingPanel(QWidget):
    """Everything needed to run the design: data, settings, controls, progress and live plots."""

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.document = controller.document
        self.failure_dialog: QMessageBox | None = None
        self.progress_state = RunProgress()
        self._progress_shown = float("-inf")  # time.monotonic() of the last batch shown in the progress line
        self._build_actions()
        self._build_ui()
        self._connect()
        self._load_forms_from_document()
        self._update_controls()
        self._update_fit()

    # ------------------------------------------------------------------ building
    def _build_actions(self) -> None:
        def action(text, shortcut, tip, slot):
            act = QAction(text, self)
            act.setShortcut(QKeySequence(shortcut))
            act.setShortcutContext(Qt.WindowShortcut)
            act.setToolTip(f"{tip} ({QKeySequence(shortcut).toString(QKeySequence.NativeText)})")
            act.triggered.connect(slot)
            self.addAction(act)
            return act

        self.start_action = action("Start", "F5", "Train the design on the chosen data", self._start)
        self.pause_action = action("Pause", "F6", "Pause or resume the run between batches",
                                   self.controller.toggle_pause)
        self.stop_action = action("Stop", "Shift+F5", "Stop the run at the next batch", self.controller.stop)
        self.actions_ = (self.start_action, self.pause_action, self.stop_action)

    def _build_ui(self) -> None:
        # left: data and settings, scrollable
        self.data_form = ConfigForm(DATA_FIELDS, DataConfig().to_dict())
        self.load_button = QPushButton("Load data")
        self.load_button.setToolTip("Load the chosen dataset now to see its size, shape and classes")
        self.data_summary = QLabel("Not loaded yet: Load data, or Start loads it.")
        self.data_summary.setWordWrap(True)
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
        data_box = QGroupBox("Data")
        data_layout = QVBoxLayout(data_box)
        data_layout.addWidget(self.data_form)
        data_layout.addWidget(self.load_button, 0, Qt.AlignRight)
        data_layout.addWidget(self.data_summary)
        data_layout.addWidget(self.fit_box)

        self.train_form = ConfigForm(TRAIN_FIELDS, TrainConfig().to_dict())
        self.settings_error = QLabel()
        self.settings_error.setWordWrap(True)
        self.settings_error.setStyleSheet(ERROR_STYLE)
        self.settings_error.hide()
        settings_box = QGroupBox("Settings")
        settings_layout = QVBoxLayout(settings_box)
        settings_layout.addWidget(self.train_form)
        settings_layout.addWidget(self.settings_error)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(data_box)
        left_layout.addWidget(settings_box)
        left_layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidget(left)
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.scroll.setMinimumWidth(left.minimumSizeHint().width() + self.scroll.verticalScrollBar().sizeHint().width() + 4)

        # right: controls, progress, status, plots
        self.start_button, self.pause_button, self.stop_button = (self._tool_button(a) for a in self.actions_)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress_label = QLabel("Ready")
        self.progress_label.setWordWrap(True)  # long texts wrap instead of widening the tab
        controls = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.stop_button):
            controls.addWidget(button)
        controls.addSpacing(8)
        controls.addWidget(self.progress, 1)
        self.run_info = QLabel(f"Device: {self.train_form.widget('device').currentText()}")
        self.run_info.setWordWrap(True)
        self.status_label = QLabel("Idle.")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.read_only_note = QLabel("Training is running: the design is read-only until the run ends.")
        self.read_only_note.setWordWrap(True)
        self.read_only_note.setStyleSheet(NOTE_STYLE)
        self.read_only_note.hide()
        self.plots = TrainingPlots()

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addLayout(controls)
        right_layout.addWidget(self.progress_label)
        right_layout.addWidget(self.run_info)
        right_layout.addWidget(self.status_label)
        right_layout.addWidget(self.read_only_note)
        right_layout.addWidget(self.plots, 1)

        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(self.scroll)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([430, 850])  # the settings column shows whole dataset names
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.splitter)

    @staticmethod
    def _tool_button(action: QAction) -> QToolButton:
        button = QToolButton()
        button.setDefaultAction(action)
        button.setToolButtonStyle(Qt.ToolButtonTextOnly)
        button.setMinimumWidth(72)
        return button

    def _connect(self) -> None:
        c = self.controller
        c.stateChanged.connect(self._state_changed)
        c.message.connect(self._show_message)
        c.dataLoading.connect(self._data_loading)
        c.dataLoaded.connect(self._data_loaded)
        c.dataFailed.connect(self._data_failed)
        c.runStarted.connect(self._run_started)
        c.batchEnded.connect(self._batch_ended)
        c.epochEnded.connect(self._epoch_ended)
        c.runEnded.connect(self._run_ended)
        c.finished.connect(self._finished)
        self.load_button.clicked.connect(c.load_data)
        self.fit_button.clicked.connect(self.fit_design)
        self.data_form.edited.connect(lambda values: self._save_form("data", values))
        self.train_form.edited.connect(lambda values: self._save_form("training", values))
        doc = self.document
        doc.changed.connect(self._update_fit)
        doc.readOnlyChanged.connect(self.read_only_note.setVisible)
        doc.extrasChanged.connect(self._extras_changed)

    # ------------------------------------------------------------------ settings <-> document
    def _load_forms_from_document(self) -> None:
        self.data_form.set_values(self.document.extras.get("data") or {})
        self.train_form.set_values(self.document.extras.get("training") or {})
        self._validate_settings()

    def _extras_changed(self, key: str) -> None:
        form = {"data": self.data_form, "training": self.train_form}.get(key)
        if form is not None:
            saved = self.document.extras.get(key) or {}
            if {**form.defaults, **saved} != form.values():
                form.set_values(saved)
            self._validate_settings()
            if key == "data":
                self._update_fit()

    def _save_form(self, key: str, values: dict) -> None:
        self.document.set_extra(key, values)
        self._validate_settings()

    def _validate_settings(self) -> bool:
        errors = []
        for parse, form in ((TrainConfig.from_dict, self.train_form), (DataConfig.from_dict, self.data_form)):
            try:
                parse(form.values())
            except LayerStudioError as exc:
                errors.append(str(exc))
        self.settings_error.setText("\n".join(errors))
        self.settings_error.setVisible(bool(errors))
        return not errors

    # ------------------------------------------------------------------ data and fit
    def _data_loading(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.progress_label.setText(text)

    def _data_loaded(self, bundle) -> None:
        classes = ""
        if bundle.num_classes:
            names = ", ".join(bundle.class_names[:10]) + (" …" if len(bundle.class_names) > 10 else "")
            classes = f"<br>Classes: {names}"
        self.data_summary.setText(f"{bundle.summary()}{classes}")
        self._update_fit()

    def _data_failed(self, text: str) -> None:
        self.data_summary.setText(f"<span style='color:#b00020'>{text}</span>")

    def current_bundle(self):
        try:
            return self.controller.cached_data(self.controller.data_config())
        except LayerStudioError:
            return None

    def _update_fit(self) -> None:
        bundle = self.current_bundle()
        problems = fit_problems(self.document.spec, bundle, self.document.analysis) if bundle is not None else []
        self.fit_note.setText(" ".join(problems))
        self.fit_box.setVisible(bool(problems))
        self.fit_button.setEnabled(bool(problems) and not self.document.read_only)

    def fit_design(self) -> bool:
        """The one-click fix: the design's input shape and outputs follow the loaded data."""
        bundle = self.current_bundle()
        changed = bundle is not None and fit_design_to_data(self.document, bundle)
        self._update_fit()
        return changed

    # ------------------------------------------------------------------ runs
    def _start(self) -> None:
        self.close_failure_dialog()
        if self._validate_settings():
            self.controller.start()
        else:
            self._show_message("The settings have an error (shown in red under Settings): fix it first.")

    def _state_changed(self, state: str) -> None:
        self.progress_state.set_paused(state == states.PAUSED)
        if state == states.PAUSED:
            self.progress_label.setText(self.progress_label.text() + " · paused")
        self._update_controls()

    def _update_controls(self) -> None:
        state = self.controller.state
        busy = state != states.IDLE
        self.start_action.setEnabled(not busy)
        self.pause_action.setEnabled(self.controller.can_pause or state == states.PAUSED)
        self.pause_action.setText("Resume" if state == states.PAUSED else "Pause")
        self.stop_action.setEnabled(self.controller.can_stop)
        self.data_form.setEnabled(not busy)
        self.train_form.setEnabled(not busy)
        self.load_button.setEnabled(not busy)
        self.read_only_note.setVisible(bool(self.document.read_only))
        self._update_fit()

    def _run_started(self, event) -> None:
        config = self.controller.run_config
        task = self.controller.data.task if self.controller.data is not None else "classification"
        if self.controller.resuming and self.plots.current is not None and \
                len(self.plots.current.series["train_loss"]) == event.start_epoch:
            self.plots.continue_run(event.epochs, event.steps_per_epoch)
        else:
            history = self.controller.resume_history if self.controller.resuming else None
            settings = run_settings(config.to_dict(), self.controller.data_config().to_dict(),
                                    states.design_key(self.document.spec))
            self.plots.begin_run("", task, history=history, steps_per_epoch=event.steps_per_epoch,
                                 epochs=event.epochs, settings=settings)
        self.progress_state.begin(event)
        self.progress.setValue(0)
        device = f"{event.device} — {event.device_name}" if event.device_name else event.device
        notes = "".join(f"<br>Note: {note}" for note in event.notes)
        self.run_info.setText(
            f"Device: <b>{device}</b> · {event.parameters:,} parameters · "
            f"{event.train_samples:,} train / {event.val_samples:,} validation samples{notes}")
        self.progress_label.setText(f"Epoch {event.start_epoch + 1}/{event.epochs} · starting…")

    def _batch_ended(self, event) -> None:
        self.plots.add_batch(event)
        progress = self.progress_state
        progress.update(event)
        now = time.monotonic()
        if now - self._progress_shown < PROGRESS_REFRESH_S and progress.fraction < 1.0:
            return
        self._progress_shown = now
        self.progress.setValue(int(progress.fraction * 1000))
        eta = progress.eta()
        parts = [f"Epoch {event.epoch}/{progress.started.epochs if progress.started else '?'}",
                 f"step {event.step}/{event.steps_per_epoch}",
                 f"ETA {format_duration(eta)}" if eta is not None else "ETA …",
                 f"{event.samples_per_s:,.0f} samples/s"]
        if self.controller.state == states.PAUSED:
            parts.append("paused")
        self.progress_label.setText(" · ".join(parts))

    def _epoch_ended(self, event) -> None:
        self.plots.add_epoch(event)
        text = " · ".join(event.parts())
        self.last_epoch_text = text[:1].upper() + text[1:]
        self._show_message(self.last_epoch_text)

    def _run_ended(self, result) -> None:
        self.plots.end_run()
        if result.reason in ("completed", "early_stopped", "stopped"):
            self.progress_label.setText("Evaluating on the test set…")

    def _finished(self, result) -> None:
        self.plots.end_run()
        head, message = self.finish_text(result)
        self.progress_label.setText(head)
        self._show_message(message)
        if result.reason in FAILURE_TITLES:
            self.show_failure(result)
        self._update_controls()

    @staticmethod
    def finish_text(result) -> tuple[str, str]:
        """A headline for the progress line and the engine's sentence (capitalised) for the status line."""
        epochs = f"{result.epochs_done} epoch{'s' if result.epochs_done != 1 else ''}"
        heads = {
            "completed": f"Finished: {epochs} trained; test results are in the Results tab.",
            "early_stopped": f"Stopped early after {epochs}; test results are in the Results tab.",
            "stopped": f"Stopped by you after {epochs}.",
            "diverged": "Diverged: the run ended.",
            "out_of_memory": "Out of memory: the run ended.",
            "error": "Failed: the run could not go on.",
        }
        message = result.message
        if result.reason == "stopped":
            message = message.split(";")[0]  # the engine's "run again to continue" means its own API
        return heads.get(result.reason, result.reason), sentence(message)

    def show_failure(self, result) -> QMessageBox:
        """A non-blocking dialog for a run that needs the user's action (diverged, out of memory, error)."""
        self.close_failure_dialog()
        box = QMessageBox(QMessageBox.Critical if result.reason == "error" else QMessageBox.Warning,
                          FAILURE_TITLES[result.reason], sentence(result.message or FAILURE_TITLES[result.reason]),
                          QMessageBox.Ok, self)
        box.setInformativeText(FAILURE_HINTS[result.reason])
        box.setAttribute(Qt.WA_DeleteOnClose, False)
        self.failure_dialog = box
        box.open()
        return box

    def close_failure_dialog(self) -> None:
        if self.failure_dialog is not None:
            self.failure_dialog.close()
            self.failure_dialog = None

    def _show_message(self, text: str) -> None:
        self.status_label.setText(text)
