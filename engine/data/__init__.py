"""Datasets as tensors: every source ends as CPU tensors plus what a trainer and a view need to know.

Sources (one registry, ``SOURCES``): the bundled MNIST sample, torchvision's MNIST / FashionMNIST / CIFAR10
from a folder the user picks, an image folder (one subfolder per class), a CSV table and synthetic linear
regression. ``load_data(config)`` returns a ``DataBundle`` whose training, validation and test tensors are
already split (seeded), converted to float32 and normalised with *training* statistics.

Streaming: with ``DataConfig.stream`` the training split is a ``torch.utils.data.Dataset`` in
``DataBundle.train_dataset`` (``train_x``/``train_y`` are then empty) for data that does not fit in
memory; ``DataBundle.train_loader(batch_size)`` wraps it in a shuffling ``DataLoader`` whose batches
look exactly like slices of ``train_x``/``train_y``. Validation and test stay tensors.

User mistakes (missing files, bad cells, impossible settings, a single class, data too large for the
free memory: see ``engine.memory``) raise ``DataError`` with a sentence saying what to do; what was left
out but need not stop training (unreadable pictures, files that are not pictures, classes without
training samples) is named in ``DataBundle.notes``. Loading reports through an ``engine.task.Task``: a stop
request ends it with ``Cancelled`` (downloads and cache files leave nothing half-written behind).

The modules: ``config`` (DataConfig, its ranges, ``--data``; no torch), ``sources`` (the registry; no torch),
``bundle`` (DataBundle, split and normalisation, augmentation, ``load_data``), ``enlarge`` (built-in images
enlarged per batch), ``vision`` (the MNIST sample, MNIST, Fashion-MNIST, CIFAR-10), ``folders`` (image
folders), ``tables`` (CSV, synthetic regression), ``downloads`` (sizes pending, fetching, the default data
folder) and ``cache`` (decoded datasets on disk).

Importing this package imports none of them: each name below is imported from its module on first use, so
``engine.data.config`` and ``engine.data.sources`` stay torch-free for the window and the command line.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the same names as _EXPORTS, for type checkers and editors (a test keeps the two equal)
    from engine.data.bundle import Augment, DataBundle, augment_batch, load_data
    from engine.data.config import MAX_SAMPLES, TASKS, DataConfig, data_arg_forms, parse_data_arg
    from engine.data.downloads import PendingDownload, dataset_root, download_file, pending_download
    from engine.data.folders import STREAM_STATS_SAMPLES, ImageFileDataset, decode_image
    from engine.data.sources import (
        DIGIT_NAMES,
        IMAGE_EXTENSIONS,
        NATIVE_IMAGE_SIZES,
        SOURCES,
        BuiltIn,
        DataSource,
        Download,
        register,
    )
    from engine.data.vision import read_idx, vision_tensors
    from engine.paths import cache_dir

# Where each name importable from ``engine.data`` lives.
_EXPORTS = {
    "engine.data.config": ("DataConfig", "MAX_SAMPLES", "TASKS", "data_arg_forms",
                           "parse_data_arg"),
    "engine.data.sources": ("DIGIT_NAMES", "IMAGE_EXTENSIONS", "NATIVE_IMAGE_SIZES", "SOURCES", "BuiltIn",
                            "DataSource", "Download", "register"),
    "engine.data.bundle": ("Augment", "DataBundle", "augment_batch", "load_data"),
    "engine.data.vision": ("read_idx", "vision_tensors"),
    "engine.data.folders": ("STREAM_STATS_SAMPLES", "ImageFileDataset", "decode_image"),
    "engine.data.downloads": ("PendingDownload", "dataset_root", "download_file", "pending_download"),
    "engine.paths": ("cache_dir",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value      # later look-ups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))
