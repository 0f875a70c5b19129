"""Where and how a run executes: the device, its name, its random number streams, out-of-memory
detection and the sentence for a failed run, CPU copies of training state, and warming torch up
before the first run."""
from __future__ import annotations

import logging
import platform
from contextlib import contextmanager

import torch
from torch import nn

from engine.controls import control
from engine.errors import TrainingError
from engine.log import report_unexpected
from engine.training.events import FinishReason


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


def amp_dtype(mode: str, device: torch.device, notes: list[str]) -> torch.dtype | None:
    """The autocast dtype for ``TrainConfig.amp`` on ``device``; None trains in float32 (with a note in ``notes``
    when the chosen mode cannot run here)."""
    kind = device.type
    if mode == "off":
        return None
    if mode == "fp16" and kind != "cuda":
        notes.append(f"fp16 mixed precision needs a CUDA GPU; training in float32 on {kind}")
        return None
    if mode == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
        notes.append("this GPU has no bfloat16 support; training in float32")
        return None
    return torch.float16 if mode == "fp16" else torch.bfloat16


def use_channels_last(wanted: bool, input_shape: tuple[int, ...], notes: list[str]) -> bool:
    """Whether the model and its batches run channels_last: asked for, and the inputs are images."""
    if not wanted:
        return False
    if len(input_shape) != 3:
        notes.append("channels_last applies to image inputs (channels, height, width) only; ignored")
        return False
    return True


def device_rng_state(device: torch.device) -> torch.Tensor | None:
    """The state of the device's default random number generator (None on a CPU: torch's global one is it)."""
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    if device.type == "mps":
        return torch.mps.get_rng_state()
    return None


def set_device_rng_state(device: torch.device, state: torch.Tensor) -> None:
    """Set the device's default random number generator to a state from ``device_rng_state``."""
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    elif device.type == "mps":
        torch.mps.set_rng_state(state)


def seeded_device_rng_state(device: torch.device, seed: int) -> torch.Tensor | None:
    """The device's default generator state after seeding, without changing the global one."""
    outer = device_rng_state(device)
    if outer is None:
        return None
    if device.type == "cuda":
        torch.cuda.default_generators[device.index].manual_seed(seed)
    else:
        torch.mps.manual_seed(seed)
    state = device_rng_state(device)
    set_device_rng_state(device, outer)
    return state


class RandomStreams:
    """A run's own random number streams: torch's global generator (dropout draws from it) and the device's
    default one. ``seeded`` starts them from a seed, ``active`` swaps them in while the run trains; the
    caller's streams are left as they were either way."""

    def __init__(self, device: torch.device):
        self.device = device
        self.torch: torch.Tensor | None = None  # the states while not active
        self.device_state: torch.Tensor | None = None
        self.live = False

    @contextmanager
    def seeded(self, seed: int):
        """Inside the block torch's global generator runs from ``seed`` (a model's initial weights); the stream
        that continues from where the block left it becomes the run's own."""
        outer = torch.get_rng_state()
        try:
            torch.default_generator.manual_seed(seed)
            yield self
            self.torch, self.device_state = torch.get_rng_state(), seeded_device_rng_state(self.device, seed)
        finally:
            torch.set_rng_state(outer)

    @contextmanager
    def active(self):
        """While training, torch's global RNG (and the device's) run these streams."""
        outer, outer_device = torch.get_rng_state(), device_rng_state(self.device)
        torch.set_rng_state(self.torch)
        if outer_device is not None:
            set_device_rng_state(self.device, self.device_state)
        self.live = True
        try:
            yield self
        finally:
            self.live = False
            self.torch = torch.get_rng_state()
            torch.set_rng_state(outer)
            if outer_device is not None:
                self.device_state = device_rng_state(self.device)
                set_device_rng_state(self.device, outer_device)

    def states(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(torch's, the device's) state now: read from torch while the streams are active."""
        if self.live:
            return torch.get_rng_state(), device_rng_state(self.device)
        if self.torch is None:
            raise RuntimeError("the random streams were never seeded: start them with seeded()")
        return self.torch, self.device_state


def cpu_copy(value):
    """A deep copy with every tensor on the CPU (a checkpoint must not alias live training state)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: cpu_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cpu_copy(item) for item in value)
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


def describe_failure(exc: Exception, config, device: torch.device, log: logging.Logger) -> tuple[FinishReason, str]:
    """Why a run that raised ``exc`` ended, and a sentence for the user; an unexpected error's traceback goes
    to ``log``."""
    if is_out_of_memory(exc):
        size = config.batch_size
        smaller = (f"try batch size {max(1, size // 2)} ({control('training.batch_size')})" if size > 1
                   else f"try a smaller design or set {control('training.device')} to cpu")
        return FinishReason.OUT_OF_MEMORY, f"out of memory on {device} at batch size {size}: {smaller}"
    hint = ""
    module = type(exc).__module__ or ""
    if config.compile and module.startswith(("torch._dynamo", "torch._inductor")):
        hint = f"; torch.compile failed: turn {control('training.compile')} off"
    return FinishReason.ERROR, report_unexpected(exc, "training", log) + hint
