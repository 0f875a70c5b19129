"""The Cost view: what one training step of the design costs, per layer, as extra columns of the layer stack.

View > Cost View (Ctrl+Shift+C) adds four columns to the stack (forward and backward milliseconds, the bytes
a layer saves for the backward pass, the bytes of its output), tints the largest rows' cells, and puts one
line in the summary ("Batch 64 on CPU: 23 MB, 4.1 ms a step"). The figures are ``engine.profile``'s, measured
on a worker thread with the Training tab's batch size, device and optimizer, never while a run, an evaluation
or a learning-rate sweep uses the device (a measurement under way stops when one starts). After an edit the
figures turn grey (stale) at once; the view measures again 300 ms after the last edit when the last
measurement was cheap (under half a second), else the summary line offers "Measure again". A design with an
error shows no figures at all.
"""
from __future__ import annotations

import html
import time

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QBrush, QColor, QFont, QKeySequence
from PySide6.QtWidgets import QLabel, QSizePolicy

from engine.errors import LayerStudioError
from engine.memory import format_bytes
from engine.profile_command import milliseconds
from engine.task import Task
from engine.training import TrainConfig
from gui.stack_model import ALIGNMENT, COL_NOTES, COLUMNS, DISPLAY, FONT, FOREGROUND, MUTED, RIGHT, TOOLTIP
from gui.summary import train_blocker
from gui.training import controller as states
from gui.training.provenance import design_key

COST_COLUMNS = (  # title, what the header's tooltip says
    ("Forward", "Milliseconds of the layer's forward pass in a training step (median of the timed steps)"),
    ("Backward", "Milliseconds of the layer's backward pass in a training step"),
    ("Saved", "Memory the layer keeps for the backward pass (activations, masks), for the whole batch"),
    ("Output", "Memory of the layer's output for the whole batch"),
)
TIME_COLUMNS, MEMORY_COLUMNS = (0, 1), (2, 3)
TOP_ROWS = 3                 # the largest rows by time and by memory are tinted
CHEAP_S = 0.5                # a measurement this quick is repeated on its own after an edit
DEBOUNCE_MS = 300            # ... once the edits have paused this long
TIME_TINT, MEMORY_TINT = QColor(255, 183, 77, 90), QColor(100, 160, 255, 80)
SHORTCUT = "Ctrl+Shift+C"
COST_COLUMN_WIDTH = 70
LINE_MIN_WIDTH = 180
BACKGROUND = int(Qt.ItemDataRole.BackgroundRole)
MEASURE_AGAIN = "measure-again"  # the summary line's link


class ProfileWorker(QObject):
    """Profiles one design snapshot with one set of run settings (engine.profile) off the UI thread."""

    profiled = Signal(object, object, float)  # Profile, the key it was made for, seconds it took
    failed = Signal(str, object)               # a sentence, the key
    finished = Signal()

    def __init__(self, spec, config: TrainConfig, key):
        super().__init__()
        self.spec, self.config, self.key = spec, config, key
        self._task = Task()

    def stop(self) -> None:
        """From any thread: end the profile between steps, without figures."""
        self._task.cancel()

    @Slot()
    def run(self) -> None:
        from engine.profile import profile_design
        from gui.training.worker import reporting

        config, started = self.config, time.perf_counter()
        # a stop on request says nothing: the view already knows why
        with reporting("measuring the cost of the design", lambda text: self.failed.emit(text, self.key),
                       self.finished.emit):
            profile = profile_design(self.spec, config.batch_size, config.device, config.optimizer,
                                     momentum=config.momentum, amsgrad=config.amsgrad, search_largest=False,
                                     task=self._task)
            self.profiled.emit(profile, self.key, time.perf_counter() - started)


