"""The engine's learning-rate finder beside an independent implementation, torch-lr-finder (PyPI
``torch-lr-finder``, David Silva's port of fastai's range test; ``pip install -e .[bench]``).

For each template both sweep the same model (built from the template with the same seed and initialisation,
so the weights are equal), with the same optimizer (``make_optimizer`` from the same TrainConfig), the same
loss, the same lr range (1e-7 to 10) and number of steps (100), on the same training batches in the same order
(the bundled MNIST sample via ``engine.data.load_data``, given to torch-lr-finder as a DataLoader whose batch
sampler draws the Trainer's seeded permutation epoch after epoch). On a CPU the raw losses of the two are then
the same step for step (the script prints the largest difference), so what differs is each finder's own rule:

- engine: a bias-corrected moving average (weight of the past 0.95), stop when the smoothed loss passes 4x its
  best, steepest descent of the smoothed loss (its slope measured 5 steps either side) between the end of the
  first tenth and its lowest point;
- torch-lr-finder (its defaults): ``smoothed = 0.05 * loss + 0.95 * previous``, stop past 5x the best, and its
  ``plot(suggest_lr=True)`` rule: the most negative ``np.gradient`` of the smoothed loss with the first 10 and
  the last 5 points left out. The suggestion is taken from ``plot`` itself (matplotlib, which torch-lr-finder
  requires, drawing off screen with the Agg backend).

It prints both suggestions, their ratio and whether they agree within a factor of 3; ``--smoothing 0.98`` adds
a column with the engine's suggestion at another smoothing (0.98 is fastai's), to see what that choice moves;
``--shuffle`` gives torch-lr-finder a plain ``DataLoader(shuffle=True)`` (other batches, so the two curves differ
by batch noise and the dropout draws no longer line up: an agreement then measures how steady the method is).
Exit code 1 when a template disagrees by more than 3x.

    python benchmarks/lr_find_compare.py [--templates softmax-regression,mlp,lenet,cnn] [--steps 100]
                                         [--threads N] [--smoothing S] [--shuffle]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time

from engine.openmp import use_passive_wait

use_passive_wait()  # before torch loads, as in the app
os.environ.setdefault("TQDM_DISABLE", "1")  # torch-lr-finder's progress bar

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # torch-lr-finder's plot(), which makes its suggestion, draws off screen

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Sampler, TensorDataset  # noqa: E402
from torch_lr_finder import LRFinder  # noqa: E402

from engine.build import build_model  # noqa: E402
from engine.data import DataConfig, load_data  # noqa: E402
from engine.shapes import analyze  # noqa: E402
from engine.templates import load_template  # noqa: E402
from engine.training import Objective, TrainConfig, initialize_weights, make_optimizer  # noqa: E402
from engine.training.lr_finder import find_learning_rate  # noqa: E402

TEMPLATES = ("softmax-regression", "mlp", "lenet", "cnn")
START_LR, END_LR = 1e-7, 10.0
AGREEMENT = 3.0  # the suggestions should agree within this factor
TLF_SMOOTHING, TLF_DIVERGE = 0.05, 5.0  # torch-lr-finder's defaults (its smooth_f is the weight of the new loss)


class TrainerOrder(Sampler):
    """Batches of indices in the Trainer's order: a permutation from a generator seeded with the run's seed,
    drawn anew each epoch, cut into batch_size pieces (the last one shorter)."""

    def __init__(self, samples: int, batch_size: int, seed: int):
        self.samples, self.batch_size = samples, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        perm = torch.randperm(self.samples, generator=self.generator)
        return iter(perm[start:start + self.batch_size].tolist() for start in range(0, self.samples, self.batch_size))

    def __len__(self) -> int:
        return -(-self.samples // self.batch_size)


def torch_lr_finder(spec, data, config: TrainConfig, steps: int,
                    shuffle: bool) -> tuple[float, list[float], list[float]]:
    """torch-lr-finder's suggestion, its lrs and its smoothed losses, on the engine's model, optimizer and batches."""
    torch.manual_seed(config.seed)  # as the Trainer builds its model: seeded, then initialised from the config
    model = build_model(spec)
    initialize_weights(model, config)
    device = torch.device("cpu")
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], config, device)
    objective = Objective.for_data(spec, analyze(spec).output_shape, data, config)
    samples = TensorDataset(data.train_x, data.train_y)
    if shuffle:
        loader = DataLoader(samples, batch_size=config.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(config.seed + 1))
    else:  # its own generator: a DataLoader otherwise draws a seed from the global RNG, which dropout draws from
        loader = DataLoader(samples, generator=torch.Generator(),
                            batch_sampler=TrainerOrder(len(data.train_x), config.batch_size, config.seed))
    finder = LRFinder(model, optimizer, objective.loss, device=device)
    figure, ax = plt.subplots()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Stopping early..." and "Suggested LR: ..."
        finder.range_test(loader, start_lr=START_LR, end_lr=END_LR, num_iter=steps, step_mode="exp",
                          smooth_f=TLF_SMOOTHING, diverge_th=TLF_DIVERGE)
        _, suggestion = finder.plot(ax=ax, suggest_lr=True)
    plt.close(figure)
    return float(suggestion), list(finder.history["lr"]), list(finder.history["loss"])


def raw_losses(smoothed: list[float]) -> list[float]:
    """torch-lr-finder's raw batch losses, recovered from its smoothed history."""
    raw = smoothed[:1]
    for before, now in zip(smoothed, smoothed[1:], strict=False):
        raw.append((now - (1 - TLF_SMOOTHING) * before) / TLF_SMOOTHING)
    return raw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", default=",".join(TEMPLATES))
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--shuffle", action="store_true",
                        help="give torch-lr-finder its own shuffled batches instead of the engine's order")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--smoothing", type=float,
                        help="also run the engine with this smoothing (0.98: fastai's) and show its suggestion")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_data(DataConfig())
    config = TrainConfig(device="cpu")  # Adam, batch size 64, seed 0: what a run of these templates uses
    print(f"{data.summary()}; {config.optimizer}, batch size {config.batch_size}, lr {START_LR:g} to {END_LR:g} "
          f"over {args.steps} steps, torch {torch.__version__}, {torch.get_num_threads()} threads; torch-lr-finder "
          f"on {'its own shuffled batches' if args.shuffle else 'the same batches'}")
    header = f"{'template':<20}{'engine':>10}{'torch-lr-finder':>17}{'ratio':>8}  {'within 3x':<10}{'steps':>11}"
    header += f"{'max raw diff':>14}" + (f"{f'at {args.smoothing:g}':>10}{'ratio':>8}" if args.smoothing else "")
    print(header)
    disagreements = 0
    for template in args.templates.split(","):
        spec = load_template(template)
        started = time.perf_counter()
        ours = find_learning_rate(spec, data, config, START_LR, END_LR, args.steps)
        theirs, lrs, smoothed = torch_lr_finder(spec, data, config, args.steps, args.shuffle)
        if ours.suggestion is None:
            print(f"{template:<20}no suggestion: {ours.problem}")
            disagreements += 1
            continue
        ratio = max(ours.suggestion, theirs) / min(ours.suggestion, theirs)
        agree = ratio <= AGREEMENT
        disagreements += not agree
        common = min(len(ours.losses), len(lrs))
        diff = max(abs(a - b) / abs(b) for a, b in zip(ours.losses[:common], raw_losses(smoothed)[:common],
                                                       strict=True))
        line = (f"{template:<20}{ours.suggestion:>10.3g}{theirs:>17.3g}{ratio:>8.2f}  {'yes' if agree else 'NO':<10}"
                f"{f'{len(ours.lrs)}/{len(lrs)}':>11}{diff:>14.1e}")
        if args.smoothing:
            other = find_learning_rate(spec, data, config, START_LR, END_LR, args.steps,
                                       smoothing=args.smoothing).suggestion
            line += (f"{other:>10.3g}{max(other, theirs) / min(other, theirs):>8.2f}" if other
                     else f"{'none':>10}{'':>8}")
        print(line + f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    print("steps: where each sweep stopped (engine / torch-lr-finder); max raw diff: the largest relative difference "
          "of the raw batch losses over the steps both took")
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
