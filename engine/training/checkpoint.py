"""Checkpoints: what a run's checkpoint holds, how a Trainer's state becomes one and is restored from one,
and a writer that keeps a run's checkpoint on disk while the run goes.

The format (fields, version) lives in engine.training.checkpoint_format and the check of a checkpoint
against the trainer that is to continue it in engine.training.checkpoint_check; their public names are
importable from here.
"""
from __future__ import annotations

import logging
import math
import os
import time

from engine.divergence import LossWatch
from engine.errors import LayerStudioError, WeightsError
from engine.log import SHOWN
from engine.training.checkpoint_check import fitted_optimizer_state, validate_checkpoint
from engine.training.checkpoint_format import CHECKPOINT_FIELDS, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, REQUIRED_FIELDS
from engine.training.config import HISTORY_KEYS
from engine.training.progress import _EpochProgress
from engine.training.runtime import cpu_copy

__all__ = ["CHECKPOINT_FIELDS", "CHECKPOINT_FORMAT", "CHECKPOINT_INTERVAL_S", "CHECKPOINT_VERSION", "REQUIRED_FIELDS",
           "CheckpointWriter", "capture_checkpoint", "fitted_optimizer_state", "restore_checkpoint",
           "validate_checkpoint"]

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_S = 300.0  # inside a long epoch, a checkpoint at least every 5 minutes


# --------------------------------------------------------------------------- a trainer's state

def capture_checkpoint(trainer) -> dict:
    """Everything needed to continue the trainer's run exactly, as tensors (CPU copies) and plain Python data
    (``Trainer.checkpoint``)."""
    torch_rng, device_rng = trainer._rng.states()  # read from torch's global RNG while the run goes
    data_config = getattr(trainer.data, "config", None)
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "epoch": trainer.epoch,
        "global_step": trainer.global_step,
        "model": cpu_copy(trainer.model.state_dict()),
        "optimizer": cpu_copy(trainer.optimizer.state_dict()),
        "schedule": trainer.schedule.state_dict(),
        "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else None,
        "history": {key: list(values) for key, values in trainer.history.items()},
        "spec": trainer.spec.to_dict(),
        "config": trainer.config.to_dict(),
        "data": data_config.to_dict() if data_config is not None else None,
        "rng": {
            "torch": torch_rng.clone(),
            "device_type": trainer.device.type,
            "device": None if device_rng is None else device_rng.clone(),
            "generator": trainer.generator.get_state(),
            "augment_generator": trainer.augment_generator.get_state(),
        },
        "progress": trainer._progress.to_dict() if trainer._progress is not None else None,
        "best": trainer.early_stopping.state_dict(),
        "best_weights": cpu_copy(trainer._best_weights) if trainer._best_weights is not None else None,
        "loss_watch": trainer.loss_watch.state_dict(),
    }


def restore_checkpoint(trainer, checkpoint: dict) -> None:
    """Set the trainer to a checkpoint's state (``Trainer.load_checkpoint``). Every field is checked against
    the trainer first (validate_checkpoint): WeightsError naming the field, and nothing changed. Weights saved
    by LayerStudio 1 from a design with fixed blocks are renamed to the groups that replaced them first."""
    checkpoint, renamed = _with_group_keys(checkpoint, trainer)
    validate_checkpoint(checkpoint, trainer)
    if renamed:
        from engine.legacy import RENAMED_NOTE

        trainer.notes.append(f"The checkpoint's weights were {RENAMED_NOTE.format(count=renamed)}.")
    before, notes = capture_checkpoint(trainer), list(trainer.notes)
    try:
        _apply(trainer, checkpoint)
    except Exception as exc:  # validated, so only a case the checks missed lands here
        log.exception("a validated checkpoint failed to load")
        _apply(trainer, before)
        trainer.notes[:] = notes
        raise WeightsError(f"the checkpoint is damaged ({type(exc).__name__}: {_first_line(exc)}): "
                           "it cannot resume a run") from None


def _with_group_keys(checkpoint, trainer) -> tuple:
    """The checkpoint with its weights' LayerStudio 1 block keys renamed (engine.legacy), and how many of the
    model's were; anything else (not a checkpoint, junk fields) is left for validate_checkpoint to refuse."""
    from engine.io import upgraded_state_dict

    if not isinstance(checkpoint, dict):
        return checkpoint, 0
    out, renamed = dict(checkpoint), 0
    for name in ("model", "best_weights"):
        state = checkpoint.get(name)
        if isinstance(state, dict) and all(isinstance(key, str) for key in state):
            out[name], count = upgraded_state_dict(trainer.model, state)
            renamed = renamed if name != "model" else count
    if renamed:
        out["optimizer"] = _reordered_optimizer(checkpoint.get("optimizer"), list(out["model"]), trainer)
    return out, renamed


