"""Which data to train on: ``DataConfig`` (a design file's "data" section), its checks and ``--data``.

Every setting is declared once, on its field (engine.schema): its range, label, help and when it matters;
a source is one the registry (engine.data.sources) holds. User mistakes raise ``DataError`` with a sentence
saying what to do. Imports no torch: the window and the command line read and check settings before torch loads.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.data.sources import SOURCES, DataSource
from engine.errors import DataError
from engine.schema import When, check_fields, check_settings, either, setting, settings_dict

TASK_CHOICES = (("auto", "Auto (from the data)"), ("classification", "classification"),
                ("regression", "regression"), ("reconstruction", "reconstruction (autoencoder)"))
TASKS = tuple(name for name, _label in TASK_CHOICES)
MAX_SAMPLES = 10**9  # the most samples a setting names (the memory check refuses what cannot fit long before)


def _source_is(test: Callable[[DataSource], bool]) -> When:
    """When the chosen source (looked up in the registry at each change) passes ``test``."""
    def applies(values) -> bool:
        source = SOURCES.get(values.get("source"))
        return source is not None and test(source)

    return When(applies, lambda: "source is " + either(name for name, s in SOURCES.items() if test(s)))


def _read_by_source(name: str) -> When:
    """When the chosen source is one that reads setting ``name`` (its own settings in the registry)."""
    return _source_is(lambda source: name in source.own_settings)


def _source_choices() -> tuple[tuple[str, str], ...]:
    return tuple((source.name, source.label) for source in SOURCES.values())


_DOWNLOADS = _source_is(lambda source: source.download is not None)
_IMAGES = _source_is(lambda source: source.images)
_SAMPLES = dict(low=0, high=MAX_SAMPLES, unit="samples")


@dataclass
class DataConfig:
    """Which data to train on and how to prepare it; a design file's "data" section.

    ``image_size``: side length image-folder pictures are resized to; the built-in image datasets
    (MNIST sample, MNIST, Fashion-MNIST, CIFAR-10) are only ever *enlarged* to it (D2L's ``resize=``
    for AlexNet/VGG at 224), never shrunk, and per batch (they are held at their own size).
    ``label_column``: the CSV target column (several, comma-separated, for multi-output regression).
    ``limit``: use at most this many samples of the source's training set (before the validation
    split; tests and quick runs). ``normalize`` is ignored for synthetic regression (the model should
    recover w and b as given) and for reconstruction (the target is the input in [0, 1], which a
    Sigmoid output can match). ``stream``: keep the training split as a lazily read Dataset.
    """

    source: str = setting("mnist-sample", "Dataset", choices=_source_choices, flag="",
                          help="Where the samples come from (the CLI's --data SOURCE[:ROOT])")
    root: str = setting("", "Folder", widget="path", flag="", when=_source_is(lambda source: bool(source.root)),
                        help="The folder or file the source reads; empty: the default data folder for a dataset "
                             "that downloads (the CLI's --data SOURCE:ROOT)")
    download: bool = setting(False, "Download if missing", when=_DOWNLOADS,
                             help="Fetch the dataset into the folder when it is not there (its size is shown first)")
    label_column: str = setting("label", "Label column", when=_read_by_source("label_column"), pattern=r"\s*\S.*",
                                hint="a column name", metavar="NAME",
                                help="Which CSV column holds the target (several, comma-separated, for "
                                     "multi-output regression)")
    image_size: int = setting(28, "Image size", low=1, high=4096, unit="pixels", when=_IMAGES,
                              help="Images are resized to this many pixels per side (the built-in datasets are only "
                                   "enlarged, batch by batch: they stay at their own size in memory)")
    grayscale: bool = setting(True, "Grayscale", when=_read_by_source("grayscale"),
                              help="Convert images to one channel")
    weights: tuple[float, ...] = setting((2.0, -3.4), "True weights w", low=-1e6, high=1e6, items=(1, 100_000),
                                         hint="one per input feature", when=_read_by_source("weights"),
                                         metavar="W1,W2,...", flag="--true-weights",
                                         help="y = Xw + b + noise: one weight per feature, e.g. 2, -3.4")
    bias: float = setting(4.2, "True bias b", low=-1e6, high=1e6, when=_read_by_source("bias"), flag="--true-bias",
                          help="The b in y = Xw + b + noise")
    samples: int = setting(1000, "Samples", low=2, high=MAX_SAMPLES, unit="samples", when=_read_by_source("samples"),
                           help="How many samples to generate")
    noise: float = setting(0.01, "Noise std", low=0.0, high=1e6, when=_read_by_source("noise"),
                           help="Standard deviation of the noise added to y")
    task: str = setting("auto", "Task", choices=TASK_CHOICES, help="What the network learns (auto: from the dataset)")
    val_fraction: float = setting(0.1, "Validation fraction", low=0.0, high=0.9, hint="e.g. 0.1 for 10%",
                                  help="Share of the training samples held out for validation")
    limit: int = setting(0, "Use at most", **_SAMPLES, hint="0 uses every sample",
                         help="Training samples to use (0 = all): quick trials")
    normalize: bool = setting(True, "Normalise", help="Scale inputs by the training set's mean and std")
    augment_crop_padding: int = setting(0, "Random crop padding", low=0, high=128, unit="pixels", when=_IMAGES,
                                        help="Pad and randomly crop back each batch (0 = off)")
    augment_hflip: bool = setting(False, "Random horizontal flip", when=_IMAGES,
                                  help="Mirror each training image left to right with probability 0.5")
    stream: bool = setting(False, "Stream from disk", when=_read_by_source("stream"),
                           help="Read training images lazily (for folders too big for memory)")
    seed: int = setting(0, "Split seed", low=0, high=2**31 - 1, flag="--split-seed",
                        help="Seed of the train/validation split")

    def __post_init__(self):
        self.weights = tuple(self.weights)

    def to_dict(self) -> dict:
        """Plain JSON data (lists, numbers, strings)."""
        return settings_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> DataConfig:
        """Read a "data" section; missing fields take defaults, anything wrong raises DataError."""
        config = cls(**check_settings(cls, data, "data", DataError))
        config.validate()
        return config

    def validate(self) -> None:
        """Raise DataError naming the first setting that is not one its declaration accepts."""
        check_fields(self, "data", DataError)


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
