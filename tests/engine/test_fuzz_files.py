"""Fuzzing the file readers: mutated design files and mutated weights/checkpoint files raise only
LayerStudioError subclasses (a sentence), never another exception and never a hang.

Designs start from every template's bytes; weights start from real .pt and .safetensors files written by
save_weights and a checkpoint written by save_checkpoint. (What a checkpoint holds is checked elsewhere;
here only reading the file is fuzzed.)
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from functools import cache
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.build import build_model
from engine.errors import LayerStudioError
from engine.io import load_weights, read_checkpoint, read_state_dict, save_checkpoint, save_weights
from engine.spec import LayerSpec, NetworkSpec
from engine.templates import load_design
from resources import TEMPLATES

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TEMPLATE_BYTES = {path.name: path.read_bytes() for path in sorted(TEMPLATES.glob("*.json"))}
SENTINEL = "\u0000FUZZ\u0000"

pytestmark = pytest.mark.timeout(240)


def only_layerstudio_errors(call, *args) -> None:
    """Run ``call``; it may succeed or raise a LayerStudioError with a message, nothing else."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on odd files are not errors
            call(*args)
    except LayerStudioError as exc:
        assert str(exc).strip(), "a LayerStudioError must carry a sentence"


# --------------------------------------------------------------------------- designs

HOSTILE_VALUES = st.sampled_from([
    "1" * 5000, "-" + "9" * 400, "1e999", "-1e400", "NaN", "Infinity", "[" * 50_000 + "]" * 50_000,
    "[" * 150 + "]" * 150, '{"a":' * 120 + "1" + "}" * 120, '"\\ud800"', '"\\udfff\\ud800"', '"\\u0000\\u001b[2J"',
    '"a\\nb\'\\"\\"\\"__import__(\\"os\\")"', "null", "true", "[]", "{}", '""', "0", "-1", "2.5",
    "123456789012345678901",
    '"' + "x" * 10_000 + '"', "[1e308, -1e308]", '{"\\ud800": 1}',
])


def _paths(value, prefix=()):
    """Every place in a JSON value: object keys and list positions, depth first."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


@st.composite
def mutated_designs(draw) -> bytes:
    """A template's bytes with one value replaced by hostile JSON text, then some bytes flipped, inserted or cut."""
    name = draw(st.sampled_from(sorted(TEMPLATE_BYTES)))
    data = bytearray(TEMPLATE_BYTES[name])
    if draw(st.booleans()):
        design = json.loads(data)
        path = draw(st.sampled_from(list(_paths(design))[1:]))
        holder = design
        for step in path[:-1]:
            holder = holder[step]
        holder[path[-1]] = SENTINEL
        text = json.dumps(design).replace(json.dumps(SENTINEL), draw(HOSTILE_VALUES))
        data = bytearray(text.encode("utf-8"))
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["flip", "insert", "delete"]))
        if how == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at:at + draw(st.integers(1, 16))]
    return bytes(data)


