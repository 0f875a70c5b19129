"""engine.io: safe weight loading, fit reports, all-or-nothing loads and atomic checkpoints, on real files."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import safetensors.torch
import torch
from torch import nn

from engine.build import build_model
from engine.errors import WeightsError
from engine.io import (
    FitReport,
    apply_state_dict,
    check_fit,
    load_weights,
    read_checkpoint,
    read_state_dict,
    save_checkpoint,
    save_weights,
    strip_wrapper_prefixes,
)
from engine.spec import LayerSpec, NetworkSpec


def small_cnn_spec(out_features: int = 10, channels: int = 4) -> NetworkSpec:
    return NetworkSpec((1, 8, 8), (
        LayerSpec("Conv2d", {"out_channels": channels, "kernel_size": 3, "padding": 1}),
        LayerSpec("BatchNorm2d"),
        LayerSpec("ReLU"),
        LayerSpec("MaxPool2d", {"kernel_size": 2, "stride": 2}),
        LayerSpec("Flatten"),
        LayerSpec("Linear", {"out_features": out_features}),
    ))


def hand_written_cnn(out_features: int = 10, channels: int = 4) -> nn.Sequential:
    """The same network as small_cnn_spec, the way a course would type it."""
    return nn.Sequential(
        nn.Conv2d(1, channels, kernel_size=3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2), nn.Flatten(), nn.Linear(channels * 4 * 4, out_features),
    )


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


class CodeRunner:
    """Pickles into a call of ``open(marker, 'w')``: loading it unsafely would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# --------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_weights_round_trip_into_a_fresh_model(tmp_path, suffix):
    torch.manual_seed(0)
    source = build_model(small_cnn_spec())
    source[1].running_mean.add_(0.5)  # buffers travel too
    path = tmp_path / f"weights{suffix}"
    save_weights(source, path)
    target = build_model(small_cnn_spec())
    report = load_weights(target, path)
    assert report.ok and report.matched == len(source.state_dict())
    assert_same_tensors(snapshot(source), snapshot(target))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_safetensors_saves_tied_weights(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    model[1].weight = model[0].weight
    save_weights(model, tmp_path / "tied.safetensors")
    loaded = read_state_dict(tmp_path / "tied.safetensors")
    assert torch.equal(loaded["0.weight"], loaded["1.weight"])


def test_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(WeightsError, match=r"\.pt or \.safetensors"):
        save_weights(nn.Linear(2, 2), tmp_path / "weights.txt")


def test_plain_pytorch_weights_load_into_the_design_and_back(tmp_path):
    """A hand-written nn.Sequential's state_dict loads into build_model(spec) strictly, and vice versa."""
    torch.manual_seed(1)
    course = hand_written_cnn()
    course.eval()
    torch.save(course.state_dict(), tmp_path / "course.pt")
    safetensors.torch.save_file(course.state_dict(), str(tmp_path / "course.safetensors"))
    x = torch.randn(3, 1, 8, 8)
    for name in ("course.pt", "course.safetensors"):
        designed = build_model(small_cnn_spec()).eval()
        assert load_weights(designed, tmp_path / name).ok
        assert torch.equal(designed(x), course(x))

    designed = build_model(small_cnn_spec()).eval()
    save_weights(designed, tmp_path / "app.pt")
    save_weights(designed, tmp_path / "app.safetensors")
    for state in (torch.load(tmp_path / "app.pt", weights_only=True),
                  safetensors.torch.load_file(str(tmp_path / "app.safetensors"))):
        plain = hand_written_cnn().eval()
        plain.load_state_dict(state, strict=True)
        assert torch.equal(plain(x), designed(x))


def test_state_dict_inside_a_checkpoint_like_dict_is_found(tmp_path):
    model = hand_written_cnn()
    torch.save({"epoch": 3, "model_state_dict": model.state_dict()}, tmp_path / "ck.pt")
    assert read_state_dict(tmp_path / "ck.pt").keys() == model.state_dict().keys()


def test_non_tensor_entries_are_not_a_state_dict(tmp_path):
    torch.save({"0.weight": torch.zeros(2), "note": "hello"}, tmp_path / "mixed.pt")
    with pytest.raises(WeightsError, match="'note' is a str"):
        read_state_dict(tmp_path / "mixed.pt")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="holds a list"):
        read_state_dict(tmp_path / "list.pt")


# --------------------------------------------------------------------------- unsafe files

@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "torch.save legacy", "pickle protocol 2", "pickle protocol 4"])
def test_pickled_code_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "marker"
    payload = {"0.weight": torch.zeros(2, 2), "evil": CodeRunner(marker)}
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save(payload, path)
    elif writer == "torch.save legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=int(writer[-1]))
    assert not marker.exists()
    with pytest.raises(WeightsError, match="refused") as info:
        read_state_dict(path)
    assert "\n" not in str(info.value)
    with pytest.raises(WeightsError, match="refused"):
        read_checkpoint(path)
    with pytest.raises(WeightsError, match="refused"):
        load_weights(nn.Linear(2, 2), path)
    assert not marker.exists()


