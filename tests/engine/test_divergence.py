"""Divergence beyond NaN (engine.divergence): a loss that stays far above where the run started ends the run as
"diverged" with the weights from before the blow-up, and healthy runs of the templates never come near it."""
from __future__ import annotations

import math

import pytest
import torch

from engine.cli import main
from engine.data import DataConfig, load_data
from engine.divergence import DIVERGENCE_FACTOR, DIVERGENCE_STEPS, MIN_REFERENCE_LOSS, LossWatch
from engine.io import read_checkpoint
from engine.templates import load_design
from engine.training import BatchEnd, TrainConfig, Trainer, readback
from engine.training.checkpoint import CheckpointWriter

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mnist():
    return load_data(DataConfig(limit=600))


def run_template(name: str, data, **settings):
    """Train a bundled template; returns the trainer, its RunFinished and every batch loss."""
    spec, _ = load_design(name)
    trainer = Trainer(spec, data, TrainConfig(device="cpu", **{"epochs": 3, **settings}))
    losses = []
    finished = trainer.run(lambda e: losses.extend(e.losses) if isinstance(e, BatchEnd) else None)
    return trainer, finished, losses


# --------------------------------------------------------------------------- the rule

def test_the_reference_is_the_mean_of_the_first_64_samples_losses():
    watch = LossWatch(batch_size=16)  # 4 steps of 16 samples
    assert watch.observe([2.0, 4.0, 2.0]) is None and watch.reference is None
    assert watch.observe([4.0, 1000.0]) is None
    assert watch.reference == 3.0 and watch.threshold == 300.0
    assert watch.above == 1 and watch.in_stretch                      # 1000 counted, after the reference
    assert LossWatch(batch_size=256).observe([2.5]) is None           # one batch of 64 or more is enough


def test_a_stretch_must_last_the_whole_count_without_a_break():
    watch = LossWatch(batch_size=64)
    watch.observe([1.0])
    high = 2 * DIVERGENCE_FACTOR
    assert watch.observe([high] * (DIVERGENCE_STEPS - 1) + [1.0]) is None  # one step back under: start over
    assert not watch.in_stretch
    assert watch.observe([high] * (DIVERGENCE_STEPS - 1)) is None
    assert watch.observe([0.5, high]) is None and watch.above == 1
    stretch = [high] * (DIVERGENCE_STEPS - 2) + [high, high]
    assert watch.observe(stretch) == DIVERGENCE_STEPS - 2                  # the index where it completed


def test_a_loss_that_starts_near_zero_gets_a_floor_and_a_negative_one_its_size():
    tiny = LossWatch(batch_size=64)
    tiny.observe([1e-12])
    assert tiny.threshold == DIVERGENCE_FACTOR * MIN_REFERENCE_LOSS
    assert tiny.observe([1e-6] * 100) is None                              # a million times the start: noise
    negative = LossWatch(batch_size=64)
    negative.observe([-0.5])                                               # nll on raw outputs can be negative
    assert negative.threshold == DIVERGENCE_FACTOR * 0.5
    assert negative.observe([1.0] * 100) is None


def test_the_watch_state_round_trips():
    watch = LossWatch(batch_size=8)
    watch.observe([1.0] * 8 + [1e9] * 3)
    copy = LossWatch(batch_size=8)
    copy.load_state_dict(watch.state_dict())
    assert copy.state_dict() == watch.state_dict() and copy.above == 3


# --------------------------------------------------------------------------- runs

