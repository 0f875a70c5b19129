"""Evaluation of a model on a split of a DataBundle: loss, accuracy, confusion matrix, per-class metrics.

One implementation serves both callers: ``Trainer.evaluate`` (the model it trains, data already on
its device, mixed precision) and ``evaluate_model`` (any model with weights, e.g. loaded from a file,
without a Trainer). Both run ``infer`` over batches and ``summarize`` the predictions.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from engine.errors import TrainingError
from engine.layers import prod, shape_tuple_text
from engine.shapes import analyze
from engine.spec import NetworkSpec

SPLITS = ("train", "val", "test")
BATCH_SIZE = 256  # samples per forward pass when evaluating without a Trainer


@dataclass(frozen=True)
class Prediction:
    index: int
    predicted: int | float
    target: int | float


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall and F1 of one class; NaN where undefined (see class_metrics)."""

    support: int      # samples of this class (its confusion row)
    precision: float  # right among those predicted as this class
    recall: float     # found among the samples of this class (its accuracy)
    f1: float         # harmonic mean of precision and recall (0 when the class is never hit)


@dataclass
class Evaluation:
    """Split numbers. ``confusion[true][predicted]`` counts samples; ``per_class_accuracy`` is NaN
    for a class without samples; ``predicted`` holds every sample's class (classification only)."""

    loss: float
    accuracy: float | None
    confusion: list[list[int]] | None
    per_class_accuracy: list[float] | None
    samples: list[Prediction]
    predicted: list[int] | None
    split: str = "test"
    count: int = 0

    def class_metrics(self) -> list[ClassMetrics] | None:
        """Precision, recall and F1 per class (classification only)."""
        return class_metrics(self.confusion) if self.confusion is not None else None


# --------------------------------------------------------------------------- metrics

def class_metrics(confusion: list[list[int]]) -> list[ClassMetrics]:
    """Per-class precision (column-wise), recall (row-wise) and F1 of a confusion matrix ``[true][predicted]``.

    A class never predicted has NaN precision, a class without samples NaN recall. F1 is
    2 TP / (2 TP + FP + FN), the harmonic mean where both are defined and 0 for a class that has samples
    or predictions but no hit; NaN only for a class absent from both.
    """
    rows = [sum(row) for row in confusion]
    columns = [sum(column) for column in zip(*confusion, strict=True)] if confusion else []
    metrics = []
    for k, row in enumerate(confusion):
        hits = row[k]
        precision = hits / columns[k] if columns[k] else math.nan
        recall = hits / rows[k] if rows[k] else math.nan
        counted = rows[k] + columns[k]  # 2 TP + FP + FN
        f1 = 2 * hits / counted if counted else math.nan
        metrics.append(ClassMetrics(rows[k], precision, recall, f1))
    return metrics


def macro_average(values: Iterable[float]) -> float:
    """The mean over the classes where the value is defined (NaN when none is)."""
    defined = [value for value in values if not math.isnan(value)]
    return sum(defined) / len(defined) if defined else math.nan


# --------------------------------------------------------------------------- the shared core

def input_reshape_needed(design_shape: tuple[int, ...], data_shape: tuple[int, ...]) -> bool:
    """True when samples must be reshaped to the design's input (same size, e.g. 1x28x28 -> 784);
    TrainingError when the sizes differ."""
    design, given = tuple(design_shape), tuple(data_shape)
    if design == given:
        return False
    if prod(design) == prod(given):
        return True
    raise TrainingError(
        f"the design takes inputs of shape {shape_tuple_text(design)} but the data gives {shape_tuple_text(given)}: "
        f"set the design's input shape to {shape_tuple_text(given)}"
    )


def evaluation_split(data) -> str | None:
    """The split results are reported on: test, else validation (data without a test split), else None."""
    return next((split for split in ("test", "val") if len(getattr(data, f"{split}_x"))), None)


@dataclass
class Inference:
    """What ``infer`` measured: mean loss, accuracy (classification) and, when kept, every prediction."""

    loss: float
    accuracy: float | None
    predicted: torch.Tensor | None  # class ids, or the first output value per sample for regression


