"""engine.preview against the bundle's own tensors and the files behind them: pixels back to 0..255 exactly,
class counts per split, seeded augmentation, a table's first rows in the units of the file."""
from __future__ import annotations

import csv
import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from engine.data import DIGIT_NAMES, DataConfig, augment_batch, load_data
from engine.preview import preview_data, to_pixels
from resources import MNIST_SAMPLE


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERSTUDIO_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def sample():
    return load_data(DataConfig(augment_crop_padding=4, augment_hflip=True))


def training_file_pixels() -> np.ndarray:
    raw = gzip.decompress((MNIST_SAMPLE / "train-images-idx3-ubyte.gz").read_bytes())
    count, rows, cols = struct.unpack(">III", raw[4:16])
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, rows, cols)


def test_images_per_class_are_the_files_pixels_and_counts_follow_the_splits(sample):
    preview = preview_data(sample, per_class=6)
    assert preview.class_names == DIGIT_NAMES and [title for title, _ in preview.groups] == DIGIT_NAMES
    pixels = {image.tobytes() for image in training_file_pixels()}
    for index, (_title, images) in enumerate(preview.groups):
        assert images.shape == (6, 28, 28, 1) and images.dtype == np.uint8
        first = torch.nonzero(sample.train_y == index).flatten()[:6]
        assert np.array_equal(images, to_pixels(sample.train_x[first], sample))
        assert all(image[..., 0].tobytes() in pixels for image in images)      # exactly the file's pixels
    for split in ("train", "val", "test"):
        y = getattr(sample, f"{split}_y")
        assert preview.counts[split] == torch.bincount(y, minlength=10).tolist()
    assert sum(preview.counts["train"]) == 3600 and preview.counts["test"] == [100] * 10
    assert any("mirrored" in note for note in preview.notes)


def test_augmented_versions_are_augment_batch_with_a_seeded_generator(sample):
    preview = preview_data(sample, samples=3, versions=5, seed=7)
    generator = torch.Generator().manual_seed(7)
    x = sample.train_x[:3]
    expected = [to_pixels(augment_batch(x, sample.augment, generator), sample) for _ in range(5)]
    assert preview.originals.shape == (3, 28, 28, 1) and preview.augmented.shape == (3, 5, 28, 28, 1)
    for version in range(5):
        assert np.array_equal(preview.augmented[:, version], expected[version])
    assert np.array_equal(preview.originals, to_pixels(x, sample))
    assert not all(np.array_equal(preview.augmented[0, v], preview.originals[0]) for v in range(5))
    assert np.array_equal(preview_data(sample, samples=3, versions=5, seed=7).augmented, preview.augmented)
    assert preview.augment_text == "random crop after padding 4 + random horizontal flip"
    assert preview_data(load_data(DataConfig(limit=50))).originals is None     # no augmentation, no row


def test_a_csv_previews_its_column_names_and_first_rows_in_the_files_units(tmp_path):
    path = tmp_path / "flowers.csv"
    rows = [[f"{4.3 + i / 10:.1f}", f"{2.0 + (i % 7) / 5:.1f}", f"{1000 * i}", ("setosa", "virginica")[i % 2]]
            for i in range(30)]
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([["sepal", "width", "grams", "species"], *rows])
    bundle = load_data(DataConfig(source="csv", root=str(path), label_column="species", val_fraction=0))
    preview = preview_data(bundle, rows=8)
    assert preview.columns == ["sepal", "width", "grams", "species"]
    assert len(preview.rows) == 8 and not preview.groups
    for shown, written in zip(preview.rows, rows[:8], strict=True):
        assert [float(v) for v in shown[:3]] == pytest.approx([float(v) for v in written[:3]], rel=1e-6)
        assert shown[3] == written[3]
    assert preview.rows[0][2] == "0"                       # a zero in the file, not a rounding residue
    assert preview.counts["train"] == [15, 15] and preview.class_names == ["setosa", "virginica"]


def test_regression_tables_show_their_targets():
    bundle = load_data(DataConfig(source="synthetic-regression", samples=50, val_fraction=0))
    preview = preview_data(bundle, rows=4)
    assert preview.columns == ["x1", "x2", "y"] and preview.counts["train"] == [50]
    for row, x, y in zip(preview.rows, bundle.train_x[:4].tolist(), bundle.train_y[:4].tolist(), strict=True):
        assert [float(v) for v in row] == pytest.approx(x + y, rel=1e-5)


def test_a_streamed_image_folder_previews_from_disk(tmp_path):
    for name, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for index in range(5):
            Image.new("RGB", (10, 10), colour).save(tmp_path / "pics" / name / f"{index}.png")
    bundle = load_data(DataConfig(source="folder", root=str(tmp_path / "pics"), image_size=8, grayscale=False,
                                  stream=True, val_fraction=0.2))
    preview = preview_data(bundle, per_class=3)
    groups = dict(preview.groups)
    assert groups["blue"].shape == (3, 8, 8, 3) and (groups["blue"][..., 2] == 255).all()
    assert (groups["red"][..., 0] == 255).all() and (groups["red"][..., 2] == 0).all()
    assert sum(preview.counts["train"]) == 8 and sum(preview.counts["val"]) == 2


def test_reconstruction_data_previews_samples_without_classes():
    bundle = load_data(DataConfig(task="reconstruction", limit=50))
    preview = preview_data(bundle, per_class=5)
    assert preview.class_names == [] and [title for title, _ in preview.groups] == ["Samples"]
    images = preview.groups[0][1]
    assert images.shape == (5, 28, 28, 1)
    assert np.array_equal(images, bundle.train_x[:5].mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    assert preview.counts == {"train": [45], "val": [5], "test": [1000]}
