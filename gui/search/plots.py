"""The Search tab's plots (pyqtgraph): best value so far, parallel coordinates and parameter importance.

Each plot redraws whole from the trials it is given (a search has tens of trials, not thousands), so it holds
no state of its own beyond its items. ``importances`` asks optuna (``get_param_importances`` with its default
evaluator) which parameters explained the objective, from the complete trials alone.
"""
from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from gui.search.trials import format_number

log = logging.getLogger(__name__)
MIN_TRIALS_FOR_IMPORTANCE = 2
TRIAL_COLOR, BEST_COLOR = "#90a4ae", "#1565c0"
COLORMAP = "viridis"  # dark (worst) to bright yellow (best)


def complete(trials) -> list:
    return [t for t in trials if t.state == "complete" and t.value is not None and math.isfinite(t.value)]


def best_so_far(values: list[float], maximize: bool) -> list[float]:
    pick = max if maximize else min
    out: list[float] = []
    for value in values:
        out.append(value if not out else pick(out[-1], value))
    return out


def goodness(values: list[float], maximize: bool) -> list[float]:
    """Each value's place between the worst (0) and the best (1) of ``values``."""
    low, high = min(values), max(values)
    if high == low:
        return [1.0] * len(values)
    return [((v - low) if maximize else (high - v)) / (high - low) for v in values]


def importances(trials, log_names=frozenset(), maximize: bool = False) -> dict[str, float]:
    """optuna.importance.get_param_importances over the complete trials (at least two), by parameter name,
    largest first. Each parameter's distribution spans the values the trials drew (log scale for ``log_names``):
    the live table has the values, not the study."""
    import optuna

    done = complete(trials)
    if len(done) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}
    distributions = distributions_of(done, log_names)
    study = optuna.create_study(direction="maximize" if maximize else "minimize")
    for trial in done:
        study.add_trial(optuna.trial.create_trial(
            params=dict(trial.params), value=float(trial.value),
            distributions={name: distributions[name] for name in trial.params}))
    with warnings.catch_warnings():  # "few trials in a regime": the note above the chart says how many there are
        warnings.simplefilter("ignore", UserWarning)
        return dict(optuna.importance.get_param_importances(study))


def distributions_of(trials, log_names=frozenset()) -> dict:
    """An optuna distribution per parameter, spanning the values ``trials`` drew."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for name in dict.fromkeys(name for t in trials for name in t.params):
        values = [t.params[name] for t in trials if name in t.params]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            low, high = min(values), max(values)
            if all(isinstance(v, int) for v in values):
                out[name] = IntDistribution(int(low), int(high), log=name in log_names and low >= 1)
            else:
                out[name] = FloatDistribution(float(low), float(high), log=name in log_names and low > 0)
        else:
            out[name] = CategoricalDistribution(sorted(set(values), key=str))
    return out


def _plot(left: str, bottom: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(background="w")
    plot.setLabel("left", left)
    plot.setLabel("bottom", bottom)
    plot.showGrid(x=True, y=True, alpha=0.25)
    for side in ("left", "bottom"):
        plot.getAxis(side).enableAutoSIPrefix(False)
    plot.setMenuEnabled(False)
    return plot


class NotedPlot(QWidget):
    """A plot with a line above it that says why it is empty (or what it shows)."""

    def __init__(self, plot: pg.PlotWidget, parent=None):
        super().__init__(parent)
        self.plot = plot
        self.note = QLabel()
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.note)
        layout.addWidget(plot, 1)

    def say(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))


class BestPlot(NotedPlot):
    """Each complete trial's value (dots) and the best value so far (a step line), by trial number."""

    def __init__(self, parent=None):
        super().__init__(_plot("value", "trial"), parent)
        self.dots = self.plot.plot([], [], pen=None, symbol="o", symbolSize=7, symbolBrush=TRIAL_COLOR,
                                   symbolPen=None, name="trial")
        self.best = self.plot.plot([], [], pen=pg.mkPen(BEST_COLOR, width=2), name="best so far")
        self.say("The best value so far shows here once a trial completes.")

    def show_trials(self, trials, objective_label: str, maximize: bool) -> None:
        done = complete(trials)
        self.plot.setLabel("left", objective_label)
        xs = [t.number for t in done]
        ys = [t.value for t in done]
        self.dots.setData(xs, ys)
        best = best_so_far(ys, maximize)
        steps_x = [x for i, x in enumerate(xs) for x in ((x,) if i == 0 else (x, x))]  # flat, then down at a new best
        steps_y = [y for i, y in enumerate(best) for y in ((y,) if i == 0 else (best[i - 1], y))]
        self.best.setData(steps_x, steps_y)
        self.plot.getAxis("bottom").setTickSpacing(max(1, math.ceil(len(xs) / 10)), 1)  # whole trial numbers
        if done:
            top = (max if maximize else min)(done, key=lambda t: t.value)
            self.say(f"Best so far: {format_number(top.value)} ({objective_label}) in trial {top.number}.")
        else:
            self.say("The best value so far shows here once a trial completes.")


