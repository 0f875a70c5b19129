"""The Trainer's evaluation of a split: its model on the data already on its device, under autocast.

engine.evaluation holds the one implementation (``infer``, ``summarize``, ``check_split``) that
evaluating a model without a Trainer uses too; this module only feeds it the trainer's batches.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from engine.evaluation import Evaluation, infer, summarize
from engine.training.batches import DeviceData
from engine.training.objective import Objective


def infer_split(model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], objective: Objective,
                data: DeviceData, split: str, batch_size: int,
                keep: bool) -> tuple[float, float | None, torch.Tensor | None]:
    """Mean loss, accuracy and (``keep``) every prediction of a split, in batches of at least 256 samples."""
    size = max(2 * batch_size, 256)
    result = infer(model, forward, objective, data.in_order(split, size), keep)
    assert result is not None  # without should_stop it runs to the end
    return result.loss, result.accuracy, result.predicted


def evaluate_split(model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor], objective: Objective,
                   data: DeviceData, split: str, batch_size: int, samples: int) -> Evaluation:
    """Loss, accuracy, confusion matrix, per-class accuracy and ``samples`` predictions on a split."""
    loss, accuracy, predicted = infer_split(model, forward, objective, data, split, batch_size, keep=True)
    assert predicted is not None  # kept
    _, y = data.split(split)
    classes = objective.num_classes if objective.classification else None
    return summarize(loss, accuracy, predicted, y, classes, split, samples)
