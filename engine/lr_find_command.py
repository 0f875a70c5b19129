"""`layerstudio lr-find`: the learning-rate range test headless (engine.training.lr_finder).

It takes the design and the same data and training settings as `layerstudio train` (the same layers: the
design's sections, ``--config``, then the flags; the same flags), plus the sweep's own (``--start-lr``,
``--end-lr``, ``--steps``) and ``--csv`` for the curve. It prints where the sweep stopped and, on its last
line, the suggested learning rate (``Suggested learning rate: 0.0032``), so a script can read it with
``tail -n 1``. No suggestion (the loss never fell, or exploded at once): the reason as an ``Error:`` line, exit 1.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from typing import Any, TextIO

from engine.training.config import LRFindConfig

SWEEP = {"sweep": LRFindConfig}  # the settings section of the sweep's own flags (engine.controls key "sweep.<name>")
CSV_SUFFIXES = (".csv",)


def add_lr_find_arguments(parser: argparse.ArgumentParser) -> None:
    """The run's settings exactly as `layerstudio train` takes them, the sweep's flags, and ``--csv``."""
    from engine.train_command import add_run_settings, add_setting_flags

    files = add_run_settings(parser)
    files.add_argument("--csv", metavar="CURVE.csv",
                       help="write the curve here: lr,loss,smoothed, one row per step (checked before the sweep)")
    add_setting_flags(parser, SWEEP)


def sweep_settings(args: argparse.Namespace) -> LRFindConfig:
    """The sweep's settings from its flags (the declared defaults for those not given), each checked as read."""
    from engine.schema import settings_of
    from engine.train_command import flag_value

    values: dict[str, Any] = {}
    for section, cls in SWEEP.items():
        for declared in settings_of(cls):
            given = getattr(args, f"{section}.{declared.name}", None)
            if given is not None:
                values[declared.name] = flag_value(section, declared, given)
    return LRFindConfig(**values).validate()


class SweepBar:
    """The sweep's progress, redrawn in place on stderr when it is a terminal; silent to a pipe or a file."""

    REFRESH_SECONDS = 0.1

    def __init__(self, err: TextIO | None = None):
        from engine.train_command import is_terminal

        self.err = err or sys.stderr
        self.live = is_terminal(self.err)
        self._last = 0.0
        self._width = 0

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if not self.live or (now - self._last < self.REFRESH_SECONDS and fraction < 1.0):
            return
        self._last = now
        size = max(10, min(30, shutil.get_terminal_size((80, 24)).columns - 60))
        filled = round(size * fraction)
        text = f"[{'#' * filled}{'.' * (size - filled)}] {message}"
        self.err.write("\r" + text.ljust(self._width))
        self.err.flush()
        self._width = max(self._width, len(text))

    def clear(self) -> None:
        if self._width:
            self.err.write("\r" + " " * self._width + "\r")
            self.err.flush()
            self._width = 0


def run_lr_find(args: argparse.Namespace) -> int:
    """Sweep, print where it stopped and the suggestion last; returns the exit code."""
    from engine.cli import error_line
    from engine.data import DataConfig, load_data
    from engine.errors import TrainingError
    from engine.files import check_output_path, write_text_atomically
    from engine.task import Task
    from engine.templates import load_design
    from engine.text import printable
    from engine.train_command import InterruptFlag, announce_download, layered_settings
    from engine.training import TrainConfig
    from engine.training.lr_finder import find_learning_rate

    spec, design = load_design(args.design)
    csv_path = check_output_path(args.csv, CSV_SUFFIXES, "--csv file", TrainingError) if args.csv else None
    sweep = sweep_settings(args)
    training, data_settings = layered_settings(args, design)
    config = TrainConfig.from_dict(training)
    data_config = DataConfig.from_dict(data_settings)
    announce_download(data_config)
    data = load_data(data_config)
    print(f"Data: {data.summary()}", flush=True)
    for note in data.notes:
        print(f"Note: {note}")
    print(f"Sweeping the learning rate from {sweep.start_lr:.3g} to {sweep.end_lr:.3g} over {sweep.steps} steps: "
          f"{config.optimizer}, batch size {config.batch_size}, seed {config.seed}", flush=True)
    bar = SweepBar()
    try:
        with InterruptFlag() as interrupted:
            finding = find_learning_rate(spec, data, config, sweep.start_lr, sweep.end_lr, sweep.steps,
                                         sweep.smoothing, sweep.diverge_factor, task=Task(bar, interrupted.is_set))
    finally:
        bar.clear()
    for note in finding.notes:
        print(f"Note: {note}")
    print(finding.stopped)
    lowest = finding.lowest
    if lowest is not None:
        print(f"Lowest smoothed loss {lowest[1]:.4g} at learning rate {lowest[0]:.3g}.")
    if csv_path is not None:
        write_text_atomically(csv_path, finding.csv_text(), "learning-rate curve", TrainingError)
        print(printable(f"Wrote the curve to {args.csv} ({len(finding.lrs)} rows)."))
    if finding.suggestion is None:
        print(error_line(finding.problem), file=sys.stderr)
        return 1
    index = finding.index
    assert index is not None  # a suggestion always has its step
    print(f"The smoothed loss fell fastest at step {index + 1}, learning rate {finding.suggestion:.3g} (smoothed loss "
          f"{finding.smoothed[index]:.4g}).")
    print(f"Suggested learning rate: {finding.suggestion:.2g}")
    return 0
