"""Datasets as tensors: every source ends as CPU tensors plus what a trainer and a view need to know.

Sources: the bundled MNIST sample, torchvision's MNIST / FashionMNIST / CIFAR10 from a folder the
user picks, an image folder (one subfolder per class), a CSV table and synthetic linear regression.
``load_data(config)`` returns a ``DataBundle`` whose training, validation and test tensors are already
split (seeded), converted to float32 and normalised with *training* statistics; the trainer moves
them to its device once and cuts batches by indexing. The built-in image datasets stay at their own size
and are enlarged to a larger image_size per batch (``DataBundle.model_inputs``, see engine.enlarge);
``augment_batch`` is applied per training batch, at the size the model takes, on whatever device the
batch lives.

Streaming: with ``DataConfig.stream`` the training split is a ``torch.utils.data.Dataset`` in
``DataBundle.train_dataset`` (``train_x``/``train_y`` are then empty) for data that does not fit in
memory; ``DataBundle.train_loader(batch_size)`` wraps it in a shuffling ``DataLoader`` whose batches
look exactly like slices of ``train_x``/``train_y``. Validation and test stay tensors.

Decoded torchvision datasets and image folders are cached under ``cache_dir()`` (one tensor file per
source and folder, keyed by the files' modification times), so the second load skips decoding.

User mistakes (missing files, bad cells, impossible settings, a single class, data too large for the
free memory: see ``engine.memory``) raise ``DataError`` with a sentence saying what to do; what was left
out but need not stop training (unreadable pictures, files that are not pictures, classes without
training samples) is named in ``DataBundle.notes``. Every numeric setting has its range in
``SETTING_RANGES``. Loading reports through an ``engine.task.Task``: a stop request ends it with
``Cancelled`` (downloads and cache files leave nothing half-written behind).
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import math
import os
import pickle
import shutil
import socket
import struct
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from engine.controls import control
from engine.downloads import DOWNLOADS, dataset_root
from engine.enlarge import enlarge, enlarged_moments
from engine.errors import DataError
from engine.files import write_atomically
from engine.paths import cache_dir
from engine.ranges import SettingRange, shown_value
from engine.shapes import format_shape
from engine.task import Progress, Task

SOURCES = {
    "mnist-sample": "MNIST sample",
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "folder": "Image folder",
    "csv": "CSV table",
    "synthetic-regression": "Synthetic regression",
}
TASKS = ("auto", "classification", "regression", "reconstruction")
SOURCES_WITH_ROOT = ("mnist", "fashion-mnist", "cifar10", "folder", "csv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
DIGIT_NAMES = [str(digit) for digit in range(10)]
# Sources of handwritten digits: a mirrored 2 or 7 is no digit, so a random horizontal flip only teaches noise.
DIGIT_SOURCES = frozenset({"mnist-sample", "mnist"})
# The built-in image datasets' own side length; image_size only ever enlarges them, per batch (see _enlarge_to).
NATIVE_IMAGE_SIZES = {"mnist-sample": 28, "mnist": 28, "fashion-mnist": 28, "cifar10": 32}
# CSV labels that are whole numbers with at most this many distinct values are class labels.
MAX_INTEGER_CLASSES = 20
# CSV label cells that mean "no value" (compared in lower case; pandas' defaults, less the exotic ones).
MISSING_LABELS = frozenset({"", "nan", "-nan", "na", "n/a", "#n/a", "null", "none", "<na>"})
CSV_ROWS_PER_REPORT = 4096
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Normalisation statistics of a streamed image folder come from this many training images.
STREAM_STATS_SAMPLES = 1000
CACHE_FORMAT = "layerstudio.data-cache"
CACHE_VERSION = 1
WRITE_PIECE = 16 << 20  # cache files are written in pieces this large, so a stop request is honoured quickly
_PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, KeyError, ValueError)
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- configuration

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


def parse_data_arg(text: str) -> DataConfig:
    """The CLI's ``--data`` value: ``mnist-sample``, ``mnist[:ROOT]``, ``fashion-mnist[:ROOT]``,
    ``cifar10[:ROOT]`` (ROOT defaults to the data folder), ``folder:PATH``, ``csv:PATH`` or ``synthetic-regression``."""
    source, sep, root = text.partition(":")
    forms = ("mnist-sample, mnist[:ROOT], fashion-mnist[:ROOT], cifar10[:ROOT], folder:PATH, csv:PATH, "
             "synthetic-regression")
    if source not in SOURCES:
        raise DataError(f"Unknown --data {text!r}: use one of {forms}.")
    if source in SOURCES_WITH_ROOT and source not in DOWNLOADS and not root:
        raise DataError(f"--data {source} needs a path: write {source}:PATH (e.g. {source}:~/data).")
    if source not in SOURCES_WITH_ROOT and sep:
        raise DataError(f"--data {source} takes no path: write just {source}.")
    return DataConfig(source=source, root=root)


# --------------------------------------------------------------------------- the bundle

@dataclass(frozen=True)
class Augment:
    """Training-time augmentation: random crop after zero padding, random horizontal flip."""

    crop_padding: int = 0
    hflip: bool = False

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.hflip


@dataclass
class DataBundle:
    """Ready-to-train data: CPU float32 inputs, int64 class labels or float (N, k) targets.

    ``input_shape`` is one sample as the model takes it. Built-in images enlarged to a larger image_size are
    stored at their own size and enlarged to ``enlarge_to`` x ``enlarge_to`` per batch: whatever feeds
    stored samples to a model passes them through ``model_inputs`` (0: stored as the model takes them).
    For reconstruction ``*_y`` is the same tensor as ``*_x``. Empty validation/test splits are
    tensors with zero rows. When ``train_dataset`` is set (streaming) ``train_x``/``train_y`` are
    empty and the training samples come from ``train_loader``. ``notes`` are sentences the user should
    read before training (the CLI prints them, the window shows them under the data summary).
    """

    name: str
    task: str
    input_shape: tuple[int, ...]
    num_classes: int | None
    class_names: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: Augment = field(default_factory=Augment)
    train_dataset: Dataset | None = None
    config: DataConfig | None = None
    notes: list[str] = field(default_factory=list)  # warnings for the user: skipped files, empty classes
    feature_names: list[str] = field(default_factory=list)  # a table's input columns (empty for images)
    target_names: list[str] = field(default_factory=list)   # a table's target columns
    enlarge_to: int = 0          # stored images are enlarged to this side per batch (0: stored at input_shape)

    def model_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Stored samples (a batch, on any device) as the model takes them: enlarged to ``enlarge_to``."""
        return enlarge(x, self.enlarge_to)

    @property
    def streaming(self) -> bool:
        return self.train_dataset is not None

    @property
    def train_size(self) -> int:
        return len(self.train_dataset) if self.train_dataset is not None else len(self.train_x)

    def train_loader(self, batch_size: int, generator: torch.Generator | None = None,
                     num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
        """Shuffled batches of the training split (either path), shaped like slices of train_x/train_y (as stored:
        ``model_inputs`` makes them what the model takes)."""
        dataset = self.train_dataset if self.train_dataset is not None else TensorDataset(self.train_x, self.train_y)
        return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator,
                          num_workers=num_workers, pin_memory=pin_memory, persistent_workers=num_workers > 0)

    def summary(self) -> str:
        """One line, e.g. ``MNIST sample: 3600 train / 400 val / 1000 test, 1x28x28, 10 classes``."""
        counts = f"{self.train_size} train / {len(self.val_x)} val / {len(self.test_x)} test"
        if self.task == "classification":
            what = f"{self.num_classes} classes"
        elif self.task == "regression":
            outputs = self.train_y.shape[1] if self.train_y.ndim == 2 else 1
            what = f"regression, {outputs} target{'s' if outputs != 1 else ''}"
        else:
            what = "reconstruction"
        shape = f"{self.input_shape[0]} features" if len(self.input_shape) == 1 else format_shape(self.input_shape)
        if self.enlarge_to:
            shape += f" enlarged from {format_shape(self.train_x.shape[-2:])}"
        parts = [counts, shape, what]
        if self.augment.active:
            tricks = ([f"crop pad {self.augment.crop_padding}"] if self.augment.crop_padding else []) + (
                ["flip"] if self.augment.hflip else [])
            parts.append("augment " + " + ".join(tricks))
        if self.streaming:
            parts.append("streamed")
        return f"{self.name}: " + ", ".join(parts)


