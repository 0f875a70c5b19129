"""Downloads and where a source's files are: what a download weighs and whether it is needed, the default data
folder, fetching a file, and torchvision's MNIST / CIFAR-10 downloads.

What each source downloads (its files and their sizes) is declared on its entry in engine.data.sources. A
source that names no folder keeps its files in the default data folder, ``engine.paths.datasets_dir()`` (the
user's data folder; ``LAYERSTUDIO_HOME`` in tests). Imports neither torch nor torchvision (the CIFAR-10
archive is extracted by torchvision, imported then), so the window can ask what is pending on every
settings change. A stopped or failed download leaves no file behind.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.controls import control
from engine.data.sources import SOURCES
from engine.errors import DataError
from engine.files import write_atomically
from engine.paths import datasets_dir
from engine.task import Progress, Task

DOWNLOAD_CHUNK = 1 << 16


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
    entry = SOURCES.get(source)
    return datasets_dir() if entry is not None and entry.download is not None else None


def needed_root(config) -> Path:
    """The folder (or CSV file) a DataConfig names, with ~ expanded; the default data folder for a download;
    DataError when a source that needs one has none."""
    root = dataset_root(config.source, config.root)
    if root is None:
        source = SOURCES[config.source]
        if source.root == "file":
            raise DataError(f"{source.title} needs a file: choose the .csv file to read.")
        raise DataError(f"{source.title} needs a folder: choose where its files are.")
    return root


def _present(folder: Path, name: str) -> bool:
    """A file counts as there unpacked or gzipped (the loader unpacks a .gz it finds)."""
    return (folder / name).is_file() or (folder / f"{name}.gz").is_file()


def pending_download(config) -> PendingDownload | None:
    """What loading ``config`` (a DataConfig) would download, or None when nothing (not a downloadable
    source, or every file there). Checks files only: cheap enough for every settings change."""
    source = SOURCES.get(config.source)
    root = dataset_root(config.source, config.root)
    if source is None or source.download is None or root is None:
        return None
    download = source.download
    folder = root / download.folder
    size = sum(size for _name, size, unpacked in download.files
               if not all(_present(folder, name) for name in unpacked))
    return PendingDownload(source.title, size, root, bool(config.download)) if size else None


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


def download_mnist_files(cls: type[Any], raw: Path, missing: list[str], label: str, progress: Task) -> None:
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
        gunzip(raw / filename, raw / Path(filename).stem)


def download_cifar10(cls: type[Any], root: Path, progress: Task) -> None:
    from torchvision.datasets.utils import extract_archive

    archive = root / cls.filename
    try:
        download_file(cls.url, archive, cls.tgz_md5, progress)
    except DataError as exc:
        raise DataError(f"CIFAR-10 download failed. {exc} Extract {cls.filename} into {root} yourself "
                        f"(it makes {cls.base_folder}/), then load again.") from exc
    progress(1.0, f"Extracting {cls.filename}")
    extract_archive(str(archive), str(root))     # the MD5-verified original archive


def gunzip(source: Path, target: Path) -> None:
    """Decompress source to target atomically (a failed run leaves no half file)."""
    try:
        with gzip.open(source, "rb") as packed:
            write_atomically(target, lambda out: shutil.copyfileobj(packed, out, 1 << 20), "unpacked file", DataError,
                             make_folder=True)
    except (OSError, EOFError, DataError) as exc:
        raise DataError(f"Cannot unpack {source} into {target.parent} ({exc}): unpack it there yourself, or replace "
                        f"it with an intact copy.") from exc
