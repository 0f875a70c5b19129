"""Design files from anywhere: every way a file can be wrong gives one SpecError sentence, never a traceback or a hang.

The same reader serves `layerstudio summary/train/export`, the window's Open and the templates, so
these tests go through ``load_design`` on real files (FIFOs, devices, big files) and through the CLI.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import SpecError
from engine.files import MAX_JSON_DEPTH
from engine.spec import (
    MAX_DESIGN_BYTES,
    MAX_INPUT_DIMENSION,
    MAX_INPUT_ELEMENTS,
    LayerSpec,
    NetworkSpec,
    check_input_shape,
)
from engine.templates import load_design
from resources import TEMPLATES

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="this OS has no FIFOs")
needs_dev_zero = pytest.mark.skipif(not Path("/dev/zero").exists(), reason="this OS has no /dev/zero")


def lenet() -> dict:
    return json.loads((TEMPLATES / "lenet.json").read_text(encoding="utf-8"))


def refused(path, *fragments) -> str:
    """load_design's SpecError for ``path``: one line, holding every fragment."""
    with pytest.raises(SpecError) as info:
        load_design(path)
    message = str(info.value)
    assert "\n" not in message, message
    assert message[:1].isupper() or message.startswith((str(path), Path(path).name)), message  # names kept as written
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# --------------------------------------------------------------------------- what the file is

@needs_fifo
def test_a_fifo_is_refused_without_opening_it(tmp_path):
    """Opening a FIFO for reading blocks until a writer comes: the type is checked first (pytest-timeout
    would end a hang)."""
    fifo = tmp_path / "design.json"
    os.mkfifo(fifo)
    refused(fifo, "is a pipe (FIFO)", "not a design file")


@needs_dev_zero
def test_a_device_is_refused_not_streamed(tmp_path):
    refused(Path("/dev/zero"), "/dev/zero is a device")


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as file:  # sparse: the size is there, the disk blocks are not
        file.truncate(MAX_DESIGN_BYTES + 1)
    refused(path, "too large to be a design")


def test_invalid_utf8_is_a_sentence(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(json.dumps({**lenet(), "name": "caf\u00e9"}, ensure_ascii=False).encode("latin-1"))
    refused(path, "latin1.json is not UTF-8 text")


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(lenet()).encode())
    assert load_design(path)[0] == load_design("lenet")[0]


# --------------------------------------------------------------------------- what the JSON holds

@pytest.mark.parametrize("text, fragment", [
    ('{"a": ' + "[" * 200_000 + "]" * 200_000 + "}", "too deep"),
    ('{"a": ' + "[" * (MAX_JSON_DEPTH + 5) + "]" * (MAX_JSON_DEPTH + 5) + "}", "too deep"),
    ('{"a": ' + "7" * 5000 + "}", "5000 digits"),
    ('{"a": 1e999}', "too large"),
    ('{"a": -1e400}', "too large"),
    ('{"a": NaN}', "NaN is not a number JSON allows"),
    ('{"a": Infinity}', "Infinity"),
    ('{"name": "\\ud800"}', "lone surrogate \\ud800"),
    ('{"\\udfff": 1}', "lone surrogate \\udfff"),
    ("", "not valid JSON"),
])
def test_json_that_python_would_choke_on_is_a_sentence(tmp_path, text, fragment):
    path = tmp_path / "design.json"
    path.write_text(text, encoding="utf-8")
    refused(path, "design.json", fragment)


def test_a_surrogate_pair_is_ordinary_text(tmp_path):
    path = tmp_path / "emoji.json"
    path.write_text(json.dumps({**lenet(), "name": "net \U0001f600"}), encoding="utf-8")  # written as \\ud83d\\ude00
    assert "\\ud83d\\ude00" in path.read_text()
    assert load_design(path)[1]["name"] == "net \U0001f600"


