"""Render the Training and Results tabs during and after a real run on the bundled MNIST sample.

Writes docs/screenshots/training-running.png, training-finished.png, training-results.png, activations.png and
training-lr-find.png (offscreen, 1280x800 unless --size says otherwise). Two runs are made, so the plots also show
a previous run dimmed. A third run, of the Sigmoid LeNet (lenet-d2l) with SGD at learning rate 0.9, fills
the Health view with vanishing gradients and saturated units: training-health.png.
Usage: python scripts/training_screenshots.py [--size 1920x1080] [--epochs 3]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.shots import add_size_arguments, open_window, save, settle, sized, wait_for  # noqa: E402


def show_curves_now(plots) -> None:
    """Push the run's curves so far and paint them: the plots pace their own refreshes up to a second apart, and
    on a fast machine the whole run can end before the next one (the "running" screenshot then showed a finished
    run, and waiting for the run's end waited for a signal already gone)."""
    plots.flush()
    settle(30)


def run_result(controller):
    """The run's result: at once when it has already ended, else when it ends."""
    return controller.last_result if not controller.busy else wait_for(controller.finished)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_size_arguments(parser, "1280x800")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    width, height, out, suffix = sized(args, "1280x800")
    _app, window, ui = open_window(width, height)
    doc = window.document
    doc.set_extra("data", {"source": "mnist-sample"})

    # a first, slower run: it stays on the plots, dimmed, for comparison
    doc.set_extra("training", {"epochs": max(args.epochs - 1, 1), "lr": 3e-4, "device": "cpu"})
    ui.controller.start()
    wait_for(ui.controller.finished)

    doc.set_extra("training", {"epochs": args.epochs, "lr": 1e-3, "device": "cpu"})
    window.tabs.setCurrentWidget(ui.panel)
    ui.panel.start_action.trigger()
    wait_for(ui.controller.batchEnded,
             condition=lambda event: event.epoch == 2 and event.step > event.steps_per_epoch / 2)
    show_curves_now(ui.panel.plots)
    save(window, out / f"training-running{suffix}.png")
    result = run_result(ui.controller)
    print(f"run ended: {result.reason}: {result.message}")
    settle(300)
    save(window, out / f"training-finished{suffix}.png")

    window.tabs.setCurrentWidget(ui.results)
    evaluation = ui.controller.last_evaluation
    if evaluation is not None and evaluation.confusion:
        confusion = evaluation.confusion
        cell = max(((t, p) for t in range(len(confusion)) for p in range(len(confusion)) if t != p),
                   key=lambda c: confusion[c[0]][c[1]])
        ui.results.select_cell(*cell)
    settle(300)
    save(window, out / f"training-results{suffix}.png")

    view = ui.activations  # the misclassified sample picked above, layer by layer
    view.resize(width, height)
    ui.results.activations_button.click()
    wait_for(view.shown)
    settle(300)
    save(view, out / f"activations{suffix}.png")
    view.close()

    window.tabs.setCurrentWidget(ui.panel)  # Find learning rate: a real sweep, the suggestion marked
    finder = ui.panel.lr_finder
    finder.find_button.click()
    wait_for(finder.changed, condition=lambda *args: not finder.running)
    settle(300)
    save(window, out / f"training-lr-find{suffix}.png")
    # the Health view after a run whose rules fire: vanishing gradients below saturated Sigmoids
    window.new_from("lenet-d2l")  # without asking about the edited design
    doc.set_extra("data", {"source": "mnist-sample"})
    doc.set_extra("training", {"epochs": 4, "optimizer": "sgd", "lr": 0.9, "device": "cpu"})
    window.tabs.setCurrentWidget(ui.panel)
    ui.panel.views.setCurrentWidget(ui.panel.health_view)
    ui.panel.start_action.trigger()
    result = wait_for(ui.controller.finished)[0]
    print(f"run ended: {result.reason}: {result.message}")
    settle(700)
    save(window, out / f"training-health{suffix}.png")

    doc.undo_stack.setClean()
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