def test_refusal_names_the_code_it_would_have_run(tmp_path):
    torch.save({"evil": CodeRunner(tmp_path / "m")}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match=r"Python code \(io\.open\)"):
        read_state_dict(tmp_path / "evil.pt")


# --------------------------------------------------------------------------- broken files

def _truncated_copy(tmp_path, name: str, **save_kwargs):
    good = tmp_path / f"good-{name}"
    if name.endswith(".safetensors"):
        safetensors.torch.save_file({"w": torch.randn(500)}, str(good))
    else:
        torch.save({"w": torch.randn(500)}, good, **save_kwargs)
    data = good.read_bytes()
    bad = tmp_path / name
    bad.write_bytes(data[: len(data) // 2])
    return bad


@pytest.mark.parametrize("case", ["empty", "folder", "text", "missing", "truncated zip", "truncated legacy",
                                  "truncated safetensors", "garbage safetensors header", "huge safetensors header",
                                  "zip that is not torch"])
def test_broken_files_give_one_clear_error(tmp_path, case):
    path = tmp_path / "weights.pt"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "folder":
        path.mkdir()
    elif case == "text":
        path.write_text("epoch,loss\n1,0.5\n")
    elif case == "truncated zip":
        path = _truncated_copy(tmp_path, "t.pt")
    elif case == "truncated legacy":
        path = _truncated_copy(tmp_path, "t.pt", _use_new_zipfile_serialization=False)
    elif case == "truncated safetensors":
        path = _truncated_copy(tmp_path, "t.safetensors")
    elif case == "garbage safetensors header":
        path = tmp_path / "g.safetensors"
        header = b"{not json at all!!}"
        path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    elif case == "huge safetensors header":
        path = tmp_path / "h.safetensors"
        path.write_bytes((10**12).to_bytes(8, "little") + b'{"a": 1}')
    elif case == "zip that is not torch":
        import zipfile

        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "hello")
    expected = {"empty": "is empty", "folder": "is a folder", "text": "not a PyTorch", "missing": "does not exist",
                "huge safetensors header": "damaged safetensors header"}.get(case, "damaged|not a valid safetensors")
    for reader in (read_state_dict, lambda p: load_weights(nn.Linear(2, 2), p)):
        with pytest.raises(WeightsError, match=expected) as info:
            reader(path)
        message = str(info.value)
        assert "\n" not in message and str(path) in message
    if not case.endswith("safetensors") and "safetensors" not in case:
        with pytest.raises(WeightsError):
            read_checkpoint(path)


# --------------------------------------------------------------------------- fit reports

def test_fit_report_lists_every_problem_layer_by_layer(tmp_path):
    spec = small_cnn_spec(out_features=10, channels=4)
    other = hand_written_cnn(out_features=3, channels=4)      # last layer has another shape
    state = other.state_dict()
    del state["1.running_var"]                                # missing
    state["7.weight"] = torch.zeros(5, 2)                     # unexpected, a layer the design lacks
    path = tmp_path / "other.pt"
    torch.save(state, path)

    model = build_model(spec)
    before = snapshot(model)
    with pytest.raises(WeightsError) as info:
        load_weights(model, path, spec)
    assert_same_tensors(before, snapshot(model))               # all or nothing

    report = check_fit(model, state, spec)
    assert not report.ok
    assert report.missing == ["1.running_var"]
    assert report.unexpected == ["7.weight"]
    assert sorted(report.mismatched) == [("5.bias", (10,), (3,)), ("5.weight", (10, 64), (3, 64))]
    text = str(info.value)
    assert text == report.text()
    lines = text.splitlines()
    assert lines[0].startswith("The weights do not fit this design (1 missing, 1 unexpected, 2 with another shape)")
    assert lines[1:] == [
        "  layer 1 (BatchNorm2d):",
        "    1.running_var is missing from the file",
        "  layer 5 (Linear):",
        "    5.weight has shape 3x64 in the file but 10x64 in the design",
        "    5.bias has shape 3 in the file but 10 in the design",
        "  layer 7 (not in the design):",
        "    7.weight (5x2) is in the file but not in the design",
    ]


def test_layer_kinds_come_from_the_model_without_a_spec():
    report = check_fit(hand_written_cnn(), {"0.weight": torch.zeros(1)})
    assert report.layer_kinds["0"] == "Conv2d" and "layer 0 (Conv2d):" in report.text()


def test_layer_ordering_is_numeric():
    report = FitReport(missing=["10.weight", "2.weight", "head.bias"], layer_kinds={"2": "Linear", "10": "Linear"})
    assert list(report.problems_by_layer()) == ["2", "10", "head"]


def test_a_tensor_that_cannot_be_converted_changes_nothing():
    """A failure found after the shapes matched (complex into real) still leaves every tensor untouched."""
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    before = snapshot(model)
    state = {k: torch.ones_like(v) for k, v in model.state_dict().items()}
    state["1.weight"] = torch.ones(2, dtype=torch.complex64)
    with pytest.raises(WeightsError, match="1.weight holds complex numbers"):
        apply_state_dict(model, state)
    assert_same_tensors(before, snapshot(model))


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
def test_wrapper_prefixes_are_stripped(tmp_path, prefix):
    source = hand_written_cnn()
    torch.save({prefix + k: v for k, v in source.state_dict().items()}, tmp_path / "wrapped.pt")
    target = build_model(small_cnn_spec())
    assert load_weights(target, tmp_path / "wrapped.pt").ok
    assert_same_tensors(snapshot(source), snapshot(target))
    assert strip_wrapper_prefixes(prefix + "3.weight") == "3.weight"


def test_weights_load_into_a_wrapped_model(tmp_path):
    """A model whose own keys carry a wrapper prefix (e.g. torch.compile's) takes plain keys."""
    source = hand_written_cnn()
    save_weights(source, tmp_path / "plain.pt")
    wrapper = nn.Module()
    wrapper._orig_mod = build_model(small_cnn_spec())
    assert next(iter(wrapper.state_dict())).startswith("_orig_mod.")
    assert load_weights(wrapper, tmp_path / "plain.pt").ok
    assert_same_tensors(snapshot(source), snapshot(wrapper._orig_mod))


def test_weights_of_a_wrapped_model_are_saved_with_plain_keys(tmp_path):
    wrapper = nn.Module()
    wrapper._orig_mod = hand_written_cnn()
    save_weights(wrapper, tmp_path / "w.pt")
    hand_written_cnn().load_state_dict(torch.load(tmp_path / "w.pt", weights_only=True), strict=True)


def test_colliding_prefixed_keys_are_refused():
    with pytest.raises(WeightsError, match="name the same tensor"):
        check_fit(nn.Linear(2, 2), {"weight": torch.zeros(2, 2), "module.weight": torch.zeros(2, 2)})


# --------------------------------------------------------------------------- checkpoints

def example_checkpoint(model: nn.Module) -> dict:
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    optimizer.step()
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 2,
            "history": {"train_loss": [0.9, 0.5]}, "rng": torch.get_rng_state(), "note": None}


