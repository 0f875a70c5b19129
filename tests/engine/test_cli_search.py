"""`layerstudio search`: real searches on the bundled sample, two processes sharing one SQLite study, a restart that
continues it, --save-best, Ctrl-C and bad input."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import optuna

from engine.cli import main
from engine.templates import load_design
from tests.processes import process_env

QUICK = ["--limit", "400", "--epochs", "2", "--no-health", "--batch-size", "64"]
TRIAL_LINE = re.compile(r"^Trial (\d+): (complete|pruned|failed)", re.MULTILINE)


def search(capsys, *args) -> tuple[int, str, str]:
    code = main(["search", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def start(tmp_path, *args) -> subprocess.Popen:
    command = [sys.executable, "-m", "engine.cli", "search", *map(str, args)]
    return subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=process_env())  # this checkout's engine, not an installed copy


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[str, str]:
    try:
        return process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_two_processes_share_one_sqlite_study_and_a_restart_continues_it(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    common = ["mlp", *QUICK, "--storage", storage, "--study", "shared", "--pruner", "none"]
    first, second = start(tmp_path, *common, "--trials", 2), start(tmp_path, *common, "--trials", 3)
    outputs = [finish(first), finish(second)]
    for process, (_out, err) in zip((first, second), outputs, strict=True):
        assert process.returncode == 0, err
        assert "Traceback" not in err
    printed = [int(n) for out, _ in outputs for n, _state in TRIAL_LINE.findall(out)]
    assert sorted(printed) == list(range(5))  # each trial number run once, by one of the two processes
    assert len(TRIAL_LINE.findall(outputs[0][0])) == 2 and len(TRIAL_LINE.findall(outputs[1][0])) == 3

    study = optuna.load_study(study_name="shared", storage=storage)
    assert sorted(t.number for t in study.trials) == list(range(5))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)

    again = start(tmp_path, *common, "--trials", 1)
    out, err = finish(again)
    assert again.returncode == 0, err
    assert [int(n) for n, _ in TRIAL_LINE.findall(out)] == [5]
    assert f"Study 'shared' in {storage}: 6 trials (6 complete, 0 pruned, 0 failed, 0 running)" in out
    assert len(optuna.load_study(study_name="shared", storage=storage).trials) == 6


def test_the_best_trial_gives_a_train_command_or_a_saved_design(tmp_path, capsys):
    code, out, err = search(capsys, "mlp", *QUICK, "--trials", 3, "--sampler-seed", 1)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Data: MNIST sample: ")
    assert len(TRIAL_LINE.findall(out)) == 3
    best = re.search(r"^Best: trial (\d+), validation loss (\S+): lr (\S+), ", out, re.MULTILINE)
    assert best, out
    command = next(line for line in lines if line.startswith("Train it with: "))
    assert command.startswith("Train it with: layerstudio train mlp --lr ") and "--limit 400" in command

    path = tmp_path / "best.json"
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"settings": {"lr": {"low": 1e-3, "high": 1e-2}}, "width": {"low": 0.5, "high": 1}}))
    code, out, err = search(capsys, "mlp", *QUICK, "--trials", 2, "--space", space, "--save-best", path,
                            "--objective", "val_acc")
    assert code == 0, err
    assert f"Wrote the best design and settings to {path}; train it with: layerstudio train {path}" in out
    spec, design = load_design(str(path))
    assert 1e-3 <= design["training"]["lr"] <= 1e-2 and design["training"]["epochs"] == 2
    assert design["data"]["limit"] == 400
    fc1 = spec.layer("fc1").params["out_features"]
    assert 256 <= fc1 <= 512 and spec.layer("fc2").params["out_features"] == 10


def test_user_errors_exit_1_with_one_line(tmp_path, capsys):
    bad = tmp_path / "space.json"
    bad.write_text(json.dumps({"settings": {"lr": {"low": 1, "high": 0.1}}}))
    cases = [
        (["mlp", *QUICK], "Error: Say how long to search: give --trials N, --timeout S or both."),
        (["mlp", *QUICK, "--trials", 1, "--space", bad],
         f"Error: {bad}'s setting 'lr' (Learning rate): low (1) must not be above high (0.1)."),
        (["mlp", *QUICK, "--trials", 1, "--storage", "nosuchdb://x"],
         "Error: The study storage 'nosuchdb://x' cannot be opened: "),
        (["mlp", *QUICK, "--trials", 1, "--save-best", tmp_path / "best.txt"], "Error: "),
    ]
    for args, message in cases:
        code, out, err = search(capsys, *args)
        assert code == 1, (args, out, err)
        assert err.startswith(message) and err.count("\n") == 1, err


def test_ctrl_c_ends_the_search_cleanly_with_130(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    process = start(tmp_path, "mlp", "--limit", "2000", "--epochs", "100", "--no-health", "--batch-size", "16",
                    "--trials", "50", "--storage", storage)
    try:
        for line in process.stdout:  # once the search is announced, Ctrl-C is the search's to handle
            if line.startswith("Searching "):
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "Interrupted (the same command continues the study)" in out
    study = optuna.load_study(study_name="mlp", storage=storage)
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)