def infer(model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], objective,
          batches: Iterable[tuple[torch.Tensor, torch.Tensor]], keep: bool,
          should_stop: Callable[[], bool] | None = None) -> Inference | None:
    """Run ``forward`` over (inputs, targets) batches in eval and inference mode, one host sync at the end.

    ``objective`` is the training Objective (loss, how predictions are read). Returns None when
    ``should_stop()`` turned true between two batches. The model's train/eval mode is restored.
    """
    kept: list[torch.Tensor] = []
    loss_sum = correct = None
    count = 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for xb, yb in batches:
                if should_stop is not None and should_stop():
                    return None
                out = forward(xb)
                batch_loss = objective.loss(out, yb) * xb.shape[0]
                loss_sum = batch_loss if loss_sum is None else loss_sum + batch_loss
                count += xb.shape[0]
                if objective.classification:
                    predicted = objective.predict(out)
                    hits = (predicted == yb).sum()
                    correct = hits if correct is None else correct + hits
                    if keep:
                        kept.append(predicted)
                elif keep:
                    kept.append(out.reshape(out.shape[0], -1)[:, 0].float())
            if count == 0 or loss_sum is None:  # no batches
                raise TrainingError("there are no samples to evaluate: choose a split that has samples")
            parts = [loss_sum.float()] + ([correct.to(torch.float32)] if correct is not None else [])
            values = torch.stack(parts).tolist()
            kept_all = torch.cat(kept) if keep else None
    finally:
        model.train(was_training)
    accuracy = values[1] / count if objective.classification else None
    return Inference(values[0] / count, accuracy, kept_all)


def summarize(loss: float, accuracy: float | None, predicted: torch.Tensor, targets: torch.Tensor,
              num_classes: int | None, split: str, samples: int) -> Evaluation:
    """An Evaluation from every prediction of a split and its targets: the confusion matrix (``num_classes``
    given), per-class accuracy and the first ``samples`` predictions."""
    predicted = predicted.to(targets.device)
    count = len(targets)
    shown = min(samples, count)
    if num_classes is None:
        firsts = predicted[:shown].tolist()
        values = targets[:shown].reshape(shown, -1)[:, 0].tolist()
        return Evaluation(loss, None, None, None,
                          [Prediction(i, firsts[i], values[i]) for i in range(shown)], None, split, count)
    counts = torch.bincount(targets * num_classes + predicted, minlength=num_classes * num_classes)
    confusion = counts.reshape(num_classes, num_classes).tolist()
    per_class = [row[i] / sum(row) if sum(row) else math.nan for i, row in enumerate(confusion)]
    predicted_list, labels = predicted.tolist(), targets[:shown].tolist()
    sample = [Prediction(i, predicted_list[i], labels[i]) for i in range(shown)]
    return Evaluation(loss, accuracy, confusion, per_class, sample, predicted_list, split, count)


def check_split(data, split: str) -> None:
    """TrainingError unless ``split`` names a split of the DataBundle that has samples to evaluate."""
    if split not in SPLITS:
        raise TrainingError(f"split must be train, val or test, got {split!r}")
    if len(getattr(data, f"{split}_x")) == 0:
        raise TrainingError(f"the data has no {split} samples to evaluate: choose another split")


# --------------------------------------------------------------------------- without a Trainer

def model_device(model: nn.Module) -> torch.device:
    """Where the model's weights live (the CPU for a model without any)."""
    tensor: torch.Tensor | None = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def make_objective(spec: NetworkSpec, data, config=None):
    """The training Objective for a design on a bundle (TrainingError when the design's output does not fit)."""
    from engine.training import Objective, TrainConfig  # training builds on this module, not the other way

    config = config if config is not None else TrainConfig()
    analysis = analyze(spec)
    if not analysis.ok:
        row = analysis.errors[0]
        raise TrainingError(f"the design has an error at layer {row.path} ({row.kind}): {row.error}")
    assert analysis.output_shape is not None  # a design without errors knows every shape
    return Objective.for_data(spec, analysis.output_shape, data, config)


def evaluate_model(spec: NetworkSpec, model: nn.Module, data, split: str = "test", config=None,
                   samples: int = 16, should_stop: Callable[[], bool] | None = None,
                   batch_size: int = BATCH_SIZE) -> Evaluation | None:
    """Evaluate ``model`` (built from ``spec``, with its weights) on a split of a DataBundle, on the device
    its weights are on, in float32. ``config`` (a TrainConfig) names the loss; None takes the defaults.
    Returns None when ``should_stop()`` turned true; TrainingError when the model does not fit the data."""
    check_split(data, split)
    x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
    reshape = input_reshape_needed(spec.input_shape, data.input_shape)
    objective = make_objective(spec, data, config)
    device = model_device(model)
    reconstruct = data.task == "reconstruction"

    def batches():
        for start in range(0, len(x), batch_size):
            xb = data.model_inputs(x[start:start + batch_size].to(device))
            if reshape:
                xb = xb.reshape(xb.shape[0], *spec.input_shape)
            yb = y[start:start + batch_size].to(device)
            yield xb, (xb if reconstruct else yb.float() if yb.is_floating_point() else yb)

    inference = infer(model, model, objective, batches(), keep=True, should_stop=should_stop)
    if inference is None:
        return None
    assert inference.predicted is not None  # kept
    classes = data.num_classes if objective.classification else None
    return summarize(inference.loss, inference.accuracy, inference.predicted, y, classes, split, samples)
