"""What a run reports: plain event dataclasses sent through one callback, and why a run finished.

The GUI thread, the CLI and the tests all listen to the same events. Imports no torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class FinishReason(str, Enum):
    """Why a run ended. A str, so ``reason == "completed"``, dict keys, JSON and ``%s`` see the plain word."""

    COMPLETED = "completed"
    STOPPED = "stopped"
    EARLY_STOPPED = "early_stopped"
    DIVERGED = "diverged"
    OUT_OF_MEMORY = "out_of_memory"
    ERROR = "error"

    def __str__(self) -> str:  # the word itself in f-strings and str() on every Python version
        return self.value


REASONS = tuple(reason.value for reason in FinishReason)


@dataclass(frozen=True)
class RunStarted:
    """A run begins (epochs and steps are counts; ``start_epoch`` = epochs already done)."""

    device: str
    device_name: str
    epochs: int
    start_epoch: int
    steps_per_epoch: int
    parameters: int
    train_samples: int
    val_samples: int
    notes: tuple[str, ...] = ()  # settings that could not be honoured here, e.g. fp16 on a CPU


@dataclass(frozen=True)
class BatchEnd:
    """Batches finished since the previous BatchEnd. ``epoch`` and ``step`` are 1-based (step k of
    steps_per_epoch, the last batch in ``losses``); ``global_step`` counts optimizer steps of the whole run."""

    epoch: int
    step: int
    steps_per_epoch: int
    global_step: int
    losses: tuple[float, ...]
    lr: float
    samples_per_s: float


@dataclass(frozen=True)
class EpochEnd:
    """An epoch finished (``epoch`` 1-based); accuracies are fractions (None for regression / no data)."""

    epoch: int
    epochs: int
    train_loss: float
    train_acc: float | None
    val_loss: float | None
    val_acc: float | None
    lr: float
    seconds: float

    def parts(self) -> list[str]:
        """The epoch's figures as short phrases (``train loss 0.31``, ``val acc 91.0%``, ...) for one line."""
        parts = [f"Epoch {self.epoch}/{self.epochs}", f"train loss {self.train_loss:.4g}"]
        if self.train_acc is not None:
            parts.append(f"train acc {100 * self.train_acc:.1f}%")
        if self.val_loss is not None:
            parts.append(f"val loss {self.val_loss:.4g}")
        if self.val_acc is not None:
            parts.append(f"val acc {100 * self.val_acc:.1f}%")
        parts += [f"lr {self.lr:.3g}", f"{self.seconds:.1f}s"]
        return parts


@dataclass(frozen=True)
class LayerHealth:
    """One layer's measures on the batch recorded before a read-back (engine.training.health); None where a
    measure does not apply: no trainable weights (gradient, update), not a ReLU (dead) or Sigmoid/Tanh (saturated).
    ``index`` and ``kind`` are the layer's row number and kind in the stack, as the window shows them."""

    index: int
    kind: str
    grad_norm: float | None
    update_ratio: float | None  # |weights after the step - before| / |weights before|
    mean: float | None  # of the layer's output
    std: float | None
    dead: float | None  # fraction of units (channels or features) not positive for any sample of the batch
    saturated: float | None  # fraction of outputs where Sigmoid/Tanh is flat

    @property
    def name(self) -> str:
        """``layer 3 (Conv2d)``: how engine messages name a layer."""
        return f"layer {self.index} ({self.kind})"


@dataclass(frozen=True)
class HealthSample:
    """Per-layer training health at one read-back (at most a few per second, and every epoch end), with the
    advice every rule has given so far in the run (engine.training.health_rules), latest wording first fired first."""

    epoch: int
    step: int
    global_step: int
    layers: tuple[LayerHealth, ...]
    advice: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunFinished:
    """The run ended; ``reason`` is a FinishReason (given as one or as its word) and ``message`` a sentence
    for the user."""

    reason: FinishReason
    message: str
    epochs_done: int

    def __post_init__(self):
        object.__setattr__(self, "reason", FinishReason(self.reason))


Event = RunStarted | BatchEnd | HealthSample | EpochEnd | RunFinished
