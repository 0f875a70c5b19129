"""Trainer and TrainConfig on real torch and the bundled MNIST sample (CPU, fixed seeds, tiny runs).

Tiny models run on one torch thread (more only contend on a shared CPU); the templates' accuracy
runs live in test_training_accuracy.py.
"""
from __future__ import annotations

import json
import math
import re
import sys
import threading
from dataclasses import replace

import pytest
import torch
from torch import nn

from engine.controls import control
from engine.data import DataConfig, load_data
from engine.errors import TrainingError, WeightsError
from engine.io import read_checkpoint, save_checkpoint
from engine.spec import LayerSpec, NetworkSpec
from engine.training import (
    AMP_MODES,
    INITS,
    LOSSES,
    OPTIMIZERS,
    SCHEDULES,
    BatchEnd,
    EpochEnd,
    HealthSample,
    LearningRateSchedule,
    RunFinished,
    RunStarted,
    TrainConfig,
    Trainer,
    is_out_of_memory,
    steps_per_epoch,
    warm_up,
)
from engine.training import trainer as trainer_module
from engine.training.readback import _LastGoodWeights

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def mnist():
    """480 train / 120 val / 1000 test images of the bundled sample."""
    return load_data(DataConfig(limit=600, val_fraction=0.2))


@pytest.fixture(scope="module")
def mnist_augmented():
    return load_data(DataConfig(limit=300, val_fraction=0.2, augment_crop_padding=2, augment_hflip=True))


@pytest.fixture(scope="module")
def regression():
    return load_data(DataConfig(source="synthetic-regression", samples=300))


def layers(*items) -> tuple[LayerSpec, ...]:
    """("Kind", {params}) or ("Kind",) per layer."""
    return tuple(LayerSpec(item[0], dict(item[1]) if len(item) > 1 else {}) for item in items)


def mlp(hidden=32, dropout=0.2, head=()) -> NetworkSpec:
    return NetworkSpec((1, 28, 28), layers(
        ("Flatten",), ("Linear", {"out_features": hidden}), ("ReLU",), ("Dropout", {"p": dropout}),
        ("Linear", {"out_features": 10}), *head))


def small_cnn() -> NetworkSpec:
    return NetworkSpec((1, 28, 28), layers(
        ("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), ("BatchNorm2d",), ("ReLU",),
        ("MaxPool2d",), ("Dropout2d", {"p": 0.1}), ("Flatten",), ("Linear", {"out_features": 10})))


def linear_regression() -> NetworkSpec:
    return NetworkSpec((2,), layers(("Linear", {"out_features": 1})))


class Recorder:
    """Collects events; optional hooks run inside the training thread."""

    def __init__(self, hook=None):
        self.events: list = []
        self.hook = hook

    def __call__(self, event):
        self.events.append(event)
        if self.hook is not None:
            self.hook(event)

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]

    def losses(self) -> list[float]:
        return [loss for e in self.of(BatchEnd) for loss in e.losses]


def train(spec, data, recorder=None, should_stop=None, **settings) -> tuple[Trainer, RunFinished, Recorder]:
    recorder = recorder or Recorder()
    trainer = Trainer(spec, data, TrainConfig(**{"epochs": 1, **settings}))
    finished = trainer.run(recorder, should_stop)
    return trainer, finished, recorder


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --------------------------------------------------------------------------- config


def test_config_round_trips_through_json_with_every_field_changed():
    config = TrainConfig(
        optimizer="sgd", lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-4, amsgrad=True,
        loss="smooth_l1", label_smoothing=0.1, smooth_l1_beta=0.5, schedule="cosine", step_size=3, gamma=0.5,
        warmup_epochs=1, plateau_patience=4, epochs=9, batch_size=32, init="normal", init_std=0.02,
        init_value=0.3, l1=1e-4, l2=1e-3, grad_clip=1.0, seed=7, device="cpu", amp="bf16", channels_last=True,
        compile=True, early_stopping=True, early_stopping_metric="val_acc", patience=5, min_delta=0.01,
        restore_best=False, health=False, tensorboard="runs/tb",
    )
    assert config.to_dict() != TrainConfig().to_dict()
    assert all(config.to_dict()[k] != v for k, v in TrainConfig().to_dict().items())
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig.from_json(json.dumps(config.to_dict())) == config
    assert TrainConfig.from_json(config.to_json()) == config


