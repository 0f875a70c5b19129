"""A look at the data before training: sample images per class, class counts, augmentation, a table's first rows.

``preview_data(bundle)`` returns plain numpy arrays and lists (no Qt, no torch tensors), so any view can
draw them: images as the model is given them (built-in images enlarged to a larger image_size, as every
batch is; the summary then says "1x224x224 enlarged from 28x28"), un-normalised back to 0..255 pixels;
the classes counted in every split; a few training images next to their augmented versions
(``engine.data.augment_batch`` at the model's size, seeded: the same every time); and for a table its
column names with the first rows in their original units.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from engine.data import DataBundle, augment_batch

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DataPreview:
    """What the data looks like. Images are uint8 arrays (N, H, W, C) at the size the model takes; ``groups``
    pairs a title (a class name, or "Samples" when there are no classes) with its images."""

    name: str
    summary: str
    task: str
    class_names: list[str]
    counts: dict[str, list[int]]          # split -> samples per class (one number when there are no classes)
    groups: list[tuple[str, np.ndarray]] = field(default_factory=list)
    originals: np.ndarray | None = None   # (n, H, W, C): training images ...
    augmented: np.ndarray | None = None   # (n, versions, H, W, C): ... and what augmentation makes of them
    augment_text: str = ""                # the augmentation, in words ("crop pad 4 + flip"); "" when none
    columns: list[str] = field(default_factory=list)    # a table's column names: features, then targets
    rows: list[list[str]] = field(default_factory=list)  # its first rows, as text in the original units
    notes: list[str] = field(default_factory=list)

    @property
    def images(self) -> bool:
        return bool(self.groups)


def preview_data(bundle: DataBundle, per_class: int = 8, samples: int = 4, versions: int = 4, rows: int = 10,
                 seed: int = 0) -> DataPreview:
    """The preview of a loaded bundle: ``per_class`` images of each class (the first of the training split),
    ``samples`` images with ``versions`` augmented versions each (generator seeded with ``seed``), and
    ``rows`` rows of a table."""
    labels = _train_labels(bundle)
    classes = list(bundle.class_names) if bundle.task == "classification" else []
    counts = {split: _counts(y, len(classes)) for split, y in
              (("train", labels), ("val", bundle.val_y), ("test", bundle.test_y))}
    preview: dict[str, Any] = dict(name=bundle.name, summary=bundle.summary(), task=bundle.task,
                                   class_names=classes, counts=counts, notes=list(bundle.notes))
    if len(bundle.input_shape) == 3:
        preview.update(_image_parts(bundle, labels, classes, per_class, samples, versions, seed))
    elif len(bundle.input_shape) == 1:
        preview.update(_table_parts(bundle, labels, classes, rows))
    return DataPreview(**preview)


def _train_labels(bundle: DataBundle) -> torch.Tensor:
    """The training split's labels or targets, also when it is streamed from disk."""
    dataset = bundle.train_dataset
    if dataset is None:
        return bundle.train_y
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[1]
    if dataset.reconstruction:                                    # an ImageFileDataset from here on
        return torch.empty(len(dataset), 0)
    return torch.as_tensor(dataset.labels, dtype=torch.int64)


def _train_inputs(bundle: DataBundle, indices: torch.Tensor) -> torch.Tensor:
    """Training samples by index as the model takes them (normalised, enlarged), also when streamed."""
    dataset = bundle.train_dataset
    if dataset is None:
        return bundle.model_inputs(bundle.train_x[indices])
    if not len(indices):
        return torch.empty(0, *bundle.input_shape)
    return bundle.model_inputs(torch.stack([dataset[int(i)][0] for i in indices]))


def _counts(y: torch.Tensor, classes: int) -> list[int]:
    """Samples per class (classification), else the number of samples."""
    if classes and y.dtype == torch.int64 and y.ndim == 1:
        return torch.bincount(y, minlength=classes).tolist()
    return [len(y)]


def to_pixels(x: torch.Tensor, bundle: DataBundle) -> np.ndarray:
    """Normalised images (N, C, H, W) back to uint8 pixels (N, H, W, C)."""
    x = x.detach().to("cpu", torch.float32)
    if bundle.mean is not None:
        shape = (1, -1, 1, 1)
        x = x * torch.tensor(bundle.std).view(shape) + torch.tensor(bundle.mean).view(shape)
    pixels = x.clamp(0, 1).mul(255).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().numpy()


def _image_parts(bundle: DataBundle, labels: torch.Tensor, classes: list[str], per_class: int, samples: int,
                 versions: int, seed: int) -> dict:
    size = bundle.train_size
    if classes:
        groups = []
        for index, name in enumerate(classes):
            chosen = torch.nonzero(labels == index).flatten()[:per_class]
            groups.append((name, to_pixels(_train_inputs(bundle, chosen), bundle)))
    else:
        groups = [("Samples", to_pixels(_train_inputs(bundle, torch.arange(min(per_class, size))), bundle))]
    parts: dict[str, Any] = {"groups": groups}
    augment = bundle.augment
    if augment.active and size:
        chosen = torch.arange(min(samples, size))
        x = _train_inputs(bundle, chosen)
        generator = torch.Generator().manual_seed(seed)
        made = torch.stack([augment_batch(x, augment, generator) for _ in range(versions)], dim=1)
        tricks = ([f"random crop after padding {augment.crop_padding}"] if augment.crop_padding else []) + (
            ["random horizontal flip"] if augment.hflip else [])
        parts.update(originals=to_pixels(x, bundle), augment_text=" + ".join(tricks),
                     augmented=to_pixels(made.flatten(0, 1), bundle).reshape(len(x), versions, *made.shape[3:],
                                                                              made.shape[2]))
    return parts


def _rounded(x: torch.Tensor, bundle: DataBundle) -> torch.Tensor:
    """Un-normalised table values rounded to float32's precision at each column's scale, so a 0.0 in the
    file shows as 0, not as the 3.6e-09 that normalising and back leaves."""
    if bundle.mean is None:
        return x
    scale = torch.tensor(bundle.mean, dtype=torch.float64).abs() + torch.tensor(bundle.std, dtype=torch.float64)
    step = torch.pow(10.0, torch.floor(torch.log10(scale.clamp_min(1e-30))) - 6)
    return torch.round(x / step) * step + 0.0    # + 0.0: no "-0"


def _table_parts(bundle: DataBundle, labels: torch.Tensor, classes: list[str], rows: int) -> dict:
    chosen = torch.arange(min(rows, bundle.train_size))
    x = _train_inputs(bundle, chosen).to(torch.float64)
    if bundle.mean is not None:
        x = x * torch.tensor(bundle.std, dtype=torch.float64) + torch.tensor(bundle.mean, dtype=torch.float64)
    width = x.shape[1]
    features = list(bundle.feature_names) if len(bundle.feature_names) == width else [f"x{i + 1}" for i in range(width)]
    table = [[f"{value:.6g}" for value in row] for row in _rounded(x, bundle).tolist()]
    if bundle.task == "classification":
        targets = list(bundle.target_names) or ["label"]
        table = [row + [classes[int(label)]] for row, label in zip(table, labels[chosen].tolist(), strict=True)]
    elif bundle.task == "regression":
        y = labels[chosen].reshape(len(chosen), -1)
        targets = list(bundle.target_names) if len(bundle.target_names) == y.shape[1] else \
            [f"y{i + 1}" for i in range(y.shape[1])]
        table = [row + [f"{value:.6g}" for value in values] for row, values in zip(table, y.tolist(), strict=True)]
    else:
        targets = []
    return {"columns": features + targets, "rows": table}
