"""engine.training.checkpoint: every field of a checkpoint is checked against the trainer before anything is loaded.

The checkpoints are real ones (Trainer.checkpoint() of a run stopped half way through its second epoch,
with early stopping, so every field is filled), corrupted one field at a time. A corrupted optimizer
state used to reach torch's fused kernels and corrupt the heap (a segfault); now each is refused with a
WeightsError naming the field, and the trainer is left exactly as it was.
"""
from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from engine.data import DataConfig, load_data
from engine.errors import WeightsError
from engine.io import read_checkpoint, save_checkpoint
from engine.spec import LayerSpec, NetworkSpec
from engine.training import OPTIMIZERS, BatchEnd, EpochEnd, TrainConfig, Trainer, readback
from engine.training.checkpoint import CHECKPOINT_FIELDS, REQUIRED_FIELDS, CheckpointWriter, validate_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEC = NetworkSpec((1, 28, 28), (
    LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 3, "stride": 2}),
    LayerSpec("BatchNorm2d"),
    LayerSpec("ReLU"),
    LayerSpec("Flatten"),
    LayerSpec("Linear", {"out_features": 10}),
))
# What each optimizer keeps per parameter in these runs (rmsprop without momentum or centering).
STATE_KEYS = {
    "sgd": ("momentum_buffer",),
    "adam": ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "adamw": ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "rmsprop": ("step", "square_avg"),
    "adagrad": ("step", "sum"),
    "adadelta": ("step", "square_avg", "acc_delta"),
    "adamax": ("step", "exp_avg", "exp_inf"),
}
NON_NEGATIVE = ("exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum", "acc_delta", "exp_inf")


@pytest.fixture(scope="module")
def data():
    return load_data(DataConfig(limit=96, val_fraction=0.25))  # 72 train samples: 5 steps of 16


def config(optimizer: str, epochs: int = 3) -> TrainConfig:
    return TrainConfig(optimizer=optimizer, epochs=epochs, batch_size=16, device="cpu", seed=1,
                       amsgrad=optimizer in ("adam", "adamw"), early_stopping=True, patience=5)


def stop_after(batches: int):
    calls = iter(range(10**6))
    return lambda: next(calls) >= batches


@pytest.fixture(scope="module")
def checkpoints(data):
    """optimizer -> a real checkpoint taken 2 steps into epoch 2 (progress, history, best weights all set)."""
    made: dict[str, dict] = {}

    def get(optimizer: str) -> dict:
        if optimizer not in made:
            trainer = Trainer(SPEC, data, config(optimizer))
            assert trainer.run(should_stop=stop_after(trainer.steps_per_epoch + 2)).reason == "stopped"
            made[optimizer] = trainer.checkpoint()
        return copy.deepcopy(made[optimizer])

    return get


def snapshot(trainer: Trainer) -> dict:
    return copy.deepcopy({"model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
                          "schedule": trainer.schedule.state_dict(), "epoch": trainer.epoch,
                          "global_step": trainer.global_step, "history": trainer.history,
                          "generator": trainer.generator.get_state(), "notes": trainer.notes,
                          "loss_watch": trainer.loss_watch.state_dict()})


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b or (a != a and b != b)


def refused(checkpoint: dict, optimizer: str, data, field: str) -> None:
    """Loading ``checkpoint`` raises WeightsError naming ``field`` (a regex) and changes nothing."""
    trainer = Trainer(SPEC, data, config(optimizer))
    before = snapshot(trainer)
    with pytest.raises(WeightsError, match=field) as caught:
        trainer.load_checkpoint(checkpoint)
    assert same(snapshot(trainer), before), "a refused checkpoint changed the trainer"
    text = str(caught.value)
    assert text[:1].isupper() and "\n" not in text.split(":")[0], text


def put(path: str, value):
    """A corruption that sets ``checkpoint[a][b]...`` (path 'a/b/...'; integer parts index lists and state)."""
    def corrupt(checkpoint):
        *parents, last = [int(p) if p.lstrip("-").isdigit() else p for p in path.split("/")]
        target = checkpoint
        for part in parents:
            target = target[part]
        target[last] = value(target[last]) if callable(value) else value
    return corrupt


def drop(path: str):
    def corrupt(checkpoint):
        *parents, last = [int(p) if p.isdigit() else p for p in path.split("/")]
        target = checkpoint
        for part in parents:
            target = target[part]
        del target[last]
    return corrupt