# --------------------------------------------------------------------------- augmentation

def augment_batch(x: torch.Tensor, augment: Augment, generator: torch.Generator | None = None) -> torch.Tensor:
    """Randomly crop (after zero padding) and flip a batch of images (N, C, H, W) on x's device.

    Vectorised: one gather for the crops and one ``where`` for the flips, no per-sample loop.
    Random numbers come from ``generator`` (on its own device, then moved) or the global RNG.
    Non-image batches and an inactive ``augment`` come back unchanged.
    """
    if not augment.active or x.ndim != 4 or len(x) == 0:
        return x
    n, _, height, width = x.shape
    rng_device = generator.device if generator is not None else x.device

    if augment.crop_padding > 0:
        pad = augment.crop_padding
        padded = F.pad(x, (pad, pad, pad, pad))
        offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=rng_device).to(x.device)
        rows = (offsets[0].view(n, 1) + torch.arange(height, device=x.device)).view(n, 1, height, 1)
        cols = (offsets[1].view(n, 1) + torch.arange(width, device=x.device)).view(n, 1, 1, width)
        samples = torch.arange(n, device=x.device).view(n, 1, 1, 1)
        channels = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
        x = padded[samples, channels, rows, cols]

    if augment.hflip:
        flip = torch.rand(n, generator=generator, device=rng_device).to(x.device) < 0.5
        x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    return x


# --------------------------------------------------------------------------- entry point

def load_data(config: DataConfig, progress: Progress | Task | None = None,
              should_stop: Callable[[], bool] | None = None) -> DataBundle:
    """Load, split, normalise and describe the data a config names (DataError when it cannot).

    ``progress(fraction, text)`` follows the work; once ``should_stop()`` turns true (or ``progress``
    is a cancelled Task) the work ends with ``Cancelled`` and leaves no partial file behind. The
    memory the data will take is checked first (engine.memory), so a dataset that cannot fit is
    refused with both numbers instead of failing half way through decoding.
    """
    from engine.memory import check_data_fits     # engine.memory reads this module's tables

    config.validate()
    report = Task.of(progress, should_stop)
    check_data_fits(config)
    loader = {
        "mnist-sample": _load_mnist_sample,
        "mnist": _load_mnist_family,
        "fashion-mnist": _load_mnist_family,
        "cifar10": _load_cifar10,
        "folder": _load_image_folder,
        "csv": _load_csv,
        "synthetic-regression": _load_synthetic_regression,
    }[config.source]
    bundle = loader(config, report)
    bundle.config = config
    if bundle.augment.hflip and config.source in DIGIT_SOURCES:
        bundle.notes.append("Random horizontal flip mirrors the digits, and a mirrored 2 or 7 is no digit: turn it off.")
    report(1.0, bundle.summary())
    return bundle


@dataclass
class _Decoded:
    """A source's samples before the split: uint8 images (N, C, H, W) or float32 rows (N, d)."""

    name: str
    x: torch.Tensor
    y: torch.Tensor                      # int64 labels (N,) or float32 targets (N, k)
    class_names: list[str]
    task: str                            # what the targets are: "classification" or "regression"
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None
    normalize: bool = True               # False: keep the values exactly as generated
    notes: list[str] = field(default_factory=list)   # what the user should know (files left out, ...)
    feature_names: list[str] = field(default_factory=list)   # a table's column names: inputs, then targets
    target_names: list[str] = field(default_factory=list)


