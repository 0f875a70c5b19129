"""Training settings: ``TrainConfig`` (serialisable, validated) and the one table of rules it is checked against.

Every rule is a ``_Rule`` in ``_RULES`` (type, range, choices), so the settings are declared once.
Imports no torch: the window, the CLI and settings files read and check settings without it.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from engine.controls import control
from engine.errors import TrainingError

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax")
LOSSES = ("auto", "cross_entropy", "nll", "mse", "l1", "smooth_l1", "bce_with_logits", "bce")
SCHEDULES = ("none", "step", "cosine", "one_cycle", "plateau")
INITS = ("default", "xavier", "kaiming", "normal", "constant")
AMP_MODES = ("off", "bf16", "fp16")
STOP_METRICS = ("val_loss", "val_acc", "train_loss", "train_acc")
HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class _Rule:
    """What one TrainConfig field accepts."""

    type: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: the value must be strictly above ``low``
    high_open: bool = False
    choices: tuple[str, ...] = ()


_RULES: dict[str, _Rule] = {
    "optimizer": _Rule(str, choices=OPTIMIZERS),
    "lr": _Rule(float, 0.0, 10.0**6, low_open=True),
    "momentum": _Rule(float, 0.0, 1.0, high_open=True),
    "nesterov": _Rule(bool),
    "weight_decay": _Rule(float, 0.0, 1.0),
    "amsgrad": _Rule(bool),
    "loss": _Rule(str, choices=LOSSES),
    "label_smoothing": _Rule(float, 0.0, 1.0, high_open=True),
    "smooth_l1_beta": _Rule(float, 0.0, 10.0**6),
    "schedule": _Rule(str, choices=SCHEDULES),
    "step_size": _Rule(int, 1, 10**6),
    "gamma": _Rule(float, 0.0, 1.0, low_open=True),
    "warmup_epochs": _Rule(int, 0, 10**6),
    "plateau_patience": _Rule(int, 0, 10**6),
    "epochs": _Rule(int, 1, 10**6),
    "batch_size": _Rule(int, 1, 10**7),
    "init": _Rule(str, choices=INITS),
    "init_std": _Rule(float, 0.0, 10.0**3, low_open=True),
    "init_value": _Rule(float, -(10.0**3), 10.0**3),
    "l1": _Rule(float, 0.0, 10.0**3),
    "l2": _Rule(float, 0.0, 10.0**3),
    "grad_clip": _Rule(float, 0.0, 10.0**6),
    "seed": _Rule(int, 0, 2**63 - 1),
    "device": _Rule(str),
    "amp": _Rule(str, choices=AMP_MODES),
    "channels_last": _Rule(bool),
    "compile": _Rule(bool),
    "early_stopping": _Rule(bool),
    "early_stopping_metric": _Rule(str, choices=STOP_METRICS),
    "patience": _Rule(int, 1, 10**6),
    "min_delta": _Rule(float, 0.0, 10.0**6),
    "restore_best": _Rule(bool),
}


@dataclass
class TrainConfig:
    """Every training setting, with defaults that train MNIST well; ``to_dict``/``from_dict`` round-trip as JSON.

    ``momentum`` and ``nesterov`` apply to SGD, ``amsgrad`` to Adam/AdamW; ``step_size``
    (epochs) and ``gamma`` to the step schedule (``gamma`` is also the plateau cut);
    ``warmup_epochs`` ramps the learning rate up linearly first (for one-cycle it sets the
    rising phase); ``l1``/``l2`` add penalties on weights (not biases) to the loss.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    amsgrad: bool = False
    loss: str = "auto"
    label_smoothing: float = 0.0
    smooth_l1_beta: float = 1.0
    schedule: str = "none"
    step_size: int = 5
    gamma: float = 0.1
    warmup_epochs: int = 0
    plateau_patience: int = 2
    epochs: int = 5
    batch_size: int = 64
    init: str = "default"
    init_std: float = 0.01
    init_value: float = 0.0
    l1: float = 0.0
    l2: float = 0.0
    grad_clip: float = 0.0
    seed: int = 0
    device: str = "auto"
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    early_stopping: bool = False
    early_stopping_metric: str = "val_loss"
    patience: int = 3
    min_delta: float = 0.0
    restore_best: bool = True

    def validate(self) -> TrainConfig:
        """Check every field (type, range, choice); raise TrainingError naming the first bad one."""
        for f in fields(self):
            setattr(self, f.name, _checked(f.name, getattr(self, f.name)))
        if not _DEVICE_PATTERN.match(self.device):
            raise TrainingError(f"training setting 'device' must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if self.nesterov and self.optimizer == "sgd" and self.momentum == 0:
            raise TrainingError(f"training setting 'nesterov' needs a momentum above 0: set {control('training.momentum')} "
                                f"(e.g. 0.9) or turn {control('training.nesterov')} off")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> TrainConfig:
        """Read a (possibly partial) dict; missing fields take defaults, unknown or bad ones raise TrainingError."""
        if not isinstance(data, dict):
            raise TrainingError(f"training settings must be a JSON object, got {type(data).__name__}")
        for name in data:
            if name not in _RULES:
                raise TrainingError(f"unknown training setting {name!r}: known settings are {', '.join(_RULES)}")
        return cls(**{name: _checked(name, value) for name, value in data.items()}).validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise TrainingError(f"training settings are not valid JSON: {exc}") from None
        return cls.from_dict(data)


def _checked(name: str, value):
    """``value`` converted to the field's type, or TrainingError naming the field and what it accepts."""
    rule = _RULES[name]

    def fail(expected: str):
        raise TrainingError(f"training setting {name!r} must be {expected}, got {value!r}")

    if rule.type is bool:
        if not isinstance(value, bool):
            fail("true or false")
        return value
    if rule.type is str:
        if not isinstance(value, str):
            fail("a string")
        if rule.choices and value not in rule.choices:
            fail("one of " + ", ".join(rule.choices))
        return value
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if rule.type is int and not is_int:
        fail("a whole number")
    if rule.type is float:
        if not (is_int or isinstance(value, float)) or not math.isfinite(value):
            fail("a number")
        value = float(value)
    too_low = rule.low is not None and (value <= rule.low if rule.low_open else value < rule.low)
    too_high = rule.high is not None and (value >= rule.high if rule.high_open else value > rule.high)
    if too_low or too_high:
        low = f"above {rule.low:g}" if rule.low_open else f"at least {rule.low:g}"
        high = f"below {rule.high:g}" if rule.high_open else f"at most {rule.high:g}"
        fail(f"{low} and {high}")
    return value
