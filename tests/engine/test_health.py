"""Training health: the recorder's figures against torch's own, each advice rule on a run built to show its problem
and silent on a healthy run, the figures riding the read-back's one sync, and the CLI's end-of-run advice."""
from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
from torch import nn

from engine.cli import main
from engine.data import DataConfig, load_data
from engine.spec import LayerSpec, NetworkSpec
from engine.templates import load_design
from engine.training import HealthSample, TrainConfig, Trainer, health, readback
from engine.training.health import FIGURES, HealthRecorder


@pytest.fixture
def every_batch(monkeypatch):
    """Read back and measure after every batch, so a run of a few steps gives a sample per step."""
    monkeypatch.setattr(readback, "READBACK_INTERVAL_S", 0.0)
    monkeypatch.setattr(health, "MEASURE_INTERVAL_S", 0.0)
    monkeypatch.setattr(health, "MEASURE_GAP_STEPS", 1)


@pytest.fixture(scope="module")
def mnist():
    return load_data(DataConfig(limit=300, val_fraction=0.1))


def layers(*items) -> tuple[LayerSpec, ...]:
    return tuple(LayerSpec(item[0], dict(item[1]) if len(item) > 1 else {}) for item in items)


def run(spec: NetworkSpec, data, **settings) -> list[HealthSample]:
    samples: list[HealthSample] = []
    finished = Trainer(spec, data, TrainConfig(**settings)).run(
        on_event=lambda event: samples.append(event) if isinstance(event, HealthSample) else None)
    assert finished.reason in ("completed", "diverged"), finished.message
    return samples


def advice(samples: list[HealthSample], rule_words: str) -> list[str]:
    return [sentence for sentence in samples[-1].advice if rule_words in sentence]


# --------------------------------------------------------------------------- the recorder's figures

def measured_step(model: nn.Sequential, kinds, x, y, optimizer) -> list[float]:
    recorder = HealthRecorder(model, kinds)
    with recorder.step():
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    figures = recorder.pending()
    assert figures is not None and recorder.pending() is None  # handed over once
    return figures.tolist()


def test_gradient_norms_and_update_ratios_equal_torchs(one_torch_thread):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    before = [p.detach().clone() for p in model.parameters()]
    values = measured_step(model, ["Linear", "Tanh", "Linear"], x, y, torch.optim.SGD(model.parameters(), lr=0.1))
    params = list(model.parameters())
    for layer, (weight, bias, old_w, old_b) in ((0, (*params[0:2], *before[0:2])), (2, (*params[2:4], *before[2:4]))):
        grad = torch.cat([weight.grad.flatten(), bias.grad.flatten()])
        update = torch.cat([(weight - old_w).flatten(), (bias - old_b).flatten()])
        after = torch.cat([weight.flatten(), bias.flatten()])
        row = values[layer * FIGURES:(layer + 1) * FIGURES]
        assert row[0] == pytest.approx(torch.linalg.vector_norm(grad).item(), rel=1e-5)
        assert row[1] == pytest.approx((update.norm() / after.norm()).item(), rel=1e-4)
    assert math.isnan(values[1 * FIGURES])  # the Tanh has no weights: no gradient norm


def test_dead_and_saturated_fractions_and_output_moments_on_a_crafted_model(one_torch_thread):
    """Four units: biases -5, -5 (never positive, saturated low), +5 (saturated high) and 0 (neither)."""
    linear = nn.Linear(2, 4)
    with torch.no_grad():
        linear.weight.mul_(0.01)
        linear.bias.copy_(torch.tensor([-5.0, -5.0, 5.0, 0.0]))
    model = nn.Sequential(linear, nn.ReLU(), nn.Linear(4, 4), nn.Sigmoid())
    with torch.no_grad():
        model[2].weight.copy_(torch.eye(4) * 2)
        model[2].bias.zero_()
    x, y = torch.randn(32, 2), torch.randint(0, 4, (32,))
    with torch.no_grad():
        relu_out = model[1](linear(x))
    values = measured_step(model, ["Linear", "ReLU", "Linear", "Sigmoid"], x, y,
                           torch.optim.SGD(model.parameters(), lr=0.0))
    relu = values[1 * FIGURES:2 * FIGURES]
    assert relu[4] == 0.5  # two of four units never positive
    assert relu[2] == pytest.approx(relu_out.mean().item(), rel=1e-5)
    assert relu[3] == pytest.approx(relu_out.std().item(), rel=1e-5)
    sigmoid = values[3 * FIGURES:4 * FIGURES]
    # The Sigmoid sees 0, 0, ~10 and ~0: only the unit at ~10 is flat (above 0.99).
    assert sigmoid[5] == 0.25
    assert math.isnan(sigmoid[4]) and math.isnan(relu[5])