def _assemble(decoded: _Decoded, config: DataConfig, progress: Task, enlarge_to: int = 0) -> DataBundle:
    """Split, convert, normalise (training statistics) and package decoded samples.

    Images to be enlarged (``enlarge_to``) stay at their own size, normalised with the statistics of the
    enlarged images, so enlarging them per batch gives what enlarging them first did. Classification data
    whose training split holds fewer than two classes is refused here, before any training; classes without
    training samples are named in the notes.
    """
    task = _resolve_task(decoded.name, decoded.task, config.task)
    images = decoded.x.dtype == torch.uint8
    train_idx, val_idx = _split_indices(len(decoded.x), config.val_fraction, config.limit, config.seed, decoded.name)
    notes = list(decoded.notes)
    if task == "classification":
        notes += _class_notes(decoded.name, decoded.class_names, decoded.y[train_idx])
    progress.check()
    splits = [(decoded.x[train_idx], decoded.y[train_idx]), (decoded.x[val_idx], decoded.y[val_idx])]
    if decoded.test_x is not None:      # cloned: normalisation works in place, the source stays intact
        splits.append((decoded.test_x if images else decoded.test_x.clone(), decoded.test_y))
    else:
        splits.append((decoded.x[:0], decoded.y[:0]))
    enlarge_to = enlarge_to if images else 0

    mean = std = None
    if config.normalize and decoded.normalize and task != "reconstruction":
        progress.check()
        mean, std = _statistics(splits[0][0], enlarge_to, progress.check)
    converted = []
    for x, y in splits:
        progress.check()
        converted.append((_to_normalised_float(x, mean, std), y))
    splits = converted
    if task == "reconstruction":
        splits = [(x, x) for x, _ in splits]

    (train_x, train_y), (val_x, val_y), (test_x, test_y) = splits
    classification = task == "classification"
    augment = Augment(config.augment_crop_padding, config.augment_hflip) if images else Augment()
    shape = tuple(train_x.shape[1:2]) + (enlarge_to, enlarge_to) if enlarge_to else tuple(train_x.shape[1:])
    bundle = DataBundle(
        name=decoded.name, task=task, input_shape=shape, enlarge_to=enlarge_to,
        num_classes=len(decoded.class_names) if classification else None,
        class_names=list(decoded.class_names) if classification else [],
        train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y, test_x=test_x, test_y=test_y,
        mean=mean, std=std, augment=augment, notes=notes, feature_names=list(decoded.feature_names),
        target_names=list(decoded.target_names))
    if config.stream:
        bundle.train_dataset = TensorDataset(train_x, train_y)
        bundle.train_x, bundle.train_y = train_x[:0], train_y[:0]
    return bundle


def _class_notes(name: str, class_names: list[str], train_y: torch.Tensor) -> list[str]:
    """DataError when the training labels hold fewer than two classes (nothing to tell apart); else a
    note naming the classes no training sample has (the model would never learn to predict them)."""
    present = torch.unique(train_y).tolist()
    if len(present) < 2:
        only = f" ({class_names[present[0]]!r})" if present else ""
        raise DataError(f"{name} has a single class{only} in its {len(train_y)} training samples: classification "
                        f"needs at least two; add samples of another class (or raise the limit if one is set).")
    missing = [class_names[i] for i in range(len(class_names)) if i not in set(present)]
    if not missing:
        return []
    shown = ", ".join(repr(c) for c in missing[:10]) + (" …" if len(missing) > 10 else "")
    return [f"{len(missing)} of the {len(class_names)} classes of {name} have no training samples ({shown}): "
            f"the model cannot learn to predict them; add samples of them (or raise the limit if one is set)."]


def _resolve_task(name: str, natural: str, requested: str) -> str:
    """The task to train: what the targets are (``natural``) unless reconstruction is asked for."""
    if requested in ("auto", natural, "reconstruction"):
        return natural if requested == "auto" else requested
    raise DataError(f"{name} has {natural} targets, so it cannot be used for {requested}: "
                    f"set {control('data.task')} to {natural} or reconstruction.")


