"""The "Training" tab: data choice, run settings, Train/Pause/Stop, progress, status and live plots.

Every status text here is derived (gui/training/status.py): the event handlers record facts and
call ``refresh``, which recomputes all lines from the controller's state, the design, the data
choice and the last outcome; so nothing said about an earlier design, data or run stays behind.
The Data group's buttons and notes are in gui/training/data_section.py, the plots in plots.py.
"""
from __future__ import annotations

import html
import json
import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.data import DataConfig
from engine.errors import LayerStudioError
from engine.preflight import batch_size_problem
from engine.text import sentence
from engine.training import TrainConfig
from gui.icons import icon
from gui.summary import TRAIN_TIP, train_blocker
from gui.training import controller as states
from gui.training.data_section import DataSection
from gui.training.downloads import confirm_download
from gui.training.health_view import HealthView
from gui.training.lr_find import SWEEPING, LRFinderSection
from gui.training.plots import TrainingPlots
from gui.training.provenance import design_key, weights_note
from gui.training.recovery import CheckpointOption
from gui.training.run_names import run_settings
from gui.training.settings import ConfigForm, parsed_settings
from gui.training.status import (
    EVALUATING_NOW,
    FAILURE_HINTS,
    FAILURE_TITLES,
    SEARCH_GOING,
    Lines,
    Outcome,
    RunProgress,
    run_info,
)
from gui.training.styles import ERROR_STYLE, NOTE_STYLE
from gui.widgets import FractionBar, LabelStack

SETTINGS_PROBLEM = "The settings have an error (shown in red under Settings): fix it first."
RUN_GOING = "A run is going: Stop it (Shift+F5) or wait for it to end."
DATA_LOADING = "The data is loading: wait for it, or Stop (Shift+F5) ends the loading."
SWEEP_TAB = 2  # the tab of the learning-rate sweep's curve, after the curves and the health
PROGRESS_REFRESH_S = 0.5  # the progress bar and line show a batch at most twice a second (each repaints at once),
# and the status lines an epoch (shorter epochs are shown together, the latest one within this time)


