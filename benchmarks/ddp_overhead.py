"""The cost of the distributed path on one rank: the engine's Trainer as one plain process beside the same Trainer
as rank 0 of a one-process run under PyTorch's launcher (DistributedDataParallel around the model, each step's
figures all-reduced and read back so the ranks agree when to stop), in one process, same data, model and seed.

It starts itself under ``torch.distributed.run`` with one process (gloo on the CPU, nccl on a CUDA GPU). Each
trainer times ``--epochs`` epochs after an untimed warm-up epoch, rounds interleave the two, and each one's fastest
epoch counts (a shared machine only ever slows an epoch down); the process's CPU time per epoch (gloo's threads
included) is the steadier figure on a busy machine. Prints samples per second, wall and per CPU second, and the
ratios DDP / plain for each model.

    python benchmarks/ddp_overhead.py [--device auto|cpu|cuda] [--epochs 2] [--rounds 3] [--batch-size 256]
"""
from __future__ import annotations

import argparse
import sys
import time

from engine.openmp import use_passive_wait

use_passive_wait()  # before torch loads, as in the app

import torch  # noqa: E402 - after use_passive_wait()

from engine.data import DataConfig, load_data  # noqa: E402
from engine.templates import load_template  # noqa: E402
from engine.training import EpochEnd, TrainConfig, Trainer, device_name  # noqa: E402
from engine.training.distributed import join_world, launched  # noqa: E402

MODELS = ("mlp", "lenet")


def timed_epochs(trainer: Trainer, epochs: int) -> tuple[float, float]:
    """Train ``epochs`` more epochs: the fastest one's seconds, and the process's CPU seconds per epoch."""
    seconds: list[float] = []
    trainer.config.epochs = trainer.epoch + epochs

    def on_event(event) -> None:
        if isinstance(event, EpochEnd):
            seconds.append(event.seconds)

    cpu = time.process_time()
    finished = trainer.run(on_event=on_event)
    cpu = (time.process_time() - cpu) / epochs
    assert finished.reason == "completed", finished.message
    return min(seconds), cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    if not launched():  # start this script again as the one process of a run under PyTorch's launcher
        from torch.distributed.run import parse_args, run

        run(parse_args(["--nproc-per-node", "1", __file__, *sys.argv[1:]]))
        return 0
    world = join_world(args.device)
    data = load_data(DataConfig())
    print(f"Data: {data.summary()}")
    for name in MODELS:
        spec = load_template(name)
        config = TrainConfig(epochs=1, batch_size=args.batch_size, device=args.device, seed=0, health=False)
        plain, ddp = Trainer(spec, data, config), Trainer(spec, data, config, world)
        if name == MODELS[0]:
            print(f"Device: {device_name(plain.device)}, DDP backend "
                  f"{torch.distributed.get_backend()}, {world.size} rank")
        trainers = {"plain": plain, "ddp": ddp}
        wall = dict.fromkeys(trainers, float("inf"))
        cpu = dict.fromkeys(trainers, float("inf"))
        for trainer in trainers.values():  # warm-up epoch, untimed
            timed_epochs(trainer, 1)
        for _ in range(args.rounds):
            for key, trainer in trainers.items():
                seconds, cpu_seconds = timed_epochs(trainer, args.epochs)
                wall[key], cpu[key] = min(wall[key], seconds), min(cpu[key], cpu_seconds)
        rate = {key: plain.train_samples / seconds for key, seconds in wall.items()}
        per_cpu = {key: plain.train_samples / seconds for key, seconds in cpu.items()}
        print(f"{name:6} samples/s  plain {rate['plain']:8,.0f}  DDP on 1 rank {rate['ddp']:8,.0f}  "
              f"DDP / plain {rate['ddp'] / rate['plain']:.2f};  per CPU second  plain {per_cpu['plain']:8,.0f}  "
              f"DDP {per_cpu['ddp']:8,.0f}  DDP / plain {per_cpu['ddp'] / per_cpu['plain']:.2f}")
    world.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
