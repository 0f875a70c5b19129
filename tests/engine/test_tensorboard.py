"""TensorBoard event files of a run (`--tensorboard DIR`, TrainConfig.tensorboard), read back with TensorBoard's own
EventAccumulator: real CLI runs on the bundled MNIST sample."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from engine.data import DataConfig, load_data
from engine.io import read_checkpoint
from engine.templates import load_design
from engine.training import TrainConfig, Trainer
from engine.training.events import BatchEnd, RunFinished
from engine.training.tensorboard_log import BATCH_POINTS, TensorBoardLog, open_log, run_folder
from tests.engine.test_cli_train import EPOCH_LINE, QUICK, TEST_LINE, design_copy, train
from tests.processes import process_env

EPOCHS = 2
STEPS = 5  # 270 training samples of the sample at batch 64


def read_run(folder) -> EventAccumulator:
    """TensorBoard's reading of the one run folder a run wrote under ``folder``."""
    runs = [path for path in folder.iterdir() if path.is_dir()]
    assert len(runs) == 1, runs
    events = EventAccumulator(str(runs[0]), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def scalars(events: EventAccumulator, tag: str) -> dict[int, float]:
    return {event.step: event.value for event in events.Scalars(tag)}


def hparams_of(events: EventAccumulator) -> tuple[dict, list[str]]:
    """The run's hparams (name -> value) and the metric tags its HParams experiment declares."""
    content = events.PluginTagToContent("hparams")
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    experiment = HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    values = {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
              for name, value in start.hparams.items()}
    return values, [metric.name.tag for metric in experiment.metric_infos]


def test_a_cli_run_writes_what_it_printed_and_tensorboard_reads_it_back(tmp_path, capsys):
    board, checkpoint = tmp_path / "tb", tmp_path / "mlp.ckpt.pt"
    code, lines, err = train(capsys, "mlp", *QUICK, "--epochs", EPOCHS, "--schedule", "step", "--step-size", 1,
                             "--gamma", "0.5", "--checkpoint", checkpoint, "--tensorboard", board)
    assert code == 0, err
    events = read_run(board)
    assert any(line.startswith(f"TensorBoard: writing to {board}") and line.endswith(f"tensorboard --logdir {board}")
               for line in lines), lines

    # per epoch: exactly the run's own history (the checkpoint's, in full precision) and its printed lines
    history = read_checkpoint(checkpoint)["history"]
    printed = [EPOCH_LINE.match(line) for line in lines if EPOCH_LINE.match(line)]
    assert len(printed) == EPOCHS
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        written = scalars(events, f"epoch/{key}")
        assert list(written) == list(range(1, EPOCHS + 1))
        assert list(written.values()) == pytest.approx(history[key], rel=1e-6)  # float32 in the files
    assert [f"{value:.4g}" for value in scalars(events, "epoch/train_loss").values()] == \
        [match.group(3) for match in printed]
    lr = scalars(events, "epoch/lr")
    assert lr[2] == pytest.approx(lr[1] / 2)  # the step schedule's cut (gamma 0.5) shows

    # per batch: every step's loss, at its global step
    batch_losses = scalars(events, "batch/loss")
    assert list(batch_losses) == list(range(1, EPOCHS * STEPS + 1))
    assert all(value > 0 for value in batch_losses.values())
    assert scalars(events, "batch/lr")

    # training health (on by default): per layer and measure
    tags = set(events.Tags()["scalars"])
    for tag in ("health/1_Linear/grad_norm", "health/1_Linear/update_ratio", "health/3_ReLU/dead",
                "health/5_Linear/grad_norm"):
        assert tag in tags, sorted(tags)
    assert not any(tag.startswith("health/3_ReLU/grad") for tag in tags)  # a ReLU has no gradient of its own

    # hparams: the run's settings, and the final metrics as its results
    values, metrics = hparams_of(events)
    assert values["lr"] == pytest.approx(1e-3) and values["batch_size"] == 64 and values["epochs"] == EPOCHS
    assert values["schedule"] == "step" and values["step_size"] == 1 and values["design"] == "mlp"
    assert values["data.limit"] == 300 and values["data.source"] == "mnist-sample"
    assert "momentum" not in values and "tensorboard" not in values  # Adam has none; the folder is no setting
    assert {"final/test_loss", "final/test_acc", "final/best_val_acc"} <= set(metrics)
    test = TEST_LINE.match(lines[-1])
    assert test, lines[-1]
    assert f"{100 * scalars(events, 'final/test_acc')[EPOCHS]:.1f}" == test.group(2)
    assert f"{scalars(events, 'final/test_loss')[EPOCHS]:.3g}" == test.group(1)
    assert scalars(events, "final/best_val_acc")[EPOCHS] == pytest.approx(max(history["val_acc"]), rel=1e-6)
    assert scalars(events, "final/epochs_done") == {EPOCHS: EPOCHS}

    # the model's graph: the traced layers
    graph = events.Graph()
    assert any("Linear" in node.name for node in graph.node), [node.name for node in graph.node][:20]


def test_each_run_gets_its_own_folder_and_no_health_means_no_health_scalars(tmp_path, capsys):
    board = tmp_path / "tb"
    design = design_copy(tmp_path, "softmax-regression", training={"tensorboard": str(board)})  # the file's section
    assert train(capsys, design, *QUICK, "--epochs", 1)[0] == 0
    assert train(capsys, design, *QUICK, "--epochs", 1, "--no-health")[0] == 0
    first, second = sorted(board.iterdir())
    assert re.fullmatch(r"softmax-regression-\d{8}-\d{6}(-2)?", second.name), second.name
    for folder, health in ((first, True), (second, False)):
        events = EventAccumulator(str(folder))
        events.Reload()
        assert any(tag.startswith("health/") for tag in events.Tags()["scalars"]) == health
        assert "epoch/train_loss" in events.Tags()["scalars"]
    assert train(capsys, design, *QUICK, "--epochs", 1, "--tensorboard", "")[0] == 0  # an empty folder: off
    assert len(list(board.iterdir())) == 2


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_a_folder_that_cannot_be_written_is_refused_before_the_data_loads(tmp_path, capsys, where):
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    folder = blocker if where == "a file" else blocker / "tb"
    code, lines, err = train(capsys, "softmax-regression", *QUICK, "--tensorboard", folder)
    assert code == 1
    assert lines == []  # nothing loaded, nothing trained
    assert f"The TensorBoard folder {folder}" in err and "--tensorboard" in err and "Traceback" not in err
    assert blocker.read_text() == "not a folder"


WRITE_LIMIT = 6_000  # bytes a file of the child process may grow to: the event file outgrows it mid-run


def test_a_write_failure_during_the_run_warns_and_the_run_goes_on(tmp_path):
    """A real failed write (the file size limit, EFBIG) while the events pour in: one warning, a completed run."""
    script = (f"import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              f"resource.setrlimit(resource.RLIMIT_FSIZE, ({WRITE_LIMIT}, {WRITE_LIMIT})); "
              f"from engine.cli import main; sys.exit(main(sys.argv[1:]))")
    result = subprocess.run(
        [sys.executable, "-c", script, "train", "mlp", *QUICK, "--epochs", "3", "--tensorboard", str(tmp_path / "tb")],
        cwd=tmp_path, text=True, capture_output=True, timeout=180,
        env=process_env(LAYERSTUDIO_HOME=str(tmp_path / "home")))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("Warning: TensorBoard")]
    assert len(warnings) == 1, result.stdout
    assert "no longer written" in warnings[0] and "the training goes on" in warnings[0]
    assert "Epoch 3/3" in result.stdout and "Test loss" in result.stdout


