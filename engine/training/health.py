"""Training health, recorded on the device: per layer, the gradient norm, the update-to-weight ratio, the output's
mean and standard deviation, the fraction of dead units after a ReLU and of saturated outputs after a
Sigmoid/Tanh.

Cheap by design: only the batch just before a read-back is measured (``HealthRecorder.step``: forward hooks
that exist only for that batch, one ``torch._foreach_norm`` for the gradients and one for the updates), the
figures stay on the device as one small tensor, and they leave it in the read-back's own host-device sync
(engine.training.readback), never in a sync of their own. The rules that turn them into advice live in
engine.training.health_rules.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from engine.training.events import HealthSample, LayerHealth
from engine.training.health_rules import DEAD_KINDS, SATURATING_KINDS, HealthLog

SIGMOID_FLAT = 0.01  # a Sigmoid output within 0.01 of 0 or 1: its slope is under 0.01 (a quarter of the most)
TANH_FLAT = 0.99  # a Tanh output beyond +-0.99: its slope is under 0.02 (a fiftieth of the most)
MEASURE_INTERVAL_S = 0.5  # a measured batch costs ~30% more than a plain one: at most two a second keeps it ~1%
MEASURE_GAP_STEPS = 8  # and at least this many steps apart, so steps slower than the interval pay ~4% at most
FIGURES = 6  # per layer: grad norm, update ratio, mean, std, dead, saturated (NaN where one does not apply)


class HealthRecorder:
    """Measures the layers of a built design (an ``nn.Sequential``, one module per layer of the stack) on the
    steps ``measure_next`` picks (``step`` wraps one); ``pending`` hands the figures to the read-back as one
    device tensor and ``sample`` turns the read-back's numbers into a HealthSample with advice (a HealthLog)."""

    def __init__(self, model: nn.Module, kinds: Sequence[str], hooks: bool = True):
        self.layers = list(model.children())
        self.kinds = tuple(kinds)
        assert len(self.layers) == len(self.kinds), "one module per layer of the design"
        self.hooks = hooks  # off under torch.compile: adding and removing hooks would recompile the model
        self.params: list[torch.Tensor] = []
        owners: list[int] = []
        for index, layer in enumerate(self.layers):
            for param in layer.parameters():
                if param.requires_grad:
                    self.params.append(param)
                    owners.append(index)
        self.device = self.params[0].device if self.params else torch.device("cpu")
        self.owners = torch.tensor(owners, dtype=torch.long, device=self.device)
        self.has_params = [index in set(owners) for index in range(len(self.layers))]
        self.log = HealthLog()
        self._outputs: list[torch.Tensor | None] = [None] * len(self.layers)
        self._pending: torch.Tensor | None = None
        self._last_step = -MEASURE_GAP_STEPS
        self._next = 0.0

    def measure_next(self, global_step: int, epoch_end: bool) -> bool:
        """Whether the step after ``global_step`` (one a read-back follows) is to be measured: MEASURE_GAP_STEPS
        after the last measured one and MEASURE_INTERVAL_S after it, unless it ends an epoch (short runs still get
        a sample per epoch). A yes counts that step as measured."""
        now = time.perf_counter()
        if global_step - self._last_step < MEASURE_GAP_STEPS or not (epoch_end or now >= self._next):
            return False
        self._last_step, self._next = global_step, now + MEASURE_INTERVAL_S
        return True

    @contextmanager
    def step(self) -> Iterator[None]:
        """Wrap one training step (forward, backward, optimizer step) to measure it. The hooks exist only inside
        the block and are removed even when the step raises."""
        handles = [layer.register_forward_hook(self._hook(index)) for index, layer in enumerate(self.layers)] \
            if self.hooks else []
        try:
            with torch.no_grad():
                before = [param.detach().clone() for param in self.params]
            yield
            self._pending = self._figures(before)
        finally:
            for handle in handles:
                handle.remove()
            self._outputs = [None] * len(self.layers)

    def _hook(self, index: int):
        kind = self.kinds[index]

        def record(module, inputs, output) -> None:
            if isinstance(output, torch.Tensor) and output.numel():
                self._outputs[index] = _output_figures(output.detach(), kind)
        return record

    def _figures(self, before: list[torch.Tensor]) -> torch.Tensor:
        """The step's figures as one (layers x FIGURES) float32 device tensor."""
        count, nan = len(self.layers), torch.tensor(math.nan, device=self.device)
        with torch.no_grad():
            grads = [param.grad if param.grad is not None else torch.zeros_like(param) for param in self.params]
            if self.params:
                grad_norms = self._per_layer(torch._foreach_norm(grads))
                torch._foreach_sub_(before, [param.detach() for param in self.params])
                update_norms = self._per_layer(torch._foreach_norm(before))
                weight_norms = self._per_layer(torch._foreach_norm([param.detach() for param in self.params]))
                ratios = update_norms / weight_norms
                has = torch.tensor(self.has_params, device=self.device)
                grad_norms, ratios = grad_norms.where(has, nan), ratios.where(has, nan)
            else:
                grad_norms = ratios = nan.expand(count)
            outputs = torch.stack([figures if figures is not None else nan.expand(4) for figures in self._outputs]) \
                if count else torch.zeros(0, 4, device=self.device)
            return torch.cat([grad_norms.reshape(count, 1), ratios.reshape(count, 1), outputs.to(self.device)],
                             dim=1).to(torch.float32)

    def _per_layer(self, norms: Sequence[torch.Tensor]) -> torch.Tensor:
        """Each layer's norm over all its parameters, from each parameter's norm."""
        squares = torch.stack(list(norms)).to(torch.float32) ** 2
        total = torch.zeros(len(self.layers), device=self.device).index_add_(0, self.owners, squares)
        return total.sqrt()

    def pending(self) -> torch.Tensor | None:
        """The figures of the last measured step, flattened, for the read-back's one sync (then forgotten)."""
        figures, self._pending = self._pending, None
        return None if figures is None else figures.reshape(-1)

    def sample(self, values: Sequence[float], epoch: int, step: int, global_step: int) -> HealthSample:
        """The read-back's numbers (``pending()``'s, on the host) as a HealthSample, with the advice so far."""
        layers = []
        for index, kind in enumerate(self.kinds):
            row = [None if math.isnan(value) else value for value in values[index * FIGURES:(index + 1) * FIGURES]]
            grad, ratio, mean, std, dead, saturated = row
            layers.append(LayerHealth(index, kind, grad, ratio, mean, std, dead if kind in DEAD_KINDS else None,
                                      saturated if kind in SATURATING_KINDS else None))
        return self.log.add(epoch, step, global_step, tuple(layers))


def _output_figures(output: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean, standard deviation, dead fraction and saturated fraction of one layer's output (NaN where one does
    not apply). A unit is a channel of an image-like output (a whole feature map), else a feature; it is dead when
    it is not positive for any sample of the batch."""
    values = output.to(torch.float32)
    std, mean = torch.std_mean(values) if values.numel() > 1 else (torch.zeros_like(values.sum()), values.sum())
    nan = torch.full((), math.nan, device=values.device)
    dead = saturated = nan
    if kind in DEAD_KINDS and values.dim() >= 2:
        others = [dim for dim in range(values.dim()) if dim != 1]
        dead = (values.amax(dim=others) <= 0).to(torch.float32).mean()
    elif kind == "Sigmoid":
        saturated = ((values - 0.5).abs() > 0.5 - SIGMOID_FLAT).to(torch.float32).mean()
    elif kind == "Tanh":
        saturated = (values.abs() > TANH_FLAT).to(torch.float32).mean()
    return torch.stack([mean, std, dead, saturated])
