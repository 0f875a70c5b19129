"""Measured memory and time per layer: one real training step of a design, watched by hooks.

``profile_design(spec, batch_size, device, optimizer)`` builds the design, feeds it a random batch of
``(batch, *input_shape)`` (integer tokens below an Embedding) and runs training steps as the trainer does:
gradients cleared, forward, a loss, backward, an optimizer step. What it measures, per top-level layer:

- **forward ms**: from the layer's forward pre-hook to its forward hook (``time.perf_counter``, the device
  synchronised first on a GPU);
- **backward ms**: from the moment the gradient of the layer's output is ready (a hook on that tensor) to the
  moment the gradient of its input is, or to the end of ``backward()`` for the lowest layer that takes part;
  a layer whose output needs no gradient (frozen layers at the top of a design) has 0;
- **saved bytes**: the tensors autograd keeps for the backward pass while the layer's forward runs, counted
  with ``torch.autograd.graph.saved_tensors_hooks`` (works on every device). Each storage counts once, in
  full, for the first layer that saves it: a view keeps its whole storage alive, and the output a ReLU keeps
  is the same memory the next layer keeps as its input. Parameters and buffers are not counted here (they
  are in the totals); the design's input is, by the layer that saves it;
- **output bytes** and **parameter bytes**.

One step first warms up (the optimizer's state appears there) and counts the saved tensors; then ``repeats``
timed steps give the median of each time. Every hook is removed afterwards, also when the pass fails or is
cancelled. On a CUDA GPU the profile also holds the measured peak (``torch.cuda.max_memory_allocated`` during
the timed steps, less what was allocated before) and the largest batch that fits, found by doubling the batch
until it runs out of memory and then bisecting. Plain dataclasses come back, so a window can call this on a
worker thread and cancel it through ``task``.
"""
from __future__ import annotations

import logging
import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from engine.build import build_model
from engine.device_memory import free_device_memory
from engine.errors import TrainingError
from engine.layers import KINDS
from engine.memory import check_training_fits, optimizer_state_tensors
from engine.preflight import batch_size_problem
from engine.schema import setting_named
from engine.shapes import analyze
from engine.spec import NetworkSpec, coerce_params
from engine.task import Task
from engine.text import sentence
from engine.training.config import TrainConfig
from engine.training.optim import make_optimizer
from engine.training.runtime import describe_failure, device_name, is_out_of_memory, resolve_device

REPEATS = 3              # timed steps after the warm-up; each time is their median
ALLOCATION_BLOCK = {"cuda": 512}   # CUDA's caching allocator rounds every tensor up to a multiple of this
SEARCH_PRECISION = 64    # the largest-batch search stops when the bounds are within 1/64 of the batch
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerCost:
    """One top-level layer's measured cost in a training step (times in milliseconds, sizes in bytes)."""

    index: int
    layer_id: str
    kind: str
    label: str
    forward_ms: float
    backward_ms: float
    saved_bytes: int
    output_bytes: int
    parameter_bytes: int


@dataclass(frozen=True)
class ProfileTotals:
    """The whole step: the state a run keeps, what one batch adds, the estimated peak and what was measured.

    ``peak_bytes`` estimates the most memory a training step holds at once (see ``estimate_peak``);
    ``measured_peak_bytes`` and ``largest_batch`` are measured on CUDA GPUs only (None elsewhere)."""

    parameter_bytes: int
    buffer_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    saved_bytes: int
    input_bytes: int
    peak_bytes: int
    forward_ms: float
    backward_ms: float
    step_ms: float
    measured_peak_bytes: int | None = None
    largest_batch: int | None = None


@dataclass(frozen=True)
class Profile:
    """The measured cost of a design at one batch size on one device with one optimizer."""

    batch_size: int
    device: str
    device_name: str
    optimizer: str
    optimizer_tensors: int     # parameter-sized tensors of state the optimizer keeps (engine.memory's rule)
    repeats: int               # timed steps: each time is their median
    rows: tuple[LayerCost, ...]
    totals: ProfileTotals

    def to_dict(self) -> dict:
        return asdict(self)


