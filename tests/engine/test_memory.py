"""The memory guard: designs and datasets that cannot fit are refused with both numbers before allocating."""
from __future__ import annotations

import re
import time
from dataclasses import replace

import psutil
import pytest
import torch
from PIL import Image

from engine.data import DataConfig, load_data
from engine.errors import DataError, TrainingError
from engine.memory import (
    available_bytes,
    check_data_fits,
    check_fits,
    check_training_fits,
    estimate_data_bytes,
    estimate_training_bytes,
    format_bytes,
    optimizer_state_tensors,
)
from engine.shapes import analyze
from engine.spec import LayerSpec, NetworkSpec
from engine.templates import list_templates, load_design
from engine.training import TrainConfig, Trainer

BOTH_NUMBERS = r"needs about (\d+\.\d) (GB|TB) but the CPU has (\d+\.\d|\d+) (kB|MB|GB|TB) available"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERSTUDIO_HOME", str(tmp_path / "home"))


def huge_linear() -> NetworkSpec:
    """10^5 inputs to 10^6 outputs: 10^11 weights, 400 GB in float32 before gradients and Adam's state."""
    return NetworkSpec((100_000,), (LayerSpec("Linear", {"out_features": 1_000_000}, id="huge"),
                                    LayerSpec("Linear", {"out_features": 1}, id="out")))


def test_a_design_too_large_for_memory_is_refused_before_anything_is_allocated():
    data = load_data(DataConfig(source="synthetic-regression", weights=(1.0,) * 100_000, samples=4, val_fraction=0))
    rss_before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    with pytest.raises(TrainingError, match=BOTH_NUMBERS) as refused:
        Trainer(huge_linear(), data, TrainConfig(batch_size=4096, device="cpu"))
    message = str(refused.value)
    weights = 100_000 * 1_000_000 + 1_000_000 + 1_000_000 + 1
    assert message.startswith("Training this design at batch size 4 needs about ")   # the batch is the data's 4
    assert f"about {format_bytes(weights * 4 * 4)} " in message          # weights, gradients, two Adam moments
    assert message.endswith("available: lower the batch size or make the design smaller.")
    assert time.perf_counter() - started < 1.0
    assert psutil.Process().memory_info().rss - rss_before < 100e6       # nothing near 400 GB was touched


def test_a_synthetic_dataset_of_a_billion_wide_samples_is_refused_with_both_numbers():
    with pytest.raises(DataError, match="Making 1,000,000,000 synthetic samples " + BOTH_NUMBERS) as refused:
        load_data(DataConfig(source="synthetic-regression", samples=10**9, weights=(0.5,) * 100))
    assert str(refused.value).endswith("available: lower samples.")
    match = re.search(BOTH_NUMBERS, str(refused.value))
    needed = float(match.group(1)) * {"GB": 1, "TB": 1000}[match.group(2)]
    assert needed >= 400     # 10^9 samples x (100 features + target + noise) x 4 bytes, plus the split's copies


