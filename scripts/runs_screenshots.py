"""Render the Runs tab over a history of real runs: docs/screenshots/runs.png.

Trains about 20 small runs on the bundled MNIST sample (an MLP of three widths and a small CNN, with Adam, AdamW and
SGD at several learning rates), each recorded by the engine's RunRecorder into a history in a temporary
LAYERSTUDIO_HOME, then shows the window (1440x900 unless --size says otherwise) on the Runs tab with two runs of
different designs selected: their curves overlaid and their designs and settings side by side.
Usage: python scripts/runs_screenshots.py [--size 1440x900] [--epochs 4] [--home DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.shots import add_size_arguments, open_window, save, settle, sized  # noqa: E402 - sets the platform

DATA = {"source": "mnist-sample", "limit": 1200, "val_fraction": 0.2}
RUNS = [  # (design name, width or "cnn", optimizer, learning rate)
    *(("mlp-64", 64, optimizer, lr) for optimizer, lr in (("adam", 1e-3), ("adam", 3e-3), ("sgd", 0.05),
                                                          ("sgd", 0.2), ("adamw", 1e-3))),
    *(("mlp-128", 128, optimizer, lr) for optimizer, lr in (("adam", 1e-3), ("adam", 3e-4), ("adamw", 3e-3),
                                                            ("sgd", 0.1), ("sgd", 0.02))),
    *(("mlp-32", 32, optimizer, lr) for optimizer, lr in (("adam", 3e-3), ("adam", 1e-2), ("sgd", 0.1),
                                                          ("adamw", 1e-3))),
    *(("small-cnn", "cnn", optimizer, lr) for optimizer, lr in (("adam", 1e-3), ("adam", 3e-3), ("sgd", 0.05),
                                                                ("adamw", 2e-3), ("sgd", 0.01), ("adam", 5e-4))),
]


def design(width):
    from engine.spec import LayerSpec, NetworkSpec

    if width == "cnn":
        layers = (LayerSpec("Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}, id="conv1"),
                  LayerSpec("ReLU", id="relu1"), LayerSpec("MaxPool2d", {"kernel_size": 2}, id="pool1"),
                  LayerSpec("Conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1}, id="conv2"),
                  LayerSpec("ReLU", id="relu2"), LayerSpec("MaxPool2d", {"kernel_size": 2}, id="pool2"),
                  LayerSpec("Flatten", id="flatten"), LayerSpec("Linear", {"out_features": 10}, id="out"))
    else:
        layers = (LayerSpec("Flatten", id="flatten"), LayerSpec("Linear", {"out_features": width}, id="hidden"),
                  LayerSpec("ReLU", id="relu1"), LayerSpec("Linear", {"out_features": 10}, id="out"))
    return NetworkSpec((1, 28, 28), layers)


def record_runs(epochs: int) -> None:
    """Train every run of RUNS and record it as the window would (RunRecorder on the trainer's events)."""
    from engine.data import DataConfig, load_data
    from engine.history import RunHistory, RunRecorder
    from engine.training import TrainConfig, Trainer

    config = DataConfig.from_dict(DATA)
    data = load_data(config)
    history = RunHistory()
    for number, (name, width, optimizer, lr) in enumerate(RUNS, start=1):
        training = TrainConfig.from_dict({"epochs": epochs, "batch_size": 64, "optimizer": optimizer, "lr": lr,
                                          "device": "cpu", "seed": number})
        recorder = RunRecorder(history, name, design(width), training.to_dict(), config.to_dict())
        trainer = Trainer(design(width), data, training)
        finished = trainer.run(on_event=recorder)
        evaluation = trainer.evaluate("test")
        recorder.set_test(evaluation.loss, evaluation.accuracy)
        print(f"run {number}/{len(RUNS)}: {name} {optimizer} lr {lr:g}: {finished.reason}, "
              f"test accuracy {100 * evaluation.accuracy:.1f}%")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_size_arguments(parser, "1440x900")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--home", help="the LAYERSTUDIO_HOME of an earlier call, to reuse its runs instead of "
                                       "training them again (default: a new temporary folder)")
    args = parser.parse_args()
    width, height, out, suffix = sized(args, "1440x900")
    os.environ["LAYERSTUDIO_HOME"] = args.home or tempfile.mkdtemp(prefix="layerstudio-runs-shots-")  # not the user's
    print(f"run history in {os.environ['LAYERSTUDIO_HOME']}")
    from engine.history import RunHistory

    if RunHistory().count() == 0:
        record_runs(args.epochs)

    from PySide6.QtCore import Qt

    from gui.runs_model import COLUMNS

    _app, window, ui = open_window(width, height)
    window.tabs.setCurrentWidget(ui.runs)
    view = ui.runs
    best_column = next(i for i, column in enumerate(COLUMNS) if column.field == "best_val_acc")
    view.table.sortByColumn(best_column, Qt.SortOrder.DescendingOrder)  # the best runs first
    best = {}
    for run in view.model.runs:  # the best run of an MLP and of the CNN
        best.setdefault("cnn" if run.name == "small-cnn" else "mlp", run.id)
    view.select_runs([best["mlp"], best["cnn"]])
    settle(500)  # layouts and the plots' first paint
    save(window, out / f"runs{suffix}.png")
    ui.controller.shutdown()
    window.document.undo_stack.setClean()
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
