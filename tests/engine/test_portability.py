"""Saving works where ``os.fchmod`` does not exist (Windows, Python 3.10-3.12) and gives each file the mode a
plain ``open()`` would give it under the user's umask; one atomic writer serves every kind of file, and the
app's own folders come from platformdirs (engine.paths), never from hard-coded paths.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.data import DataConfig, load_data
from engine.errors import SpecError
from engine.files import write_text_atomically
from engine.io import read_checkpoint, read_state_dict, save_checkpoint, save_weights
from engine.paths import cache_dir
from engine.spec import LayerSpec, NetworkSpec
from engine.training import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[2]
real_umask = os.umask


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=lambda mask: f"umask-{mask:03o}")
def windows_like(request, monkeypatch, tmp_path):
    """No os.fchmod (as on Windows), a given umask, and os.umask refused: a writer must neither need nor read it."""
    previous = real_umask(request.param)
    monkeypatch.delattr(os, "fchmod", raising=False)

    def refuse(mask):
        raise AssertionError("os.umask is process-wide and racy: a writer must not call it")

    monkeypatch.setattr(os, "umask", refuse)
    monkeypatch.setenv("LAYERSTUDIO_HOME", str(tmp_path / "home"))
    yield request.param
    real_umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def plain_open_mode(folder: Path) -> int:
    """The mode ``open(path, "wb")`` gives a new file here under the current umask."""
    probe = folder / "probe-plain-open.bin"
    with open(probe, "wb"):
        pass
    made = mode(probe)
    probe.unlink()
    return made


def tiny_spec() -> NetworkSpec:
    return NetworkSpec((1, 28, 28), (LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 10})))


def test_weights_and_checkpoints_save_without_fchmod_with_the_plain_open_mode(windows_like, tmp_path):
    assert not hasattr(os, "fchmod")
    expected = plain_open_mode(tmp_path)
    assert expected == 0o666 & ~windows_like
    data = load_data(DataConfig(limit=100, val_fraction=0.2))
    trainer = Trainer(tiny_spec(), data, TrainConfig(epochs=1, device="cpu"))
    for name in ("model.pt", "model.safetensors"):
        save_weights(trainer.model, tmp_path / name)
        assert mode(tmp_path / name) == expected, name
        loaded = read_state_dict(tmp_path / name)
        assert all(torch.equal(loaded[k], v) for k, v in trainer.model.state_dict().items())
    save_checkpoint(tmp_path / "run.ckpt.pt", trainer.checkpoint())
    assert mode(tmp_path / "run.ckpt.pt") == expected
    assert read_checkpoint(tmp_path / "run.ckpt.pt")["epoch"] == 0
    save_weights(trainer.model, tmp_path / "model.pt")  # replacing a file keeps the plain mode too
    assert mode(tmp_path / "model.pt") == expected
    assert not list(tmp_path.glob(".*.tmp"))  # no temp file left beside them


def test_designs_and_the_data_cache_save_without_fchmod_with_the_plain_open_mode(windows_like, tmp_path):
    expected = plain_open_mode(tmp_path)
    write_text_atomically(tmp_path / "design.json", '{"format": "layerstudio.design"}\n', "design", SpecError)
    assert mode(tmp_path / "design.json") == expected
    for name, colour in {"dark": (20, 20, 20), "light": (230, 230, 230)}.items():
        (tmp_path / "images" / name).mkdir(parents=True)
        for index in range(3):
            Image.new("RGB", (9, 9), colour).save(tmp_path / "images" / name / f"{index}.png")
    load_data(DataConfig(source="folder", root=str(tmp_path / "images"), image_size=8, val_fraction=0))
    cached = list(cache_dir().glob("folder-*.pt"))
    assert len(cached) == 1 and mode(cached[0]) == plain_open_mode(cache_dir())
    assert not list(cache_dir().glob(".*.tmp"))


# --------------------------------------------------------------------------- one way to write, one place for folders

FORBIDDEN = {
    "os.fchmod (missing on Windows)": r"\bos\.fchmod\b",
    "os.umask (process-wide, racy)": r"\bos\.umask\b",
    "a hard-coded .cache folder (use engine.paths)": r"[~/\"']\.cache\b",
    "its own temp-file-then-replace (use engine.files.write_atomically)":
        r"\bos\.(replace|rename)\(|\bshutil\.move\(|\btempfile\.|\bmkstemp\b|NamedTemporaryFile",
}


def test_only_engine_files_writes_atomically_and_nothing_hard_codes_the_users_folders():
    found = []
    for path in sorted([*ROOT.glob("engine/**/*.py"), *ROOT.glob("gui/**/*.py")]):
        if path == ROOT / "engine" / "files.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            found += [f"{path.relative_to(ROOT)}:{number}: {what}" for what, pattern in FORBIDDEN.items()
                      if re.search(pattern, code)]
    assert found == []