def profile_design(spec: NetworkSpec, batch_size: int, device: str = "auto", optimizer: str = "adam", *,
                   momentum: float | None = None, amsgrad: bool = False, repeats: int = REPEATS,
                   search_largest: bool = True, task: Task | None = None) -> Profile:
    """Run training steps of ``spec`` at ``batch_size`` on ``device`` with ``optimizer`` and measure each layer.

    The settings are checked against their declarations (TrainConfig; ``momentum`` defaults to its
    declared default, as in a run): a bad one raises TrainingError with the declaration's sentence, a design
    with an error raises SpecError with the analysis' sentence. ``task`` reports progress and cancels
    (``engine.errors.Cancelled``) between steps. ``search_largest`` runs the largest-batch search on CUDA.
    """
    task = Task.of(task)
    config = TrainConfig.from_dict({
        "batch_size": batch_size, "device": device, "optimizer": optimizer, "amsgrad": amsgrad,
        "momentum": setting_named(TrainConfig, "momentum").default if momentum is None else momentum})
    analysis = analyze(spec)
    check_design(spec, analysis, config)
    target = resolve_device(config.device)
    check_training_fits(analysis, config, target)  # refuse a pass that cannot fit before allocating it
    before = torch.cuda.memory_allocated(target) if target.type == "cuda" else 0
    state = optimizer_state_tensors(config.optimizer, config.amsgrad, config.momentum)
    # The step alone holds the model and optimizer, and lets go of them at the end: no local here does, so a
    # failure's traceback (which keeps this frame) does not keep them on the device.
    step = TrainingStep(build_model(spec), spec, config, target)
    try:
        task(0.0, "Warming up")
        watch = LayerWatch(step.model, timing=False)
        with watch:
            _guarded(step, watch, config)
        times: list[list[float]] = []
        if target.type == "cuda":
            torch.cuda.synchronize(target)
            torch.cuda.reset_peak_memory_stats(target)
        for repeat in range(repeats):
            task((repeat + 1) / (repeats + 2), f"Timing step {repeat + 1} of {repeats}")
            timer = LayerWatch(step.model, timing=True)
            with timer:
                started = time.perf_counter()
                _guarded(step, timer, config)
                _synchronize(target)
                elapsed = time.perf_counter() - started
            times.append([*timer.forward_ms, *timer.backward_ms, 1000 * elapsed])
        measured = torch.cuda.max_memory_allocated(target) - before if target.type == "cuda" else None
        largest = None
        if target.type == "cuda" and search_largest and step.optimizer is not None:
            largest = largest_batch(step, config.batch_size, task.stage((repeats + 1) / (repeats + 2), 1.0))
        task(1.0, "Profiled")
        return _profile(spec, analysis, config, step, watch, times, state, measured, largest)
    finally:
        step.close()
        free_device_memory(target)


def check_design(spec: NetworkSpec, analysis, config: TrainConfig) -> None:
    """Refuse a design with an error (SpecError, the analysis' sentence, as building it would say) or a batch size
    too small for one of its layers (TrainingError)."""
    if not analysis.ok:
        build_model(spec)  # raises the SpecError naming the first broken layer
    problem = batch_size_problem(analysis, config.batch_size)
    if problem:
        raise TrainingError(problem)


