"""The learning-rate range test (engine.training.lr_finder) and `layerstudio lr-find`, on real torch and the bundled
MNIST sample (tiny models, one torch thread, short sweeps)."""
from __future__ import annotations

import csv
import math
import os
import re
import sys

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from engine.cli import main
from engine.data import DataConfig, load_data
from engine.errors import Cancelled, TrainingError, WeightsError
from engine.lr_find_command import SweepBar
from engine.task import Task
from engine.templates import load_design
from engine.training import LRFindConfig, TrainConfig, Trainer
from engine.training.lr_finder import SKIP_SHARE, find_learning_rate, suggest, sweep_rates
from tests.engine.test_cli_output import read_available

pytestmark = pytest.mark.usefixtures("one_torch_thread")
QUICK = ["--data", "mnist-sample", "--limit", "500"]


@pytest.fixture(scope="module")
def mnist():
    """450 train / 50 val images of the bundled sample."""
    return load_data(DataConfig(limit=500))


def design(name: str):
    return load_design(name)[0]


def descends_at(finding) -> bool:
    """The suggestion lies where the smoothed loss falls: after the skipped start, already below the loss there,
    before its lowest point."""
    skip = math.ceil(SKIP_SHARE * finding.sweep.steps)
    lowest = min(range(len(finding.smoothed)), key=finding.smoothed.__getitem__)
    i, smoothed = finding.index, finding.smoothed
    return skip < i < lowest and smoothed[lowest] < smoothed[i] < smoothed[skip]


# --------------------------------------------------------------------------- the sweep

def test_every_param_group_steps_at_the_exponential_rate_from_start_to_end(mnist):
    seen: list[list[float]] = []
    handle = register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: seen.append([group["lr"] for group in optimizer.param_groups]))
    try:
        finding = find_learning_rate(design("softmax-regression"), mnist, TrainConfig(optimizer="sgd"),
                                     start_lr=1e-6, end_lr=1e-2, steps=25)
    finally:
        handle.remove()
    assert not finding.diverged and len(finding.lrs) == 25
    expected = [1e-6 * (1e-2 / 1e-6) ** (i / 24) for i in range(25)]
    assert finding.lrs == pytest.approx(expected, rel=1e-12)
    assert finding.lrs[0] == pytest.approx(1e-6) and finding.lrs[-1] == pytest.approx(1e-2)
    assert [lrs[0] for lrs in seen] == pytest.approx(expected, rel=1e-12)  # the rate each optimizer step really used
    ratios = [b / a for a, b in zip(finding.lrs, finding.lrs[1:], strict=False)]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-9)  # a constant factor per step
    assert sweep_rates(finding.sweep) == list(finding.lrs)


def test_the_callers_model_optimizer_and_random_streams_are_untouched(mnist):
    trainer = Trainer(design("mlp"), mnist, TrainConfig(epochs=1, batch_size=64))
    assert trainer.run().reason == "completed"
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    optimizer = trainer.optimizer.state_dict()
    moments = {i: {k: v.clone() for k, v in state.items()} for i, state in optimizer["state"].items()}
    groups = [dict(group) for group in optimizer["param_groups"]]
    rng = torch.get_rng_state()

    finding = find_learning_rate(trainer.spec, mnist, trainer.config, steps=30, end_lr=1.0,
                                 weights=trainer.model.state_dict())

    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    after = trainer.optimizer.state_dict()
    assert after["param_groups"] == groups
    for i, state in after["state"].items():
        for key, value in state.items():
            assert torch.equal(value, moments[i][key]), (i, key)
    assert torch.equal(torch.get_rng_state(), rng)
    # The sweep started from the given (trained) weights, not from a fresh initialisation.
    fresh = find_learning_rate(trainer.spec, mnist, trainer.config, steps=30, end_lr=1.0)
    assert finding.losses[0] < 0.7 * fresh.losses[0]


def test_the_sweep_stops_early_when_the_loss_explodes_and_never_suggests_the_explosion(mnist):
    finding = find_learning_rate(design("softmax-regression"), mnist, TrainConfig(optimizer="sgd"),
                                 start_lr=1e-4, end_lr=1e6, steps=60)
    assert finding.diverged and len(finding.lrs) < 60
    assert finding.stopped.startswith(f"Stopped at step {len(finding.lrs) + ('NaN' in finding.stopped)} of 60")
    assert finding.suggestion is not None and finding.suggestion < finding.lrs[-1]
    assert descends_at(finding)


