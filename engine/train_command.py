"""`layerstudio train`: train a design headless with a text progress bar, Ctrl-C saving a checkpoint.

Settings come in layers, later ones winning: the design file's own "training" and
"data" sections, then a ``--config run.json`` file, then the command-line flags.
"""
from __future__ import annotations

import argparse
import io
import math
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TextIO

from engine.cli import EXIT_INTERRUPTED
from engine.data.config import DataConfig, data_arg_forms, parse_data_arg
from engine.errors import DataError, TrainingError, WeightsError
from engine.files import check_output_path, read_json_object
from engine.schema import Setting, number, settings_of, when_text
from engine.settings import SECTIONS
from engine.spec import MAX_DESIGN_BYTES
from engine.torchrun import Unrecorded, add_launch_arguments, launch, launch_requested
from engine.training.checkpoint import CHECKPOINT_INTERVAL_S
from engine.training.health_rules import summary_line
from engine.training.tensorboard_log import check_folder

# A resumed run continues its optimizer, schedule and batch order: these cannot change half way.
FIXED_ON_RESUME = ("optimizer", "lr", "batch_size")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `layerstudio train`: the run's settings (``add_run_settings``) and the run's files."""
    files = add_run_settings(parser)
    files.add_argument("--save", metavar="WEIGHTS", help="write the trained state_dict here (.pt or .safetensors)")
    files.add_argument("--checkpoint", metavar="CK.pt",
                       help="write a resumable checkpoint here after every epoch, every few minutes inside a long "
                            "epoch, and when the run ends or is interrupted (without it, Ctrl-C saves to "
                            "DESIGN.checkpoint.pt next to the design)")
    files.add_argument("--checkpoint-every", type=float, metavar="MINUTES",
                       help="with --checkpoint: the longest time between two checkpoints inside an epoch "
                            f"(default {CHECKPOINT_INTERVAL_S / 60:g})")
    files.add_argument("--resume", metavar="CK.pt", help="continue the run saved in this checkpoint")
    add_launch_arguments(parser)


def add_run_settings(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """What ``layered_settings`` reads, for every command that trains (train, lr-find): ``--data`` (the sources are
    the registry's, engine.data.sources), one flag per declared setting (engine.schema; defaults None: only flags
    actually given override the files) and ``--config``; returns the "Files" group, for the command's own files."""
    parser.add_argument("--data", metavar="SOURCE",
                        help=f"{' | '.join(data_arg_forms())} (default: the design's own dataset, else "
                             f"{DataConfig().source}; ROOT defaults to the data folder)")
    add_setting_flags(parser)
    files = parser.add_argument_group("Files")
    files.add_argument("--config", metavar="RUN.json", help="a saved training configuration; flags override it")
    return files


def add_setting_flags(parser: argparse.ArgumentParser, sections: Mapping[str, type] = SECTIONS,
                      only: Collection[str] | None = None) -> None:
    """One flag per declared setting of ``sections`` (name -> settings class) with a flag (or per setting named in
    ``only``, keys like ``training.batch_size``), grouped as the Training tab groups them, its help saying what it
    accepts, its default and when it matters; the value lands in ``args.<section>.<name>`` and ``flag_value``
    checks it against its declaration."""
    for section, cls in sections.items():
        group = parser.add_argument_group("Data" if section == "data" else None)
        for declared in settings_of(cls):
            if declared.section:
                group = parser.add_argument_group(declared.section)
            dest = f"{section}.{declared.name}"
            if not declared.cli_flag or (only is not None and dest not in only):
                continue
            if declared.type is bool:
                group.add_argument(declared.cli_flag, dest=dest, action=argparse.BooleanOptionalAction, default=None,
                                   help=_flag_help(declared))
            else:
                group.add_argument(declared.cli_flag, dest=dest,
                                   metavar=declared.metavar or _METAVARS.get(declared.type, "NAME"),
                                   help=_flag_help(declared))


_METAVARS = {int: "N", float: "X", list: "X,Y,..."}
_ERRORS = {"training": TrainingError, "data": DataError}