def _guarded(step: TrainingStep, watch: LayerWatch, config: TrainConfig) -> None:
    """One watched step; running out of memory becomes a TrainingError saying which batch size to try."""
    try:
        step(config.batch_size, watch)
        return
    except Exception as exc:  # noqa: BLE001 - only out-of-memory is turned into a sentence; the rest re-raises
        if not is_out_of_memory(exc):
            raise
        message = describe_failure(exc, config, step.device, log)[1]
    step.clear()  # outside the except block: the traceback's frames, holding the step's tensors, are gone
    free_device_memory(step.device)
    raise TrainingError(sentence(message))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _profile(spec: NetworkSpec, analysis, config: TrainConfig, step: TrainingStep, watch: LayerWatch,
             times: list[list[float]], state_tensors: int, measured: int | None, largest: int | None) -> Profile:
    """The rows and totals from a counting watch and the times of each timed step (forward per layer, backward
    per layer, the whole step), of which each figure is the median."""
    model, count = step.model, len(step.model)
    medians = [statistics.median(column) for column in zip(*times, strict=True)]
    forward, backward, step_ms = medians[:count], medians[count:2 * count], medians[-1] if medians else 0.0
    rows = tuple(LayerCost(i, layer.id, row.kind, row.label, forward[i] if forward else 0.0,
                           backward[i] if backward else 0.0, watch.saved_bytes[i], watch.output_bytes[i],
                           _bytes(model[i].parameters()))
                 for i, (layer, row) in enumerate(zip(spec.layers, analysis.rows, strict=True)))
    gradients = _bytes(p for p in model.parameters() if p.requires_grad)
    resident = [*model.parameters(), *model.buffers()]
    if step.optimizer is not None:
        resident += [t for state in step.optimizer.state.values() for t in state.values()
                     if isinstance(t, torch.Tensor) and t.device == step.device]
    totals = ProfileTotals(
        parameter_bytes=_bytes(model.parameters()), buffer_bytes=_bytes(model.buffers()), gradient_bytes=gradients,
        optimizer_bytes=gradients * state_tensors, saved_bytes=sum(r.saved_bytes for r in rows),
        input_bytes=watch.input_storage[1],
        peak_bytes=estimate_peak(_blocks(resident, step.device), watch, [
            _blocks((p for p in layer.parameters() if p.requires_grad), step.device) for layer in model]),
        forward_ms=sum(r.forward_ms for r in rows), backward_ms=sum(r.backward_ms for r in rows), step_ms=step_ms,
        measured_peak_bytes=measured, largest_batch=largest)
    return Profile(config.batch_size, str(step.device), device_name(step.device), config.optimizer, state_tensors,
                   len(times), rows, totals)


def estimate_peak(resident: int, watch: LayerWatch, gradients: list[int]) -> int:
    """The most bytes a training step holds at once, from what ``watch`` counted, in allocator blocks.

    ``resident`` is held throughout (parameters, buffers, the optimizer's state); ``gradients`` holds each
    layer's parameter gradients. On top comes the larger of the end of the forward pass (what the layers saved,
    the batch, the output) and each moment of the backward pass, which
    walks the layers from the top: the tensors still saved by the layers not yet passed, the gradients already
    made, and for the layer in hand the gradient of its output and, where one is needed, of its input."""
    count = len(gradients)
    outputs = [_block(size, watch.device) for size in watch.output_bytes]
    key, size = watch.input_storage  # the batch lives through the step, saved by a layer or not
    held = sum(watch.saved_blocks) + (_block(size, watch.device) if key not in watch.saved_keys else 0)
    peak = held + (outputs[-1] if count else 0)
    remaining, reached = held, 0
    for index in reversed(range(count)):
        if not watch.needs_grad[index]:
            continue
        gradient_in = outputs[index - 1] if index and watch.needs_grad[index - 1] else 0
        reached += gradients[index]
        peak = max(peak, remaining + reached + outputs[index] + gradient_in)
        remaining -= watch.saved_blocks[index]
    return resident + peak


def _bytes(tensors) -> int:
    return sum(t.nelement() * t.element_size() for t in tensors)