def _split_indices(count: int, val_fraction: float, limit: int, seed: int,
                   name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded train/validation indices (each sorted), after keeping at most ``limit`` samples."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    if limit:
        order = order[:limit]
    val_count = round(len(order) * val_fraction)
    if val_fraction > 0 and val_count == 0 and len(order) > 1:
        val_count = 1
    train_idx, val_idx = order[val_count:].sort().values, order[:val_count].sort().values
    if len(train_idx) == 0:
        raise DataError(f"{name} leaves no training samples ({count} in all): add data, "
                        f"raise {control('data.limit')} or lower {control('data.val_fraction')}.")
    return train_idx, val_idx


def _images_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32 in [0, 1]."""
    return x.to(torch.float32).div_(255)


def _statistics(x: torch.Tensor, enlarge_to: int = 0,
                check: Callable[[], None] | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per channel (images, N x C x H x W) or per feature (tables, N x d) mean and std; std 0 becomes 1.

    uint8 images are measured in [0, 1] units, exactly, from a 256-bin histogram per channel, or as they are
    enlarged to ``enlarge_to`` (engine.enlarge.enlarged_moments: what the model is given).
    """
    if x.dtype == torch.uint8 and enlarge_to:
        mean, std = enlarged_moments(x, enlarge_to, check)
    elif x.dtype == torch.uint8:
        levels = torch.arange(256, dtype=torch.float64) / 255
        counts = torch.stack([torch.bincount(x[:, c].reshape(-1), minlength=256) for c in range(x.shape[1])])
        counts = counts.to(torch.float64) / max(1, counts[0].sum().item())
        mean = counts @ levels
        std = (counts @ levels.square() - mean.square()).clamp_min(0).sqrt()
    elif x.ndim == 2:   # tables: in float64, so columns of large values (up to float32's limit) cannot overflow
        std, mean = torch.std_mean(x.to(torch.float64), dim=0, correction=0)
    else:
        std, mean = torch.std_mean(x, dim=(0, 2, 3), correction=0)  # pairwise sums
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return tuple(mean.tolist()), tuple(std.tolist())


def _to_normalised_float(x: torch.Tensor, mean: tuple[float, ...] | None,
                         std: tuple[float, ...] | None) -> torch.Tensor:
    """float32 samples, normalised when mean/std are given; uint8 images are scaled from 0..255 to [0, 1]
    first, in the same pass (one conversion, then one multiply-add in place)."""
    if x.dtype != torch.uint8:
        if mean is None:
            return x
        if x.ndim == 2:   # tables: subtract and divide in float64 (values near float32's limit stay finite)
            return _normalise(x.to(torch.float64), mean, std).to(torch.float32)
        return _normalise(x, mean, std)
    out = x.to(torch.float32)
    if mean is None:
        return out.div_(255)
    shape = (1, -1, 1, 1)
    scale = 1 / (255 * torch.tensor(std, dtype=torch.float64))
    shift = -torch.tensor(mean, dtype=torch.float64) / torch.tensor(std, dtype=torch.float64)
    return out.mul_(scale.to(torch.float32).view(shape)).add_(shift.to(torch.float32).view(shape))


def _normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(x - mean) / std per channel or feature, in place (x is always a fresh tensor of ours)."""
    shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
    return x.sub_(torch.tensor(mean, dtype=x.dtype).view(shape)).div_(torch.tensor(std, dtype=x.dtype).view(shape))


# --------------------------------------------------------------------------- IDX files and the bundled sample

_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read an IDX file (MNIST's format), gzipped or not, into a tensor (DataError when malformed)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"Cannot read {path}: {exc}; replace the file with an intact copy.") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or not 1 <= raw[3] <= 4:
        raise DataError(f"{path} is not an IDX file (MNIST format): replace it with an intact copy.")
    dtype, rank = _IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * rank
    dims = struct.unpack(f">{rank}I", raw[4:header]) if len(raw) >= header else ()
    if len(dims) != rank or len(raw) - header != math.prod(dims) * dtype.itemsize:
        raise DataError(f"{path} is truncated or damaged (its header says {dims}): replace it with an intact copy.")
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _load_mnist_sample(config: DataConfig, progress: Task) -> DataBundle:
    """The bundled 4000/1000 MNIST sample, parsed straight from its gz IDX files (no torchvision import)."""
    from resources import MNIST_SAMPLE

    progress(0.0, "Reading the bundled MNIST sample")
    train_x, train_y, test_x, test_y = (read_idx(MNIST_SAMPLE / f"{name}.gz") for name in _MNIST_FILES)
    decoded = _Decoded("MNIST sample", train_x.unsqueeze(1), train_y.long(), DIGIT_NAMES, "classification",
                       test_x.unsqueeze(1), test_y.long())
    return _assemble(decoded, config, progress, _enlarge_to(config))


def _enlarge_to(config: DataConfig) -> int:
    """Built-in datasets are enlarged to image_size when it is larger than their own size, never shrunk."""
    return config.image_size if config.image_size > NATIVE_IMAGE_SIZES[config.source] else 0


# --------------------------------------------------------------------------- torchvision datasets

def _root(config: DataConfig) -> Path:
    """The folder (or CSV file) the config names, with ~ expanded; the default data folder for a download."""
    root = dataset_root(config.source, config.root)
    if root is None:
        if config.source == "csv":
            raise DataError("CSV table needs a file: choose the .csv file to read.")
        raise DataError(f"{SOURCES[config.source]} needs a folder: choose where its files are.")
    return root


def vision_tensors(dataset: Any) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images (uint8, N x C x H x W), labels (int64) and class names of a torchvision MNIST-like or CIFAR dataset."""
    data = dataset.data
    if isinstance(data, np.ndarray):          # CIFAR: N x H x W x C
        images = torch.from_numpy(np.ascontiguousarray(data.transpose(0, 3, 1, 2)))
    else:                                     # MNIST family: N x H x W
        images = data.unsqueeze(1).contiguous()
    labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    return images, labels, [str(name) for name in dataset.classes]


def _load_mnist_family(config: DataConfig, progress: Task) -> DataBundle:
    """MNIST or Fashion-MNIST from ``ROOT/<Class>/raw`` through torchvision's own class."""
    from torchvision import datasets

    cls = datasets.MNIST if config.source == "mnist" else datasets.FashionMNIST
    label = SOURCES[config.source]
    root = _root(config)
    raw = root / cls.__name__ / "raw"
    names = [Path(filename).stem for filename, _ in cls.resources]     # the uncompressed names torchvision reads

    # torchvision reads only uncompressed files: unpack any .gz the user put there (as its download does).
    for name in names:
        if not (raw / name).is_file() and (raw / f"{name}.gz").is_file():
            _gunzip(raw / f"{name}.gz", raw / name)
    missing = [name for name in names if not (raw / name).is_file()]
    if missing and config.download:
        _download_mnist_files(cls, raw, missing, label, progress.stage(0.0, 0.7))
        missing = [name for name in names if not (raw / name).is_file()]
    if missing:
        raise DataError(f"{label} files not found in {raw}: put {', '.join(n + '(.gz)' for n in missing)} there, "
                        f"or turn on {control('data.download')}.")

    def decode() -> dict:
        progress(0.75, f"Reading {label} with torchvision")
        parts = {}
        for split, train in (("train", True), ("test", False)):
            progress.check()
            try:
                dataset = cls(str(root), train=train, download=False)
            except (RuntimeError, OSError, AssertionError, TypeError, ValueError) as exc:
                raise DataError(f"torchvision cannot read the {label} files in {raw} ({exc}): replace them with "
                                f"intact copies, or delete them and turn on {control('data.download')}.") from exc
            parts[f"{split}_x"], parts[f"{split}_y"], parts["classes"] = vision_tensors(dataset)
        return parts

    parts = _cached(config.source, root, [raw / name for name in names], {}, decode, progress)
    classes = DIGIT_NAMES if config.source == "mnist" else parts["classes"]
    decoded = _Decoded(label, parts["train_x"], parts["train_y"], classes, "classification",
                       parts["test_x"], parts["test_y"])
    return _assemble(decoded, config, progress, _enlarge_to(config))


def _load_cifar10(config: DataConfig, progress: Task) -> DataBundle:
    """CIFAR-10 from ``ROOT/cifar-10-batches-py`` through torchvision's own class.

    torchvision verifies the MD5 of every batch before unpickling it (even without download), so only
    the original files are ever unpickled; a modified copy is refused with a DataError naming the files.
    """
    from torchvision import datasets
    from torchvision.datasets.utils import check_integrity

    cls = datasets.CIFAR10
    root = _root(config)
    folder = root / cls.base_folder
    checksums = [tuple(entry) for entry in cls.train_list + cls.test_list] + [(cls.meta["filename"], cls.meta["md5"])]
    names = [name for name, _ in checksums]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing and config.download:
        _download_cifar10(cls, root, progress.stage(0.0, 0.7))
        missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataError(f"CIFAR-10 files not found in {folder}: put {', '.join(missing)} there (they come in "
                        f"{cls.filename}; extract it into {root}), or turn on {control('data.download')}.")

    def decode() -> dict:
        progress(0.75, "Checking and reading CIFAR-10 with torchvision")
        parts = {}
        for split, train in (("train", True), ("test", False)):
            progress.check()
            try:
                dataset = cls(str(root), train=train, download=False)
            except (RuntimeError, OSError, *_PICKLE_ERRORS) as exc:
                damaged = [name for name, md5 in checksums if not check_integrity(str(folder / name), md5)]
                if damaged:
                    raise DataError(
                        f"CIFAR-10 files in {folder} do not match the original download: {', '.join(damaged)}. "
                        f"torchvision reads only the original files (they are pickles, which could run code): "
                        f"replace them from {cls.filename}, or delete them and turn on {control('data.download')}.") from exc
                raise DataError(f"torchvision cannot read the CIFAR-10 files in {folder} ({exc}): replace them "
                                f"from {cls.filename}, or delete them and turn on {control('data.download')}.") from exc
            parts[f"{split}_x"], parts[f"{split}_y"], parts["classes"] = vision_tensors(dataset)
        return parts

    parts = _cached(config.source, root, [folder / name for name in names], {}, decode, progress)
    decoded = _Decoded("CIFAR-10", parts["train_x"], parts["train_y"], parts["classes"], "classification",
                       parts["test_x"], parts["test_y"])
    return _assemble(decoded, config, progress, _enlarge_to(config))


def _gunzip(source: Path, target: Path) -> None:
    """Decompress source to target atomically (a failed run leaves no half file)."""
    try:
        with gzip.open(source, "rb") as packed:
            write_atomically(target, lambda out: shutil.copyfileobj(packed, out, 1 << 20), "unpacked file", DataError, make_folder=True)
    except (OSError, EOFError, DataError) as exc:
        raise DataError(f"Cannot unpack {source} into {target.parent} ({exc}): unpack it there yourself, or replace "
                        f"it with an intact copy.") from exc


# --------------------------------------------------------------------------- downloads

DOWNLOAD_CHUNK = 1 << 16


def download_file(url: str, path: str | os.PathLike, md5: str | None = None, progress: Progress | Task | None = None,
                  timeout: float = 30.0, should_stop: Callable[[], bool] | None = None) -> None:
    """Fetch ``url`` into ``path`` atomically, reporting progress and checking its MD5 (DataError on failure).

    Stops with ``Cancelled`` between chunks once ``should_stop()`` is true, and at once when the Task
    passed as ``progress`` is cancelled from another thread (its socket is shut down under a blocked
    read); a stopped or failed download leaves no file behind.
    """
    path = Path(path)
    report = Task.of(progress, should_stop)
    name = path.name
    report.check()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        request = urllib.request.Request(url, headers={"User-Agent": "layerstudio"})
        digest = hashlib.md5(usedforsecurity=False)
        with urllib.request.urlopen(request, timeout=timeout) as response, \
                report.on_cancel(lambda: _shut_down(response)):
            total = int(response.headers.get("Content-Length") or 0)

            def fetch(out) -> None:
                done = 0
                report(0.0, f"Downloading {name}")
                while chunk := _read_chunk(response, url, report):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if total:
                        report(done / total, f"Downloading {name}: {done / 1e6:.1f} of {total / 1e6:.1f} MB")
                report.check()      # a cancelled download ends like a finished one: never keep it
                if md5 is not None and digest.hexdigest() != md5:
                    raise DataError(f"The download of {name} from {url} is damaged (checksum mismatch): try again.")

            write_atomically(path, fetch, "download", DataError, make_folder=True)
    except DataError:
        report.check()
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        report.check()
        reason = getattr(exc, "reason", exc)
        raise DataError(f"Could not download {url}: {reason}.") from exc


def _read_chunk(response, url: str, task: Task) -> bytes:
    """The next piece of a download, as soon as any has arrived; a network failure is a DataError
    (not a failure to write the file), a stop request ``Cancelled``."""
    task.check()
    try:
        return response.read1(DOWNLOAD_CHUNK)
    except (OSError, ValueError) as exc:     # ValueError: read from the socket cancel() shut
        task.check()
        raise DataError(f"Could not download {url}: {getattr(exc, 'reason', exc)}.") from exc


def _shut_down(response) -> None:
    """Shut the socket of an HTTP response down (from another thread): a read blocked on it returns at once.

    ``socket(fileno=...)`` wraps the response's own descriptor; ``detach`` leaves closing it to the response.
    Responses without a socket (file: URLs) are left alone: their reads never wait.
    """
    try:
        connection = socket.socket(fileno=response.fileno())
    except (OSError, ValueError, AttributeError):
        return
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        connection.detach()


def _download_mnist_files(cls: type, raw: Path, missing: list[str], label: str, progress: Task) -> None:
    wanted = [(filename, md5) for filename, md5 in cls.resources if Path(filename).stem in missing]
    for index, (filename, md5) in enumerate(wanted):
        step = progress.stage(index / len(wanted), (index + 1) / len(wanted))
        errors = []
        for mirror in cls.mirrors:
            try:
                download_file(f"{mirror}{filename}", raw / filename, md5, step)
                break
            except DataError as exc:
                errors.append(str(exc))
        else:
            raise DataError(f"{label} download failed. {errors[-1]} Put {', '.join(n + '(.gz)' for n in missing)} "
                            f"in {raw} yourself, then load again.")
        _gunzip(raw / filename, raw / Path(filename).stem)


def _download_cifar10(cls: type, root: Path, progress: Task) -> None:
    from torchvision.datasets.utils import extract_archive

    archive = root / cls.filename
    try:
        download_file(cls.url, archive, cls.tgz_md5, progress)
    except DataError as exc:
        raise DataError(f"CIFAR-10 download failed. {exc} Extract {cls.filename} into {root} yourself "
                        f"(it makes {cls.base_folder}/), then load again.") from exc
    progress(1.0, f"Extracting {cls.filename}")
    extract_archive(str(archive), str(root))     # the MD5-verified original archive


# --------------------------------------------------------------------------- the cache

def _cache_path(source: str, root: Path, files: list[Path], extra: dict) -> Path:
    """One file per source and folder, its name keyed by the files' sizes and modification times."""
    stamps = []
    for path in files:
        stat = path.stat()
        stamps.append((str(path), stat.st_size, stat.st_mtime_ns))
    key = json.dumps({"version": CACHE_VERSION, "source": source, "root": str(root), "extra": extra,
                      "files": stamps}, sort_keys=True)
    root_key = hashlib.sha1(str(root).encode()).hexdigest()[:12]
    return cache_dir() / f"{source}-{root_key}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"


def _cached(source: str, root: Path, files: list[Path], extra: dict, decode: Callable[[], dict],
            progress: Task) -> dict:
    """The decoded tensors from the cache when the files are unchanged; else decode and store them.

    Stale entries of the same source and folder are removed when a new one is written. A cache that
    cannot be read or written is simply skipped.
    """
    path = _cache_path(source, root, files, extra)
    if path.is_file():
        try:
            parts = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            if parts.get("format") == CACHE_FORMAT and parts.get("version") == CACHE_VERSION:
                progress(0.9, f"Read {SOURCES[source]} from the cache")
                return parts
        except Exception:  # a damaged cache file is rebuilt, never fatal
            pass
    parts = decode()
    parts.update(format=CACHE_FORMAT, version=CACHE_VERSION)
    progress.check()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(path.name.rsplit("-", 1)[0] + "-*.pt"):
            try:
                stale.unlink()
            except OSError:     # still mapped elsewhere (Windows): leave it
                pass
        write_atomically(path, lambda out: _save_cancellable(parts, out, progress), "data cache", DataError,
                         make_folder=True)
    except (OSError, DataError):
        progress.check()       # the write failed because it was stopped: say so, not "skipped"
    return parts


class _CheckedWriter:
    """A file for torch.save that writes in pieces of WRITE_PIECE bytes and stops between them when asked."""

    def __init__(self, out, task: Task):
        self.out, self.task = out, task

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), WRITE_PIECE):
            self.task.check()
            self.out.write(view[start:start + WRITE_PIECE])
        return len(view)

    def flush(self) -> None:
        self.out.flush()