class TrainingPanel(QWidget):
    """Everything needed to run the design: data, settings, controls, progress and live plots."""

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.document = controller.document
        self.failure_dialog: QMessageBox | None = None
        # facts the status lines are computed from (see refresh)
        self.progress_state = RunProgress()
        self._loading: tuple[float, str] | None = None  # the latest step of the data loading under way
        self._loading_key: str | None = None             # the data settings being loaded
        self._data_problems: dict[str | None, str] = {}  # data settings -> why they did not load (rich text)
        self._last_epoch = ""                            # the running job's latest epoch line
        self._outcome: Outcome | None = None             # how the last attempt ended, and with what
        self.run_buttons: list[QAbstractButton] = []     # buttons that show the run state (the footer's Train too)
        self._progress_shown = float("-inf")  # time.monotonic() of the last batch shown in the progress line
        self._epoch_shown = float("-inf")     # ... and of the last epoch shown in the status lines
        self._epoch_timer = QTimer(self, singleShot=True)  # shows the latest of epochs that came too fast
        self._epoch_timer.timeout.connect(self._show_epoch)
        self._build_actions()
        self._build_ui()
        self._connect()
        self._load_forms_from_document()
        self.refresh()

    # ------------------------------------------------------------------ building
    def _build_actions(self) -> None:
        def action(text, shortcut, tip, slot):
            act = QAction(text, self)
            act.setShortcut(QKeySequence(shortcut))
            act.setShortcutContext(Qt.WindowShortcut)
            act.setStatusTip(tip)  # what it does (the help lists it); the tooltip may say why it is off
            act.setToolTip(f"{tip} ({QKeySequence(shortcut).toString(QKeySequence.NativeText)})")
            act.triggered.connect(slot)
            self.addAction(act)
            return act

        # Train: the same action as the footer's Train button (one name, one state, one reason when off)
        self.start_action = action("Train", "F5", TRAIN_TIP.removesuffix(" (F5)"), self._start)
        self.train_icon = icon("train")  # shown while Train can start a run
        self.pause_action = action("Pause", "F6", "Pause or resume the run between batches",
                                   self.controller.toggle_pause)
        self.stop_action = action("Stop", "Shift+F5", "Stop the run at the next batch, then evaluate it on the "
                                  "test set", lambda: self.controller.stop())  # not triggered's checked as evaluate
        self.actions_ = (self.start_action, self.pause_action, self.stop_action)

    def _build_ui(self) -> None:
        # left: data and settings, scrollable
        self.data_form = ConfigForm(DataConfig)
        self.data_section = DataSection(self.controller, self.data_form, self)

        self.train_form = ConfigForm(TrainConfig)
        self.settings_error = QLabel()
        self.settings_error.setWordWrap(True)
        self.settings_error.setStyleSheet(ERROR_STYLE)
        self.settings_error.hide()
        settings_box = QGroupBox("Settings")
        settings_layout = QVBoxLayout(settings_box)
        settings_layout.addWidget(self.train_form)
        settings_layout.addWidget(self.settings_error)
        self.checkpoint_option = CheckpointOption(self.document)
        settings_layout.addWidget(self.checkpoint_option)

        self.read_only_note = QLabel("Training is running: the design is read-only until the run ends.")
        self.read_only_note.setWordWrap(True)
        self.read_only_note.setStyleSheet(NOTE_STYLE)
        self.read_only_note.hide()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        # atop the settings, not above the plots: a note coming and going with each run would shift the plots
        # (a relayout and a full repaint of every plot as the run starts and as it ends)
        left_layout.addWidget(self.read_only_note)
        left_layout.addWidget(self.data_section)
        left_layout.addWidget(settings_box)
        left_layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidget(left)
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll_bar_width = self.scroll.verticalScrollBar().sizeHint().width()
        self.scroll.setMinimumWidth(left.minimumSizeHint().width() + scroll_bar_width + 4)

        # right: controls, progress, status, plots
        self.start_button, self.pause_button, self.stop_button = (self._tool_button(a) for a in self.actions_)
        self.run_buttons = [self.start_button, self.pause_button, self.stop_button]
        self.start_button.setProperty("primary", True)
        self.progress = FractionBar()
        self.progress_label = QLabel()
        self.progress_label.setWordWrap(True)  # long texts wrap instead of widening the tab
        controls = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.stop_button):
            controls.addWidget(button)
        controls.addSpacing(8)
        controls.addWidget(self.progress, 1)
        self.run_info = QLabel()
        self.run_info.setWordWrap(True)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.stale_note = QLabel()  # trained weights of a design edited since
        self.stale_note.setWordWrap(True)
        self.stale_note.setStyleSheet(NOTE_STYLE)
        self.stale_note.hide()
        self.plots = TrainingPlots()
        self.lr_finder = LRFinderSection(self.controller)
        self.health_view = HealthView()
        self.views = QTabWidget()  # the curves, and each layer's health beside them
        self.views.setDocumentMode(True)
        self.views.addTab(self.plots, "Loss and accuracy")
        self.views.addTab(self.health_view, "Health")
        self.views.setTabToolTip(1, "Each layer's gradients, updates, activations, dead and saturated units over the "
                                    "run, with advice")

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addLayout(controls)
        right_layout.addWidget(LabelStack(self.progress_label, self.run_info, self.status_label,
                                          spacing=right_layout.spacing()))
        right_layout.addWidget(self.stale_note)
        right_layout.addWidget(self.lr_finder)
        # the run's curves, each layer's health and the learning-rate sweep's curve share the space, a tab each
        # (the sweep's shows once there is a curve; a sweep's end brings it forward, a run's start the curves)
        self.views.addTab(self.lr_finder.plot, "Learning-rate sweep")
        self.views.setTabVisible(SWEEP_TAB, False)
        self.lr_finder.curveShown.connect(self._show_sweep_curve)
        right_layout.addWidget(self.views, 1)

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
        button.setObjectName("runButton")
        button.setDefaultAction(action)
        button.setToolButtonStyle(Qt.ToolButtonTextOnly)
        button.setMinimumWidth(72)
        return button

    def _connect(self) -> None:
        c = self.controller
        c.stateChanged.connect(self._state_changed)
        c.dataLoading.connect(self._data_loading)
        c.dataLoaded.connect(self._data_loaded)
        c.dataFailed.connect(lambda text: self._data_problem(f"<span style='color:#b00020'>{html.escape(text)}</span>"))
        c.dataStopped.connect(lambda text: self._data_problem(html.escape(text)))
        c.runStarted.connect(self._run_started)
        c.batchEnded.connect(self._batch_ended)
        c.healthSampled.connect(self.health_view.add_sample)
        c.epochEnded.connect(self._epoch_ended)
        c.runEnded.connect(self._run_ended)
        c.finished.connect(self._finished)
        c.modelChanged.connect(self.refresh)
        self.lr_finder.changed.connect(self.refresh)
        self.data_section.fitted.connect(self.refresh)
        self.data_form.edited.connect(lambda values: self._save_form("data", values))
        self.train_form.edited.connect(lambda values: self._save_form("training", values))
        doc = self.document
        doc.changed.connect(self.refresh)
        doc.readOnlyChanged.connect(self._read_only_changed)
        doc.extrasChanged.connect(self._extras_changed)

    # ------------------------------------------------------------------ settings <-> document
    def _load_forms_from_document(self) -> None:
        self.data_form.set_values(self.document.extras.get("data") or {})
        self.train_form.set_values(self.document.extras.get("training") or {})
        self.data_section.refresh_download_note()

    def _extras_changed(self, key: str) -> None:
        form = {"data": self.data_form, "training": self.train_form}.get(key)
        if form is not None:
            saved = self.document.extras.get(key) or {}
            if {**form.defaults, **saved} != form.values():
                form.set_values(saved)
        if key == "data":
            self.data_section.data_changed()
        self.refresh()

    def _save_form(self, key: str, values: dict) -> None:
        self.document.set_extra(key, values)  # extrasChanged refreshes

    def settings_problems(self) -> list[str]:
        """What is wrong with the settings shown (each a sentence naming the field)."""
        problems = []
        for kind, form in ((TrainConfig, self.train_form), (DataConfig, self.data_form)):
            try:
                parsed_settings(kind, form.values())
            except LayerStudioError as exc:
                problems.append(str(exc))
        return problems

    # ------------------------------------------------------------------ data loading
    def _data_key(self) -> str | None:
        """The chosen data settings as a key (None when they do not parse)."""
        try:
            return self.controller.data_key(self.controller.data_config())
        except LayerStudioError:
            return None

    def _data_loading(self, fraction: float, text: str) -> None:
        self._loading = (fraction, text)
        if self.controller.state in (states.LOADING, states.EVALUATING):  # the line refresh would show
            self.progress.set_fraction(fraction)
            self.progress_label.setText(text)

    def _data_loaded(self, bundle) -> None:
        self._data_problems.pop(self._data_key(), None)
        self.data_section.refresh_download_note()   # a download just ended: nothing left to fetch
        self.refresh()

    def _data_problem(self, text: str) -> None:
        """The chosen data did not load (failed or stopped): said in the data area while that choice stays."""
        loading = self.controller.state == states.LOADING
        self._data_problems[self._loading_key if loading else self._data_key()] = text
        self.refresh()

    # ------------------------------------------------------------------ the derived state of every line
    def _context(self) -> tuple:
        """What an outcome was made with: the design, the data choice and the settings."""
        extras = self.document.extras
        return (design_key(self.document.spec),
                *(json.dumps(extras.get(key), sort_keys=True, default=str) for key in ("data", "training")))

    def train_blocker(self) -> str:
        """Why Train is off now ('' when it is on): the tooltip of both Train buttons."""
        if self.controller.state == states.LOADING and not self.controller.can_pause:  # Load data, not a run
            return DATA_LOADING
        if self.controller.state == states.EVALUATING:
            return EVALUATING_NOW
        if self.controller.state == states.SEARCHING:
            return SEARCH_GOING
        if self.controller.busy:
            return RUN_GOING
        if self.lr_finder.running:
            return SWEEPING
        return train_blocker(self.document.analysis) or (SETTINGS_PROBLEM if self.settings_problems() else "")

    def refresh(self, *_args) -> None:
        """Recompute every status line, the controls and the notes from the current state."""
        self._epoch_timer.stop()  # the latest epoch is shown now
        state = self.controller.state
        outcome = self._outcome if state == states.IDLE and self._outcome is not None and \
            self._outcome.context == self._context() else None
        data_key = self._data_key()
        lines = Lines.of(
            state=state, outcome=outcome, progress=self.progress_state, loading=self._loading,
            loading_run=self.controller.can_pause, ended=self.controller.last_result, last_epoch=self._last_epoch,
            blocker=self.train_blocker(), device=self.train_form.widget("device").currentText(),
            bundle=self.data_section.current_bundle(), data_problem=self._data_problems.get(data_key, ""),
            loading_this_data=state == states.LOADING and self._loading_key == data_key,
            stale=weights_note(self.controller.model_origin, self.document))
        self.progress_label.setText(lines.progress)
        self.progress.set_fraction(lines.fraction)
        self.status_label.setText(lines.status)
        self.run_info.setText(lines.run_info)
        self.data_section.summary.setText(lines.data)
        self.stale_note.setText(lines.stale)
        self.stale_note.setVisible(bool(lines.stale))
        problems = self.settings_problems()
        self.settings_error.setText("\n".join(problems))
        self.settings_error.setVisible(bool(problems))
        self._update_batch_note()
        self._update_controls()

    def _update_batch_note(self) -> None:
        """A warning under Batch size when it is below what the design's layers need (BatchNorm: 2)."""
        batch_size = self.train_form.values().get("batch_size")
        problem = batch_size_problem(self.document.analysis, batch_size) if isinstance(batch_size, int) else ""
        self.train_form.set_note("batch_size", problem)

    def _update_controls(self) -> None:
        state = self.controller.state
        busy = state != states.IDLE
        blocker = self.train_blocker()
        self.start_action.setEnabled(not blocker)
        name = "Training…" if busy else "Train"
        self.start_action.setText(name)
        self.start_action.setIconText(name)  # buttons show the icon text, which drops a trailing "…"
        icon = QIcon() if busy else self.train_icon
        if self.start_action.icon().cacheKey() != icon.cacheKey():  # setIcon re-lays out every button showing it
            self.start_action.setIcon(icon)
        self.start_action.setToolTip(blocker or TRAIN_TIP)
        self.pause_action.setEnabled(self.controller.can_pause or state == states.PAUSED)
        self.pause_action.setText("Resume" if state == states.PAUSED else "Pause")
        self.stop_action.setEnabled(self.controller.can_stop)
        for button in self.run_buttons:
            set_style_property(button, "runState", state)
        set_style_property(self.pause_button, "primary", state == states.PAUSED)  # Resume is what comes next
        self.data_form.setEnabled(not busy)
        self.train_form.setEnabled(not busy)
        self.checkpoint_option.setEnabled(not busy)
        self.data_section.set_busy(busy)
        self.read_only_note.setVisible(bool(self.document.read_only))
        self.data_section.update_fit()

    # ------------------------------------------------------------------ runs
    def _start(self) -> None:
        self.close_failure_dialog()
        if not self.settings_problems():
            confirm_download(self, self.data_form.values(), self.controller.start,
                             self.data_section.download_note.declined)

    def _state_changed(self, state: str) -> None:
        self.progress_state.set_paused(state == states.PAUSED)
        if state in (states.LOADING, states.EVALUATING):  # a new loading: its steps from now on
            self._loading, self._loading_key = None, self._data_key()
        self.refresh()

    def _read_only_changed(self, read_only: bool) -> None:
        """What the design being read-only decides here: its note and the Fit button. (The controller makes the
        design read-only as a run starts and ends, and the state change that follows refreshes the rest.)"""
        self.read_only_note.setVisible(read_only)
        self.data_section.update_fit()

    def _show_sweep_curve(self) -> None:
        self.views.setTabVisible(SWEEP_TAB, True)
        self.views.setCurrentIndex(SWEEP_TAB)

    def _run_started(self, event) -> None:
        if self.views.currentIndex() == SWEEP_TAB:  # the run's curves replace the sweep's; Health stays if chosen
            self.views.setCurrentWidget(self.plots)
        config = self.controller.run_config
        task = self.controller.data.task if self.controller.data is not None else "classification"
        if self.controller.resuming and self.plots.current is not None and \
                len(self.plots.current.series["train_loss"]) == event.start_epoch:
            self.plots.continue_run(event.epochs, event.steps_per_epoch)
        else:
            history = self.controller.resume_history if self.controller.resuming else None
            settings = run_settings(config.to_dict(), self.controller.data_config().to_dict(),
                                    design_key(self.document.spec))
            self.plots.begin_run("", task, history=history, steps_per_epoch=event.steps_per_epoch,
                                 epochs=event.epochs, settings=settings)
        self.health_view.begin_run(config.health)
        self.progress_state.begin(event)
        self.progress_state.set_paused(self.controller.state == states.PAUSED)
        self.refresh()

    def _batch_ended(self, event) -> None:
        self.plots.add_batch(event)
        progress = self.progress_state
        progress.update(event)
        state = self.controller.state
        if state not in (states.RUNNING, states.PAUSED):
            self.refresh()
            return
        now = time.monotonic()  # the one line that changes per batch, as refresh would say it; not too often
        if now - self._progress_shown < PROGRESS_REFRESH_S and progress.fraction < 1.0 and state == states.RUNNING:
            return  # (a paused run's last batch shows at once: nothing follows it until Resume)
        self._progress_shown = now
        self.progress.set_fraction(progress.fraction)
        self.progress_label.setText(progress.line(state == states.PAUSED))

    def _epoch_ended(self, event) -> None:
        self.plots.add_epoch(event)
        self._last_epoch = sentence_case(" · ".join(event.parts()))
        wait = PROGRESS_REFRESH_S - (time.monotonic() - self._epoch_shown)
        if wait > 0 and self.controller.state == states.RUNNING:
            if not self._epoch_timer.isActive():
                self._epoch_timer.start(int(1000 * wait))
            return
        self._show_epoch()

    def _show_epoch(self) -> None:
        self._epoch_shown = time.monotonic()
        self.refresh()

    def _run_ended(self, result) -> None:
        self.plots.end_run()
        self.refresh()

    def _finished(self, result) -> None:
        """The attempt ended (or was refused): its outcome stands while the design and settings stay as they were."""
        self.plots.end_run()
        progress = self.progress_state
        started = progress.started is not None
        self._outcome = Outcome(result, self._context(), run_info(progress.started) if started else "",
                                progress.fraction if started else 0.0)
        self.progress_state = RunProgress()
        self._last_epoch = ""
        if result.reason in FAILURE_TITLES:
            self.show_failure(result)
        self.refresh()

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


def sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def set_style_property(widget: QWidget, name: str, value) -> None:
    """Set a property the style sheet selects on (e.g. ``runState``: idle, running, paused…) and restyle."""
    if widget.property(name) != value:
        widget.setProperty(name, value)
        widget.style().unpolish(widget)
        widget.style().polish(widget)