def flag_value(section: str, declared: Setting, value: object) -> object:
    """A flag's value as its setting holds it (the text parsed and checked), or the section's error naming the
    flag: "--lr must be a number between 1e-08 and 1,000,000, got '-1'." (exit 1, like any user error)."""
    if not isinstance(value, str):
        return value  # a --no-/-- switch: already true or false
    try:
        return declared.parse_text(value)
    except ValueError as exc:
        raise _ERRORS.get(section, TrainingError)(f"{declared.cli_flag} must be {exc}, got {value!r}.") from None


def _flag_help(declared: Setting) -> str:
    if declared.choices:
        accepts = " | ".join(str(value) for value in declared.values())
    elif declared.type is bool:
        accepts = ""
    else:
        accepts = declared.accepts()
    default = declared.default
    if isinstance(default, bool):
        default = "on" if default else "off"
    elif isinstance(default, (list, tuple)):
        default = ",".join(number(value) for value in default)
    elif isinstance(default, (int, float)):
        default = number(default)
    parts = [declared.help, accepts, f"default {default}" if default != "" else ""]
    when = when_text(declared)
    if when:
        parts.append(f"used when {when}")
    return "; ".join(part for part in parts if part).replace("%", "%%")


# --------------------------------------------------------------------------- settings

def _section(data: dict, key: str, where: str) -> dict:
    section = data.get(key) or {}
    if not isinstance(section, dict):
        raise TrainingError(f"the {key!r} section of {where} must be an object")
    return section


def layered_settings(args: argparse.Namespace, design: dict, checkpoint: dict | None = None) -> tuple[dict, dict]:
    """(TrainConfig dict, DataConfig dict), later layers winning: the design's "training"/"data" sections,
    a resumed checkpoint's, the --config file's, then the command-line flags."""
    training = dict(_section(design, "training", "the design"))
    data = dict(_section(design, "data", "the design"))
    if checkpoint is not None:
        training.update(_section(checkpoint, "config", "the checkpoint"))
        data.update(_section(checkpoint, "data", "the checkpoint"))
    if args.config:
        config = read_json_object(args.config, "training configuration", MAX_DESIGN_BYTES, TrainingError)
        # A saved TrainConfig, or a file with "training" (and "data") sections, e.g. a design saved by the window.
        training.update(_section(config, "training", args.config) if "training" in config else config)
        data.update(_section(config, "data", args.config))
    if getattr(args, "data", None):
        named = parse_data_arg(args.data)
        data.update(source=named.source, root=named.root)
    sections = {"training": training, "data": data}
    for section, cls in SECTIONS.items():
        for declared in settings_of(cls):
            value = getattr(args, f"{section}.{declared.name}", None)
            if value is not None:
                sections[section][declared.name] = flag_value(section, declared, value)
    return training, data


def check_resumable(training: dict, checkpoint: dict) -> None:
    """TrainingError when the settings change what a resumed run must keep (optimizer, lr, batch size)."""
    saved = _section(checkpoint, "config", "the checkpoint")
    for name in FIXED_ON_RESUME:
        if name in saved and training.get(name) != saved[name]:
            flag = "--" + name.replace("_", "-")
            raise TrainingError(f"the checkpoint was trained with {name} {saved[name]!r} and a resumed run keeps it: "
                                f"leave out {flag} (or a --config that changes it), "
                                "or start a new run without --resume")


def checkpoint_interval_s(args: argparse.Namespace) -> float:
    """Seconds between mid-epoch checkpoints, from --checkpoint-every (TrainingError when it makes no sense)."""
    minutes = getattr(args, "checkpoint_every", None)
    if minutes is None:
        return CHECKPOINT_INTERVAL_S
    if not args.checkpoint:
        raise TrainingError("--checkpoint-every needs --checkpoint PATH: say where the checkpoints go")
    if not (minutes > 0 and math.isfinite(minutes)):
        raise TrainingError(f"--checkpoint-every must be a number of minutes above 0, got {minutes:g}")
    return minutes * 60.0


def default_checkpoint_path(design: str) -> Path:
    """Where Ctrl-C saves when no --checkpoint was given: next to the design file, or here for a template."""
    path = Path(design)
    if path.suffix.lower() == ".json" and path.parent.is_dir():
        return path.with_name(path.stem + ".checkpoint.pt")
    return Path(f"{path.name}.checkpoint.pt")