def _save_cancellable(parts: dict, out, task: Task) -> None:
    """torch.save that a stop request can end between pieces (torch reports our Cancelled as a RuntimeError)."""
    try:
        torch.save(parts, _CheckedWriter(out, task))
    except RuntimeError:
        task.check()
        raise


# --------------------------------------------------------------------------- image folders

@dataclass
class _ImageListing:
    """The pictures of one image folder: class names, image files with their class index, other files."""

    classes: list[str]
    paths: list[Path]
    labels: list[int]
    ignored: list[Path]          # files in the class folders that are not images (by extension), dotfiles aside


def _list_image_folder(folder: Path, classes: list[str] | None = None) -> _ImageListing:
    """Class names (sorted subfolders) and every image file below them with its class index."""
    if classes is None:
        classes = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
        if not classes:
            raise DataError(f"{folder} has no subfolders: put one subfolder per class (e.g. cats/, dogs/) with "
                            f"the images inside.")
    paths, labels, ignored = [], [], []
    for index, name in enumerate(classes):
        class_folder = folder / name
        if not class_folder.is_dir():
            continue
        for path in sorted(class_folder.rglob("*")):
            if not path.is_file() or any(part.startswith(".") for part in path.relative_to(class_folder).parts):
                continue
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                paths.append(path)
                labels.append(index)
            else:
                ignored.append(path)
    unknown = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and entry.name not in classes
                     and not entry.name.startswith("."))
    if unknown:
        raise DataError(f"{folder} has class folder {unknown[0]!r} that the training folder lacks: add it to "
                        f"train/ or remove it.")
    if not paths:
        raise DataError(f"No images found in the class folders of {folder}: add {', '.join(IMAGE_EXTENSIONS)} files.")
    return _ImageListing(classes, paths, labels, ignored)