def _block(size: int, device: torch.device) -> int:
    """The bytes a tensor of ``size`` bytes takes from ``device``'s allocator: CUDA's hands out multiples of 512
    bytes, which matters for tiny designs only."""
    block = ALLOCATION_BLOCK.get(device.type, 1)
    return -(-size // block) * block


def _blocks(tensors, device: torch.device) -> int:
    return sum(_block(t.nelement() * t.element_size(), device) for t in tensors)


# --------------------------------------------------------------------------- the step

class TrainingStep:
    """One training step as the trainer takes it: gradients set to None, forward, loss, backward, optimizer step.

    The loss is the mean of the output: any output shape has one, it keeps nothing for the backward pass and
    its backward makes one output-sized gradient, as every loss does (a classifier's cross-entropy also keeps
    its log-probabilities, one small output's worth). A design without trainable parameters runs its forward
    only."""

    def __init__(self, model: nn.Sequential, spec: NetworkSpec, config: TrainConfig, device: torch.device):
        self.model, self.device = model.to(device), device
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(trainable, config, device) if trainable else None
        self.input_shape = tuple(spec.input_shape)
        self.tokens: int | None = None
        first = spec.first_leaf()
        if first is not None:
            tokens = KINDS[first.kind].tokens
            if tokens:
                self.tokens = tokens(coerce_params(KINDS[first.kind], first.params, f"layer {first.id}"))

    def batch(self, size: int) -> torch.Tensor:
        """A random batch: normal values, or token indices for a design that starts with an Embedding."""
        shape = (size, *self.input_shape)
        if self.tokens is not None:
            return torch.randint(0, self.tokens, shape, device=self.device)
        return torch.randn(shape, device=self.device)

    def __call__(self, size: int, watch: LayerWatch | None = None) -> None:
        """One step at batch ``size``; ``watch`` (entered) hears when the backward pass has ended."""
        x = self.batch(size)
        if self.optimizer is None:
            with torch.no_grad():
                self.model(x)
            return
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.model(x).float().mean()
        loss.backward()
        if watch is not None:
            watch.backward_ended()
        self.optimizer.step()

    def clear(self) -> None:
        """Drop the gradients (after a step ran out of memory, before the next try)."""
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)

    def close(self) -> None:
        """Let go of the model, its gradients and the optimizer's state, so the device memory can be freed."""
        self.clear()
        if self.optimizer is not None:
            self.optimizer.state.clear()
        del self.model  # a closed step has no model
        self.optimizer = None


