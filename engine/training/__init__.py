"""Training: ``TrainConfig`` (serialisable settings) and ``Trainer`` (a fast, stoppable, resumable run).

The package's modules, each small:

- ``config``: TrainConfig and the table of rules its settings are checked against (no torch);
- ``events``: RunStarted, BatchEnd, HealthSample, EpochEnd, RunFinished and FinishReason (no torch);
- ``health``, ``health_rules``: per-layer training health on the device, and the advice it gives (no torch);
- ``early_stopping``: the metric early stopping watches and its patience (no torch);
- ``objective``: the loss for a task and a model output, and the weight penalties;
- ``optim``: optimizers and their step, the learning-rate schedule, weight initialisation;
- ``runtime``: devices, random number streams, out-of-memory detection, warm-up;
- ``batches``: the run's data on its device and the batches cut from it;
- ``progress``: batches per epoch and an unfinished epoch's state;
- ``readback``: losses read back from the device and the divergence guard;
- ``evaluation``: the trainer's evaluation of a split (through engine.evaluation);
- ``checkpoint``, ``checkpoint_format``, ``checkpoint_check``: a run's checkpoint, its format and its check;
- ``trainer``: the Trainer: the loop, pause and stop;
- ``lr_finder``: the learning-rate range test (a sweep on a copy of the model, with the Trainer's steps).

Every public name is importable from ``engine.training`` as before the split. The settings and the
events load at once; names from the modules that need torch load on first use, so reading or
checking settings (``from engine.training import TrainConfig``) does not import torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from engine.training.config import (
    AMP_MODES,
    HISTORY_KEYS,
    INITS,
    LOSSES,
    OPTIMIZERS,
    SCHEDULES,
    STOP_METRICS,
    LRFindConfig,
    TrainConfig,
)
from engine.training.events import (
    REASONS,
    BatchEnd,
    EpochEnd,
    Event,
    FinishReason,
    HealthSample,
    LayerHealth,
    RunFinished,
    RunStarted,
)

if TYPE_CHECKING:  # the names of _LAZY, for type checkers and editors (a test keeps the two equal)
    from engine.evaluation import Evaluation, Prediction
    from engine.training.lr_finder import LRFinding, find_learning_rate
    from engine.training.objective import Objective, resolve_loss
    from engine.training.optim import LearningRateSchedule, initialize_weights, make_optimizer
    from engine.training.progress import steps_per_epoch
    from engine.training.readback import READBACK_INTERVAL_S
    from engine.training.runtime import device_name, is_out_of_memory, resolve_device, warm_up
    from engine.training.trainer import COMPILE_OPTIONS, Trainer

# Name -> the module (under engine.training, or a full engine module name) that defines it.
_LAZY = {
    "Trainer": "trainer",
    "find_learning_rate": "lr_finder",
    "LRFinding": "lr_finder",
    "COMPILE_OPTIONS": "trainer",
    "READBACK_INTERVAL_S": "readback",
    "steps_per_epoch": "progress",
    "Objective": "objective",
    "resolve_loss": "objective",
    "LearningRateSchedule": "optim",
    "initialize_weights": "optim",
    "make_optimizer": "optim",
    "device_name": "runtime",
    "is_out_of_memory": "runtime",
    "resolve_device": "runtime",
    "warm_up": "runtime",
    "Evaluation": "engine.evaluation",
    "Prediction": "engine.evaluation",
}
__all__ = ["AMP_MODES", "HISTORY_KEYS", "INITS", "LOSSES", "OPTIMIZERS", "SCHEDULES", "STOP_METRICS", "TrainConfig",
           "LRFindConfig",
           "REASONS", "BatchEnd", "EpochEnd", "Event", "FinishReason", "HealthSample", "LayerHealth", "RunFinished",
           "RunStarted"]
__all__ += list(_LAZY)


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
