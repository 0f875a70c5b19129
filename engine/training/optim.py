"""What updates the weights: the optimizer (fused kernels where the device has them), the learning-rate
schedule, and the initialisation of the weights before the first step."""
from __future__ import annotations

import math

import torch
from torch import nn

from engine.layer_init import GLOBAL_METHODS, TensorInit, apply_layer_inits, fill
from engine.spec import NetworkSpec
from engine.training.config import TrainConfig


def initialize_weights(model: nn.Sequential, config: TrainConfig, spec: NetworkSpec | None = None) -> None:
    """A new model's initial weights: the global setting on every weight-bearing layer's weights (biases to zero;
    'default' keeps PyTorch's), then each layer's own choice from the design ``spec`` (engine.layer_init).
    Call it right after ``build_model(spec)``, under the run's seed."""
    if config.init != "default":
        weights = TensorInit(GLOBAL_METHODS[config.init], config.init_std, config.init_value)
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd, nn.RNNBase, nn.Embedding)):
                for name, param in module.named_parameters(recurse=False):
                    if param.dim() >= 2:
                        fill(param, weights)
                    elif name.startswith("bias"):
                        nn.init.zeros_(param)
    if spec is not None:
        apply_layer_inits(model, spec)


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
        adam = optim.Adam if name == "adam" else optim.AdamW
        return adam(params, lr=lr, weight_decay=wd, amsgrad=config.amsgrad, **speed)
    cls = {"rmsprop": optim.RMSprop, "adagrad": optim.Adagrad, "adadelta": optim.Adadelta, "adamax": optim.Adamax}[name]
    return cls(params, lr=lr, weight_decay=wd, **speed)


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
                   params: list[nn.Parameter], clip: float) -> None:
    """Backpropagate ``loss`` and take one optimizer step, through the float16 GradScaler when there is one,
    with the gradients' norm clipped to ``clip`` first (0: no clipping)."""
    if scaler is not None:
        scaler.scale(loss).backward()
        if clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(params, clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()


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
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
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
