"""Training on several processes: `layerstudio train --nproc-per-node 2` under PyTorch's own launcher (real torchrun
processes, gloo on the CPU) trains exactly as one process with the same global batch and seed, hands checkpoints to
and from one process, writes its files and history once (rank 0), stops every rank on Ctrl-C with 130; the
written train_ddp.py runs under torchrun."""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys

import psutil
import pytest
import torch

from engine.data import DataConfig, load_data
from engine.history import RunHistory
from engine.io import read_checkpoint, save_checkpoint
from engine.spec import LayerSpec, NetworkSpec
from engine.torchrun import check_launch, worker_argv
from engine.training import TrainConfig, Trainer
from engine.training.distributed import World
from engine.training.progress import steps_per_epoch
from tests.processes import ROOT, process_env

SPEC = NetworkSpec((1, 28, 28), (
    LayerSpec("Flatten"),
    LayerSpec("Linear", {"out_features": 16}),
    LayerSpec("ReLU"),
    LayerSpec("Linear", {"out_features": 10}),
))
LIMIT = 200  # 180 train / 20 val samples
BATCH = 25  # 7 full batches and one of 5: the ranks' shares of the last batch differ (3 and 2)
SEED = 5
FIGURES = ("train_loss", "train_acc", "val_loss", "val_acc")
TIMEOUT = 240


def config(epochs: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=BATCH, seed=SEED, device="cpu", health=False)


@pytest.fixture(scope="module")
def data():
    return load_data(DataConfig(limit=LIMIT))


@pytest.fixture(scope="module")
def reference(data) -> Trainer:
    """Three epochs in one process, as every distributed run here is compared with."""
    trainer = Trainer(SPEC, data, config(3))
    assert trainer.run().reason == "completed"
    return trainer


@pytest.fixture
def design(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(SPEC.to_dict()), encoding="utf-8")
    return path


def train_command(design, *args) -> list[str]:
    return [sys.executable, "-m", "engine", "train", str(design), "--device", "cpu", "--no-health", *map(str, args)]