def decode_image(path: Path, size: int, grayscale: bool) -> np.ndarray:
    """One picture as uint8 (C, size, size), resized with bilinear filtering (DataError when unreadable)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("L" if grayscale else "RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            array = np.array(image, dtype=np.uint8)   # a writable copy
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise DataError(f"Cannot read image {path} ({exc}): remove it or save it again as PNG or JPEG.") from exc
    return array[None] if grayscale else array.transpose(2, 0, 1)


def _decode_or_reason(path: Path, size: int, grayscale: bool) -> np.ndarray | str:
    """The decoded picture, or why it cannot be read."""
    try:
        return decode_image(path, size, grayscale)
    except DataError as exc:
        return str(exc.__cause__ or exc)


def _decode_images(paths: list[Path], size: int, grayscale: bool, progress: Task,
                   label: str) -> tuple[torch.Tensor, list[Path]]:
    """Decode pictures into one uint8 tensor, in parallel threads (PIL releases the GIL while decoding).

    Unreadable files are left out (and returned, the second item, each logged with its reason): one
    damaged download among thousands of pictures should not block training; the caller tells the user.
    Stops between pictures when ``progress`` is cancelled (pending ones are dropped, not decoded).
    """
    channels = 1 if grayscale else 3
    out = np.empty((len(paths), channels, size, size), dtype=np.uint8)
    every = max(1, len(paths) // 50)
    failed: list[Path] = []
    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    try:
        for index, result in enumerate(pool.map(lambda p: _decode_or_reason(p, size, grayscale), paths)):
            progress.check()
            if isinstance(result, str):
                log.warning("Skipping %s: %s", paths[index], result)
                failed.append(paths[index])
            else:
                out[index - len(failed)] = result
            if index % every == 0:
                progress(index / max(1, len(paths)), f"Decoding {label}: {index} of {len(paths)} images")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return torch.from_numpy(out[:len(paths) - len(failed)]), failed


def _file_list(root: Path, paths: list[Path], most: int = 5) -> str:
    """``a/1.png, b/x.txt and 3 more``: paths relative to the folder the user chose."""
    def shown(path: Path) -> str:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            return str(path)

    names = ", ".join(shown(path) for path in paths[:most])
    return names + (f" and {len(paths) - most} more" if len(paths) > most else "")


def _image_folder_notes(root: Path, listings: list[_ImageListing], skipped: list[Path]) -> list[str]:
    """Sentences naming the files an image folder's load left out: non-images and unreadable pictures."""
    notes = []
    ignored = [path for listing in listings for path in listing.ignored]
    if ignored:
        notes.append(f"Ignored {len(ignored)} file{'s' if len(ignored) != 1 else ''} in {root.name} that "
                     f"{'are not images' if len(ignored) != 1 else 'is not an image'} (by the name's extension): "
                     f"{_file_list(root, ignored)}.")
    if skipped:
        total = sum(len(listing.paths) for listing in listings)
        notes.append(f"Skipped {len(skipped)} of {total} images in {root.name} that cannot be read "
                     f"(damaged, or not the format their name says): {_file_list(root, skipped)}; "
                     f"remove them or save them again as PNG or JPEG.")
    return notes


class ImageFileDataset(Dataset):
    """Training images read from disk on demand (streaming), normalised like the in-memory path.

    Items are ``(x, y)``: x float32 (C, size, size); y an int64 class index, or x itself for reconstruction.
    Holds only paths, so it pickles cheaply into DataLoader workers.
    """

    def __init__(self, paths: list[Path], labels: list[int], size: int, grayscale: bool,
                 mean: tuple[float, ...] | None, std: tuple[float, ...] | None, reconstruction: bool = False):
        self.paths, self.labels = list(paths), list(labels)
        self.size, self.grayscale, self.reconstruction = size, grayscale, reconstruction
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = _images_to_float(torch.from_numpy(decode_image(self.paths[index], self.size, self.grayscale))[None])
        if self.mean is not None:
            x = _normalise(x, self.mean, self.std)
        x = x[0]
        return (x, x) if self.reconstruction else (x, torch.tensor(self.labels[index], dtype=torch.int64))


