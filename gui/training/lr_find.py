"""Find learning rate, on the Training tab: Smith's range test (engine.training.lr_finder) off the UI thread.

The sweep trains a copy of the model (the design's initialisation, or the loaded weights the next run would
start from) with a fresh optimizer on the data chosen for runs, so the weights and optimizer the window holds
stay as they were. It shows progress and Stop, then the loss against the learning rate on a log axis with the
suggestion marked (``plot``, which the panel shows in a tab beside the run's plots); **Use it** sets Learning
rate as one undo step. Nothing here runs beside a training run: the button is off during one, Train is off
during a sweep (``TrainingPanel.train_blocker``), and the Cost view (gui.cost_view) stops measuring while a
sweep runs.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from engine import data as engine_data
from engine.errors import LayerStudioError
from engine.spec import NetworkSpec
from engine.training import TrainConfig
from engine.training.config import LRFindConfig
from gui.summary import train_blocker
from gui.training import controller as states
from gui.training.provenance import design_key
from gui.training.styles import ERROR_STYLE, NOTE_STYLE
from gui.training.worker import JobWorker, reporting
from gui.widgets import FractionBar, message_label

STOPPED = "The learning-rate sweep stopped; Find learning rate starts it again."
FIND_TIP = ("Train a copy of the model for a few steps with a rising learning rate and suggest the rate where the "
            "loss falls fastest (the weights stay as they are)")
EARLIER = ("This curve is for the design, data or settings as they were before your last change: Find learning "
           "rate measures them as they are now.")
SWEEPING = "The learning-rate sweep is running: Stop it or wait for it to end."
SUGGESTION_COLOR = "#d32f2f"


@dataclass(frozen=True)
class SweepJob:
    """A frozen snapshot of what one sweep needs (``data`` when already loaded for ``data_config``)."""

    spec: NetworkSpec
    config: TrainConfig
    data_config: engine_data.DataConfig
    data: engine_data.DataBundle | None
    sweep: LRFindConfig
    weights: dict | None = None


class SweepWorker(JobWorker):
    """Loads the data if needed and runs the sweep; ``stop()`` (any thread) ends it between steps."""

    found = Signal(object)                # engine.training.lr_finder.LRFinding

    @Slot()
    def run(self) -> None:
        from engine.training.lr_finder import find_learning_rate

        job = self.job
        with reporting("finding the learning rate", self.failed.emit, self.finished.emit,
                       stopped=lambda: self.failed.emit(STOPPED)):
            data = self.job_data()
            sweep = job.sweep
            self.found.emit(find_learning_rate(job.spec, data, job.config, sweep.start_lr, sweep.end_lr, sweep.steps,
                                               sweep.smoothing, sweep.diverge_factor, task=self._task,
                                               weights=job.weights))


class LRFinderSection(QWidget):
    """The Training tab's learning-rate finder: the button, Stop, progress, what it found and Use it; its curve is
    ``plot``, placed by the panel."""

    changed = Signal()  # started, ended, found or failed (the panel refreshes Train's state; tests wait on it)
    curveShown = Signal()  # a sweep's curve is in ``plot`` (the panel places the plot and brings it forward)

    def __init__(self, controller, parent=None):
        super().__init__(parent)
        self.controller, self.document = controller, controller.document
        self.sweep = LRFindConfig()
        self.finding = None          # the last LRFinding shown
        self._finding_context = None  # what it was found for (see _context)
        self._sweeping_context = None
        self._worker: SweepWorker | None = None
        self.find_button = QPushButton("Find learning rate")
        self.find_button.setToolTip(FIND_TIP)
        self.find_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop sweep")
        self.stop_button.clicked.connect(self.stop)
        self.use_button = QPushButton("Use it")
        self.use_button.setToolTip("Set Learning rate to the suggestion (Ctrl+Z undoes it)")
        self.use_button.clicked.connect(self.use_suggestion)
        self.progress = FractionBar()
        self.message = message_label()
        self.message.hide()
        self.earlier_note = QLabel(EARLIER)
        self.earlier_note.setWordWrap(True)
        self.earlier_note.setStyleSheet(NOTE_STYLE)
        self.earlier_note.hide()
        self.plot = pg.PlotWidget(background="w")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setLogMode(x=True, y=False)
        self.plot.setLabel("bottom", "learning rate")
        self.plot.setLabel("left", "training loss")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.raw_curve = self.plot.plot([], [], pen=pg.mkPen("#b0bec5", width=1))
        self.smooth_curve = self.plot.plot([], [], pen=pg.mkPen("#1565c0", width=2))
        self.marker = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(SUGGESTION_COLOR, width=2),
                                      label="suggested", labelOpts={"position": 0.9, "color": SUGGESTION_COLOR,
                                                           "fill": (255, 255, 255, 200)})
        self.plot.addItem(self.marker)
        self.marker.hide()
        buttons = QHBoxLayout()
        for button in (self.find_button, self.stop_button):
            buttons.addWidget(button)
        buttons.addWidget(self.progress, 1)
        buttons.addStretch(1)
        result = QHBoxLayout()
        result.addWidget(self.message, 1)
        result.addWidget(self.use_button, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        layout.addLayout(buttons)
        layout.addLayout(result)
        layout.addWidget(self.earlier_note)
        controller.stateChanged.connect(self.refresh)
        self.document.extrasChanged.connect(self.refresh)
        self.document.changed.connect(self.refresh)
        self.refresh()

    @property
    def running(self) -> bool:
        return self._worker is not None

    # ------------------------------------------------------------------ state
    def blocker(self) -> str:
        """Why Find learning rate is off ('' when it is on)."""
        if self.running:
            return SWEEPING
        if self.controller.state == states.SEARCHING:
            return "A search is running (Search tab): the sweep would share the device. Wait for it to end."
        if self.controller.state != states.IDLE:
            return "A run is going: the sweep would share the device. Wait for it to end."
        return train_blocker(self.document.analysis)

    def refresh(self, *_args) -> None:
        blocker = self.blocker()
        self.find_button.setEnabled(not blocker)
        self.find_button.setToolTip(blocker if blocker and not self.running else FIND_TIP)
        self.earlier_note.setVisible(self.finding is not None and self._finding_context != self._context())
        self.stop_button.setEnabled(self.running)
        self.progress.setVisible(self.running)
        suggestion = self.finding.suggestion if self.finding is not None else None
        self.use_button.setVisible(suggestion is not None)
        self.use_button.setEnabled(suggestion is not None and not self.running and not self.document.read_only
                                   and self.controller.state == states.IDLE)

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet(ERROR_STYLE if error else "")
        self.message.setText(text)
        self.message.setVisible(bool(text))

    # ------------------------------------------------------------------ the sweep
    def start(self) -> bool:
        """Start a sweep of the design as it is, with the run's settings and data; False when it cannot."""
        if self.blocker():
            return False
        try:
            job = self._job()
        except LayerStudioError as exc:
            self._say(str(exc), error=True)
            return False
        worker = SweepWorker(job)
        worker.progress.connect(self._progress)
        worker.dataLoaded.connect(self.controller.use_data)
        worker.found.connect(self._found)
        worker.failed.connect(self._failed)
        worker.finished.connect(self._done)
        if not self.controller.launch_helper(worker, worker.stop):  # the window is closing
            return False
        self._worker = worker
        self._sweeping_context = self._context()
        self.progress.set_fraction(0.0)
        self._say("Sweeping the learning rate…")
        self.refresh()
        self.changed.emit()
        return True

    def _job(self) -> SweepJob:
        controller = self.controller
        spec = self.document.spec
        config, data_config = controller.train_config(), controller.data_config()
        weights = None  # loaded weights the next run starts from start the sweep too (a copy of them)
        if controller.initial_state is not None and controller.model_spec is not None and \
                design_key(controller.model_spec) == design_key(spec):
            weights = controller.initial_state
        return SweepJob(spec, config, data_config, controller.cached_data(data_config), self.sweep.validate(), weights)

    def _context(self) -> tuple:
        """What a sweep depends on: the design, the data choice and the settings but the learning rate (which
        the sweep sets itself, and Use it changes)."""
        extras = self.document.extras
        training = {k: v for k, v in (extras.get("training") or {}).items() if k != "lr"}
        return (design_key(self.document.spec), json.dumps(extras.get("data"), sort_keys=True, default=str),
                json.dumps(training, sort_keys=True, default=str))

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()

    @Slot(float, str)
    def _progress(self, fraction: float, text: str) -> None:
        self.progress.set_fraction(fraction)
        self._say(text)

    @Slot(object)
    def _found(self, finding) -> None:
        self.finding, self._finding_context = finding, self._sweeping_context
        self._show_curve(finding)
        lowest = finding.lowest
        ended = finding.stopped
        if finding.suggestion is None:
            self._say(f"{ended} {finding.problem}", error=True)
        else:
            low = f" The lowest smoothed loss was {lowest[1]:.4g} at {lowest[0]:.3g}." if lowest else ""
            self._say(f"Suggested learning rate: {self.suggested_value():g} (where the loss fell fastest).{low} "
                      f"{ended}")

    def suggested_value(self) -> float | None:
        """The suggestion to two significant digits, as the command line prints it."""
        if self.finding is None or self.finding.suggestion is None:
            return None
        return float(f"{self.finding.suggestion:.2g}")

    def _show_curve(self, finding) -> None:
        self.raw_curve.setData(list(finding.lrs), [v if math.isfinite(v) else math.nan for v in finding.losses])
        self.smooth_curve.setData(list(finding.lrs), list(finding.smoothed))
        if finding.suggestion is None:
            self.marker.hide()
        else:
            self.marker.show()  # first: a hidden label does not take its new text
            self.marker.label.setFormat(f"suggested {finding.suggestion:.2g}")
            self.marker.setValue(math.log10(finding.suggestion))  # the x axis is log10 of the rate
        if finding.smoothed:  # the start of the curve and its fall, not the explosion at its end
            values = sorted(finding.smoothed)
            top = max(finding.smoothed[: max(1, len(finding.smoothed) // 10)])
            self.plot.setYRange(values[0] - 0.05 * (top - values[0]), top * 1.15, padding=0)
            self.plot.setXRange(math.log10(finding.lrs[0]), math.log10(finding.lrs[-1]), padding=0.02)
        self.curveShown.emit()

    @Slot(str)
    def _failed(self, text: str) -> None:
        self._say(text, error=text != STOPPED)

    @Slot()
    def _done(self) -> None:
        if self._worker is self.sender():
            self._worker = None
        self.refresh()
        self.changed.emit()

    # ------------------------------------------------------------------ using it
    def use_suggestion(self) -> bool:
        """Set Learning rate to the suggestion, as one undo step of the design's undo stack."""
        value = self.suggested_value()
        if value is None or self.document.read_only:
            return False
        training = dict(self.document.extras.get("training") or {})
        training["lr"] = value
        self.document.set_extra("training", training, f"Use learning rate {value:g}")
        return True
