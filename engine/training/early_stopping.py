"""Early stopping: which epoch metric a run can watch on its data, and the watch itself (``EarlyStopping``):
the best value so far, its epoch, and the epochs since it last improved. Plain numbers, no torch."""
from __future__ import annotations

import math


def watched_metric(wanted: str, has_val: bool, classification: bool) -> tuple[str, list[str]]:
    """The metric early stopping watches for ``wanted`` (one of STOP_METRICS) on this data, and a note for each
    fallback: a validation metric without validation data becomes its training twin, an accuracy without
    classes the loss."""
    metric, notes = wanted, []
    if metric.startswith("val_") and not has_val:
        metric = "train_" + metric[4:]
        notes.append(f"no validation data: early stopping watches {metric}")
    if metric.endswith("_acc") and not classification:
        metric = metric[:-4] + "_loss"
        notes.append(f"accuracy needs classes: early stopping watches {metric}")
    return metric, notes


class EarlyStopping:
    """Watches one epoch metric: accuracies must rise (mode "max"), losses fall (mode "min"), each time by more
    than ``min_delta``; ``exhausted`` once ``patience`` epochs in a row brought no improvement. A missing,
    NaN or infinite value counts as no improvement."""

    def __init__(self, metric: str, patience: int, min_delta: float = 0.0):
        self.metric, self.patience, self.min_delta = metric, patience, min_delta
        self.mode = "max" if metric.endswith("_acc") else "min"
        self.best: float | None = None  # the best value so far (None before the first finite one)
        self.best_epoch = 0  # the epoch (1-based) that gave it
        self.bad_epochs = 0  # epochs since it last improved

    def observe(self, value: float | None, epoch: int) -> bool:
        """Record the value after ``epoch``; True when it is a new best."""
        if value is None or not math.isfinite(value):
            self.bad_epochs += 1
            return False
        delta = self.min_delta
        better = self.best is None or (value > self.best + delta if self.mode == "max" else value < self.best - delta)
        if not better:
            self.bad_epochs += 1
            return False
        self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        return True

    @property
    def exhausted(self) -> bool:
        """True when patience has run out: the run should stop."""
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        """The watch's state as plain data, for a checkpoint's ``best`` field."""
        return {"value": self.best, "epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.bad_epochs = state["value"], state["epoch"], state["bad_epochs"]