def test_images_enlarged_beyond_memory_name_image_size_or_the_batch_size(tmp_path):
    # built-in images are held at their own size and enlarged per batch: image_size costs the batch, not the data
    mnist = DataConfig(source="mnist", root=str(tmp_path), image_size=4096)   # was 70,000 x 4096 x 4096 floats
    assert estimate_data_bytes(mnist) == estimate_data_bytes(replace(mnist, image_size=28)) < 1e9
    data = load_data(DataConfig(image_size=4096, limit=64, val_fraction=0))
    spec = NetworkSpec((1, 4096, 4096), (LayerSpec("Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}),
                                         LayerSpec("AdaptiveAvgPool2d", {"output_size": 1}), LayerSpec("Flatten", {}),
                                         LayerSpec("Linear", {"out_features": 10})))
    with pytest.raises(TrainingError, match=r"^Training this design at batch size 64 needs about \d+\.\d GB but "
                                            r"the CPU has 16\.0 GB available: lower the batch size"):
        check_training_fits(analyze(spec), TrainConfig(batch_size=64), torch.device("cpu"), data, available=16e9)
    # image folders are decoded at image_size: there it is the data that does not fit
    for name in ("a", "b"):
        (tmp_path / "pics" / name).mkdir(parents=True)
        Image.new("L", (6, 6), 40).save(tmp_path / "pics" / name / "0.png")
    folder = DataConfig(source="folder", root=str(tmp_path / "pics"), image_size=4096)
    with pytest.raises(DataError, match=r"^Loading the pictures of pics at image size 4096 needs about \d+\.\d MB "
                                        r"but the CPU has 100\.0 MB available: lower image_size, set a limit"):
        check_data_fits(folder, available=100e6)


@pytest.mark.parametrize("template", [info.name for info in list_templates()])
def test_every_template_at_its_own_settings_passes_the_training_check(template):
    spec, design = load_design(template)
    config = TrainConfig.from_dict(design.get("training") or {})
    needed = estimate_training_bytes(analyze(spec), config.batch_size, config.optimizer)
    assert 0 < needed < 8e9                                   # a laptop trains every template
    check_fits(needed, "cpu", "Training", "lower the batch size")


def test_a_normal_run_on_the_bundled_sample_passes_both_checks():
    spec, _ = load_design("lenet")
    data = load_data(DataConfig(limit=200))
    trainer = Trainer(spec, data, TrainConfig(epochs=1, batch_size=64, device="cpu"))
    assert trainer.run().reason == "completed"


def test_the_estimate_follows_the_optimizer_and_the_batch():
    analysis = analyze(NetworkSpec((784,), (LayerSpec("Linear", {"out_features": 1000}),)))
    weights = analysis.params * 4
    sgd = estimate_training_bytes(analysis, 1, "sgd")
    assert estimate_training_bytes(analysis, 1, "adam") - sgd == 2 * weights
    assert estimate_training_bytes(analysis, 1, "adam", amsgrad=True) - sgd == 3 * weights
    assert estimate_training_bytes(analysis, 1, "sgd", momentum=0.9) - sgd == weights
    assert [optimizer_state_tensors(name) for name in ("rmsprop", "adagrad", "adadelta", "adamax")] == [1, 1, 2, 2]
    per_sample = estimate_training_bytes(analysis, 2, "sgd") - sgd
    assert per_sample == (784 + 1000) * 4 + 2 * 1000 * 4   # kept input and output, the widest gradient twice
    frozen = analyze(NetworkSpec((784,), (LayerSpec("Linear", {"out_features": 1000}, frozen=True),)))
    assert estimate_training_bytes(frozen, 1, "adam") < sgd   # no gradients or state for frozen weights


def test_the_estimate_is_close_to_a_real_training_step():
    """One measured case (a CNN on 1x28x28 at batch 256): the estimate is within a factor of two of the peak."""
    spec, _ = load_design("cnn")
    analysis = analyze(spec)
    estimate = estimate_training_bytes(analysis, 256, "adam")
    from engine.build import build_model

    model = build_model(spec)
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.randn(256, *spec.input_shape)
    out = model(x)
    weights = {p.data_ptr() for p in model.parameters()}
    kept = sum(t.nbytes for t in _saved_tensors(out.grad_fn) if t.data_ptr() not in weights)
    out.square().mean().backward()
    optimizer.step()
    state = sum(t.nbytes for s in optimizer.state.values() for t in s.values() if t.dim())
    real = sum(p.nbytes for p in model.parameters()) * 2 + state + kept
    print(f"cnn at batch 256: saved for backward + weights, gradients, Adam state {format_bytes(real)}; "
          f"estimate {format_bytes(estimate)}")
    assert real / 2 <= estimate <= real * 2, (format_bytes(real), format_bytes(estimate))


def _saved_tensors(grad_fn) -> list[torch.Tensor]:
    """Every tensor autograd saved for the backward pass of ``grad_fn``'s graph (each counted once)."""
    seen, found, stack = set(), {}, [grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        for name in dir(node):
            if name.startswith("_saved_"):
                value = getattr(node, name, None)
                if isinstance(value, torch.Tensor):
                    found[value.data_ptr()] = value
        stack.extend(next_node for next_node, _ in node.next_functions)
    return list(found.values())


def test_available_bytes_on_the_cpu_is_the_free_ram():
    assert abs(available_bytes("cpu") - psutil.virtual_memory().available) < 2e9
    with pytest.raises(DataError, match=r"^Reading needs about 1\.0 TB but the CPU has .* available: use less\.$"):
        check_fits(10**12 + available_bytes("cpu"), "cpu", "Reading", "use less", DataError)


def test_a_csv_file_is_estimated_from_its_size_and_head(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,c,label\n" + "".join(f"{i}.25,{i}.5,{i}.75,x\n" for i in range(10_000)))
    estimate = estimate_data_bytes(DataConfig(source="csv", root=str(path)))
    assert 40_000 * 50 < estimate < 40_000 * 300       # 40,000 cells at roughly a hundred bytes each


def test_groups_keep_what_their_layers_keep_whatever_the_nesting():
    """A group's glue keeps nothing: a sequence group keeps what its layers keep standing in the design, a
    repeat keeps each copy's, branches keep each branch's, and a residual's ReLU after the sum keeps its result."""
    from engine.groups import group, residual_block
    from engine.memory import activation_bytes_per_sample

    def layers():
        return (LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), LayerSpec("ReLU"),
                LayerSpec("MaxPool2d", {"kernel_size": 2, "stride": 2}))

    def kept(*top) -> int:
        return activation_bytes_per_sample(analyze(NetworkSpec((4, 8, 8), top)))[0]

    flat = kept(*layers())
    assert kept(group("sequence", layers())) == flat
    assert kept(group("sequence", [group("sequence", layers())])) == flat
    assert kept(group("branches", [group("sequence", layers()), group("sequence", layers())])) == 2 * flat - 4 * 64 * 4
    same = (LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), LayerSpec("BatchNorm2d"))
    assert kept(group("sequence", same, repeat=3)) == kept(*same, *same, *same)
    block = residual_block(4)
    body = kept(*block.layers)
    assert kept(block) == body + 4 * 64 * 4   # the body's layers, then the ReLU's result after the sum