def test_config_from_partial_dict_fills_defaults_and_accepts_whole_numbers_for_floats():
    config = TrainConfig.from_dict({"lr": 1, "epochs": 3})
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.epochs == 3 and config.optimizer == "adam"


@pytest.mark.parametrize("field, value", [
    ("optimizer", "adamx"), ("lr", 0), ("lr", "fast"), ("lr", float("nan")), ("epochs", 1.5), ("epochs", True),
    ("epochs", 0), ("momentum", 1.0), ("label_smoothing", -0.1), ("device", "gpu"), ("amp", "fp8"),
    ("schedule", "linear"), ("batch_size", "64"), ("nesterov", "yes"), ("early_stopping_metric", "loss"),
    ("loss", "hinge"), ("init", "orthogonal"), ("gamma", 0.0),
])
def test_bad_setting_names_the_field(field, value):
    with pytest.raises(TrainingError, match=field):
        TrainConfig.from_dict({field: value})


def test_unknown_setting_and_non_object_are_refused():
    with pytest.raises(TrainingError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(TrainingError, match="object"):
        TrainConfig.from_dict([1, 2])
    with pytest.raises(TrainingError, match="JSON"):
        TrainConfig.from_json("{nope")


def test_nesterov_needs_momentum():
    with pytest.raises(TrainingError, match="nesterov"):
        TrainConfig.from_dict({"optimizer": "sgd", "nesterov": True, "momentum": 0.0})


# --------------------------------------------------------------------------- set-up errors


def test_design_that_does_not_fit_the_data_is_refused(mnist, regression):
    wrong_classes = NetworkSpec((1, 28, 28), layers(("Flatten",), ("Linear", {"out_features": 5})))
    with pytest.raises(TrainingError, match="10 classes"):
        Trainer(wrong_classes, mnist, TrainConfig())
    with pytest.raises(TrainingError, match="input shape"):
        Trainer(NetworkSpec((3, 32, 32), mlp().layers), mnist, TrainConfig())
    with pytest.raises(TrainingError, match="cross_entropy"):
        Trainer(linear_regression(), regression, TrainConfig(loss="cross_entropy"))
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="not available"):
            Trainer(mlp(), mnist, TrainConfig(device="cuda"))


def test_flat_design_takes_image_samples_of_the_same_size(mnist):
    flat = NetworkSpec((784,), layers(("Linear", {"out_features": 10})))
    trainer, finished, _ = train(flat, mnist, batch_size=32, lr=0.01, epochs=3)
    assert finished.reason == "completed"
    assert trainer.evaluate().accuracy > 0.75


# --------------------------------------------------------------------------- determinism and RNG


def test_same_seed_gives_identical_losses_and_weights_and_leaves_global_rng_alone(mnist_augmented):
    outer = torch.get_rng_state()
    first, _, a = train(small_cnn(), mnist_augmented, epochs=2, batch_size=32, seed=3)
    second, _, b = train(small_cnn(), mnist_augmented, epochs=2, batch_size=32, seed=3)
    other, _, c = train(small_cnn(), mnist_augmented, epochs=2, batch_size=32, seed=4)
    assert torch.equal(torch.get_rng_state(), outer)
    assert len(a.losses()) == 2 * first.steps_per_epoch
    assert a.losses() == b.losses()
    assert_same_weights(weights(first.model), weights(second.model))
    assert a.losses() != c.losses()