def test_a_loss_that_explodes_at_once_or_never_falls_gets_a_reason_instead_of_a_suggestion(mnist):
    flat = find_learning_rate(design("softmax-regression"), mnist, TrainConfig(optimizer="sgd"),
                              start_lr=1e-8, end_lr=1e-7, steps=20)
    assert not flat.diverged and flat.suggestion is None and flat.index is None
    assert flat.problem.startswith("The loss never fell by 5% between learning rates")
    # An explosion within the skipped start: too early to tell.
    index, problem = suggest([1e-3, 1e-2, 1e-1], [2.3, 2.2, 2.1], steps=100)
    assert index is None and problem.startswith("The loss exploded too early to suggest a learning rate")


@pytest.mark.parametrize("template", ["softmax-regression", "mlp"])
def test_the_suggestion_lies_inside_the_range_on_the_falling_loss_and_trains_well(mnist, template):
    spec, config = design(template), TrainConfig()
    finding = find_learning_rate(spec, mnist, config, steps=60)
    assert finding.problem == "" and finding.suggestion == finding.lrs[finding.index]
    assert 0 < finding.index < len(finding.lrs) - 1
    assert finding.sweep.start_lr < finding.suggestion < finding.sweep.end_lr
    assert descends_at(finding)
    # The suggested rate trains: one epoch at it ends with a lower loss than one at a rate 100 times smaller.
    losses = {}
    for lr in (finding.suggestion, finding.suggestion / 100):
        trainer = Trainer(spec, mnist, TrainConfig(lr=lr, epochs=1))
        trainer.run()
        losses[lr] = trainer.history["train_loss"][-1]
    assert losses[finding.suggestion] < losses[finding.suggestion / 100]


def test_the_same_seed_gives_the_same_curve(mnist):
    spec = design("mlp")  # dropout draws from the run's own seeded stream
    first, again, other = (find_learning_rate(spec, mnist, TrainConfig(seed=seed), steps=20, end_lr=1e-2)
                           for seed in (3, 3, 4))
    assert first.losses == again.losses and first.smoothed == again.smoothed
    assert first.losses != other.losses


def test_a_cancelled_task_stops_the_sweep_between_steps(mnist):
    steps: list[str] = []
    task = Task(lambda fraction, message: steps.append(message) or (len(steps) == 5 and task.cancel()))
    rng = torch.get_rng_state()
    with pytest.raises(Cancelled):
        find_learning_rate(design("softmax-regression"), mnist, TrainConfig(), steps=50, task=task)
    assert len(steps) == 5 and steps[-1].startswith("Step 5 of 50: learning rate ")
    assert torch.equal(torch.get_rng_state(), rng)


def test_settings_out_of_range_and_weights_that_do_not_fit_are_refused_with_a_sentence(mnist):
    spec = design("softmax-regression")
    for bad, words in (({"steps": 5}, "The sweep setting 'steps' (Steps) must be a whole number between 20 and 1000"),
                       ({"start_lr": 0.0}, "The sweep setting 'start_lr' (Start learning rate) must be a number"),
                       ({"smoothing": 1.0}, "The sweep setting 'smoothing' (Smoothing) must be a number between 0"),
                       ({"start_lr": 1.0, "end_lr": 0.1}, "The sweep must rise: the sweep setting 'end_lr' (0.1) "
                                                          "must be above the sweep setting 'start_lr' (1).")):
        with pytest.raises(TrainingError, match="^" + words.replace("(", r"\(").replace(")", r"\)")):
            find_learning_rate(spec, mnist, TrainConfig(), **bad)
    other = {k: v for k, v in Trainer(design("mlp"), mnist, TrainConfig()).model.state_dict().items()}
    with pytest.raises(WeightsError, match="^The weights do not fit this design"):
        find_learning_rate(spec, mnist, TrainConfig(), weights=other)
    assert LRFindConfig().validate() == LRFindConfig()


# --------------------------------------------------------------------------- layerstudio lr-find

