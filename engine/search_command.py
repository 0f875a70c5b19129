"""`layerstudio search`: search training settings and architecture with optuna (engine.search), a line per trial.

The settings every trial starts from come in the layers `layerstudio train` reads (the design's sections, --config,
flags; engine.train_command); the data is loaded once for all trials. With --storage the study is kept in a database
and several processes (on one machine with SQLite, on several with a server database) work on it together.
"""
from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from engine.cli import EXIT_INTERRUPTED
from engine.errors import SpecError, TrainingError
from engine.files import check_output_path, read_json_object, write_text_atomically
from engine.schema import settings_of
from engine.settings import SECTIONS
from engine.spec import DESIGN_SUFFIXES, MAX_DESIGN_BYTES
from engine.train_command import InterruptFlag, add_run_settings, announce_download, layered_settings, plural


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """The run's settings as `layerstudio train` takes them, then the search's budget, space, storage and output."""
    files = add_run_settings(parser)
    search = parser.add_argument_group("Search")
    search.add_argument("--trials", type=int, metavar="N", help="trials this process runs (with --storage, other "
                        "processes' trials come on top)")
    search.add_argument("--timeout", type=float, metavar="S", help="start no new trial after S seconds")
    search.add_argument("--objective", choices=("val_loss", "val_acc"), default="val_loss",
                        help="what the search improves: validation loss (lower) or accuracy (higher); "
                             "default val_loss")
    search.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median",
                        help="stop trials whose epoch results trail the others' (default median)")
    search.add_argument("--storage", metavar="URL", help="keep the study in this database, e.g. sqlite:///study.db "
                        "(a restart continues it; processes given the same URL share it)")
    search.add_argument("--study", metavar="NAME", help="the study's name in --storage (default: the design's name)")
    search.add_argument("--sampler-seed", type=int, metavar="N", help="seed of the sampler, for a repeatable search "
                        "(leave it out when several processes share a study)")
    files.add_argument("--space", metavar="SPACE.json", help="what to search and over which ranges (default: "
                       "learning rate, batch size and weight decay over their declared search ranges)")
    files.add_argument("--save-best", metavar="BEST.json", help="write the best trial's design and settings here")


def run_search(args: argparse.Namespace) -> int:
    """Search, print a line per trial and the best; returns the exit code (Ctrl-C: EXIT_INTERRUPTED)."""
    from engine import search as searching
    from engine.data import DataConfig, load_data
    from engine.templates import load_design

    spec, design = load_design(args.design)
    if args.trials is None and args.timeout is None:
        raise TrainingError("Say how long to search: give --trials N, --timeout S or both.")
    if args.trials is not None and args.trials < 1:
        raise TrainingError(f"--trials must be a whole number of at least 1, got {args.trials}.")
    if args.save_best:
        check_output_path(args.save_best, DESIGN_SUFFIXES, "--save-best file", SpecError)
    training, data_settings = layered_settings(args, design)
    space = read_space(args.space) if args.space else searching.default_space(spec, training)
    name = str(design.get("name") or Path(args.design).stem)
    study_name = args.study or (name if args.storage else None)
    data_config = DataConfig.from_dict(data_settings)
    announce_download(data_config)
    data = load_data(data_config)
    print(f"Data: {data.summary()}", flush=True)

    with InterruptFlag() as interrupted:
        budget = " and ".join(part for part in (args.trials and plural(args.trials, "trial"),
                                                args.timeout and f"{args.timeout:g} s") if part)
        print(f"Searching {', '.join(search_names(space)) or 'nothing (the space is empty)'} for the best "
              f"{searching.OBJECTIVE_WORDS[args.objective]}: {budget}", flush=True)
        study = searching.run_search(
            spec, name, training, data_config.to_dict(), space, trials=args.trials, timeout_s=args.timeout,
            storage=args.storage, study_name=study_name, objective=args.objective, pruner=args.pruner,
            on_trial=lambda result: print_trial(result, args.objective), should_stop=interrupted.is_set, data=data,
            seed=args.sampler_seed)
    results = [searching.trial_result(trial) for trial in study.get_trials(deepcopy=False)]
    where = f" in {args.storage}" if args.storage else ""
    counts = ", ".join(f"{sum(r.state == state for r in results)} {state}"
                       for state in ("complete", "pruned", "failed", "running"))
    print(f"Study {study.study_name!r}{where}: {plural(len(results), 'trial')} ({counts})", flush=True)
    complete = [r for r in results if r.state == "complete"]
    if complete:
        best = searching.trial_result(study.best_trial)
        value = searching.value_text(best.value, args.objective)
        print(f"Best: trial {best.number}, {value}: {params_text(best.values)}")
        print_best(args, spec, design, training, data_config.to_dict(), best)
    else:
        print("No trial has finished yet: nothing to compare.")
    if interrupted.is_set():
        again = " (the same command continues the study)" if args.storage else ""
        print(f"Interrupted{again}", flush=True)
        return EXIT_INTERRUPTED
    return 0