def test_streamed_training_data_gives_the_same_losses_as_tensors_on_the_device():
    config = DataConfig(limit=300, val_fraction=0.2)
    _, _, resident = train(mlp(), load_data(config), batch_size=32, seed=1)
    _, finished, streamed = train(mlp(), load_data(replace(config, stream=True)), batch_size=32, seed=1)
    assert finished.reason == "completed"
    assert streamed.losses() == resident.losses()


def test_streamed_image_files_train_through_dataloader_workers(tmp_path):
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for label, brightness in (("dark", 60), ("light", 190)):
        (tmp_path / label).mkdir()
        for i in range(12):
            pixels = (brightness + 40 * torch.rand(8, 8, generator=generator) - 20).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    data = load_data(DataConfig(source="folder", root=str(tmp_path), image_size=8, stream=True, val_fraction=0.25))
    assert data.streaming
    spec = NetworkSpec((1, 8, 8), layers(("Flatten",), ("Linear", {"out_features": 2})))
    trainer, finished, recorder = train(spec, data, epochs=3, batch_size=6, lr=0.05)
    assert finished.reason == "completed"
    assert len(recorder.losses()) == 3 * 3
    assert trainer.evaluate("val").accuracy == 1.0


# --------------------------------------------------------------------------- stop, pause


def test_should_stop_is_honoured_before_the_next_batch_and_run_continues_mid_epoch(mnist):
    calls = 0

    def should_stop():
        nonlocal calls
        calls += 1
        return calls > 5

    trainer = Trainer(mlp(), mnist, TrainConfig(epochs=1, batch_size=32))
    finished = trainer.run(should_stop=should_stop)
    assert (finished.reason, trainer.global_step, trainer.epoch) == ("stopped", 5, 0)
    assert "step 5" in finished.message
    finished = trainer.run()
    assert finished.reason == "completed"
    assert trainer.global_step == trainer.steps_per_epoch and trainer.epoch == 1


def test_stop_before_run_ends_it_without_a_step(mnist):
    trainer = Trainer(mlp(), mnist, TrainConfig(epochs=1))
    trainer.stop()
    recorder = Recorder()
    assert trainer.run(recorder).reason == "stopped"
    assert trainer.global_step == 0
    assert isinstance(recorder.events[0], RunStarted) and isinstance(recorder.events[-1], RunFinished)
    assert trainer.run().reason == "completed"  # the stop request was used up


def test_pause_blocks_between_batches_until_resumed_from_another_thread(mnist):
    trainer = Trainer(mlp(), mnist, TrainConfig(epochs=2, batch_size=32))
    paused_at = threading.Event()
    step_when_paused = []

    def pause_after_first_epoch_batch(event):
        if isinstance(event, BatchEnd) and event.epoch == 1 and event.step == trainer.steps_per_epoch:
            trainer.pause()
            step_when_paused.append(trainer.global_step)
            paused_at.set()

    result = []
    thread = threading.Thread(target=lambda: result.append(trainer.run(Recorder(pause_after_first_epoch_batch))))
    thread.start()
    assert paused_at.wait(60)
    thread.join(timeout=0.5)
    assert thread.is_alive() and trainer.paused
    assert trainer.global_step == step_when_paused[0] == trainer.steps_per_epoch
    trainer.resume()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert result[0].reason == "completed" and trainer.global_step == 2 * trainer.steps_per_epoch


def test_stop_wakes_a_paused_run(mnist):
    trainer = Trainer(mlp(), mnist, TrainConfig(epochs=1))
    trainer.pause()
    started = threading.Event()
    result = []
    thread = threading.Thread(target=lambda: result.append(
        trainer.run(lambda e: started.set() if isinstance(e, RunStarted) else None)))
    thread.start()
    assert started.wait(60)
    thread.join(timeout=0.3)
    assert thread.is_alive() and trainer.global_step == 0
    trainer.stop()
    thread.join(timeout=60)
    assert result[0].reason == "stopped" and trainer.global_step == 0


# --------------------------------------------------------------------------- failures


