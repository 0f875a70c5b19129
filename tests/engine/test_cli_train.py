"""`layerstudio train`: real short runs on the bundled MNIST sample and synthetic data, resume, Ctrl-C."""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest
import torch

from engine.build import build_model
from engine.cli import main
from engine.data import DataConfig, load_data
from engine.io import read_checkpoint, read_state_dict
from engine.templates import load_design
from engine.training import TrainConfig, Trainer
from tests.processes import process_env

QUICK = ["--data", "mnist-sample", "--limit", "300", "--batch-size", "64"]
EPOCH_LINE = re.compile(r"^Epoch (\d+)/(\d+)  train loss (\S+)  (.*)  lr \S+  \S+s$")
CLASSIFICATION_METRICS = re.compile(r"^train acc \d+\.\d%  val loss \S+  val acc \d+\.\d%$")
TEST_LINE = re.compile(r"^Test loss (\d+\.?\d*(?:e-?\d+)?)  accuracy (\d+\.\d)%$")


def train(capsys, *args) -> tuple[int, list[str], str]:
    code = main(["train", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def epoch_losses(lines: list[str]) -> dict[int, str]:
    return {int(m.group(1)): m.group(3) for m in map(EPOCH_LINE.match, lines) if m}


def design_copy(tmp_path, template: str, **sections) -> str:
    """A template saved as the user's own design file, optionally with "training"/"data" sections."""
    _, design = load_design(template)
    path = tmp_path / f"{template}.json"
    path.write_text(json.dumps({**design, **sections}))
    return str(path)


def test_short_run_prints_epochs_and_test_result_and_saves_loadable_weights(tmp_path, capsys):
    weights = tmp_path / "softmax.pt"
    code, lines, err = train(capsys, "softmax-regression", *QUICK, "--epochs", "1", "--save", weights)
    assert code == 0, err
    assert re.match(r"Epoch 1: step \d/5, loss ", err) and "\r" not in err  # progress on stderr: plain lines, no bar
    assert lines[0] == "Data: MNIST sample: 270 train / 30 val / 1000 test, 1x28x28, 10 classes"
    assert lines[1].startswith("Training on ") and "1 epoch of 5 steps" in lines[1]
    assert list(epoch_losses(lines)) == [1]
    assert CLASSIFICATION_METRICS.match(EPOCH_LINE.match(lines[2]).group(4)), lines[2]
    result = TEST_LINE.match(lines[-1])
    assert result, lines[-1]

    spec, _ = load_design("softmax-regression")
    model = build_model(spec)
    model.load_state_dict(torch.load(weights, weights_only=True), strict=True)
    # The saved weights are the trained ones: they reproduce the printed test accuracy.
    data = load_data(DataConfig(limit=300))
    with torch.inference_mode():
        accuracy = (model(data.test_x).argmax(1) == data.test_y).float().mean().item()
    assert f"{100 * accuracy:.1f}" == result.group(2)


def test_regression_prints_the_loss_only_and_saves_safetensors(tmp_path, capsys):
    weights = tmp_path / "linear.safetensors"
    code, lines, err = train(capsys, "linear-regression", "--data", "synthetic-regression", "--epochs", "2",
                             "--optimizer", "sgd", "--lr", "0.03", "--batch-size", "10", "--save", weights)
    assert code == 0, err
    # Synthetic regression has no test split: the last line reports the validation split, loss only.
    assert re.fullmatch(r"Val loss \d\S*", lines[-1]), lines[-1]
    assert list(epoch_losses(lines)) == [1, 2]
    assert "accuracy" not in "\n".join(lines)
    spec, _ = load_design("linear-regression")
    build_model(spec).load_state_dict(read_state_dict(weights), strict=True)


def test_design_sections_then_config_file_then_flags(tmp_path, capsys):
    design = design_copy(tmp_path, "softmax-regression", training={"epochs": 3, "batch_size": 100},
                         data={"source": "mnist-sample", "limit": 300})
    code, lines, _ = train(capsys, design)
    assert code == 0
    assert "3 epochs of 3 steps" in lines[1]                      # 270 samples / 100 per batch

    config = tmp_path / "run.json"
    config.write_text(TrainConfig(epochs=2, batch_size=30, optimizer="sgd", lr=0.05).to_json())
    code, lines, _ = train(capsys, design, "--config", config)
    assert code == 0 and "2 epochs of 9 steps" in lines[1]
    assert list(epoch_losses(lines)) == [1, 2]

    code, lines, _ = train(capsys, design, "--config", config, "--epochs", "1", "--batch-size", "135")
    assert code == 0 and "1 epoch of 2 steps" in lines[1]


def test_resume_continues_the_run_with_the_same_losses(tmp_path, capsys):
    checkpoint = tmp_path / "ck.pt"
    code, first, err = train(capsys, "softmax-regression", *QUICK, "--epochs", "1", "--checkpoint", checkpoint)
    assert code == 0, err
    assert read_checkpoint(checkpoint)  # written at the end of a normal run too
    code, resumed, err = train(capsys, "softmax-regression", *QUICK, "--epochs", "2", "--resume", checkpoint)
    assert code == 0, err
    assert "resuming after epoch 1" in resumed[1]
    assert list(epoch_losses(resumed)) == [2]
    code, straight, err = train(capsys, "softmax-regression", *QUICK, "--epochs", "2")
    assert code == 0, err
    assert epoch_losses(straight) == {**epoch_losses(first), **epoch_losses(resumed)}
    assert straight[-1] == resumed[-1]                            # same test loss and accuracy

    code, out, err = train(capsys, "softmax-regression", *QUICK, "--epochs", "3", "--lr", "0.1", "--resume", checkpoint)
    assert code == 1 and not out
    assert err.startswith("Error: the checkpoint was trained with lr 0.001") and "leave out --lr" in err


@pytest.mark.parametrize("args, message", [
    (["no-such-template"], "unknown template 'no-such-template'"),
    (["missing.json"], "does not exist"),
    (["softmax-regression", "--data", "imagenet:/x"], "Unknown --data 'imagenet:/x'"),
    (["softmax-regression", "--data", "folder"], "needs a path"),
    (["softmax-regression", "--data", "synthetic-regression", "--limit", "50"], "inputs of shape"),
    (["softmax-regression", "--lr", "-1", "--limit", "50"],
     "--lr must be a number between 1e-08 and 1,000,000, got '-1'"),
    (["softmax-regression", "--config", "nope.json"], "does not exist"),
    (["softmax-regression", "--resume", "not-a-checkpoint.pt"], "does not exist"),
])
def test_user_errors_exit_1_with_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, lines, err = train(capsys, *args)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("Error: ") and message in err, err
    assert not lines


def test_a_checkpoint_of_another_design_is_refused(tmp_path, capsys):
    checkpoint = tmp_path / "ck.pt"
    assert train(capsys, "softmax-regression", *QUICK, "--epochs", "1", "--checkpoint", checkpoint)[0] == 0
    code, out, err = train(capsys, "mlp", *QUICK, "--resume", checkpoint)
    assert code == 1 and not out
    lines = err.splitlines()   # the fit report: a sentence, then the problems layer by layer
    assert lines[0].startswith("Error: The weights do not fit this design"), err
    assert "  layer 1 (Linear):" in lines
    assert "    1.weight has shape 10x784 in the file but 512x784 in the design" in lines


def _read_until(stream, pattern: bytes, deadline: float) -> bytes:
    seen = b""
    while pattern not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {pattern!r} in time; got {seen[-500:]!r}"
        ready, _, _ = select.select([stream], [], [], remaining)
        if ready:
            chunk = os.read(stream.fileno(), 4096)
            assert chunk, f"the process ended before {pattern!r}; got {seen[-2000:]!r}"
            seen += chunk
    return seen


def test_ctrl_c_stops_saves_a_checkpoint_and_exits_130(tmp_path):
    design = design_copy(tmp_path, "softmax-regression")
    command = [sys.executable, "-m", "engine.cli", "train", design, "--data", "mnist-sample", "--limit", "2000",
               "--batch-size", "8", "--epochs", "100"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=process_env())  # this checkout's engine, not an installed copy
    try:
        _read_until(process.stderr, b"Epoch 1: step ", time.monotonic() + 120)  # a pipe: plain progress lines
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err.decode()
    checkpoint = tmp_path / "softmax-regression.checkpoint.pt"
    assert f"Checkpoint saved to {checkpoint}" in out.decode()
    assert re.search(rf"^Stopped after \d+ complete epochs?; continue with: layerstudio train {re.escape(design)} "
                     rf"--resume {re.escape(str(checkpoint))}$", out.decode(), re.MULTILINE)
    assert "Traceback" not in err.decode()

    saved = read_checkpoint(checkpoint)
    spec, _ = load_design(design)
    trainer = Trainer(spec, load_data(DataConfig(limit=2000)), TrainConfig(batch_size=8, epochs=100))
    trainer.load_checkpoint(saved)
    assert trainer.epoch < 100
    build_model(spec).load_state_dict(read_state_dict(checkpoint), strict=True)


def test_a_missing_output_folder_is_refused_before_training(tmp_path, capsys):
    missing = tmp_path / "no-such-folder" / "weights.pt"
    assert main(["train", "softmax-regression", "--epochs", "1", "--limit", "64", "--save", str(missing)]) == 1
    out, err = capsys.readouterr()
    assert "does not exist" in err and "Epoch 1/1" not in out
