"""Data that cannot train what it seems to, settings outside their ranges, and stopping a load part way.

Real files written by the tests (CSV text, PNG and JPEG pictures, damaged ones), real HTTP over 127.0.0.1.
"""
from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.data import DataConfig, cache_dir, download_file, load_data
from engine.errors import Cancelled, DataError
from engine.schema import settings_of
from engine.task import Task
from tests.slow_server import SlowServer

# Every numeric data setting's declaration (engine.schema): the ranges these tests hold the engine to.
RANGED = {s.name: s for s in settings_of(DataConfig) if s.low is not None}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test gets its own cache folder, never the user's."""
    monkeypatch.setenv("LAYERSTUDIO_HOME", str(tmp_path / "home"))


def write_csv(path, header: str, rows: list[str]) -> str:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return str(path)


def write_pictures(root, classes: dict[str, int], size=(6, 6)) -> None:
    """``classes``: class name -> number of PNG pictures (flat grey levels) to write in its folder."""
    for index, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            Image.new("L", size, 40 * index + k).save(root / name / f"{k}.png")


# --------------------------------------------------------------------------- CSV values and labels

def test_a_csv_value_beyond_float32_is_named_by_line_and_column(tmp_path):
    rows = [f"{i},{i * 0.5},{'ab'[i % 2]}" for i in range(8)]
    rows[5] = "5,1e39,b"     # a float64 number, but float32 would hold infinity
    path = write_csv(tmp_path / "big.csv", "a,b,label", rows)
    with pytest.raises(DataError, match=r"big\.csv line 7, column 'b' \(column 2\): '1e39' is beyond the range "
                                        r"of float32.*rescale that column"):
        load_data(DataConfig(source="csv", root=path))
    target = write_csv(tmp_path / "target.csv", "x,price", [f"{i},{i}.5" for i in range(5)] + ["5,-4e40"])
    with pytest.raises(DataError, match=r"target\.csv line 7, column 'price' \(column 2\): '-4e40' is beyond"):
        load_data(DataConfig(source="csv", root=target, label_column="price"))
    infinite = write_csv(tmp_path / "inf.csv", "a,label", ["1,x", "inf,y"])
    with pytest.raises(DataError, match=r"line 3, column 'a' \(column 1\): 'inf' is not a finite number"):
        load_data(DataConfig(source="csv", root=infinite))


def test_values_near_float32s_limit_load_finite_and_normalised(tmp_path):
    rows = [f"{(-1) ** i * 3.0e38},{i},{'ab'[i % 2]}" for i in range(10)]
    bundle = load_data(DataConfig(source="csv", root=write_csv(tmp_path / "edge.csv", "a,b,label", rows),
                                  val_fraction=0))
    assert torch.isfinite(bundle.train_x).all()
    assert bundle.train_x[:, 0].abs().max().item() == pytest.approx(1.0, rel=1e-5)  # +-3e38 around a mean of 0
    assert all(math.isfinite(v) for v in bundle.mean + bundle.std)


@pytest.mark.parametrize("label, shown", [("", "''"), ("NaN", "'NaN'"), ("nan", "'nan'"), ("NA", "'NA'"),
                                          ("N/A", "'N/A'"), ("null", "'null'")])
def test_a_missing_or_nan_label_is_refused_naming_its_line(tmp_path, label, shown):
    rows = [f"{i},{'cat' if i % 2 else 'dog'}" for i in range(6)]
    rows[3] = f"3,{label}"
    path = write_csv(tmp_path / "pets.csv", "size,label", rows)
    with pytest.raises(DataError, match=rf"pets\.csv line 5, column 'label' \(column 2\): the label is missing "
                                        rf"\({shown}\): fill it in or remove that row"):
        load_data(DataConfig(source="csv", root=path))


def test_a_missing_numeric_label_is_refused_for_regression_too(tmp_path):
    path = write_csv(tmp_path / "y.csv", "x,label", [f"{i},{i * 1.5}" for i in range(6)] + ["6,nan"])
    with pytest.raises(DataError, match=r"y\.csv line 8, column 'label' \(column 2\): the label is missing"):
        load_data(DataConfig(source="csv", root=path, task="regression"))


# --------------------------------------------------------------------------- classes

