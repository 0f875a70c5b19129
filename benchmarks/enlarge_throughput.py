"""Enlarging per batch vs up front: the AlexNet template at 224 px on the bundled sample, side by side.

- per batch: the bundle as ``load_data`` gives it (28x28 stored, each batch enlarged on the device);
- up front: the same bundle with every image enlarged before training (``enlarge_to`` 0), which is what
  loading did before: the same values up to float rounding, 64 times the memory.

Both train the same model with the same seed; rounds interleave the two (taking turns going first) and each
side's fastest epoch (after an untimed warm-up epoch) counts, since a shared machine only ever slows an epoch
down (medians are printed too). Also printed: the time ``enlarge`` takes for one batch alone, and what each
way holds for the bundle and for Fashion-MNIST.

    python benchmarks/enlarge_throughput.py [--device auto|cpu|cuda] [--limit 160] [--batch 32] [--rounds 2]
                                            [--template alexnet] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

from engine.openmp import use_passive_wait  # first, as in the app

use_passive_wait()  # before torch loads
import torch  # noqa: E402 - after use_passive_wait()

from engine.data import DataConfig, load_data  # noqa: E402
from engine.data.enlarge import enlarge  # noqa: E402
from engine.memory import estimate_data_bytes, format_bytes  # noqa: E402
from engine.templates import load_template  # noqa: E402
from engine.training import EpochEnd, TrainConfig, Trainer, device_name, resolve_device  # noqa: E402

SIDE = 224
FASHION_MNIST_IMAGES = 70_000


def up_front(data):
    """The bundle with its images enlarged before training, as loading used to store them."""
    return replace(data, train_x=data.model_inputs(data.train_x), val_x=data.model_inputs(data.val_x), enlarge_to=0)


def epoch_rate(template: str, data, device: torch.device, batch: int) -> float:
    """Samples per second of the second epoch of a Trainer run (the first warms up), by the wall clock."""
    config = TrainConfig(optimizer="adam", batch_size=batch, epochs=2, device=str(device), seed=0)
    trainer = Trainer(load_template(template), data, config)
    ends: list[float] = []
    finished = trainer.run(lambda event: ends.append(time.perf_counter()) if isinstance(event, EpochEnd) else None)
    if finished.reason != "completed":
        raise SystemExit(f"run ended {finished.reason}: {finished.message}")
    return trainer.train_samples / (ends[1] - ends[0])


def enlarge_seconds(data, device: torch.device, batch: int, repeats: int = 20) -> float:
    """Seconds ``enlarge`` takes for one batch on the device (what per batch adds to every step)."""
    x = data.train_x[:batch].to(device)
    enlarge(x, SIDE)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        enlarge(x, SIDE)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / repeats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    parser.add_argument("--template", default="alexnet", help="a template that takes 1x224x224 (alexnet, vgg, nin)")
    parser.add_argument("--limit", type=int, default=160, help="training images of the bundled sample")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; each side's fastest epoch counts")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    data = load_data(DataConfig(image_size=SIDE, limit=args.limit, val_fraction=0))
    data = replace(data, test_x=data.test_x[:0], test_y=data.test_y[:0])       # training only
    enlarged = up_front(data)
    print(f"{args.template} on {device} ({device_name(device)}), {data.train_size} sample images at {SIDE} px, "
          f"batch {args.batch}, torch threads {torch.get_num_threads()}, best of {args.rounds} interleaved rounds")
    rates: dict[str, list[float]] = {"up front": [], "per batch": []}
    sides = [("up front", enlarged), ("per batch", data)]
    for round_ in range(args.rounds):
        for name, bundle in sides if round_ % 2 == 0 else sides[::-1]:     # each goes first every other round
            rates[name].append(epoch_rate(args.template, bundle, device, args.batch))
    best = {name: max(values) for name, values in rates.items()}
    for name, values in rates.items():
        print(f"{name:<10} {best[name]:8.1f} samples/s  (median {statistics.median(values):.1f}; epochs: "
              f"{', '.join(f'{v:.1f}' for v in values)})")
    print(f"per batch / up front: {best['per batch'] / best['up front']:.3f}x")
    seconds = enlarge_seconds(data, device, args.batch)
    print(f"enlarging one batch of {args.batch} to {SIDE} px alone: {seconds * 1e3:.1f} ms "
          f"({seconds * best['per batch'] / args.batch:.1%} of a step)")
    held = {name: bundle.train_x.nbytes for name, bundle in (("up front", enlarged), ("per batch", data))}
    print(f"training images held: up front {format_bytes(held['up front'])}, "
          f"per batch {format_bytes(held['per batch'])}")
    fashion = estimate_data_bytes(DataConfig(source="fashion-mnist", image_size=SIDE))
    print(f"Fashion-MNIST at {SIDE} px: data estimate now {format_bytes(fashion)}; up front its float32 images alone "
          f"were {format_bytes(FASHION_MNIST_IMAGES * SIDE * SIDE * 4)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