@pytest.mark.parametrize("shape, fragment", [
    ([10**90], "too large"),
    ([MAX_INPUT_DIMENSION + 1], "at most 1,000,000"),
    ([4096, 4096, 4096], "16,777,216 values"),
    ([1.5e300], "positive integers"),
    ([0, 28], "positive integers"),
    ([1] * 9, "1 to 8"),
])
def test_input_shape_bounds_are_documented_in_the_message(tmp_path, shape, fragment):
    path = tmp_path / "design.json"
    path.write_text(json.dumps({**lenet(), "input_shape": shape}))
    refused(path, "'input_shape'", fragment)


def test_the_largest_allowed_input_shape_is_accepted():
    check_input_shape((MAX_INPUT_DIMENSION,))
    check_input_shape((1, 4096, 4096))
    assert 4096 * 4096 <= MAX_INPUT_ELEMENTS
    spec = NetworkSpec.from_dict({**lenet(), "input_shape": [MAX_INPUT_DIMENSION], "layers": []})
    assert spec.input_shape == (MAX_INPUT_DIMENSION,)


@pytest.mark.parametrize("value, fragment", [
    (["a list"], "must be text"),
    (7, "must be text"),
    ("\ud83d", "lone surrogate"),
])
def test_name_and_description_must_be_writable_text(value, fragment):
    for field in ("name", "description"):
        with pytest.raises(SpecError, match=fragment):
            NetworkSpec.from_dict({**lenet(), field: value})


# --------------------------------------------------------------------------- layer ids

@pytest.mark.parametrize("bad_id", [
    "a\nb", "x'); import os; os.system('true') #", '"""', "__import__('os')", "\ud800", "\x1b[31mred", "a b",
    "", "x" * 65, 7, None, "é",
])
def test_layer_ids_outside_the_safe_set_are_refused_when_read(tmp_path, bad_id):
    design = lenet()
    design["layers"][0]["id"] = bad_id
    with pytest.raises(SpecError, match=r"layer 0 \(Conv2d\) field 'id' must be 1 to 64 letters, digits, '_' or '-'"):
        NetworkSpec.from_dict(design)
    path = tmp_path / "design.json"
    path.write_text(json.dumps(design))
    message = refused(path, "design.json")
    assert "field 'id'" in message or "lone surrogate" in message


def test_layer_ids_are_checked_when_made_in_code_too():
    assert LayerSpec("ReLU", id="relu_1-b").id == "relu_1-b"
    with pytest.raises(SpecError, match="field 'id'"):
        LayerSpec("ReLU", id="x\n")


# --------------------------------------------------------------------------- the CLI prints user text escaped

def test_summary_prints_a_hostile_design_name_escaped(tmp_path, capsys):
    path = tmp_path / "design.json"
    path.write_text(json.dumps({**lenet(), "name": "\x1b[2J\x1b]0;owned\x07evil\rname\u202e"}))
    assert main(["summary", str(path)]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("\\x1b[2J\\x1b]0;owned\\x07evil\\x0dname\\u202e: input 1x28x28")
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out and "\u202e" not in out


def test_errors_quoting_an_undecodable_file_name_print_escaped(tmp_path, capsys):
    """A file name with bytes that are not UTF-8 arrives as lone surrogates; printing it must not crash."""
    name = os.fsdecode(b"bad\xff.json")
    assert main(["summary", str(tmp_path / name)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad\\udcff.json does not exist" in err
    err.encode(sys.stderr.encoding or "utf-8")


@needs_fifo
def test_train_config_goes_through_the_same_reader(tmp_path, capsys):
    fifo = tmp_path / "run.json"
    os.mkfifo(fifo)
    assert main(["train", "softmax-regression", "--config", str(fifo)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a pipe (FIFO), not a training configuration file" in err
    deep = tmp_path / "deep.json"
    deep.write_text('{"training": ' + "[" * 100_000 + "}")
    assert main(["train", "softmax-regression", "--config", str(deep)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "deep.json" in err and "too deep" in err


def test_from_json_refuses_text_longer_than_a_design():
    with pytest.raises(SpecError, match="too long"):
        NetworkSpec.from_json(" " * (MAX_DESIGN_BYTES + 1))