def test_the_command_writes_the_curve_and_ends_with_the_suggestion(tmp_path, capsys):
    target = tmp_path / "curve.csv"
    code = main(["lr-find", "softmax-regression", *QUICK, "--steps", "40", "--csv", str(target)])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Data: MNIST sample: 450 train / 50 val")
    assert lines[1] == "Sweeping the learning rate from 1e-07 to 10 over 40 steps: adam, batch size 64, seed 0"
    label, _, value = lines[-1].partition(": ")
    assert label == "Suggested learning rate" and 1e-7 < float(value) < 10
    with open(target, newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["lr", "loss", "smoothed"]
    curve = [[float(cell) for cell in row] for row in rows[1:]]
    assert f"Wrote the curve to {target} ({len(curve)} rows)." in lines
    assert curve[0][0] == pytest.approx(1e-7) and all(b[0] > a[0] for a, b in zip(curve, curve[1:], strict=False))
    assert curve[0][1] == curve[0][2]  # the first smoothed value is the first loss (bias-corrected average)
    assert min(curve, key=lambda row: abs(math.log(row[0] / float(value))))[0] == pytest.approx(float(value), rel=0.05)
    assert err == ""  # the progress bar draws on a terminal only


def test_the_command_takes_the_training_flags_and_files_of_train(tmp_path, capsys):
    config = tmp_path / "run.json"
    config.write_text('{"training": {"optimizer": "sgd", "batch_size": 32}}')
    code = main(["lr-find", "softmax-regression", *QUICK, "--config", str(config), "--seed", "2", "--steps", "20",
                 "--start-lr", "1e-8", "--end-lr", "1e-7", "--amp", "fp16", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert "Sweeping the learning rate from 1e-08 to 1e-07 over 20 steps: sgd, batch size 32, seed 2" in out
    assert "Note: fp16 mixed precision needs a CUDA GPU; training in float32 on cpu" in out.splitlines()
    # A loss that never fell: the reason as one error line, exit 1, after the curve's figures.
    assert code == 1 and err.startswith("Error: The loss never fell by 5%") and len(err.splitlines()) == 1
    assert "Suggested" not in out


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_on_a_terminal_the_sweep_draws_a_bar_in_place_and_clears_it(mnist):
    import pty

    master, slave = pty.openpty()
    with os.fdopen(slave, "w") as terminal:
        bar = SweepBar(terminal)
        assert bar.live
        find_learning_rate(design("softmax-regression"), mnist, TrainConfig(), steps=20, end_lr=1e-2,
                           task=Task(bar))
        bar.clear()
        shown = read_available(master).decode()
    os.close(master)
    assert shown.startswith("\r[") and "\n" not in shown and shown.endswith("\r")
    assert re.search(r"\r\[#+\] Step 20 of 20: learning rate 0\.01, loss \d", shown)  # drawn full at the end
    with open(os.devnull, "w") as file:
        assert not SweepBar(file).live  # a file or a pipe gets no bar


@pytest.mark.parametrize("flags, words", [
    (["--steps", "5"], "Error: --steps must be a whole number between 20 and 1000 steps, got '5'."),
    (["--steps", "many"], "Error: --steps must be a whole number between 20 and 1000 steps, got 'many'."),
    (["--start-lr", "1", "--end-lr", "0.1"],
     "Error: The sweep must rise: --end-lr (0.1) must be above --start-lr (1)."),
    (["--end-lr", "-3"], "Error: --end-lr must be a number between 1e-08 and 1,000,000, got '-3'."),
    (["--csv", "curve.txt"], "Error: Cannot tell the format of 'curve.txt' from its suffix: name the --csv file .csv"),
    (["--batch-size", "0"], "Error: --batch-size must be a whole number between 1 and 10,000,000, got '0'."),
])
def test_bad_flags_give_one_error_line_and_exit_1(tmp_path, capsys, monkeypatch, flags, words):
    monkeypatch.chdir(tmp_path)
    code = main(["lr-find", "softmax-regression", *QUICK, *flags])
    out, err = capsys.readouterr()
    assert code == 1 and err.splitlines() == [words] and out == ""
    assert list(tmp_path.iterdir()) == []