class ParallelPlot(NotedPlot):
    """Parallel coordinates: one vertical axis per parameter and one for the objective, each scaled to its own
    range (log parameters on a log scale, choices spread evenly); one line per complete trial, coloured from
    dark (worst) to yellow (best), the best drawn thickest on top."""

    def __init__(self, parent=None):
        super().__init__(_plot("", ""), parent)
        self.plot.showGrid(x=False, y=False)
        self.plot.getAxis("left").setTicks([[(0.0, "low"), (1.0, "high")]])
        self.plot.setMouseEnabled(x=False, y=False)
        self.lines: list[pg.PlotDataItem] = []
        self._extras: list = []
        self.say("Parallel coordinates show here once a trial completes.")

    def show_trials(self, trials, objective_label: str, maximize: bool, log_axes=frozenset()) -> None:
        for item in self.lines + self._extras:
            self.plot.removeItem(item)
        self.lines, self._extras = [], []
        done = complete(trials)
        if not done:
            self.say("Parallel coordinates show here once a trial completes.")
            return
        values = [t.values for t in done]  # weight_decay 0 rather than weight_decay.zero True
        names = list(dict.fromkeys(name for v in values for name in v))
        columns = [[v.get(name) for v in values] for name in names] + [[t.value for t in done]]
        axes = names + [objective_label]
        placed = [_scale(column, name in log_axes) for name, column in zip(axes, columns, strict=True)]
        scaled, ends = [spots for spots, _ends in placed], [ends for _spots, ends in placed]
        colors = pg.colormap.get(COLORMAP)
        good = goodness([t.value for t in done], maximize)
        order = sorted(range(len(done)), key=lambda i: good[i])
        xs = np.arange(len(axes), dtype=float)
        for i in order:  # the best last, so on top
            ys = np.array([column[i] for column in scaled], dtype=float)
            best = i == order[-1]
            line = pg.PlotDataItem(xs, ys, pen=pg.mkPen(colors.map(good[i], mode="qcolor"), width=3 if best else 1.5),
                                   connect="finite")
            self.plot.addItem(line)
            self.lines.append(line)
        for x, (low, high) in enumerate(ends):
            axis = pg.InfiniteLine(pos=x, angle=90, pen=pg.mkPen("#607d8b", width=1))
            self._extras.append(axis)
            for y, text, anchor in ((1.0, high, (0.5, 1.0)), (0.0, low, (0.5, 0.0))):
                label = pg.TextItem(text, color="#37474f", anchor=anchor)
                label.setPos(x, y)
                self._extras.append(label)
        for item in self._extras:
            self.plot.addItem(item)
        self.plot.getAxis("bottom").setTicks([list(enumerate(axes))])
        self.plot.setXRange(-0.4, len(axes) - 0.6, padding=0)
        self.plot.setYRange(-0.12, 1.12, padding=0)
        self.say(f"{len(done)} complete trial{'s' if len(done) != 1 else ''}; each axis spans its values "
                 f"(brighter lines: better {objective_label}).")


def _scale(values: list, log: bool) -> tuple[list[float], tuple[str, str]]:
    """Values placed on 0..1 of their axis (NaN where a trial has none) and the texts of the axis' ends."""
    present = [v for v in values if v is not None]
    if not present:
        return [math.nan] * len(values), ("", "")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        choices = sorted({str(v) for v in present})
        spot = {c: (i / (len(choices) - 1) if len(choices) > 1 else 0.5) for i, c in enumerate(choices)}
        return [spot[str(v)] if v is not None else math.nan for v in values], (choices[0], choices[-1])
    use_log = log and min(present) > 0
    key = math.log10 if use_log else float
    low, high = key(min(present)), key(max(present))
    span = high - low
    placed = [((key(v) - low) / span if span else 0.5) if v is not None else math.nan for v in values]
    return placed, (format_number(min(present)), format_number(max(present)))


class ImportancePlot(NotedPlot):
    """Horizontal bars: how much of the objective's variation each parameter explains (optuna's importance)."""

    def __init__(self, parent=None):
        super().__init__(_plot("", "importance"), parent)
        self.plot.setMouseEnabled(x=False, y=False)
        self.bars: pg.BarGraphItem | None = None
        self.values: dict[str, float] = {}
        self.say(self.too_few(0))

    @staticmethod
    def too_few(count: int) -> str:
        return (f"Parameter importance needs at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials "
                f"({count} so far).")

    def show_trials(self, trials, log_names, maximize: bool) -> None:
        count = len(complete(trials))
        values: dict[str, float] = {}
        problem = self.too_few(count) if count < MIN_TRIALS_FOR_IMPORTANCE else ""
        if not problem:
            try:
                values = importances(trials, log_names, maximize)
            except (ValueError, RuntimeError) as exc:  # e.g. no parameter common to every trial
                log.warning("Parameter importance failed: %s", exc)
                problem = f"Parameter importance could not be computed: {exc}"
            else:
                if not values:
                    problem = "Parameter importance needs parameters that every complete trial has."
        self.show_values(values)
        self.say(problem or f"How much each parameter explains of the objective's variation, over {count} "
                            "complete trials (optuna's parameter importance).")

    def show_values(self, values: dict[str, float]) -> None:
        self.values = dict(values)
        if self.bars is not None:
            self.plot.removeItem(self.bars)
            self.bars = None
        names = list(reversed(list(values)))  # the largest on top
        if names:
            self.bars = pg.BarGraphItem(x0=0, y=list(range(len(names))), height=0.6,
                                        width=[values[name] for name in names], brush=BEST_COLOR, pen=None)
            self.plot.addItem(self.bars)
            self.plot.setYRange(-0.6, len(names) - 0.4, padding=0)
            self.plot.setXRange(0, max(1e-9, max(values.values())) * 1.05, padding=0)
        self.plot.getAxis("left").setTicks([list(enumerate(names))])
