"""Image folders: one subfolder of pictures per class (or train/ and test/ each holding them), decoded by PIL
in parallel threads and resized to image_size, cached (engine.data.cache) by the files' modification times.

Files that are not pictures and pictures that cannot be decoded are left out and named in the bundle's notes.
With ``DataConfig.stream`` the training pictures stay on disk (``ImageFileDataset``, read per batch).
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from torch.utils.data import Dataset

from engine.data.bundle import (
    Augment,
    DataBundle,
    Decoded,
    assemble,
    class_notes,
    images_to_float,
    normalise,
    resolve_task,
    split_indices,
    statistics,
)
from engine.data.cache import cached
from engine.data.config import DataConfig
from engine.data.downloads import needed_root
from engine.data.sources import IMAGE_EXTENSIONS
from engine.errors import DataError
from engine.task import Task

# Normalisation statistics of a streamed image folder come from this many training images.
STREAM_STATS_SAMPLES = 1000
log = logging.getLogger(__name__)


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


def decode_image(path: Path | BinaryIO, size: int, grayscale: bool) -> np.ndarray:
    """One picture (a file, or its bytes in an open file) as uint8 (C, size, size), resized with bilinear
    filtering (DataError when unreadable)."""
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
        x = images_to_float(torch.from_numpy(decode_image(self.paths[index], self.size, self.grayscale))[None])
        if self.mean is not None and self.std is not None:
            x = normalise(x, self.mean, self.std)
        x = x[0]
        return (x, x) if self.reconstruction else (x, torch.tensor(self.labels[index], dtype=torch.int64))


def load_image_folder(config: DataConfig, progress: Task) -> DataBundle:
    """One subfolder per class (or train/ and test/ each holding them), resized to image_size.

    Files that are not pictures and pictures that cannot be decoded are left out and named in the
    bundle's notes; a folder with no readable picture at all is refused.
    """
    root = needed_root(config)
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

    parts = cached(config.source, root, train.paths + test.paths, {"size": size, "grayscale": gray}, decode, progress)
    notes = _image_folder_notes(root, [train, test], [Path(path) for path in parts.get("skipped", [])])
    decoded = Decoded(name, parts["train_x"], parts["train_y"], parts["classes"], "classification",
                      parts["test_x"] if has_test else None, parts["test_y"] if has_test else None, notes=notes)
    return assemble(decoded, config, progress)


def _kept(items: list, paths: list[Path], skipped: list[Path]) -> list:
    """``items`` (one per path) without those of the skipped paths."""
    left_out = set(skipped)
    return [item for item, path in zip(items, paths, strict=True) if path not in left_out]


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
    task = resolve_task(name, "classification", config.task)
    paths, labels, classes = train.paths, train.labels, train.classes
    train_idx, val_idx = split_indices(len(paths), config.val_fraction, config.limit, config.seed, name)
    size, gray = config.image_size, config.grayscale
    skipped: list[Path] = []

    def images(chosen: list[Path], start: float, stop: float) -> torch.Tensor:
        x, failed = _decode_images(chosen, size, gray, progress.stage(start, stop), name)
        skipped.extend(failed)
        return images_to_float(x)

    val_paths = [paths[i] for i in val_idx.tolist()]
    val_x = images(val_paths, 0.0, 0.4)
    test_x = images(test.paths, 0.4, 0.8)
    mean = std = None
    if config.normalize and task != "reconstruction":
        pick = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(config.seed))
        mean, std = statistics(images([paths[i] for i in train_idx[pick[:STREAM_STATS_SAMPLES]].tolist()], 0.8, 0.95))
        val_x, test_x = normalise(val_x, mean, std), normalise(test_x, mean, std)
    reconstruction = task == "reconstruction"
    notes = _image_folder_notes(root, [train, test], skipped)
    train_labels = [labels[i] for i in train_idx]
    if not reconstruction:
        notes += class_notes(name, classes, torch.tensor(train_labels, dtype=torch.int64))
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