def test_hooks_exist_only_while_a_measured_step_runs_even_when_it_fails():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    recorder = HealthRecorder(model, ["Linear", "ReLU"])
    assert not model[1]._forward_hooks
    with pytest.raises(RuntimeError), recorder.step():
        assert model[1]._forward_hooks
        raise RuntimeError("a failing step")
    assert not model[0]._forward_hooks and not model[1]._forward_hooks


# --------------------------------------------------------------------------- the rules

def test_vanishing_gradients_fire_on_sigmoid_lenet_with_sgd(mnist, every_batch, one_torch_thread):
    spec, _ = load_design("lenet-d2l")
    samples = run(spec, mnist, optimizer="sgd", lr=0.9, epochs=1, batch_size=128)
    fired = advice(samples, "vanishing")
    assert fired and fired[0].startswith("layer 0 (Conv2d): gradient norm "), samples[-1].advice
    assert "through the Sigmoid layers" in fired[0] and "use ReLU or add BatchNorm" in fired[0]


def test_dead_relu_fires_at_a_high_learning_rate(mnist, every_batch, one_torch_thread):
    spec = NetworkSpec((1, 28, 28), layers(("Flatten",), ("Linear", {"out_features": 64}), ("ReLU",),
                                           ("Linear", {"out_features": 10})))
    fired = advice(run(spec, mnist, optimizer="sgd", lr=5.0, momentum=0.0, epochs=1, batch_size=32), "dead")
    assert fired and fired[0].startswith("layer 2 (ReLU): "), fired
    assert "of units dead since epoch 1: lower the learning rate" in fired[0] and "LeakyReLU/PReLU" in fired[0]


def test_saturated_sigmoid_fires_when_weights_start_large(mnist, every_batch, one_torch_thread):
    spec = NetworkSpec((1, 28, 28), layers(("Flatten",), ("Linear", {"out_features": 32}), ("Sigmoid",),
                                           ("Linear", {"out_features": 10})))
    samples = run(spec, mnist, optimizer="sgd", lr=0.01, epochs=1, batch_size=64, init="normal", init_std=3.0)
    fired = advice(samples, "saturated")
    assert fired and fired[0].startswith("layer 2 (Sigmoid): "), samples[-1].advice
    assert "% of units saturated, gradients below it are " in fired[0]
    assert fired[0].endswith("use ReLU or add BatchNorm before it")


def test_exploding_gradients_fire_before_a_regression_diverges(every_batch, one_torch_thread):
    data = load_data(DataConfig(source="synthetic-regression", samples=400))
    spec, _ = load_design("linear-regression")
    fired = advice(run(spec, data, optimizer="sgd", lr=2.5, momentum=0.0, epochs=2, batch_size=32), "grew")
    assert fired and fired[0].startswith("gradient norm grew "), fired
    assert "lower the learning rate" in fired[0] and "clip gradients" in fired[0]
    healthy = run(spec, data, optimizer="sgd", lr=0.03, momentum=0.0, epochs=2, batch_size=32)
    assert len(healthy) > 10 and healthy[-1].advice == ()


def test_a_healthy_run_gives_no_advice(mnist, every_batch, one_torch_thread):
    spec = NetworkSpec((1, 28, 28), layers(
        ("Conv2d", {"out_channels": 4, "kernel_size": 5, "padding": 2}), ("ReLU",), ("MaxPool2d", {"kernel_size": 2}),
        ("Flatten",), ("Linear", {"out_features": 32}), ("Tanh",), ("Linear", {"out_features": 10})))
    samples = run(spec, mnist, epochs=1, batch_size=64)
    assert len(samples) >= 4
    assert samples[-1].advice == ()
    kinds = [layer.kind for layer in samples[-1].layers]
    assert kinds == [layer.kind for layer in spec.layers]
    relu, tanh = samples[-1].layers[1], samples[-1].layers[5]
    assert relu.dead is not None and relu.saturated is None and tanh.saturated is not None and tanh.dead is None


def test_health_off_records_nothing(mnist, every_batch):
    spec = NetworkSpec((1, 28, 28), layers(("Flatten",), ("Linear", {"out_features": 10})))
    assert run(spec, mnist, epochs=1, health=False) == []


def test_the_figures_leave_the_device_in_the_read_backs_one_sync(mnist, monkeypatch, every_batch):
    """With health on, a read-back still makes exactly one host-device transfer (one ``tolist``)."""
    calls = []
    real = torch.Tensor.tolist

    def counting(self):
        calls.append(self.numel())
        return real(self)

    spec = NetworkSpec((1, 28, 28), layers(("Flatten",), ("Linear", {"out_features": 16}), ("ReLU",),
                                           ("Linear", {"out_features": 10})))
    trainer = Trainer(spec, mnist, TrainConfig(epochs=1, batch_size=64, seed=1))
    readbacks = []
    monkeypatch.setattr(torch.Tensor, "tolist", counting)
    trainer.run(on_event=lambda event: readbacks.append(type(event).__name__))
    monkeypatch.setattr(torch.Tensor, "tolist", real)
    batch_ends, samples = readbacks.count("BatchEnd"), readbacks.count("HealthSample")
    assert samples == batch_ends >= 1
    # The epoch's read-backs and the validation pass: every tolist during training carries losses and figures.
    assert len([n for n in calls if n > 4 * FIGURES]) == batch_ends