def test_writing_the_log_leaves_the_run_unchanged(tmp_path, one_torch_thread):
    """Tracing the graph (BatchNorm, Dropout) and writing every event draw no random numbers and move no batch
    statistics: the same losses, bit for bit, with and without the log."""
    spec, _ = load_design("mlp")
    data = load_data(DataConfig(limit=300))
    config = TrainConfig(epochs=2, batch_size=64, device="cpu")
    histories = []
    for folder in ("", str(tmp_path / "tb")):
        trainer = Trainer(spec, data, config)
        board = open_log(folder, "mlp", trainer, config.to_dict(), {})
        assert (board is None) == (folder == "")
        assert trainer.run(on_event=board).reason == "completed"
        histories.append(trainer.history)
    assert histories[0] == histories[1]


def test_a_design_that_cannot_be_traced_keeps_its_scalars(tmp_path, caplog):
    spec, _ = load_design("softmax-regression")
    data = load_data(DataConfig(limit=300))
    trainer = Trainer(spec, data, TrainConfig(epochs=1, batch_size=64, device="cpu"))
    board = TensorBoardLog(run_folder(tmp_path, "softmax"), {"lr": 1e-3})
    board.add_graph(trainer.model, torch.zeros(2, 3))  # inputs the model cannot take: tracing fails
    assert "The model's graph was not written to TensorBoard" in caplog.text
    trainer.run(on_event=board)
    assert board.writer is None  # the run's end closed the files
    events = read_run(tmp_path)
    assert not events.Tags()["graph"]
    assert len(events.Scalars("epoch/train_loss")) == 1


