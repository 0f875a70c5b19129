"""What recording training health costs: the same runs with ``TrainConfig.health`` on and off, side by side in one
process, and the ratio of their speeds.

Health is measured only on the batch before each read-back (a few times a second: forward hooks for that batch,
two ``torch._foreach_norm`` calls, a copy of the weights) and leaves the device in the read-back's own sync, so
the cost should be a small share of the step time. For each template, rounds alternate the two settings (the
order rotates, so a change in the machine's load hits both alike); each round trains a fresh Trainer for one
untimed warm-up epoch and ``--epochs`` timed epochs on the bundled MNIST sample (no validation split, so an
epoch's seconds are training alone), and each setting's fastest epoch counts (a shared machine only ever slows
an epoch down; the median and the spread of the per-round ratios are printed too). The process's CPU seconds
per epoch are counted too: samples per CPU second hardly move when other work shares the machine, so their
ratio is the steadier figure on a busy one and the one the goal is checked on. Goal: on / off >= 0.95.

    python benchmarks/health_overhead.py [--templates lenet,mlp,cnn] [--epochs 3] [--rounds 3] [--batch-size 64]
                                         [--device auto|cpu|cuda] [--threads N]
"""
from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's engine

from engine.openmp import use_passive_wait  # noqa: E402 - first, as in the app

use_passive_wait()  # before torch loads

import torch  # noqa: E402 - after use_passive_wait()

from engine.data import DataConfig, load_data  # noqa: E402
from engine.templates import load_design  # noqa: E402
from engine.training import EpochEnd, TrainConfig, Trainer, device_name, resolve_device  # noqa: E402

GOAL = 0.95  # health on may cost at most 5% of the samples per second


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def epoch_speeds(spec, data, config: TrainConfig) -> tuple[float, float]:
    """The best timed epoch's samples per wall second and per CPU second (the first epoch warms up, left out)."""
    marks: list[tuple[float, float]] = []
    trainer = Trainer(spec, data, config)

    def on_event(event) -> None:
        if isinstance(event, EpochEnd):
            marks.append((time.perf_counter(), cpu_s()))
    finished = trainer.run(on_event=on_event)
    assert finished.reason == "completed", finished.message
    samples = trainer.train_samples
    wall = max(samples / (b[0] - a[0]) for a, b in itertools.pairwise(marks))
    cpu = max(samples / (b[1] - a[1]) for a, b in itertools.pairwise(marks))
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--templates", default="lenet,mlp,cnn")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch's CPU threads (0: its default); 1 gives the "
                        "steadiest figures on a shared machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_data(DataConfig(val_fraction=0.0))
    print(f"{data.summary()}; batch {args.batch_size} on {device_name(resolve_device(args.device))}; "
          f"best of {args.rounds} rounds x {args.epochs} epochs")
    print(f"{'template':<20}{'health off':>14}{'health on':>14}{'on / off':>10}   per-round ratios"
          f"{'':>22}on / off per CPU second")
    worst = float("inf")
    for template in args.templates.split(","):
        spec, _ = load_design(template)
        best: dict[bool, list[float]] = {True: [0.0, 0.0], False: [0.0, 0.0]}
        ratios = []
        for round_ in range(args.rounds):
            speeds = {}
            for health in ((True, False) if round_ % 2 else (False, True)):
                config = TrainConfig(epochs=args.epochs + 1, batch_size=args.batch_size, device=args.device,
                                     health=health)
                speeds[health] = epoch_speeds(spec, data, config)
                best[health] = [max(pair) for pair in zip(best[health], speeds[health], strict=True)]
            ratios.append(speeds[True][0] / speeds[False][0])
        ratio, cpu_ratio = (best[True][i] / best[False][i] for i in (0, 1))
        worst = min(worst, cpu_ratio)
        spread = f"median {statistics.median(ratios):.3f}, {min(ratios):.3f}-{max(ratios):.3f}"
        print(f"{template:<20}{best[False][0]:>10,.0f} /s{best[True][0]:>10,.0f} /s{ratio:>10.3f}   {spread:<30}"
              f"{cpu_ratio:>10.3f}")
    print(f"Worst on / off per CPU second: {worst:.3f} (goal >= {GOAL}): "
          f"{'met' if worst >= GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