@FUZZ
@given(mutated_designs())
def test_mutated_design_files_raise_only_spec_errors(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.json"
        path.write_bytes(data)
        only_layerstudio_errors(load_design, path)
    only_layerstudio_errors(NetworkSpec.from_json, data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    only_layerstudio_errors(NetworkSpec.from_json, text)


@FUZZ
@given(st.sampled_from(sorted(TEMPLATE_BYTES)), st.sampled_from(["id", "kind", "params", "frozen", "name",
                                                                  "description", "input_shape", "layers"]),
       st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=12))
def test_wrong_types_in_any_field_raise_only_spec_errors(name, field, value):
    design = json.loads(TEMPLATE_BYTES[name])
    if field in ("id", "kind", "params", "frozen") and design["layers"]:
        design["layers"][0][field] = value
    else:
        design[field] = value
    only_layerstudio_errors(NetworkSpec.from_dict, design)
    try:
        text = json.dumps(design, allow_nan=True)
    except (ValueError, RecursionError):
        return
    only_layerstudio_errors(NetworkSpec.from_json, text)


# --------------------------------------------------------------------------- weights and checkpoints

SPEC = NetworkSpec((1, 6, 6), (
    LayerSpec("Conv2d", {"out_channels": 2, "kernel_size": 3}, "conv"), LayerSpec("BatchNorm2d", id="bn"),
    LayerSpec("Flatten", id="flat"), LayerSpec("Linear", {"out_features": 3}, "fc"),
))


@cache
def original(kind: str) -> bytes:
    """The bytes of a real file: weights as .pt or .safetensors (save_weights), or a checkpoint (save_checkpoint)."""
    torch.manual_seed(0)
    model = build_model(SPEC)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("checkpoint.pt" if kind == "checkpoint" else f"weights{kind}")
        if kind == "checkpoint":
            save_checkpoint(path, {"epoch": 1, "model": model.state_dict(), "history": [{"loss": 0.5}]})
        else:
            save_weights(model, path)
        return path.read_bytes()


@st.composite
def mutated_weights(draw) -> tuple[bytes, str]:
    """A real weights or checkpoint file, truncated and/or bit-flipped, under either suffix."""
    data = bytearray(original(draw(st.sampled_from([".pt", ".safetensors", "checkpoint"]))))
    how = draw(st.sampled_from(["truncate", "flip", "flip header", "both", "none"]))
    if how in ("truncate", "both"):
        data = data[:draw(st.integers(0, len(data) - 1))]
    if how in ("flip", "flip header", "both") and data:
        span = min(len(data), 64) if how == "flip header" else len(data)
        for _ in range(draw(st.integers(1, 6))):
            at = draw(st.integers(0, span - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
    return bytes(data), draw(st.sampled_from([".pt", ".safetensors", ".bin", ".ckpt"]))


@FUZZ
@given(mutated_weights())
def test_mutated_weights_files_raise_only_weights_errors(case):
    data, suffix = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzzed{suffix}"
        path.write_bytes(data)
        only_layerstudio_errors(read_state_dict, path)
        only_layerstudio_errors(load_weights, build_model(SPEC), path)
        only_layerstudio_errors(read_checkpoint, path)
        os.chmod(path, 0o600)  # the readers never change the file
        assert path.read_bytes() == data


def test_unmutated_originals_read_back():
    """The fuzz starts from files that do load, so a refusal above comes from the mutation."""
    with tempfile.TemporaryDirectory() as folder:
        for kind in (".pt", ".safetensors", "checkpoint"):
            path = Path(folder) / f"x{kind if kind != 'checkpoint' else '.ckpt'}"
            path.write_bytes(original(kind))
            assert load_weights(build_model(SPEC), path).ok
        assert read_checkpoint(Path(folder) / "x.ckpt")["epoch"] == 1


# --------------------------------------------------------------------------- CSV tables

CSV_BASE = ("x1,x2,x3,label\n" + "".join(f"{i * 0.5},{-i},{i % 3 + 0.25},{'abc'[i % 3]}\n" for i in range(30))).encode()
HOSTILE_CELLS = st.sampled_from([
    "", " ", "nan", "NaN", "inf", "-inf", "1e39", "-4e40", "1e999", "9" * 400, "0x10", "1,5", '"1"', '"a,b"',
    "\x00", "\u202e", "\ud800", "é", "None", "NA", "#N/A", "1e-50", "true", "\t3\t", "1 2", "--1",
])


@st.composite
def mutated_tables(draw) -> bytes:
    """A small CSV (3 features, a text label) with cells replaced by hostile text, then bytes flipped, inserted
    or cut."""
    rows = [line.split(",") for line in CSV_BASE.decode().splitlines()]
    for _ in range(draw(st.integers(0, 4))):
        row = draw(st.integers(0, len(rows) - 1))
        column = draw(st.integers(0, len(rows[row]) - 1))
        rows[row][column] = draw(HOSTILE_CELLS)
    data = bytearray("\n".join(",".join(row) for row in rows).encode("utf-8", "surrogatepass"))
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["flip", "insert", "cut"]))
        if action == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[position:position + draw(st.integers(1, 40))]
    return bytes(data)


@FUZZ
@given(table=mutated_tables(), task=st.sampled_from(["auto", "classification", "regression"]),
       label=st.sampled_from(["label", "x1", "x2,x3", "missing"]))
def test_mutated_csv_tables_give_data_or_a_sentence(table, task, label):
    from engine.data import DataConfig, load_data

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.csv"
        path.write_bytes(table)
        only_layerstudio_errors(load_data, DataConfig(source="csv", root=str(path), task=task, label_column=label))