def test_huge_learning_rate_diverges_and_keeps_finite_weights(mnist):
    trainer, finished, recorder = train(mlp(dropout=0.0), mnist, optimizer="sgd", lr=1e6, momentum=0.0, epochs=3)
    assert finished.reason == "diverged"
    assert re.search(r"epoch \d+, step \d+", finished.message) and "learning rate" in finished.message
    assert "NaN" in finished.message or "infinite" in finished.message
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values() if v.is_floating_point())


def test_weight_check_sees_nan_and_inf_but_not_large_finite_weights():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    guard = _LastGoodWeights(model, 0)
    with torch.no_grad():
        model[0].weight.fill_(3e38)  # finite, though its L2 norm would overflow
        assert guard.all_finite().item() == 1.0
        model[1].running_var[1] = math.inf
        assert guard.all_finite().item() == 0.0
        guard.restore()
        assert guard.all_finite().item() == 1.0 and model[0].weight.abs().max() < 10
        model[0].bias[2] = math.nan
        assert guard.all_finite().item() == 0.0


def test_a_design_whose_activations_cannot_fit_is_refused_before_the_run_and_the_process_trains_again(mnist):
    # A transposed convolution at stride 100 asks for ~1.9 TB of activations: the memory guard (engine.memory)
    # refuses it from the design's analysis, with both numbers, before anything is allocated.
    greedy = NetworkSpec((1, 28, 28), layers(
        ("ConvTranspose2d", {"out_channels": 1000, "kernel_size": 1, "stride": 100}),
        ("AdaptiveAvgPool2d", {"output_size": 1}), ("Flatten",), ("Linear", {"out_features": 10})))
    with pytest.raises(TrainingError, match=r"^Training this design at batch size 64 needs about \d+\.\d TB but the "
                                            r"CPU has .* available: lower the batch size or make the design smaller"):
        train(greedy, mnist, batch_size=64)
    _, again, _ = train(mlp(), mnist)
    assert again.reason == "completed"


def test_out_of_memory_is_recognised_by_type_and_message():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory"))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


def test_other_exceptions_end_the_run_with_their_message(mnist):
    labels = mnist.train_y.clone()
    labels[0] = 99  # a class the 10 outputs cannot score: torch raises mid-run
    trainer, finished, _ = train(mlp(), replace(mnist, train_y=labels))
    assert finished.reason == "error"
    assert "out of bounds" in finished.message
    assert trainer.run().reason == "error"  # still no exception out of run()


def test_bce_without_a_sigmoid_is_refused_before_the_run(mnist):
    with pytest.raises(TrainingError, match=re.escape(
            f"end the design with a Sigmoid, or set {control('training.loss')} to bce_with_logits")):
        Trainer(mlp(), mnist, TrainConfig(loss="bce"))


def test_a_listener_that_raises_ends_the_run_as_an_error(mnist):
    def broken(event):
        if isinstance(event, EpochEnd):
            raise ValueError("plot exploded")

    _, finished, _ = train(mlp(), mnist, recorder=Recorder(broken))
    assert finished.reason == "error" and "plot exploded" in finished.message


# --------------------------------------------------------------------------- events


