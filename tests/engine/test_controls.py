"""Engine sentences name a setting the way the front end in use shows it: a flag on the command line,
a label in the window (tests/gui/test_launch.py), the setting itself for the engine used as a library."""
from __future__ import annotations

import ast
import json
from dataclasses import fields
from pathlib import Path

import pytest

import engine
from engine import controls
from engine.cli import _setting_flags, flag_for, main, make_parser
from engine.controls import control, naming
from engine.data import DataConfig, load_data
from engine.errors import DataError
from engine.training import LRFindConfig, TrainConfig

ENGINE = Path(engine.__file__).parent
# Text only the command line shows.
CLI_MODULES = ("cli.py", "train_command.py", "predict_command.py", "lr_find_command.py", "runs_command.py",
               "torchrun.py",  # `layerstudio train --nproc-per-node`: the launch flags
               "launch_script.py")  # the train_ddp.py it writes has command-line flags of its own
# Words that name a window's controls; no engine sentence may use them (either front end may show it).
WINDOW_WORDS = ("button", "tick ", "click", "Settings →", "menu", " tab ", "checkbox", "Download if missing")


def string_literals(path: Path) -> list[tuple[int, str]]:
    """Every string constant in a module (f-string parts included) but its docstrings and the settings'
    declarations (``setting(...)``: a label there is what the window shows, by design), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    declared = {id(inner) for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setting"
                for inner in ast.walk(node)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings and id(node) not in declared]


def control_keys(path: Path) -> list[str]:
    """The keys of every ``control("...")`` call in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "control"
            and node.args and isinstance(node.args[0], ast.Constant)]


def settings() -> set[str]:
    return ({f"training.{f.name}" for f in fields(TrainConfig)} | {f"data.{f.name}" for f in fields(DataConfig)}
            | {f"sweep.{f.name}" for f in fields(LRFindConfig)})


def test_no_engine_sentence_names_a_window_control_or_a_flag_outside_the_command_line():
    flags = {flag.split()[0] for flag in _setting_flags().values()} - {"--data"}  # --data parsing is CLI-only
    for path in sorted(ENGINE.rglob("*.py")):
        for line, text in string_literals(path):
            assert not any(word in text for word in WINDOW_WORDS), f"{path.name}:{line}: {text!r}"
            if path.name not in CLI_MODULES:
                assert not any(flag in text for flag in flags), f"{path.name}:{line} names a flag: {text!r}"


def test_every_setting_a_sentence_names_exists_and_every_flag_is_its_commands():
    used = {key for path in ENGINE.rglob("*.py") for key in control_keys(path)}
    assert used and used <= settings(), used - settings()
    commands = next(a for a in make_parser()._actions if a.dest == "command").choices
    options = {name: {option for action in commands[name]._actions for option in action.option_strings}
               for name in ("train", "lr-find")}
    for key, flag in _setting_flags().items():
        assert key in settings(), key
        # The run's settings are flags of train and of lr-find alike; the sweep's own, of lr-find only.
        for command in ("lr-find",) if key.startswith("sweep.") else ("train", "lr-find"):
            assert flag.split()[0] in options[command], (command, key, flag)


def test_each_front_end_names_the_setting_its_own_way():
    assert control("data.download") == "the data setting 'download'"           # the engine as a library
    with naming(flag_for):
        assert control("data.download") == "--download"
        assert control("training.batch_size") == "--batch-size"
        assert control("training.momentum") == "--momentum"                  # every declared setting has its flag
        assert control("data.seed") == "--split-seed"
        assert control("data.root") == "--data SOURCE:PATH"
    assert control("data.download") == "the data setting 'download'"           # restored after the block
    with naming(lambda key: None):                                             # a front end without that control
        assert control("training.lr") == "the training setting 'lr'"


def test_a_missing_dataset_tells_the_library_user_and_the_command_line_user_what_to_change(tmp_path, capsys):
    with pytest.raises(DataError) as refused:
        load_data(DataConfig(source="mnist", root=str(tmp_path)))
    assert str(refused.value).endswith("or turn on the data setting 'download'.")

    assert main(["train", "softmax-regression", "--data", f"mnist:{tmp_path}", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Error: MNIST files not found in {tmp_path / 'MNIST' / 'raw'}")
    assert err.endswith("or turn on --download.\n") and "Download if missing" not in err
    assert controls._naming is None                                            # the command line's naming ended


@pytest.mark.parametrize("args, sentence", [
    (["lenet-bn", "--batch-size", "1", "--limit", "50"], "set --batch-size to 2 or more."),
    (["linear-regression", "--data", "synthetic-regression", "--epochs", "1", "--config", "run.json"],
     "set --momentum (e.g. 0.9) or turn --nesterov off"),
    (["softmax-regression", "--data", "mnist-sample", "--limit", "50", "--device", "cuda:7"],
     "set --device to auto or cpu"),
])
def test_command_line_errors_name_flags(tmp_path, capsys, monkeypatch, args, sentence):
    import torch

    if "cuda:7" in args and torch.cuda.is_available():
        pytest.skip("a CUDA machine has the device; its message differs")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"optimizer": "sgd", "nesterov": True, "momentum": 0.0}))
    assert main(["train", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and err.count("\n") == 1 and sentence in err, err
