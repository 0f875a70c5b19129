"""The Trainer's distributed path in this process, as the one rank of a gloo process group: the same figures as
the plain path, a stop agreed at a step's end even when an epoch has a single step. (Several real processes:
test_distributed.py.)"""
from __future__ import annotations

import socket

import pytest
import torch

from engine.data import DataConfig, load_data
from engine.spec import LayerSpec, NetworkSpec
from engine.training import TrainConfig, Trainer
from engine.training.distributed import World

SPEC = NetworkSpec((1, 28, 28), (
    LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 16}), LayerSpec("BatchNorm1d"), LayerSpec("ReLU"),
    LayerSpec("Linear", {"out_features": 10}),
))


@pytest.fixture(scope="module")
def one_rank():
    """This process as rank 0 of a one-process gloo group (what torchrun --nproc-per-node 1 makes)."""
    import torch.distributed as dist

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield World(0, 1, 0, True)
    dist.destroy_process_group()


def test_one_rank_under_ddp_trains_as_the_plain_trainer(one_rank):
    data = load_data(DataConfig(limit=200))
    config = TrainConfig(epochs=2, batch_size=32, seed=1, device="cpu", health=False)
    plain, ddp = Trainer(SPEC, data, config), Trainer(SPEC, data, config, one_rank)
    assert plain.run().reason == "completed" and ddp.run().reason == "completed"
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert ddp.history[key] == pytest.approx(plain.history[key], abs=1e-6), key
    for key, value in plain.model.state_dict().items():  # BatchNorm's buffers too
        assert torch.allclose(ddp.model.state_dict()[key].float(), value.float(), atol=1e-5), key
    assert set(ddp.checkpoint()["model"]) == set(plain.model.state_dict())  # no DDP "module." prefix


def test_a_stop_is_agreed_at_the_end_of_a_step_even_with_one_step_per_epoch(one_rank):
    data = load_data(DataConfig(limit=40))  # 36 training samples: one batch an epoch
    trainer = Trainer(SPEC, data, TrainConfig(epochs=5, batch_size=64, device="cpu", health=False), one_rank)
    assert trainer.steps_per_epoch == 1
    finished = trainer.run(should_stop=lambda: True)
    assert finished.reason == "stopped"
    assert trainer.global_step == 1  # the step under way when the stop was asked for, then none
    again = trainer.run()  # a stopped run goes on when run again
    assert again.reason == "completed" and trainer.epoch == 5
