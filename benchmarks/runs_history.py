"""How fast does the run history list, sort and filter with thousands of runs?

Fills a temporary history with 5,000 realistic runs (designs of about 10 layers, 10 to 50 epochs each, recorded
through RunHistory.save as RunRecorder writes them) and times what the Runs tab does: open (count + first page of
100), sort by each summary column both ways, a text filter; side by side with a plain ``SELECT * FROM runs ORDER BY``
that fetches every row, which is what a table without paging would do. Goal for the window: under 200 ms to open
the Runs tab and to sort; the engine's part should be a small fraction of that.

Run: python benchmarks/runs_history.py [RUNS]
"""
from __future__ import annotations

import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from engine.history import SORT_COLUMNS, RunHistory, RunState
from engine.spec import LayerSpec, NetworkSpec

RUNS = 5000
PAGE = 100
REPEATS = 20
TARGET_MS = 200.0
DESIGNS = ("mlp", "lenet", "cnn", "wide-mlp", "tiny-resnet", "autoencoder", "vgg-ish", "nin-ish")
SOURCES = ("mnist", "mnist-sample", "fashion-mnist", "cifar10", "folder")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
REASONS = ("completed",) * 6 + ("stopped", "early_stopped", "diverged", "error")


def design(rng: random.Random) -> NetworkSpec:
    """About 10 layers: two conv blocks and an MLP head, widths drawn at random."""
    c1, c2, hidden = rng.choice((8, 16, 32)), rng.choice((16, 32, 64)), rng.choice((64, 128, 256))
    return NetworkSpec((1, 28, 28), (
        LayerSpec("Conv2d", {"out_channels": c1, "kernel_size": 3, "padding": 1}, "c1"), LayerSpec("ReLU", id="r1"),
        LayerSpec("MaxPool2d", {"kernel_size": 2}, "p1"),
        LayerSpec("Conv2d", {"out_channels": c2, "kernel_size": 3, "padding": 1}, "c2"), LayerSpec("ReLU", id="r2"),
        LayerSpec("MaxPool2d", {"kernel_size": 2}, "p2"), LayerSpec("Flatten", id="flat"),
        LayerSpec("Linear", {"out_features": hidden}, "fc1"), LayerSpec("ReLU", id="r3"),
        LayerSpec("Dropout", {"p": 0.3}, "drop"), LayerSpec("Linear", {"out_features": 10}, "out")))


def synthetic_run(rng: random.Random, i: int) -> RunState:
    """Run ``i`` of a realistic history (also what benchmarks/runs_tab_speed.py fills the Runs tab with)."""
    epochs = rng.randint(10, 50)
    done = epochs if rng.random() < 0.8 else rng.randint(0, epochs)
    reason = rng.choice(REASONS)
    name = f"{rng.choice(DESIGNS)}-{rng.randint(1, 40)}"
    state = RunState(started=f"2026-{1 + i * 11 // RUNS:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00+01:00",
                     name=name, data=rng.choice(SOURCES), optimizer=rng.choice(OPTIMIZERS),
                     lr=10 ** rng.uniform(-4, -1), batch_size=rng.choice((32, 64, 128, 256, 512)), epochs=epochs,
                     design={**design(rng).to_dict(), "name": name},
                     training={"epochs": epochs, "optimizer": "adam", "lr": 0.001, "seed": i},
                     data_settings={"source": "mnist", "limit": 0}, epochs_done=done, reason=reason,
                     message=f"{reason}: trained {done} epochs", device="CPU (16 threads)",
                     params=rng.randint(10_000, 2_000_000), duration_s=rng.uniform(5, 5000))
    accuracy = rng.uniform(0.5, 0.9)
    for epoch in range(1, done + 1):
        accuracy = min(0.999, accuracy + rng.uniform(0, 0.01))
        state.epoch_rows.append(dict(epoch=epoch, train_loss=1 / epoch, train_acc=accuracy, val_loss=1.1 / epoch,
                                     val_acc=accuracy - 0.01, lr=state.lr, seconds=rng.uniform(1, 100)))
    state.best_val_acc = accuracy - 0.01 if done else None
    state.test_acc = accuracy - 0.02 if reason == "completed" else None
    state.test_loss = 0.3 if reason == "completed" else None
    return state


def ms(work, repeats: int = REPEATS) -> float:
    """The median wall time of ``work`` in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main(runs: int = RUNS) -> None:
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "runs.sqlite3"
        history = RunHistory(path)
        start = time.perf_counter()
        for i in range(runs):
            history.save(synthetic_run(rng, i))
        fill_s = time.perf_counter() - start
        size_mb = sum(p.stat().st_size for p in Path(folder).iterdir()) / 1e6
        print(f"Filled {runs:,} runs ({size_mb:.1f} MB with the WAL) in {fill_s:.1f} s: "
              f"{1000 * fill_s / runs:.2f} ms a run, each in one transaction, epochs included")

        def open_tab(h=None):
            h = h or RunHistory(path)
            return h.count(), h.list(limit=PAGE)

        opened_cold = ms(lambda: open_tab(RunHistory(path)))  # a new RunHistory: its first connection checks
        opened = ms(lambda: open_tab(history))

        def plain(column: str):
            with sqlite3.connect(path) as db:
                return db.execute(f"SELECT * FROM runs ORDER BY {column} DESC").fetchall()

        print(f"\nOpen the Runs tab (count + first {PAGE} rows): {opened:.2f} ms "
              f"({opened_cold:.2f} ms with a new RunHistory); plain SELECT * ORDER BY started of all rows: "
              f"{ms(lambda: plain('started')):.2f} ms")
        print(f"\n{'Sort by':<14}{'page desc':>11}{'page asc':>10}{'all rows':>10}{'ratio':>8}")
        worst = opened
        for column in SORT_COLUMNS:
            desc = ms(lambda c=column: history.list(order_by=c, descending=True, limit=PAGE))
            asc = ms(lambda c=column: history.list(order_by=c, descending=False, limit=PAGE))
            full = ms(lambda c=column: plain(c), repeats=5)
            worst = max(worst, desc, asc)
            print(f"{column:<14}{desc:>9.2f}ms{asc:>8.2f}ms{full:>8.1f}ms{full / max(desc, asc):>7.0f}x")
        for text in ("mnist", "lenet-3", "diverged", "no such run"):
            filtered = ms(lambda t=text: (history.count(t), history.list(t, limit=PAGE)))
            worst = max(worst, filtered)
            print(f"Filter {text!r:<14} count + first page: {filtered:.2f} ms ({history.count(text):,} runs)")
        print(f"\nSlowest: {worst:.2f} ms, {100 * worst / TARGET_MS:.1f}% of the window's {TARGET_MS:.0f} ms goal")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else RUNS)