def test_event_stream_order_and_throttling(mnist):
    recorder = Recorder()
    trainer, finished, _ = train(mlp(), mnist, recorder=recorder, epochs=2, batch_size=8)
    events = recorder.events
    started = events[0]
    assert isinstance(started, RunStarted) and events[-1] is finished
    assert (started.epochs, started.start_epoch, started.steps_per_epoch) == (2, 0, steps_per_epoch(480, 8))
    assert (started.train_samples, started.val_samples) == (480, 120)
    assert started.parameters == sum(p.numel() for p in trainer.model.parameters())
    assert all(isinstance(e, (BatchEnd, HealthSample, EpochEnd)) for e in events[1:-1])
    for index, event in enumerate(events):  # a read-back's health figures follow its BatchEnd
        if isinstance(event, HealthSample):
            assert isinstance(events[index - 1], BatchEnd) and events[index - 1].global_step == event.global_step
    epoch_ends = recorder.of(EpochEnd)
    assert [e.epoch for e in epoch_ends] == [1, 2]
    for end in epoch_ends:
        index = events.index(end)
        last_batch = [e for e in events[:index] if not isinstance(e, HealthSample)][-1]
        assert isinstance(last_batch, BatchEnd) and last_batch.step == last_batch.steps_per_epoch == 60
        batches = [e for e in recorder.of(BatchEnd) if e.epoch == end.epoch]
        losses = [loss for e in batches for loss in e.losses]
        assert len(losses) == 60
        assert end.train_loss == pytest.approx(sum(losses) / len(losses))
        assert end.val_loss is not None and 0 <= end.val_acc <= 1 and end.seconds > 0
    steps = [e.global_step for e in recorder.of(BatchEnd)]
    assert steps == sorted(steps) and steps[-1] == 120
    # throttled: at most one read-back per 0.25 s plus one per epoch end, never one per batch
    seconds = sum(e.seconds for e in epoch_ends)
    assert len(recorder.of(BatchEnd)) <= 2 + seconds / 0.25 + 1
    assert trainer.history["train_loss"] == [e.train_loss for e in epoch_ends]
    assert trainer.history["val_acc"] == [e.val_acc for e in epoch_ends]


# --------------------------------------------------------------------------- every option runs


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_optimizer_trains_one_epoch(mnist, optimizer):
    trainer, finished, recorder = train(mlp(), mnist, optimizer=optimizer, lr=0.01, weight_decay=1e-4,
                                        amsgrad=True, nesterov=optimizer == "sgd")
    assert finished.reason == "completed", finished.message
    assert type(trainer.optimizer).__name__.lower() == optimizer
    assert all(math.isfinite(v) for v in recorder.losses())


CLASSIFICATION_HEADS = {
    "auto": (), "cross_entropy": (), "mse": (), "l1": (), "smooth_l1": (), "bce_with_logits": (),
    "nll": (("LogSoftmax", {"dim": 1}),), "bce": (("Sigmoid",),),
}


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_trains_one_epoch_on_classes(mnist, loss):
    trainer, finished, recorder = train(mlp(head=CLASSIFICATION_HEADS[loss]), mnist, loss=loss, label_smoothing=0.1)
    assert finished.reason == "completed", finished.message
    assert 0.0 <= trainer.evaluate().accuracy <= 1.0
    assert all(math.isfinite(v) for v in recorder.losses())


@pytest.mark.parametrize("loss", ["auto", "mse", "l1", "smooth_l1"])
def test_each_regression_loss_trains(regression, loss):
    trainer, finished, _ = train(linear_regression(), regression, loss=loss, lr=0.05, smooth_l1_beta=0.5)
    assert finished.reason == "completed"
    result = trainer.evaluate("val")  # synthetic data has no test split
    assert result.accuracy is None and result.confusion is None and result.predicted is None
    assert all(isinstance(p.predicted, float) for p in result.samples)


def test_binary_classification_with_one_logit():
    data = load_data(DataConfig(limit=400, val_fraction=0.2))
    keep = data.train_y < 2
    data = replace(data, train_x=data.train_x[keep], train_y=data.train_y[keep], num_classes=2,
                   class_names=data.class_names[:2], val_x=data.val_x[:0], val_y=data.val_y[:0],
                   test_x=data.test_x[data.test_y < 2], test_y=data.test_y[data.test_y < 2])
    spec = NetworkSpec((1, 28, 28), layers(("Flatten",), ("Linear", {"out_features": 1})))
    trainer, finished, _ = train(spec, data, loss="bce_with_logits", epochs=3, lr=0.01)
    assert finished.reason == "completed"
    result = trainer.evaluate()
    assert len(result.confusion) == 2 and result.accuracy > 0.9


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_each_schedule_trains_with_warm_up(mnist, schedule):
    trainer, finished, _ = train(mlp(), mnist, schedule=schedule, warmup_epochs=1, epochs=2, step_size=1)
    assert finished.reason == "completed"
    assert len(trainer.history["lr"]) == 2