def test_a_fast_run_writes_evenly_spaced_batch_losses_ending_with_the_last(tmp_path):
    """More losses in one read-back than BATCH_POINTS (a tiny model on a fast device): the written ones are real
    batch losses at their own steps, evenly spaced, the read-back's last batch always among them."""
    board = TensorBoardLog(run_folder(tmp_path, "fast"), {"lr": 1e-3})
    losses = tuple(1.0 / step for step in range(1, 1001))
    board(BatchEnd(1, 1000, 1000, 1000, losses, 1e-3, 1e6))
    board(BatchEnd(2, 3, 1000, 1003, (0.5, 0.25, 0.125), 1e-3, 1e6))  # a slow read-back: every batch
    board(RunFinished("completed", "done", 2))
    written = scalars(read_run(tmp_path), "batch/loss")
    first = [step for step in written if step <= 1000]
    assert len(first) == BATCH_POINTS and first[-1] == 1000
    assert {b - a for a, b in zip(first, first[1:], strict=False)} == {1000 // BATCH_POINTS}
    assert all(written[step] == pytest.approx(1.0 / step) for step in first)
    assert [written[step] for step in (1001, 1002, 1003)] == [0.5, 0.25, 0.125]


@pytest.mark.parametrize("ending", ["stopped", "diverged"])
def test_every_finish_reason_closes_the_files_with_the_run_end_written(tmp_path, ending):
    spec, _ = load_design("mlp")
    data = load_data(DataConfig(limit=300))
    config = TrainConfig(epochs=3, batch_size=16, device="cpu", **(
        {"optimizer": "sgd", "lr": 1e6, "momentum": 0.0} if ending == "diverged" else {}))
    trainer = Trainer(spec, data, config)
    board = open_log(str(tmp_path), "softmax", trainer, config.to_dict(), {})
    seen = []

    def listen(event):
        seen.append(event)
        board(event)

    finished = trainer.run(on_event=listen, should_stop=lambda: ending == "stopped" and len(seen) > 2)
    assert finished.reason == ending, finished.message
    assert board.writer is None  # flushed and closed by the run's end
    events = read_run(tmp_path)
    assert "_hparams_/session_end_info" in events.PluginTagToContent("hparams")
    text = events.Tensors("run/finished/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text.startswith(f"{ending}: ")
    assert events.Scalars("batch/loss")
