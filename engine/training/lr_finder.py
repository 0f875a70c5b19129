"""The learning-rate range test (Smith, "Cyclical Learning Rates for Training Neural Networks", 2017): a short
run whose learning rate rises exponentially step by step, watching where the loss falls fastest.

``find_learning_rate`` trains a *copy* of the model (built from the design, or loaded from given weights) with
a fresh optimizer, so the caller's model, optimizer and random number streams stay exactly as they were. Each
step sets every parameter group's rate to ``start * (end / start) ** (i / (steps - 1))``, takes one optimizer
step on the next training batch and records the batch loss and its smoothed value (an exponential moving
average, bias-corrected as in fastai). The sweep stops early when the loss explodes: it turns NaN or infinite,
or the smoothed loss passes ``diverge_factor`` times its best. The suggestion is the rate where the smoothed
loss falls fastest against log(rate) (see ``suggest``). It is a plain function returning a plain dataclass,
reporting progress and stoppable through an ``engine.task.Task``, so a GUI thread can run it like a data loader.

The steps are the Trainer's own (``Trainer._train_step``: mixed precision, channels_last, augmentation, the weight
penalties, gradient clipping, torch.compile, all as the config says), on the Trainer's seeded batches and random
streams: the same seed gives the same curve on a CPU. What the sweep leaves out of the config, and why: the
schedule and warm-up (the sweep sets the rate itself), the number of epochs (it runs ``steps`` batches, going
round the training split as often as it takes), validation and early stopping (the curve is the training loss,
as in Smith's test and fastai's). The recorded loss is the objective's, without the L1/L2 penalties (as the
training curve shows it), though the steps minimise the penalised loss as a run does.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

import torch

from engine.controls import control
from engine.errors import TrainingError
from engine.io import apply_state_dict
from engine.spec import NetworkSpec
from engine.task import Progress, Task
from engine.training.batches import Batch
from engine.training.config import LRFindConfig, TrainConfig
from engine.training.runtime import describe_failure, is_out_of_memory
from engine.training.trainer import Trainer

_DEFAULTS = LRFindConfig()
SKIP_SHARE = 0.1   # the first tenth of the sweep is never suggested: see suggest()
SLOPE_SHARE = 0.05  # the slope at a point is measured this share of the steps either side of it: see suggest()
MIN_FALL = 0.05    # a smoothed loss that falls by less than this share of its value has no steepest descent
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LRFinding:
    """What a sweep found: one entry per step taken in ``lrs`` (the rate of the step), ``losses`` (its batch loss)
    and ``smoothed``; ``suggestion`` is ``lrs[index]``, or None with ``problem`` saying why there is none.
    ``stopped`` says where the sweep ended and why; ``diverged`` when the loss exploded before the end."""

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    suggestion: float | None
    index: int | None
    diverged: bool
    stopped: str
    problem: str
    sweep: LRFindConfig
    notes: tuple[str, ...] = ()  # what the run's settings could not do here (e.g. fp16 on a CPU), as train prints them

    @property
    def lowest(self) -> tuple[float, float] | None:
        """(rate, smoothed loss) where the smoothed loss was lowest, None before any step."""
        if not self.smoothed:
            return None
        best = min(range(len(self.smoothed)), key=self.smoothed.__getitem__)
        return self.lrs[best], self.smoothed[best]

    def csv_text(self) -> str:
        """The curve as CSV: a header ``lr,loss,smoothed`` and one row per step, numbers in full precision."""
        curve = zip(self.lrs, self.losses, self.smoothed, strict=True)
        rows = ["lr,loss,smoothed"] + [f"{lr!r},{loss!r},{smooth!r}" for lr, loss, smooth in curve]
        return "\n".join(rows) + "\n"


def sweep_rates(sweep: LRFindConfig) -> list[float]:
    """The rate of every step: exponential from ``start_lr`` (step 0) to ``end_lr`` (the last step)."""
    start, ratio, last = sweep.start_lr, sweep.end_lr / sweep.start_lr, sweep.steps - 1
    return [start * ratio ** (i / last) for i in range(sweep.steps)]


def suggest(lrs: list[float], smoothed: list[float], steps: int) -> tuple[int | None, str]:
    """(index of the suggested rate, '') or (None, why there is none), from a curve before its divergence.

    The suggestion is the point where the smoothed loss falls fastest against log(rate) (the points are evenly
    spaced in log(rate)), looked for between the end of the first tenth of the planned ``steps`` and the lowest
    smoothed loss, so it always lies on the descending part:

    - the first tenth (10 of 100 steps, as torch-lr-finder's plot skips) is left out: the average there rests
      on a few batches and, at those tiny rates, the loss moves by batch noise only;
    - the slope at a point is measured ``SLOPE_SHARE`` of the steps either side of it (5 of 100), not between
      its neighbours: two neighbouring smoothed values differ by a share of one batch's loss, so the neighbours'
      slope follows batch noise (over six seeds on the bundled sample the suggestions for softmax regression
      spread 3x with it, 1.45x with this one);
    - a loss that never fell by ``MIN_FALL`` (5%) of its value has no steepest descent worth naming."""
    skip = max(1, math.ceil(SKIP_SHARE * steps))
    if len(smoothed) < skip + 3:
        return None, (f"The loss exploded too early to suggest a learning rate (after {len(smoothed)} good steps of "
                      f"{steps}): start the sweep lower ({control('sweep.start_lr')}) or give it more steps "
                      f"({control('sweep.steps')}).")
    lowest = min(range(skip, len(smoothed)), key=smoothed.__getitem__)
    if lowest <= skip or smoothed[lowest] > (1.0 - MIN_FALL) * smoothed[skip]:
        return None, (f"The loss never fell by {100 * MIN_FALL:g}% between learning rates {lrs[skip]:.3g} and "
                      f"{lrs[len(smoothed) - 1]:.3g} (smoothed loss {smoothed[skip]:.4g}, lowest "
                      f"{smoothed[lowest]:.4g}): the design may not learn with these settings (check the data and "
                      f"the loss), or it needs more steps ({control('sweep.steps')}) or other rates "
                      f"({control('sweep.start_lr')}, {control('sweep.end_lr')}).")
    span, last = max(1, round(SLOPE_SHARE * steps)), len(smoothed) - 1
    slopes = {}
    for i in range(skip, min(lowest, last - 1) + 1):
        before, after = max(i - span, 0), min(i + span, last)
        slopes[i] = (smoothed[after] - smoothed[before]) / (after - before)
    return min(slopes, key=slopes.__getitem__), ""


def find_learning_rate(spec: NetworkSpec, bundle, config: TrainConfig, start_lr: float = _DEFAULTS.start_lr,
                       end_lr: float = _DEFAULTS.end_lr, steps: int = _DEFAULTS.steps,
                       smoothing: float = _DEFAULTS.smoothing, diverge_factor: float = _DEFAULTS.diverge_factor,
                       task: Progress | Task | None = None,
                       weights: Mapping[str, torch.Tensor] | None = None) -> LRFinding:
    """Sweep the learning rate on a copy of the model (``weights``, a state_dict, or the design's initialisation
    from ``config.seed`` as a run would start) with a fresh ``config.optimizer`` on ``bundle``'s training split.

    Raises TrainingError for settings out of range or a design that cannot train (as the Trainer would),
    WeightsError when ``weights`` do not fit the design, Cancelled when ``task`` is cancelled (between steps).
    """
    sweep = LRFindConfig(start_lr, end_lr, steps, smoothing, diverge_factor).validate()
    report = Task.of(task)
    report.check()
    trainer = Trainer(spec, bundle, replace(config, lr=sweep.start_lr, schedule="none", warmup_epochs=0,
                                            early_stopping=False))
    if weights is not None:
        apply_state_dict(trainer.model, dict(weights), spec)
    try:
        return _sweep(trainer, sweep, report)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        failure = describe_failure(exc, trainer.config, trainer.device, log)[1]
    trainer.device_data.release()  # outside the except block: the traceback no longer pins batch tensors
    raise TrainingError(failure)


def _sweep(trainer: Trainer, sweep: LRFindConfig, report: Task) -> LRFinding:
    beta, steps = sweep.smoothing, sweep.steps
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    average, best = 0.0, math.inf
    stopped, diverged, spike = "", False, 0  # spike: the recorded point that showed the divergence (0 or 1)
    with trainer._rng_scope():  # dropout draws from the run's own stream, the caller's is put back after
        trainer.model.train()
        for step, (lr, (xb, yb)) in enumerate(zip(sweep_rates(sweep), _batches(trainer), strict=False)):
            report.check()
            for group in trainer.optimizer.param_groups:
                group["lr"] = lr
            loss = float(trainer._train_step(xb, yb)[0])
            where = f"Stopped at step {step + 1} of {steps} (learning rate {lr:.3g})"
            if not math.isfinite(loss):
                stopped, diverged = f"{where}: the loss became {'NaN' if math.isnan(loss) else 'infinite'}.", True
                break
            average = beta * average + (1.0 - beta) * loss
            value = average / (1.0 - beta ** (step + 1))
            lrs.append(lr)
            losses.append(loss)
            smoothed.append(value)
            best = min(best, value)
            report((step + 1) / steps, f"Step {step + 1} of {steps}: learning rate {lr:.3g}, loss {loss:.4g}")
            if value > sweep.diverge_factor * best:
                stopped = (f"{where}: the smoothed loss {value:.4g} passed {sweep.diverge_factor:g} times its best "
                           f"({best:.4g}).")
                diverged, spike = True, 1
                break
    if not diverged:
        stopped = (f"The sweep ran all {steps} steps, from learning rate {sweep.start_lr:.3g} to {sweep.end_lr:.3g}, "
                   "without the loss exploding.")
    index, problem = suggest(lrs, smoothed[:len(smoothed) - spike], steps)
    return LRFinding(lrs=tuple(lrs), losses=tuple(losses), smoothed=tuple(smoothed),
                     suggestion=lrs[index] if index is not None else None, index=index, diverged=diverged,
                     stopped=stopped, problem=problem, sweep=sweep, notes=tuple(trainer.notes))


def _batches(trainer: Trainer) -> Iterator[Batch]:
    """The training batches in the Trainer's seeded order, epoch after epoch, for as long as they are asked for."""
    epoch = 0
    while True:
        perm = torch.randperm(trainer.train_samples, generator=trainer.generator)
        yield from trainer.device_data.epoch_batches(perm, 0, trainer.steps_per_epoch, epoch)
        epoch += 1