def test_classification_data_with_a_single_class_is_refused_before_training(tmp_path):
    path = write_csv(tmp_path / "one.csv", "a,label", [f"{i},cat" for i in range(10)])
    with pytest.raises(DataError, match=r"CSV one\.csv has a single class \('cat'\) in its 9 training samples: "
                                        r"classification needs at least two"):
        load_data(DataConfig(source="csv", root=path))
    write_pictures(tmp_path / "pics", {"only": 4})
    with pytest.raises(DataError, match=r"single class \('only'\)"):
        load_data(DataConfig(source="folder", root=str(tmp_path / "pics"), image_size=4))
    streamed = DataConfig(source="folder", root=str(tmp_path / "pics"), image_size=4, stream=True)
    with pytest.raises(DataError, match=r"single class \('only'\)"):
        load_data(streamed)
    # Reconstruction has no classes to tell apart: the same pictures are fine.
    assert load_data(DataConfig(source="folder", root=str(tmp_path / "pics"), image_size=4,
                                task="reconstruction")).task == "reconstruction"


def test_classes_without_training_samples_are_named_in_the_notes(tmp_path):
    write_pictures(tmp_path / "pics", {"a": 3, "b": 3})
    (tmp_path / "pics" / "c").mkdir()        # a class folder with nothing in it
    bundle = load_data(DataConfig(source="folder", root=str(tmp_path / "pics"), image_size=4, val_fraction=0))
    assert bundle.class_names == ["a", "b", "c"]
    assert bundle.notes == ["1 of the 3 classes of Image folder pics have no training samples ('c'): the model "
                            "cannot learn to predict them; add samples of them (or raise the limit if one is set)."]


# --------------------------------------------------------------------------- damaged and foreign files

