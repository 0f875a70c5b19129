"""How long does `layerstudio profile` take, next to the training step it measures?

Times ``engine.profile.profile_design`` on the resnet18 template (3x32x32, 11.2M parameters) at batch 64 on the
CPU, beside one plain training step of the same model (the same loss and optimizer, no hooks, warmed up; the
two interleaved, so a busy machine slows both alike), and prints the ratio. The profile builds the model, runs
one warm-up step that counts the saved tensors, then REPEATS timed steps with hooks on every layer: it should
cost about REPEATS + 1 steps. Beside torchinfo's summary of the same model when torchinfo is installed (a
forward pass only, with no time or saved-tensor figures).

Run: python benchmarks/profile_speed.py [--template resnet18] [--batch-size 64] [--rounds 2]
"""
from __future__ import annotations

import argparse
import statistics
import time

from engine.openmp import use_passive_wait

use_passive_wait()  # before torch loads, as in the app

import torch  # noqa: E402

from engine.build import build_model  # noqa: E402
from engine.memory import format_bytes  # noqa: E402
from engine.profile import REPEATS, TrainingStep, profile_design  # noqa: E402
from engine.templates import load_template  # noqa: E402
from engine.training import TrainConfig  # noqa: E402

CPU = torch.device("cpu")
PLAIN_STEPS = 3   # per round


def plain_step(spec, batch: int) -> TrainingStep:
    """The profile's training step (the same loss and optimizer) without any hooks, warmed up."""
    step = TrainingStep(build_model(spec), spec, TrainConfig(), CPU)
    step(batch)
    return step


def seconds(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def time_torchinfo(spec, batch: int) -> float | None:
    try:
        import torchinfo
    except ImportError:
        return None
    model = build_model(spec)
    started = time.perf_counter()
    torchinfo.summary(model, input_size=(batch, *spec.input_shape), verbose=0)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="whole profiles to time (the median is shown)")
    args = parser.parse_args()
    spec, batch = load_template(args.template), args.batch_size
    step = plain_step(spec, batch)
    plain, whole, profiles = [], [], []
    for _ in range(args.rounds):  # interleaved, so a busy machine slows both alike
        plain += [seconds(lambda: step(batch)) for _ in range(PLAIN_STEPS)]
        whole.append(seconds(lambda: profiles.append(profile_design(spec, batch, "cpu"))))
    profile = profiles[-1]
    plain_s, whole_s = statistics.median(plain), statistics.median(whole)
    print(f"{args.template} at batch {batch} on {profile.device_name}, torch {torch.__version__}")
    rows = [(f"one plain training step (median of {len(plain)})", plain_s, ""),
            (f"profile_design (median of {args.rounds}: warm-up + {REPEATS} timed)", whole_s,
             f"= {whole_s / plain_s:.1f} plain steps"),
            ("its own step, with hooks (median)", profile.totals.step_ms / 1000,
             f"= {profile.totals.step_ms / 1000 / plain_s:.2f}x a plain step")]
    torchinfo_s = time_torchinfo(spec, batch)
    if torchinfo_s is not None:
        rows.append(("torchinfo.summary (a forward pass only)", torchinfo_s,
                     f"profile = {whole_s / torchinfo_s:.1f}x this"))
    for label, value, note in rows:
        print(f"  {label:<52} {1000 * value:10.1f} ms   {note}".rstrip())
    if torchinfo_s is None:
        print("  torchinfo.summary: torchinfo is not installed")
    print(f"  estimated peak {format_bytes(profile.totals.peak_bytes)}, "
          f"saved for backward {format_bytes(profile.totals.saved_bytes)}")


if __name__ == "__main__":
    main()
