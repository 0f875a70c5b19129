"""`layerstudio train --checkpoint`: a checkpoint after every epoch, so a `kill -9` loses at most the epoch it hit."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.data import DataConfig, load_data
from engine.io import read_checkpoint, read_state_dict
from engine.templates import load_design
from engine.training import TrainConfig, Trainer
from tests.engine.test_cli_train import train

REPOSITORY = Path(__file__).resolve().parents[2]  # the child runs this checkout's engine, not an installed one
EPOCHS = 5  # epochs left to kill the run in after the first checkpoint (the test polls every 10 ms)
LENET = ["lenet", "--limit", "1200", "--batch-size", "64", "--epochs", str(EPOCHS)]  # 17 steps an epoch


def wait_for_file(path, process, timeout_s: float = 300.0) -> None:
    """Poll (every 10 ms) until ``path`` exists; fails if the process ends first."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert process.poll() is None, f"the run ended before writing {path}: {process.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, f"no {path} in {timeout_s} s"
        time.sleep(0.01)


def test_kill_9_after_the_first_epoch_leaves_a_checkpoint_that_resumes_to_the_same_weights(tmp_path, capsys):
    straight = tmp_path / "straight.pt"
    code, _, err = train(capsys, *LENET, "--save", straight)
    assert code == 0, err

    checkpoint = tmp_path / "ck.pt"
    process = subprocess.Popen([sys.executable, "-m", "engine.cli", "train", *LENET, "--checkpoint", str(checkpoint)],
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": str(REPOSITORY)})
    try:
        wait_for_file(checkpoint, process)
        process.kill()  # SIGKILL: no handler runs, nothing is saved on the way out
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -9, "the run finished before it could be killed: make it longer"

    saved = read_checkpoint(checkpoint)
    spec, _ = load_design("lenet")
    trainer = Trainer(spec, load_data(DataConfig(limit=1200)), TrainConfig(batch_size=64, epochs=EPOCHS))
    trainer.load_checkpoint(saved)                      # every field checked against the design and data
    assert 1 <= trainer.epoch < EPOCHS

    resumed = tmp_path / "resumed.pt"
    code, lines, err = train(capsys, "lenet", "--resume", checkpoint, "--save", resumed)
    assert code == 0, err
    assert f"resuming after epoch {trainer.epoch}" in lines[1]
    expected, got = read_state_dict(straight), read_state_dict(resumed)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[key], got[key]) for key in expected)


def test_checkpoint_every_writes_inside_epochs_and_resumes(tmp_path, capsys):
    checkpoint = tmp_path / "ck.pt"
    code, lines, err = train(capsys, "softmax-regression", "--limit", "300", "--epochs", "2",
                             "--checkpoint", checkpoint, "--checkpoint-every", "0.0001")
    assert code == 0, err
    assert f"Checkpoint saved to {checkpoint}" in lines
    assert read_checkpoint(checkpoint)["epoch"] == 2


@pytest.mark.parametrize("args, message", [
    (["--checkpoint-every", "5"], "--checkpoint-every needs --checkpoint"),
    (["--checkpoint", "ck.pt", "--checkpoint-every", "0"], "--checkpoint-every must be a number of minutes above 0"),
    (["--checkpoint", "ck.pt", "--checkpoint-every", "nan"], "--checkpoint-every must be"),
])
def test_checkpoint_every_needs_a_checkpoint_and_a_positive_time(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, lines, err = train(capsys, "softmax-regression", "--limit", "64", *args)
    assert code == 1 and not lines
    assert err.startswith("Error: ") and message in err, err


def test_a_checkpoint_that_cannot_be_written_is_a_warning_then_an_error(tmp_path, capsys, monkeypatch):
    """The folder vanishes during the run: training goes on with a warning, and the run ends with exit 1."""
    folder = tmp_path / "out"
    folder.mkdir()
    checkpoint = folder / "ck.pt"
    original = Trainer.run

    def run_then_remove_folder(self, on_event=None, should_stop=None):
        folder.rmdir()
        return original(self, on_event, should_stop)

    monkeypatch.setattr(Trainer, "run", run_then_remove_folder)
    code, lines, err = train(capsys, "softmax-regression", "--limit", "300", "--epochs", "2",
                             "--checkpoint", checkpoint)
    assert code == 1
    assert any(line.startswith("Warning: ") and "does not exist" in line for line in lines)
    assert [line for line in lines if line.startswith("Epoch ")][-1].startswith("Epoch 2/2")
    assert err.strip().splitlines()[-1].startswith("Error: ") and "does not exist" in err