def test_checkpoint_round_trip(tmp_path):
    model = build_model(small_cnn_spec())
    checkpoint = example_checkpoint(model)
    save_checkpoint(tmp_path / "ck.pt", checkpoint)
    loaded = read_checkpoint(tmp_path / "ck.pt")
    assert loaded["epoch"] == 2 and loaded["history"] == {"train_loss": [0.9, 0.5]}
    assert torch.equal(loaded["rng"], checkpoint["rng"])
    assert loaded["optimizer"]["param_groups"] == checkpoint["optimizer"]["param_groups"]
    assert read_state_dict(tmp_path / "ck.pt").keys() == model.state_dict().keys()   # weights out of a checkpoint
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_checkpoint_with_an_unpicklable_object_leaves_previous_file(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"epoch": 1})
    previous = path.read_bytes()
    with pytest.raises(WeightsError, match=r"checkpoint\['callback'\] is a function"):
        save_checkpoint(path, {"epoch": 2, "callback": lambda: None})
    with pytest.raises(WeightsError, match=r"is a CodeRunner"):
        save_checkpoint(path, {"epoch": 2, "nested": [{"x": CodeRunner(tmp_path / "m")}]})
    assert path.read_bytes() == previous
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_failure_mid_write_leaves_previous_file_and_no_temp(tmp_path):
    """A real write failure half way (file size limit, EFBIG) in a child process: the old checkpoint survives."""
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"epoch": 1, "weights": torch.ones(10)})
    previous = path.read_bytes()
    script = textwrap.dedent(f"""
        import resource, signal, sys, torch
        from engine.io import save_checkpoint
        from engine.errors import WeightsError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
        try:
            save_checkpoint({str(path)!r}, {{"epoch": 2, "weights": torch.ones(1_000_000)}})
        except WeightsError as exc:
            print(exc)
            sys.exit(3)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "previous file there is unchanged" in done.stdout
    assert path.read_bytes() == previous
    assert read_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_interrupt_mid_write_removes_temp(tmp_path, monkeypatch):
    """Ctrl-C arriving while torch.save writes: the temp file is removed and the interrupt goes on."""
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"epoch": 1})
    previous = path.read_bytes()
    real_save = torch.save

    def save_then_interrupt(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"epoch": 2})
    assert path.read_bytes() == previous
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_written_files_get_ordinary_permissions(tmp_path):
    save_checkpoint(tmp_path / "ck.pt", {"epoch": 1})
    save_weights(nn.Linear(2, 2), tmp_path / "w.safetensors")
    umask = os.umask(0)
    os.umask(umask)
    for name in ("ck.pt", "w.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_checkpoint_into_missing_folder_or_a_safetensors_file(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        save_checkpoint(tmp_path / "nope" / "ck.pt", {"epoch": 1})
    save_weights(nn.Linear(2, 2), tmp_path / "w.safetensors")
    with pytest.raises(WeightsError, match="not a checkpoint"):
        read_checkpoint(tmp_path / "w.safetensors")
