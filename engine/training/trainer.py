"""The Trainer: a fast, stoppable, resumable run of one design on one dataset with one TrainConfig.

Speed: the data sits on the training device as whole tensors; each epoch draws a
seeded permutation and cuts batches by indexing (no per-sample DataLoader), and
batch losses and correct counts stay in device tensors that are read back a few
times a second and at each epoch end (no per-batch host-device sync).

Safety: a NaN/Inf loss, or a loss that stays far above its starting value
(engine.divergence), ends the run as "diverged" with the last good weights
restored; out-of-memory and any other exception end the run with a reason and a
message instead of escaping ``run()``. Progress leaves as plain event
dataclasses through one callback, so the GUI thread, the CLI and tests all drive
the same code; nothing here knows Qt.
"""
from __future__ import annotations

import logging
import math
import os
import platform
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
from torch import nn

from engine import preflight
from engine.build import build_model
from engine.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, fitted_optimizer_state, validate_checkpoint
from engine.controls import control
from engine.data import augment_batch
from engine.device_memory import free_device_memory
from engine.divergence import LossWatch
from engine.errors import SpecError, TrainingError, WeightsError
from engine.evaluation import Evaluation, infer, input_reshape_needed, summarize
from engine.layers import prod, shape_tuple_text
from engine.log import report_unexpected
from engine.memory import check_training_fits
from engine.shapes import analyze
from engine.spec import NetworkSpec
from engine.training.config import HISTORY_KEYS, TrainConfig
from engine.training.events import BatchEnd, EpochEnd, Event, FinishReason, RunFinished, RunStarted

READBACK_INTERVAL_S = 0.25  # metrics leave the device at most ~4 times a second (plus every epoch end)
COMPILE_OPTIONS: dict = {}  # keyword arguments for torch.compile when TrainConfig.compile is on (default: inductor)
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- building blocks

