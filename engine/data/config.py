"""Which data to train on: ``DataConfig`` (a design file's "data" section), its validation and ``--data``.

Every numeric setting has its range in ``SETTING_RANGES``; a source is one the registry
(engine.data.sources) holds. User mistakes raise ``DataError`` with a sentence saying what to do.
Imports no torch: the window and the command line read and check settings before torch loads.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from engine.data.sources import SOURCES
from engine.errors import DataError
from engine.ranges import SettingRange, shown_value

TASKS = ("auto", "classification", "regression", "reconstruction")


@dataclass
class DataConfig:
    """Which data to train on and how to prepare it; a design file's "data" section.

    ``image_size``: side length image-folder pictures are resized to; the built-in image datasets
    (MNIST sample, MNIST, Fashion-MNIST, CIFAR-10) are only ever *enlarged* to it (D2L's ``resize=``
    for AlexNet/VGG at 224), never shrunk, and per batch (they are held at their own size).
    ``grayscale`` applies to image folders.
    ``label_column``: the CSV target column (several, comma-separated, for multi-output regression).
    ``limit``: use at most this many samples of the source's training set (before the validation
    split; tests and quick runs). ``normalize`` is ignored for synthetic regression (the model should
    recover w and b as given) and for reconstruction (the target is the input in [0, 1], which a
    Sigmoid output can match). ``stream``: keep the training split as a lazily read Dataset.
    """

    source: str = "mnist-sample"
    root: str = ""
    download: bool = False
    task: str = "auto"
    image_size: int = 28
    grayscale: bool = True
    label_column: str = "label"
    weights: tuple[float, ...] = (2.0, -3.4)
    bias: float = 4.2
    samples: int = 1000
    noise: float = 0.01
    val_fraction: float = 0.1
    seed: int = 0
    normalize: bool = True
    augment_crop_padding: int = 0
    augment_hflip: bool = False
    limit: int = 0
    stream: bool = False

    def __post_init__(self):
        self.weights = tuple(self.weights)

    def to_dict(self) -> dict:
        """Plain JSON data (lists, numbers, strings)."""
        data = asdict(self)
        data["weights"] = list(self.weights)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> DataConfig:
        """Read a "data" section; missing fields take defaults, anything wrong raises DataError."""
        if not isinstance(data, dict):
            raise DataError(f"The data settings must be a JSON object, got {type(data).__name__}.")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise DataError(f"Unknown data setting {unknown[0]!r}: remove it (known settings: {', '.join(known)}).")
        defaults = cls()
        values = {name: _coerce_setting(name, value, getattr(defaults, name)) for name, value in data.items()}
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise DataError naming the first setting that is out of range (see SETTING_RANGES)."""
        if self.source not in SOURCES:
            raise DataError(f"Unknown data source {self.source!r}: choose one of {', '.join(SOURCES)}.")
        if self.task not in TASKS:
            raise DataError(f"Unknown task {self.task!r}: choose one of {', '.join(TASKS)}.")
        if not self.label_column.strip():
            raise DataError("Bad data setting: label_column must name the CSV column holding the targets.")
        for name, allowed in SETTING_RANGES.items():
            value = getattr(self, name)
            if not allowed.holds(value):
                raise DataError(f"Bad data setting: {name} must be {allowed.text(value)}, got {shown_value(value)}.")


# The accepted range of every numeric data setting: one table, read by DataConfig.validate (and by the
# documentation). Anything outside is refused with a sentence before it reaches torch; within it the
# memory check (engine.memory) still refuses what cannot fit in this computer's memory.
MAX_SAMPLES = 10**12
SETTING_RANGES: dict[str, SettingRange] = {
    "image_size": SettingRange(1, 4096, "pixels"),
    "samples": SettingRange(2, MAX_SAMPLES),
    "limit": SettingRange(0, MAX_SAMPLES, hint="0 uses every sample"),
    "val_fraction": SettingRange(0.0, 1.0, hint="e.g. 0.1 for 10%", high_open=True),
    "weights": SettingRange(-1e6, 1e6, hint="one per input feature", items=(1, 100_000)),
    "bias": SettingRange(-1e6, 1e6),
    "noise": SettingRange(0.0, 1e6),
    "augment_crop_padding": SettingRange(0, 128, "pixels"),
    "seed": SettingRange(0, 2**63 - 1),
}


def _coerce_setting(name: str, value: Any, default: Any) -> Any:
    """Check one JSON value against the type of the setting's default."""
    def bad(expected: str) -> DataError:
        return DataError(f"Data setting {name!r} must be {expected}, got {json.dumps(value, default=repr)}.")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("a whole number")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return _as_float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    # weights: a list of numbers
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise bad("a list of numbers")
    return tuple(_as_float(v) for v in value)


def _as_float(value: int | float) -> float:
    """A float; a whole number too large for one becomes infinity, which the range check then refuses."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def data_arg_forms() -> list[str]:
    """How ``--data`` names each source: ``mnist-sample`` (no files), ``mnist[:ROOT]`` (ROOT optional: the data
    folder), ``folder:PATH`` (a path needed); in the registry's order."""
    return [f"{source.name}[:ROOT]" if source.download else f"{source.name}:PATH" if source.root else source.name
            for source in SOURCES.values()]


def parse_data_arg(text: str) -> DataConfig:
    """The CLI's ``--data`` value, one of ``data_arg_forms()`` (e.g. ``mnist-sample``, ``cifar10[:ROOT]``,
    ``csv:PATH``); ROOT defaults to the data folder for a source that downloads."""
    name, sep, root = text.partition(":")
    source = SOURCES.get(name)
    if source is None:
        raise DataError(f"Unknown --data {text!r}: use one of {', '.join(data_arg_forms())}.")
    if source.needs_root and not root:
        raise DataError(f"--data {name} needs a path: write {name}:PATH (e.g. {name}:~/data).")
    if not source.root and sep:
        raise DataError(f"--data {name} takes no path: write just {name}.")
    return DataConfig(source=name, root=root)
