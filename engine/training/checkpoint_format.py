"""The checkpoint format: its name, version and fields, and the checks of single values in it, each of
which refuses a value with a WeightsError whose sentence names the field (``optimizer.state[3].exp_avg``).

engine.training.checkpoint_check checks whole checkpoints with these; engine.training.checkpoint writes them.
"""
from __future__ import annotations

import math
from typing import NoReturn

import torch

from engine.errors import LayerStudioError, WeightsError
from engine.shapes import format_shape

CHECKPOINT_FORMAT = "layerstudio.checkpoint"
CHECKPOINT_VERSION = 1

# Every field of a checkpoint (Trainer.checkpoint() writes them all); the first ones are required.
CHECKPOINT_FIELDS = {
    "format": "always CHECKPOINT_FORMAT",
    "version": "the format's version, 1 to CHECKPOINT_VERSION",
    "epoch": "epochs completed",
    "global_step": "optimizer steps taken in the whole run",
    "model": "the model's state_dict",
    "optimizer": "the optimizer's state_dict: per-parameter state and param_groups",
    "schedule": "the learning-rate schedule's state",
    "history": "per-epoch lists: train_loss, train_acc, val_loss, val_acc, lr",
    "rng": "random number generator states: torch, device_type, device, generator, augment_generator",
    "config": "the training settings (TrainConfig.to_dict())",
    "spec": "the design (NetworkSpec.to_dict())",
    "data": "the data settings (DataConfig.to_dict()) or None",
    "scaler": "the float16 GradScaler's state, or None",
    "progress": "the unfinished epoch (perm, step, losses, correct, seconds), or None",
    "best": "early stopping's best value, its epoch and the epochs since",
    "best_weights": "the best epoch's state_dict (early stopping with restore_best), or None",
    "loss_watch": "the divergence watch's state (engine.divergence)",
}
REQUIRED_FIELDS = ("format", "version", "epoch", "global_step", "model", "optimizer", "schedule", "history", "rng",
                   "config")
MAX_COUNT = 2**63 - 1  # step and epoch counters fit an int64


def _refuse(field: str, problem: str) -> NoReturn:
    raise WeightsError(f"Checkpoint field {field} {problem}; nothing was loaded: resume from another checkpoint "
                       "or start a new run.")


def _show(value) -> str:
    """A value for a message: short, and safe for whatever a file holds (a 5000-digit number, a huge list)."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {format_shape(tuple(value.shape))}"
    if isinstance(value, (list, tuple, dict, set)):
        return f"a {type(value).__name__} of {len(value)} entries"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a number with more than 19 digits"
    text = repr(value)
    return text if len(text) <= 40 else f"a {type(value).__name__}"


def _mapping(field: str, value, required=()) -> dict:
    if not isinstance(value, dict):
        _refuse(field, f"must be a dict but is {_show(value)}")
    for key in required:
        if key not in value:
            _refuse(f"{field}.{key}", "is missing")
    return value


def _list(field: str, value, length: int | None = None) -> list:
    if not isinstance(value, (list, tuple)):
        _refuse(field, f"must be a list but is {_show(value)}")
    if length is not None and len(value) != length:
        _refuse(field, f"has {len(value)} entries but should have {length}")
    return list(value)


def _integer(field: str, value, low: int = 0, high: int = MAX_COUNT) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        _refuse(field, f"must be a whole number but is {_show(value)}")
    if not low <= value <= high:
        _refuse(field, f"is {_show(value)} but must be between {low} and {high}")
    return value


def _number(field: str, value, low: float = -math.inf, high: float = math.inf, low_open: bool = False,
            finite: bool = True) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        _refuse(field, f"must be a number but is {_show(value)}")
    try:
        value = float(value)
    except OverflowError:
        _refuse(field, "is a number too large to use")
    if math.isnan(value) or (finite and math.isinf(value)):
        _refuse(field, f"is {value} but must be a finite number")
    if value < low or value > high or (low_open and value == low):
        lowest = f"above {low:g}" if low_open else f"at least {low:g}"
        _refuse(field, f"is {value:g} but must be {lowest} and at most {high:g}")
    return value


# The settings parsers raise their own errors; numbers no JSON file could hold (5000 digits) or nesting
# thousands deep make repr, float or recursion fail inside them instead.
_PARSE_ERRORS = (LayerStudioError, ValueError, TypeError, OverflowError, RecursionError)


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, LayerStudioError) else "it holds values no settings file can"


def _boolean(field: str, value) -> bool:
    if not isinstance(value, bool):
        _refuse(field, f"must be true or false but is {_show(value)}")
    return value


_SUMMABLE = (torch.float16, torch.bfloat16, torch.float32, torch.float64)  # sum() is not defined for every float8


def all_finite(value: torch.Tensor) -> bool:
    """No NaN or infinity in the floating-point ``value``. A NaN or an infinity makes the sum NaN or infinite, so a
    finite sum answers in one pass with no mask allocated (4-12x faster than ``isfinite().all()``, which a checkpoint
    pays for every tensor at every write); a sum that overflows (large values, float16) is checked value by value."""
    if value.dtype in _SUMMABLE and math.isfinite(value.sum().item()):
        return True
    return bool(torch.isfinite(value).all())


def _tensor(field: str, value, kind: str, shape: tuple | None = None, finite: bool = True,
            non_negative: bool = False) -> torch.Tensor:
    """A plain (strided, real) tensor of ``kind`` 'float', 'integer' or 'bytes', of ``shape`` when given."""
    if not isinstance(value, torch.Tensor):
        _refuse(field, f"must be a tensor but is {_show(value)}")
    if value.layout != torch.strided or value.is_quantized or value.device.type == "meta":
        _refuse(field, "is not a plain dense tensor")
    dtype = value.dtype
    ok = {"float": dtype.is_floating_point,
          "integer": not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool,
          "bytes": dtype == torch.uint8}[kind]
    if not ok:
        wanted = {"float": "floating-point", "integer": "integer", "bytes": "uint8 (bytes)"}[kind]
        _refuse(field, f"holds {dtype} values but must hold {wanted} values")
    if shape is not None and tuple(value.shape) != tuple(shape):
        _refuse(field, f"has shape {format_shape(tuple(value.shape))} but must have {format_shape(tuple(shape))}")
    if kind == "float" and value.numel():
        if finite and not all_finite(value):
            _refuse(field, "holds NaN or infinite values")
        if non_negative and bool((value < 0).any()):
            _refuse(field, "holds negative values, which this optimizer state never has")
    return value
