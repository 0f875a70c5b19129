"""The Search tab: an optuna search over the training settings and the design's knobs (engine.search).

The form says what to search (gui.search.space_form); Start search runs ``engine.search.run_search`` on a
frozen snapshot of the design, its settings and data in a worker thread of the training controller, which
holds the SEARCHING state meanwhile: Train, Evaluate, Load data and Find learning rate wait for the search,
and the search waits for them. Each trial's reports fill the table live; the best value so far, parallel
coordinates and parameter importance follow. **Apply best** sets the best trial's design and training settings
as one undo step.
"""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.errors import LayerStudioError
from engine.text import duration_text
from gui.search.plots import BestPlot, ImportancePlot, ParallelPlot, complete
from gui.search.space_form import OBJECTIVES, SpaceForm, log_names
from gui.search.trials import PARAMS_COLUMN, REASON_COLUMN, TrialsModel, format_number, format_params
from gui.search.worker import STOPPED, SearchEnd, SearchJob, SearchWorker
from gui.summary import train_blocker
from gui.training import controller as states
from gui.training.downloads import confirm_download
from gui.training.styles import ERROR_STYLE, NOTE_STYLE
from gui.widgets import FractionBar, message_label

SEARCHING = "The search is running: Stop search ends it after the batch in progress."
BUSY = {states.LOADING: "The data is loading: wait for it to end.",
        states.EVALUATING: "An evaluation is going (Results tab): wait for it to end.",
        states.SEARCHING: SEARCHING}
RUN_GOING = "A run is going: the search would share the device. Wait for it to end."
SWEEP_GOING = "The learning-rate sweep is running: the search would share the device. Wait for it to end."
START_TIP = "Run trials of the design with the chosen settings searched, on the Training tab's data"
REASON_WIDTH = 260  # pixels: the rest of a reason is in its tooltip
REDRAW_MS = 250  # reports arrive once per epoch of each trial: the plots redraw at most this often


