"""What the Training tab's status lines say, computed from the current state alone.

No line is set by an event and left standing: the panel keeps facts (the loading step under way,
the run's progress, the outcome of the last attempt and the design, data and settings it was
made with) and ``Lines.of(...)`` turns them into every label's text each time one of them, the
design, the data choice or the run state changes. An outcome is shown only while the design and
settings are still those it was made with, so an old error never outlives its cause.
"""
from __future__ import annotations

import html
import time
from dataclasses import dataclass

from engine.text import sentence
from gui.training import controller as states

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
NOT_LOADED = "Not loaded yet: Load data, or Train loads it."
EVALUATING_NOW = "Evaluating the weights on the test split (Results tab; Stop Evaluating there, or F7, ends it)."
SEARCH_GOING = "A search is running (Search tab): Stop search ends it after the batch in progress."


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class RunProgress:
    """Epoch/step/ETA bookkeeping of the running job; paused time does not count toward the ETA."""

    def __init__(self):
        self.started = None      # the RunStarted event of the run going on
        self.last_batch = None   # its latest BatchEnd
        self.total_steps = 1
        self.first_step = 0
        self.done_steps = 0
        self.active_seconds = 0.0
        self._since = None

    def begin(self, event) -> None:
        self.started = event
        self.last_batch = None
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
        self.last_batch = event
        self.done_steps = max(event.global_step - self.first_step, 0)

    @property
    def fraction(self) -> float:
        return min(self.done_steps / self.total_steps, 1.0)

    def eta(self) -> float | None:
        elapsed = self.active_seconds + (time.monotonic() - self._since if self._since is not None else 0.0)
        if self.done_steps <= 0:
            return None
        return elapsed / self.done_steps * (self.total_steps - self.done_steps)

    def position(self) -> str:
        """``epoch 8 of 40`` while a run goes ('' before its first batch)."""
        if self.started is None:
            return ""
        epoch = self.last_batch.epoch if self.last_batch is not None else self.started.start_epoch + 1
        return f"epoch {epoch} of {self.started.epochs}"

    def line(self, paused: bool) -> str:
        """``Epoch 2/8 · step 30/57 · ETA 0:12 · 9,800 samples/s`` (``· paused`` while paused)."""
        event, started = self.last_batch, self.started
        if started is None:
            parts = ["Starting…"]
        elif event is None:
            parts = [f"Epoch {started.start_epoch + 1}/{started.epochs}", "starting…"]
        else:
            eta = self.eta()
            parts = [f"Epoch {event.epoch}/{started.epochs}", f"step {event.step}/{event.steps_per_epoch}",
                     f"ETA {format_duration(eta)}" if eta is not None else "ETA …",
                     f"{event.samples_per_s:,.0f} samples/s"]
        return " · ".join(parts + (["paused"] if paused else []))


def run_info(event) -> str:
    """The device, size and data of a run (rich text)."""
    device = f"{event.device} — {event.device_name}" if event.device_name else event.device
    notes = "".join(f"<br>Note: {html.escape(note)}" for note in event.notes)
    return (f"Device: <b>{html.escape(device)}</b> · {event.parameters:,} parameters · "
            f"{event.train_samples:,} train / {event.val_samples:,} validation samples{notes}")


def finish_text(result, started: bool = True) -> tuple[str, str]:
    """A headline for the progress line and the engine's sentence (capitalised) for the status line;
    ``started`` is False for an attempt that never reached its first epoch (refused, data failed)."""
    epochs = f"{result.epochs_done} epoch{'s' if result.epochs_done != 1 else ''}"
    heads = {
        "completed": f"Finished: {epochs} trained; test results are in the Results tab.",
        "early_stopped": f"Stopped early after {epochs}; test results are in the Results tab.",
        "stopped": f"Stopped by you after {epochs}.",
        "diverged": "Diverged: the run ended.",
        "out_of_memory": "Out of memory: the run ended.",
        "error": "Failed: the run could not go on." if started else "Not started: see why below.",
    }
    message = result.message
    if result.reason == "stopped":
        message = message.split(";")[0]  # the engine's "run again to continue" means its own API
    return heads.get(result.reason, result.reason), sentence(message)


@dataclass(frozen=True)
class Outcome:
    """How the last attempt ended, with what it was made with (``context``) and what its lines showed."""

    result: object         # RunFinished
    context: tuple         # design, data choice and settings at the time
    run_info: str = ""     # the run's device/size line; '' when it never started
    fraction: float = 0.0  # how far the progress bar got


@dataclass(frozen=True)
class Lines:
    """Every status text of the Training tab."""

    progress: str
    fraction: float
    status: str
    run_info: str
    data: str    # rich text
    stale: str

    @classmethod
    def of(cls, *, state: str, outcome: Outcome | None, progress: RunProgress, loading: tuple[float, str] | None,
           loading_run: bool, ended, last_epoch: str, blocker: str, device: str, bundle, data_problem: str,
           loading_this_data: bool, stale: str) -> Lines:
        """The lines for the controller's ``state``; ``outcome`` only when its context is the current one."""
        shown = progress.started if state not in (states.IDLE, states.SEARCHING) else None  # the run going on
        if shown is not None:
            info = run_info(shown)
        elif state == states.IDLE and outcome is not None and outcome.run_info:
            info = outcome.run_info
        else:
            info = f"Device: {html.escape(device)}"
        if state == states.LOADING:
            fraction, step = loading or (0.0, "Loading the data…")
            return cls(step, fraction, "Loading the data for the run: Stop (Shift+F5) ends it." if loading_run else
                       "Loading the data: Stop (Shift+F5) ends it.", info,
                       data_line(bundle, data_problem, loading_this_data), "")
        if state == states.EVALUATING:
            fraction, step = loading or (0.0, "Evaluating…")
            return cls(step, fraction, EVALUATING_NOW, info, data_line(bundle, data_problem, False), stale)
        if state in (states.RUNNING, states.PAUSED):
            paused = state == states.PAUSED
            status = "Paused: Resume (F6) continues from the next batch." if paused else (
                last_epoch or "Training: each epoch's losses appear here as it ends.")
            return cls(progress.line(paused), progress.fraction, status, info,
                       data_line(bundle, data_problem, False), "")
        if state == states.STOPPING:
            if ended is None:
                line = "Stopping the data loading…" if loading is not None and progress.started is None else \
                    "Stopping at the next batch…"
            elif ended.reason in ("completed", "early_stopped", "stopped"):
                line = "Evaluating on the test set…"
            else:
                line = "Ending the run…"
            return cls(line, progress.fraction, last_epoch, info, data_line(bundle, data_problem, False), "")
        if outcome is not None:
            head, message = finish_text(outcome.result, started=bool(outcome.run_info))
            return cls(head, outcome.fraction, message, info, data_line(bundle, data_problem, False), stale)
        return cls("Ready." if not blocker else "Not ready to train.", 0.0, blocker, info,
                   data_line(bundle, data_problem, False), stale)


def data_line(bundle, problem: str, loading: bool) -> str:
    """The data area's text for the chosen data: its summary, why it did not load, or that it is not loaded."""
    if bundle is not None:
        classes = ""
        if bundle.num_classes:
            names = ", ".join(bundle.class_names[:10]) + (" …" if len(bundle.class_names) > 10 else "")
            classes = f"<br>Classes: {html.escape(names)}"
        notes = "".join(f"<br><span style='color:#7a5a00'>Note: {html.escape(note)}</span>"
                        for note in getattr(bundle, "notes", ()))
        return f"{html.escape(bundle.summary())}{classes}{notes}"
    if loading:
        return "Loading…"
    return problem or NOT_LOADED