class CostColumns:
    """The stack model's extra columns (gui.stack_model.set_extra_columns) for one profile: its figures per
    layer id, the largest rows tinted, all grey while ``stale``."""

    titles = tuple(title for title, _ in COST_COLUMNS)

    def __init__(self):
        self.profile = None
        self.stale = False
        self._cells: dict[str, tuple[tuple[str, ...], tuple, str]] = {}

    def show(self, profile, stale: bool) -> None:
        """Show ``profile``'s figures (None: none), grey when ``stale``."""
        self.profile, self.stale = profile, stale
        self._cells = {} if profile is None else _cells(profile)

    def header(self, column: int, role):
        if role == DISPLAY:
            return COST_COLUMNS[column][0]
        if role == TOOLTIP:
            return COST_COLUMNS[column][1]
        if role == ALIGNMENT:
            return RIGHT
        return None

    def data(self, layer_id: str, column: int, role):
        cells = self._cells.get(layer_id)
        if cells is None:
            return None
        texts, tints, tip = cells
        if role == DISPLAY:
            return texts[column]
        if role == ALIGNMENT:
            return RIGHT
        if role == TOOLTIP:
            return tip + (" These figures are from before your last edit." if self.stale else "")
        if role == FOREGROUND and self.stale:
            return QBrush(MUTED)
        if role == BACKGROUND and not self.stale:
            return tints[column]
        if role == FONT and self.stale:
            font = QFont()
            font.setItalic(True)
            return font
        return None