def largest_batch(step: TrainingStep, start: int, task: Task) -> int:
    """The largest batch size a training step fits in at ``start`` or above (at most the declared most):
    double until a step runs out of memory, then bisect to within 1/SEARCH_PRECISION. Each failure is caught,
    its tensors freed and the device's cache emptied before the next try."""
    most = setting_named(TrainConfig, "batch_size").high
    assert most is not None  # the batch size's range is declared
    high_limit = int(most)
    fits, fails = start, None
    while fails is None and fits < high_limit:
        task(0.1, f"Trying batch size {min(2 * fits, high_limit):,}")
        size = min(2 * fits, high_limit)
        if _fits(step, size):
            fits = size
        else:
            fails = size
    while fails is not None and fails - fits > max(1, fits // SEARCH_PRECISION):
        size = (fits + fails) // 2
        task(0.6, f"Trying batch size {size:,}")
        if _fits(step, size):
            fits = size
        else:
            fails = size
    return fits


def _fits(step: TrainingStep, size: int) -> bool:
    """Whether one step at batch ``size`` runs without running out of memory (the device freed after either)."""
    try:
        step(size)
        ok = True
    except Exception as exc:  # noqa: BLE001 - out-of-memory is the answer sought; anything else re-raises
        if not is_out_of_memory(exc):
            raise
        ok = False  # the traceback, and the tensors its frames hold, end with this block
    step.clear()
    free_device_memory(step.device)
    return ok


# --------------------------------------------------------------------------- the hooks

class LayerWatch:
    """Hooks on each top-level layer of a model while the ``with`` block runs, all removed when it ends.

    Without ``timing`` it counts what each layer's forward saves for backward and outputs; with ``timing``
    it times each layer's forward and backward (synchronising a GPU at each mark)."""

    def __init__(self, model: nn.Sequential, timing: bool):
        self.model: nn.Sequential | None = model
        self.timing = timing
        count = len(model)
        self.forward_ms = [0.0] * count
        self.backward_ms = [0.0] * count
        self.saved_bytes = [0] * count
        self.saved_blocks = [0] * count        # the same in allocator blocks (engine.profile._block)
        self.output_bytes = [0] * count
        self.needs_grad = [False] * count       # whether the layer's output takes part in the backward pass
        self.input_storage: tuple = (None, 0)   # (storage key, bytes) of the batch
        self._current: int | None = None
        self._started = 0.0
        self._ready: dict[int, float] = {}   # layer -> when the gradient of its output was ready
        self._seen: set = {_storage_key(t)[0] for t in (*model.parameters(), *model.buffers())}
        self.device = next(iter((*model.parameters(), *model.buffers())), torch.empty(0)).device
        self.saved_keys: set = set()
        self._handles: list = []
        self._saving: torch.autograd.graph.saved_tensors_hooks | None = None

    def __enter__(self) -> LayerWatch:
        model = self.model
        assert model is not None, "a LayerWatch is entered once"
        try:
            for index, layer in enumerate(model):
                self._handles.append(layer.register_forward_pre_hook(self._pre(index)))
                self._handles.append(layer.register_forward_hook(self._post(index)))
            self._handles.append(model.register_forward_pre_hook(self._model_input))
            if not self.timing:
                self._saving = torch.autograd.graph.saved_tensors_hooks(self._pack, _unpack)
                self._saving.__enter__()
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._remove()
        self.model = None  # the counts stay; the model goes with its step

    def _remove(self) -> None:
        if self._saving is not None:
            self._saving.__exit__(None, None, None)
            self._saving = None
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _mark(self) -> float:
        if self.timing:
            _synchronize(self.device)
        return time.perf_counter()

    def _model_input(self, module, args) -> None:
        if args and isinstance(args[0], torch.Tensor):
            self.input_storage = _storage_key(args[0])  # (key, bytes)

    def _pre(self, index: int):
        def hook(module, args) -> None:
            self._current = index
            self._started = self._mark()
        return hook

    def _post(self, index: int):
        def hook(module, args, output) -> None:
            self.forward_ms[index] += 1000 * (self._mark() - self._started)
            self._current = None
            if isinstance(output, torch.Tensor):
                self.output_bytes[index] = output.nelement() * output.element_size()
                self.needs_grad[index] = output.requires_grad
                if self.timing and output.requires_grad:
                    output.register_hook(self._gradient_ready(index))
        return hook

    def _gradient_ready(self, index: int):
        def hook(grad) -> None:
            now = self._mark()
            above = min((i for i in self._ready if i > index), default=None)
            if above is not None and self.backward_ms[above] == 0.0:
                self.backward_ms[above] = 1000 * (now - self._ready[above])
            self._ready[index] = now
        return hook

    def backward_ended(self) -> None:
        """The lowest layer whose output got a gradient ran its backward until ``backward()`` returned."""
        if self._ready:
            lowest = min(self._ready)
            self.backward_ms[lowest] = 1000 * (self._mark() - self._ready[lowest])

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        if self._current is not None:
            key, size = _storage_key(tensor)
            if key not in self._seen:
                self._seen.add(key)
                self.saved_keys.add(key)
                self.saved_bytes[self._current] += size
                self.saved_blocks[self._current] += _block(size, self.device)
        return tensor


def _unpack(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def _storage_key(tensor: torch.Tensor) -> tuple[tuple, int]:
    """(what identifies the memory a tensor lives in, its size in bytes): its whole storage, so views of one
    storage count once; a tensor without one (MKL-DNN's opaque layout) counts as its own elements."""
    try:
        storage = tensor.untyped_storage()
        return (tensor.device, storage.data_ptr(), storage.nbytes()), storage.nbytes()
    except (RuntimeError, NotImplementedError, TypeError):
        return ("tensor", id(tensor)), tensor.nelement() * tensor.element_size()