def warm_up() -> None:
    """Pay torch's one-time costs (the first optimizer imports torch._dynamo, 1-2 s) ahead of the first
    run, e.g. from a GUI worker thread at start-up, so pressing Train feels instant."""
    layer = nn.Linear(2, 2)
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.zeros(1, 2)).sum().backward()
    optimizer.step()
    if torch.cuda.is_available():  # creating the CUDA context takes a second or more too
        torch.zeros(1, device="cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; a named device must exist here (TrainingError otherwise)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingError(f"device {name!r} is not available here (no CUDA GPU): "
                                f"set {control('training.device')} to auto or cpu")
        device = torch.device(name)
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise TrainingError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
        return torch.device("cuda", index)
    if name == "mps" and not torch.backends.mps.is_available():
        raise TrainingError(f"device 'mps' is not available here (no Apple GPU): "
                            f"set {control('training.device')} to auto or cpu")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """A person-readable name for the device, e.g. 'NVIDIA H100 80GB HBM3' or 'CPU (2 threads)'."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"{platform.processor() or 'CPU'} ({torch.get_num_threads()} threads)".strip()


def initialize_weights(model: nn.Module, config: TrainConfig) -> None:
    """Apply the chosen init to every weight-bearing layer's weights (biases to zero); 'default' keeps PyTorch's."""
    if config.init == "default":
        return
    fill = {
        "xavier": nn.init.xavier_uniform_,
        "kaiming": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
        "normal": lambda w: nn.init.normal_(w, 0.0, config.init_std),
        "constant": lambda w: nn.init.constant_(w, config.init_value),
    }[config.init]
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd, nn.RNNBase, nn.Embedding)):
            for name, param in module.named_parameters(recurse=False):
                if param.dim() >= 2:
                    fill(param)
                elif name.startswith("bias"):
                    nn.init.zeros_(param)


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
        self._target = None  # None = the labels or values go in as they are
        self._binary_threshold: float | None = None
        if self.classification:
            self._fit_classes(output_shape, num_classes or 0)
        else:
            self._fit_values(output_shape, target_shape)

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


_FUSED = {"cpu": ("sgd", "adam", "adamw", "adagrad"), "cuda": ("sgd", "adam", "adamw")}


def make_optimizer(params: list[nn.Parameter], config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """The chosen optimizer over ``params``, using the fused (one kernel) or foreach implementation where this
    device has one: on a CPU fused Adam is ~20% faster than the default per-tensor loop."""
    name, lr, wd = config.optimizer, config.lr, config.weight_decay
    if name in _FUSED.get(device.type, ()):
        speed: dict = {"fused": True}
    elif device.type in ("cuda", "mps"):
        speed = {"foreach": True}
    else:
        speed = {}
    optim = torch.optim
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=wd, **speed)
    if name in ("adam", "adamw"):
        cls = optim.Adam if name == "adam" else optim.AdamW
        return cls(params, lr=lr, weight_decay=wd, amsgrad=config.amsgrad, **speed)
    cls = {"rmsprop": optim.RMSprop, "adagrad": optim.Adagrad, "adadelta": optim.Adadelta, "adamax": optim.Adamax}[name]
    return cls(params, lr=lr, weight_decay=wd, **speed)


class LearningRateSchedule:
    """The learning rate per optimizer step: optional linear warm-up, then step / cosine / one-cycle
    decay (one-cycle as torch's OneCycleLR with cosine annealing, momentum not cycled); 'plateau'
    multiplies by ``gamma`` when the epoch metric stalls for more than ``plateau_patience`` epochs.
    Plain numbers only, so its state saves in a checkpoint."""

    ONE_CYCLE_DIV, ONE_CYCLE_FINAL_DIV, ONE_CYCLE_PCT = 25.0, 1e4, 0.3

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
        self.optimizer = optimizer
        self.kind = config.schedule
        self.steps_per_epoch = steps_per_epoch
        self.total = config.epochs * steps_per_epoch
        self.warmup = config.warmup_epochs * steps_per_epoch
        self.step_size, self.gamma, self.patience = config.step_size, config.gamma, config.plateau_patience
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.steps = 0
        self.plateau_factor = 1.0
        self.best = math.inf
        self.bad_epochs = 0
        self.active = self.kind != "none" or self.warmup > 0  # inactive: nothing to do per step
        self.apply()

    def factor(self, t: int) -> float:
        """Multiplier of the base rate for step ``t`` (0-based)."""
        if self.kind == "one_cycle":
            return self._one_cycle(t)
        warm = min(1.0, (t + 1) / self.warmup) if self.warmup else 1.0
        if self.kind == "step":
            return warm * self.gamma ** (t // self.steps_per_epoch // self.step_size)
        if self.kind == "cosine":
            span = self.total - self.warmup
            if span <= 0 or t < self.warmup:
                return warm
            return warm * 0.5 * (1.0 + math.cos(math.pi * min(t - self.warmup, span) / span))
        return warm * self.plateau_factor

    def _one_cycle(self, t: int) -> float:
        pct = self.warmup / self.total if self.warmup else self.ONE_CYCLE_PCT
        start, peak = 1.0 / self.ONE_CYCLE_DIV, 1.0
        end = start / self.ONE_CYCLE_FINAL_DIV
        rise_end = pct * self.total - 1
        if t <= rise_end:
            a, b, begin, stop = start, peak, 0.0, rise_end
        else:
            a, b, begin, stop = peak, end, rise_end, self.total - 1
        frac = (t - begin) / (stop - begin) if stop > begin else 1.0
        return b + (a - b) / 2.0 * (math.cos(math.pi * frac) + 1.0)

    def apply(self) -> None:
        factor = self.factor(self.steps)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def step(self) -> None:
        """After each optimizer step."""
        self.steps += 1
        self.apply()

    def end_epoch(self, metric: float) -> None:
        """After each epoch, with the loss that 'plateau' watches (validation loss when there is one)."""
        if self.kind != "plateau" or not math.isfinite(metric):
            return
        if metric < self.best * (1.0 - 1e-4):
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                self.plateau_factor *= self.gamma
                self.bad_epochs = 0
                self.apply()

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        return {"steps": self.steps, "plateau_factor": self.plateau_factor, "best": self.best,
                "bad_epochs": self.bad_epochs, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.plateau_factor = int(state["steps"]), float(state["plateau_factor"])
        self.best, self.bad_epochs = float(state["best"]), int(state["bad_epochs"])
        self.base_lrs = [float(lr) for lr in state["base_lrs"]]
        self.apply()


# --------------------------------------------------------------------------- the trainer

def steps_per_epoch(samples: int, batch_size: int) -> int:
    """Batches per epoch; a trailing batch of a single sample is skipped (BatchNorm cannot train on one
    sample, and each epoch's permutation leaves out a different one)."""
    if samples > 1 and samples % batch_size == 1:
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

    def to_dict(self) -> dict:
        return {"perm": self.perm.clone(), "step": self.step, "losses": list(self.losses),
                "correct": self.correct, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, state: dict) -> _EpochProgress:
        return cls(state["perm"].to(torch.int64).cpu(), int(state["step"]), [float(v) for v in state["losses"]],
                   int(state["correct"]), float(state["seconds"]))


class _LastGoodWeights:
    """Device-side copies of the weights and float buffers, so a diverged run can hand back good weights:
    ``copy`` holds weights whose losses were seen to be fine (finite, under the divergence threshold);
    the weights of the latest calm read-back wait as ``pending`` until the losses they produce are seen."""

    def __init__(self, model: nn.Module, global_step: int):
        self.live = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
        with torch.no_grad():
            self.copy = [t.detach().clone() for t in self.live]
        self.global_step = global_step
        self.pending: list[torch.Tensor] | None = None
        self.pending_step = global_step

    def save(self, global_step: int) -> None:
        """At a read-back whose losses were all fine: the pending weights produced them, so they become the
        good copy, and the live (finite) weights become pending."""
        with torch.no_grad():
            if self.pending is None:
                self.pending = [t.detach().clone() for t in self.live]
            else:
                self.copy, self.pending = self.pending, self.copy
                self.global_step = self.pending_step
                for saved, live in zip(self.pending, self.live):
                    saved.copy_(live)
        self.pending_step = global_step

    def restore(self) -> None:
        with torch.no_grad():
            for saved, live in zip(self.copy, self.live):
                live.copy_(saved)

    def all_finite(self) -> torch.Tensor:
        """A 0-d device tensor: 1.0 when every live weight is finite (read back with the losses, no extra sync).
        The max-abs norm of each tensor, in one foreach call: NaN and inf propagate, finite values stay finite."""
        with torch.no_grad():
            return torch.stack(torch._foreach_norm(self.live, math.inf)).isfinite().all().to(torch.float32)


def _device_rng_state(device: torch.device) -> torch.Tensor | None:
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    if device.type == "mps":
        return torch.mps.get_rng_state()
    return None


def _set_device_rng_state(device: torch.device, state: torch.Tensor) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    elif device.type == "mps":
        torch.mps.set_rng_state(state)


def _seeded_device_rng_state(device: torch.device, seed: int) -> torch.Tensor | None:
    """The device's default generator state after seeding, without changing the global one."""
    outer = _device_rng_state(device)
    if outer is None:
        return None
    if device.type == "cuda":
        torch.cuda.default_generators[device.index].manual_seed(seed)
    else:
        torch.mps.manual_seed(seed)
    state = _device_rng_state(device)
    _set_device_rng_state(device, outer)
    return state


def _cpu_copy(value):
    """A deep copy with every tensor on the CPU (a checkpoint must not alias live training state)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: _cpu_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu_copy(item) for item in value)
    return value


_OUT_OF_MEMORY_TYPES = tuple({MemoryError, getattr(torch, "OutOfMemoryError", MemoryError),
                              getattr(torch.cuda, "OutOfMemoryError", MemoryError)})


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA / MPS / CPU allocation failures, whatever their exception type."""
    if isinstance(exc, _OUT_OF_MEMORY_TYPES):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        marker in text for marker in ("out of memory", "can't allocate memory", "failed to allocate"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _never() -> bool:
    return False


def _ignore(event) -> None:
    return None


class Trainer:
    """Trains one design on one dataset with one config; ``run()`` can be called again after a stop and
    continues where it left off (also mid-epoch), ``checkpoint()``/``load_checkpoint()`` carry that
    state (weights, optimizer, schedule, scaler, RNG, progress) across processes.

    Threading: ``run()`` blocks its thread; ``pause()``, ``resume()`` and ``stop()`` may be called
    from any other thread. ``run()`` borrows torch's global RNG for dropout and restores it after.
    """

    def __init__(self, spec: NetworkSpec, data, config: TrainConfig):
        config = self.config = replace(config).validate()  # a private copy: later edits cannot reach a run
        self.spec, self.data = spec, data
        self.notes: list[str] = []
        self.device = resolve_device(config.device)
        self.task = data.task
        self.streaming = bool(getattr(data, "streaming", False))
        self.train_samples = data.train_size if hasattr(data, "train_size") else len(data.train_x)
        if self.train_samples == 0:
            raise TrainingError(f"the data has no training samples: pick a dataset with samples or lower "
                                f"{control('data.val_fraction')}")
        self._input_reshape = self._input_shape_check(spec, data)
        analysis = analyze(spec)
        if not analysis.ok:
            row = analysis.errors[0]
            raise TrainingError(f"the design has an error at layer {row.index} ({row.kind}): {row.error}")
        preflight.check(spec, analysis, data, config.batch_size, self.train_samples)
        check_training_fits(analysis, config, self.device, data)  # before build_model allocates anything
        target_shape = tuple(spec.input_shape) if data.task == "reconstruction" else tuple(data.train_y.shape[1:])
        self.objective = Objective(config.loss, data.task, tuple(analysis.output_shape), target_shape,
                                   data.num_classes, config)
        ends_in_probabilities = bool(spec.layers) and spec.layers[-1].kind == "Sigmoid"
        if self.objective.name == "bce" and not ends_in_probabilities:
            raise TrainingError("loss 'bce' needs outputs between 0 and 1: end the design with a Sigmoid, "
                                f"or set {control('training.loss')} to bce_with_logits, which takes the raw outputs")
        self.classification = self.objective.classification
        self.amp_dtype = self._resolve_amp()
        self.channels_last = self._resolve_channels_last(spec)
        self.augment = data.augment if getattr(data.augment, "active", False) else None
        self._reconstruct = data.task == "reconstruction"

        self.model, self._rng = self._build_model(spec)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not self.trainable:
            raise TrainingError("the design has no trainable parameters: unfreeze a layer or add one with weights")
        self._penalised = [p for p in self.trainable if p.dim() > 1] if (config.l1 or config.l2) else []
        self._forward = torch.compile(self.model, **COMPILE_OPTIONS) if config.compile else self.model
        self.optimizer = make_optimizer(self.trainable, config, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp_dtype is torch.float16 else None
        self.steps_per_epoch = steps_per_epoch(self.train_samples, config.batch_size)
        self.schedule = LearningRateSchedule(self.optimizer, config, self.steps_per_epoch)
        self.generator = torch.Generator().manual_seed(config.seed)  # epoch permutations
        self.augment_generator = torch.Generator(device=self.device).manual_seed((config.seed + 1) % 2**63)
        self.stop_metric = self._resolve_stop_metric()

        self.epoch = 0  # epochs completed
        self.global_step = 0  # optimizer steps taken
        self.history: dict[str, list[float | None]] = {key: [] for key in HISTORY_KEYS}
        self._progress: _EpochProgress | None = None  # set while an epoch is unfinished
        self._best: dict = {"value": None, "epoch": 0, "bad_epochs": 0}
        self._best_weights: dict | None = None
        self._device_data: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._last_good: _LastGoodWeights | None = None
        self.loss_watch = LossWatch(config.batch_size)  # divergence beyond NaN: a sustained blow-up of the loss
        self._stop = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()
        self._running = False

    # -- set-up helpers
    def _input_shape_check(self, spec: NetworkSpec, data) -> bool:
        """True when samples must be reshaped to the design's input (same size, e.g. 1x28x28 -> 784)."""
        return input_reshape_needed(spec.input_shape, data.input_shape)

    def _resolve_amp(self) -> torch.dtype | None:
        mode, kind = self.config.amp, self.device.type
        if mode == "off":
            return None
        if mode == "fp16" and kind != "cuda":
            self.notes.append(f"fp16 mixed precision needs a CUDA GPU; training in float32 on {kind}")
            return None
        if mode == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
            self.notes.append("this GPU has no bfloat16 support; training in float32")
            return None
        return torch.float16 if mode == "fp16" else torch.bfloat16

    def _resolve_channels_last(self, spec: NetworkSpec) -> bool:
        if not self.config.channels_last:
            return False
        if len(spec.input_shape) != 3:
            self.notes.append("channels_last applies to image inputs (channels, height, width) only; ignored")
            return False
        return True

    def _resolve_stop_metric(self) -> str:
        metric = self.config.early_stopping_metric
        has_val = len(self.data.val_x) > 0
        if metric.startswith("val_") and not has_val:
            metric = "train_" + metric[4:]
            if self.config.early_stopping:
                self.notes.append(f"no validation data: early stopping watches {metric}")
        if metric.endswith("_acc") and not self.classification:
            metric = metric[:-4] + "_loss"
            if self.config.early_stopping:
                self.notes.append(f"accuracy needs classes: early stopping watches {metric}")
        return metric

    def _build_model(self, spec: NetworkSpec) -> tuple[nn.Module, dict]:
        """Build and initialise the model from the seed; the global RNG stream that continues from there
        (dropout) becomes the trainer's own, and the caller's global RNG is left as it was."""
        outer = torch.get_rng_state()
        try:
            torch.default_generator.manual_seed(self.config.seed)
            try:
                model = build_model(spec)
            except SpecError as exc:
                raise TrainingError(f"the design cannot be built: {exc}") from None
            initialize_weights(model, self.config)
            rng = {"torch": torch.get_rng_state(), "device": _seeded_device_rng_state(self.device, self.config.seed)}
        finally:
            torch.set_rng_state(outer)
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model, rng

    @contextmanager
    def _rng_scope(self):
        """While training, torch's global RNG (used by dropout) runs the trainer's own stream."""
        outer, outer_device = torch.get_rng_state(), _device_rng_state(self.device)
        torch.set_rng_state(self._rng["torch"])
        if outer_device is not None:
            _set_device_rng_state(self.device, self._rng["device"])
        self._running = True
        try:
            yield
        finally:
            self._running = False
            self._rng["torch"] = torch.get_rng_state()
            torch.set_rng_state(outer)
            if outer_device is not None:
                self._rng["device"] = _device_rng_state(self.device)
                _set_device_rng_state(self.device, outer_device)

    def _on_device(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The split's inputs (as stored: batches go through _prepare_inputs) and targets on the training
        device, moved once and kept."""
        if split not in self._device_data:
            x, y = getattr(self.data, f"{split}_x"), getattr(self.data, f"{split}_y")
            same = y is x
            x = x.to(self.device)
            y = x if same else y.to(self.device)
            if y.is_floating_point() and y is not x:
                y = y.to(torch.float32)
            self._device_data[split] = (x, y)
        return self._device_data[split]

    def _prepare_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of stored samples as the model takes them: enlarged (DataBundle.model_inputs), reshaped."""
        x = self.data.model_inputs(x)
        if self._input_reshape:
            x = x.reshape(x.shape[0], *self.spec.input_shape)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    # -- control from other threads
    def pause(self) -> None:
        """Hold the run between two batches until resume() or stop()."""
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()

    def stop(self) -> None:
        """End the run before the next batch (also wakes a paused run); run() then returns 'stopped'."""
        self._stop.set()
        self._resumed.set()

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    @property
    def running(self) -> bool:
        return self._running

    @property
    def lr(self) -> float:
        return self.schedule.lr

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    # -- the run
    def run(self, on_event: Callable[[Event], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> RunFinished:
        """Train from ``self.epoch`` (and any unfinished epoch) to ``config.epochs``; never raises.

        ``on_event`` receives RunStarted, BatchEnd (a few per second), EpochEnd and RunFinished;
        ``should_stop`` is polled before every batch. Returns the RunFinished it also emits.
        """
        emit = on_event or _ignore
        should_stop = should_stop or _never
        if self._running:
            return RunFinished(FinishReason.ERROR, "this trainer is already running: wait for its run to finish",
                               self.epoch)
        failure: tuple[FinishReason, str] | None = None
        try:
            with self._rng_scope():
                finished = self._run(emit, should_stop)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reason and a message
            failure = self._describe_failure(exc)
        if failure is not None:  # outside the except block: the traceback no longer pins batch tensors
            reason, message = failure
            self._progress = None
            if reason is FinishReason.OUT_OF_MEMORY:
                self._release_memory()
            finished = RunFinished(reason, message, self.epoch)
        self._stop.clear()
        log.info("Run on %s ended (%s; epochs done: %d): %s", self.device, finished.reason, self.epoch,
                 finished.message)
        try:
            emit(finished)
        except Exception:  # noqa: BLE001 - a broken listener must not turn a finished run into a crash
            log.exception("The listener of the finished run failed")
        return finished

    def _run(self, emit, should_stop) -> RunFinished:
        cfg = self.config
        if not self.streaming:
            self._on_device("train")
        emit(RunStarted(
            device=str(self.device), device_name=device_name(self.device), epochs=cfg.epochs,
            start_epoch=self.epoch, steps_per_epoch=self.steps_per_epoch, parameters=self.parameter_count,
            train_samples=self.train_samples, val_samples=len(self.data.val_x), notes=tuple(self.notes),
        ))
        if self.epoch >= cfg.epochs:
            return RunFinished(FinishReason.COMPLETED, f"already trained {self.epoch} of {cfg.epochs} epochs: "
                                                      f"raise {control('training.epochs')} to go on", self.epoch)
        self.model.train()
        self._last_good = _LastGoodWeights(self.model, self.global_step)
        while self.epoch < cfg.epochs:
            ended = self._train_epoch(emit, should_stop)
            if ended is None:
                ended = self._end_epoch(emit)
            if ended is not None:
                return ended
        return self._completed()

    def _batches(self, progress: _EpochProgress):
        """(inputs, targets) on the device for the epoch's remaining steps, in the permutation's order."""
        size, perm, first = self.config.batch_size, progress.perm, progress.step
        if not self.streaming:
            x, y = self._on_device("train")
            perm = perm.to(self.device)
            for step in range(first, self.steps_per_epoch):
                idx = perm[step * size:(step + 1) * size]
                xb = self._prepare_inputs(x.index_select(0, idx))
                yield xb, (xb if self._reconstruct else y.index_select(0, idx))
            return
        batches = [perm[step * size:(step + 1) * size].tolist() for step in range(first, self.steps_per_epoch)]
        dataset = self.data.train_dataset
        # worker processes pay off when samples are decoded from files, not for tensors already in memory
        in_memory = isinstance(dataset, torch.utils.data.TensorDataset)
        workers = 0 if in_memory else max(0, min(4, (os.cpu_count() or 1) - 1))
        # its own generator: a DataLoader otherwise draws its workers' base seed from the global RNG (dropout's)
        seeds = torch.Generator().manual_seed((self.config.seed + self.epoch) % 2**63)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers,
                                             pin_memory=self.device.type == "cuda", generator=seeds)
        for xb, yb in loader:
            xb = self._prepare_inputs(xb.to(self.device, non_blocking=True))
            yield xb, (xb if self._reconstruct else yb.to(self.device, non_blocking=True))

    def _train_epoch(self, emit, should_stop) -> RunFinished | None:
        """Train the current epoch (or its rest); returns a RunFinished if the run must end here."""
        progress = self._progress or _EpochProgress(torch.randperm(self.train_samples, generator=self.generator))
        self._progress = progress
        reader = _ReadBack(self, progress, emit)
        train_step, stop_requested = self._train_step, self._stop.is_set
        for xb, yb in self._batches(progress):
            if not self._resumed.is_set():
                ended = reader.flush()
                if ended is not None:
                    return ended
                progress.seconds += reader.pause_clock()
                self._wait_while_paused(should_stop)
                reader.restart_clock()
            if stop_requested() or should_stop():
                return reader.flush() or self._stopped(progress, reader)
            loss, correct = train_step(xb, yb)
            progress.step += 1
            self.global_step += 1
            reader.add(loss, correct, xb.shape[0])
            if progress.step == self.steps_per_epoch or reader.due():
                ended = reader.flush()
                if ended is not None:
                    return ended
        progress.seconds += reader.pause_clock()
        return None

    def _train_step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One optimizer step; returns the batch loss and correct count as device tensors (no sync)."""
        if self.augment is not None:
            xb = augment_batch(xb, self.augment, self.augment_generator)
            if self._reconstruct:
                yb = xb
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
        self.optimizer.zero_grad(set_to_none=True)
        out = self._forward_amp(xb)
        loss = self.objective.loss(out, yb)
        total = loss + self._penalty() if self._penalised else loss
        clip = self.config.grad_clip
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            if clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.trainable, clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            total.backward()
            if clip:
                nn.utils.clip_grad_norm_(self.trainable, clip)
            self.optimizer.step()
        if self.schedule.active:
            self.schedule.step()
        correct = (self.objective.predict(out.detach()) == yb).sum() if self.classification else None
        return loss.detach(), correct

    def _penalty(self) -> torch.Tensor:
        """l1 * sum|w| + l2 * sum w^2 over the weights (not biases or norm scales)."""
        total = 0.0
        if self.config.l1:
            total = self.config.l1 * torch.stack(torch._foreach_norm(self._penalised, 1)).sum()
        if self.config.l2:
            total = total + self.config.l2 * torch.stack(torch._foreach_norm(self._penalised, 2)).pow(2).sum()
        return total

    def _wait_while_paused(self, should_stop) -> None:
        """Block (no spinning) until resumed or stopped; wakes a few times a second to poll should_stop."""
        while not self._resumed.wait(READBACK_INTERVAL_S):
            if self._stop.is_set() or should_stop():
                return

    def _stopped(self, progress: _EpochProgress, reader: _ReadBack) -> RunFinished:
        """Keep the unfinished epoch's progress so the next run() (or a checkpoint) continues it."""
        progress.seconds += reader.pause_clock()
        where = f"epoch {self.epoch + 1}, step {progress.step} of {self.steps_per_epoch}"
        return RunFinished(FinishReason.STOPPED, f"stopped at {where}; run again to continue", self.epoch)

    def _diverged(self, progress: _EpochProgress, bad_step: int | None, value: float,
                  exploded: bool = False) -> RunFinished:
        """Restore the last good weights, forget the optimizer's (now poisoned) state, end the run."""
        self._last_good.restore()
        self.optimizer.state.clear()
        self._progress = None
        kept = self._last_good.global_step
        if exploded:
            what = self.loss_watch.describe(self.epoch + 1, bad_step, value)
            self.loss_watch.end_stretch()
        elif bad_step is None:
            what = f"the weights became NaN or infinite by epoch {self.epoch + 1}, step {progress.step}"
        else:
            word = "NaN" if math.isnan(value) else "infinite"
            what = f"the loss became {word} at epoch {self.epoch + 1}, step {bad_step}"
        return RunFinished(
            FinishReason.DIVERGED,
            f"{what}: lower the learning rate ({control('training.lr')}, now {self.lr:g}) or set gradient clipping "
            f"({control('training.grad_clip')}); "
            f"the model keeps the weights from after step {kept} of the run",
            self.epoch,
        )

    def _end_epoch(self, emit) -> RunFinished | None:
        """Validation, history, schedule and early stopping after an epoch; emits EpochEnd."""
        progress, cfg = self._progress, self.config
        seen = min(self.train_samples, self.steps_per_epoch * cfg.batch_size)
        last = seen - (self.steps_per_epoch - 1) * cfg.batch_size
        losses = progress.losses
        train_loss = (sum(losses[:-1]) * cfg.batch_size + losses[-1] * last) / seen
        train_acc = progress.correct / seen if self.classification else None
        val_loss = val_acc = None
        if len(self.data.val_x):
            started = time.perf_counter()
            val_loss, val_acc, _ = self._infer("val", keep=False)
            progress.seconds += time.perf_counter() - started
        lr = self.lr
        self.epoch += 1
        self._progress = None
        for key, value in zip(HISTORY_KEYS, (train_loss, train_acc, val_loss, val_acc, lr)):
            self.history[key].append(value)
        self.schedule.end_epoch(val_loss if val_loss is not None else train_loss)
        stop_early = cfg.early_stopping and self._update_best()
        emit(EpochEnd(self.epoch, cfg.epochs, train_loss, train_acc, val_loss, val_acc, lr, progress.seconds))
        if stop_early:
            restored = self._restore_best()
            return RunFinished(
                FinishReason.EARLY_STOPPED,
                f"{self.stop_metric} did not improve by more than {cfg.min_delta:g} for {cfg.patience} epochs; "
                f"stopped after epoch {self.epoch}{restored}",
                self.epoch,
            )
        return None

    def _metric(self, name: str) -> float | None:
        return self.history[name][-1] if self.history[name] else None

    def _update_best(self) -> bool:
        """Track the best epoch of the watched metric; True when patience has run out."""
        value, best = self._metric(self.stop_metric), self._best
        if value is None or not math.isfinite(value):
            best["bad_epochs"] += 1
        else:
            delta = self.config.min_delta
            better = best["value"] is None or (
                value > best["value"] + delta if self.stop_metric.endswith("_acc") else value < best["value"] - delta)
            if better:
                best.update(value=value, epoch=self.epoch, bad_epochs=0)
                if self.config.restore_best:
                    self._best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                best["bad_epochs"] += 1
        return best["bad_epochs"] >= self.config.patience

    def _restore_best(self) -> str:
        """Load the best epoch's weights (restore_best); a phrase for the finishing message."""
        best = self._best
        if not self.config.restore_best or self._best_weights is None or best["epoch"] == self.epoch:
            return ""
        self.model.load_state_dict(self._best_weights)
        return f"; restored the weights of epoch {best['epoch']} ({self.stop_metric} {best['value']:.4g})"

    def _completed(self) -> RunFinished:
        restored = self._restore_best() if self.config.early_stopping else ""
        parts = [f"train loss {self.history['train_loss'][-1]:.4g}"]
        if self._metric("val_loss") is not None:
            parts.append(f"val loss {self._metric('val_loss'):.4g}")
        if self._metric("val_acc") is not None:
            parts.append(f"val accuracy {100 * self._metric('val_acc'):.1f}%")
        return RunFinished(FinishReason.COMPLETED, f"trained {self.epoch} epochs: {', '.join(parts)}{restored}",
                           self.epoch)

    def _describe_failure(self, exc: Exception) -> tuple[FinishReason, str]:
        if is_out_of_memory(exc):
            size = self.config.batch_size
            smaller = (f"try batch size {max(1, size // 2)} ({control('training.batch_size')})" if size > 1
                       else f"try a smaller design or set {control('training.device')} to cpu")
            return FinishReason.OUT_OF_MEMORY, f"out of memory on {self.device} at batch size {size}: {smaller}"
        hint = ""
        module = type(exc).__module__ or ""
        if self.config.compile and module.startswith(("torch._dynamo", "torch._inductor")):
            hint = f"; torch.compile failed: turn {control('training.compile')} off"
        return FinishReason.ERROR, report_unexpected(exc, "training", log) + hint  # the traceback goes to the log

    def _release_memory(self) -> None:
        """After an out-of-memory: drop gradients and device copies of the data, return cached blocks."""
        self.optimizer.zero_grad(set_to_none=True)
        self._device_data.clear()
        self._last_good = None
        free_device_memory(self.device)

    def _forward_amp(self, xb: torch.Tensor) -> torch.Tensor:
        """The model's output, under autocast when mixed precision is on."""
        if self.amp_dtype is None:
            return self._forward(xb)
        with torch.autocast(self.device.type, dtype=self.amp_dtype):
            return self._forward(xb)

    # -- evaluation (engine.evaluation holds the one implementation)
    def _infer(self, split: str, keep: bool) -> tuple[float, float | None, torch.Tensor | None]:
        """Mean loss, accuracy and (``keep``) every prediction of a split, on the device, under autocast."""
        x, y = self._on_device(split)
        size = max(2 * self.config.batch_size, 256)

        def batches():
            for start in range(0, x.shape[0], size):
                xb = self._prepare_inputs(x[start:start + size])
                yield xb, (xb if self._reconstruct else y[start:start + size])

        result = infer(self.model, self._forward_amp, self.objective, batches(), keep)
        return result.loss, result.accuracy, result.predicted

    def evaluate(self, split: str = "test", samples: int = 16) -> Evaluation:
        """Loss, accuracy, confusion matrix, per-class accuracy and predictions on a split (not while running)."""
        if split not in ("train", "val", "test"):
            raise TrainingError(f"split must be train, val or test, got {split!r}")
        if self._running:
            raise TrainingError("the run is still going: evaluate after it finishes or stop it first")
        if len(getattr(self.data, f"{split}_x")) == 0:
            raise TrainingError(f"the data has no {split} samples to evaluate: choose another split")
        loss, accuracy, predicted = self._infer(split, keep=True)
        _, y = self._on_device(split)
        return summarize(loss, accuracy, predicted, y, self.data.num_classes if self.classification else None,
                         split, samples)

    # -- checkpoints
    def checkpoint(self) -> dict:
        """Everything needed to continue this run exactly, as tensors (CPU copies) and plain Python data.
        Call it after run() returns or from an event listener (the run's own thread), never from another
        thread while a run goes: the weights would be copied mid-step."""
        if self._running:  # the trainer's RNG stream is live in torch's global RNG right now
            torch_rng, device_rng = torch.get_rng_state(), _device_rng_state(self.device)
        else:
            torch_rng, device_rng = self._rng["torch"], self._rng["device"]
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "model": _cpu_copy(self.model.state_dict()),
            "optimizer": _cpu_copy(self.optimizer.state_dict()),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "history": {key: list(values) for key, values in self.history.items()},
            "spec": self.spec.to_dict(),
            "config": self.config.to_dict(),
            "data": data_config.to_dict() if (data_config := getattr(self.data, "config", None)) is not None else None,
            "rng": {
                "torch": torch_rng.clone(),
                "device_type": self.device.type,
                "device": None if device_rng is None else device_rng.clone(),
                "generator": self.generator.get_state(),
                "augment_generator": self.augment_generator.get_state(),
            },
            "progress": self._progress.to_dict() if self._progress is not None else None,
            "best": dict(self._best),
            "best_weights": _cpu_copy(self._best_weights) if self._best_weights is not None else None,
            "loss_watch": self.loss_watch.state_dict(),
        }

    def load_checkpoint(self, checkpoint: dict) -> None:
        """Restore a checkpoint() so run() continues that run. Every field is checked against this trainer
        first (engine.checkpoint.validate_checkpoint): WeightsError naming the field, and nothing changed."""
        if self._running:
            raise TrainingError("stop the run before loading a checkpoint")
        validate_checkpoint(checkpoint, self)
        before, notes = self.checkpoint(), list(self.notes)
        try:
            self._apply_checkpoint(checkpoint)
        except Exception as exc:  # noqa: BLE001 - validated, so only a case the checks missed lands here
            log.exception("a validated checkpoint failed to load")
            self._apply_checkpoint(before)
            self.notes[:] = notes
            raise WeightsError(f"the checkpoint is damaged ({type(exc).__name__}: {_first_line(exc)}): "
                               "it cannot resume a run") from None

    def _apply_checkpoint(self, checkpoint: dict) -> None:
        from engine.io import apply_state_dict  # io builds on this module's callers, not the other way round

        apply_state_dict(self.model, checkpoint["model"], self.spec)
        self.optimizer.load_state_dict(fitted_optimizer_state(checkpoint["optimizer"], self.optimizer))
        self.schedule.load_state_dict(checkpoint["schedule"])
        if self.scaler is not None and checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.epoch, self.global_step = checkpoint["epoch"], checkpoint["global_step"]
        self.history = {key: list(checkpoint["history"][key]) for key in HISTORY_KEYS}
        self._restore_rng(checkpoint["rng"])
        progress = checkpoint.get("progress")
        self._progress = _EpochProgress.from_dict(progress) if progress is not None else None
        if self._progress is not None and checkpoint["config"].get("batch_size") != self.config.batch_size:
            self._progress = None  # steps of another batch size: the unfinished epoch starts over
            self.notes.append(f"batch size changed: epoch {self.epoch + 1} starts over")
        self._best = dict(checkpoint.get("best") or {"value": None, "epoch": 0, "bad_epochs": 0})
        best = checkpoint.get("best_weights")
        self._best_weights = {k: v.to(self.device) for k, v in best.items()} if best is not None else None
        self.loss_watch = LossWatch(self.config.batch_size)
        if checkpoint.get("loss_watch") is not None:
            self.loss_watch.load_state_dict(checkpoint["loss_watch"])

    def _restore_rng(self, rng: dict) -> None:
        self._rng["torch"] = rng["torch"].clone()
        self.generator.set_state(rng["generator"])
        if rng.get("device_type") == self.device.type:  # device streams only carry over to the same kind of device
            if rng.get("device") is not None:
                self._rng["device"] = rng["device"].clone()
            self.augment_generator.set_state(rng["augment_generator"])
        else:
            self.notes.append(f"checkpoint saved on {rng.get('device_type')}: dropout and augmentation draw new "
                              f"random numbers on {self.device.type}")


class _ReadBack:
    """Batch losses and correct counts stay on the device and come to the host in one sync a few times
    a second (and at each epoch end); each read-back checks for NaN/Inf and a sustained blow-up of the loss
    (engine.divergence) and emits a BatchEnd."""

    def __init__(self, trainer: Trainer, progress: _EpochProgress, emit):
        self.trainer, self.progress, self.emit = trainer, progress, emit
        self.losses: list[torch.Tensor] = []
        self.correct: list[torch.Tensor] = []
        self.samples = 0
        self.restart_clock()

    def restart_clock(self) -> None:
        now = time.perf_counter()
        self.span_start = self.epoch_clock = now
        self.next = now + READBACK_INTERVAL_S

    def pause_clock(self) -> float:
        """Seconds of training since the last call (so paused time is not counted)."""
        now = time.perf_counter()
        elapsed, self.epoch_clock = now - self.epoch_clock, now
        return elapsed

    def add(self, loss: torch.Tensor, correct: torch.Tensor | None, samples: int) -> None:
        self.losses.append(loss)
        if correct is not None:
            self.correct.append(correct)
        self.samples += samples

    def due(self) -> bool:
        return time.perf_counter() >= self.next

    def flush(self) -> RunFinished | None:
        """Read back what is pending; a RunFinished('diverged') when a loss or weight is not finite."""
        if not self.losses:
            return None
        trainer, progress = self.trainer, self.progress
        count = len(self.losses)
        parts = [torch.stack(self.losses).to(torch.float32)]
        if self.correct:
            parts.append(torch.stack(self.correct).sum().to(torch.float32).reshape(1))
        parts.append(trainer._last_good.all_finite().reshape(1))
        values = torch.cat(parts).tolist()  # the one host-device sync
        now = time.perf_counter()
        losses = values[:count]
        rate = self.samples / max(now - self.span_start, 1e-9)
        self.losses, self.correct, self.samples = [], [], 0
        self.span_start, self.next = now, now + READBACK_INTERVAL_S
        event = BatchEnd(trainer.epoch + 1, progress.step, trainer.steps_per_epoch, trainer.global_step,
                         tuple(losses), trainer.lr, rate)
        bad = next((i for i, value in enumerate(losses) if not math.isfinite(value)), None)
        if bad is not None or values[-1] != 1.0:
            self.emit(event)
            first = progress.step - count + 1
            return trainer._diverged(progress, None if bad is None else first + bad,
                                     math.nan if bad is None else losses[bad])
        exploded = trainer.loss_watch.observe(losses)
        if exploded is not None:
            self.emit(event)
            return trainer._diverged(progress, progress.step - count + 1 + exploded, losses[exploded], exploded=True)
        progress.losses.extend(losses)
        if len(values) > count + 1:
            progress.correct += int(values[count])
        if all(loss <= trainer.loss_watch.threshold for loss in losses):  # weights from before a blow-up only
            trainer._last_good.save(trainer.global_step)
        self.emit(event)
        return None