def launch(tmp_path, *args) -> subprocess.CompletedProcess:
    """`layerstudio train ... --nproc-per-node 2` in a fresh process, its own run history under tmp_path."""
    env = process_env(LAYERSTUDIO_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    return subprocess.run(train_command(*args, "--nproc-per-node", 2), cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=TIMEOUT)


def assert_same_history(history: dict, expected: dict, epochs: int) -> None:
    for key in FIGURES:
        assert len(history[key]) == epochs
        assert history[key] == pytest.approx(expected[key][:epochs], abs=1e-5), key


def test_two_processes_train_as_one_and_only_rank_0_writes(tmp_path, design, reference):
    result = launch(tmp_path, design, "--epochs", 3, "--batch-size", BATCH, "--seed", SEED, "--limit", LIMIT,
                    "--checkpoint", "run.pt", "--save", "weights.pt", "--tensorboard", "board")
    assert result.returncode == 0, result.stderr
    checkpoint = read_checkpoint(tmp_path / "run.pt")
    assert_same_history(checkpoint["history"], reference.history, 3)
    weights = torch.load(tmp_path / "weights.pt", weights_only=True)
    for key, value in reference.model.state_dict().items():  # the model's own keys, not DDP's "module."
        assert torch.allclose(weights[key], value, atol=1e-5), key
    # rank 0 alone prints, records the run, writes TensorBoard's files
    for epoch in (1, 2, 3):
        assert result.stdout.count(f"Epoch {epoch}/3 ") == 1, result.stdout
    assert result.stdout.count("Test loss") == 1
    history = RunHistory(next((tmp_path / "home").rglob("*.sqlite3")))
    assert history.count() == 1
    [run] = history.list()
    assert run.epochs_done == 3 and run.reason == "completed"
    assert len(list((tmp_path / "board").iterdir())) == 1


def launch_on_two_machines(tmp_path, design, *args) -> tuple[subprocess.CompletedProcess, str]:
    """--nnodes 2: two launchers (here on one machine, one process each) meet at node 0's port; machine 0's
    result and machine 1's output."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = process_env(LAYERSTUDIO_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    common = (*args, "--nproc-per-node", 1, "--nnodes", 2, "--rdzv-endpoint", f"127.0.0.1:{port}")
    second = subprocess.Popen(train_command(design, *common, "--node-rank", 1), cwd=tmp_path, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = subprocess.run(train_command(design, *common, "--node-rank", 0), cwd=tmp_path, env=env, text=True,
                               capture_output=True, timeout=TIMEOUT)
        out, err = second.communicate(timeout=TIMEOUT)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate()
    assert first.returncode == 0 and second.returncode == 0, first.stderr + err
    return first, out


def test_checkpoints_move_between_one_process_and_two_machines(tmp_path, design, data, reference):
    one = Trainer(SPEC, data, config(1))  # epoch 1 in one process
    assert one.run().reason == "completed"
    save_checkpoint(tmp_path / "one.pt", {**one.checkpoint(), "data": DataConfig(limit=LIMIT).to_dict()})
    first, second_out = launch_on_two_machines(tmp_path, design, "--resume", "one.pt", "--epochs", 2,
                                               "--checkpoint", "two.pt")  # epoch 2 on two machines
    assert "resuming after epoch 1" in first.stdout
    assert "Starting 1 training process on machine 0 of 2" in first.stdout
    assert "Epoch" not in second_out  # machine 1 holds rank 1 only: nothing printed
    again = Trainer(SPEC, data, config(3))  # epoch 3 in one process again
    again.load_checkpoint(read_checkpoint(tmp_path / "two.pt"))
    assert again.run().reason == "completed"
    assert_same_history(again.history, reference.history, 3)


def test_ctrl_c_stops_every_process_and_saves_once(tmp_path, design, data):
    env = process_env(LAYERSTUDIO_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    launcher = subprocess.Popen(train_command(design, "--epochs", 100000, "--limit", LIMIT, "--nproc-per-node", 2,
                                              "--checkpoint", "ck.pt"),
                                cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = []
        for line in launcher.stdout:  # training is under way once the first epoch's line is out
            lines.append(line)
            if line.startswith("Epoch 1/"):
                break
        ranks = [child for child in psutil.Process(launcher.pid).children(recursive=True)
                 if "engine" in " ".join(child.cmdline())]
        assert len(ranks) == 2, lines
        launcher.send_signal(signal.SIGINT)
        out, err = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.communicate()
    assert launcher.returncode == 130, err
    for rank in ranks:
        try:
            assert rank.wait(timeout=10) is not None or not rank.is_running()
        except psutil.NoSuchProcess:
            pass
        assert not rank.is_running()
    assert out.count("Stopped after") == 1, out
    assert out.count("Checkpoint saved to ck.pt") == 1
    checkpoint = read_checkpoint(tmp_path / "ck.pt")
    assert checkpoint["epoch"] >= 1
    # the run stopped by two processes (mid-epoch, most likely) goes on in one
    settings = {**checkpoint["config"], "epochs": checkpoint["epoch"] + 1}
    alone = Trainer(SPEC, data, TrainConfig.from_dict(settings))
    alone.load_checkpoint(checkpoint)
    assert alone.run().reason == "completed" and alone.epoch == checkpoint["epoch"] + 1


def test_written_launch_script_runs_under_torchrun(tmp_path, data):
    from engine.build import build_model
    from engine.launch_script import write_launch_files

    files = write_launch_files(tmp_path / "cluster", SPEC, config(1), data, name="tiny mlp")
    assert "torchrun --nproc-per-node 2 train_ddp.py" in files.text()
    assert "srun torchrun" in files.slurm.read_text() and "--job-name=tiny-mlp" in files.slurm.read_text()
    env = process_env(OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                             str(files.script), "--epochs", "1", "--save", "w.pt"],
                            cwd=tmp_path, env={**env, "PYTHONPATH": ""}, text=True, capture_output=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("epoch 1/1  train loss") == 1, result.stdout
    model = build_model(SPEC)
    model.load_state_dict(torch.load(tmp_path / "w.pt", weights_only=True))  # the app's keys


# --------------------------------------------------------------------------- no processes started

def test_launch_flags_are_taken_off_the_processes_command_line():
    argv = ["--verbose", "train", "d.json", "--nproc-per-node", "2", "--nnodes=2", "--node-rank", "1",
            "--rdzv-endpoint", "host:29500", "--epochs", "3"]
    assert worker_argv(argv) == ["--verbose", "train", "d.json", "--epochs", "3"]


@pytest.mark.parametrize(("flags", "named"), [
    ({"nnodes": 2}, "--nproc-per-node"),
    ({"nproc_per_node": 0}, "--nproc-per-node must be at least 1"),
    ({"nproc_per_node": 2, "nnodes": 2, "node_rank": 0}, "--rdzv-endpoint"),
    ({"nproc_per_node": 2, "nnodes": 2, "rdzv_endpoint": "h:1"}, "--node-rank"),
    ({"nproc_per_node": 2, "nnodes": 2, "node_rank": 2, "rdzv_endpoint": "h:1"}, "between 0 and 1"),
    ({"nproc_per_node": 2, "nnodes": 2, "node_rank": 1, "rdzv_endpoint": "host"}, "HOST:PORT"),
])
def test_launch_flags_that_make_no_run_are_refused_by_name(flags, named):
    from engine.errors import TrainingError

    with pytest.raises(TrainingError, match=named):
        check_launch(launch_flags(**flags))


def launch_flags(**given) -> argparse.Namespace:
    return argparse.Namespace(**{**dict.fromkeys(("nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint")), **given})


def test_a_global_batch_smaller_than_the_processes_is_refused_once_before_launching():
    from engine.cli import flag_for
    from engine.controls import naming
    from engine.errors import TrainingError

    flags = launch_flags(nproc_per_node=2, nnodes=2, node_rank=0, rdzv_endpoint="h:1")
    with naming(flag_for), pytest.raises(TrainingError, match="--batch-size 3 cannot be shared by 4 processes"):
        check_launch(flags, batch_size=3)
    check_launch(flags, batch_size=4)
    with pytest.raises(TrainingError, match="batch size 1 cannot be shared by 2 processes"):
        World(0, 2, 0, True).check(1, 100)  # what each process checks when torchrun is started by hand


def test_cli_refuses_bad_launch_flags_before_starting_anything(tmp_path, design):
    result = subprocess.run(train_command(design, "--nnodes", 2), cwd=tmp_path, text=True, capture_output=True,
                            env=process_env(LAYERSTUDIO_HOME=str(tmp_path / "home")), timeout=TIMEOUT)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: --nnodes needs --nproc-per-node N"), result.stderr


def test_the_ranks_shards_make_up_each_global_batch():
    batch = torch.arange(25)
    shards = [World(rank, 3, rank, True).shard(batch) for rank in range(3)]
    assert sorted(torch.cat(shards).tolist()) == batch.tolist()
    assert [len(shard) for shard in shards] == [9, 8, 8]
    for rank, shard in enumerate(shards):  # DDP averages the ranks' gradients of share x their mean loss:
        share = World(rank, 3, rank, True).share(len(shard), 25)  # each sample then weighs 1/25, as in one process
        assert share / (3 * len(shard)) == pytest.approx(1 / 25)


def test_a_last_batch_too_small_for_every_rank_is_skipped_and_one_process_is_unchanged():
    assert steps_per_epoch(176, 25) == 7 and steps_per_epoch(180, 25) == 8  # one process: as before
    assert steps_per_epoch(202, 25, ranks=4) == 8  # 2 samples left for 4 processes
    assert steps_per_epoch(204, 25, ranks=4) == 9


def test_engine_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "engine", "--version"], cwd=ROOT, text=True, capture_output=True,
                            env=process_env(), timeout=TIMEOUT)
    assert result.returncode == 0 and result.stdout.startswith("LayerStudio"), result.stderr


if os.name == "nt":  # gloo processes and POSIX signals
    pytestmark = pytest.mark.skip("the distributed tests start POSIX processes")
