"""A run's TensorBoard event files (``TrainConfig.tensorboard``: a folder; empty: off), written through
``torch.utils.tensorboard`` so that TensorBoard reads them as its own: ``tensorboard --logdir FOLDER``.

Each run writes into its own subfolder of the folder (``run_folder``: the design's name and the start time),
so one folder holds many runs side by side and TensorBoard's HParams tab compares their settings and results.
A ``TensorBoardLog`` listens to the trainer's events (pass it along ``on_event``, like any listener): each
batch's loss (thinned when a run makes more than ~200 steps a second), the figures of every epoch, each layer's
training health when it is recorded and the run's settings as hparams; ``add_graph`` traces the model once; the
run's end, whatever its reason, writes the results and closes the files, and ``add_evaluation`` adds the test
figures measured after it.
Writing never stops a run: a folder that cannot be written is refused before the run (``check_folder``), and
any later failure is one warning, after which the log stays quiet and the run goes on. Nothing here imports
torch until a log is opened.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.controls import control
from engine.errors import TrainingError
from engine.paths import data_dir
from engine.schema import settings_of
from engine.training.events import BatchEnd, EpochEnd, HealthSample, RunFinished

log = logging.getLogger(__name__)
SETTING = "training.tensorboard"
MEASURES = ("grad_norm", "update_ratio", "mean", "std", "dead", "saturated")  # a LayerHealth's figures
EPOCH_FIGURES = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")  # an EpochEnd's
FINAL_METRICS = ("final/test_loss", "final/test_acc", "final/best_val_loss", "final/best_val_acc",
                 "final/epochs_done")  # the HParams tab's columns of results (written as scalars at the end)
# TensorBoard's event writer checksums every record in pure Python (~0.1 ms each on a busy CPU): a fast run's
# batch losses are thinned to at most this many per read-back (~4 a second: ~200 points a second), evenly spaced
# and always with the read-back's last batch; TensorBoard draws 1,000 points per curve anyway.
BATCH_POINTS = 50
QUEUE = 1000  # events the writer may hold before the training thread waits for it (a health sample is ~100)
Warn = Callable[[str], None]


def default_folder() -> Path:
    """Where the window's TensorBoard switch puts the runs' event files: the user's data folder."""
    return data_dir() / "tensorboard"


def check_folder(folder: str | os.PathLike) -> Path:
    """The folder, made if missing and checked writable now, before a run: TrainingError naming the setting."""
    path = Path(folder).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise TrainingError(f"The TensorBoard folder {folder} is a file: choose a folder for {control(SETTING)}.") \
            from None
    except (OSError, ValueError) as exc:
        raise TrainingError(f"The TensorBoard folder {folder} cannot be made ({_reason(exc)}): choose another "
                            f"folder for {control(SETTING)}.") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise TrainingError(f"The TensorBoard folder {folder} is not writable: choose another folder for "
                            f"{control(SETTING)}.")
    return path


def run_folder(folder: str | os.PathLike, name: str, started: datetime | None = None) -> Path:
    """A new subfolder of ``folder`` for one run, named by the design and the start time (``mlp-20250101-120000``,
    then ``-2``, ``-3``, ... for runs started in the same second): made here, so two runs never share one."""
    stem = re.sub(r"[^\w.-]+", "-", name).strip("-.") or "run"
    stamp = (started or datetime.now()).strftime("%Y%m%d-%H%M%S")
    root = check_folder(folder)
    for attempt in range(1, 1000):
        path = root / f"{stem}-{stamp}" if attempt == 1 else root / f"{stem}-{stamp}-{attempt}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise TrainingError(f"The TensorBoard folder {path} cannot be made ({_reason(exc)}): choose another "
                                f"folder for {control(SETTING)}.") from None
        return path
    raise TrainingError(f"Too many TensorBoard runs named {stem}-{stamp} in {root}: choose another folder for "
                        f"{control(SETTING)}.")


def open_hint(folder: str | os.PathLike) -> str:
    """How to look at the runs written into ``folder``: the command to run."""
    text = str(Path(folder).expanduser())
    quoted = f'"{text}"' if re.search(r"[\s'\"$`&|;()<>]", text) else text
    return f"tensorboard --logdir {quoted}"