class SearchView(QWidget):
    """The Search tab. ``changed`` is emitted when a search starts, reports or ends (tests wait on it)."""

    changed = Signal()

    def __init__(self, controller, sweep=None, parent=None):
        super().__init__(parent)
        self.setObjectName("searchView")
        self.controller, self.document, self.sweep = controller, controller.document, sweep
        self.job: SearchJob | None = None       # the search shown (running or ended)
        self.end: SearchEnd | None = None
        self._worker: SearchWorker | None = None
        self._started = 0.0
        self.form = SpaceForm(self.document)
        self.start_button = QPushButton("Start search")
        self.start_button.setObjectName("primaryButton")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop search")
        self.stop_button.clicked.connect(self.stop)
        self.apply_button = QPushButton("Apply best")
        self.apply_button.setToolTip("Set the design and training settings of the best trial (Ctrl+Z undoes it)")
        self.apply_button.clicked.connect(self.apply_best)
        self.progress = FractionBar()
        self.status = message_label()
        self.why_off = QLabel()  # why Start search is off, while it is
        self.why_off.setObjectName("searchBlocker")
        self.why_off.setWordWrap(True)
        self.why_off.setStyleSheet(NOTE_STYLE)
        self.best_label = message_label()

        self.trials = TrialsModel(self)
        self.table = QTableView()
        self.table.setObjectName("trialsTable")
        self.table.setModel(self.trials)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)  # one line a trial; a long reason or parameter list is elided, its tooltip whole
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(PARAMS_COLUMN, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(REASON_COLUMN, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(REASON_COLUMN, REASON_WIDTH)
        header.setStretchLastSection(False)

        self.best_plot, self.parallel_plot, self.importance_plot = BestPlot(), ParallelPlot(), ImportancePlot()
        self.plots = QTabWidget()
        self.plots.addTab(self.best_plot, "Best so far")
        self.plots.addTab(self.parallel_plot, "Parallel coordinates")
        self.plots.addTab(self.importance_plot, "Importance")

        buttons = QHBoxLayout()
        for button in (self.start_button, self.stop_button):
            buttons.addWidget(button)
        buttons.addWidget(self.progress, 1)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 8, 0)
        left_layout.addWidget(self.form, 1)
        left_layout.addLayout(buttons)
        left_layout.addWidget(self.why_off)
        left_layout.addWidget(self.status)
        best_row = QHBoxLayout()
        best_row.addWidget(self.best_label, 1)
        best_row.addWidget(self.apply_button, 0, Qt.AlignmentFlag.AlignTop)
        results = QSplitter(Qt.Orientation.Vertical)
        results.addWidget(self.table)
        results.addWidget(self.plots)
        results.setStretchFactor(0, 2)
        results.setStretchFactor(1, 3)
        results.setSizes([280, 420])
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(8, 0, 0, 0)
        right_layout.addLayout(best_row)
        right_layout.addWidget(results, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([430, 900])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.splitter)

        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(REDRAW_MS)
        self._redraw_timer.timeout.connect(self.redraw)
        self._clock = QTimer(self)  # the elapsed time and a time budget's progress, while a search runs
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._show_progress)
        self._complete_shown = -1  # complete trials the importance was computed for
        controller.stateChanged.connect(self.refresh)
        self.document.changed.connect(self.refresh)
        self.document.extrasChanged.connect(self.refresh)
        self.document.readOnlyChanged.connect(self.refresh)
        self.form.changed.connect(self.refresh)
        if sweep is not None:
            sweep.changed.connect(self.refresh)
        self.refresh()

    @property
    def running(self) -> bool:
        return self._worker is not None

    # ------------------------------------------------------------------ state
    def blocker(self) -> str:
        """Why Start search is off ('' when it is on)."""
        if self.running:
            return SEARCHING
        state = self.controller.state
        if state != states.IDLE:
            return BUSY.get(state, RUN_GOING)
        if self.sweep is not None and self.sweep.running:
            return SWEEP_GOING
        problem = train_blocker(self.document.analysis)
        if problem:
            return problem
        if self.form.problems():
            return "Fix the search settings marked in red first."
        return ""

    def refresh(self, *_args) -> None:
        blocker = self.blocker()
        self.start_button.setEnabled(not blocker)
        self.start_button.setToolTip(blocker or START_TIP)
        self.stop_button.setEnabled(self.running)
        self.progress.setVisible(self.running)
        self.form.setEnabled(not self.running)
        best = self.best_trial()
        self.apply_button.setVisible(best is not None)
        self.apply_button.setEnabled(best is not None and not self.document.read_only)
        if best is None:
            self.best_label.setText("The best trial shows here once a trial completes." if self.job else
                                    "Tick what to search, set the ranges and the budget, then Start search.")
        else:
            objective = OBJECTIVES[self.job.objective][0]
            self.best_label.setText(f"<b>Best: trial {best.number}</b>, {objective} {format_number(best.value)}"
                                    f"<br>{format_params(best.values)}")
        self.why_off.setText(blocker if blocker != SEARCHING else "")
        self.why_off.setVisible(bool(blocker) and not self.running)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet(ERROR_STYLE if error else "")
        self.status.setText(text)

    # ------------------------------------------------------------------ the search
    def start(self) -> bool:
        """Start a search of the design as it is; False when it cannot start now (asking to download first
        counts as starting: the search begins once the user answers Download)."""
        if self.blocker():
            self._say(self.blocker(), error=not self.running)
            return False
        try:
            job = self._job()
        except LayerStudioError as exc:
            self._say(str(exc), error=True)
            return False
        confirm_download(self, self.document.extras.get("data"), lambda: self._launch(job))
        return True

    def _job(self) -> SearchJob:
        controller, form = self.controller, self.form
        training = controller.train_config().to_dict()
        data_config = controller.data_config()
        trials, timeout_s = form.budget()
        name = self.document.name or Path(self.document.display_name()).stem
        return SearchJob(spec=self.document.spec, design_name=name, training=training, data_config=data_config,
                         space=form.space(), trials=trials, timeout_s=timeout_s, objective=form.objective(),
                         pruner=form.pruner(), data=controller.cached_data(data_config))

    def _launch(self, job: SearchJob) -> bool:
        if self.blocker():  # something started while the download question was open
            self._say(self.blocker(), error=True)
            return False
        worker = SearchWorker(job)
        worker.progress.connect(self._loading)
        worker.dataLoaded.connect(self.controller.use_data)
        worker.trialReported.connect(self._trial)
        worker.ended.connect(self._ended)
        worker.failed.connect(self._failed)
        worker.finished.connect(self._done)
        if not self.controller.launch_helper(worker, worker.stop, state=states.SEARCHING):
            return False
        self._worker, self.job, self.end = worker, job, None
        self._started = time.monotonic()
        self._complete_shown = -1
        self.trials.clear()
        self.redraw()
        self._say("Starting the search…")
        self._clock.start()
        self.refresh()
        self.changed.emit()
        return True

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._say("Stopping after the batch in progress…")

    @Slot(float, str)
    def _loading(self, fraction: float, text: str) -> None:
        self.progress.set_fraction(fraction)
        self._say(text)

    @Slot(object)
    def _trial(self, trial) -> None:
        self.trials.update(trial)
        self._show_progress()
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()
        self.refresh()
        self.changed.emit()

    def _show_progress(self) -> None:
        job = self.job
        if job is None or not self.running:
            return
        elapsed = time.monotonic() - self._started
        ended = sum(t.state != "running" for t in self.trials.trials)
        if job.trials:
            fraction, budget = ended / job.trials, f" of {job.trials}"
        else:
            fraction, budget = min(1.0, elapsed / job.timeout_s), f" ({duration_text(job.timeout_s)} budget)"
        self.progress.set_fraction(fraction)
        running = [t for t in self.trials.trials if t.state == "running"]
        now = f"; trial {running[-1].number} at epoch {running[-1].epoch}" if running else ""
        self._say(f"{ended} trial{'s' if ended != 1 else ''} done{budget}{now} · {duration_text(elapsed)}.")

    @Slot(object)
    def _ended(self, end: SearchEnd) -> None:
        self.end = end
        counts = {state: sum(t.state == state for t in self.trials.trials) for state in ("complete", "pruned",
                                                                                          "failed")}
        done = ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "no trial ended"
        how = STOPPED if end.stopped else "The search is done."
        self._say(f"{how} {done} in {duration_text(time.monotonic() - self._started)}.")

    @Slot(str)
    def _failed(self, text: str) -> None:
        self._say(text, error=True)

    @Slot()
    def _done(self) -> None:
        if self._worker is self.sender():
            self._worker = None
        self._clock.stop()
        self.redraw()
        self.refresh()
        self.changed.emit()

    # ------------------------------------------------------------------ plots
    def redraw(self) -> None:
        """Draw the plots from the trials so far; the importance only when a trial has completed since."""
        job, trials = self.job, self.trials.trials
        if job is None:
            return
        label, maximize = OBJECTIVES[job.objective]
        self.best_plot.show_trials(trials, label, maximize)
        self.parallel_plot.show_trials(trials, label, maximize, log_axes=log_names(job.space))
        count = len(complete(trials))
        if count != self._complete_shown:
            self._complete_shown = count
            self.importance_plot.show_trials(trials, log_names(job.space), maximize)

    # ------------------------------------------------------------------ the result
    def best_trial(self):
        if self.job is None:
            return None
        done = complete(self.trials.trials)
        if not done:
            return None
        maximize = OBJECTIVES[self.job.objective][1]
        return (max if maximize else min)(done, key=lambda t: t.value)

    def apply_best(self) -> bool:
        """Set the design and training settings of the best trial, as one undo step."""
        from engine.search import apply_params

        best = self.best_trial()
        if best is None or self.document.read_only:
            return False
        try:
            spec, training = apply_params(self.job.spec, dict(self.job.training), dict(best.params))
        except LayerStudioError as exc:  # a parameter this version does not know (a study of another version)
            self._say(str(exc), error=True)
            return False
        if not self.document.replace_design(spec, {"training": training}, f"Apply best trial {best.number}"):
            self._say("The design and settings already are those of the best trial.")
            return False
        self._say(f"Applied trial {best.number}: {format_params(best.values)}. Ctrl+Z takes it back.")
        return True
