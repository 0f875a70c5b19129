"""Device memory between runs: what a finished run leaves behind must not share the device with the next one.

A window (or any caller that trains more than once in a process) keeps the trained weights for
Save Weights, but not the trainer: its optimizer state, gradients and device copies of the data
would sit beside the next run's and halve the batch size that fits. ``cpu_module_copy`` keeps the
weights off the device; ``free_device_memory`` collects what was dropped and hands the cached
blocks back to the driver.
"""
from __future__ import annotations

import copy
import gc

import torch
from torch import nn


def cpu_module_copy(model: nn.Module) -> nn.Module:
    """A new module of the same structure holding a CPU copy of every parameter and buffer, without gradients.

    Nothing is built or initialised again and nothing is allocated on the model's device, so the
    original (and everything it pins there) can be freed while the copy keeps its weights.
    """
    memo: dict[int, object] = {}
    for param in model.parameters():
        memo[id(param)] = nn.Parameter(param.detach().to("cpu", copy=True), requires_grad=param.requires_grad)
    for buffer in model.buffers():
        memo[id(buffer)] = buffer.detach().to("cpu", copy=True)
    return copy.deepcopy(model, memo)


def released_model(model: nn.Module) -> nn.Module:
    """What to keep of a finished run's model once the run itself is freed: its weights, on the CPU, without
    gradients. A model on the CPU is kept as it is with its gradients dropped (a copy only cost time: ~4 ms for
    LeNet at every Start, on the window's UI thread); one on another device becomes a CPU copy (``cpu_module_copy``),
    so that device has room for the next run."""
    if any(tensor.device.type != "cpu" for tensor in (*model.parameters(), *model.buffers())):
        return cpu_module_copy(model)
    for param in model.parameters():
        param.grad = None
    return model


def free_device_memory(device: torch.device, collect: bool = True) -> None:
    """Collect unreachable objects (what an exception's traceback or a cycle still holds) and return cached device
    blocks. ``collect=False`` skips the collection, for a caller that knows nothing is left in a cycle: in a
    window's process (~400,000 objects) a full collection costs ~0.25 s of CPU."""
    if collect:
        gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
