"""Resume through files: N epochs, save_checkpoint, read_checkpoint, a new Trainer, M epochs == N+M straight.

Everything goes through the real disk round trip (engine.io) and a fresh Trainer, as a new process would.
"""
from __future__ import annotations

import pytest
import torch

from engine.data import DataConfig, load_data
from engine.io import read_checkpoint, save_checkpoint
from engine.spec import LayerSpec, NetworkSpec
from engine.training import TrainConfig, Trainer

# Dropout (global RNG), BatchNorm (buffers) and augmentation (its own generator) all have state to carry over.
SPEC = NetworkSpec((1, 28, 28), (
    LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 5, "stride": 2}),
    LayerSpec("BatchNorm2d"),
    LayerSpec("ReLU"),
    LayerSpec("Flatten"),
    LayerSpec("Dropout", {"p": 0.3}),
    LayerSpec("Linear", {"out_features": 10}),
))


@pytest.fixture(scope="module")
def data():
    return load_data(DataConfig(limit=240, augment_crop_padding=2))


def config(epochs: int, **changes) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=32, device="cpu", seed=3, **changes)


def through_disk(trainer: Trainer, path, data, cfg: TrainConfig) -> Trainer:
    """Save the trainer's checkpoint to disk and continue in a brand-new trainer built from the file."""
    save_checkpoint(path, trainer.checkpoint())
    fresh = Trainer(SPEC, data, cfg)
    fresh.load_checkpoint(read_checkpoint(path))
    return fresh


def assert_same_run(straight: Trainer, resumed: Trainer) -> None:
    assert resumed.history == straight.history            # every per-epoch loss, accuracy and lr, exactly
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_n_epochs_then_resume_m_more_equals_n_plus_m(tmp_path, data):
    """The CLI's case: train 1 epoch, then `--resume ck.pt --epochs 3` in a new process."""
    straight = Trainer(SPEC, data, config(3))
    assert straight.run().reason == "completed"

    first = Trainer(SPEC, data, config(1))
    assert first.run().reason == "completed"
    resumed = through_disk(first, tmp_path / "ck.pt", data, config(3))
    assert resumed.epoch == 1
    assert resumed.run().reason == "completed"
    assert len(resumed.history["train_loss"]) == 3
    assert_same_run(straight, resumed)


def stop_after(batches: int):
    """A should_stop that lets exactly ``batches`` batches run."""
    calls = iter(range(10**6))
    return lambda: next(calls) >= batches


@pytest.mark.parametrize("settings", [{}, {"optimizer": "sgd", "schedule": "one_cycle", "lr": 0.05}])
def test_stop_at_an_epoch_end_then_resume_equals_straight(tmp_path, data, settings):
    """A run stopped after N of its N+M epochs (a schedule over all epochs keeps its shape) and resumed."""
    straight = Trainer(SPEC, data, config(2, **settings))
    straight.run()

    first = Trainer(SPEC, data, config(2, **settings))
    assert first.run(should_stop=stop_after(first.steps_per_epoch)).reason == "stopped"
    assert first.epoch == 1
    resumed = through_disk(first, tmp_path / "ck.pt", data, config(2, **settings))
    assert resumed.run().reason == "completed"
    assert_same_run(straight, resumed)


def test_stop_mid_epoch_then_resume_from_disk_equals_straight(tmp_path, data):
    """A Ctrl-C style stop half way through an epoch: the checkpoint carries the epoch's progress."""
    straight = Trainer(SPEC, data, config(2))
    straight.run()

    first = Trainer(SPEC, data, config(2))
    assert first.run(should_stop=stop_after(first.steps_per_epoch + 5)).reason == "stopped"
    assert first.epoch == 1                                   # stopped 5 batches into epoch 2
    resumed = through_disk(first, tmp_path / "ck.pt", data, config(2))
    assert resumed.run().reason == "completed"
    assert_same_run(straight, resumed)
