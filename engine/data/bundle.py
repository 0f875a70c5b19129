"""Ready-to-train data: ``DataBundle``, the steps every source shares, ``load_data`` and augmentation.

``load_data(config)`` checks the settings and the memory the data will take (engine.memory), asks the
source's loader (engine.data.sources) for its samples, and returns a ``DataBundle`` whose training,
validation and test tensors are already split (seeded), converted to float32 and normalised with *training*
statistics (``assemble``); the trainer moves them to its device once and cuts batches by indexing. The
built-in image datasets stay at their own size and are enlarged to a larger image_size per batch
(``DataBundle.model_inputs``, see engine.data.enlarge); ``augment_batch`` is applied per training batch, at
the size the model takes, on whatever device the batch lives.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from engine.controls import control
from engine.data.config import DataConfig
from engine.data.enlarge import enlarge, enlarged_moments
from engine.data.sources import SOURCES
from engine.errors import DataError
from engine.shapes import format_shape
from engine.task import Progress, Task

if TYPE_CHECKING:
    from engine.data.folders import ImageFileDataset  # folders builds on this module


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
    train_dataset: TensorDataset | ImageFileDataset | None = None
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
    from engine.memory import check_data_fits  # engine.memory imports engine.data.folders, which imports this

    config.validate()
    report = Task.of(progress, should_stop)
    check_data_fits(config)
    source = SOURCES[config.source]
    bundle = source.load(config, report)
    bundle.config = config
    if bundle.augment.hflip and source.digits:
        bundle.notes.append("Random horizontal flip mirrors the digits, and a mirrored 2 or 7 is no digit: "
                            "turn it off.")
    report(1.0, bundle.summary())
    return bundle


# --------------------------------------------------------------------------- the steps every source shares

@dataclass
class Decoded:
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


def assemble(decoded: Decoded, config: DataConfig, progress: Task, enlarge_to: int = 0) -> DataBundle:
    """Split, convert, normalise (training statistics) and package decoded samples.

    Images to be enlarged (``enlarge_to``) stay at their own size, normalised with the statistics of the
    enlarged images, so enlarging them per batch gives what enlarging them first did. Classification data
    whose training split holds fewer than two classes is refused here, before any training; classes without
    training samples are named in the notes.
    """
    task = resolve_task(decoded.name, decoded.task, config.task)
    images = decoded.x.dtype == torch.uint8
    train_idx, val_idx = split_indices(len(decoded.x), config.val_fraction, config.limit, config.seed, decoded.name)
    notes = list(decoded.notes)
    if task == "classification":
        notes += class_notes(decoded.name, decoded.class_names, decoded.y[train_idx])
    progress.check()
    splits = [(decoded.x[train_idx], decoded.y[train_idx]), (decoded.x[val_idx], decoded.y[val_idx])]
    if decoded.test_x is not None and decoded.test_y is not None:  # cloned: normalisation works in place
        splits.append((decoded.test_x if images else decoded.test_x.clone(), decoded.test_y))
    else:
        splits.append((decoded.x[:0], decoded.y[:0]))
    enlarge_to = enlarge_to if images else 0

    mean = std = None
    if config.normalize and decoded.normalize and task != "reconstruction":
        progress.check()
        mean, std = statistics(splits[0][0], enlarge_to, progress.check)
    converted = []
    for x, y in splits:
        progress.check()
        converted.append((to_normalised_float(x, mean, std), y))
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


def class_notes(name: str, class_names: list[str], train_y: torch.Tensor) -> list[str]:
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


def resolve_task(name: str, natural: str, requested: str) -> str:
    """The task to train: what the targets are (``natural``) unless reconstruction is asked for."""
    if requested in ("auto", natural, "reconstruction"):
        return natural if requested == "auto" else requested
    raise DataError(f"{name} has {natural} targets, so it cannot be used for {requested}: "
                    f"set {control('data.task')} to {natural} or reconstruction.")


def split_indices(count: int, val_fraction: float, limit: int, seed: int,
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


def images_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32 in [0, 1]."""
    return x.to(torch.float32).div_(255)


def statistics(x: torch.Tensor, enlarge_to: int = 0,
               check: Callable[[], None] | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per channel (images, N x C x H x W) or per feature (tables, N x d) mean and std; std 0 becomes 1.

    uint8 images are measured in [0, 1] units, exactly, from a 256-bin histogram per channel, or as they are
    enlarged to ``enlarge_to`` (engine.data.enlarge.enlarged_moments: what the model is given).
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


def to_normalised_float(x: torch.Tensor, mean: tuple[float, ...] | None,
                        std: tuple[float, ...] | None) -> torch.Tensor:
    """float32 samples, normalised when mean/std are given; uint8 images are scaled from 0..255 to [0, 1]
    first, in the same pass (one conversion, then one multiply-add in place)."""
    if x.dtype != torch.uint8:
        if mean is None or std is None:
            return x
        if x.ndim == 2:   # tables: subtract and divide in float64 (values near float32's limit stay finite)
            return normalise(x.to(torch.float64), mean, std).to(torch.float32)
        return normalise(x, mean, std)
    out = x.to(torch.float32)
    if mean is None or std is None:
        return out.div_(255)
    shape = (1, -1, 1, 1)
    scale = 1 / (255 * torch.tensor(std, dtype=torch.float64))
    shift = -torch.tensor(mean, dtype=torch.float64) / torch.tensor(std, dtype=torch.float64)
    return out.mul_(scale.to(torch.float32).view(shape)).add_(shift.to(torch.float32).view(shape))


def normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(x - mean) / std per channel or feature, in place (x is always a fresh tensor of ours)."""
    shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
    return x.sub_(torch.tensor(mean, dtype=x.dtype).view(shape)).div_(torch.tensor(std, dtype=x.dtype).view(shape))
