"""`layerstudio predict`: classify image files (or rows of numbers) with trained weights, headless.

The data settings come in the same layers as for `layerstudio train` (the design's "data" section,
``--config``, ``--data``, ``--limit``): the data is loaded to read its normalisation statistics and
class names, so an input is prepared exactly like the samples the weights were trained on.
"""
from __future__ import annotations

import argparse
import json
import sys

DEFAULT_TOP = 3


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files; for tabular data, rows of numbers such as 1.5,2,0.3 "
                             "(put -- before a row that starts with a minus sign)")
    add_trained_model_arguments(parser)
    parser.add_argument("--top", type=int, default=DEFAULT_TOP, metavar="K",
                        help=f"how many classes to list per input (default {DEFAULT_TOP})")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of lines")


def add_trained_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that name trained weights and the data they were trained on (read by ``trained_model``)."""
    parser.add_argument("--weights", required=True, metavar="WEIGHTS",
                        help="the trained state_dict (.pt or .safetensors, or a checkpoint)")
    parser.add_argument("--data", metavar="SOURCE",
                        help="the data the weights were trained on, as for train (default: the design's own)")
    parser.add_argument("--config", metavar="RUN.json", help="a saved training configuration with a data section")
    parser.add_argument("--limit", dest="data.limit", type=int, metavar="N",
                        help="the --limit the weights were trained with")


def trained_model(args: argparse.Namespace):
    """(spec, model with the --weights loaded, the DataBundle they were trained on, TrainConfig), the settings
    layered as for `layerstudio train`; weights that do not fit the design are refused before the data loads."""
    from engine.build import build_model
    from engine.data import DataConfig, load_data
    from engine.io import load_weights
    from engine.templates import load_design
    from engine.train_command import layered_settings
    from engine.training import TrainConfig

    spec, design = load_design(args.design)
    training, data_settings = layered_settings(args, design)
    config = TrainConfig.from_dict(training)
    model = build_model(spec)
    load_weights(model, args.weights, spec)
    return spec, model, load_data(DataConfig.from_dict(data_settings)), config


def run_predict(args: argparse.Namespace) -> int:
    """Print one line (or JSON object) per input; exit 1 when any input could not be read."""
    from engine.cli import error_line
    from engine.errors import TrainingError
    from engine.predict import Predictor, predict_inputs

    if args.top < 1:
        raise TrainingError(f"--top must be 1 or more, got {args.top}")
    predictor = Predictor(*trained_model(args))

    failures: list[dict] = []

    def failed(text: str, sentence: str) -> None:
        failures.append({"input": text, "error": sentence})
        if not args.json:
            print(error_line(sentence), file=sys.stderr)

    results = predict_inputs(predictor, args.inputs, failed)
    if args.json:
        print(json.dumps([result.to_dict() for result in results] + failures, indent=2))
    else:
        for result in results:
            print(prediction_line(result, args.top))
    return 1 if failures else 0


def prediction_line(result, top: int) -> str:
    """``seven.png: 7 (7 98.1%, 1 1.2%, 9 0.4%)``; for regression ``1.5,2: y 3.14``."""
    if not result.classification:
        return f"{result.source}: " + ", ".join(f"{name} {value:.6g}" for name, value in
                                                 zip(result.names, result.scores, strict=True))
    ranked = ", ".join(f"{name} {100 * p:.1f}%" for name, p in result.top(top))
    return f"{result.source}: {result.label} ({ranked})"