@pytest.mark.parametrize("init", INITS)
def test_each_init_builds_and_trains(mnist, init):
    config = TrainConfig(init=init, init_std=0.05, init_value=0.01, epochs=1)
    trainer = Trainer(mlp(), mnist, config)
    first = trainer.model[1]
    if init == "constant":
        assert torch.all(first.weight == 0.01) and torch.all(first.bias == 0)
    if init == "normal":
        assert first.weight.std().item() == pytest.approx(0.05, rel=0.1)
    if init == "xavier":
        bound = math.sqrt(6 / (784 + 32))
        assert first.weight.abs().max() <= bound and first.weight.abs().max() > 0.9 * bound
    assert trainer.run().reason == "completed"


@pytest.mark.parametrize("amp", AMP_MODES)
def test_mixed_precision_modes_run_on_this_device(mnist, amp):
    trainer, finished, recorder = train(small_cnn(), mnist, amp=amp, device="cpu", channels_last=True)
    assert finished.reason == "completed"
    assert all(math.isfinite(v) for v in recorder.losses())
    notes = recorder.of(RunStarted)[0].notes
    assert ("fp16" in " ".join(notes)) == (amp == "fp16")


def test_penalties_and_clipping_shrink_the_weights(mnist):
    plain, _, _ = train(mlp(dropout=0.0), mnist, epochs=2)
    shrunk, finished, _ = train(mlp(dropout=0.0), mnist, epochs=2, l2=0.05, l1=1e-4, grad_clip=0.5)
    assert finished.reason == "completed"
    assert shrunk.model[1].weight.norm() < 0.8 * plain.model[1].weight.norm()


def test_reconstruction_trains_an_autoencoder():
    data = load_data(DataConfig(limit=200, task="reconstruction"))
    spec = NetworkSpec((1, 28, 28), layers(
        ("Flatten",), ("Linear", {"out_features": 16}), ("ReLU",), ("Linear", {"out_features": 784}), ("Sigmoid",)))
    trainer, finished, _ = train(spec, data, epochs=2, lr=0.01)
    assert finished.reason == "completed"
    assert trainer.history["train_loss"][1] < trainer.history["train_loss"][0]
    assert trainer.evaluate().loss == pytest.approx(trainer.history["val_loss"][1], rel=0.2)


def test_compile_trains_when_asked(mnist, monkeypatch):
    # aot_eager: dynamo and AOTAutograd capture the real graphs, without inductor's C++ build (30+ s on 2 cores)
    monkeypatch.setattr(trainer_module, "COMPILE_OPTIONS", {"backend": "aot_eager"})
    spec = NetworkSpec((1, 28, 28), layers(("Flatten",), ("Linear", {"out_features": 10})))
    trainer, finished, _ = train(spec, mnist, compile=True, batch_size=240)
    assert finished.reason == "completed", finished.message
    assert list(trainer.model.state_dict()) == ["1.weight", "1.bias"]  # plain keys, not _orig_mod.


def test_warm_up_pays_the_one_time_optimizer_import():
    warm_up()
    assert "torch._dynamo" in sys.modules  # what the first optimizer step imports (1-2 s), now already paid


# --------------------------------------------------------------------------- learning rate schedules


def schedule_lrs(config: TrainConfig, steps: int, total_steps: int) -> list[float]:
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=config.lr)
    schedule = LearningRateSchedule(optimizer, config, steps)
    lrs = []
    for _ in range(total_steps):
        lrs.append(schedule.lr)
        schedule.step()
    return lrs


