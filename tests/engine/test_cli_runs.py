"""`layerstudio train` records every run, and `layerstudio runs list|show|compare|export` reads them back: real short
runs on the bundled MNIST sample, each test with its own data folder (so its own history file)."""
from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.history import RunHistory
from engine.templates import load_design

QUICK = ["--data", "mnist-sample", "--limit", "200", "--batch-size", "50", "--no-health"]


@pytest.fixture(autouse=True)
def own_history(tmp_path, monkeypatch):
    """This test's own data folder: the history the commands use is empty at the start."""
    monkeypatch.setenv("LAYERSTUDIO_HOME", str(tmp_path / "home"))


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([*map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_runs_are_recorded_and_listed_shown_compared_and_exported(tmp_path, capsys, one_torch_thread):
    weights, checkpoint = tmp_path / "w.pt", tmp_path / "ck.pt"
    code, _, err = cli(capsys, "train", "softmax-regression", *QUICK, "--epochs", "2", "--save", weights,
                       "--checkpoint", checkpoint)
    assert code == 0, err
    code, out, err = cli(capsys, "train", "mlp", *QUICK, "--epochs", "1", "--lr", "0.01")
    assert code == 0, err
    test_line = out.splitlines()[-1]

    first, second = sorted(RunHistory().list(), key=lambda run: run.id)
    assert (first.name, first.epochs_done, first.reason, second.name, second.lr) == \
        ("softmax-regression", 2, "completed", "mlp", 0.01)
    assert f"{100 * second.test_acc:.1f}%" in test_line  # the figures the command printed
    record = RunHistory().get(first.id)
    assert (record.weights_path, record.checkpoint_path) == (str(weights), str(checkpoint))

    code, out, _ = cli(capsys, "runs", "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["ID", "Started", "Design"]
    assert [line.split()[0] for line in lines[1:]] == [str(second.id), str(first.id)]  # newest first
    assert "2/2" in lines[2] and "completed" in lines[2]
    code, out, _ = cli(capsys, "runs", "list", "--sort", "lr", "--ascending", "--limit", "1")
    assert out.splitlines()[1].split()[0] == str(first.id) and "Showing 1 of 2 runs" in out
    code, out, _ = cli(capsys, "runs", "list", "--filter", "MLP")
    assert len(out.splitlines()) == 2 and "mlp" in out
    code, out, _ = cli(capsys, "runs", "list", "--filter", "resnet")
    assert out.strip() == "No runs match 'resnet'."

    code, out, _ = cli(capsys, "runs", "show", first.id)
    assert code == 0 and out.startswith(f"Run {first.id}: softmax-regression on mnist-sample")
    assert f"Weights: {weights}" in out and f"Checkpoint: {checkpoint}" in out
    epochs = out.split("Epochs:\n")[1].splitlines()
    assert epochs[0].split()[:3] == ["Epoch", "Train", "loss"] and [e.split()[0] for e in epochs[1:]] == ["1", "2"]
    assert any(line.split() == ["batch_size", "50"] for line in out.splitlines())

    code, out, _ = cli(capsys, "runs", "compare", first.id, second.id)
    assert code == 0
    assert any(line.startswith("+") and "Linear (fc1)" in line and "added" in line  # mlp's hidden layer
               for line in out.splitlines())
    assert any(line.startswith("training.lr") and "0.001" in line and "0.01" in line for line in out.splitlines())
    assert any(line.startswith("training.epochs") for line in out.splitlines())

    exported = tmp_path / "again.json"
    code, out, _ = cli(capsys, "runs", "export", second.id, exported)
    assert code == 0 and out.startswith(f"Wrote {exported}")
    spec, design = load_design(exported)  # a design file the app opens, with the run's own settings
    assert design["training"]["lr"] == 0.01 and design["data"]["source"] == "mnist-sample"
    assert spec == load_design("mlp")[0]
    code, _, err = cli(capsys, "runs", "export", first.id, exported)
    assert code == 1 and "exists: give --force" in err
    assert json.loads(exported.read_text())["training"]["lr"] == 0.01  # nothing overwritten
    assert cli(capsys, "runs", "export", first.id, exported, "--force")[0] == 0
    assert json.loads(exported.read_text())["training"]["lr"] == 0.001


def test_failed_runs_are_recorded_with_the_sentence_the_command_printed(tmp_path, capsys):
    code, _, err = cli(capsys, "train", "mlp", "--data", f"folder:{tmp_path / 'missing'}", "--epochs", "1")
    assert code == 1
    code, _, err2 = cli(capsys, "train", "lenet", "--data", "synthetic-regression", "--epochs", "1")  # shapes differ
    assert code == 1
    data_error, design_error = sorted(RunHistory().list(), key=lambda run: run.id)
    assert data_error.reason == design_error.reason == "error"
    assert err.strip() == f"Error: {data_error.message}" and err2.strip() == f"Error: {design_error.message}"
    code, out, _ = cli(capsys, "runs", "list", "--filter", "error")
    assert code == 0 and len(out.splitlines()) == 3


def test_lr_find_is_not_a_run(capsys):
    code, _, err = cli(capsys, "lr-find", "softmax-regression", *QUICK, "--steps", "20")
    assert code == 0, err
    assert RunHistory().count() == 0


def test_runs_commands_say_what_is_wrong_in_one_sentence(tmp_path, capsys):
    code, out, _ = cli(capsys, "runs", "list")
    assert code == 0 and out.startswith("No runs recorded yet")
    assert cli(capsys, "runs", "show", "7")[2].strip() == \
        "Error: There is no run 7 in the run history: `layerstudio runs list` shows the runs' ids."
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(b"garbage " * 200)
    code, _, err = cli(capsys, "runs", "list", "--history", damaged)
    assert code == 1 and err.startswith(f"Error: The run history {damaged} cannot be used (file is not a database)")
    code, _, err = cli(capsys, "runs", "export", "1", tmp_path / "x.txt")
    assert code == 1 and "suffix" in err
