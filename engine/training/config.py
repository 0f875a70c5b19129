"""Training settings: ``TrainConfig``, every field declared once (engine.schema) and checked against that.

Each setting's declaration (range or choices, unit, label, help, when it matters, log scale) is the one
source for the engine's checks, the Training tab, ``layerstudio train``'s flags and the README's table.
Imports no torch: the window, the CLI and settings files read and check settings without it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.controls import control
from engine.errors import TrainingError
from engine.schema import check_fields, check_settings, only_when, setting, setting_named, settings_dict

_OPTIMIZERS = (("sgd", "SGD"), ("adam", "Adam"), ("adamw", "AdamW"), ("rmsprop", "RMSprop"), ("adagrad", "Adagrad"),
               ("adadelta", "Adadelta"), ("adamax", "Adamax"))
_LOSSES = (("auto", "Auto (from the task)"), ("cross_entropy", "Cross-entropy"), ("nll", "NLL"), ("mse", "MSE"),
           ("l1", "L1"), ("smooth_l1", "Smooth L1"), ("bce_with_logits", "BCE with logits"), ("bce", "BCE"))
_SCHEDULES = (("none", "Constant"), ("step", "Step decay"), ("cosine", "Cosine"), ("one_cycle", "One-cycle"),
              ("plateau", "Reduce on plateau"))
_INITS = (("default", "PyTorch default"), ("xavier", "xavier"), ("kaiming", "kaiming"), ("normal", "normal"),
          ("constant", "constant"))
_AMP = (("off", "Off (float32)"), ("bf16", "bfloat16"), ("fp16", "float16 + GradScaler"))
_STOP_METRICS = (("val_loss", "validation loss"), ("val_acc", "validation accuracy"), ("train_loss", "training loss"),
                 ("train_acc", "training accuracy"))
MOMENTUM_OPTIMIZERS = ("sgd",)  # RMSprop runs with torch's default (no momentum): the row is SGD's alone
BIG = 10**6

OPTIMIZERS = tuple(name for name, _label in _OPTIMIZERS)
LOSSES = tuple(name for name, _label in _LOSSES)
SCHEDULES = tuple(name for name, _label in _SCHEDULES)
INITS = tuple(name for name, _label in _INITS)
AMP_MODES = tuple(name for name, _label in _AMP)
STOP_METRICS = tuple(name for name, _label in _STOP_METRICS)
HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")


@dataclass
class TrainConfig:
    """Every training setting, declared once (engine.schema), with defaults that train MNIST well;
    ``to_dict``/``from_dict`` round-trip as JSON.

    ``l1``/``l2`` add penalties on weights (not biases) to the loss; ``warmup_epochs`` ramps the learning
    rate up linearly first (for one-cycle it sets the rising phase).
    """

    optimizer: str = setting("adam", "Optimizer", section="Optimizer", choices=_OPTIMIZERS,
                             help="The update rule")
    lr: float = setting(1e-3, "Learning rate", low=1e-8, high=1e6, log=True, search=(1e-4, 1e-1),
                        metavar="RATE", help="How far each update moves the weights")
    momentum: float = setting(0.9, "Momentum", low=0.0, high=0.999, when=only_when("optimizer", *MOMENTUM_OPTIMIZERS),
                              help="Share of the previous step kept in the next")
    nesterov: bool = setting(False, "Nesterov", when=only_when("optimizer", "sgd"),
                             help="Nesterov's look-ahead momentum")
    amsgrad: bool = setting(False, "AMSGrad", when=only_when("optimizer", "adam", "adamw"),
                            help="Keep the largest second moment seen (a variant of Adam)")
    weight_decay: float = setting(0.0, "Weight decay", low=0.0, high=1.0, log=True,
                                  search=(1e-6, 1e-2), help="Decoupled for AdamW, L2 for the others")
    loss: str = setting("auto", "Loss", section="Loss", choices=_LOSSES,
                        help="auto: cross-entropy for classes, MSE for regression")
    label_smoothing: float = setting(0.0, "Label smoothing", low=0.0, high=0.99,
                                     when=only_when("loss", "auto", "cross_entropy"),
                                     help="Share of each target spread over the other classes")
    smooth_l1_beta: float = setting(1.0, "Smooth L1 beta", low=0.0, high=BIG, when=only_when("loss", "smooth_l1"),
                                    help="Where Smooth L1 turns from squared to linear")
    schedule: str = setting("none", "Schedule", section="Schedule", choices=_SCHEDULES,
                            help="How the learning rate changes over the run")
    step_size: int = setting(5, "Step every (epochs)", low=1, high=BIG, unit="epochs",
                             when=only_when("schedule", "step"), help="Epochs between two cuts of the learning rate")
    gamma: float = setting(0.1, "Decay factor", low=1e-6, high=1.0, when=only_when("schedule", "step", "plateau"),
                           help="Multiplies the learning rate at each cut")
    plateau_patience: int = setting(2, "Plateau patience", low=0, high=BIG, unit="epochs",
                                    when=only_when("schedule", "plateau"),
                                    help="Epochs without improvement before a cut")
    warmup_epochs: int = setting(0, "Warm-up epochs", low=0, high=BIG, unit="epochs",
                                 help="Linear warm-up from a small learning rate (for one-cycle: its rising phase)")
    epochs: int = setting(5, "Epochs", section="Run", low=1, high=BIG, help="Passes over the training samples")
    batch_size: int = setting(64, "Batch size", low=1, high=10**7, log=True, search=(32, 512),
                         help="Samples per step")
    seed: int = setting(0, "Seed", low=0, high=2**31 - 1, help="Same seed, same data, CPU: identical losses")
    init: str = setting("default", "Weight init", choices=_INITS, help="How weights start (biases start at 0)")
    init_std: float = setting(0.01, "Init std", low=1e-8, high=1e3, log=True, when=only_when("init", "normal"),
                              help="Standard deviation of the normal initialisation")
    init_value: float = setting(0.0, "Init value", low=-1e3, high=1e3, when=only_when("init", "constant"),
                                help="The value every weight starts at")
    l1: float = setting(0.0, "L1 penalty", section="Regularisation", low=0.0, high=1e3,
                        help="Adds this times the sum of |weights| (not biases) to the loss")
    l2: float = setting(0.0, "L2 penalty", low=0.0, high=1e3,
                        help="Adds this times the sum of squared weights (not biases) to the loss")
    grad_clip: float = setting(0.0, "Gradient clip", low=0.0, high=BIG, help="Max gradient norm (0 = off)")
    device: str = setting("auto", "Device", section="Hardware", widget="device",
                          pattern=r"auto|cpu|mps|cuda(:\d+)?", hint="auto, cpu, cuda, cuda:N or mps",
                          help="Where the tensors live")
    amp: str = setting("off", "Mixed precision", choices=_AMP, help="Lower-precision math on GPUs")
    channels_last: bool = setting(False, "channels_last", help="Memory format that suits convolutions on GPUs")
    compile: bool = setting(False, "torch.compile", help="Compile the model first (slow start, faster steps)")
    early_stopping: bool = setting(False, "Early stopping", section="Early stopping",
                                   help="End the run when the watched measure stops improving")
    early_stopping_metric: str = setting("val_loss", "Watch", choices=_STOP_METRICS,
                                         when=only_when("early_stopping", True),
                                         help="The measure early stopping watches")
    patience: int = setting(3, "Patience (epochs)", low=1, high=BIG, unit="epochs",
                            when=only_when("early_stopping", True),
                            help="Epochs without improvement before the run ends")
    min_delta: float = setting(0.0, "Min improvement", low=0.0, high=BIG, when=only_when("early_stopping", True),
                               help="A smaller change does not count as an improvement")
    restore_best: bool = setting(True, "Restore best weights", when=only_when("early_stopping", True),
                                 help="End with the weights of the best epoch")
    health: bool = setting(True, "Training health", section="Monitoring",
                           help="Record each layer's gradients, activations, dead and saturated units a few times a "
                                "second, with advice")
    tensorboard: str = setting("", "TensorBoard", metavar="DIR", widget="tensorboard",
                               hint="a folder (empty: off)",
                               help="Write TensorBoard event files (losses, accuracy, learning rate, health, settings, "
                                    "the model's graph) into a subfolder of this folder per run; empty: off")

    def validate(self) -> TrainConfig:
        """Check every field against its declaration (type, range, choice); raise TrainingError naming the first
        bad one. Ints given for float settings become floats."""
        check_fields(self, "training", TrainingError)
        if self.nesterov and self.optimizer == "sgd" and self.momentum == 0:
            raise TrainingError(f"The training setting 'nesterov' needs a momentum above 0: set "
                                f"{control('training.momentum')} (e.g. 0.9) or turn "
                                f"{control('training.nesterov')} off.")
        return self

    def to_dict(self) -> dict:
        return settings_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> TrainConfig:
        """Read a (possibly partial) dict; missing fields take defaults, unknown or bad ones raise TrainingError."""
        return cls(**check_settings(cls, data, "training", TrainingError)).validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise TrainingError(f"The training settings are not valid JSON: {exc}.") from None
        return cls.from_dict(data)


_LR = setting_named(TrainConfig, "lr")  # the sweep's rates are rates a run could be given


@dataclass(frozen=True)
class LRFindConfig:
    """The learning-rate range test's settings (engine.training.lr_finder), declared once like TrainConfig's: the
    rate rises exponentially from ``start_lr`` to ``end_lr`` over ``steps`` steps, the loss is smoothed with
    ``smoothing`` (an exponential moving average's weight of the past, 0: none) and the sweep stops once the
    smoothed loss passes ``diverge_factor`` times its best."""

    start_lr: float = setting(1e-7, "Start learning rate", section="Learning-rate sweep", low=_LR.low, high=_LR.high,
                              log=True, metavar="RATE", help="The learning rate of the sweep's first step")
    end_lr: float = setting(10.0, "End learning rate", low=_LR.low, high=_LR.high, log=True, metavar="RATE",
                            help="The learning rate of its last step (the sweep stops earlier when the loss explodes)")
    steps: int = setting(100, "Steps", low=20, high=1000, unit="steps",
                         help="Optimizer steps from the start to the end learning rate")
    # 0.95 (a memory of about 20 steps), not fastai's 0.98 (about 50): over 100 steps the longer memory drags the
    # smoothed curve's steepest point to higher rates (3x higher for the MLP on the sample: lr_find_compare.py).
    smoothing: float = setting(0.95, "Smoothing", low=0.0, high=0.999, flag="",
                               help="Weight of the past in the smoothed loss (0: the raw loss)")
    diverge_factor: float = setting(4.0, "Divergence factor", low=1.1, high=1000.0, flag="",
                                    help="The sweep stops when the smoothed loss passes this many times its best")

    def validate(self) -> LRFindConfig:
        """This config, or TrainingError naming the first setting outside its range, or an end not above the start
        (settings key ``sweep.<name>``, e.g. ``control("sweep.end_lr")``)."""
        check_fields(self, "sweep", TrainingError)
        if self.end_lr <= self.start_lr:
            raise TrainingError(f"The sweep must rise: {control('sweep.end_lr')} ({self.end_lr:g}) must be above "
                                f"{control('sweep.start_lr')} ({self.start_lr:g}).")
        return self