def torch_lrs(make, lr: float, total_steps: int, per_epoch: int = 1) -> list[float]:
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = make(optimizer)
    lrs = []
    for step in range(total_steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if (step + 1) % per_epoch == 0:
            scheduler.step()
    return lrs


def test_one_cycle_matches_torch():
    config = TrainConfig(schedule="one_cycle", lr=0.1, epochs=4)
    ours = schedule_lrs(config, 10, 40)
    theirs = torch_lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=40,
                                                                     cycle_momentum=False), 0.1, 40)
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_cosine_and_step_match_torch():
    cosine = schedule_lrs(TrainConfig(schedule="cosine", lr=0.1, epochs=3), 10, 30)
    assert cosine == pytest.approx(torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 30), 0.1, 30))
    stepped = schedule_lrs(TrainConfig(schedule="step", lr=0.1, epochs=6, step_size=2, gamma=0.5), 5, 30)
    assert stepped == pytest.approx(torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 2, 0.5), 0.1, 30, 5))


def test_warm_up_ramps_linearly_then_hands_over():
    lrs = schedule_lrs(TrainConfig(schedule="none", lr=0.1, epochs=3, warmup_epochs=1), 4, 12)
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert lrs[4:] == pytest.approx([0.1] * 8)


def test_plateau_cuts_the_rate_after_patience_epochs():
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    schedule = LearningRateSchedule(optimizer, TrainConfig(schedule="plateau", lr=1.0, gamma=0.5,
                                                           plateau_patience=1), 10)
    for metric in (1.0, 0.5, 0.6, 0.6):
        schedule.end_epoch(metric)
    assert schedule.lr == 0.5
    schedule.end_epoch(0.4)
    assert schedule.lr == 0.5


# --------------------------------------------------------------------------- early stopping


def test_early_stopping_ends_the_run_and_restores_the_best_weights(mnist):
    saved = {}

    def keep_first_epoch(event):
        if isinstance(event, EpochEnd) and event.epoch == 1:
            saved.update(weights(trainer.model))

    trainer = Trainer(mlp(), mnist, TrainConfig(epochs=10, early_stopping=True, patience=2, min_delta=1e3))
    finished = trainer.run(Recorder(keep_first_epoch))
    assert finished.reason == "early_stopped" and finished.epochs_done == 3
    assert "restored the weights of epoch 1" in finished.message
    assert_same_weights(weights(trainer.model), saved)


def test_early_stopping_without_validation_data_watches_training_loss():
    data = load_data(DataConfig(limit=200, val_fraction=0.0))
    trainer = Trainer(mlp(), data, TrainConfig(epochs=2, early_stopping=True))
    assert trainer.stop_metric == "train_loss" and "train_loss" in trainer.notes[0]
    assert trainer.run().reason == "completed"


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_resume_equals_a_straight_run(mnist_augmented, tmp_path):
    settings = dict(batch_size=32, seed=5, optimizer="adamw", amsgrad=True, weight_decay=0.01)
    straight = Recorder()
    full = Trainer(small_cnn(), mnist_augmented, TrainConfig(epochs=3, **settings))
    full.run(straight)

    first = Trainer(small_cnn(), mnist_augmented, TrainConfig(epochs=2, **settings))
    first.run()
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, first.checkpoint())
    resumed = Recorder()
    second = Trainer(small_cnn(), mnist_augmented, TrainConfig(epochs=3, **settings))
    second.load_checkpoint(read_checkpoint(path))
    assert second.run(resumed).reason == "completed"

    assert resumed.losses() == [loss for e in straight.of(BatchEnd) if e.epoch == 3 for loss in e.losses]
    assert second.history == full.history
    assert_same_weights(weights(second.model), weights(full.model))


def test_checkpoint_taken_mid_epoch_resumes_exactly_with_a_schedule(mnist_augmented, tmp_path):
    settings = dict(epochs=3, batch_size=32, seed=2, schedule="cosine", warmup_epochs=1, optimizer="sgd",
                    nesterov=True)
    full = Trainer(small_cnn(), mnist_augmented, TrainConfig(**settings))
    straight = Recorder()
    full.run(straight)

    calls = 0

    def stop_in_second_epoch():
        nonlocal calls
        calls += 1
        return calls > full.steps_per_epoch + 3

    first = Trainer(small_cnn(), mnist_augmented, TrainConfig(**settings))
    before = Recorder()
    assert first.run(before, stop_in_second_epoch).reason == "stopped"
    save_checkpoint(tmp_path / "mid.ckpt", first.checkpoint())
    second = Trainer(small_cnn(), mnist_augmented, TrainConfig(**settings))
    second.load_checkpoint(read_checkpoint(tmp_path / "mid.ckpt"))
    after = Recorder()
    assert second.run(after).reason == "completed"

    assert before.losses() + after.losses() == straight.losses()
    assert second.history == full.history
    assert_same_weights(weights(second.model), weights(full.model))


