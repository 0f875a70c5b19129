"""engine.profile and `layerstudio profile`: real training steps of tiny designs on the CPU (and, marked `cuda`,
on a GPU), measured per layer; the counts checked against what autograd keeps, torch's optimizers and the peak
memory tracked outside the profiler."""
from __future__ import annotations

import gc
import json

import pytest
import torch
from torch import nn

from engine import groups
from engine.build import build_model
from engine.cli import main
from engine.errors import Cancelled, SpecError, TrainingError
from engine.memory import optimizer_state_tensors
from engine.profile import LayerWatch, profile_design
from engine.profile_command import profile_lines
from engine.spec import LayerSpec, NetworkSpec
from engine.task import Task
from engine.templates import load_template
from engine.training import TrainConfig
from engine.training.optim import make_optimizer

CPU = torch.device("cpu")


def design(input_shape, *layers, frozen=()) -> NetworkSpec:
    return NetworkSpec(tuple(input_shape), tuple(LayerSpec(kind, dict(params), f"L{i}", frozen=i in frozen)
                                                 for i, (kind, params) in enumerate(layers)))


# Conv 4x8x8, BatchNorm, ReLU, max-pool to 4x4x4, Flatten to 64, Linear 10: what each keeps is known by hand.
SMALL_CNN = design((1, 8, 8), ("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), ("BatchNorm2d", {}),
                   ("ReLU", {}), ("MaxPool2d", {"kernel_size": 2}), ("Flatten", {}), ("Linear", {"out_features": 10}))
# Every kind of keeping: blocks with inner layers, a view, dropout's mask, a result-keeping activation, a sequence.
MIXED = design((3, 8, 8), ("Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}), ("ReLU", {}),
               ("AdaptiveAvgPool2d", {}), ("Flatten", {}), ("Dropout", {"p": 0.5}), ("Linear", {"out_features": 12}),
               ("Tanh", {}), ("Unflatten", {"dim": 1, "sizes": [3, 4]}), ("LSTM", {"hidden_size": 5}),
               ("LayerNorm", {}), ("Sigmoid", {}))
MIXED = MIXED.inserted(2, groups.residual_block(8, id="res1"), groups.residual_block(16, 2, id="res2"),
                       groups.inception_block(4, (4, 8), (2, 4), 4, id="inc"))
# A BatchNorm1d over 3 features sees one value per feature at batch 1: it needs batches of 2 or more.
BATCH_NORMED = design((4,), ("Linear", {"out_features": 3}), ("BatchNorm1d", {}))
TOKENS = design((6,), ("Embedding", {"num_embeddings": 20, "embedding_dim": 4}), ("GRU", {"hidden_size": 8}),
                ("Linear", {"out_features": 3}))


def cpu_profile(spec: NetworkSpec, batch: int = 4, **options):
    return profile_design(spec, batch, "cpu", repeats=1, search_largest=False, **options)


def saved_by_hand(model: nn.Sequential, x: torch.Tensor) -> list[int]:
    """Each layer's forward run by hand under our own saved_tensors_hooks: the bytes of every storage it keeps for
    backward that no earlier layer kept, parameters and buffers left out."""
    seen = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    counts, alive = [], []
    for layer in model:
        packed: list[torch.Tensor] = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t, packed=packed: packed.append(t) or t, lambda t: t):
            x = layer(x)
        total = 0
        for tensor in packed:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
        counts.append(total)
        alive.append(packed)  # kept alive, so no later tensor reuses a counted address
    return counts


# --------------------------------------------------------------------------- what is counted

def test_saved_bytes_are_what_each_layer_keeps_by_hand():
    """Batch 4: the conv keeps its input (4x1x8x8 floats), BatchNorm its input and per-channel mean and inverse
    std, ReLU its result, max-pool its int64 indices (its input is ReLU's result, counted), Linear the flattened
    pool output (a view: its storage), Flatten nothing."""
    rows = cpu_profile(SMALL_CNN).rows
    floats = 4
    assert [r.saved_bytes for r in rows] == [
        4 * 64 * floats, 4 * 4 * 64 * floats + 2 * 4 * floats, 4 * 4 * 64 * floats, 4 * 4 * 16 * 8, 0,
        4 * 64 * floats]
    assert [r.output_bytes for r in rows] == [4096, 4096, 4096, 1024, 1024, 4 * 10 * floats]
    assert [r.parameter_bytes for r in rows] == [(36 + 4) * floats, 8 * floats, 0, 0, 0, (640 + 10) * floats]


@pytest.mark.parametrize("spec", [SMALL_CNN, MIXED, TOKENS], ids=["cnn", "mixed", "tokens"])
def test_saved_bytes_equal_the_sum_over_saved_tensors(spec):
    """The issue's accuracy check on the CPU: per layer, the profile's saved bytes equal the saved tensors' sum
    taken with our own hooks over a plain forward of the same layers."""
    profile = cpu_profile(spec, batch=3)
    model = build_model(spec)
    x = (torch.randint(0, 20, (3, *spec.input_shape)) if spec.layers[0].kind == "Embedding"
         else torch.randn(3, *spec.input_shape))
    assert [r.saved_bytes for r in profile.rows] == saved_by_hand(model, x)
    assert profile.totals.saved_bytes == sum(r.saved_bytes for r in profile.rows) > 0


def test_rows_cover_every_layer_and_the_totals_add_up():
    spec = design((1, 8, 8), ("Conv2d", {"out_channels": 4}), ("ReLU", {}), ("Flatten", {}),
                  ("Linear", {"out_features": 5}), ("BatchNorm1d", {}), frozen={0})
    profile = cpu_profile(spec, batch=6)
    model = build_model(spec)
    assert [(r.index, r.layer_id, r.kind) for r in profile.rows] == [
        (i, layer.id, layer.kind) for i, layer in enumerate(spec.layers)]
    totals = profile.totals
    assert totals.parameter_bytes == sum(r.parameter_bytes for r in profile.rows) == sum(
        p.nbytes for p in model.parameters())
    assert totals.buffer_bytes == sum(b.nbytes for b in model.buffers()) > 0
    assert totals.gradient_bytes == totals.parameter_bytes - profile.rows[0].parameter_bytes  # the conv is frozen
    assert totals.input_bytes == 6 * 64 * 4
    assert totals.forward_ms == pytest.approx(sum(r.forward_ms for r in profile.rows))
    assert totals.backward_ms == pytest.approx(sum(r.backward_ms for r in profile.rows))
    assert all(r.forward_ms > 0 for r in profile.rows) and totals.step_ms > totals.forward_ms
    # Nothing above the frozen conv's output needs its gradient: no backward runs there.
    assert profile.rows[0].backward_ms == 0.0 and profile.rows[3].backward_ms > 0
    fixed = totals.parameter_bytes + totals.buffer_bytes + totals.optimizer_bytes
    assert fixed + totals.saved_bytes < totals.peak_bytes < fixed + totals.gradient_bytes + 3 * totals.saved_bytes
    assert (profile.batch_size, profile.device, profile.optimizer, profile.repeats) == (6, "cpu", "adam", 1)
    assert totals.measured_peak_bytes is None and totals.largest_batch is None  # measured on CUDA only


def test_a_design_fed_tokens_gets_integer_indices():
    profile = cpu_profile(TOKENS, batch=5)
    assert profile.totals.input_bytes == 5 * 6 * 8                    # int64 token indices
    assert profile.rows[0].saved_bytes == 5 * 6 * 8                   # the Embedding keeps them for its backward


def test_a_design_without_trainable_parameters_runs_its_forward_only():
    profile = cpu_profile(design((2, 3), ("Flatten", {}), ("ReLU", {})))
    totals = profile.totals
    assert (totals.parameter_bytes, totals.gradient_bytes, totals.optimizer_bytes, totals.saved_bytes) == (0, 0, 0, 0)
    assert [r.backward_ms for r in profile.rows] == [0.0, 0.0]
    assert totals.peak_bytes == 4 * 6 * 4 + 4 * 6 * 4  # the batch and the output


# --------------------------------------------------------------------------- optimizer state: one rule

@pytest.mark.parametrize(("settings", "tensors"), [
    ({"optimizer": "adam"}, 2), ({"optimizer": "adam", "amsgrad": True}, 3), ({"optimizer": "sgd", "momentum": 0.9}, 1),
    ({"optimizer": "sgd", "momentum": 0.0}, 0), ({"optimizer": "rmsprop"}, 1), ({"optimizer": "adagrad"}, 1),
    ({"optimizer": "adadelta"}, 2), ({"optimizer": "adamax"}, 2)])
def test_optimizer_state_is_the_memory_guards_rule_and_what_torch_keeps(settings, tensors):
    profile = cpu_profile(SMALL_CNN, **settings)
    totals = profile.totals
    assert profile.optimizer_tensors == tensors == optimizer_state_tensors(
        settings["optimizer"], settings.get("amsgrad", False), settings.get("momentum", 0.9))
    assert totals.optimizer_bytes == tensors * totals.gradient_bytes
    # The optimizer the trainer makes keeps exactly that, in parameter-sized tensors, after one step.
    model = build_model(SMALL_CNN)
    optimizer = make_optimizer(list(model.parameters()), TrainConfig(**settings), CPU)
    model(torch.randn(4, 1, 8, 8)).mean().backward()
    optimizer.step()
    kept = sum(t.nbytes for state in optimizer.state.values() for name, t in state.items()
               if isinstance(t, torch.Tensor) and name != "step")
    assert kept == totals.optimizer_bytes


# --------------------------------------------------------------------------- the estimate against a tracker

@pytest.mark.parametrize("name", ["lenet", "autoencoder", "mlp", "softmax-regression"])
def test_estimated_peak_matches_the_peak_torch_tracks_on_the_cpu(name):
    """torch's MemTracker follows every tensor storage a training step holds (what max_memory_allocated counts on
    a GPU); the estimate, built from the profile's counts, is within 5% of its peak."""
    mem_tracker = pytest.importorskip("torch.distributed._tools.mem_tracker")
    from engine.profile import TrainingStep

    spec = load_template(name)
    estimate = cpu_profile(spec, batch=32).totals.peak_bytes
    step = TrainingStep(build_model(spec), spec, TrainConfig(), CPU)
    step(32)  # the optimizer's state exists from the first step on
    tracker = mem_tracker.MemTracker()
    tracker.track_external(step.model, step.optimizer)
    with tracker:
        step(32)
    peak = tracker.get_tracker_snapshot("peak")[CPU]["Total"]
    assert estimate == pytest.approx(peak, rel=0.05)


# --------------------------------------------------------------------------- hooks leave nothing behind

def no_hooks_left(model: nn.Module) -> bool:
    return all(not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks)
               for m in model.modules()) and torch._C._autograd._top_saved_tensors_default_hooks(False) is None


class Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


@pytest.mark.parametrize("timing", [False, True])
def test_hooks_are_removed_even_when_the_forward_raises(timing):
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), Boom())
    with pytest.raises(RuntimeError, match="boom"), LayerWatch(model, timing=timing):
        model(torch.randn(2, 3))
    assert no_hooks_left(model)
    assert model.training
    model[0](torch.randn(2, 3)).sum().backward()  # the layers still work, unhooked


def test_a_cancelled_profile_stops_between_steps_and_leaves_no_hooks():
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 2   # after the warm-up step
    with pytest.raises(Cancelled):
        profile_design(SMALL_CNN, 4, "cpu", task=Task(should_stop=should_stop))
    assert torch._C._autograd._top_saved_tensors_default_hooks(False) is None
    assert not torch.nn.modules.module._global_forward_hooks


def test_a_failed_profile_keeps_no_model_alive_while_its_error_is_held():
    """The error (and its traceback's frames) may be kept to show it; the model must not be kept with it, or a
    failed profile would hold its weights on the device."""
    spec = design((13,), ("Linear", {"out_features": 37}), ("ReLU", {}))

    def alive() -> list[nn.Linear]:
        gc.collect()
        return [m for m in gc.get_objects() if type(m) is nn.Linear and (m.in_features, m.out_features) == (13, 37)]
    calls = []
    with pytest.raises(Cancelled) as failure:
        profile_design(spec, 4, "cpu", task=Task(should_stop=lambda: calls.append(1) or len(calls) > 2))
    assert failure.value.__traceback__ is not None and alive() == []