def search_names(space) -> list[str]:
    """What the space varies, in words: the settings' names and the knobs."""
    names = list(space.settings) + [knob for knob in ("width", "dropout") if getattr(space, knob) is not None]
    return names + [f"repeat of {group}" for group in space.repeat] + [f"{kind} layers" for kind in space.activation]


def read_space(path: str):
    from engine.search import SearchSpace

    return SearchSpace.from_dict(read_json_object(path, "search space", MAX_DESIGN_BYTES, TrainingError), path)


def print_trial(result, objective: str) -> None:
    """One line per finished trial (a running trial's reports print nothing: the epochs are short)."""
    from engine.search import value_text

    if result.state == "running":
        return
    parts = [f"Trial {result.number}: {result.state}"]
    if result.value is not None and result.state == "complete":
        parts.append(value_text(result.value, objective))
    parts.append(f"{plural(result.epoch, 'epoch')}, {result.duration_s or 0:.1f}s")
    line = ", ".join(parts) + f"; {params_text(result.values)}"
    if result.reason:
        line += f". {result.reason}"
    print(line, flush=True)


def params_text(values: dict) -> str:
    return ", ".join(f"{name} {value:.3g}" if isinstance(value, float) else f"{name} {value}"
                     for name, value in values.items()) or "the design's own settings"


def print_best(args, spec, design: dict, training: dict, data_settings: dict, best) -> None:
    """Write the best design (--save-best) or print the `layerstudio train` command that trains the best trial."""
    from engine.search import apply_params

    best_spec, best_training = apply_params(spec, training, best.params)
    if args.save_best:
        document = {**design, **best_spec.to_dict(), "training": best_training, "data": data_settings}
        write_text_atomically(args.save_best, json.dumps(document, indent=2) + "\n", "design", SpecError)
        print(f"Wrote the best design and settings to {args.save_best}; train it with: "
              f"layerstudio train {shlex.quote(args.save_best)}")
        return
    if best_spec != spec:
        print("The best trial changes the design: write it with --save-best BEST.json, then train it with: "
              "layerstudio train BEST.json")
        return
    print("Train it with: " + shlex.join(["layerstudio", "train", args.design, *train_flags(args, best.values)]))


def train_flags(args: argparse.Namespace, values: dict) -> list[str]:
    """The flags of `layerstudio train` that give the data and settings this search started from, with the best
    trial's ``values`` in place of the settings it drew."""
    flags = []
    for flag, given in (("--data", args.data), ("--config", args.config)):
        if given:
            flags += [flag, given]
    for section, cls in SECTIONS.items():
        for declared in settings_of(cls):
            given = getattr(args, f"{section}.{declared.name}", None)
            value = values.get(declared.name, given) if section == "training" else given
            if value is None or not declared.cli_flag:
                continue
            if isinstance(value, bool):
                flags.append(declared.cli_flag if value else "--no-" + declared.cli_flag[2:])
            else:
                flags += [declared.cli_flag, f"{value:.6g}" if isinstance(value, float) else str(value)]
    return flags
