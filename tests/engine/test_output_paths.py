"""Output paths (`train --save/--checkpoint`, `export --python`) are checked before any work: a bad suffix, a
missing folder or a folder given as the file is refused with one line naming the flag, and no run starts."""
from __future__ import annotations

import pytest

from engine.cli import main

TRAIN = ["train", "softmax-regression", "--data", "mnist-sample", "--limit", "64", "--epochs", "1"]


@pytest.mark.parametrize("flag, name, fragment", [
    ("--save", "weights.txt", "Cannot tell the format of 'weights.txt' from its suffix: name the --save file .pt or "
                              ".safetensors"),
    ("--save", "weights", "Cannot tell the format of 'weights'"),
    ("--save", "missing/weights.pt", "the folder"),
    ("--save", ".", "is a folder: give a file name for the --save file, e.g."),
    ("--checkpoint", "run.safetensors", "name the --checkpoint file .pt or"),
    ("--checkpoint", "missing/run.pt", "does not exist"),
])
def test_a_bad_training_output_is_refused_before_training(tmp_path, capsys, monkeypatch, flag, name, fragment):
    monkeypatch.chdir(tmp_path)
    assert main([*TRAIN, flag, name]) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("Error: ") and fragment in err, err
    assert not out  # no data summary, no epoch: nothing was trained
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_good_outputs_are_written_after_training(tmp_path, capsys):
    assert main([*TRAIN, "--save", str(tmp_path / "w.safetensors"), "--checkpoint", str(tmp_path / "run.ckpt")]) == 0
    assert (tmp_path / "w.safetensors").read_bytes()[8:9] == b"{" and (tmp_path / "run.ckpt").stat().st_size


@pytest.mark.parametrize("name, fragment", [
    ("model.txt", "name the --python file .py"),
    ("missing/model.py", "does not exist"),
    (".", "is a folder"),
])
def test_export_checks_its_target_first(tmp_path, capsys, monkeypatch, name, fragment):
    monkeypatch.chdir(tmp_path)
    assert main(["export", "lenet", "--python", name]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_export_replaces_a_script_whole(tmp_path, capsys):
    script = tmp_path / "model.py"
    script.write_text("old")
    assert main(["export", "mlp", "--python", str(script)]) == 0
    assert script.read_text().startswith('"""A LayerStudio design as plain PyTorch')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py"]  # no temp file left behind