def test_checkpoint_taken_from_a_listener_during_the_run_resumes_exactly(mnist_augmented):
    settings = TrainConfig(epochs=3, batch_size=32, seed=9, schedule="step", step_size=1, gamma=0.5)
    full = Trainer(small_cnn(), mnist_augmented, settings)
    straight = Recorder()
    full.run(straight)

    taken = {}
    running = Trainer(small_cnn(), mnist_augmented, settings)

    def checkpoint_after_first_epoch(event):
        if isinstance(event, EpochEnd) and event.epoch == 1:
            taken.update(running.checkpoint())

    assert running.run(Recorder(checkpoint_after_first_epoch)).reason == "completed"
    assert running.history == full.history  # taking the checkpoint did not disturb the run
    resumed = Trainer(small_cnn(), mnist_augmented, settings)
    resumed.load_checkpoint(taken)
    after = Recorder()
    assert resumed.run(after).reason == "completed"
    assert after.of(RunStarted)[0].start_epoch == 1
    assert after.losses() == [loss for e in straight.of(BatchEnd) if e.epoch > 1 for loss in e.losses]
    assert_same_weights(weights(resumed.model), weights(full.model))


def test_checkpoint_that_does_not_fit_is_refused_and_the_model_is_unchanged(mnist):
    source = Trainer(mlp(hidden=32), mnist, TrainConfig(epochs=1))
    checkpoint = source.checkpoint()
    other = Trainer(mlp(hidden=16), mnist, TrainConfig(epochs=1))
    before = weights(other.model)
    with pytest.raises(WeightsError, match="1.weight"):
        other.load_checkpoint(checkpoint)
    assert_same_weights(weights(other.model), before)
    with pytest.raises(WeightsError, match="optimizer 'adam'"):
        Trainer(mlp(), mnist, TrainConfig(optimizer="sgd")).load_checkpoint(checkpoint)
    with pytest.raises(WeightsError, match="not a LayerStudio checkpoint"):
        other.load_checkpoint({"model": {}})


# --------------------------------------------------------------------------- evaluation


def test_evaluation_matches_a_manual_computation(mnist):
    trainer, _, _ = train(mlp(), mnist, epochs=1)
    result = trainer.evaluate("test", samples=5)
    model = trainer.model.eval()
    with torch.no_grad():
        out = model(mnist.test_x)
    loss = nn.functional.cross_entropy(out, mnist.test_y).item()
    predicted = out.argmax(1)
    confusion = [[0] * 10 for _ in range(10)]
    for truth, guess in zip(mnist.test_y.tolist(), predicted.tolist(), strict=True):
        confusion[truth][guess] += 1
    assert result.loss == pytest.approx(loss, rel=1e-5)
    assert result.accuracy == pytest.approx((predicted == mnist.test_y).float().mean().item())
    assert result.confusion == confusion
    assert result.per_class_accuracy == pytest.approx([confusion[c][c] / sum(confusion[c]) for c in range(10)])
    assert result.predicted == predicted.tolist()
    assert [(p.index, p.predicted, p.target) for p in result.samples] == [
        (i, predicted[i].item(), mnist.test_y[i].item()) for i in range(5)]
    assert (result.split, result.count) == ("test", 1000)
    assert trainer.evaluate("val").count == 120
    with pytest.raises(TrainingError, match="split"):
        trainer.evaluate("holdout")