def damage_folder(root) -> None:
    """Three kinds of unreadable pictures and two files that are not pictures at all."""
    write_pictures(root, {"cats": 4, "dogs": 4})
    whole = (root / "cats" / "0.png").read_bytes()
    (root / "cats" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (root / "dogs" / "empty.jpg").write_bytes(b"")
    (root / "dogs" / "text.png").write_text("this is not a picture")
    (root / "dogs" / "readme.txt").write_text("notes")
    (root / "cats" / "Thumbs.db").write_bytes(b"\0" * 16)
    (root / "cats" / ".DS_Store").write_bytes(b"\0" * 16)      # hidden files are the system's: not mentioned


@pytest.mark.parametrize("stream", [False, True])
def test_damaged_pictures_are_skipped_and_named_and_other_files_are_named(tmp_path, stream):
    damage_folder(tmp_path / "pets")
    config = DataConfig(source="folder", root=str(tmp_path / "pets"), image_size=6, val_fraction=0.5, stream=stream)
    bundle = load_data(config)
    ignored, skipped = bundle.notes
    assert ignored == ("Ignored 2 files in pets that are not images (by the name's extension): cats/Thumbs.db, "
                       "dogs/readme.txt.")
    if stream:   # only the validation half is decoded now; the rest is read while training
        assert skipped.startswith("Skipped ") and "of 11 images in pets that cannot be read" in skipped
    else:
        assert skipped == ("Skipped 3 of 11 images in pets that cannot be read (damaged, or not the format their "
                           "name says): cats/truncated.png, dogs/empty.jpg, dogs/text.png; remove them or save them "
                           "again as PNG or JPEG.")
        assert bundle.train_size + len(bundle.val_x) == 8
        assert again_from_the_cache(config).notes == bundle.notes   # the cache remembers what it left out


def again_from_the_cache(config: DataConfig):
    assert list(cache_dir().glob("folder-*.pt"))
    return load_data(config)


def test_a_folder_with_no_readable_picture_is_refused(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "pics" / name).mkdir(parents=True)
        (tmp_path / "pics" / name / "x.png").write_text("not a picture")
    with pytest.raises(DataError, match=r"None of the 2 pictures of Image folder pics can be read"):
        load_data(DataConfig(source="folder", root=str(tmp_path / "pics")))


def test_the_cli_prints_the_notes(tmp_path, capsys):
    from engine.cli import main

    damage_folder(tmp_path / "pets")
    design = tmp_path / "design.json"
    design.write_text(json.dumps({
        "format": "layerstudio.design", "version": 1, "input_shape": [1, 6, 6],
        "layers": [{"kind": "Flatten"}, {"kind": "Linear", "params": {"out_features": 2}}],
        "training": {"epochs": 1, "batch_size": 4, "device": "cpu"},
        "data": {"source": "folder", "root": str(tmp_path / "pets"), "image_size": 6}}))
    code = main(["train", str(design)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0, lines
    assert lines[1].startswith("Note: Ignored 2 files in pets") and lines[2].startswith("Note: Skipped 3 of 11 images")


# --------------------------------------------------------------------------- ranges

def test_every_range_is_enforced_at_its_bounds_with_a_sentence():
    for name, allowed in RANGED.items():
        low, high = allowed.low, allowed.high

        def config(value, name=name, allowed=allowed):
            return DataConfig(**{name: (value,) * allowed.items[0] if allowed.items else value})

        config(low).validate()
        config(high).validate()
        step = 1 if allowed.type is int else max(1e-9, abs(high) * 1e-9)
        for bad in (low - step, high + step):
            with pytest.raises(DataError, match=rf"The data setting '{name}' \(.*\) must be .*got "):
                config(bad).validate()


@pytest.mark.parametrize("data, message", [
    ({"samples": 10**13}, r"'samples' \(Samples\) must be a whole number between 2 and 1,000,000,000 samples, "
                          r"got 10000000000000"),
    ({"limit": -1}, r"'limit' .* must be a whole number between 0 and 1,000,000,000 samples \(0 uses every sample\)"),
    ({"seed": 2**64}, r"'seed' .* must be a whole number between 0 and 2,147,483,647"),
    ({"augment_crop_padding": 1000}, r"'augment_crop_padding' .* must be a whole number between 0 and 128 pixels"),
    ({"image_size": 5000}, r"'image_size' .* must be a whole number between 1 and 4096 pixels, got 5000"),
    ({"weights": [1.0] * 100_001}, r"'weights' .* must be a list of one to 100,000 numbers.*\(100001 numbers\)"),
    ({"weights": [1.0, 1e300]}, r"'weights' .* must be .* each between -1,000,000 and 1,000,000"),
    ({"bias": 10**400}, r"'bias' .* must be a number between -1,000,000 and 1,000,000, got 1000"),
    ({"noise": -0.5}, r"'noise' .* must be a number between 0 and 1,000,000"),
    ({"val_fraction": float("nan")}, r"'val_fraction' .* must be a number between 0 and 0.9"),
])
def test_out_of_range_values_from_a_file_are_refused_with_a_sentence(data, message):
    with pytest.raises(DataError, match=message):
        DataConfig.from_dict(data)


NUMBERS = st.one_of(st.integers(min_value=-(2**80), max_value=2**80), st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(RANGED)), value=NUMBERS)
def test_any_number_a_file_can_hold_is_accepted_within_its_range_or_refused(name, value):
    allowed = RANGED[name]
    data = {name: [value] if allowed.items else value}
    try:
        config = DataConfig.from_dict(data)
    except DataError as exc:
        assert str(exc)[0].isupper() and str(exc).endswith(".")
        return
    stored = getattr(config, name)
    for item in (stored if allowed.items else (stored,)):
        assert math.isfinite(item) and allowed.low <= item <= allowed.high


# --------------------------------------------------------------------------- stopping a load

def stop_after(calls: int):
    """A should_stop that turns true on its ``calls``-th question (and counts them)."""
    asked = []

    def should_stop() -> bool:
        asked.append(1)
        return len(asked) >= calls

    should_stop.asked = asked
    return should_stop


def sources(tmp_path) -> dict[str, DataConfig]:
    write_pictures(tmp_path / "pics", {"a": 30, "b": 30})
    csv_rows = [f"{i},{i % 7},{'xyz'[i % 3]}" for i in range(3 * 4096)]
    return {
        "sample enlarged": DataConfig(image_size=40, limit=2000),
        "folder": DataConfig(source="folder", root=str(tmp_path / "pics"), image_size=8),
        "csv": DataConfig(source="csv", root=write_csv(tmp_path / "t.csv", "a,b,label", csv_rows)),
        "synthetic": DataConfig(source="synthetic-regression"),
    }


@pytest.mark.parametrize("source", ["sample enlarged", "folder", "csv", "synthetic"])
def test_a_stop_request_at_any_point_of_a_load_ends_it_cancelled_with_no_cache_file(tmp_path, source):
    config = sources(tmp_path)[source]
    counting = stop_after(10**9)
    load_data(config, should_stop=counting)           # how often this load asks
    total = len(counting.asked)
    assert total >= 3
    for calls in sorted({1, 2, total // 2, total - 1, total}):
        for cache in cache_dir().glob("*"):
            cache.unlink()                            # every load decodes, as the counted one did
        with pytest.raises(Cancelled):
            load_data(config, should_stop=stop_after(calls))
        assert not list(cache_dir().glob(".*.tmp"))   # never a half-written cache file


def test_a_stop_during_the_cache_write_leaves_no_cache_file(tmp_path):
    write_pictures(tmp_path / "pics", {"a": 150, "b": 150})
    config = DataConfig(source="folder", root=str(tmp_path / "pics"), image_size=160, grayscale=False)  # ~23 MB
    writing = []

    def stop_once_the_cache_is_being_written() -> bool:
        writing.append(bool(list(cache_dir().glob(".*.tmp"))))
        return writing[-1]

    with pytest.raises(Cancelled):
        load_data(config, should_stop=stop_once_the_cache_is_being_written)
    assert any(writing)
    assert not list(cache_dir().glob("*"))           # neither the cache nor its temp file


def test_a_download_stops_between_chunks_and_leaves_no_file(tmp_path):
    with SlowServer(stall=False) as server:
        reports = []
        target = tmp_path / "big.bin"
        with pytest.raises(Cancelled):
            download_file(server.url("big.bin"), target, progress=lambda f, m: reports.append(f),
                          should_stop=lambda: len(reports) > 5)
    assert len(reports) > 5 and 0 < reports[-1] < 0.01
    assert list(tmp_path.iterdir()) == []


def test_cancelling_a_stalled_download_from_another_thread_ends_it_at_once(tmp_path):
    """The server sends two pieces, then nothing: only shutting the socket can end the blocked read."""
    with SlowServer(stall=True, quick_pieces=2) as server:
        arrived = threading.Event()
        task = Task(lambda fraction, message: arrived.set() if fraction > 0 else None)
        cancelled_at = []

        def cancel_once_bytes_arrived() -> None:
            arrived.wait(30)
            cancelled_at.append(time.monotonic())
            task.cancel()

        canceller = threading.Thread(target=cancel_once_bytes_arrived)
        canceller.start()
        with pytest.raises(Cancelled):
            download_file(server.url("big.bin"), tmp_path / "big.bin", progress=task)
        ended = time.monotonic()
        canceller.join()
    assert cancelled_at and ended - cancelled_at[0] < 2.0
    assert list(tmp_path.iterdir()) == []


def test_stopping_a_download_inside_load_data_leaves_no_partial_file(tmp_path, monkeypatch):
    from torchvision import datasets

    with SlowServer(stall=False) as server:
        monkeypatch.setattr(datasets.MNIST, "mirrors", [server.url()])
        reports = []
        with pytest.raises(Cancelled):
            load_data(DataConfig(source="mnist", root=str(tmp_path), download=True),
                      progress=lambda f, m: reports.append(m), should_stop=lambda: len(reports) > 4)
    assert server.requests == ["/train-images-idx3-ubyte.gz"]
    assert any(m.startswith("Downloading train-images-idx3-ubyte.gz") for m in reports)
    raw = tmp_path / "MNIST" / "raw"
    assert [p.name for p in raw.iterdir()] == []


def test_a_plain_progress_callable_still_works_and_sees_fractions_in_order(tmp_path):
    seen = []
    load_data(DataConfig(source="folder", root=str(write_and_return(tmp_path)), image_size=4),
              progress=lambda f, m: seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen) and np.all(np.array(seen) >= 0)


def write_and_return(tmp_path):
    write_pictures(tmp_path / "pics", {"a": 60, "b": 60})
    return tmp_path / "pics"