def test_progress_is_reported_from_zero_to_one():
    seen: list[float] = []
    profile_design(SMALL_CNN, 2, "cpu", repeats=2, task=Task(lambda fraction, message: seen.append(fraction)))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)


# --------------------------------------------------------------------------- refusals

def test_a_broken_design_is_refused_with_the_analysis_sentence():
    broken = design((1, 4, 4), ("Conv2d", {"kernel_size": 5}))
    with pytest.raises(SpecError, match=r"layer 0 \(Conv2d\): .*kernel"):
        cpu_profile(broken)


@pytest.mark.parametrize(("batch", "words"), [
    (0, r"'batch_size' \(Batch size\) must be a whole number between 1 and 10,000,000, got 0"),
    (1, r"Batch size 1 is too small for layer 1 \(BatchNorm1d\)")])
def test_a_batch_size_out_of_range_is_refused_with_the_declarations_sentence(batch, words):
    with pytest.raises(TrainingError, match=words):
        cpu_profile(BATCH_NORMED, batch=batch)


# --------------------------------------------------------------------------- the command

def test_profile_json_parses_and_matches_the_engine(capsys):
    assert main(["profile", "lenet", "--batch-size", "3", "--device", "cpu", "--optimizer", "sgd", "--momentum", "0",
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = profile_design(load_template("lenet"), 3, "cpu", "sgd", momentum=0.0, repeats=1)
    assert printed["design"] == "lenet"
    assert (printed["batch_size"], printed["device"], printed["optimizer"], printed["optimizer_tensors"]) == (
        3, "cpu", "sgd", 0)
    sizes = ("layer_id", "kind", "saved_bytes", "output_bytes", "parameter_bytes")
    assert [[row[key] for key in sizes] for row in printed["rows"]] == [
        [getattr(row, key) for key in sizes] for row in expected.rows]
    for key in ("parameter_bytes", "gradient_bytes", "optimizer_bytes", "saved_bytes", "input_bytes", "peak_bytes"):
        assert printed["totals"][key] == getattr(expected.totals, key), key
    assert printed["totals"]["optimizer_bytes"] == 0 and printed["totals"]["step_ms"] > 0


def test_profile_table_fits_80_columns_and_ends_with_the_step_line(capsys, monkeypatch):
    monkeypatch.setattr("engine.cli.output_width", lambda: 80)
    assert main(["profile", "lenet", "--batch-size", "2", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 80
    assert lines[1].split() == ["#", "Forward", "Backward", "Saved", "Output", "Params", "Layer"]
    assert lines[2].split()[0] == "0" and lines[2].endswith("Conv2d 6, k5, p2")
    assert lines[-1].startswith("Batch 2 on CPU") and lines[-1].endswith(" ms a step")
    assert any(line.startswith("Optimizer state:") and "(adam: 2 values per trainable parameter)" in line
               for line in lines)


def test_a_long_layer_name_wraps_inside_the_width():
    profile = cpu_profile(MIXED, batch=2)
    for width in (80, 72):
        lines = profile_lines(profile, "a design with a rather long name that needs more than one line", width)
        assert max(map(len, lines)) <= width


def test_profile_settings_come_from_the_design_file_then_the_flags(tmp_path, capsys):
    path = tmp_path / "small.json"
    path.write_text(json.dumps({**SMALL_CNN.to_dict(), "training": {"batch_size": 5, "optimizer": "sgd"}}))
    assert main(["profile", str(path), "--device", "cpu", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["batch_size"], printed["optimizer"], printed["optimizer_tensors"]) == (5, "sgd", 1)
    assert main(["profile", str(path), "--device", "cpu", "--batch-size", "7", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["batch_size"] == 7


@pytest.mark.parametrize(("args", "words"), [
    (["--batch-size", "0"], "Error: --batch-size must be a whole number between 1 and 10,000,000, got '0'."),
    (["--batch-size", "1"], "Error: Batch size 1 is too small for layer 1 (BatchNorm1d)"),
    (["--optimizer", "lion"], "Error: --optimizer must be one of sgd, adam"),
])
def test_profile_refusals_exit_1_naming_the_flag(tmp_path, capsys, args, words):
    path = tmp_path / "small.json"
    path.write_text(json.dumps(BATCH_NORMED.to_dict()))
    assert main(["profile", str(path), "--device", "cpu", *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(words)
    assert "--batch-size" in captured.err or "--optimizer" in captured.err


def test_profile_of_a_broken_design_exits_1_with_the_analysis_sentence(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(design((1, 4, 4), ("Conv2d", {"kernel_size": 5})).to_dict()))
    assert main(["profile", str(path), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: layer 0 (Conv2d): ") and err.count("\n") == 1


# --------------------------------------------------------------------------- on a GPU

@pytest.mark.parametrize("name", ["lenet", "cifar-cnn", "resnet18", "autoencoder", "mlp"])
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_estimated_peak_is_within_15_percent_of_the_measured_peak_on_cuda(name):
    profile = profile_design(load_template(name), 64, "cuda", search_largest=False)
    totals = profile.totals
    assert totals.measured_peak_bytes is not None and totals.largest_batch is None
    assert totals.peak_bytes == pytest.approx(totals.measured_peak_bytes, rel=0.15)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_largest_batch_search_finds_the_edge_and_recovers_on_cuda():
    """With this process held to 2 GiB, the batch found fits, one 10% larger runs out of memory (a sentence, not
    a crash), and the device is left as it was."""
    spec = load_template("cifar-cnn")
    device = torch.device("cuda")
    total = torch.cuda.get_device_properties(device).total_memory
    before = torch.cuda.memory_allocated(device)
    torch.cuda.set_per_process_memory_fraction(min(1.0, (before + 2 * 2**30) / total), device)
    try:
        largest = profile_design(spec, 64, "cuda", repeats=1).totals.largest_batch
        assert largest > 64
        assert profile_design(spec, largest, "cuda", repeats=1, search_largest=False).totals.peak_bytes > 2**30
        with pytest.raises(TrainingError, match="(?i)out of memory"):
            profile_design(spec, int(largest * 1.1) + 1, "cuda", repeats=1, search_largest=False)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
    assert torch.cuda.memory_allocated(device) == before
