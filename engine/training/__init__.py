"""Training: ``TrainConfig`` (serialisable settings) and ``Trainer`` (a fast, stoppable, resumable run).

The package's modules, each small:

- ``config``: TrainConfig and the table of rules its settings are checked against (no torch);
- ``events``: RunStarted, BatchEnd, EpochEnd, RunFinished and FinishReason (no torch);
- ``trainer``: the Trainer and its loop.

Every public name is importable from ``engine.training`` as before the split. The settings and the
events load at once; names from the modules that need torch load on first use, so reading or
checking settings (``from engine.training import TrainConfig``) does not import torch.
"""
from __future__ import annotations

import importlib

from engine.training.config import (AMP_MODES, HISTORY_KEYS, INITS, LOSSES, OPTIMIZERS, SCHEDULES, STOP_METRICS,
                                    TrainConfig)
from engine.training.events import REASONS, BatchEnd, EpochEnd, Event, FinishReason, RunFinished, RunStarted

# Name -> the module (under engine.training, or a full engine module name) that defines it.
_LAZY = {
    "COMPILE_OPTIONS": "trainer",
    "READBACK_INTERVAL_S": "trainer",
    "Trainer": "trainer",
    "steps_per_epoch": "trainer",
    "Objective": "trainer",
    "resolve_loss": "trainer",
    "LearningRateSchedule": "trainer",
    "initialize_weights": "trainer",
    "make_optimizer": "trainer",
    "device_name": "trainer",
    "is_out_of_memory": "trainer",
    "resolve_device": "trainer",
    "warm_up": "trainer",
    "Evaluation": "engine.evaluation",
    "Prediction": "engine.evaluation",
}

__all__ = ["AMP_MODES", "HISTORY_KEYS", "INITS", "LOSSES", "OPTIMIZERS", "SCHEDULES", "STOP_METRICS", "TrainConfig",
           "REASONS", "BatchEnd", "EpochEnd", "Event", "FinishReason", "RunFinished", "RunStarted", *_LAZY]


def __getattr__(name: str):
    """Load a name of a torch-using module the first time it is asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module if "." in module else f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
