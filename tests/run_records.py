"""Runs recorded through the real engine API (engine.history.RunRecorder fed the trainer's event dataclasses),
without training: the Runs tab's tests and its benchmark fill a history with them."""
from __future__ import annotations

import math

from engine.history import RunHistory, RunRecorder
from engine.shapes import analyze
from engine.spec import LayerSpec, NetworkSpec
from engine.training import EpochEnd, RunFinished, RunStarted

DATA = {"source": "mnist-sample", "limit": 300, "val_fraction": 0.2}


def mlp(hidden: int = 16, activation: str = "ReLU", classes: int = 10) -> NetworkSpec:
    return NetworkSpec((1, 28, 28), (
        LayerSpec("Flatten", id="flat"), LayerSpec("Linear", {"out_features": hidden}, id="hidden"),
        LayerSpec(activation, id="act"), LayerSpec("Linear", {"out_features": classes}, id="out")))


def record_run(history: RunHistory, name: str = "mlp", spec: NetworkSpec | None = None, training: dict | None = None,
               data: dict | None = None, epochs: int = 3, done: int | None = None, reason: str = "completed",
               rate: float = 0.5, test_acc: float | None = 0.9) -> int:
    """Record one run as the trainer reports it: RunStarted, an EpochEnd per epoch done (loss falling and accuracy
    rising at ``rate``), RunFinished, the test figures. Returns the run's id."""
    training = {"optimizer": "adam", "lr": 0.001, "batch_size": 32, "epochs": epochs, **(training or {})}
    spec = spec or mlp()
    recorder = RunRecorder(history, name, spec, training, dict(data or DATA))
    done = epochs if done is None else done
    recorder(RunStarted("cpu", "CPU", epochs, 0, 8, analyze(spec).params, 240, 60))
    for epoch in range(1, done + 1):
        fade = math.exp(-rate * epoch)
        recorder(EpochEnd(epoch, epochs, 2.3 * fade, 1 - 0.9 * fade, 2.4 * fade, 1 - 0.92 * fade, 0.001, 0.5))
    recorder(RunFinished(reason, f"{reason} after {done} epochs", done))
    if test_acc is not None:
        recorder.set_test(0.3, test_acc)
    return recorder.run_id