def test_adam_at_learning_rate_1000_diverges_and_keeps_the_weights_from_before_the_blow_up(mnist, monkeypatch):
    monkeypatch.setattr(readback, "READBACK_INTERVAL_S", 0.0)  # read back every step: the kept step is exact
    trainer, finished, losses = run_template("mlp", mnist, optimizer="adam", lr=1000.0)
    assert finished.reason == "diverged"
    assert all(math.isfinite(loss) for loss in losses)              # no NaN: only the new rule catches it
    assert f"stayed above {DIVERGENCE_FACTOR:g} times its starting value" in finished.message
    assert "lower the learning rate" in finished.message and "now 1000)" in finished.message
    reference = trainer.loss_watch.reference
    first_bad = 1 + next(i for i, loss in enumerate(losses) if loss > DIVERGENCE_FACTOR * reference)
    # the loss of step k comes from the weights after step k - 1: the last good ones are after first_bad - 2
    assert f"weights from after step {first_bad - 2} of the run" in finished.message
    assert len(losses) == first_bad - 1 + DIVERGENCE_STEPS                  # it ended where the stretch completed
    weights = trainer.model.state_dict()
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert trainer.evaluate("val").loss < 10 * reference            # the kept weights are not the exploded ones
    assert not trainer.loss_watch.in_stretch and trainer.optimizer.state == {}


def test_a_diverging_run_leaves_the_checkpoint_from_before_the_blow_up(mnist, tmp_path, monkeypatch):
    monkeypatch.setattr(readback, "READBACK_INTERVAL_S", 0.0)
    spec, _ = load_design("mlp")
    trainer = Trainer(spec, mnist, TrainConfig(device="cpu", epochs=3, optimizer="adam", lr=1000.0))
    writer = CheckpointWriter(trainer, tmp_path / "ck.pt", interval_s=0.0)
    assert trainer.run(writer).reason == "diverged"
    saved = read_checkpoint(tmp_path / "ck.pt")
    assert saved["loss_watch"]["above"] == 0 and saved["global_step"] < DIVERGENCE_STEPS
    Trainer(spec, mnist, TrainConfig(device="cpu", epochs=3, optimizer="adam", lr=1000.0)).load_checkpoint(saved)


@pytest.mark.parametrize("template, settings", [
    ("lenet", {"optimizer": "sgd", "lr": 0.1}),
    ("mlp", {"optimizer": "adam"}),
    ("softmax-regression", {"optimizer": "sgd", "lr": 0.1}),
    ("cnn", {"optimizer": "adamw", "schedule": "one_cycle", "lr": 0.01}),
])
def test_healthy_runs_of_the_templates_stay_far_below_the_threshold(mnist, template, settings):
    trainer, finished, losses = run_template(template, mnist, **settings)
    assert finished.reason == "completed", finished.message
    assert max(losses) < 0.1 * trainer.loss_watch.threshold       # a margin of 10 below the rule


@pytest.mark.parametrize("batch_size", [1, 10])
def test_regression_with_single_samples_does_not_trip(batch_size):
    """Per-sample squared errors vary by orders of magnitude; their mean over 64 samples is the reference."""
    data = load_data(DataConfig(source="synthetic-regression", samples=300))
    trainer, finished, losses = run_template("linear-regression", data, optimizer="sgd", lr=0.03,
                                             batch_size=batch_size)
    assert finished.reason == "completed", finished.message
    assert trainer.loss_watch.above < DIVERGENCE_STEPS


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_a_regression_that_starts_near_zero_does_not_trip(noise):
    """Continuing a fitted linear regression: the loss starts at the noise floor (or float rounding) and wanders."""
    data = load_data(DataConfig(source="synthetic-regression", samples=300, noise=noise))
    fitted, finished, _ = run_template("linear-regression", data, optimizer="sgd", lr=0.03, batch_size=10)
    assert finished.reason == "completed"
    spec, _ = load_design("linear-regression")
    again = Trainer(spec, data, TrainConfig(device="cpu", epochs=3, optimizer="sgd", lr=0.03, batch_size=10))
    again.model.load_state_dict(fitted.model.state_dict())
    assert again.run().reason == "completed"
    assert again.loss_watch.reference < 1e-3 * fitted.loss_watch.reference


def test_the_cli_exits_1_for_a_run_that_blew_up(capsys):
    code = main(["train", "mlp", "--optimizer", "adam", "--lr", "1000", "--limit", "600", "--epochs", "3"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.strip().splitlines()[-1].startswith("Error: the loss stayed above 100 times its starting")
    assert "test loss" not in captured.out
