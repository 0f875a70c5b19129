"""`layerstudio runs list|show ID|compare ID ID|export ID FILE`: the run history (engine.history) from a terminal."""
from __future__ import annotations

import argparse
import json

from engine.cli import output_width, text_table, wrap
from engine.history import SORT_COLUMNS, HistoryError, RunHistory, RunRecord, RunSummary
from engine.text import MISSING, duration_text, percent_text, printable

DEFAULT_LIMIT = 20


def add_runs_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommands of `layerstudio runs`, each taking ``--history FILE``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--history", metavar="FILE",
                        help="the run history file (default: runs.sqlite3 in the LayerStudio data folder)")
    sub = parser.add_subparsers(dest="runs_command", required=True, metavar="{list,show,compare,export}")
    p = sub.add_parser("list", parents=[common], help="a table of the recorded runs, newest first")
    p.add_argument("--sort", default="started", choices=SORT_COLUMNS, metavar="FIELD",
                   help=f"the column to sort by: {', '.join(SORT_COLUMNS)} (default started)")
    p.add_argument("--ascending", action="store_true", help="smallest (or oldest) first")
    p.add_argument("--filter", default="", metavar="TEXT",
                   help="only runs whose design name, data, optimizer or finish reason contains TEXT")
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
                   help=f"show at most N runs (default {DEFAULT_LIMIT}; 0 shows all)")
    p = sub.add_parser("show", parents=[common], help="one run: its summary, settings and per-epoch metrics")
    p.add_argument("id", type=int, help="the run's id (the first column of `layerstudio runs list`)")
    p = sub.add_parser("compare", parents=[common],
                       help="what differs between two runs: layers added, removed and changed, and settings")
    p.add_argument("id", type=int, nargs=2, help="the two runs' ids")
    p = sub.add_parser("export", parents=[common],
                       help="write a run's design, with its training and data settings, as a design file")
    p.add_argument("id", type=int, help="the run's id")
    p.add_argument("file", metavar="FILE.json", help="the design file to write")
    p.add_argument("--force", action="store_true", help="replace FILE.json if it exists")


def run_runs(args: argparse.Namespace) -> int:
    history = RunHistory(args.history) if args.history else RunHistory()
    return {"list": _list, "show": _show, "compare": _compare, "export": _export}[args.runs_command](history, args)


def _get(history: RunHistory, run_id: int) -> RunRecord:
    try:
        return history.get(run_id)
    except KeyError:
        raise HistoryError(f"There is no run {run_id} in the run history: `layerstudio runs list` shows the "
                           "runs' ids.") from None


# --------------------------------------------------------------------------- figures

