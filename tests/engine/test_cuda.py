"""The GPU path: mixed precision, channels_last, out-of-memory recovery, checkpoints across devices, memory
between runs. Every test here is marked ``cuda`` and skips without a CUDA GPU (`pytest -m cuda` runs them;
benchmarks/device_check.sh runs them on a GPU machine).
"""
from __future__ import annotations

import math

import pytest
import torch

from engine.data import DataConfig, load_data
from engine.device_memory import cpu_module_copy, free_device_memory
from engine.io import read_checkpoint, save_checkpoint
from engine.spec import LayerSpec, NetworkSpec
from engine.training import TrainConfig, Trainer

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
MB = 2**20


@pytest.fixture(scope="module")
def mnist():
    """1600 train / 400 val / 1000 test images of the bundled sample."""
    return load_data(DataConfig(limit=2000, val_fraction=0.2))


def spec(*layers) -> NetworkSpec:
    return NetworkSpec((1, 28, 28), tuple(LayerSpec(kind, dict(params)) for kind, params in layers))


def small_cnn() -> NetworkSpec:
    return spec(("Conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1}), ("BatchNorm2d", {}), ("ReLU", {}),
                ("MaxPool2d", {}), ("Conv2d", {"out_channels": 32, "kernel_size": 3, "padding": 1}), ("ReLU", {}),
                ("MaxPool2d", {}), ("Flatten", {}), ("Linear", {"out_features": 10}))


def mlp(hidden: int = 64) -> NetworkSpec:
    return spec(("Flatten", {}), ("Linear", {"out_features": hidden}), ("ReLU", {}), ("Linear", {"out_features": 10}))


def cuda_config(**settings) -> TrainConfig:
    return TrainConfig(**{"device": "cuda", "epochs": 2, "batch_size": 64, "seed": 0, **settings})


def output_dtypes(model: torch.nn.Module, kind: type) -> list[torch.dtype]:
    """Records the output dtype of every ``kind`` layer's forward pass (hooks stay for the model's life)."""
    seen: list[torch.dtype] = []
    for module in model.modules():
        if isinstance(module, kind):
            module.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


def assert_learned(trainer: Trainer, finished) -> None:
    assert finished.reason == "completed", finished.message
    losses = trainer.history["train_loss"]
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < losses[0]
    assert trainer.evaluate("test").accuracy > 0.7


# --------------------------------------------------------------------------- precision and layout


def test_fp16_trains_under_autocast_with_a_grad_scaler(mnist):
    trainer = Trainer(small_cnn(), mnist, cuda_config(amp="fp16"))
    assert isinstance(trainer.scaler, torch.amp.GradScaler) and trainer.scaler.is_enabled()
    dtypes = output_dtypes(trainer.model, torch.nn.Conv2d)
    finished = trainer.run()
    assert_learned(trainer, finished)
    assert set(dtypes) == {torch.float16}  # the convolutions really ran in half precision
    assert math.isfinite(trainer.scaler.get_scale()) and trainer.scaler.get_scale() > 0
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # master weights stay float32
    assert trainer.checkpoint()["scaler"]["scale"] > 0  # the scaler's state rides in the checkpoint


def test_bf16_trains_under_autocast_without_a_scaler(mnist):
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    trainer = Trainer(small_cnn(), mnist, cuda_config(amp="bf16"))
    assert trainer.scaler is None
    dtypes = output_dtypes(trainer.model, torch.nn.Conv2d)
    assert_learned(trainer, trainer.run())
    assert set(dtypes) == {torch.bfloat16}


def test_channels_last_keeps_weights_and_inputs_in_that_layout_and_learns_the_same(mnist):
    plain = Trainer(small_cnn(), mnist, cuda_config())
    fast = Trainer(small_cnn(), mnist, cuda_config(channels_last=True))
    conv = fast.model[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    inputs: list[bool] = []
    conv.register_forward_pre_hook(lambda _m, args: inputs.append(args[0].is_contiguous(
        memory_format=torch.channels_last)))
    assert_learned(plain, plain.run())
    assert_learned(fast, fast.run())
    assert inputs and all(inputs)
    # same seed, same data order: only the kernels' summation order differs
    assert fast.history["train_loss"][-1] == pytest.approx(plain.history["train_loss"][-1], rel=0.05)


# --------------------------------------------------------------------------- out of memory


def test_a_full_gpu_ends_the_run_as_out_of_memory_and_the_next_run_trains(mnist):
    trainer = Trainer(mlp(), mnist, cuda_config())
    hog: list[torch.Tensor] = []
    chunk = 2**30
    try:
        while chunk >= MB:  # allocate until the device refuses, in ever smaller pieces
            try:
                hog.append(torch.empty(chunk, dtype=torch.uint8, device="cuda"))
            except torch.OutOfMemoryError:
                chunk //= 4
        finished = trainer.run()
    finally:
        hog.clear()
        free_device_memory(torch.device("cuda"))
    assert finished.reason == "out_of_memory", finished.message
    assert "batch size 32" in finished.message
    again = trainer.run()  # the same trainer, now that memory is back
    assert_learned(trainer, again)
    other = Trainer(small_cnn(), mnist, cuda_config(epochs=1))
    assert other.run().reason == "completed"


def test_a_batch_larger_than_the_gpu_is_out_of_memory_and_its_memory_is_returned(mnist):
    # A transposed convolution at stride 100 asks for terabytes of activations: the allocator refuses at once.
    greedy = spec(("ConvTranspose2d", {"out_channels": 1000, "kernel_size": 1, "stride": 100}),
                  ("AdaptiveAvgPool2d", {"output_size": 1}), ("Flatten", {}), ("Linear", {"out_features": 10}))
    free_device_memory(torch.device("cuda"))
    before = torch.cuda.memory_allocated()
    trainer = Trainer(greedy, mnist, cuda_config(epochs=1))
    finished = trainer.run()
    assert finished.reason == "out_of_memory"
    weights = sum(t.numel() * t.element_size() for t in trainer.model.state_dict().values())
    assert torch.cuda.memory_allocated() - before <= weights + 8 * MB  # no data copies or gradients left behind
    assert Trainer(mlp(), mnist, cuda_config(epochs=1)).run().reason == "completed"


# --------------------------------------------------------------------------- checkpoints across devices


@pytest.mark.parametrize("first, then", [("cuda", "cpu"), ("cpu", "cuda")])
def test_a_checkpoint_resumes_on_the_other_device(mnist, tmp_path, first, then):
    straight = Trainer(mlp(), mnist, cuda_config(device=first, epochs=2))
    assert straight.run().reason == "completed"
    half = Trainer(mlp(), mnist, cuda_config(device=first, epochs=1))
    assert half.run().reason == "completed"
    path = tmp_path / "run.ckpt.pt"
    save_checkpoint(path, half.checkpoint())
    resumed = Trainer(mlp(), mnist, cuda_config(device=then, epochs=2))
    resumed.load_checkpoint(read_checkpoint(path))
    assert all(p.device.type == then for p in resumed.model.parameters())
    assert all(t.device.type == then for state in resumed.optimizer.state.values()
               for name, t in state.items() if torch.is_tensor(t) and name != "step")
    finished = resumed.run()
    assert finished.reason == "completed" and resumed.epoch == 2
    assert resumed.history["train_loss"][0] == half.history["train_loss"][0]
    # the second epoch continues the same optimizer and batch order: it lands where the straight run did
    assert resumed.history["train_loss"][1] == pytest.approx(straight.history["train_loss"][1], rel=0.02)


# --------------------------------------------------------------------------- memory between runs


def test_a_cpu_copy_lets_the_next_run_have_the_whole_gpu(mnist):
    """What the window does between runs (TrainingController.release_run), at the engine level."""
    wide = spec(("Flatten", {}), ("Linear", {"out_features": 4096}), ("ReLU", {}),
                ("Linear", {"out_features": 4096}), ("ReLU", {}), ("Linear", {"out_features": 10}))
    free_device_memory(torch.device("cuda"))
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    first = Trainer(wide, mnist, cuda_config(epochs=1))
    assert first.run().reason == "completed"
    one_run = torch.cuda.max_memory_allocated() - base
    assert torch.cuda.memory_allocated() - base > 0.5 * one_run  # a finished trainer holds most of its peak
    kept = cpu_module_copy(first.model)
    del first
    free_device_memory(torch.device("cuda"))
    torch.cuda.reset_peak_memory_stats()
    second = Trainer(wide, mnist, cuda_config(epochs=1))
    assert second.run().reason == "completed"
    assert torch.cuda.max_memory_allocated() - base < 1.5 * one_run
    assert all(p.device.type == "cpu" for p in kept.parameters())