def run_hparams(training: Mapping[str, Any], data_settings: Mapping[str, Any], design: str,
                parameters: int) -> tuple[dict[str, Any], dict[str, list]]:
    """The run's settings as TensorBoard hparams (the settings that matter for these values, data settings as
    ``data.<name>``, the design's name and parameter count) and the choices of each choice setting."""
    from engine.settings import SECTIONS

    hparams: dict[str, Any] = {"design": design, "parameters": parameters}
    choices: dict[str, list] = {}
    for section, values, prefix in (("training", training, ""), ("data", data_settings, "data.")):
        for declared in settings_of(SECTIONS[section]):
            if declared.name not in values or declared.name == "tensorboard" or not declared.applies(values):
                continue
            value = values[declared.name]
            hparams[prefix + declared.name] = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) \
                else value
            options = list(declared.values()) if declared.choices else []
            if options and all(type(option) is type(value) for option in options):
                choices[prefix + declared.name] = options
    return hparams, choices


class TensorBoardLog:
    """One run's event files in ``folder`` (see ``run_folder``). Call it with each event of one ``Trainer.run``:
    the RunFinished (whatever the reason) writes the run's results and closes the files; ``add_evaluation`` adds
    the test figures measured after. ``warn`` gets the one sentence saying the log stopped; the run goes on."""

    def __init__(self, folder: str | os.PathLike, hparams: Mapping[str, Any], choices: Mapping[str, list] | None = None,
                 warn: Warn | None = None):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams as hparams_summaries

        self.folder = Path(folder)
        self.warn = warn or log.warning
        self.best_val_loss: float | None = None
        self.best_val_acc: float | None = None
        self.epochs_done = 0
        self.advice: tuple[str, ...] = ()
        self._failed = False
        self.writer: Any = None
        try:
            experiment, start, self._end = hparams_summaries(dict(hparams), dict.fromkeys(FINAL_METRICS, 0.0),
                                                             dict(choices or {}))
            self.writer = SummaryWriter(log_dir=str(self.folder), max_queue=QUEUE)
            self.writer.file_writer.add_summary(experiment)
            self.writer.file_writer.add_summary(start)
            self.writer.flush()
        except Exception as exc:  # noqa: BLE001 - any failure to write is the same to the user
            with contextlib.suppress(Exception):
                self.close()
            raise TrainingError(f"TensorBoard event files cannot be written in {self.folder} ({_reason(exc)}): "
                                f"choose another folder for {control(SETTING)}.") from None

    @property
    def active(self) -> bool:
        return self.writer is not None

    # -- the graph
    def add_graph(self, model, inputs) -> None:
        """Trace ``model`` on ``inputs`` (in eval mode: no batch statistics or random draws of the run change) and
        write its graph; a design that cannot be traced gets a warning in the log and the run goes on."""
        if self.writer is None:
            return
        printed = io.StringIO()  # torch prints a failed trace's error: it belongs in the log, not on stdout
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
                warnings.simplefilter("ignore")  # tracer warnings about Python values in forward
                self.writer.add_graph(model, inputs)
        except Exception as exc:  # noqa: BLE001 - tracing fails in many ways for some designs
            log.warning("The model's graph was not written to TensorBoard (tracing failed: %s); the rest is.",
                        _reason(exc))
            log.debug("Tracing printed: %s", printed.getvalue())

    # -- the events
    def __call__(self, event) -> None:
        if self.writer is None:
            return
        try:
            if isinstance(event, BatchEnd):
                self._batch(event)
            elif isinstance(event, EpochEnd):
                self._epoch(event)
            elif isinstance(event, HealthSample):
                self._health(event)
            elif isinstance(event, RunFinished):
                self._finish(event)
        except Exception as exc:  # noqa: BLE001 - the run goes on without its event files
            self._fail(exc)

    def _batch(self, event: BatchEnd) -> None:
        count = len(event.losses)
        every = -(-count // BATCH_POINTS)  # 1 (every batch) unless the run outpaces BATCH_POINTS
        for index in range((count - 1) % every, count, every):
            self.writer.add_scalar("batch/loss", event.losses[index], event.global_step - count + 1 + index)
        self.writer.add_scalar("batch/lr", event.lr, event.global_step)
        self.writer.add_scalar("batch/samples_per_s", event.samples_per_s, event.global_step)

    def _epoch(self, event: EpochEnd) -> None:
        for name in EPOCH_FIGURES:
            value = getattr(event, name)
            if value is not None:
                self.writer.add_scalar(f"epoch/{name}", value, event.epoch)
        if event.val_loss is not None and (self.best_val_loss is None or event.val_loss < self.best_val_loss):
            self.best_val_loss = event.val_loss
        if event.val_acc is not None and (self.best_val_acc is None or event.val_acc > self.best_val_acc):
            self.best_val_acc = event.val_acc
        self.epochs_done = event.epoch
        self.writer.flush()  # an epoch's figures are on disk once its line shows

    def _health(self, event: HealthSample) -> None:
        width = len(str(max(len(event.layers) - 1, 0)))
        for layer in event.layers:
            for measure in MEASURES:
                value = getattr(layer, measure)
                if value is not None:
                    self.writer.add_scalar(f"health/{layer.index:0{width}d}_{layer.kind}/{measure}", value,
                                           event.global_step)
        self.advice = event.advice

    def _finish(self, event: RunFinished) -> None:
        """The run ended (any reason): its results so far (the HParams tab's columns), how it ended, the health
        advice, the end of the hparams session; then the files are flushed and closed."""
        self.epochs_done = event.epochs_done
        for tag, value in (("final/best_val_loss", self.best_val_loss), ("final/best_val_acc", self.best_val_acc),
                           ("final/epochs_done", self.epochs_done)):
            if value is not None:
                self.writer.add_scalar(tag, value, self.epochs_done)
        self.writer.add_text("run/finished", f"{event.reason}: {event.message}", self.epochs_done)
        if self.advice:
            self.writer.add_text("health/advice", "\n\n".join(self.advice), self.epochs_done)
        self.writer.file_writer.add_summary(self._end)
        self.close()

    # -- after the run
    def add_evaluation(self, split: str, loss: float, accuracy: float | None) -> None:
        """The trained model's figures on ``split``, measured after the run ended (its files are closed by
        then): written as the final test metrics into one more small event file of the run's folder, which
        TensorBoard reads as the same run. Figures of another split are not test figures: nothing is written."""
        if split != "test" or self._failed:
            return
        from torch.utils.tensorboard import SummaryWriter

        try:
            with SummaryWriter(log_dir=str(self.folder)) as writer:
                writer.add_scalar("final/test_loss", loss, self.epochs_done)
                if accuracy is not None:
                    writer.add_scalar("final/test_acc", accuracy, self.epochs_done)
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def close(self) -> None:
        """Flush and close the files; later events write nothing (one log per run)."""
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()

    def _fail(self, exc: Exception) -> None:
        log.debug("TensorBoard writing failed", exc_info=True)
        self._failed = True
        try:
            self.close()
        except Exception:  # noqa: BLE001 - the files are lost already; the warning says so
            log.debug("Closing the TensorBoard files failed too", exc_info=True)
        self.writer = None
        self.warn(f"TensorBoard event files are no longer written to {self.folder} ({_reason(exc)}); "
                  "the training goes on.")


def open_log(folder: str, design_name: str, trainer, training: Mapping[str, Any], data_settings: Mapping[str, Any],
             warn: Warn | None = None) -> TensorBoardLog | None:
    """The TensorBoard log of the trainer's coming run, in a new subfolder of ``folder``, with its settings as
    hparams and the model's graph; None when ``folder`` is empty (off) or cannot be written (``warn`` says so)."""
    if not folder:
        return None
    warn = warn or log.warning
    try:
        hparams, choices = run_hparams(training, data_settings, design_name, trainer.parameter_count)
        board = TensorBoardLog(run_folder(folder, design_name), hparams, choices, warn)
    except TrainingError as exc:
        warn(f"{exc} The training goes on without TensorBoard event files.")
        return None
    board.add_graph(trainer.model, trainer.example_inputs())
    return board


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