# --------------------------------------------------------------------------- output

def _format_accuracy(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (a pipe, a file or a closed stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


class ProgressPrinter:
    """Turns trainer events into progress on stderr and one line per epoch on stdout.

    On a terminal the progress is a bar redrawn in place with \\r; to a pipe or a file (a log, CI) it
    is a plain line at the first batch and then at most every PLAIN_SECONDS, never a \\r."""

    REFRESH_SECONDS = 0.1   # bar redraws on a terminal
    PLAIN_SECONDS = 30.0    # plain progress lines otherwise

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, health_lines: bool = False):
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.health_lines = health_lines  # --health: a line of per-layer health after each epoch's line
        self.health = None  # the latest HealthSample
        self.live = is_terminal(self.err)
        self.clock = clock
        self._last_draw: float | None = None
        self._loss_sum = 0.0
        self._loss_count = 0
        self._epoch = -1
        self._bar_width = 0
        self.epochs_printed = 0

    def __call__(self, event) -> None:
        handler = getattr(self, "on_" + type(event).__name__, None)
        if handler is not None:
            handler(event)

    def on_RunStarted(self, event) -> None:  # noqa: N802 - named after the event class
        start = f", resuming after epoch {event.start_epoch}" if event.start_epoch else ""
        self.print(f"Training on {event.device_name or event.device}: {event.parameters:,} parameters, "
                   f"{event.train_samples} train / {event.val_samples} val samples, "
                   f"{plural(event.epochs, 'epoch')} of {plural(event.steps_per_epoch, 'step')}{start}")
        for note in event.notes:
            self.print(f"Note: {note}")

    def on_BatchEnd(self, event) -> None:  # noqa: N802
        if event.epoch != self._epoch:
            self._epoch, self._loss_sum, self._loss_count = event.epoch, 0.0, 0
        finite = [loss for loss in event.losses if loss == loss]
        self._loss_sum += sum(finite)
        self._loss_count += len(finite)
        now = self.clock()
        last_step = event.step >= event.steps_per_epoch  # the bar shows it; a plain line leaves it to the epoch line
        interval = self.REFRESH_SECONDS if self.live else self.PLAIN_SECONDS
        if self._last_draw is not None and now - self._last_draw < interval and not (self.live and last_step):
            return
        self._last_draw = now
        mean = self._loss_sum / self._loss_count if self._loss_count else float("nan")
        done = min(event.step, event.steps_per_epoch)
        speed = f"{event.samples_per_s:,.0f} samples/s"
        if not self.live:
            print(f"Epoch {event.epoch}: step {done}/{event.steps_per_epoch}, loss {mean:.4f}, {speed}",
                  file=self.err, flush=True)
            return
        width = max(10, min(30, shutil.get_terminal_size((80, 24)).columns - 60))
        filled = round(width * done / max(event.steps_per_epoch, 1))
        bar = "#" * filled + "." * (width - filled)
        text = f"Epoch {event.epoch} [{bar}] {done}/{event.steps_per_epoch}  loss {mean:.4f}  {speed}"
        self.err.write("\r" + text.ljust(self._bar_width))
        self.err.flush()
        self._bar_width = max(self._bar_width, len(text))

    def on_EpochEnd(self, event) -> None:  # noqa: N802
        self.print("  ".join(event.parts()))
        self.epochs_printed += 1
        if self.health_lines and self.health is not None:
            self.print(summary_line(self.health))

    def on_HealthSample(self, event) -> None:  # noqa: N802
        self.health = event

    def print_advice(self) -> None:
        """What the training health rules found during the run (nothing when health was not recorded)."""
        if self.health is None:
            return
        advice = self.health.advice
        if not advice:
            self.print("Training health: no problems seen.")
            return
        self.print(f"Training health: {plural(len(advice), 'problem')} seen:")
        for sentence in advice:
            self.print(f"  {sentence}")

    def print(self, line: str) -> None:
        """A line on stdout, after clearing the progress bar so the two never mix on a terminal."""
        self.clear_bar()
        print(line, file=self.out, flush=True)

    def clear_bar(self) -> None:
        if self._bar_width:
            self.err.write("\r" + " " * self._bar_width + "\r")
            self.err.flush()
            self._bar_width = 0


class InterruptFlag:
    """While active, the first Ctrl-C (SIGINT) only sets a flag read by should_stop; a second one aborts."""

    def __init__(self):
        self.event = threading.Event()
        self._previous = None

    def __enter__(self) -> InterruptFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


# --------------------------------------------------------------------------- the command

def run_train(args: argparse.Namespace) -> int:
    """Train, print progress and the test result; returns the exit code (Ctrl-C: engine.cli's EXIT_INTERRUPTED)."""
    from engine.history import RunRecorder
    from engine.io import read_checkpoint
    from engine.templates import load_design
    from engine.training import TrainConfig
    from engine.training.distributed import join_world

    spec, design = load_design(args.design)
    check_output_paths(args)
    interval_s = checkpoint_interval_s(args)
    checkpoint = read_checkpoint(args.resume) if args.resume else None
    training, data_settings = layered_settings(args, design, checkpoint)
    if checkpoint is not None:
        check_resumable(training, checkpoint)
    config = TrainConfig.from_dict(training)
    data_config = DataConfig.from_dict(data_settings)
    if launch_requested(args):  # checked above once, then started once per process (engine.torchrun)
        return launch(args, getattr(args, "argv", sys.argv[1:]), config.batch_size)
    world = join_world(config.device)  # one process, or a rank of a run torchrun started
    try:
        if config.tensorboard and world.is_main:
            check_folder(config.tensorboard)  # refused before the data loads, not after the run
        recorder = RunRecorder(None, design_name(args.design, design), spec, config.to_dict(),
                               data_config.to_dict()) if world.is_main else Unrecorded()
        with recorder.recording():  # a run that fails before or while training is recorded with its reason
            return _train(args, spec, config, data_config, checkpoint, interval_s, recorder, world)
    finally:
        world.close()


def _train(args, spec, config, data_config, checkpoint, interval_s, recorder, world) -> int:
    """Load the data, train with progress, save what was asked and evaluate; ``recorder`` hears every event.
    With several processes rank 0 alone prints, writes and evaluates; the others train beside it."""
    from engine.data import load_data
    from engine.io import save_checkpoint, save_weights
    from engine.training import Trainer
    from engine.training.checkpoint import CheckpointWriter

    main = world.is_main
    if main:
        announce_download(data_config)
        data = load_data(data_config)  # rank 0 downloads what is missing before the others read it
    world.barrier()
    if not main:
        data = load_data(data_config)
    trainer = Trainer(spec, data, config, world)
    if checkpoint is not None:
        trainer.load_checkpoint(checkpoint)
    health_lines = getattr(args, "training.health", None) is True  # --health given
    printer = ProgressPrinter(health_lines=health_lines) if main else \
        ProgressPrinter(io.StringIO(), io.StringIO(), health_lines=health_lines)
    if world.distributed:
        printer.print(f"Processes: {world.size} (torch.distributed, rank 0 writes the files)")
    printer.print(f"Data: {data.summary()}")
    for note in data.notes:
        printer.print(f"Note: {note}")
    # The data settings ride along in every checkpoint, so `--resume` alone trains on the same data.
    extra = {"data": data_config.to_dict()}
    writer = CheckpointWriter(trainer, args.checkpoint, interval_s, extra,
                              on_error=lambda text: printer.print(f"Warning: {text}")) \
        if args.checkpoint and main else None
    board = open_tensorboard(config, Path(args.design).stem, trainer, data_config, printer) if main else None

    def on_event(event) -> None:
        if writer is not None:  # every epoch, every interval inside an epoch, and at the end
            writer(event)  # before the epoch's line: once it shows, the checkpoint is on disk
        if board is not None:  # its files close when the run ends, whatever the reason
            board(event)
        printer(event)
        recorder(event)

    with InterruptFlag() as interrupted:
        finished = trainer.run(on_event=on_event, should_stop=interrupted.is_set)
    printer.clear_bar()
    printer.print_advice()

    stopped = finished.reason == "stopped"
    checkpoint_path = Path(args.checkpoint) if args.checkpoint else (
        default_checkpoint_path(args.design) if stopped else None)
    if checkpoint_path is not None and finished.reason in CheckpointWriter.FINAL_REASONS and main:
        if writer is None:
            save_checkpoint(checkpoint_path, {**trainer.checkpoint(), **extra})
        elif writer.error is not None:
            raise WeightsError(writer.error)
        printer.print(f"Checkpoint saved to {checkpoint_path}")
        recorder.set_outputs(checkpoint_path=checkpoint_path.resolve())
    if args.save and finished.reason in ("completed", "stopped", "early_stopped") and main:
        save_weights(trainer.model, args.save)
        printer.print(f"Weights saved to {args.save}")
        recorder.set_outputs(weights_path=Path(args.save).resolve())
    if stopped:
        printer.print(f"Stopped after {plural(finished.epochs_done, 'complete epoch')}; continue with: "
                      f"layerstudio train {args.design} --resume {checkpoint_path}")
        return EXIT_INTERRUPTED
    if finished.reason not in ("completed", "early_stopped"):
        from engine.cli import error_line

        if main or finished.reason in ("error", "out_of_memory"):  # what only one rank may have hit
            print(("" if main else f"Rank {world.rank}: ") + error_line(finished.message), file=sys.stderr)
        return 1
    if not main:
        return 0
    if finished.reason == "early_stopped" or not printer.epochs_printed:
        printer.print(f"{'Stopped early' if finished.reason == 'early_stopped' else 'Nothing to train'}: "
                      f"{finished.message}")
    evaluated = final_evaluation(trainer)
    if evaluated is not None:
        recorder.set_test(evaluated[1], evaluated[2])
        if board is not None:
            board.add_evaluation(*evaluated)
    printer.print(evaluation_line(evaluated))
    return 0


def open_tensorboard(config, design_name: str, trainer, data_config, printer: ProgressPrinter):
    """--tensorboard: the run's TensorBoard log (engine.training.tensorboard_log), said where it goes; None when off."""
    from engine.training.tensorboard_log import open_hint, open_log

    board = open_log(config.tensorboard, design_name, trainer, config.to_dict(), data_config.to_dict(),
                     warn=lambda text: printer.print(f"Warning: {text}"))
    if board is not None:
        printer.print(f"TensorBoard: writing to {board.folder}; see it with: {open_hint(config.tensorboard)}")
    return board


def design_name(design_arg: str, design: dict) -> str:
    """How the run history names a run's design: its own name, else the file's stem (or the template's name)."""
    name = design.get("name")
    return name if isinstance(name, str) and name.strip() else Path(design_arg).stem


def announce_download(data_config) -> None:
    """Say what loading the data will download, and where to, before the download starts."""
    from engine.data.downloads import pending_download

    pending = pending_download(data_config)
    if pending is not None and pending.enabled:
        print(pending.sentence(), flush=True)


def check_output_paths(args: argparse.Namespace) -> None:
    """Refuse a --save or --checkpoint path that could not be written (suffix, folder) before training, not after it."""
    from engine.io import CHECKPOINT_SUFFIXES, WEIGHTS_SUFFIXES

    for flag, path, suffixes in (("--save", args.save, WEIGHTS_SUFFIXES),
                                 ("--checkpoint", args.checkpoint, CHECKPOINT_SUFFIXES)):
        if path:
            check_output_path(path, suffixes, f"{flag} file", WeightsError)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def final_evaluation(trainer) -> tuple[str, float, float | None] | None:
    """The trained model's (split, loss, accuracy) on the test split (the validation split when there is no test
    set; accuracy None for regression); None without either."""
    split = "test" if len(trainer.data.test_x) else "val"
    if not len(getattr(trainer.data, f"{split}_x")):
        return None
    result = trainer.evaluate(split)
    return split, result.loss, result.accuracy


def evaluation_line(evaluated: tuple[str, float, float | None] | None) -> str:
    """`Test loss 0.081  accuracy 97.4%` (the loss only for regression)."""
    if evaluated is None:
        return "No test or validation samples: nothing to evaluate"
    split, loss, accuracy = evaluated
    line = f"{split.capitalize()} loss {loss:.3g}"
    if accuracy is not None:
        line += f"  accuracy {_format_accuracy(accuracy)}"
    return line