def _load_image_folder(config: DataConfig, progress: Task) -> DataBundle:
    """One subfolder per class (or train/ and test/ each holding them), resized to image_size.

    Files that are not pictures and pictures that cannot be decoded are left out and named in the
    bundle's notes; a folder with no readable picture at all is refused.
    """
    root = _root(config)
    if not root.is_dir():
        raise DataError(f"Image folder {root} does not exist: choose a folder with one subfolder per class.")
    name = f"Image folder {root.name}"
    has_test = (root / "train").is_dir() and (root / "test").is_dir()
    train = _list_image_folder(root / "train" if has_test else root)
    test = _list_image_folder(root / "test", train.classes) if has_test else _ImageListing(train.classes, [], [], [])
    size, gray = config.image_size, config.grayscale
    if config.stream:
        return _stream_image_folder(config, name, root, train, test, progress)

    def decode() -> dict:
        x, train_skipped = _decode_images(train.paths, size, gray, progress.stage(0.0, 0.8 if has_test else 0.95), name)
        test_x, test_skipped = _decode_images(test.paths, size, gray, progress.stage(0.8, 0.95), name)
        skipped = train_skipped + test_skipped
        return {"train_x": x, "train_y": _kept_labels(train, train_skipped, name), "test_x": test_x,
                "test_y": torch.tensor(_kept(test.labels, test.paths, test_skipped), dtype=torch.int64),
                "classes": train.classes, "skipped": [str(path) for path in skipped]}

    parts = _cached("folder", root, train.paths + test.paths, {"size": size, "grayscale": gray}, decode, progress)
    notes = _image_folder_notes(root, [train, test], [Path(path) for path in parts.get("skipped", [])])
    decoded = _Decoded(name, parts["train_x"], parts["train_y"], parts["classes"], "classification",
                       parts["test_x"] if has_test else None, parts["test_y"] if has_test else None, notes=notes)
    return _assemble(decoded, config, progress)


def _kept(items: list, paths: list[Path], skipped: list[Path]) -> list:
    """``items`` (one per path) without those of the skipped paths."""
    left_out = set(skipped)
    return [item for item, path in zip(items, paths) if path not in left_out]


def _kept_labels(listing: _ImageListing, skipped: list[Path], name: str) -> torch.Tensor:
    """The class indices of the decoded training pictures; DataError when none of them could be read."""
    if len(skipped) == len(listing.paths):
        raise DataError(f"None of the {len(listing.paths)} pictures of {name} can be read (the first: "
                        f"{listing.paths[0]}): save them again as PNG or JPEG.")
    return torch.tensor(_kept(listing.labels, listing.paths, skipped), dtype=torch.int64)


def _stream_image_folder(config: DataConfig, name: str, root: Path, train: _ImageListing, test: _ImageListing,
                         progress: Task) -> DataBundle:
    """Training images stay on disk (an ImageFileDataset); validation and test are decoded into tensors.

    Normalisation statistics come from up to STREAM_STATS_SAMPLES training images (seeded choice).
    Unreadable validation, test and statistics pictures are left out and named in the notes; a damaged
    training picture is only met while training, where it ends the run with its name.
    """
    task = _resolve_task(name, "classification", config.task)
    paths, labels, classes = train.paths, train.labels, train.classes
    train_idx, val_idx = _split_indices(len(paths), config.val_fraction, config.limit, config.seed, name)
    size, gray = config.image_size, config.grayscale
    skipped: list[Path] = []

    def images(chosen: list[Path], start: float, stop: float) -> torch.Tensor:
        x, failed = _decode_images(chosen, size, gray, progress.stage(start, stop), name)
        skipped.extend(failed)
        return _images_to_float(x)

    val_paths = [paths[i] for i in val_idx.tolist()]
    val_x = images(val_paths, 0.0, 0.4)
    test_x = images(test.paths, 0.4, 0.8)
    mean = std = None
    if config.normalize and task != "reconstruction":
        pick = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(config.seed))
        mean, std = _statistics(images([paths[i] for i in train_idx[pick[:STREAM_STATS_SAMPLES]].tolist()], 0.8, 0.95))
        val_x, test_x = _normalise(val_x, mean, std), _normalise(test_x, mean, std)
    reconstruction = task == "reconstruction"
    notes = _image_folder_notes(root, [train, test], skipped)
    train_labels = [labels[i] for i in train_idx]
    if not reconstruction:
        notes += _class_notes(name, classes, torch.tensor(train_labels, dtype=torch.int64))
    val_y = val_x if reconstruction else torch.tensor(_kept([labels[i] for i in val_idx], val_paths, skipped),
                                                      dtype=torch.int64)
    test_y = test_x if reconstruction else torch.tensor(_kept(test.labels, test.paths, skipped), dtype=torch.int64)
    dataset = ImageFileDataset([paths[i] for i in train_idx], train_labels, size, gray, mean, std, reconstruction)
    channels = 1 if gray else 3
    empty_x = torch.empty(0, channels, size, size)
    return DataBundle(
        name=name, task=task, input_shape=(channels, size, size),
        num_classes=None if reconstruction else len(classes), class_names=[] if reconstruction else classes,
        train_x=empty_x, train_y=empty_x if reconstruction else torch.empty(0, dtype=torch.int64),
        val_x=val_x, val_y=val_y, test_x=test_x, test_y=test_y, mean=mean, std=std,
        augment=Augment(config.augment_crop_padding, config.augment_hflip), train_dataset=dataset, notes=notes)


# --------------------------------------------------------------------------- CSV tables

