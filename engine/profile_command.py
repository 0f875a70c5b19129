"""`layerstudio profile`: measured memory and time per layer for one training step of a design (engine.profile).

The settings it reads are the run's own (batch size, device, optimizer and its momentum and AMSGrad), in the
layers `layerstudio train` reads them: the design file's "training" section, a ``--config`` file, then the flags,
each flag made from its setting's declaration. Prints a table that fits the terminal, the totals and one line
with the estimated peak and the time of a step; ``--json`` prints the rows and totals as one JSON object instead.
"""
from __future__ import annotations

import argparse
import json

from engine.train_command import add_setting_flags

PROFILE_SETTINGS = tuple(f"training.{name}" for name in ("batch_size", "device", "optimizer", "momentum", "amsgrad"))


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_flags(parser, only=PROFILE_SETTINGS)
    files = parser.add_argument_group("Files")
    files.add_argument("--config", metavar="RUN.json", help="a saved training configuration; flags override it")
    parser.add_argument("--json", action="store_true", help="print one JSON object (per-layer rows and totals)")


def run_profile(args: argparse.Namespace) -> int:
    """Profile the design and print the result."""
    from engine.cli import output_width
    from engine.profile import profile_design
    from engine.templates import load_design
    from engine.text import printable
    from engine.train_command import layered_settings
    from engine.training import TrainConfig

    spec, design = load_design(args.design)
    config = TrainConfig.from_dict(layered_settings(args, design)[0])
    profile = profile_design(spec, config.batch_size, config.device, config.optimizer, momentum=config.momentum,
                             amsgrad=config.amsgrad)
    title = design.get("name") or args.design
    if args.json:
        print(json.dumps({"design": title, **profile.to_dict()}, indent=2))
        return 0
    print("\n".join(profile_lines(profile, printable(title), output_width())))
    return 0


def profile_lines(profile, title: str, width: int) -> list[str]:
    """The title, the per-layer table (its Layer column wrapped to fit ``width``), the totals and the summary line."""
    from engine.cli import text_table, wrap
    from engine.memory import format_bytes

    totals = profile.totals
    lines = wrap(f"{title}: a training step with {profile.optimizer}, each time the median of "
                 f"{profile.repeats} steps", width)
    rows = [(str(r.index), milliseconds(r.forward_ms), milliseconds(r.backward_ms), format_bytes(r.saved_bytes),
             format_bytes(r.output_bytes), format_bytes(r.parameter_bytes), r.label) for r in profile.rows]
    lines += text_table(("#", "Forward", "Backward", "Saved", "Output", "Params", "Layer"), rows,
                        right={0, 1, 2, 3, 4, 5}, width=width)
    buffers = f" (buffers {format_bytes(totals.buffer_bytes)})" if totals.buffer_bytes else ""
    per = "value" if profile.optimizer_tensors == 1 else "values"
    figures = [
        ("Parameters", format_bytes(totals.parameter_bytes) + buffers),
        ("Gradients", format_bytes(totals.gradient_bytes)),
        ("Optimizer state", f"{format_bytes(totals.optimizer_bytes)} ({profile.optimizer}: "
                            f"{profile.optimizer_tensors} {per} per trainable parameter)"),
        ("Saved for backward", format_bytes(totals.saved_bytes)),
        ("Input batch", format_bytes(totals.input_bytes)),
        ("Peak, estimated", format_bytes(totals.peak_bytes)),
    ]
    if totals.measured_peak_bytes is not None:
        figures.append(("Peak, measured", format_bytes(totals.measured_peak_bytes)))
    if totals.largest_batch is not None:
        figures.append(("Largest batch", f"{totals.largest_batch:,} fits on this device"))
    figures.append(("Forward, backward", f"{milliseconds(totals.forward_ms)}, {milliseconds(totals.backward_ms)}"))
    lines += [f"{name + ':':<20}{value}" for name, value in figures]
    lines += wrap(f"Batch {profile.batch_size} on {profile.device_name}: {format_bytes(totals.peak_bytes)}, "
                  f"{milliseconds(totals.step_ms)} a step", width)
    return lines


def milliseconds(value: float) -> str:
    """0.08 ms, 4.12 ms, 123.4 ms, 1,234 ms."""
    if value < 10:
        return f"{value:.2f} ms"
    return f"{value:.1f} ms" if value < 1000 else f"{value:,.0f} ms"