def _reordered_optimizer(saved, old_order: list[str], trainer):
    """An optimizer state saved with LayerStudio 1's parameter order (an old block registered conv1, conv2, conv3,
    bn1, bn2; its group holds them in forward order) with each group's parameter ids in this model's order, so
    every moment stays with its weight. ``old_order``: the saved model's keys (renamed), in the order saved."""
    names: dict[int, str] = {id(param): name for name, param in trainer.model.named_parameters()}
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    if not isinstance(groups, list) or len(groups) != len(trainer.optimizer.param_groups):
        return saved  # validate_checkpoint says what is wrong
    reordered = []
    for group, live in zip(groups, trainer.optimizer.param_groups, strict=True):
        live_names = [names.get(id(param), "") for param in live["params"]]
        old_names = [key for key in old_order if key in set(live_names)]
        ids = group.get("params") if isinstance(group, dict) else None
        if not isinstance(ids, list) or len(ids) != len(live_names) or len(old_names) != len(live_names):
            return saved
        by_name = dict(zip(old_names, ids, strict=True))
        reordered.append({**group, "params": [by_name[name] for name in live_names]})
    return {**saved, "param_groups": reordered}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _apply(trainer, checkpoint: dict) -> None:
    from engine.io import apply_state_dict  # io builds on the trainer's callers, not the other way round

    apply_state_dict(trainer.model, checkpoint["model"], trainer.spec)
    trainer.optimizer.load_state_dict(fitted_optimizer_state(checkpoint["optimizer"], trainer.optimizer))
    trainer.schedule.load_state_dict(checkpoint["schedule"])
    if trainer.scaler is not None and checkpoint.get("scaler"):
        trainer.scaler.load_state_dict(checkpoint["scaler"])
    trainer.epoch, trainer.global_step = checkpoint["epoch"], checkpoint["global_step"]
    trainer.history = {key: list(checkpoint["history"][key]) for key in HISTORY_KEYS}
    _apply_rng(trainer, checkpoint["rng"])
    progress = checkpoint.get("progress")
    trainer._progress = _EpochProgress.from_dict(progress) if progress is not None else None
    if trainer._progress is not None and checkpoint["config"].get("batch_size") != trainer.config.batch_size:
        trainer._progress = None  # steps of another batch size: the unfinished epoch starts over
        trainer.notes.append(f"batch size changed: epoch {trainer.epoch + 1} starts over")
    trainer.early_stopping.load_state_dict(checkpoint.get("best") or {"value": None, "epoch": 0, "bad_epochs": 0})
    best = checkpoint.get("best_weights")
    trainer._best_weights = {k: v.to(trainer.device) for k, v in best.items()} if best is not None else None
    trainer.loss_watch = LossWatch(trainer.config.batch_size)
    if checkpoint.get("loss_watch") is not None:
        trainer.loss_watch.load_state_dict(checkpoint["loss_watch"])


def _apply_rng(trainer, rng: dict) -> None:
    trainer._rng.torch = rng["torch"].clone()
    trainer.generator.set_state(rng["generator"])
    if rng.get("device_type") == trainer.device.type:  # device streams only carry over to the same kind of device
        if rng.get("device") is not None:
            trainer._rng.device_state = rng["device"].clone()
        trainer.augment_generator.set_state(rng["augment_generator"])
    else:
        trainer.notes.append(f"checkpoint saved on {rng.get('device_type')}: dropout and augmentation draw new "
                             f"random numbers on {trainer.device.type}")


# --------------------------------------------------------------------------- writing while a run goes

class CheckpointWriter:
    """Keeps a run's checkpoint on disk while it trains, so a kill, a crash or a power cut loses at most
    the work since the last write: at every epoch end, inside a long epoch once ``interval_s`` seconds
    passed since the last write (at the next batch read-back), and when the run ends completed, early
    stopped or stopped.

    Pass it (or a function calling it) as ``on_event`` of ``Trainer.run``: it runs on the run's own
    thread, between two steps. Each checkpoint is checked with ``validate_checkpoint`` and written
    atomically (``engine.io.save_checkpoint``), so the file always loads and resumes. A write that fails
    (disk full, folder gone) does not stop the run: ``error`` keeps the sentence and ``on_error`` gets it.
    While the loss is in a blow-up stretch (``trainer.loss_watch``) nothing is written, so a diverging
    run leaves the last good checkpoint in place.
    """

    FINAL_REASONS = ("completed", "early_stopped", "stopped")

    def __init__(self, trainer, path: str | os.PathLike, interval_s: float = CHECKPOINT_INTERVAL_S,
                 extra: dict | None = None, on_error=None, clock=time.monotonic):
        self.trainer, self.path, self.interval_s = trainer, path, interval_s
        self.extra = dict(extra or {})
        self.on_error = on_error
        self.writes = 0
        self.error: str | None = None
        self._clock = clock
        self._last_write = clock()
        self._written_at: tuple[int, int] | None = None  # (epoch, global_step) of the last write

    def __call__(self, event) -> None:
        kind = type(event).__name__
        if kind == "EpochEnd":
            self.write()
        elif kind == "BatchEnd":
            mid_epoch = event.step < event.steps_per_epoch  # the epoch's last batch is followed by EpochEnd
            if mid_epoch and self._clock() - self._last_write >= self.interval_s and \
                    all(math.isfinite(loss) for loss in event.losses):
                self.write()
        elif kind == "RunFinished" and event.reason in self.FINAL_REASONS:
            position = (self.trainer.epoch, self.trainer.global_step)
            if event.reason == "early_stopped" or position != self._written_at:  # early stopping restored weights
                self.write()

    def write(self) -> bool:
        """Save the trainer's checkpoint now; False (and ``error`` set) when it was not written."""
        if self.trainer.loss_watch.in_stretch:
            return False
        checkpoint = {**self.trainer.checkpoint(), **self.extra}
        try:
            validate_checkpoint(checkpoint, self.trainer)
            from engine.io import save_checkpoint

            save_checkpoint(self.path, checkpoint)
        except LayerStudioError as exc:
            self._last_write = self._clock()  # try again after the interval, not at every batch
            self.error = str(exc)
            log.warning("Checkpoint not written to %s: %s", self.path, exc, extra=SHOWN if self.on_error else None)
            if self.on_error is not None:
                self.on_error(self.error)
            return False
        self._last_write = self._clock()
        self._written_at = (self.trainer.epoch, self.trainer.global_step)
        self.writes += 1
        self.error = None
        return True