def _load_csv(config: DataConfig, progress: Task) -> DataBundle:
    """Numeric feature columns plus label column(s); classification or regression (see ``_csv_targets``)."""
    path = _root(config)
    if not path.is_file():
        raise DataError(f"CSV file {path} does not exist: choose a .csv file with a header row.")
    progress(0.0, f"Reading {path.name}")
    try:
        size = max(1, path.stat().st_size)
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [cell.strip() for cell in next(reader, [])]
            rows, lines = [], []
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows.append(row)
                    lines.append(reader.line_num)
                    if len(rows) % CSV_ROWS_PER_REPORT == 0:
                        progress(0.8 * handle.buffer.tell() / size, f"Reading {path.name}: {len(rows):,} rows")
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"Cannot read {path} as CSV text ({exc}): save it as UTF-8 CSV.") from exc

    name = f"CSV {path.name}"
    if not header:
        raise DataError(f"{path.name} is empty: it needs a header row naming the columns, then one row per sample.")
    duplicate = next((c for i, c in enumerate(header) if c in header[:i]), None)
    if duplicate is not None:
        raise DataError(f"{path.name} line 1: column name {duplicate!r} appears twice: give each column its own name.")
    targets = [column.strip() for column in config.label_column.split(",")]
    absent = [column for column in targets if column not in header]
    if absent:
        raise DataError(f"{path.name} has no column {absent[0]!r} (its columns are {', '.join(header)}): "
                        f"set the label column to the one holding the targets.")
    if not rows:
        raise DataError(f"{path.name} has a header but no data rows: add one row per sample.")
    for row, line in zip(rows, lines):
        if len(row) != len(header):
            raise DataError(f"{path.name} line {line}: {len(row)} cells, but the header has {len(header)} columns: "
                            f"fix that row.")

    target_idx = [header.index(column) for column in targets]
    feature_idx = [i for i in range(len(header)) if i not in target_idx]
    if not feature_idx:
        raise DataError(f"{path.name} has no feature columns besides {config.label_column!r}: add input columns.")
    features = _numeric_columns(rows, lines, feature_idx, header, path.name)
    x = torch.from_numpy(features.astype(np.float32))
    if config.task == "reconstruction":      # the target is the input: the label column is not read
        y, classes, task = torch.zeros(len(x), 1), [], "regression"
    else:
        y, classes, task = _csv_targets(rows, lines, target_idx, header, path.name, config.task)
    decoded = _Decoded(name, x, y, classes, task, feature_names=[header[i] for i in feature_idx],
                       target_names=[] if config.task == "reconstruction" else targets)
    return _assemble(decoded, config, progress)


def _numeric_columns(rows: list[list[str]], lines: list[int], columns: list[int], header: list[str],
                     file_name: str) -> np.ndarray:
    """The given columns as float64 (N, k), every value finite and within float32's range (training's
    number type); DataError naming line and column of the first cell that is not."""
    try:
        values = np.array([[row[i] for i in columns] for row in rows], dtype=np.float64)
        if np.isfinite(values).all() and np.abs(values).max(initial=0.0) <= FLOAT32_MAX:
            return values
    except ValueError:
        pass
    for row, line in zip(rows, lines):
        for i in columns:
            problem = _cell_problem(row[i])
            if problem:
                raise DataError(f"{file_name} line {line}, column {header[i]!r} (column {i + 1}): {row[i]!r} "
                                f"{problem}.")
    raise DataError(f"{file_name} holds values that are not numbers: check its cells.")  # not reached


def _cell_problem(text: str) -> str:
    """Why a CSV cell cannot be a training value (the end of a sentence), or "" when it can."""
    try:
        value = float(text)
    except ValueError:
        return "is not a number: fix or remove that row"
    if not math.isfinite(value):
        return "is not a finite number: fix or remove that row"
    if abs(value) > FLOAT32_MAX:
        return (f"is beyond the range of float32, the number type training uses (at most about "
                f"{FLOAT32_MAX:.1e} in size): rescale that column, e.g. divide it by a power of ten")
    return ""


def _check_labels_present(texts: list[list[str]], lines: list[int], target_idx: list[int], header: list[str],
                          file_name: str) -> None:
    """DataError naming the line of the first empty or NaN-like label (NA, N/A, null, ...)."""
    for values, line in zip(texts, lines):
        for value, i in zip(values, target_idx):
            if value.lower() in MISSING_LABELS:
                raise DataError(f"{file_name} line {line}, column {header[i]!r} (column {i + 1}): the label is "
                                f"missing ({value!r}): fill it in or remove that row.")


def _csv_targets(rows: list[list[str]], lines: list[int], target_idx: list[int], header: list[str], file_name: str,
                 requested: str) -> tuple[torch.Tensor, list[str], str]:
    """Class indices with names, or float targets: classification for non-numeric labels or whole numbers
    with at most MAX_INTEGER_CLASSES distinct values, otherwise regression; ``requested`` overrides."""
    texts = [[row[i].strip() for i in target_idx] for row in rows]
    _check_labels_present(texts, lines, target_idx, header, file_name)
    try:
        numbers = np.array(texts, dtype=np.float64)
        numeric = bool(np.isfinite(numbers).all())
    except ValueError:
        numbers, numeric = None, False

    def regression() -> tuple[torch.Tensor, list[str], str]:
        values = _numeric_columns(rows, lines, target_idx, header, file_name)   # names a bad or too large cell
        return torch.from_numpy(values.astype(np.float32)), [], "regression"

    if requested == "regression" or (requested == "auto" and len(target_idx) > 1):
        return regression()
    if requested == "auto" and numeric:
        distinct = np.unique(numbers)
        if not (np.all(distinct == np.round(distinct)) and len(distinct) <= MAX_INTEGER_CLASSES):
            return regression()
    if len(target_idx) > 1:
        raise DataError(f"{file_name}: classification takes one label column, not {len(target_idx)}: "
                        f"set {control('data.label_column')} to a single column "
                        f"or set {control('data.task')} to regression.")
    if numeric:
        keys = [float(v) for v in numbers[:, 0]]
        distinct = sorted(set(keys))
        names = [str(int(v)) if v == int(v) else repr(v) for v in distinct]
    else:
        keys = [t[0] for t in texts]
        distinct = sorted(set(keys))
        names = list(distinct)
    index = {key: i for i, key in enumerate(distinct)}
    return torch.tensor([index[key] for key in keys], dtype=torch.int64), names, "classification"


# --------------------------------------------------------------------------- synthetic regression

def _load_synthetic_regression(config: DataConfig, progress: Task) -> DataBundle:
    """y = Xw + b + noise with X ~ N(0, 1) (D2L 3.2), seeded; never normalised so w and b stay recoverable."""
    generator = torch.Generator().manual_seed(config.seed)
    w = torch.tensor(config.weights, dtype=torch.float32)
    x = torch.randn(config.samples, len(w), generator=generator)
    y = x @ w + config.bias + config.noise * torch.randn(config.samples, generator=generator)
    decoded = _Decoded("Synthetic regression", x, y.reshape(-1, 1), [], "regression", normalize=False,
                       feature_names=[f"x{i + 1}" for i in range(len(w))], target_names=["y"])
    return _assemble(decoded, config, progress)
