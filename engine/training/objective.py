"""What a run minimises: the loss for a task and a model output (``Objective``), checked up front against
the data, with the targets shaped for it and predictions read from the output."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from engine.controls import control
from engine.errors import TrainingError
from engine.layers import prod, shape_tuple_text
from engine.training.config import TrainConfig


class Objective:
    """The loss for a task and a model output: the criterion, how targets are shaped for it, how
    predictions are read. Checks up front that the design's output fits the data (TrainingError)."""

    def __init__(self, loss: str, task: str, output_shape: tuple[int, ...], target_shape: tuple[int, ...],
                 num_classes: int | None, config: TrainConfig):
        self.name = resolve_loss(loss, task)
        self.task = task
        self.classification = task == "classification"
        self.num_classes = num_classes
        self.output_shape = tuple(output_shape)
        self.criterion = _make_criterion(self.name, config)
        self._target: Callable[[torch.Tensor], torch.Tensor] | None = None  # None: labels or values go in as they are
        self._binary_threshold: float | None = None
        if self.classification:
            self._fit_classes(output_shape, num_classes or 0)
        else:
            self._fit_values(output_shape, target_shape)

    @classmethod
    def for_data(cls, spec, output_shape: tuple[int, ...], data, config: TrainConfig) -> Objective:
        """The objective of a design (``spec``, its output shape) on a DataBundle; a reconstruction's targets
        are its inputs."""
        target_shape = tuple(spec.input_shape) if data.task == "reconstruction" else tuple(data.train_y.shape[1:])
        return cls(config.loss, data.task, tuple(output_shape), target_shape, data.num_classes, config)

    def _fit_classes(self, out: tuple[int, ...], classes: int) -> None:
        name = self.name
        if name in ("mse", "l1", "smooth_l1", "cross_entropy", "nll") or out != (1,):
            if out != (classes,):
                raise TrainingError(
                    f"the design outputs {shape_tuple_text(out)} per sample but the data has {classes} classes: "
                    f"make the last layer give {classes} values (e.g. Linear with out_features {classes})"
                )
        elif classes != 2:
            raise TrainingError(
                f"one output value can only separate 2 classes but the data has {classes}: "
                f"make the last layer give {classes} values"
            )
        if name in ("cross_entropy", "nll"):
            return
        if out == (1,):
            self._target = lambda y: y.to(torch.float32).unsqueeze(1)
            self._binary_threshold = 0.0 if name == "bce_with_logits" else 0.5
        else:
            self._target = lambda y: nn.functional.one_hot(y, classes).to(torch.float32)

    def _fit_values(self, out: tuple[int, ...], target: tuple[int, ...]) -> None:
        if self.name in ("cross_entropy", "nll"):
            raise TrainingError(
                f"loss {self.name!r} needs class labels but the data is for {self.task}: "
                f"set {control('training.loss')} to mse, l1 or smooth_l1"
            )
        target = target or (1,)
        if prod(out) != prod(target):
            raise TrainingError(
                f"the design outputs {shape_tuple_text(out)} per sample but the {self.task} targets are "
                f"{shape_tuple_text(target)}: make the last layer give {prod(target)} values"
            )
        if out != target:
            self._target = lambda y: y.reshape(y.shape[0], *out)

    def target(self, y: torch.Tensor) -> torch.Tensor:
        return y if self._target is None else self._target(y)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss in float32 (outside autocast: BCE is unsafe there, and float32 sums are steadier)."""
        return self.criterion(out.float(), self.target(y))

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        """Class index per sample (classification only)."""
        if self._binary_threshold is not None:
            return (out[:, 0] > self._binary_threshold).long()
        return out.argmax(1)


def resolve_loss(loss: str, task: str) -> str:
    """'auto' is cross-entropy for classification and mean squared error otherwise."""
    if loss != "auto":
        return loss
    return "cross_entropy" if task == "classification" else "mse"


def _make_criterion(name: str, config: TrainConfig) -> nn.Module:
    if name == "cross_entropy":
        return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    if name == "smooth_l1":
        return nn.SmoothL1Loss(beta=config.smooth_l1_beta)
    return {"nll": nn.NLLLoss, "mse": nn.MSELoss, "l1": nn.L1Loss,
            "bce_with_logits": nn.BCEWithLogitsLoss, "bce": nn.BCELoss}[name]()


def weight_penalty(weights: list[torch.Tensor], l1: float, l2: float) -> torch.Tensor | float:
    """l1 * sum|w| + l2 * sum w^2 over ``weights`` (the trainer passes weights, not biases or norm scales);
    0.0 when both are 0."""
    total: torch.Tensor | float = 0.0
    if l1:
        total = l1 * torch.stack(torch._foreach_norm(weights, 1)).sum()
    if l2:
        total = total + l2 * torch.stack(torch._foreach_norm(weights, 2)).pow(2).sum()
    return total
