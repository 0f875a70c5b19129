"""How far an epoch got: batches per epoch and the unfinished epoch's state (``_EpochProgress``), enough to
continue it exactly after a stop or from a checkpoint."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


def steps_per_epoch(samples: int, batch_size: int, ranks: int = 1) -> int:
    """Batches per epoch; a trailing batch of a single sample is skipped (BatchNorm cannot train on one
    sample, and each epoch's permutation leaves out a different one), and so is one too small to give each of
    ``ranks`` processes a sample."""
    if samples > 1 and 0 < samples % batch_size < max(2, ranks) and samples > batch_size:
        return samples // batch_size
    return max(1, math.ceil(samples / batch_size))


@dataclass
class _EpochProgress:
    """How far the current epoch got: enough to continue it exactly after a stop (or from a checkpoint)."""

    perm: torch.Tensor  # CPU int64: this epoch's sample order
    step: int = 0  # batches done
    losses: list[float] = field(default_factory=list)  # host copies of the batch losses read back so far
    correct: int = 0
    seconds: float = 0.0

    def figures(self, samples: int, steps: int, batch_size: int, classification: bool) -> tuple[float, float | None]:
        """The finished epoch's mean training loss over its samples (the last batch may be smaller) and its
        accuracy (None without classes)."""
        seen = min(samples, steps * batch_size)
        last = seen - (steps - 1) * batch_size
        losses = self.losses
        loss = (sum(losses[:-1]) * batch_size + losses[-1] * last) / seen
        return loss, (self.correct / seen if classification else None)

    def to_dict(self) -> dict:
        return {"perm": self.perm.clone(), "step": self.step, "losses": list(self.losses),
                "correct": self.correct, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, state: dict) -> _EpochProgress:
        return cls(state["perm"].to(torch.int64).cpu(), int(state["step"]), [float(v) for v in state["losses"]],
                   int(state["correct"]), float(state["seconds"]))
