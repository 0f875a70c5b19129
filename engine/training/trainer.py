"""The Trainer: a fast, stoppable, resumable run of one design on one dataset with one TrainConfig.

Speed: the data sits on the training device as whole tensors; each epoch draws a
seeded permutation and cuts batches by indexing (no per-sample DataLoader), and
batch losses and correct counts stay in device tensors that are read back a few
times a second and at each epoch end (no per-batch host-device sync).

Safety: a NaN/Inf loss, or a loss that stays far above its starting value
(engine.divergence), ends the run as "diverged" with the last good weights
restored; out-of-memory and any other exception end the run with a reason and a
message instead of escaping ``run()``. Progress leaves as plain event
dataclasses through one callback, so the GUI thread, the CLI and tests all drive
the same code; nothing here knows Qt.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace

import torch
from torch import nn

from engine import preflight
from engine.build import build_model
from engine.controls import control
from engine.data import augment_batch
from engine.device_memory import free_device_memory
from engine.divergence import LossWatch
from engine.errors import SpecError, TrainingError
from engine.evaluation import Evaluation, check_split, input_reshape_needed
from engine.memory import check_training_fits
from engine.shapes import analyze
from engine.spec import NetworkSpec
from engine.training.batches import DeviceData
from engine.training.checkpoint import capture_checkpoint, restore_checkpoint
from engine.training.config import HISTORY_KEYS, TrainConfig
from engine.training.distributed import SINGLE, World
from engine.training.early_stopping import EarlyStopping, watched_metric
from engine.training.evaluation import evaluate_split, infer_split
from engine.training.events import EpochEnd, Event, FinishReason, RunFinished, RunStarted
from engine.training.health import HealthRecorder
from engine.training.objective import Objective, weight_penalty
from engine.training.optim import LearningRateSchedule, initialize_weights, make_optimizer, optimizer_step
from engine.training.progress import _EpochProgress, steps_per_epoch
from engine.training.readback import READBACK_INTERVAL_S, _LastGoodWeights, _ReadBack
from engine.training.runtime import (
    RandomStreams,
    amp_dtype,
    describe_failure,
    device_name,
    resolve_device,
    use_channels_last,
)

COMPILE_OPTIONS: dict = {}  # keyword arguments for torch.compile when TrainConfig.compile is on (default: inductor)
log = logging.getLogger(__name__)


def _never() -> bool:
    return False


def _ignore(event) -> None:
    return None


class Trainer:
    """Trains one design on one dataset with one config; ``run()`` can be called again after a stop and
    continues where it left off (also mid-epoch), ``checkpoint()``/``load_checkpoint()`` carry that
    state (weights, optimizer, schedule, scaler, RNG, progress) across processes.

    Threading: ``run()`` blocks its thread; ``pause()``, ``resume()`` and ``stop()`` may be called
    from any other thread. ``run()`` borrows torch's global RNG for dropout and restores it after.

    ``world`` (engine.training.distributed) is this process's place in a run of several processes started by
    torchrun; every difference such a run makes is a call on it, guarded by ``world.distributed``.
    """

    def __init__(self, spec: NetworkSpec, data, config: TrainConfig, world: World = SINGLE):
        config = self.config = replace(config).validate()  # a private copy: later edits cannot reach a run
        self.spec, self.data, self.world = spec, data, world
        self.notes: list[str] = []
        self.device = world.place(resolve_device(config.device))
        self.task = data.task
        self.train_samples = data.train_size if hasattr(data, "train_size") else len(data.train_x)
        if self.train_samples == 0:
            raise TrainingError(f"the data has no training samples: pick a dataset with samples or lower "
                                f"{control('data.val_fraction')}")
        reshape = input_reshape_needed(spec.input_shape, data.input_shape)  # TrainingError when sizes differ
        analysis = analyze(spec)
        if not analysis.ok:
            row = analysis.errors[0]
            raise TrainingError(f"the design has an error at layer {row.path} ({row.kind}): {row.error}")
        preflight.check(spec, analysis, data, config.batch_size, self.train_samples)
        world.check(config.batch_size, self.train_samples)
        check_training_fits(analysis, config, self.device, data)  # before build_model allocates anything
        assert analysis.output_shape is not None  # a design without errors knows every shape
        self.objective = Objective.for_data(spec, analysis.output_shape, data, config)
        ends_in_probabilities = bool(spec.layers) and spec.layers[-1].kind == "Sigmoid"
        if self.objective.name == "bce" and not ends_in_probabilities:
            raise TrainingError("loss 'bce' needs outputs between 0 and 1: end the design with a Sigmoid, "
                                f"or set {control('training.loss')} to bce_with_logits, which takes the raw outputs")
        self.classification = self.objective.classification
        self.amp_dtype = amp_dtype(config.amp, self.device, self.notes)
        self.channels_last = use_channels_last(config.channels_last, spec.input_shape, self.notes)
        self.augment = data.augment if getattr(data.augment, "active", False) else None
        self.device_data = DeviceData(data, spec.input_shape, self.device, reshape, self.channels_last,
                                      config.batch_size, config.seed, world)
        self.streaming = self.device_data.streaming

        self.model, self._rng = self._build_model(spec)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not self.trainable:
            raise TrainingError("the design has no trainable parameters: unfreeze a layer or add one with weights")
        penalised = config.l1 or config.l2
        self._penalised: list[torch.Tensor] = [p for p in self.trainable if p.dim() > 1] if penalised else []
        self._forward = torch.compile(self.model, **COMPILE_OPTIONS) if config.compile else self.model
        self._step_forward = self._forward  # the training step's forward: under DDP with several processes
        if world.distributed:
            ddp = world.wrap(self.model, self.device)
            self._step_forward = torch.compile(ddp, **COMPILE_OPTIONS) if config.compile else ddp
        # Per-layer training health (engine.training.health); hooks would make torch.compile recompile. With several
        # processes rank 0 alone reports it.
        self.health = HealthRecorder(self.model, [layer.kind for layer in spec.layers], hooks=not config.compile) \
            if config.health and world.is_main else None
        self.optimizer = make_optimizer(self.trainable, config, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp_dtype is torch.float16 else None
        self.steps_per_epoch = steps_per_epoch(self.train_samples, config.batch_size, world.size)
        self.schedule = LearningRateSchedule(self.optimizer, config, self.steps_per_epoch)
        self.generator = torch.Generator().manual_seed(config.seed)  # epoch permutations
        # each rank augments its own samples with its own stream
        self.augment_generator = torch.Generator(device=self.device).manual_seed((config.seed + 1 + world.rank) % 2**63)
        self.stop_metric, notes = watched_metric(config.early_stopping_metric, len(data.val_x) > 0, self.classification)
        if config.early_stopping:
            self.notes += notes

        self.epoch = 0  # epochs completed
        self.global_step = 0  # optimizer steps taken
        self.history: dict[str, list[float | None]] = {key: [] for key in HISTORY_KEYS}
        self._progress: _EpochProgress | None = None  # set while an epoch is unfinished
        self.early_stopping = EarlyStopping(self.stop_metric, config.patience, config.min_delta)
        self._best_weights: dict | None = None  # the best epoch's weights (restore_best)
        self._last_good: _LastGoodWeights | None = None
        self.loss_watch = LossWatch(config.batch_size)  # divergence beyond NaN: a sustained blow-up of the loss
        self._share = 1.0  # the factor on this rank's loss (World.share); 1 in one process
        self._agreed_stop = False  # several processes stop together, at a step they agreed on (World.reduce_step)
        self._stop = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()
        self._running = False

    # -- set-up helpers
    def _build_model(self, spec: NetworkSpec) -> tuple[nn.Module, RandomStreams]:
        """Build and initialise the model from the seed; the global RNG stream that continues from there
        (dropout) becomes the trainer's own, and the caller's global RNG is left as it was."""
        with RandomStreams(self.device).seeded(self.config.seed) as streams:
            try:
                model = build_model(spec)
            except SpecError as exc:
                raise TrainingError(f"the design cannot be built: {exc}") from None
            initialize_weights(model, self.config, spec)
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model, streams

    @contextmanager
    def _rng_scope(self):
        """While training, torch's global RNG (used by dropout) runs the trainer's own stream."""
        with self._rng.active():
            self._running = True
            try:
                yield
            finally:
                self._running = False

    # -- control from other threads
    def pause(self) -> None:
        """Hold the run between two batches until resume() or stop()."""
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()

    def stop(self) -> None:
        """End the run before the next batch (also wakes a paused run); run() then returns 'stopped'."""
        self._stop.set()
        self._resumed.set()

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    @property
    def running(self) -> bool:
        return self._running

    @property
    def lr(self) -> float:
        return self.schedule.lr

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def example_inputs(self, count: int = 2) -> torch.Tensor:
        """The first ``count`` training samples as the model takes them, on the device: an input to trace the
        model with (TensorBoard's graph) without touching the run's data order or random streams."""
        if self.streaming:
            dataset = self.data.train_dataset
            x = torch.stack([dataset[index][0] for index in range(min(count, len(dataset)))])
        else:
            x = self.data.train_x[:count]
        return self.device_data.model_inputs(x.to(self.device))

    # -- the run
    def run(self, on_event: Callable[[Event], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> RunFinished:
        """Train from ``self.epoch`` (and any unfinished epoch) to ``config.epochs``; never raises.

        ``on_event`` receives RunStarted, BatchEnd (a few per second), EpochEnd and RunFinished;
        ``should_stop`` is polled before every batch. Returns the RunFinished it also emits.
        """
        emit = on_event or _ignore
        should_stop = should_stop or _never
        if self._running:
            return RunFinished(FinishReason.ERROR, "this trainer is already running: wait for its run to finish",
                               self.epoch)
        failure: tuple[FinishReason, str] | None = None
        try:
            with self._rng_scope():
                finished = self._run(emit, should_stop)
        except Exception as exc:  # every failure becomes a reason and a message
            failure = describe_failure(exc, self.config, self.device, log)
        if failure is not None:  # outside the except block: the traceback no longer pins batch tensors
            reason, message = failure
            self._progress = None
            if reason is FinishReason.OUT_OF_MEMORY:
                self._release_memory()
            finished = RunFinished(reason, message, self.epoch)
        self._stop.clear()
        log.info("Run on %s ended (%s; epochs done: %d): %s", self.device, finished.reason, self.epoch,
                 finished.message)
        try:
            emit(finished)
        except Exception:  # a broken listener must not turn a finished run into a crash
            log.exception("The listener of the finished run failed")
        return finished

    def _run(self, emit, should_stop) -> RunFinished:
        cfg = self.config
        if not self.streaming:
            self.device_data.split("train")
        emit(RunStarted(
            device=str(self.device), device_name=device_name(self.device), epochs=cfg.epochs,
            start_epoch=self.epoch, steps_per_epoch=self.steps_per_epoch, parameters=self.parameter_count,
            train_samples=self.train_samples, val_samples=len(self.data.val_x), notes=tuple(self.notes),
        ))
        if self.epoch >= cfg.epochs:
            return RunFinished(FinishReason.COMPLETED, f"already trained {self.epoch} of {cfg.epochs} epochs: "
                                                      f"raise {control('training.epochs')} to go on", self.epoch)
        self.model.train()
        self._agreed_stop = False
        self._last_good = _LastGoodWeights(self.model, self.global_step)
        while self.epoch < cfg.epochs:
            ended = self._train_epoch(emit, should_stop)
            if ended is None:
                ended = self._end_epoch(emit)
            if ended is not None:
                return ended
        return self._completed()

    def _train_epoch(self, emit, should_stop) -> RunFinished | None:
        """Train the current epoch (or its rest); returns a RunFinished if the run must end here."""
        progress = self._progress or _EpochProgress(torch.randperm(self.train_samples, generator=self.generator))
        self._progress = progress
        reader = _ReadBack(self, progress, emit)
        train_step, stop_requested, health = self._train_step, self._stop.is_set, self.health
        world = self.world if self.world.distributed else None
        for xb, yb in self.device_data.epoch_batches(progress.perm, progress.step, self.steps_per_epoch, self.epoch):
            if not self._resumed.is_set():
                ended = reader.flush()
                if ended is not None:
                    return ended
                progress.seconds += reader.pause_clock()
                self._wait_while_paused(should_stop)
                reader.restart_clock()
            if self._agreed_stop if world is not None else stop_requested() or should_stop():
                return reader.flush() or self._stopped(progress, reader)
            epoch_end = progress.step + 1 == self.steps_per_epoch
            samples = xb.shape[0]
            if world is not None:  # the global batch's size, of which this rank trains on xb
                samples = min(self.config.batch_size, self.train_samples - progress.step * self.config.batch_size)
                self._share = world.share(xb.shape[0], samples)
            if health is not None and (epoch_end or reader.due_after_step()) and \
                    health.measure_next(self.global_step, epoch_end):
                with health.step():  # measure the batch whose figures the next read-back takes
                    loss, correct = train_step(xb, yb)
            else:
                loss, correct = train_step(xb, yb)
            progress.step += 1
            self.global_step += 1
            due = reader.due()
            if world is not None:
                loss, correct, self._agreed_stop, due = world.reduce_step(loss, correct, xb.shape[0], samples,
                                                                          stop_requested() or should_stop(), due)
            reader.add(loss, correct, samples)
            if progress.step == self.steps_per_epoch or due:
                ended = reader.flush()
                if ended is not None:
                    return ended
        progress.seconds += reader.pause_clock()
        return None

    def _train_step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One optimizer step; returns the batch loss and correct count as device tensors (no sync)."""
        if self.augment is not None:
            xb = augment_batch(xb, self.augment, self.augment_generator)
            if self.device_data.reconstruct:
                yb = xb
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
        self.optimizer.zero_grad(set_to_none=True)
        out = self._forward_amp(xb, self._step_forward)
        loss = self.objective.loss(out, yb)
        total = loss if self._share == 1.0 else loss * self._share  # several processes: World.share
        if self._penalised:
            total = total + weight_penalty(self._penalised, self.config.l1, self.config.l2)
        optimizer_step(total, self.optimizer, self.scaler, self.trainable, self.config.grad_clip)
        if self.schedule.active:
            self.schedule.step()
        correct = (self.objective.predict(out.detach()) == yb).sum() if self.classification else None
        return loss.detach(), correct

    def _wait_while_paused(self, should_stop) -> None:
        """Block (no spinning) until resumed or stopped; wakes a few times a second to poll should_stop."""
        while not self._resumed.wait(READBACK_INTERVAL_S):
            if self._stop.is_set() or should_stop():
                return

    def _stopped(self, progress: _EpochProgress, reader: _ReadBack) -> RunFinished:
        """Keep the unfinished epoch's progress so the next run() (or a checkpoint) continues it."""
        progress.seconds += reader.pause_clock()
        where = f"epoch {self.epoch + 1}, step {progress.step} of {self.steps_per_epoch}"
        return RunFinished(FinishReason.STOPPED, f"stopped at {where}; run again to continue", self.epoch)

    def _end_epoch(self, emit) -> RunFinished | None:
        """Validation, history, schedule and early stopping after an epoch; emits EpochEnd."""
        progress, cfg = self._progress, self.config
        assert progress is not None  # the epoch that just ended
        train_loss, train_acc = progress.figures(self.train_samples, self.steps_per_epoch, cfg.batch_size,
                                                 self.classification)
        val_loss = val_acc = None
        if self.world.distributed:
            self.world.settle(self.model)
        if len(self.data.val_x):
            started = time.perf_counter()
            val_loss, val_acc, _ = self._infer("val", keep=False)
            if self.world.distributed:
                val_loss, val_acc = self.world.agreed(val_loss, val_acc)
            progress.seconds += time.perf_counter() - started
        lr = self.lr
        self.epoch += 1
        self._progress = None
        for key, value in zip(HISTORY_KEYS, (train_loss, train_acc, val_loss, val_acc, lr), strict=True):
            self.history[key].append(value)
        self.schedule.end_epoch(val_loss if val_loss is not None else train_loss)
        stop_early = cfg.early_stopping and self._update_best()
        emit(EpochEnd(self.epoch, cfg.epochs, train_loss, train_acc, val_loss, val_acc, lr, progress.seconds))
        if stop_early:
            restored = self._restore_best()
            return RunFinished(
                FinishReason.EARLY_STOPPED,
                f"{self.stop_metric} did not improve by more than {cfg.min_delta:g} for {cfg.patience} epochs; "
                f"stopped after epoch {self.epoch}{restored}",
                self.epoch,
            )
        return None

    def _metric(self, name: str) -> float | None:
        return self.history[name][-1] if self.history[name] else None

    def _update_best(self) -> bool:
        """Show early stopping the epoch's watched metric, keep the weights of a new best (restore_best);
        True when patience has run out."""
        if self.early_stopping.observe(self._metric(self.stop_metric), self.epoch) and self.config.restore_best:
            self._best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return self.early_stopping.exhausted

    def _restore_best(self) -> str:
        """Load the best epoch's weights (restore_best); a phrase for the finishing message."""
        best = self.early_stopping
        if not self.config.restore_best or self._best_weights is None or best.best_epoch == self.epoch:
            return ""
        self.model.load_state_dict(self._best_weights)
        return f"; restored the weights of epoch {best.best_epoch} ({self.stop_metric} {best.best:.4g})"

    def _completed(self) -> RunFinished:
        restored = self._restore_best() if self.config.early_stopping else ""
        parts = [f"train loss {self.history['train_loss'][-1]:.4g}"]
        val_loss, val_acc = self._metric("val_loss"), self._metric("val_acc")
        if val_loss is not None:
            parts.append(f"val loss {val_loss:.4g}")
        if val_acc is not None:
            parts.append(f"val accuracy {100 * val_acc:.1f}%")
        return RunFinished(FinishReason.COMPLETED, f"trained {self.epoch} epochs: {', '.join(parts)}{restored}",
                           self.epoch)

    def _release_memory(self) -> None:
        """After an out-of-memory: drop gradients and device copies of the data, return cached blocks."""
        self.optimizer.zero_grad(set_to_none=True)
        self.device_data.release()
        self._last_good = None
        free_device_memory(self.device)

    def _forward_amp(self, xb: torch.Tensor, forward=None) -> torch.Tensor:
        """The model's output (through ``forward``, by default the plain model's), under autocast when mixed
        precision is on."""
        if forward is None:
            forward = self._forward
        if self.amp_dtype is None:
            return forward(xb)
        with torch.autocast(self.device.type, dtype=self.amp_dtype):
            return forward(xb)

    # -- evaluation (engine.evaluation holds the one implementation)
    def _infer(self, split: str, keep: bool) -> tuple[float, float | None, torch.Tensor | None]:
        """Mean loss, accuracy and (``keep``) every prediction of a split, on the device, under autocast."""
        return infer_split(self.model, self._forward_amp, self.objective, self.device_data, split,
                           self.config.batch_size, keep)

    def evaluate(self, split: str = "test", samples: int = 16) -> Evaluation:
        """Loss, accuracy, confusion matrix, per-class accuracy and predictions on a split (not while running)."""
        if self._running:
            raise TrainingError("the run is still going: evaluate after it finishes or stop it first")
        check_split(self.data, split)
        return evaluate_split(self.model, self._forward_amp, self.objective, self.device_data, split,
                              self.config.batch_size, samples)

    # -- checkpoints (engine.training.checkpoint holds the format)
    def checkpoint(self) -> dict:
        """Everything needed to continue this run exactly, as tensors (CPU copies) and plain Python data.
        Call it after run() returns or from an event listener (the run's own thread), never from another
        thread while a run goes: the weights would be copied mid-step."""
        return capture_checkpoint(self)

    def load_checkpoint(self, checkpoint: dict) -> None:
        """Restore a checkpoint() so run() continues that run. Every field is checked against this trainer
        first (engine.training.checkpoint.validate_checkpoint): WeightsError naming the field, and nothing
        changed."""
        if self._running:
            raise TrainingError("stop the run before loading a checkpoint")
        restore_checkpoint(self, checkpoint)
