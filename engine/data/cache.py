"""The cache of decoded datasets: one tensor file per source and folder under ``cache_dir()``, keyed by the files'
sizes and modification times, so the second load of a torchvision dataset or an image folder skips decoding.

A cache file that cannot be read is rebuilt, one that cannot be written is skipped; a stop request ends the
write between pieces and leaves no partial file behind.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, cast

import torch

from engine.data.sources import SOURCES
from engine.errors import DataError
from engine.files import write_atomically
from engine.paths import cache_dir
from engine.task import Task

CACHE_FORMAT = "layerstudio.data-cache"
CACHE_VERSION = 1
WRITE_PIECE = 16 << 20  # cache files are written in pieces this large, so a stop request is honoured quickly


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


def cached(source: str, root: Path, files: list[Path], extra: dict, decode: Callable[[], dict],
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
                progress(0.9, f"Read {SOURCES[source].title} from the cache")
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
        torch.save(parts, cast(IO[bytes], _CheckedWriter(out, task)))  # torch needs only write and flush
    except RuntimeError:
        task.check()
        raise
