"""Divergence without a NaN: a loss that stays far above where the run started.

A NaN or infinite loss is caught where it appears. A run can also blow up and stay finite (Adam at
learning rate 1000 sits at losses around 1e16), and finishing it as "completed" would hide that. The
rule, on the per-step training losses (the same numbers however often they are read back):

- the **reference** is the mean loss of the run's first steps, before training has changed much:
  the first batch when batches hold ``REFERENCE_SAMPLES`` samples or more, else the first
  ``ceil(REFERENCE_SAMPLES / batch size)`` batches;
- the **threshold** is ``DIVERGENCE_FACTOR`` times the size of the reference, with the reference taken
  as at least ``MIN_REFERENCE_LOSS`` (a regression that starts near zero must not trip on noise);
- the run has **diverged** when ``DIVERGENCE_STEPS`` consecutive steps each have a loss above the
  threshold. A healthy run's loss falls from its reference, so it never comes near the threshold.

The watch's state travels in checkpoints, so a resumed run keeps its reference.
"""
from __future__ import annotations

import math

DIVERGENCE_FACTOR = 100.0
DIVERGENCE_STEPS = 20
REFERENCE_SAMPLES = 64
MIN_REFERENCE_LOSS = 1e-6


class LossWatch:
    """Sees every training loss in order; ``observe`` says where a sustained blow-up completed."""

    def __init__(self, batch_size: int):
        self.reference_steps = max(1, math.ceil(REFERENCE_SAMPLES / batch_size))
        self.reference: float | None = None
        self.total = 0.0  # sum of the losses counted toward the reference so far
        self.count = 0
        self.above = 0  # consecutive steps above the threshold, up to the last loss seen

    @property
    def threshold(self) -> float:
        return DIVERGENCE_FACTOR * max(abs(self.reference), MIN_REFERENCE_LOSS) if self.reference is not None \
            else math.inf

    @property
    def in_stretch(self) -> bool:
        """True while the latest losses are above the threshold (weights then are not worth keeping)."""
        return self.above > 0

    def observe(self, losses) -> int | None:
        """Take the next finite step losses; the index of the one that completes a diverged stretch, or None."""
        for index, loss in enumerate(losses):
            if self.reference is None:
                self.total += loss
                self.count += 1
                if self.count >= self.reference_steps:
                    self.reference = self.total / self.count
                continue
            self.above = self.above + 1 if loss > self.threshold else 0
            if self.above >= DIVERGENCE_STEPS:
                return index
        return None

    def end_stretch(self) -> None:
        """After the run was ended for it: the next run starts counting afresh (same reference)."""
        self.above = 0

    def describe(self, epoch: int, step: int, loss: float) -> str:
        """What happened, as the first half of the diverged message."""
        return (f"the loss stayed above {DIVERGENCE_FACTOR:g} times its starting value ({self.reference:.4g}) for "
                f"{DIVERGENCE_STEPS} steps and reached {loss:.3g} at epoch {epoch}, step {step}")

    def state_dict(self) -> dict:
        return {"reference": self.reference, "total": self.total, "count": self.count, "above": self.above}

    def load_state_dict(self, state: dict) -> None:
        reference = state["reference"]
        self.reference = None if reference is None else float(reference)
        self.total, self.count, self.above = float(state["total"]), int(state["count"]), int(state["above"])
