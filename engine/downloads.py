"""The datasets LayerStudio downloads: what each download weighs, where its files go, whether it is needed.

torchvision names the files it fetches (``MNIST.resources``, ``CIFAR10.url``) but not their sizes; the byte
counts are declared here, once per source, so the window and the CLI can say how much a run will download
before it starts. A source that names no folder keeps its files in the default data folder,
``engine.paths.datasets_dir()`` (the user's data folder; ``LAYERSTUDIO_HOME`` in tests).
Qt-free and torchvision-free, so the window can ask on every settings change.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.controls import control
from engine.paths import datasets_dir

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta")


@dataclass(frozen=True)
class Download:
    """One source's download: the folder below the root its files go to (torchvision's layout), and each
    downloaded file with its size in bytes and the files it unpacks to (their presence means it is not needed)."""

    folder: str
    files: tuple[tuple[str, int, tuple[str, ...]], ...]

    @property
    def total_bytes(self) -> int:
        return sum(size for _name, size, _unpacked in self.files)


def _mnist_like(folder: str, sizes: tuple[int, int, int, int]) -> Download:
    return Download(folder, tuple((f"{name}.gz", size, (name,)) for name, size in zip(MNIST_FILES, sizes)))


DOWNLOADS: dict[str, Download] = {
    "mnist": _mnist_like("MNIST/raw", (9_912_422, 28_881, 1_648_877, 4_542)),
    "fashion-mnist": _mnist_like("FashionMNIST/raw", (26_421_880, 29_515, 4_422_102, 5_148)),
    "cifar10": Download("cifar-10-batches-py", (("cifar-10-python.tar.gz", 170_498_071, CIFAR10_FILES),)),
}


@dataclass(frozen=True)
class PendingDownload:
    """What loading a data source will fetch: the dataset's name, the bytes and the folder they go into."""

    name: str
    size: int
    root: Path
    enabled: bool       # the settings allow the download (Download if missing / --download)

    def sentence(self) -> str:
        """``Fashion-MNIST will be downloaded (30.9 MB) into /home/me/.local/share/LayerStudio/datasets.``, or,
        with the download off, what is missing and the setting that fetches it (as the front end names it)."""
        from engine.memory import format_bytes

        if self.enabled:
            return f"{self.name} will be downloaded ({format_bytes(self.size)}) into {self.root}."
        return (f"{self.name} is not in {self.root} yet: turn on {control('data.download')} to fetch it "
                f"({format_bytes(self.size)}).")


def dataset_root(source: str, root: str) -> Path | None:
    """The folder (or file) a data source reads, with ~ expanded; the default data folder for a downloadable
    source that names none; None when a source that needs a path has none."""
    if root.strip():
        return Path(root).expanduser().resolve()
    return datasets_dir() if source in DOWNLOADS else None


def _present(folder: Path, name: str) -> bool:
    """A file counts as there unpacked or gzipped (the loader unpacks a .gz it finds)."""
    return (folder / name).is_file() or (folder / f"{name}.gz").is_file()


def pending_download(config) -> PendingDownload | None:
    """What loading ``config`` (a DataConfig) would download, or None when nothing (not a downloadable
    source, or every file there). Checks files only: cheap enough for every settings change."""
    from engine.data import SOURCES

    download = DOWNLOADS.get(config.source)
    root = dataset_root(config.source, config.root)
    if download is None or root is None:
        return None
    folder = root / download.folder
    size = sum(size for _name, size, unpacked in download.files
               if not all(_present(folder, name) for name in unpacked))
    return PendingDownload(SOURCES[config.source], size, root, bool(config.download)) if size else None
