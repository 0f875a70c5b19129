"""The same optuna search with and without pruning: what pruning saves in time and what it costs in the best value.

Each variant runs ``engine.search.run_search`` on the same design, data bundle (the bundled MNIST sample, loaded once),
space (learning rate, batch size and weight decay over their declared search ranges, plus a width multiplier),
training settings and sampler seed; the objective is validation accuracy. The first trials draw the same values in
every variant (TPE's random start-up with one seed); after that each variant's sampler learns from its own results.
It prints, per variant, the trials per minute, the best validation accuracy, how many trials were pruned and the
wall time, then for each pruner: its whole time as a share of the unpruned search's, its best's distance from the
unpruned best, and when (as a share of the unpruned search's whole time) its best-so-far first came within 1 point
of the unpruned best. The goal: pruning reaches a best within 1 point of accuracy in at most 60% of the time (that
last figure; exit code 1 when the first pruner listed misses it).

    python benchmarks/search_pruning.py [--design mlp] [--trials 16] [--epochs 6] [--limit 0] [--seed 0]
                                        [--pruners median,hyperband] [--threads N]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import engine  # noqa: E402,F401  (engine before torch: the OpenMP wait policy)
from engine.data import DataConfig, load_data  # noqa: E402
from engine.search import SearchSpace, default_space, run_search  # noqa: E402
from engine.templates import load_design  # noqa: E402


def one_search(spec, data, space: SearchSpace, training: dict, trials: int, pruner: str, seed: int) -> dict:
    started = time.perf_counter()
    study = run_search(spec, "benchmark", training, {}, space, trials=trials, timeout_s=None, objective="val_acc",
                       pruner=pruner, data=data, seed=seed)
    seconds = time.perf_counter() - started
    states = [t.state.name for t in study.trials]
    opened = min(t.datetime_start for t in study.trials)
    done = sorted(((t.datetime_complete - opened).total_seconds(), t.value) for t in study.trials
                  if t.state.name == "COMPLETE")
    return {"pruner": pruner, "seconds": seconds, "per_min": 60 * len(states) / seconds, "best": study.best_value,
            "pruned": states.count("PRUNED"), "complete": states.count("COMPLETE"), "done": done,
            "epochs": sum(len(t.intermediate_values) for t in study.trials)}


def reached(done: list[tuple[float, float]], target: float) -> float:
    """Seconds until a completed trial's value first reached ``target`` (inf when none did)."""
    return next((at for at, value in done if value >= target), float("inf"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", default="mlp")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--limit", type=int, default=0, help="training samples (0: the whole sample)")
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    parser.add_argument("--pruners", default="median,hyperband")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec, _ = load_design(args.design)
    data = load_data(DataConfig(limit=args.limit))
    space = default_space(spec, {})
    space.width = (0.25, 2.0)
    training = {"epochs": args.epochs, "health": False}
    print(f"{args.design} on {data.summary()}; {args.trials} trials of {args.epochs} epochs, sampler seed "
          f"{args.seed}, torch threads {torch.get_num_threads()}")
    results = [one_search(spec, data, space, training, args.trials, pruner, args.seed)
               for pruner in ("none", *args.pruners.split(","))]
    base = results[0]
    print(f"{'pruner':<10}{'trials/min':>11}{'best val acc':>14}{'pruned':>8}{'epochs':>8}{'seconds':>9}"
          f"{'s to within 1 pt':>18}")
    for r in results:
        print(f"{r['pruner']:<10}{r['per_min']:>11.1f}{100 * r['best']:>13.1f}%{r['pruned']:>8}{r['epochs']:>8}"
              f"{r['seconds']:>9.1f}{reached(r['done'], base['best'] - 0.01):>18.1f}")
    met = []
    for r in results[1:]:
        ratio, gap = r["seconds"] / base["seconds"], 100 * (base["best"] - r["best"])
        within = reached(r["done"], base["best"] - 0.01) / base["seconds"]
        ok = within <= 0.6
        met.append(ok)
        print(f"{r['pruner']}: whole search {100 * ratio:.0f}% of the unpruned time, best {gap:+.1f} points below "
              f"it; within 1 point of it after {100 * within:.0f}% of the unpruned time "
              f"({'meets' if ok else 'misses'} the goal: at most 60%)")
    return 0 if met and met[0] else 1


if __name__ == "__main__":
    sys.exit(main())
