"""The built-in image datasets: the bundled MNIST sample (IDX files read here) and torchvision's MNIST,
Fashion-MNIST and CIFAR-10 from a folder the user picks (or the default data folder, downloading into it).

Decoded datasets are cached (engine.data.cache), so the second load skips torchvision. The images stay at their
own size; a larger image_size enlarges them per batch (engine.data.enlarge).
"""
from __future__ import annotations

import gzip
import math
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.controls import control
from engine.data.bundle import DataBundle, Decoded, assemble
from engine.data.cache import cached
from engine.data.config import DataConfig
from engine.data.downloads import download_cifar10, download_mnist_files, gunzip, needed_root
from engine.data.sources import DIGIT_NAMES, MNIST_FILES, SOURCES
from engine.errors import DataError
from engine.task import Task

_PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, KeyError, ValueError)
_IDX_TYPES: dict[int, np.dtype] = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
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


def load_mnist_sample(config: DataConfig, progress: Task) -> DataBundle:
    """The bundled 4000/1000 MNIST sample, parsed straight from its gz IDX files (no torchvision import)."""
    from resources import MNIST_SAMPLE

    progress(0.0, "Reading the bundled MNIST sample")
    train_x, train_y, test_x, test_y = (read_idx(MNIST_SAMPLE / f"{name}.gz") for name in MNIST_FILES)
    decoded = Decoded(SOURCES[config.source].title, train_x.unsqueeze(1), train_y.long(), DIGIT_NAMES,
                      "classification", test_x.unsqueeze(1), test_y.long())
    return assemble(decoded, config, progress, _enlarge_to(config))


def _enlarge_to(config: DataConfig) -> int:
    """Built-in datasets are enlarged to image_size when it is larger than their own size, never shrunk."""
    return config.image_size if config.image_size > SOURCES[config.source].fixed_facts.side else 0


# --------------------------------------------------------------------------- torchvision datasets

def vision_tensors(dataset: Any) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images (uint8, N x C x H x W), labels (int64) and class names of a torchvision MNIST-like or CIFAR dataset."""
    data = dataset.data
    if isinstance(data, np.ndarray):          # CIFAR: N x H x W x C
        images = torch.from_numpy(np.ascontiguousarray(data.transpose(0, 3, 1, 2)))
    else:                                     # MNIST family: N x H x W
        images = data.unsqueeze(1).contiguous()
    labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    return images, labels, [str(name) for name in dataset.classes]


def load_mnist(config: DataConfig, progress: Task) -> DataBundle:
    """MNIST from ``ROOT/MNIST/raw``."""
    return _load_mnist_family("MNIST", config, progress)


def load_fashion_mnist(config: DataConfig, progress: Task) -> DataBundle:
    """Fashion-MNIST from ``ROOT/FashionMNIST/raw``."""
    return _load_mnist_family("FashionMNIST", config, progress)


def _load_mnist_family(class_name: str, config: DataConfig, progress: Task) -> DataBundle:
    """MNIST or Fashion-MNIST from ``ROOT/<class_name>/raw`` through torchvision's own class of that name."""
    from torchvision import datasets

    cls = getattr(datasets, class_name)
    source = SOURCES[config.source]
    label = source.title
    root = needed_root(config)
    raw = root / cls.__name__ / "raw"
    names = [Path(filename).stem for filename, _ in cls.resources]     # the uncompressed names torchvision reads

    # torchvision reads only uncompressed files: unpack any .gz the user put there (as its download does).
    for name in names:
        if not (raw / name).is_file() and (raw / f"{name}.gz").is_file():
            gunzip(raw / f"{name}.gz", raw / name)
    missing = [name for name in names if not (raw / name).is_file()]
    if missing and config.download:
        download_mnist_files(cls, raw, missing, label, progress.stage(0.0, 0.7))
        missing = [name for name in names if not (raw / name).is_file()]
    if missing:
        raise DataError(f"{label} files not found in {raw}: put {', '.join(n + '(.gz)' for n in missing)} there, "
                        f"or turn on {control('data.download')}.")

    def decode() -> dict:
        progress(0.75, f"Reading {label} with torchvision")
        parts: dict[str, Any] = {}
        for split, train in (("train", True), ("test", False)):
            progress.check()
            try:
                dataset = cls(str(root), train=train, download=False)
            except (RuntimeError, OSError, AssertionError, TypeError, ValueError) as exc:
                raise DataError(f"torchvision cannot read the {label} files in {raw} ({exc}): replace them with "
                                f"intact copies, or delete them and turn on {control('data.download')}.") from exc
            parts[f"{split}_x"], parts[f"{split}_y"], parts["classes"] = vision_tensors(dataset)
        return parts

    parts = cached(config.source, root, [raw / name for name in names], {}, decode, progress)
    classes = DIGIT_NAMES if source.digits else parts["classes"]
    decoded = Decoded(label, parts["train_x"], parts["train_y"], classes, "classification",
                      parts["test_x"], parts["test_y"])
    return assemble(decoded, config, progress, _enlarge_to(config))


def load_cifar10(config: DataConfig, progress: Task) -> DataBundle:
    """CIFAR-10 from ``ROOT/cifar-10-batches-py`` through torchvision's own class.

    torchvision verifies the MD5 of every batch before unpickling it (even without download), so only
    the original files are ever unpickled; a modified copy is refused with a DataError naming the files.
    """
    from torchvision import datasets
    from torchvision.datasets.utils import check_integrity

    cls = datasets.CIFAR10
    root = needed_root(config)
    folder = root / cls.base_folder
    checksums = [tuple(entry) for entry in cls.train_list + cls.test_list] + [(cls.meta["filename"], cls.meta["md5"])]
    names = [name for name, _ in checksums]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing and config.download:
        download_cifar10(cls, root, progress.stage(0.0, 0.7))
        missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataError(f"CIFAR-10 files not found in {folder}: put {', '.join(missing)} there (they come in "
                        f"{cls.filename}; extract it into {root}), or turn on {control('data.download')}.")

    def decode() -> dict:
        progress(0.75, "Checking and reading CIFAR-10 with torchvision")
        parts: dict[str, Any] = {}
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
                        f"replace them from {cls.filename}, or delete them and turn on "
                        f"{control('data.download')}.") from exc
                raise DataError(f"torchvision cannot read the CIFAR-10 files in {folder} ({exc}): replace them "
                                f"from {cls.filename}, or delete them and turn on {control('data.download')}.") from exc
            parts[f"{split}_x"], parts[f"{split}_y"], parts["classes"] = vision_tensors(dataset)
        return parts

    parts = cached(config.source, root, [folder / name for name in names], {}, decode, progress)
    decoded = Decoded(SOURCES[config.source].title, parts["train_x"], parts["train_y"], parts["classes"],
                      "classification", parts["test_x"], parts["test_y"])
    return assemble(decoded, config, progress, _enlarge_to(config))
