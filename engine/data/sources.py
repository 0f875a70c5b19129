"""The data sources: one registry, read by everything that names, offers or loads a source.

Each ``DataSource`` is declared once, here, with what the rest of the app needs to know about it: its
``name`` (a design file's ``"source"``, ``--data NAME``), its ``title`` in summaries and messages, its
``label`` in the Training tab's Dataset list, what ROOT names for it (a folder, a file or nothing), what it
downloads, whether it gives images (a built-in image dataset also its sample counts and image size), the
data settings only it reads, and its loader. DataConfig's validation and ``--data`` (engine.data.config),
``layerstudio train --help``, the Training tab's Dataset list and the rows it shows for each source
(gui.training.settings), the download check (engine.data.downloads), loading (engine.data.bundle), the
memory guard (engine.memory) and fitting (engine.fitting) all read this registry: adding a source is one
``register(DataSource(...))``.

torchvision names the files it fetches (``MNIST.resources``, ``CIFAR10.url``) but not their sizes; the byte
counts are declared here, on the source that downloads them, so the window and the CLI can say how much a
run will download before it starts. Loaders are imported on their first call, so this module (and with it
DataConfig) imports no torch: the window reads the registry on every settings change.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.data.bundle import DataBundle
    from engine.data.config import DataConfig
    from engine.task import Task

Loader = Callable[["DataConfig", "Task"], "DataBundle"]

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta")
# The files an image folder reads, by the name's extension.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
DIGIT_NAMES = [str(digit) for digit in range(10)]


@dataclass(frozen=True)
class Download:
    """One source's download: the folder below the root its files go to (torchvision's layout), and each
    downloaded file with its size in bytes and the files it unpacks to (their presence means it is not needed)."""

    folder: str
    files: tuple[tuple[str, int, tuple[str, ...]], ...]

    @property
    def total_bytes(self) -> int:
        return sum(size for _name, size, _unpacked in self.files)


@dataclass(frozen=True)
class BuiltIn:
    """A built-in image dataset's fixed facts: its training and test sample counts, and its images' channels
    and own side length (image_size only ever enlarges them, per batch: see engine.data.enlarge)."""

    train: int
    test: int
    channels: int
    side: int


@dataclass(frozen=True)
class DataSource:
    """One data source, as every part of the app knows it.

    ``root``: what ROOT (DataConfig.root, ``--data NAME:ROOT``, the Folder / CSV file row) names for it:
    ``"folder"``, ``"file"``, or ``""`` when it reads no files the user names. A source that ``download``s
    takes the default data folder when ROOT is empty; any other with a ``root`` needs one (``needs_root``).
    ``digits``: handwritten digits, which a random horizontal flip only garbles (a mirrored 2 or 7 is no
    digit). ``own_settings``: the DataConfig settings only this source reads (the window shows their rows
    for it alone); image sources also read image_size and the augmentation settings.
    """

    name: str
    title: str
    label: str
    load: Loader
    root: str = ""
    download: Download | None = None
    images: bool = False
    builtin: BuiltIn | None = None
    digits: bool = False
    own_settings: tuple[str, ...] = ()
    help: str = ""         # what it loads, one line (the README's --data table, the Dataset list's tooltips)
    root_label: str = ""   # the Folder / file row's label for this source (default: "Folder" or "File")
    root_help: str = ""    # what ROOT must hold, one line

    @property
    def root_title(self) -> str:
        return self.root_label or ("File" if self.root == "file" else "Folder")

    @property
    def fixed_facts(self) -> BuiltIn:
        """A built-in image dataset's facts; ValueError for any other source (a caller's mistake)."""
        if self.builtin is None:
            raise ValueError(f"{self.name!r} is not a built-in image dataset")
        return self.builtin

    @property
    def needs_root(self) -> bool:
        """ROOT must be given: a folder or file the user chooses, with no default to fall back on."""
        return bool(self.root) and self.download is None


# Every source by name, in the order the window's Dataset list and the CLI's help show them.
SOURCES: dict[str, DataSource] = {}


def register(source: DataSource) -> DataSource:
    """Add a source to the registry (last in the lists); its name must be new."""
    if source.name in SOURCES:
        raise ValueError(f"data source {source.name!r} is registered already")
    SOURCES[source.name] = source
    return source


def lazy_loader(module: str, function: str) -> Loader:
    """The loader ``module.function``, imported on its first call (so the registry imports no torch)."""
    def load(config: DataConfig, task: Task) -> DataBundle:
        return getattr(importlib.import_module(module), function)(config, task)

    load.__qualname__ = f"{module}.{function}"
    return load


def _mnist_like(folder: str, sizes: tuple[int, int, int, int]) -> Download:
    return Download(folder, tuple((f"{name}.gz", size, (name,)) for name, size in zip(MNIST_FILES, sizes, strict=True)))


_VISION = "engine.data.vision"
register(DataSource("mnist-sample", "MNIST sample", "MNIST sample (bundled)", lazy_loader(_VISION, "load_mnist_sample"),
                    images=True, builtin=BuiltIn(4000, 1000, 1, 28), digits=True,
                    help="the bundled MNIST sample (4000 train / 1000 test images, works offline)"))
_RECEIVES = "The folder holding (or receiving) the dataset's files; empty: the default data folder"
register(DataSource("mnist", "MNIST", "MNIST", lazy_loader(_VISION, "load_mnist"), root="folder", root_help=_RECEIVES,
                    download=_mnist_like("MNIST/raw", (9_912_422, 28_881, 1_648_877, 4_542)),
                    images=True, builtin=BuiltIn(60000, 10000, 1, 28), digits=True,
                    help="MNIST through torchvision, from folder ROOT (default: the data folder)"))
register(DataSource("fashion-mnist", "Fashion-MNIST", "Fashion-MNIST", lazy_loader(_VISION, "load_fashion_mnist"),
                    root="folder", root_help=_RECEIVES,
                    download=_mnist_like("FashionMNIST/raw", (26_421_880, 29_515, 4_422_102, 5_148)),
                    images=True, builtin=BuiltIn(60000, 10000, 1, 28),
                    help="Fashion-MNIST through torchvision, from ROOT (default: the data folder)"))
register(DataSource("cifar10", "CIFAR-10", "CIFAR-10", lazy_loader(_VISION, "load_cifar10"), root="folder",
                    root_help=_RECEIVES,
                    download=Download("cifar-10-batches-py", (("cifar-10-python.tar.gz", 170_498_071, CIFAR10_FILES),)),
                    images=True, builtin=BuiltIn(50000, 10000, 3, 32),
                    help="CIFAR-10 through torchvision, from ROOT (default: the data folder)"))
register(DataSource("folder", "Image folder", "Image folder", lazy_loader("engine.data.folders", "load_image_folder"),
                    root="folder", images=True, own_settings=("grayscale", "stream"),
                    root_help="A folder with one subfolder of pictures per class",
                    help="an image folder with one subfolder of pictures per class"))
register(DataSource("csv", "CSV table", "CSV file", lazy_loader("engine.data.tables", "load_csv"), root="file",
                    own_settings=("label_column",), root_label="CSV file",
                    root_help="A CSV table: numeric feature columns and a label column",
                    help="a CSV table of numeric columns with a label column"))
register(DataSource("synthetic-regression", "Synthetic regression", "Synthetic regression",
                    lazy_loader("engine.data.tables", "load_synthetic_regression"),
                    own_settings=("weights", "bias", "samples", "noise"),
                    help="y = Xw + b + noise (by default w = [2, -3.4], b = 4.2, 1000 samples)"))

# The built-in datasets' own side lengths, read off their entries above (not a second declaration).
NATIVE_IMAGE_SIZES = {source.name: source.builtin.side for source in SOURCES.values() if source.builtin}
