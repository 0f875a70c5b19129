"""What the live plots draw, as numbers: one run's curves in growable numpy buffers, fed by engine events.

Kept apart from the drawing (gui/training/plots.py): the curves' data (the batch loss and its
smoothing, the per-epoch losses and metric, the learning rate) is plain numpy, and a refresh
pushes only the series that changed since the last one.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyqtgraph as pg

EMA_BETA = 0.9  # smoothing of the batch loss (debiased, as TensorBoard does)
ARCHIVE_POINTS = 2000  # the most points an earlier run's curve keeps (per step curves are decimated to it)


class Series:
    """Growable x/y float buffers; ``x``/``y`` are views of the filled part.

    Keeps the extent of its finite y values (and the smallest positive one, for a log axis), so
    fitting an axis to the data costs nothing per refresh.
    """

    def __init__(self, capacity: int = 256):
        self._x = np.empty(capacity)
        self._y = np.empty(capacity)
        self._n = 0
        self.low = self.positive_low = math.inf
        self.high = -math.inf

    def __len__(self) -> int:
        return self._n

    @property
    def x(self) -> np.ndarray:
        return self._x[: self._n]

    @property
    def y(self) -> np.ndarray:
        return self._y[: self._n]

    def extend(self, xs, ys) -> None:
        xs = np.asarray(xs, dtype=float)
        ys = np.asarray(ys, dtype=float)
        needed = self._n + len(xs)
        if needed > len(self._x):
            capacity = max(needed, 2 * len(self._x))
            self._x = np.resize(self._x, capacity)
            self._y = np.resize(self._y, capacity)
        self._x[self._n:needed] = xs
        self._y[self._n:needed] = ys
        self._n = needed
        finite = ys[np.isfinite(ys)]
        if finite.size:
            self.low = min(self.low, float(finite.min()))
            self.high = max(self.high, float(finite.max()))
            positive = finite[finite > 0]
            if positive.size:
                self.positive_low = min(self.positive_low, float(positive.min()))

    def y_extent(self, log: bool = False) -> tuple[float, float] | None:
        """(lowest, highest) finite y, in log10 units on a log axis; None when there is none."""
        if log:
            return None if self.high <= 0 else (math.log10(self.positive_low), math.log10(self.high))
        return None if self.high < self.low else (self.low, self.high)


def peak_decimated(x: np.ndarray, y: np.ndarray, points: int = ARCHIVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``points`` points of the curve (x, y) that keep each stretch's lowest and highest y: what
    pyqtgraph's "peak" downsampling does at every repaint, done once for an earlier run's curve, which no longer
    changes. Copies: the run's buffers may grow on."""
    count = len(x)
    if count <= points:
        return x.copy(), y.copy()
    size = -(-2 * count // points)  # points per stretch, each stretch giving two
    stretches = count // size
    whole = stretches * size
    ys = y[:whole].reshape(stretches, size)
    lows, highs = np.fmin.reduce(ys, axis=1), np.fmax.reduce(ys, axis=1)  # NaN only for a stretch of NaNs
    xs = np.repeat(x[:whole:size], 2)
    return np.concatenate([xs, x[whole:]]), np.concatenate([np.column_stack([lows, highs]).ravel(), y[whole:]])


def _finite_or_nan(value) -> float:
    return float("nan") if value is None else float(value)


class RunData:
    """One run's numbers, fed by engine events: numpy buffers per curve plus the EMA state."""

    SERIES = ("batch", "ema", "train_loss", "val_loss", "train_metric", "val_metric", "lr")

    def __init__(self, number: int, label: str, task: str, settings: dict | None = None):
        self.number = number
        self.label = label
        self.task = task
        self.settings = settings  # what the run used (gui.training.run_names.run_settings), to name the next run
        self.series = {name: Series() for name in self.SERIES}
        self.changed: set[str] = set()  # series with new points since the last push to the live curves
        self.archive: dict[str, pg.PlotCurveItem] | None = None  # its dimmed curves, once it is a previous run
        self._ema = 0.0
        self._ema_count = 0

    def add_history(self, history: dict, steps_per_epoch: int) -> None:
        """Seed the per-epoch curves from a checkpoint's history (a resumed run)."""
        count = len(history.get("train_loss", []))
        epochs = np.arange(1, count + 1)
        for key in ("train_loss", "val_loss"):
            values = [_finite_or_nan(v) for v in history.get(key, [])][:count]
            self.series[key].extend(epochs[: len(values)], values)
        for key, name in (("train_acc", "train_metric"), ("val_acc", "val_metric")):
            values = [_finite_or_nan(v) for v in history.get(key, [])][:count]
            self.series[name].extend(epochs[: len(values)], self._metric_values(values, history, key))
        lrs = [_finite_or_nan(v) for v in history.get("lr", [])][:count]
        self.series["lr"].extend(epochs[: len(lrs)] * max(steps_per_epoch, 1), lrs)
        self.changed.update(self.SERIES)

    def _metric_values(self, values, history, key):
        if self.task == "classification":
            return [100.0 * v for v in values]
        loss_key = "val_loss" if key.startswith("val") else "train_loss"
        return [_finite_or_nan(v) for v in history.get(loss_key, [])][: len(values)]

    def add_batch(self, event) -> None:
        losses = [_finite_or_nan(v) for v in event.losses]
        if not losses:
            return
        per_epoch = max(event.steps_per_epoch, 1)
        steps = np.arange(event.global_step - len(losses) + 1, event.global_step + 1)
        self.series["batch"].extend(steps / per_epoch, losses)
        ema_values = []
        for loss in losses:
            if math.isfinite(loss):
                self._ema = EMA_BETA * self._ema + (1 - EMA_BETA) * loss
                self._ema_count += 1
            ema_values.append(self._ema / (1 - EMA_BETA ** self._ema_count) if self._ema_count else float("nan"))
        self.series["ema"].extend(steps / per_epoch, ema_values)
        lr = self.series["lr"]
        if not len(lr) or lr.y[-1] != event.lr:  # a constant rate need not redraw its plot at every refresh
            self.changed.add("lr")
        lr.extend([event.global_step], [event.lr])
        self.changed.update(("batch", "ema"))

    def add_epoch(self, event) -> None:
        x = [event.epoch]
        self.series["train_loss"].extend(x, [_finite_or_nan(event.train_loss)])
        self.series["val_loss"].extend(x, [_finite_or_nan(event.val_loss)])
        if self.task == "classification":
            train = None if event.train_acc is None else 100.0 * event.train_acc
            val = None if event.val_acc is None else 100.0 * event.val_acc
        else:
            train, val = event.train_loss, event.val_loss
        self.series["train_metric"].extend(x, [_finite_or_nan(train)])
        self.series["val_metric"].extend(x, [_finite_or_nan(val)])
        self.changed.update(("train_loss", "val_loss", "train_metric", "val_metric", "lr"))

    @property
    def dirty(self) -> bool:
        return bool(self.changed)

    def point_counts(self) -> dict[str, int]:
        return {name: len(series) for name, series in self.series.items()}