# --------------------------------------------------------------------------- the command line

def test_cli_prints_the_advice_at_the_end_and_a_health_line_per_epoch_with_health(capsys, every_batch):
    code = main(["train", "mlp", "--limit", "300", "--batch-size", "32", "--epochs", "2", "--optimizer", "sgd",
                 "--lr", "5", "--momentum", "0", "--health"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    health_lines = [line for line in lines if line.startswith("Epoch ") and " health: " in line]
    assert [line.split()[1] for line in health_lines] == ["1", "2"]
    assert "dead " in health_lines[-1] and "grad norm " in health_lines[-1]
    start = lines.index(next(line for line in lines if line.startswith("Training health: ")))
    assert lines[start].endswith("seen:") and lines[start + 1].startswith("  layer 3 (ReLU): ")
    assert "(--lr)" in lines[start + 1]


def test_cli_says_when_no_problem_was_seen_and_prints_no_health_lines_by_default(capsys):
    code = main(["train", "softmax-regression", "--limit", "300", "--epochs", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert "Training health: no problems seen." in lines
    assert not any(line.startswith("Epoch ") and " health: " in line for line in lines)
    code = main(["train", "softmax-regression", "--limit", "300", "--epochs", "1", "--no-health"])
    assert code == 0 and not any("health" in line.lower() for line in capsys.readouterr().out.splitlines())


def test_measured_steps_are_spaced_and_every_epoch_gets_one(mnist):
    """Without the test's every-batch cadence: a few measured steps, MEASURE_GAP_STEPS apart, one per epoch at least."""
    spec = NetworkSpec((1, 28, 28), layers(("Flatten",), ("Linear", {"out_features": 10})))
    samples = run(spec, mnist, epochs=3, batch_size=16)
    steps = [sample.global_step for sample in samples]
    assert {sample.epoch for sample in samples} == {1, 2, 3}
    assert all(later - earlier >= health.MEASURE_GAP_STEPS for earlier, later in pairwise(steps))


def test_recording_health_leaves_the_training_unchanged(mnist, every_batch):
    """Measuring reads the weights and activations only: the same seed gives the same losses with health on or off."""
    spec = NetworkSpec((1, 28, 28), layers(("Flatten",), ("Linear", {"out_features": 16}), ("ReLU",),
                                           ("Dropout", {"p": 0.2}), ("Linear", {"out_features": 10})))
    losses = {}
    for on in (True, False):
        trainer = Trainer(spec, mnist, TrainConfig(epochs=1, batch_size=64, health=on))
        trainer.run()
        losses[on] = trainer.history["train_loss"]
    assert losses[True] == losses[False]


def test_the_step_before_each_read_back_is_measured_mid_epoch(mnist, monkeypatch):
    """Read-backs 2 ms apart, steps slower than that: each step is followed by a read-back, so each is measured
    (not only the epoch's last one: the read-back is judged due before the step from the recent step time)."""
    monkeypatch.setattr(readback, "READBACK_INTERVAL_S", 2e-3)
    monkeypatch.setattr(health, "MEASURE_INTERVAL_S", 0.0)
    monkeypatch.setattr(health, "MEASURE_GAP_STEPS", 1)
    spec = NetworkSpec((1, 28, 28), layers(("Conv2d", {"out_channels": 16, "kernel_size": 5}), ("ReLU",),
                                           ("Flatten",), ("Linear", {"out_features": 10})))
    samples = run(spec, mnist, epochs=1, batch_size=32)
    steps = 270 // 32 + 1
    assert len(samples) >= steps // 2, [sample.global_step for sample in samples]


def test_a_regression_with_health_reads_its_losses_back(every_batch):
    """No correct counts in a regression's read-back: the health figures after the losses are not taken for one."""
    data = load_data(DataConfig(source="synthetic-regression", samples=200))
    spec = NetworkSpec((2,), layers(("Identity",), ("Linear", {"out_features": 1})))  # no gradient norm first: NaN
    trainer = Trainer(spec, data, TrainConfig(epochs=1, batch_size=32, optimizer="sgd", lr=0.03))
    assert trainer.run().reason == "completed"
    assert trainer.history["train_acc"] == [None] and trainer.history["train_loss"][0] > 0
