"""Training throughput: the engine's Trainer beside the loop a course would write and a minimal
hand-written tensor-resident loop, in one process, for softmax regression, the MLP and LeNet.

- course loop: torchvision's MNIST class over the bundled sample's IDX files with
  ``transforms.ToTensor()``, ``DataLoader(batch_size=256, shuffle=True)``, Adam, and per-batch
  ``loss.item()`` / accuracy bookkeeping as D2L's ``train_epoch_ch3`` does;
- engine: ``Trainer`` (data on the device once, seeded permutation, indexed batches, throttled read-back,
  events, stop checks, divergence guard);
- hand loop: the same tensor-resident idea written out by hand in a dozen lines, keeping loss and
  accuracy in device tensors and reading them once per epoch (the floor the engine's extras sit on).

All three use batch size 256, Adam lr 1e-3 and the same model; each times ``--epochs`` epochs one by one
after an untimed warm-up epoch, rounds interleave the three loops, and each loop's fastest epoch counts
(a shared machine only ever slows an epoch down; medians are printed too). Goals on a 2-core CPU: engine >= 3x
the course loop for softmax regression and the MLP, >= 1.3x for LeNet; engine / hand loop >= 0.95.

    python benchmarks/train_throughput.py [--device auto|cpu|cuda] [--epochs 2] [--rounds 3] [--threads N]
"""
from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import tempfile
import time
from itertools import pairwise
from pathlib import Path

from engine.openmp import use_passive_wait

use_passive_wait()  # before torch loads, as in the app

import torch  # noqa: E402 - after use_passive_wait()
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402

from engine.build import build_model  # noqa: E402
from engine.data import DataConfig, load_data  # noqa: E402
from engine.templates import load_template  # noqa: E402
from engine.training import EpochEnd, TrainConfig, Trainer, device_name, make_optimizer, resolve_device  # noqa: E402
from resources import MNIST_SAMPLE  # noqa: E402

BATCH = 256
LR = 1e-3
MODELS = {"softmax-regression": 3.0, "mlp": 3.0, "lenet": 1.3}  # template -> goal for engine / course loop
HAND_GOAL = 0.95


def mnist_root(folder: Path) -> Path:
    """A torchvision MNIST root holding the bundled sample (gunzipped IDX files under MNIST/raw)."""
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for packed in MNIST_SAMPLE.glob("*-ubyte.gz"):
        with gzip.open(packed, "rb") as source, open(raw / packed.stem, "wb") as target:
            shutil.copyfileobj(source, target)
    return folder


def course_loop(template: str, root: Path, device: torch.device, epochs: int) -> list[float]:
    """Samples per second of the textbook loop (DataLoader over a torchvision dataset, ToTensor per sample)."""
    torch.manual_seed(0)
    dataset = datasets.MNIST(root, train=True, transform=transforms.ToTensor())
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True)
    model = build_model(load_template(template)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()

    def epoch() -> None:
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            out = model(x)
            loss = loss_fn(out, y)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            seen += len(y)

    return _timed_epochs(epoch, len(dataset), epochs, device)


def engine_loop(template: str, data, device: torch.device, epochs: int) -> list[float]:
    """Samples per second of each epoch of Trainer.run after the first (warm-up) one, by the wall clock
    between EpochEnd events (so the permutation, read-backs and events are all inside)."""
    config = TrainConfig(optimizer="adam", lr=LR, batch_size=BATCH, epochs=epochs + 1, device=str(device), seed=0)
    trainer = Trainer(load_template(template), data, config)
    ends: list[float] = []

    def on_event(event) -> None:
        if isinstance(event, EpochEnd):
            ends.append(time.perf_counter())

    finished = trainer.run(on_event)
    if finished.reason != "completed":
        raise SystemExit(f"engine run ended {finished.reason}: {finished.message}")
    return [trainer.train_samples / (b - a) for a, b in pairwise(ends)]


def hand_loop(template: str, data, device: torch.device, epochs: int) -> list[float]:
    """Samples per second of a minimal tensor-resident loop with the engine's optimizer implementation."""
    torch.manual_seed(0)
    x, y = data.train_x.to(device), data.train_y.to(device)
    model = build_model(load_template(template)).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(trainable, TrainConfig(optimizer="adam", lr=LR), device)
    loss_fn = nn.CrossEntropyLoss()
    count = len(x)

    def epoch() -> tuple[float, int]:
        model.train()
        perm = torch.randperm(count, device=device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        for start in range(0, count, BATCH):
            idx = perm[start:start + BATCH]
            xb, yb = x[idx], y[idx]
            optimizer.zero_grad(set_to_none=True)
            out = model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(idx)
            correct += (out.argmax(1) == yb).sum()
        return loss_sum.item(), int(correct.item())

    return _timed_epochs(epoch, count, epochs, device)


def _timed_epochs(epoch, samples: int, epochs: int, device: torch.device) -> list[float]:
    """Samples per second of each of ``epochs`` epochs after an untimed warm-up epoch."""
    epoch()
    rates = []
    for _ in range(epochs):
        started = time.perf_counter()
        epoch()
        _sync(device)
        rates.append(samples / (time.perf_counter() - started))
    return rates


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per loop and round (after one warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each loop's fastest epoch counts")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads for all three loops (0: torch's default); 1 steadies a shared machine")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    data = load_data(DataConfig(val_fraction=0.0))  # all 4000 sample images, like the torchvision dataset
    print(f"device {device} ({device_name(device)}), batch {BATCH}, {len(data.train_x)} MNIST sample images, "
          f"best epoch of {args.rounds} interleaved rounds x {args.epochs} timed epochs (after 1 warm-up each)")
    header = f"{'model':<20}{'course loop':>14}{'engine':>14}{'hand loop':>14}{'engine/course':>15}{'engine/hand':>13}"
    print(header)
    failures = []
    with tempfile.TemporaryDirectory() as folder:
        root = mnist_root(Path(folder))
        for template in args.models:
            runs: dict[str, list[float]] = {"course": [], "engine": [], "hand": []}
            for _ in range(args.rounds):
                runs["course"] += course_loop(template, root, device, args.epochs)
                runs["engine"] += engine_loop(template, data, device, args.epochs)
                runs["hand"] += hand_loop(template, data, device, args.epochs)
            best = {name: max(values) for name, values in runs.items()}
            vs_course, vs_hand = best["engine"] / best["course"], best["engine"] / best["hand"]
            print(f"{template:<20}{best['course']:>12,.0f}/s{best['engine']:>12,.0f}/s{best['hand']:>12,.0f}/s"
                  f"{vs_course:>14.2f}x{vs_hand:>12.2f}x")
            spread = ", ".join(f"{name} median {statistics.median(values):,.0f}/s" for name, values in runs.items())
            print(f"{'':<20}({spread})")
            goal = MODELS[template]
            if vs_course < goal:
                failures.append(f"{template}: engine/course {vs_course:.2f}x < {goal}x")
            if vs_hand < HAND_GOAL:
                failures.append(f"{template}: engine/hand {vs_hand:.2f}x < {HAND_GOAL}x")
    print("goals met" if not failures else "goals missed: " + "; ".join(failures))
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