def nan_at_first(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.clone()
    tensor.view(-1)[0] = math.nan
    return tensor


def negative_first(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.clone()
    tensor.view(-1)[0] = -1.0
    return tensor


def swap_states(checkpoint):
    state = checkpoint["optimizer"]["state"]
    state[0], state[1] = state[1], state[0]


def random_bytes(tensor: torch.Tensor) -> torch.Tensor:
    return torch.randint(0, 256, tensor.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


# (name, field the message must name, corruption): fields outside the optimizer, tried with Adam
CORRUPTIONS = [
    ("format", "not a LayerStudio checkpoint", put("format", "pickle")),
    ("version-future", "version 99", put("version", 99)),
    ("version-bool", "version True", put("version", True)),
    *[(f"missing-{name}", rf"field {name} is missing", drop(name)) for name in REQUIRED_FIELDS[2:]],
    ("epoch-negative", r"field epoch is -1", put("epoch", -1)),
    ("epoch-text", r"field epoch must be a whole number", put("epoch", "1")),
    ("epoch-bool", r"field epoch must be a whole number", put("epoch", True)),
    ("epoch-huge", r"field epoch is a number with more than 19 digits", put("epoch", 10**5000)),
    ("global-step-huge-float", r"field global_step must be a whole number", put("global_step", 1e308)),
    ("history-huge", r"field history\.lr\[0\] is a number too large to use",
     put("history/lr", [10**5000])),
    ("config-huge", r"field config is not valid", put("config/seed", 10**5000)),
    ("epoch-vs-history", r"field history\.train_loss has 1 entries", put("epoch", 2)),
    ("global-step-below-epoch", r"field global_step", put("global_step", 0)),
    ("global-step-float", r"field global_step", put("global_step", 7.0)),
    ("model-other-shape", r"checkpoint field model", put("model/4.weight", torch.zeros(10, 5))),
    ("model-missing-tensor", r"checkpoint field model", drop("model/1.running_var")),
    ("model-nan", r"field model\['0\.weight'\] holds NaN", put("model/0.weight", nan_at_first)),
    ("model-integer", r"field model\['0\.weight'\] holds torch.int64", put("model/0.weight", lambda t: t.long())),
    ("model-not-tensor", r"field model\['0\.bias'\] must be a tensor", put("model/0.bias", [0.0, 0.0, 0.0, 0.0])),
    ("model-float-counter", r"field model\['1\.num_batches_tracked'\]",
     put("model/1.num_batches_tracked", lambda t: t.float())),
    ("model-not-dict", r"field model must be a dict", put("model", [1, 2])),
    ("schedule-steps-negative", r"field schedule\.steps is -1", put("schedule/steps", -1)),
    ("schedule-steps-future", r"field schedule\.steps is 1000000", put("schedule/steps", 10**6)),
    ("schedule-steps-huge", r"field schedule\.steps", put("schedule/steps", 10**400)),
    ("schedule-factor-zero", r"field schedule\.plateau_factor", put("schedule/plateau_factor", 0.0)),
    ("schedule-best-nan", r"field schedule\.best is nan", put("schedule/best", math.nan)),
    ("schedule-base-lrs", r"field schedule\.base_lrs has 2 entries", put("schedule/base_lrs", [1e-3, 1e-3])),
    ("schedule-base-lr-zero", r"field schedule\.base_lrs\[0\]", put("schedule/base_lrs", [0.0])),
    ("schedule-missing-key", r"field schedule\.bad_epochs is missing", drop("schedule/bad_epochs")),
    ("history-missing-key", r"field history\.val_acc is missing", drop("history/val_acc")),
    ("history-accuracy", r"field history\.val_acc\[0\] is 1\.5", put("history/val_acc", [1.5])),
    ("history-lr-nan", r"field history\.lr\[0\] is nan", put("history/lr", [math.nan])),
    ("history-text", r"field history\.train_loss\[0\] must be a number", put("history/train_loss", ["low"])),
    ("history-not-list", r"field history\.lr must be a list", put("history/lr", 0.001)),
    ("rng-torch-random", r"field rng\.torch is not a valid random number generator state",
     put("rng/torch", random_bytes)),
    ("rng-torch-short", r"field rng\.torch has shape 100", put("rng/torch", lambda t: t[:100].clone())),
    ("rng-torch-float", r"field rng\.torch holds torch.float32", put("rng/torch", lambda t: t.float())),
    ("rng-generator", r"field rng\.generator", put("rng/generator", random_bytes)),
    ("rng-augment", r"field rng\.augment_generator", put("rng/augment_generator", random_bytes)),
    ("rng-device-type", r"field rng\.device_type", put("rng/device_type", 3)),
    ("rng-missing", r"field rng\.generator is missing", drop("rng/generator")),
    ("progress-perm-repeats", r"field progress\.perm is not an order",
     put("progress/perm", lambda p: torch.cat([p[:1], p[:-1]]))),
    ("progress-perm-length", r"trained on 71 samples but this data has 72", put("progress/perm", lambda p: p[:-1])),
    ("progress-perm-float", r"field progress\.perm holds torch.float32", put("progress/perm", lambda p: p.float())),
    ("progress-step", r"field progress\.step is 99", put("progress/step", 99)),
    ("progress-losses-count", r"field progress\.losses has 1 entries", put("progress/losses", lambda v: v[:1])),
    ("progress-loss-nan", r"field progress\.losses\[0\] is nan", put("progress/losses", lambda v: [math.nan, *v[1:]])),
    ("progress-correct", r"field progress\.correct is -1", put("progress/correct", -1)),
    ("progress-seconds", r"field progress\.seconds is inf", put("progress/seconds", math.inf)),
    ("progress-not-dict", r"field progress must be a dict", put("progress", "half")),
    ("best-epoch", r"field best\.epoch is 5", put("best/epoch", 5)),
    ("best-value", r"field best\.value is nan", put("best/value", math.nan)),
    ("best-weights-shape", r"checkpoint field best_weights", put("best_weights/4.bias", torch.zeros(3))),
    ("best-weights-extra", r"field best_weights does not name exactly",
     put("best_weights", lambda w: {**w, "9.weight": torch.zeros(1)})),
    ("config-bad", r"field config is not valid", put("config/batch_size", "x")),
    ("config-not-dict", r"field config must be a dict", put("config", "adam")),
    ("spec-bad", r"field spec is not a valid design", put("spec", {"format": "x"})),
    ("data-bad", r"field data is not valid", put("data", {"source": "nowhere"})),
    ("scaler-bad", r"field scaler\.scale", put("scaler", {"scale": -1.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                                                            "growth_interval": 2000, "_growth_tracker": 0})),
    ("loss-watch-above", r"field loss_watch\.above is 50", put("loss_watch/above", 50)),
    ("loss-watch-reference", r"field loss_watch\.reference", put("loss_watch/reference", math.inf)),
]


# The optimizer's fields, tried with every optimizer
OPTIMIZER_CORRUPTIONS = [
    ("groups-count", r"field optimizer\.param_groups has 2 entries", put("optimizer/param_groups", lambda g: g + g)),
    ("group-params-count", r"field optimizer\.param_groups\[0\]\.params has 3 entries",
     put("optimizer/param_groups/0/params", lambda ids: ids[:3])),
    ("group-params-repeat", r"field optimizer\.param_groups\[0\]\.params\[1\] repeats",
     put("optimizer/param_groups/0/params", lambda ids: [ids[0], ids[0], *ids[2:]])),
    ("group-params-text", r"field optimizer\.param_groups\[0\]\.params\[0\]",
     put("optimizer/param_groups/0/params", lambda ids: ["0", *ids[1:]])),
    ("group-lr-negative", r"field optimizer\.param_groups\[0\]\.lr is -1", put("optimizer/param_groups/0/lr", -1.0)),
    ("group-lr-text", r"field optimizer\.param_groups\[0\]\.lr must be a number",
     put("optimizer/param_groups/0/lr", "fast")),
    ("group-lr-nan", r"field optimizer\.param_groups\[0\]\.lr is nan", put("optimizer/param_groups/0/lr", math.nan)),
    ("group-lr-tensor", r"field optimizer\.param_groups\[0\]\.lr", put("optimizer/param_groups/0/lr", torch.ones(2))),
    ("group-weight-decay", r"field optimizer\.param_groups\[0\]\.weight_decay",
     put("optimizer/param_groups/0/weight_decay", -0.5)),
    ("group-maximize", r"field optimizer\.param_groups\[0\]\.maximize must be true or false",
     put("optimizer/param_groups/0/maximize", "yes")),
    ("state-unknown-parameter", r"field optimizer\.state\[99\] belongs to no parameter",
     put("optimizer/state", lambda state: {**state, 99: state[0]})),
    ("state-not-dict", r"field optimizer\.state\[0\] must be a dict", put("optimizer/state/0", torch.zeros(3))),
    ("state-swapped", r"field optimizer\.state\[0\]\.\w+ has shape", swap_states),
    ("state-unknown-key", r"field optimizer\.state\[0\]\.velocity is not part of",
     put("optimizer/state/0", lambda entry: {**entry, "velocity": torch.zeros(1)})),
]


def state_corruptions(optimizer: str) -> list:
    """The optimizer's own per-parameter state, corrupted key by key."""
    cases = []
    for key in STATE_KEYS[optimizer]:
        field = rf"field optimizer\.state\[0\]\.{key}"
        # (SGD keeps one key: without it the entry is empty, the parameter's whole state missing)
        cases.append((f"{key}-missing", rf"field optimizer\.state\[0\](\.{key})? is missing",
                      drop(f"optimizer/state/0/{key}")))
        if key == "step":
            cases += [
                ("step-integer", field + " holds torch.int64", put("optimizer/state/0/step", lambda t: t.long())),
                ("step-vector", field + " must be a single-number tensor",
                 put("optimizer/state/0/step", torch.zeros(5))),
                ("step-python", field + " must be a single-number tensor", put("optimizer/state/0/step", 3)),
                ("step-negative", field + " is -1", put("optimizer/state/0/step", torch.tensor(-1.0))),
                ("step-fraction", field + " is 1.5", put("optimizer/state/0/step", torch.tensor(1.5))),
                ("step-beyond-run", field + " is 1000", put("optimizer/state/0/step", torch.tensor(1000.0))),
                ("step-nan", field + " is nan", put("optimizer/state/0/step", torch.tensor(math.nan))),
            ]
            continue
        cases += [
            (f"{key}-shape", field + r" has shape 3 but parameter 0\.weight has shape 4x1x3x3",
             put(f"optimizer/state/0/{key}", torch.zeros(3))),
            (f"{key}-other-parameter", field + r" has shape 4 but parameter 0\.weight",
             put(f"optimizer/state/0/{key}", lambda t: torch.zeros(4))),
            (f"{key}-integer", field + " holds torch.int64", put(f"optimizer/state/0/{key}", lambda t: t.long())),
            (f"{key}-nan", field + " holds NaN", put(f"optimizer/state/0/{key}", nan_at_first)),
            (f"{key}-none", field + " must be a tensor", put(f"optimizer/state/0/{key}", None)),
        ]
        if key in NON_NEGATIVE:
            cases.append((f"{key}-negative", field + " holds negative values",
                          put(f"optimizer/state/0/{key}", negative_first)))
    settings_of = {"sgd": ("momentum", 1.5), "adadelta": ("rho", 2.0), "adagrad": ("lr_decay", -1.0)}
    if optimizer in ("adam", "adamw", "adamax"):
        cases += [("betas-range", r"field optimizer\.param_groups\[0\]\.betas\[0\]",
                   put("optimizer/param_groups/0/betas", (1.0, 0.999))),
                  ("betas-count", r"field optimizer\.param_groups\[0\]\.betas has 1 entries",
                   put("optimizer/param_groups/0/betas", (0.9,)))]
    if optimizer in settings_of:
        name, value = settings_of[optimizer]
        cases.append((f"{name}-range", rf"field optimizer\.param_groups\[0\]\.{name}",
                      put(f"optimizer/param_groups/0/{name}", value)))
    if optimizer != "sgd":
        cases.append(("eps-zero", r"field optimizer\.param_groups\[0\]\.eps", put("optimizer/param_groups/0/eps", 0.0)))
    return cases


def cases():
    for name, field, corrupt in CORRUPTIONS:
        yield pytest.param("adam", field, corrupt, id=f"adam-{name}")
    for optimizer in OPTIMIZERS:
        for name, field, corrupt in OPTIMIZER_CORRUPTIONS + state_corruptions(optimizer):
            yield pytest.param(optimizer, field, corrupt, id=f"{optimizer}-{name}")


@pytest.mark.parametrize("optimizer, field, corrupt", list(cases()))
def test_a_corrupted_field_is_refused_by_name_and_nothing_changes(checkpoints, data, optimizer, field, corrupt):
    checkpoint = checkpoints(optimizer)
    corrupt(checkpoint)
    refused(checkpoint, optimizer, data, field)


def test_the_corruptions_cover_every_field():
    named = {case[1].split("field ")[-1].split("\\")[0].split(" ")[0].split("[")[0]
             for case in CORRUPTIONS + OPTIMIZER_CORRUPTIONS}
    assert set(CHECKPOINT_FIELDS) - named - {"format", "version"} == set()


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_a_valid_checkpoint_from_disk_resumes_exactly(checkpoints, data, tmp_path, optimizer):
    """The control: the uncorrupted checkpoint passes, and the resumed run equals a straight one."""
    straight = Trainer(SPEC, data, config(optimizer))
    assert straight.run().reason == "completed"
    save_checkpoint(tmp_path / "ck.pt", checkpoints(optimizer))
    resumed = Trainer(SPEC, data, config(optimizer))
    resumed.load_checkpoint(read_checkpoint(tmp_path / "ck.pt"))
    assert resumed.run().reason == "completed"
    assert resumed.history == straight.history
    assert same(resumed.model.state_dict(), straight.model.state_dict())


def test_the_optimizer_runs_the_way_this_trainer_chose_not_the_file(checkpoints, data):
    """Fused kernels are this device's choice: a file saying otherwise does not switch them."""
    checkpoint = checkpoints("adam")
    checkpoint["optimizer"]["param_groups"][0].update(fused=False, foreach=True)
    trainer = Trainer(SPEC, data, config("adam"))
    trainer.load_checkpoint(checkpoint)
    group = trainer.optimizer.param_groups[0]
    assert group["fused"] is True and group["foreach"] is None
    assert trainer.run().reason == "completed"


def test_validation_reads_only(checkpoints, data):
    checkpoint = checkpoints("sgd")
    kept = copy.deepcopy(checkpoint)
    validate_checkpoint(checkpoint, Trainer(SPEC, data, config("sgd")))
    assert same(checkpoint, kept)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_the_finite_check_refuses_nan_and_infinity_and_accepts_values_whose_sum_overflows(dtype):
    """A checkpoint's tensors are checked by their sum first (one pass); large finite values whose sum overflows
    (float16 quickly) are checked value by value, not refused."""
    from engine.training.checkpoint_format import all_finite

    largest = torch.finfo(dtype).max
    overflowing = torch.full((8,), largest / 2, dtype=dtype)
    assert not math.isfinite(overflowing.sum().item()) and all_finite(overflowing)
    assert all_finite(torch.randn(1000, dtype=torch.float32).to(dtype)) and all_finite(torch.zeros(0, dtype=dtype))
    for bad in (math.nan, math.inf, -math.inf):
        values = torch.randn(1000).to(dtype)
        values[500] = bad
        assert not all_finite(values)
    assert not all_finite(torch.tensor([math.inf, -math.inf], dtype=dtype))  # a sum of NaN


def test_the_finite_check_takes_float8_tensors_which_have_no_sum():
    from engine.training.checkpoint_format import all_finite

    assert all_finite(torch.zeros(4).to(torch.float8_e5m2))
    assert not all_finite(torch.tensor([1.0, math.inf]).to(torch.float8_e5m2))


def test_crafted_optimizer_states_end_in_a_message_not_a_crash(tmp_path):
    """In a child process, so that a regression crashes the child, not the test run: optimizer states of
    the wrong shape for the fused kernels (which corrupted the heap before) are refused, and the same
    trainer then trains."""
    script = textwrap.dedent("""
        import engine, torch
        from engine.data import DataConfig, load_data
        from engine.errors import WeightsError
        from engine.spec import LayerSpec, NetworkSpec
        from engine.training import TrainConfig, Trainer
        spec = NetworkSpec((1, 28, 28), (LayerSpec("Conv2d", {"out_channels": 6, "kernel_size": 5}),
                           LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 10})))
        data = load_data(DataConfig(limit=96))
        for optimizer in ("sgd", "adam", "adamw", "adagrad"):
            config = TrainConfig(optimizer=optimizer, epochs=1, batch_size=32, device="cpu")
            source = Trainer(spec, data, config)
            source.run()
            checkpoint = source.checkpoint()
            state = checkpoint["optimizer"]["state"]
            state[0], state[1] = state[1], state[0]
            target = Trainer(spec, data, TrainConfig(**{**config.to_dict(), "epochs": 2}))
            try:
                target.load_checkpoint(checkpoint)
            except WeightsError as exc:
                print(optimizer, "refused:", str(exc).split(" has ")[0])
            print(optimizer, target.run().reason)
    """)
    repository = Path(__file__).resolve().parents[2]  # this checkout's engine, not an installed one
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(repository)})
    assert done.returncode == 0, done.stderr[-2000:]
    for optimizer in ("sgd", "adam", "adamw", "adagrad"):
        assert f"{optimizer} refused: Checkpoint field optimizer.state[0]." in done.stdout
        assert f"{optimizer} completed" in done.stdout


# --------------------------------------------------------------------------- any mutation

def locations(value, path=()):
    """Every place in a checkpoint: (path, value) for containers and leaves."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from locations(item, (*path, key))
    elif isinstance(value, (list, tuple)) and not isinstance(value, torch.Size):
        for index, item in enumerate(value):
            yield from locations(item, (*path, index))


DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8,
          torch.bool, torch.complex64)
ODD_VALUES = (None, True, False, 0, -1, 1, 2**70, 10**400, -(10**30), 0.5, -0.5, math.nan, math.inf, -math.inf, "",
              "adam", "x" * 1000, [], {}, [1.0, 2.0], {"a": 1}, (0.9, 0.999), [10**400])


@st.composite
def tensors(draw):
    shape = draw(st.lists(st.integers(0, 6), max_size=3))
    dtype = draw(st.sampled_from(DTYPES))
    fill = draw(st.sampled_from((0.0, 1.0, -1.0, 3.0, math.nan)))
    tensor = torch.full(shape, fill) if dtype.is_floating_point or dtype.is_complex else torch.full(shape, 1)
    return tensor.to(dtype)


def reshaped(tensor: torch.Tensor, how: int) -> torch.Tensor:
    flat = tensor.reshape(-1)
    return (flat, tensor.unsqueeze(0), flat[:-1] if flat.numel() else flat, tensor.reshape(1, -1).t(),
            torch.cat([flat, flat]))[how]


def mutate(checkpoint: dict, draw) -> str:
    """Drop, replace, reshape or retype one place in ``checkpoint``; says what it did."""
    places = [(path, value) for path, value in locations(checkpoint) if path]
    path, value = draw(st.sampled_from(places))
    parent = checkpoint
    for part in path[:-1]:
        parent = parent[part]
    if isinstance(parent, tuple):  # betas: replace the whole tuple instead
        return mutate_at(checkpoint, path[:-1], draw)
    operations = ["drop", "replace"] + (["reshape", "retype"] if isinstance(value, torch.Tensor) else [])
    operation = draw(st.sampled_from(operations))
    if operation == "drop":
        del parent[path[-1]]
    elif operation == "replace":
        parent[path[-1]] = draw(st.one_of(st.sampled_from(ODD_VALUES), tensors()))
    elif operation == "reshape":
        parent[path[-1]] = reshaped(value, draw(st.integers(0, 4)))
    else:
        parent[path[-1]] = value.to(draw(st.sampled_from(DTYPES)))
    return f"{operation} {'/'.join(map(str, path))}"


def mutate_at(checkpoint: dict, path: tuple, draw) -> str:
    parent = checkpoint
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = draw(st.one_of(st.sampled_from(ODD_VALUES), tensors()))
    return f"replace {'/'.join(map(str, path))}"


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_mutated_checkpoint_is_refused_with_a_weights_error_or_trains(checkpoints, data, drawn):
    """Whatever one change does to a checkpoint, only WeightsError comes out of loading it (the trainer
    unchanged), and a checkpoint that was accepted trains without an error."""
    optimizer = drawn.draw(st.sampled_from(OPTIMIZERS))
    checkpoint = checkpoints(optimizer)
    note(mutate(checkpoint, drawn.draw))
    trainer = Trainer(SPEC, data, config(optimizer))
    before = snapshot(trainer)
    try:
        trainer.load_checkpoint(checkpoint)
    except WeightsError:
        assert same(snapshot(trainer), before)
    finished = trainer.run()
    assert finished.reason in ("completed", "early_stopped", "diverged"), finished.message


# --------------------------------------------------------------------------- CheckpointWriter

class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def batch_end(step: int, losses=(1.0,), steps: int = 5) -> BatchEnd:
    return BatchEnd(epoch=1, step=step, steps_per_epoch=steps, global_step=step, losses=tuple(losses), lr=1e-3,
                    samples_per_s=1.0)


def test_writer_writes_at_epoch_ends_and_inside_an_epoch_once_the_interval_passed(data, tmp_path):
    trainer = Trainer(SPEC, data, config("adam"))
    clock = FakeClock()
    writer = CheckpointWriter(trainer, tmp_path / "ck.pt", interval_s=60.0, clock=clock)
    clock.now = 59.0
    writer(batch_end(1))
    assert writer.writes == 0 and not (tmp_path / "ck.pt").exists()
    clock.now = 60.0
    writer(batch_end(2))
    assert writer.writes == 1 and (tmp_path / "ck.pt").exists()
    clock.now = 100.0
    writer(batch_end(3))                               # 40 s after the last write: not yet
    clock.now = 121.0
    writer(batch_end(5))                               # the epoch's last batch: EpochEnd follows
    writer(batch_end(4, losses=(1.0, math.nan)))       # a loss that is not finite: the run is diverging
    assert writer.writes == 1
    writer(EpochEnd(1, 3, 1.0, 0.5, 1.0, 0.5, 1e-3, 1.0))
    assert writer.writes == 2                          # every epoch end, whatever the clock says
    clock.now = 130.0
    writer(batch_end(1))
    assert writer.writes == 2                          # the epoch end restarted the interval


def test_writer_keeps_the_file_of_every_epoch_loadable(data, tmp_path):
    path = tmp_path / "ck.pt"
    trainer = Trainer(SPEC, data, config("sgd"))
    writer = CheckpointWriter(trainer, path)
    epochs_on_disk = []

    def listener(event):
        writer(event)
        if isinstance(event, EpochEnd):
            epochs_on_disk.append(read_checkpoint(path)["epoch"])

    assert trainer.run(listener).reason == "completed"
    assert epochs_on_disk == [1, 2, 3] and writer.writes == 3   # the end of the run changed nothing more
    resumed = Trainer(SPEC, data, config("sgd", epochs=4))
    resumed.load_checkpoint(read_checkpoint(path))
    assert resumed.epoch == 3 and same(resumed.model.state_dict(), trainer.model.state_dict())


def test_a_checkpoint_written_at_a_batch_end_resumes_bit_identical(data, tmp_path, monkeypatch):
    """Mid-epoch checkpoints: the one written 3 batches into epoch 2 continues to the same weights, losses and
    history as the run that was never interrupted."""
    monkeypatch.setattr(readback, "READBACK_INTERVAL_S", 0.0)  # a BatchEnd after every step
    straight = Trainer(SPEC, data, config("adamw"))
    straight_losses = []
    straight.run(lambda e: straight_losses.extend(e.losses) if isinstance(e, BatchEnd) else None)

    path, kept = tmp_path / "ck.pt", tmp_path / "mid-epoch-2.pt"
    running = Trainer(SPEC, data, config("adamw"))
    writer = CheckpointWriter(running, path, interval_s=0.0)
    losses_before = []

    def listener(event):
        writer(event)
        if isinstance(event, BatchEnd) and not kept.exists():
            losses_before.extend(event.losses)
            if (event.epoch, event.step) == (2, 3):
                kept.write_bytes(path.read_bytes())  # what a kill -9 right now would leave on disk

    assert running.run(listener).reason == "completed"
    assert kept.exists() and writer.writes > running.epoch
    assert same(running.model.state_dict(), straight.model.state_dict())  # writing did not disturb the run

    resumed = Trainer(SPEC, data, config("adamw"))
    resumed.load_checkpoint(read_checkpoint(kept))
    assert (resumed.epoch, resumed.global_step) == (1, straight.steps_per_epoch + 3)
    losses_after = []
    assert resumed.run(lambda e: losses_after.extend(e.losses) if isinstance(e, BatchEnd) else None).reason == \
        "completed"
    assert losses_before + losses_after == straight_losses
    assert resumed.history == straight.history
    assert same(resumed.model.state_dict(), straight.model.state_dict())
    assert same(resumed.optimizer.state_dict(), straight.optimizer.state_dict())


def test_a_failing_write_is_reported_and_the_run_goes_on(data, tmp_path):
    problems = []
    trainer = Trainer(SPEC, data, config("adam", epochs=2))
    writer = CheckpointWriter(trainer, tmp_path / "gone" / "ck.pt", on_error=problems.append)
    assert trainer.run(writer).reason == "completed"
    assert writer.writes == 0 and writer.error == problems[-1]
    assert len(problems) == 3 and "does not exist" in problems[0]  # two epoch ends and the end of the run
