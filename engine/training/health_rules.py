"""Advice from training health: rules that turn the per-layer measures of a run (engine.training.health) into
a sentence on a layer with a fix, e.g. "layer 4 (ReLU): 85% of units dead since epoch 2: lower the learning
rate or use LeakyReLU/PReLU".

``HealthLog`` keeps the run's samples and the advice given so far; each rule is a plain function of the log
(a layer rule also gets the layer's position) that returns a sentence or None. Imports no torch: the window
and the CLI read samples and advice as plain data.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from engine.controls import control
from engine.training.events import HealthSample, LayerHealth

SATURATING_KINDS = ("Sigmoid", "Tanh")  # flat on both sides: a saturated unit passes almost no gradient
DEAD_KINDS = ("ReLU", "ReLU6")  # zero for every negative input: a unit never positive passes no gradient at all
SATURATED_FRACTION = 0.9  # nine outputs in ten on the flat part: the layer hardly passes gradients down
DEAD_FRACTION = 0.5  # half the units silent for a whole batch: half the layer no longer learns
VANISHING_RATIO = 1e-3  # a layer whose gradient is a thousandth of the top layer's learns ~1000x slower
EXPLODING_FACTOR = 100.0  # the gradient norm grew this much ...
EXPLODING_STEPS = 50  # ... within this many optimizer steps: the run is heading for a blow-up
PERSIST = 2  # a layer's measure must hold for this many read-backs in a row: one odd batch is not a trend
KEEP_SAMPLES = 400  # samples a log keeps (the rules look back at most EXPLODING_STEPS steps or PERSIST samples)


def _scientific(value: float) -> str:
    """1e-06, 3e-04: a ratio as its order of magnitude and a digit."""
    return f"{value:.0e}"


class HealthLog:
    """The run's health samples (the latest KEEP_SAMPLES) and the advice every rule has given so far: a rule's
    sentence for a layer is kept (with its latest figures) once it fired, so the end of a run lists what went
    wrong during it."""

    def __init__(self) -> None:
        self.samples: deque[HealthSample] = deque(maxlen=KEEP_SAMPLES)
        self.advice: dict[tuple[str, int | None], str] = {}  # (rule, layer index) -> its latest sentence
        self._since: dict[tuple[str, int], int] = {}  # (measure, layer index) -> epoch its current stretch began

    def add(self, epoch: int, step: int, global_step: int, layers: tuple[LayerHealth, ...]) -> HealthSample:
        """Record a read-back's measures; returns the sample with the advice so far."""
        self.samples.append(HealthSample(epoch, step, global_step, layers))
        for position, layer in enumerate(layers):
            for measure, on in (("dead", _is_dead(layer)), ("saturated", _is_saturated(layer))):
                key = (measure, layer.index)
                if not on:
                    self._since.pop(key, None)
                else:
                    self._since.setdefault(key, epoch)
            for rule in LAYER_RULES:
                sentence = rule(self, position)
                if sentence is not None:
                    self.advice[(rule.__name__, layer.index)] = sentence
        for run_rule in RUN_RULES:
            sentence = run_rule(self)
            if sentence is not None:
                self.advice[(run_rule.__name__, None)] = sentence
        sample = HealthSample(epoch, step, global_step, layers, tuple(self.advice.values()))
        self.samples[-1] = sample
        return sample

    def latest(self, count: int = PERSIST) -> list[HealthSample]:
        """The last ``count`` samples, oldest first (fewer at the start of a run)."""
        return [self.samples[-back] for back in range(min(count, len(self.samples)), 0, -1)]

    def recent(self, position: int, count: int = PERSIST) -> list[LayerHealth]:
        """The layer at ``position`` in the last ``count`` samples (fewer at the start of a run)."""
        return [sample.layers[position] for sample in self.latest(count)]

    def since_step(self, global_step: int) -> list[HealthSample]:
        """The samples from ``global_step`` on, newest first."""
        found = []
        for sample in reversed(self.samples):
            if sample.global_step < global_step:
                break
            found.append(sample)
        return found

    def since(self, measure: str, index: int) -> int | None:
        return self._since.get((measure, index))


def _is_dead(layer: LayerHealth) -> bool:
    return layer.dead is not None and layer.dead >= DEAD_FRACTION


def _is_saturated(layer: LayerHealth) -> bool:
    return layer.saturated is not None and layer.saturated >= SATURATED_FRACTION


def _lasting(log: HealthLog, position: int, test: Callable[[LayerHealth], bool]) -> bool:
    """Whether ``test`` held for the layer in each of the last PERSIST samples."""
    recent = log.recent(position)
    return len(recent) == PERSIST and all(test(layer) for layer in recent)


def _top_gradient(layers: tuple[LayerHealth, ...]) -> LayerHealth | None:
    """The last layer with a gradient: the one nearest the loss, whose gradients every other layer's follow."""
    return next((layer for layer in reversed(layers) if layer.grad_norm is not None), None)


def _gradient_ratio(layers: tuple[LayerHealth, ...], below: int) -> tuple[float, LayerHealth] | None:
    """The smallest gradient norm among layers at positions before ``below``, over the top layer's, and that layer."""
    top = _top_gradient(layers)
    lower = [layer for layer in layers[:below] if layer.grad_norm is not None and layer is not top]
    if top is None or not lower or not top.grad_norm:
        return None
    weakest = min(lower, key=lambda layer: layer.grad_norm or 0.0)
    return (weakest.grad_norm or 0.0) / top.grad_norm, weakest


# --------------------------------------------------------------------------- the rules

