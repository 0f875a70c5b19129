"""Weights and checkpoint files are read by their content, not their name; special files and odd tensors
give a sentence, never a SafetensorError/RuntimeError traceback or a hang."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import safetensors.torch
import torch
from torch import nn

from engine.build import build_model
from engine.errors import WeightsError
from engine.io import (
    CHECKPOINT_SUFFIXES,
    WEIGHTS_SUFFIXES,
    apply_state_dict,
    load_weights,
    read_checkpoint,
    read_state_dict,
    save_checkpoint,
    save_weights,
)
from engine.spec import LayerSpec, NetworkSpec

SPEC = NetworkSpec((4,), (LayerSpec("Linear", {"out_features": 3}, "fc"), LayerSpec("BatchNorm1d", id="bn")))


def model() -> nn.Module:
    torch.manual_seed(0)
    return build_model(SPEC)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


# --------------------------------------------------------------------------- the content decides, not the suffix

@pytest.mark.parametrize("written_as, named", [(".safetensors", ".pt"), (".pt", ".safetensors"), (".pt", ".bin"),
                                               (".safetensors", ".ckpt")])
def test_a_file_with_the_other_formats_suffix_is_read_by_its_content(tmp_path, written_as, named):
    source = model()
    source[1].running_mean.add_(1.0)
    save_weights(source, tmp_path / f"w{written_as}")
    renamed = tmp_path / f"renamed{named}"
    os.replace(tmp_path / f"w{written_as}", renamed)
    target = build_model(SPEC)
    assert load_weights(target, renamed).ok
    assert same_weights(source, target)


@pytest.mark.parametrize("named", [".safetensors", ".pt"])
def test_a_safetensors_header_whose_length_starts_like_a_pickle_is_still_safetensors(tmp_path, named):
    """A header of 128 bytes (or 384, ...) makes the file's first byte 0x80, a pickle's first byte."""
    for length in range(1, 400):
        state = {"w" * length: torch.ones(2)}
        data = safetensors.torch.save(state)
        if data[0] == 0x80:
            break
    path = tmp_path / f"w{named}"
    path.write_bytes(data)
    assert torch.equal(read_state_dict(path)["w" * length], torch.ones(2))


def test_a_checkpoint_named_safetensors_is_read_and_a_safetensors_file_is_not_a_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "ck.pt", {"epoch": 2, "model": model().state_dict()})
    os.replace(tmp_path / "ck.pt", tmp_path / "ck.safetensors")
    assert read_checkpoint(tmp_path / "ck.safetensors")["epoch"] == 2
    save_weights(model(), tmp_path / "w.safetensors")
    os.replace(tmp_path / "w.safetensors", tmp_path / "w.pt")
    with pytest.raises(WeightsError, match="w.pt is a safetensors weights file, not a checkpoint"):
        read_checkpoint(tmp_path / "w.pt")


# --------------------------------------------------------------------------- special files

def _readers():
    return {"read_state_dict": read_state_dict, "load_weights": lambda p: load_weights(build_model(SPEC), p),
            "read_checkpoint": read_checkpoint}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="this OS has no FIFOs")
@pytest.mark.parametrize("reader", sorted(_readers()))
def test_a_fifo_named_like_weights_is_refused_without_blocking(tmp_path, reader):
    fifo = tmp_path / "weights.pt"
    os.mkfifo(fifo)
    with pytest.raises(WeightsError, match=r"weights.pt is a pipe \(FIFO\)"):
        _readers()[reader](fifo)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="this OS has no /dev/zero")
@pytest.mark.parametrize("reader", sorted(_readers()))
def test_a_device_is_refused(reader):
    with pytest.raises(WeightsError, match="/dev/zero is a device"):
        _readers()[reader](Path("/dev/zero"))


# --------------------------------------------------------------------------- tensors that are not plain weights

def _odd(kind: str, like: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # beta/deprecation notes of sparse and quantized tensors
        if kind == "sparse":
            return like.to_sparse()
        if kind == "sparse_csr":
            return like.to_sparse_csr()
        if kind == "quantized":
            return torch.quantize_per_tensor(like, 0.1, 0, torch.qint8)
        if kind == "meta":
            return torch.empty_like(like, device="meta")
        if kind == "integer":
            return like.round().to(torch.int64)
        if kind == "bool":
            return like > 0
        if kind == "complex":
            return like.to(torch.complex64)
    raise AssertionError(kind)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind, fragment", [
    ("sparse", "0.weight is a sparse tensor (sparse_coo)"),
    ("sparse_csr", "0.weight is a sparse tensor (sparse_csr)"),
    ("quantized", "0.weight is a quantized tensor (qint8)"),
    ("meta", "0.weight holds no values in the file (a meta tensor"),
    ("integer", "0.weight holds whole numbers (int64) in the file but real numbers in the design"),
    ("bool", "0.weight holds true/false values (bool) in the file but real numbers"),
    ("complex", "0.weight holds complex numbers (complex64)"),
])
def test_odd_tensors_in_a_torch_file_are_a_sentence_and_the_model_is_unchanged(tmp_path, kind, fragment):
    state = model().state_dict()
    state["0.weight"] = _odd(kind, state["0.weight"])
    path = tmp_path / "odd.pt"
    torch.save(state, path)
    target = build_model(SPEC)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(WeightsError) as info:
        load_weights(target, path)
    message = str(info.value)
    assert fragment in message and message.endswith("nothing was loaded") and "\n" not in message
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_integer_and_bool_tensors_in_a_safetensors_file_are_a_sentence(tmp_path):
    state = {k: v.contiguous() for k, v in model().state_dict().items()}
    state["0.bias"] = torch.ones(3, dtype=torch.int32)
    safetensors.torch.save_file(state, str(tmp_path / "ints.safetensors"))
    with pytest.raises(WeightsError, match=r"0.bias holds whole numbers \(int32\)"):
        load_weights(build_model(SPEC), tmp_path / "ints.safetensors")


def test_the_batch_counter_stays_a_whole_number_and_strided_tensors_load(tmp_path):
    """Integer buffers (num_batches_tracked) fit integer buffers; non-contiguous and expanded tensors load as values."""
    state = model().state_dict()
    state["0.weight"] = torch.randn(4, 3).t()             # transposed: not contiguous
    state["1.weight"] = torch.tensor([2.0]).expand(3)     # stride 0
    state["1.num_batches_tracked"] = torch.tensor(7)
    torch.save(state, tmp_path / "strided.pt")
    target = build_model(SPEC)
    assert load_weights(target, tmp_path / "strided.pt").ok
    assert torch.equal(target[0].weight, state["0.weight"]) and torch.equal(target[1].weight, torch.full((3,), 2.0))
    assert target[1].num_batches_tracked.item() == 7
    state["1.num_batches_tracked"] = torch.tensor(7.5)
    with pytest.raises(WeightsError, match="1.num_batches_tracked holds real numbers"):
        apply_state_dict(build_model(SPEC), state)


# --------------------------------------------------------------------------- saving: the suffix picks the format

@pytest.mark.parametrize("suffix", WEIGHTS_SUFFIXES)
def test_every_weights_suffix_saves_in_its_format(tmp_path, suffix):
    save_weights(model(), tmp_path / f"w{suffix}")
    head = (tmp_path / f"w{suffix}").read_bytes()[:4]
    assert (head == b"PK\x03\x04") == (suffix != ".safetensors")


@pytest.mark.parametrize("name, fragment", [
    ("w.txt", "Cannot tell the format of 'w.txt'"), ("w", "Cannot tell the format of 'w'"),
    ("missing/w.pt", "does not exist"),
])
def test_a_bad_target_is_refused_before_anything_is_written(tmp_path, name, fragment):
    with pytest.raises(WeightsError, match=fragment):
        save_weights(model(), tmp_path / name)
    with pytest.raises(WeightsError, match=fragment.replace("w.pt", "")):
        save_checkpoint(tmp_path / name, {"epoch": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_checkpoint_suffixes_are_the_torch_ones():
    assert CHECKPOINT_SUFFIXES[0] == ".pt" and ".safetensors" not in CHECKPOINT_SUFFIXES
