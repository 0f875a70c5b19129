"""Render the Results tab (after Evaluate of loaded weights) and the Predict tab with a real digit.

Trains LeNet briefly on the bundled MNIST sample, saves its weights, loads them into a fresh window,
presses Evaluate, turns Row % on, clicks the most confused cell, then predicts a test digit written as
a PNG. Writes docs/screenshots/results-evaluate*.png, results-row-percent*.png and predict*.png
(offscreen, 1280x800 unless --size says otherwise).
Usage: python scripts/predict_screenshots.py [--size 1920x1080] [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.openmp import use_passive_wait  # first, as in the app

use_passive_wait()  # before torch loads
from PySide6.QtWidgets import QApplication  # noqa: E402 - after use_passive_wait()

from scripts.training_screenshots import settle, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def train_weights(path: Path, epochs: int) -> None:
    from engine.data import DataConfig, load_data
    from engine.io import save_weights
    from engine.templates import load_template
    from engine.training import TrainConfig, Trainer

    trainer = Trainer(load_template("lenet"), load_data(DataConfig()), TrainConfig(epochs=epochs, device="cpu"))
    print(trainer.run().message)
    save_weights(trainer.model, path)


def digit_png(path: Path, index: int) -> int:
    """Test digit ``index`` of the bundled sample as a PNG; returns its label."""
    from PIL import Image

    from engine.data import read_idx
    from resources import MNIST_SAMPLE

    images = read_idx(MNIST_SAMPLE / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(MNIST_SAMPLE / "t10k-labels-idx1-ubyte.gz")
    Image.fromarray(images[index].numpy()).save(path)
    return int(labels[index])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x800")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if (width, height) == (1280, 800) else f"-{width}x{height}"
    work = Path(tempfile.mkdtemp(prefix="layerstudio-shots-"))
    weights = work / "lenet.pt"
    train_weights(weights, args.epochs)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from gui.app import configure_application
    from gui.main_window import MainWindow
    from gui.training import install_training

    configure_application(app)
    window = MainWindow()
    window.resize(width, height)
    window.show()
    ui = getattr(window, "training", None) or install_training(window)
    window.document.set_extra("data", {"source": "mnist-sample"})
    assert ui.weights.load_weights_from(weights)

    ui.results.evaluate_action.trigger()
    wait_for(ui.controller.evaluated)
    settle(300)
    window.grab().save(str(out / f"results-evaluate{suffix}.png"))
    confusion = ui.controller.last_evaluation.confusion
    cell = max(((t, p) for t in range(len(confusion)) for p in range(len(confusion)) if t != p),
               key=lambda c: confusion[c[0]][c[1]])
    ui.results.row_percent.setChecked(True)
    ui.results.select_cell(*cell)
    settle(300)
    window.grab().save(str(out / f"results-row-percent{suffix}.png"))

    digit = work / "digit.png"
    label = digit_png(digit, 8)
    window.tabs.setCurrentWidget(ui.predict)
    result = ui.predict.predict_image(digit)
    print(f"digit {label}: predicted {result.label if result else '?'}")
    settle(300)
    window.grab().save(str(out / f"predict{suffix}.png"))
    print(f"wrote {out}")

    window.document.undo_stack.setClean()
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