def saturated_units(log: HealthLog, position: int) -> str | None:
    """A Sigmoid/Tanh whose outputs sit on its flat parts: gradients below it shrink."""
    layers = log.samples[-1].layers
    layer = layers[position]
    if not _lasting(log, position, _is_saturated):
        return None
    assert layer.saturated is not None  # _is_saturated held
    ratio = _gradient_ratio(layers, position)
    below = f", gradients below it are {_scientific(ratio[0])} of the top layer's" if ratio else ""
    return (f"{layer.name}: {100 * layer.saturated:.0f}% of units saturated{below}: "
            f"use ReLU or add BatchNorm before it")


def vanishing_gradients(log: HealthLog, position: int) -> str | None:
    """The lowest layer with weights gets a tiny fraction of the top layer's gradient: it hardly learns."""
    layers = log.samples[-1].layers
    layer = layers[position]
    lowest = next((other for other in layers if other.grad_norm is not None), None)
    top = _top_gradient(layers)
    if layer is not lowest or top is None or top is layer:
        return None

    recent = log.latest()
    if len(recent) < PERSIST or not all(_ratio_below(sample, position, top) for sample in recent):
        return None
    assert layer.grad_norm is not None and top.grad_norm  # _ratio_below held
    squashing = sorted({other.kind for other in layers[position:] if other.kind in SATURATING_KINDS})
    through = f" through the {'/'.join(squashing)} layers above it" if squashing else ""
    fix = "use ReLU or add BatchNorm after the layers with weights" if squashing else \
        "add BatchNorm or residual connections, or use Kaiming initialisation"
    return (f"{layer.name}: gradient norm {_scientific(layer.grad_norm / top.grad_norm)} of the top layer's "
            f"(layer {top.index}, {top.kind}), vanishing{through}: {fix}")


def _ratio_below(sample: HealthSample, position: int, top: LayerHealth) -> bool:
    """In ``sample``, the layer at ``position`` has under VANISHING_RATIO of the top layer's gradient norm."""
    layer = sample.layers[position]
    top_now = next((other for other in sample.layers if other.index == top.index), None)
    return (layer.grad_norm is not None and top_now is not None and bool(top_now.grad_norm)
            and layer.grad_norm < VANISHING_RATIO * (top_now.grad_norm or 0.0))


def dead_units(log: HealthLog, position: int) -> str | None:
    """A ReLU most of whose units output zero for every sample: those units no longer learn."""
    layer = log.samples[-1].layers[position]
    if not _lasting(log, position, _is_dead):
        return None
    assert layer.dead is not None  # _is_dead held
    since = log.since("dead", layer.index)
    return (f"{layer.name}: {100 * layer.dead:.0f}% of units dead since epoch {since}: lower the learning rate "
            f"({control('training.lr')}) or use LeakyReLU/PReLU")


def exploding_gradients(log: HealthLog) -> str | None:
    """The total gradient norm grew EXPLODING_FACTOR times within EXPLODING_STEPS steps."""
    latest = log.samples[-1]
    now = _total_gradient(latest)
    if now is None:
        return None
    earlier = [(norm, sample.global_step) for sample in log.since_step(latest.global_step - EXPLODING_STEPS)
               if (norm := _total_gradient(sample)) is not None and norm > 0]
    if not earlier or not now >= EXPLODING_FACTOR * min(earlier)[0]:
        return None
    start, start_step = min(earlier)
    steps = latest.global_step - start_step
    growth = now / start if math.isfinite(now) else math.inf
    grew = f"{growth:.0f}x" if math.isfinite(growth) else "to infinity"
    return (f"gradient norm grew {grew} in {steps} steps (epoch {latest.epoch}): lower the learning rate "
            f"({control('training.lr')}) or clip gradients ({control('training.grad_clip')})")


def _total_gradient(sample: HealthSample) -> float | None:
    norms = [layer.grad_norm for layer in sample.layers if layer.grad_norm is not None]
    return math.sqrt(sum(norm * norm for norm in norms)) if norms else None


LAYER_RULES: tuple[Callable[[HealthLog, int], str | None], ...] = (saturated_units, vanishing_gradients, dead_units)
RUN_RULES: tuple[Callable[[HealthLog], str | None], ...] = (exploding_gradients,)


def summary_line(sample: HealthSample) -> str:
    """The sample in one line, for a log or the CLI's ``--health``: the gradient norms' range, the largest update
    ratio, the deadest ReLU and the most saturated Sigmoid/Tanh."""
    parts = [f"Epoch {sample.epoch} health:"]
    graded = [layer for layer in sample.layers if layer.grad_norm is not None]
    if graded:
        low = min(graded, key=lambda layer: layer.grad_norm or 0.0)
        high = max(graded, key=lambda layer: layer.grad_norm or 0.0)
        parts.append(f"grad norm {low.grad_norm:.2g} (layer {low.index}) to {high.grad_norm:.2g} (layer {high.index})")
    updated = [layer for layer in sample.layers if layer.update_ratio is not None]
    if updated:
        most = max(updated, key=lambda layer: layer.update_ratio or 0.0)
        parts.append(f"largest update {most.update_ratio:.2g} of the weights (layer {most.index})")
    for measure in ("dead", "saturated"):
        measured = [layer for layer in sample.layers if getattr(layer, measure) is not None]
        if measured:
            worst = max(measured, key=lambda layer: getattr(layer, measure))
            parts.append(f"{measure} {100 * getattr(worst, measure):.0f}% at {worst.name}")
    return "  ".join(parts)