def _cells(profile) -> dict[str, tuple[tuple[str, ...], tuple, str]]:
    """Per layer id: the four texts, the four backgrounds (a tint on the largest rows' cells) and a tooltip."""
    rows = profile.rows
    top = min(TOP_ROWS, max(1, len(rows) // 3))  # a short design has its one or two largest rows tinted
    slowest = _largest(rows, lambda r: r.forward_ms + r.backward_ms, top)
    biggest = _largest(rows, lambda r: r.saved_bytes + r.output_bytes, top)
    time_tint, memory_tint = QBrush(TIME_TINT), QBrush(MEMORY_TINT)
    where = f"batch {profile.batch_size} on {device_label(profile)}, median of {profile.repeats} steps"
    cells = {}
    for row in rows:
        texts = (milliseconds(row.forward_ms), milliseconds(row.backward_ms) if row.backward_ms else "",
                 format_bytes(row.saved_bytes) if row.saved_bytes else "", format_bytes(row.output_bytes))
        tints = tuple(time_tint if i in TIME_COLUMNS and row.index in slowest else
                      memory_tint if i in MEMORY_COLUMNS and row.index in biggest else None for i in range(4))
        tip = (f"Forward {milliseconds(row.forward_ms)}, backward {milliseconds(row.backward_ms)}; saved for backward "
               f"{format_bytes(row.saved_bytes)}, output {format_bytes(row.output_bytes)} ({where}).")
        if row.index in slowest:
            tip += f" One of the {top} slowest layers."
        if row.index in biggest:
            tip += f" One of the {top} layers that hold the most memory."
        cells[row.layer_id] = (texts, tints, tip)
    return cells


def _largest(rows, size, count: int) -> set[int]:
    """The indexes of the ``count`` rows largest by ``size`` (rows of size 0 never count)."""
    ranked = sorted((r for r in rows if size(r) > 0), key=size, reverse=True)
    return {r.index for r in ranked[:count]}


def device_label(profile) -> str:
    return "CPU" if profile.device == "cpu" else profile.device_name


def summary_line(profile) -> str:
    """One line for the summary: "Batch 64 on CPU: 23.0 MB, 4.12 ms a step" (the estimated peak memory)."""
    return (f"Batch {profile.batch_size} on {device_label(profile)}: {format_bytes(profile.totals.peak_bytes)}, "
            f"{milliseconds(profile.totals.step_ms)} a step")


class CostView(QObject):
    """The toggle, the columns, the summary line and the measurements behind them, for one window."""

    updated = Signal()  # the columns or the line changed (tests wait on it)

    def __init__(self, window, controller, sweep=None):
        super().__init__(window)
        self.sweep = sweep  # the Training tab's learning-rate finder (gui.training.lr_find), measured never beside
        self.window, self.controller, self.document = window, controller, window.document
        self.model = window.stack_view.stack_model
        self.columns = CostColumns()
        self.profile = None          # the last profile, and the key (design and settings) it was made for
        self._profile_key = None
        self.last_seconds = None     # how long the last measurement took
        self.problem = ""            # why the last measurement gave no figures
        self._problem_key = None
        self._worker: ProfileWorker | None = None
        self._again = False          # measure once the running measurement has ended
        self.line = QLabel()
        self.line.setObjectName("costLine")
        self.line.setTextFormat(Qt.TextFormat.RichText)
        self.line.linkActivated.connect(lambda _link: self.measure())
        self.line.setWordWrap(True)  # a narrow window wraps the line instead of growing
        self.line.setMinimumWidth(LINE_MIN_WIDTH)
        self.line.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.line.hide()
        window.summary.add_line(self.line)
        self.action = QAction("&Cost View", window)
        self.action.setCheckable(True)
        self.action.setShortcut(QKeySequence(SHORTCUT))
        self.action.setStatusTip("Show what one training step costs per layer: time and memory")
        self.action.setToolTip(f"Show time and memory per layer ({SHORTCUT})")
        self.action.toggled.connect(self.set_shown)
        window.actions["cost_view"] = self.action
        window.view_menu.insertAction(window.actions["reset_layout"], self.action)
        window.view_menu.insertSeparator(window.actions["reset_layout"])
        window.addAction(self.action)
        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self._measure_if_cheap)
        self.document.changed.connect(self._design_changed)
        self.document.extrasChanged.connect(lambda key: key == "training" and self._design_changed())
        controller.stateChanged.connect(self._device_use_changed)
        if sweep is not None:
            sweep.changed.connect(self._device_use_changed)

    @property
    def shown(self) -> bool:
        return self.action.isChecked()

    @property
    def measuring(self) -> bool:
        return self._worker is not None

    # ------------------------------------------------------------------ what is current
    def _config(self) -> TrainConfig | None:
        try:
            return self.controller.train_config()
        except LayerStudioError:
            return None

    def current_key(self) -> tuple | None:
        """What a profile is made for: the design and the settings it reads (None when the settings do not parse)."""
        config = self._config()
        if config is None:
            return None
        return (design_key(self.document.spec), config.batch_size, config.device, config.optimizer,
                config.momentum, config.amsgrad)

    def design_problem(self) -> str:
        """Why the design as it is has no figures ('' when it can have some): no layers, an error, bad settings."""
        problem = train_blocker(self.document.analysis)
        if problem:
            return f"Cost: {problem[0].lower()}{problem[1:]}"
        if self._config() is None:
            return "Cost: the Training tab's settings have an error; fix it first."
        return ""

    def run_blocker(self) -> str:
        """Why nothing can be measured now although the design could be ('' when it can): the device is taken."""
        state = self.controller.state
        if state != states.IDLE:
            what = {states.EVALUATING: "the evaluation", states.LOADING: "the data loading",
                    states.SEARCHING: "the search"}.get(state, "the run")
            if state == states.LOADING and self.controller.can_pause:
                what = "the run"  # a run loading its data
            return f"Cost: waits until {what} ends (it would share the device)."
        if self.sweep is not None and self.sweep.running:
            return "Cost: waits until the learning-rate sweep ends (it would share the device)."
        return ""

    @property
    def current(self) -> bool:
        """Whether the figures shown are for the design and settings as they are now."""
        return self.profile is not None and self._profile_key == self.current_key()

    # ------------------------------------------------------------------ showing
    def set_shown(self, shown: bool) -> None:
        if self.action.isChecked() != shown:
            self.action.setChecked(shown)  # toggled comes back here
            return
        view = self.window.stack_view
        if shown:
            self.model.set_extra_columns(self.columns)
            header = view.header()
            header.moveSection(header.visualIndex(COL_NOTES), header.count() - 1)  # Notes stays last and wide
            metrics = header.fontMetrics()
            for offset, (title, _) in enumerate(COST_COLUMNS):
                width = max(COST_COLUMN_WIDTH, metrics.horizontalAdvance(title) + 20)
                header.resizeSection(len(COLUMNS) + offset, width)
            self.line.show()
            if not self.current:
                self.measure()
        else:
            self.stop()
            self.model.set_extra_columns(None)
            self.line.hide()
        self._refresh()

    def _refresh(self) -> None:
        """Columns and line from the state: current figures, stale (grey) ones, or none with the reason."""
        stale = not self.current
        self.columns.show(None if self.design_problem() else self.profile, stale)
        self.model.extra_columns_changed()
        self.line.setText(self._line_text(stale))
        self.updated.emit()

    def _line_text(self, stale: bool) -> str:
        problem, waiting = self.design_problem(), self.run_blocker()
        again = f"<a href='{MEASURE_AGAIN}'>Measure again</a>"
        if problem:
            return html.escape(problem)
        if self.problem and self._problem_key == self.current_key() and not self.measuring:
            return f"{html.escape(self.problem)} {again}"
        if self.profile is None:
            return html.escape(waiting) or ("Cost: measuring…" if self.measuring else
                                            f"Cost: <a href='{MEASURE_AGAIN}'>measure</a>")
        line = html.escape(summary_line(self.profile))
        if not stale:
            return line
        grey = f"<span style='color:{MUTED.name()}'>{line} (before your edit)</span>"
        if self.measuring:
            return f"<span style='color:{MUTED.name()}'>{line} (measuring again…)</span>"
        return f"{grey} {html.escape(waiting) or again}"

    # ------------------------------------------------------------------ measuring
    def measure(self) -> bool:
        """Measure the design as it is now (on demand: the toggle, "Measure again"); False when it cannot."""
        self._timer.stop()
        key = self.current_key()
        if not self.shown or self.design_problem() or self.run_blocker() or key is None:
            self._refresh()
            return False
        if self._worker is not None:  # one measurement at a time: the next starts when this one has ended
            if self._worker.key != key:
                self._worker.stop()
                self._again = True
            return True
        worker = ProfileWorker(self.document.spec, self._config(), key)
        worker.profiled.connect(self._profiled)
        worker.failed.connect(self._failed)
        worker.finished.connect(self._worker_done)  # a slot of this object: runs on the UI thread
        self._worker = worker
        if not self.controller.launch_helper(worker, worker.stop):  # the window is closing
            self._worker = None
            return False
        self._refresh()
        return True

    def stop(self) -> None:
        self._timer.stop()
        if self._worker is not None:
            self._worker.stop()

    def _design_changed(self, *_) -> None:
        if not self.shown:
            return
        self._refresh()  # grey (or gone, for a design with an error) at once
        if not self.current:
            self._timer.start()

    def _measure_if_cheap(self) -> None:
        """After edits (or once the device is free again): measure when it is cheap, or when the view asked for
        figures and has none yet (its first measurement was stopped by a run)."""
        cheap = self.last_seconds is not None and self.last_seconds < CHEAP_S
        never = self.profile is None and self._problem_key != self.current_key()
        if cheap or never:
            self.measure()

    def _device_use_changed(self, *_args) -> None:
        if not self.shown:
            return
        if self.run_blocker():
            self.stop()  # a run, an evaluation or a sweep takes the device: never measure beside it
        elif not self.current:
            self._timer.start()
        self._refresh()

    @Slot(object, object, float)
    def _profiled(self, profile, key, seconds: float) -> None:
        self.last_seconds = seconds
        if key == self.current_key():
            self.profile, self._profile_key, self.problem = profile, key, ""
        elif self.profile is None:
            self.profile, self._profile_key = profile, key  # better grey figures than none: shown as stale

    @Slot(str, object)
    def _failed(self, text: str, key) -> None:
        self.problem, self._problem_key = text, key
        if key == self.current_key():
            self.profile = None  # figures of another batch size would read as this one's

    @Slot()
    def _worker_done(self) -> None:
        if self._worker is self.sender():
            self._worker = None
        again, self._again = self._again, False
        if again and self.shown and not self.current:
            self.measure()  # asked for while the one before still ran
        self._refresh()
