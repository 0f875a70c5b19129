"""Render the Results tab (after Evaluate of loaded weights) and the Predict tab with a real digit.

Trains LeNet briefly on the bundled MNIST sample, saves its weights, loads them into a fresh window,
presses Evaluate, turns Row % on, clicks the most confused cell, then predicts a test digit written as
a PNG. Writes docs/screenshots/results-evaluate*.png, results-row-percent*.png and predict*.png
(offscreen, 1280x800 unless --size says otherwise).
Usage: python scripts/predict_screenshots.py [--size 1920x1080] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.shots import add_size_arguments, open_window, save, settle, sized, wait_for  # noqa: E402 - sets the platform


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
    add_size_arguments(parser, "1280x800")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    width, height, out, suffix = sized(args, "1280x800")
    work = Path(tempfile.mkdtemp(prefix="layerstudio-shots-"))
    weights = work / "lenet.pt"
    train_weights(weights, args.epochs)

    _app, window, ui = open_window(width, height)
    window.document.set_extra("data", {"source": "mnist-sample"})
    assert ui.weights.load_weights_from(weights)

    ui.results.evaluate_action.trigger()
    wait_for(ui.controller.evaluated)
    settle(300)
    save(window, out / f"results-evaluate{suffix}.png")
    confusion = ui.controller.last_evaluation.confusion
    cell = max(((t, p) for t in range(len(confusion)) for p in range(len(confusion)) if t != p),
               key=lambda c: confusion[c[0]][c[1]])
    ui.results.row_percent.setChecked(True)
    ui.results.select_cell(*cell)
    settle(300)
    save(window, out / f"results-row-percent{suffix}.png")

    digit = work / "digit.png"
    label = digit_png(digit, 8)
    window.tabs.setCurrentWidget(ui.predict)
    result = ui.predict.predict_image(digit)
    print(f"digit {label}: predicted {result.label if result else '?'}")
    settle(300)
    save(window, out / f"predict{suffix}.png")

    window.document.undo_stack.setClean()
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
