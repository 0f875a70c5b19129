"""Render the Search tab after a small finished search of the MLP template on the bundled MNIST sample.

Eight trials of two epochs each (learning rate, batch size, weight decay, the width and the dropout of the
design; the median pruner) on 600 samples, then the window with the parallel coordinates shown. Writes
docs/screenshots/search.png (offscreen, 1440x900 unless --size says otherwise).
Usage: python scripts/search_screenshots.py [--size 1920x1080] [--trials 8] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.shots import add_size_arguments, open_window, save, settle, sized, wait_for  # noqa: E402 - sets the platform

PARALLEL_TAB = 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_size_arguments(parser, "1440x900")
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    width, height, out, suffix = sized(args, "1440x900")
    _app, window, ui = open_window(width, height, open_initial=False)
    window.open_template("mlp")
    window.document.set_extra("data", {"source": "mnist-sample", "limit": 600, "val_fraction": 0.2})
    window.document.set_extra("training", {**window.document.extras.get("training", {}), "epochs": 2,
                                           "device": "cpu", "seed": 0})
    view = ui.search
    window.tabs.setCurrentWidget(view)
    form = view.form
    form.rows["batch_size"].high.setText("256")
    form.width_row.check.setChecked(True)
    form.dropout_row.check.setChecked(True)
    form.trials_spin.setValue(args.trials)
    if not view.start():
        raise SystemExit(f"The search did not start: {view.blocker()}")
    wait_for(view.changed, condition=lambda: not view.running)
    settle(500)
    print(view.status.text())
    view.plots.setCurrentIndex(PARALLEL_TAB)
    settle(300)
    save(window, out / f"search{suffix}.png")
    window.document.undo_stack.setClean()
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