def figure(value) -> str:
    """A setting's value as a person reads it: ``0.001``, ``on``, ``1,000``, ``[0.5, 0.5]``."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def signed(value: int | None) -> str:
    return MISSING if value is None else f"{value:+,}"


def when(started: str) -> str:
    """``2026-12-01 23:48`` from the stored ISO time."""
    return started[:16].replace("T", " ")


def outcome(run: RunSummary) -> str:
    return run.reason.replace("_", " ") if run.reason else "running or ended without a word"


# --------------------------------------------------------------------------- list

def _list(history: RunHistory, args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise HistoryError(f"--limit must be 0 (all) or more, got {args.limit}.")
    total = history.count(args.filter)
    if not total:
        print(f"No runs match {args.filter!r}." if args.filter and history.count() else
              "No runs recorded yet: each `layerstudio train` run and each run from the window appears here.")
        return 0
    runs = history.list(args.filter, args.sort, not args.ascending, args.limit or total)
    rows = [(str(r.id), when(r.started), r.name, r.data, r.optimizer, f"{r.lr:.3g}", str(r.batch_size),
             f"{r.epochs_done}/{r.epochs}", percent_text(r.best_val_acc), percent_text(r.test_acc),
             duration_text(r.duration_s), outcome(r)) for r in runs]
    header = ("ID", "Started", "Design", "Data", "Optimizer", "LR", "Batch", "Epochs", "Best val", "Test acc",
              "Duration", "Reason")
    print("\n".join(text_table(header, rows, right={0, 5, 6, 7, 8, 9, 10}, width=output_width(), squeeze=2)))
    if len(runs) < total:
        print(f"Showing {len(runs)} of {total:,} runs: --limit N shows more, --limit 0 all of them.")
    return 0


# --------------------------------------------------------------------------- show

def _show(history: RunHistory, args: argparse.Namespace) -> int:
    record = _get(history, args.id)
    run = record.summary
    width = output_width()
    lines = [f"Run {run.id}: {run.name} on {run.data or MISSING}, started {when(run.started)}"
             + (f" on {run.device}" if run.device else ""),
             f"Finished: {outcome(run)} after {run.epochs_done} of {run.epochs} epochs in "
             f"{duration_text(run.duration_s)}"
             + (f": {run.message}" if run.message else ""),
             f"Best val acc {percent_text(run.best_val_acc)}  test acc {percent_text(run.test_acc)}  test loss "
             f"{figure(run.test_loss)}  parameters {figure(run.params)}"]
    for what, path in (("Weights", record.weights_path), ("Checkpoint", record.checkpoint_path)):
        if path:
            lines.append(f"{what}: {path}")
    for line in lines:
        print("\n".join(wrap(printable(line), width)))
    for title, settings in (("Training settings", record.training), ("Data settings", record.data_settings)):
        print(f"\n{title}:")
        print("\n".join(text_table(("Setting", "Value"), [(key, figure(value)) for key, value in
                                                          sorted(settings.items())], width=width)))
    print("\nEpochs:" if record.epochs else "\nNo epoch finished.")
    if record.epochs:
        rows = [(str(e["epoch"]), figure(e["train_loss"]), percent_text(e["train_acc"]), figure(e["val_loss"]),
                 percent_text(e["val_acc"]), f"{e['lr']:.3g}", duration_text(e["seconds"])) for e in record.epochs]
        print("\n".join(text_table(("Epoch", "Train loss", "Train acc", "Val loss", "Val acc", "LR", "Time"), rows,
                                   right=set(range(7)))))
    return 0


# --------------------------------------------------------------------------- compare

def _spec(record: RunRecord):
    from engine.spec import NetworkSpec

    return NetworkSpec.from_dict(record.design)


def _fields_changed(before: dict, after: dict) -> str:
    """``out_features 512 -> 128; frozen off -> on``: the settings of one layer that differ."""
    from engine.design_diff import diff_settings

    return "; ".join(f"{key.removeprefix('params.')} {figure(a)} -> {figure(b)}"
                     for key, a, b in diff_settings(before, after))


def _compare(history: RunHistory, args: argparse.Namespace) -> int:
    from engine.design_diff import diff_designs, diff_settings

    first, second = (_get(history, run_id) for run_id in args.id)
    a, b = first.summary, second.summary
    width = output_width()
    print(printable(f"Run {a.id} ({a.name}, {when(a.started)}) -> run {b.id} ({b.name}, {when(b.started)})"))
    results = [("Reason", outcome(a), outcome(b)), ("Epochs done", str(a.epochs_done), str(b.epochs_done)),
               ("Best val acc", percent_text(a.best_val_acc), percent_text(b.best_val_acc)),
               ("Test acc", percent_text(a.test_acc), percent_text(b.test_acc)),
               ("Test loss", figure(a.test_loss), figure(b.test_loss)),
               ("Duration", duration_text(a.duration_s), duration_text(b.duration_s))]
    print("\n".join(text_table(("", f"Run {a.id}", f"Run {b.id}"), results)))

    diff = diff_designs(_spec(first), _spec(second))
    print(f"\nDesign: parameters {signed(diff.params_delta)}, MACs {signed(diff.macs_delta)}"
          + ("; the same layers" if diff.same else ""))
    rows = [("+", c.path, f"{c.kind} ({c.layer_id})", signed(c.params_delta), signed(c.macs_delta), "added")
            for c in diff.added]
    rows += [("-", c.path, f"{c.kind} ({c.layer_id})", signed(c.params_delta), signed(c.macs_delta), "removed")
             for c in diff.removed]
    rows += [("~", c.path, f"{c.kind} ({c.layer_id})", signed(c.params_delta), signed(c.macs_delta),
              _fields_changed(c.before or {}, c.after or {})) for c in diff.changed]
    if rows:
        print("\n".join(text_table(("", "#", "Layer", "Params", "MACs", "Change"), rows, right={3, 4}, width=width,
                                   squeeze=2)))

    settings = diff_settings({"training": first.training, "data": first.data_settings},
                             {"training": second.training, "data": second.data_settings})
    print("\nSettings: " + ("the same" if not settings else f"{len(settings)} differ"))
    if settings:
        print("\n".join(text_table(("Setting", f"Run {a.id}", f"Run {b.id}"),
                                   [(key, figure(x), figure(y)) for key, x, y in settings], width=width)))
    return 0


# --------------------------------------------------------------------------- export

def _export(history: RunHistory, args: argparse.Namespace) -> int:
    from engine.errors import SpecError
    from engine.files import check_output_path, write_text_atomically
    from engine.spec import DESIGN_SUFFIXES

    target = check_output_path(args.file, DESIGN_SUFFIXES, "design file", SpecError)
    if target.exists() and not args.force:
        raise SpecError(f"{args.file} exists: give --force to replace it, or choose another name.")
    record = _get(history, args.id)
    design = {**record.design, "training": record.training, "data": record.data_settings}
    write_text_atomically(target, json.dumps(design, indent=2) + "\n", "design file", SpecError)
    print(printable(f"Wrote {args.file}: the design of run {args.id} ({record.summary.name}) with its training and "
                    f"data settings; train it again with: layerstudio train {args.file}"))
    return 0
