"""The divergence guard: batch losses leave the device a few times a second (``_ReadBack``), each
read-back is checked for NaN/Inf and a sustained blow-up of the loss (engine.divergence), and
``_LastGoodWeights`` keeps device copies of weights known to be good, for a diverged run to hand back."""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import torch
from torch import nn

from engine.controls import control
from engine.training.events import BatchEnd, Event, FinishReason, RunFinished
from engine.training.progress import _EpochProgress

if TYPE_CHECKING:
    from engine.training.trainer import Trainer

READBACK_INTERVAL_S = 0.25  # metrics leave the device at most ~4 times a second (plus every epoch end)


class _LastGoodWeights:
    """Device-side copies of the weights and float buffers, so a diverged run can hand back good weights:
    ``copy`` holds weights whose losses were seen to be fine (finite, under the divergence threshold);
    the weights of the latest calm read-back wait as ``pending`` until the losses they produce are seen."""

    def __init__(self, model: nn.Module, global_step: int):
        self.live = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
        with torch.no_grad():
            self.copy = [t.detach().clone() for t in self.live]
        self.global_step = global_step
        self.pending: list[torch.Tensor] | None = None
        self.pending_step = global_step

    def save(self, global_step: int) -> None:
        """At a read-back whose losses were all fine: the pending weights produced them, so they become the
        good copy, and the live (finite) weights become pending."""
        with torch.no_grad():
            if self.pending is None:
                self.pending = [t.detach().clone() for t in self.live]
            else:
                self.copy, self.pending = self.pending, self.copy
                self.global_step = self.pending_step
                for saved, live in zip(self.pending, self.live, strict=True):
                    saved.copy_(live)
        self.pending_step = global_step

    def restore(self) -> None:
        with torch.no_grad():
            for saved, live in zip(self.copy, self.live, strict=True):
                live.copy_(saved)

    def all_finite(self) -> torch.Tensor:
        """A 0-d device tensor: 1.0 when every live weight is finite (read back with the losses, no extra sync).
        The max-abs norm of each tensor, in one foreach call: NaN and inf propagate, finite values stay finite."""
        with torch.no_grad():
            return torch.stack(torch._foreach_norm(self.live, math.inf)).isfinite().all().to(torch.float32)


class _ReadBack:
    """Batch losses and correct counts stay on the device and come to the host in one sync a few times
    a second (and at each epoch end); each read-back checks for NaN/Inf and a sustained blow-up of the loss
    (engine.divergence) and emits a BatchEnd. A diverged run gets its last good weights back."""

    def __init__(self, trainer: Trainer, progress: _EpochProgress, emit):
        assert trainer._last_good is not None  # set for the whole run
        self.trainer, self.progress, self.emit, self.last_good = trainer, progress, emit, trainer._last_good
        self.losses: list[torch.Tensor] = []
        self.correct: list[torch.Tensor] = []
        self.samples = 0
        self.step_s = 0.0  # seconds a step took lately (due_after_step)
        self.restart_clock()

    def restart_clock(self) -> None:
        now = time.perf_counter()
        self.span_start = self.epoch_clock = now
        self.next = now + READBACK_INTERVAL_S

    def pause_clock(self) -> float:
        """Seconds of training since the last call (so paused time is not counted)."""
        now = time.perf_counter()
        elapsed, self.epoch_clock = now - self.epoch_clock, now
        return elapsed

    def add(self, loss: torch.Tensor, correct: torch.Tensor | None, samples: int) -> None:
        self.losses.append(loss)
        if correct is not None:
            self.correct.append(correct)
        self.samples += samples

    def due(self) -> bool:
        return time.perf_counter() >= self.next

    def due_after_step(self) -> bool:
        """Whether the read-back will be due once the coming step is done, judged by the steps of the current
        read-back span (or of the last one, right after a read-back): the step to measure for training health."""
        now = time.perf_counter()
        if self.losses:
            self.step_s = (now - self.span_start) / len(self.losses)
        return now + self.step_s >= self.next

    def flush(self) -> RunFinished | None:
        """Read back what is pending; a RunFinished('diverged') when a loss or weight is not finite."""
        if not self.losses:
            return None
        trainer, progress = self.trainer, self.progress
        count = len(self.losses)
        parts = [torch.stack(self.losses).to(torch.float32)]
        counted = bool(self.correct)
        if counted:
            parts.append(torch.stack(self.correct).sum().to(torch.float32).reshape(1))
        health = trainer.health.pending() if trainer.health is not None else None
        if health is not None:  # the measured batch's per-layer figures ride along in the same sync
            parts.append(health)
        parts.append(self.last_good.all_finite().reshape(1))
        values = torch.cat(parts).tolist()  # the one host-device sync
        figures = values[len(values) - 1 - health.numel():-1] if health is not None else None
        now = time.perf_counter()
        losses = values[:count]
        rate = self.samples / max(now - self.span_start, 1e-9)
        self.step_s = (now - self.span_start) / count
        self.losses, self.correct, self.samples = [], [], 0
        self.span_start, self.next = now, now + READBACK_INTERVAL_S
        batch = BatchEnd(trainer.epoch + 1, progress.step, trainer.steps_per_epoch, trainer.global_step,
                         tuple(losses), trainer.lr, rate)
        events: list[Event] = [batch]
        if figures is not None:
            assert trainer.health is not None  # it gave the figures
            events.append(trainer.health.sample(figures, batch.epoch, batch.step, batch.global_step))
        bad = next((i for i, value in enumerate(losses) if not math.isfinite(value)), None)
        if bad is not None or values[-1] != 1.0:
            self._emit(events)
            first = progress.step - count + 1
            return self._diverged(None if bad is None else first + bad, math.nan if bad is None else losses[bad])
        exploded = trainer.loss_watch.observe(losses)
        if exploded is not None:
            self._emit(events)
            return self._diverged(progress.step - count + 1 + exploded, losses[exploded], exploded=True)
        progress.losses.extend(losses)
        if counted:
            progress.correct += int(values[count])
        if all(loss <= trainer.loss_watch.threshold for loss in losses):  # weights from before a blow-up only
            self.last_good.save(trainer.global_step)
        self._emit(events)
        return None

    def _emit(self, events: list[Event]) -> None:
        for event in events:
            self.emit(event)

    def _diverged(self, bad_step: int | None, value: float, exploded: bool = False) -> RunFinished:
        """Restore the last good weights, forget the optimizer's (now poisoned) state, end the run."""
        trainer, progress = self.trainer, self.progress
        self.last_good.restore()
        trainer.optimizer.state.clear()
        trainer._progress = None
        kept = self.last_good.global_step
        if exploded:
            assert bad_step is not None  # a blow-up is always at a step
            what = trainer.loss_watch.describe(trainer.epoch + 1, bad_step, value)
            trainer.loss_watch.end_stretch()
        elif bad_step is None:
            what = f"the weights became NaN or infinite by epoch {trainer.epoch + 1}, step {progress.step}"
        else:
            word = "NaN" if math.isnan(value) else "infinite"
            what = f"the loss became {word} at epoch {trainer.epoch + 1}, step {bad_step}"
        return RunFinished(
            FinishReason.DIVERGED,
            f"{what}: lower the learning rate ({control('training.lr')}, now {trainer.lr:g}) or set gradient "
            f"clipping ({control('training.grad_clip')}); "
            f"the model keeps the weights from after step {kept} of the run",
            trainer.epoch,
        )
